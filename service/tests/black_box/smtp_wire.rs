//! What reaches the wire: every line ending is CRLF (a bare CR or LF in a body
//! cannot end DATA early or smuggle a command), NUL is never sent, no line is
//! longer than 998 octets. Checked on the bytes a real SMTP server received
//! and on the file transport's `.eml`.

use crate::smtp_support;

use mailbridge::transport::TransportError;
use smtp_support::{SmtpPeer, message, parse_eml, transport};

/// The SMTP smuggling pattern: `<CR>.<CR>` ends DATA for some servers, and
/// what follows would be read as the next command.
const SMUGGLE: &str =
    "d\r.\rMAIL FROM:<evil@attacker.example>\rRCPT TO:<victim@example.com>\r\nnext\nlast\r";

fn plain_dsn(peer: &SmtpPeer) -> String {
    format!("smtp://127.0.0.1:{}?tls=none", peer.port)
}

/// Fails unless `raw` holds only CRLF line ends, no NUL and no line over
/// 998 octets (RFC 5322 2.1.1, RFC 5321 4.5.3.1.6).
fn assert_wire_safe(raw: &[u8]) {
    let shown = String::from_utf8_lossy(raw);
    assert!(!raw.contains(&0), "NUL on the wire: {shown:?}");
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(raw.get(i + 1), Some(&b'\n'), "bare CR at {i}: {shown:?}");
        }
        if b == b'\n' {
            assert!(i > 0 && raw[i - 1] == b'\r', "bare LF at {i}: {shown:?}");
        }
    }
    for line in raw.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "a line of {} octets", line.len());
    }
}

#[tokio::test]
async fn bare_cr_and_lf_become_crlf_and_smuggle_nothing() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    let mut msg = message(1);
    msg.text = Some(SMUGGLE.into());
    msg.html = Some(format!("<p>{SMUGGLE}</p>"));

    smtp.send(&msg).await.unwrap();

    let received = peer.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].mail_from, "no-reply@acme.example");
    assert_eq!(received[0].rcpt_tos, ["ada@example.com"]);
    assert_wire_safe(&std::fs::read(&received[0].path).unwrap());
    // The would-be command is plain text of the body, on a line of its own.
    let eml = parse_eml(&received[0].path);
    assert_eq!(
        eml.parts[0].body.trim_end(),
        "d\n.\nMAIL FROM:<evil@attacker.example>\nRCPT TO:<victim@example.com>\nnext\nlast"
    );
}

#[tokio::test]
async fn nul_is_refused_for_good_and_nothing_is_sent() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    for (text, html) in [
        (Some("a\0b".to_owned()), None),
        (None, Some("<p>a\0b</p>".to_owned())),
    ] {
        let mut msg = message(1);
        msg.text = text;
        msg.html = html;
        let err = smtp.send(&msg).await.unwrap_err();
        assert!(matches!(err, TransportError::Permanent { .. }), "{err:?}");
        assert!(err.detail().contains("NUL"), "{err}");
    }
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn long_lines_are_encoded() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    let long = "x".repeat(5000);
    let mut msg = message(1);
    msg.subject = "s".repeat(990);
    msg.to[0].name = Some("n".repeat(990));
    msg.text = Some(format!("{long}\r\nshort"));
    msg.html = Some(format!("<p>{long}</p>"));

    smtp.send(&msg).await.unwrap();

    let received = peer.received();
    assert_wire_safe(&std::fs::read(&received[0].path).unwrap());
    let eml = parse_eml(&received[0].path);
    assert_eq!(eml.header("subject"), Some(msg.subject.as_str()));
    // Python's address parser puts a space between adjacent encoded words
    // (RFC 2047 6.2 says to drop it); the name is otherwise intact.
    let to = eml.header("to").unwrap().replace(' ', "");
    assert_eq!(to, format!("{}<ada@example.com>", "n".repeat(990)));
    assert_eq!(eml.parts[0].body.trim_end(), format!("{long}\nshort"));
    assert_eq!(eml.parts[1].body.trim_end(), format!("<p>{long}</p>"));
}

#[tokio::test]
async fn file_output_follows_the_same_rules() {
    let dir = tempfile::TempDir::new().unwrap();
    let files = transport(&format!("file://{}", dir.path().display()));
    let mut msg = message(1);
    msg.subject = "s".repeat(990);
    msg.text = Some(format!("{SMUGGLE}{}", "y".repeat(3000)));
    msg.html = Some(format!("<p>{SMUGGLE}</p>"));
    files.send(&msg).await.unwrap();
    let path = dir.path().join(format!("{}.eml", msg.id));
    assert_wire_safe(&std::fs::read(&path).unwrap());

    let mut msg = message(2);
    msg.text = Some("a\0b".into());
    let err = files.send(&msg).await.unwrap_err();
    assert!(matches!(err, TransportError::Permanent { .. }), "{err:?}");
    assert!(!dir.path().join(format!("{}.eml", msg.id)).exists());
}

#[tokio::test]
async fn idn_domain_goes_in_ascii_to_a_server_without_smtputf8() {
    // aiosmtpd offers no SMTPUTF8 unless asked to.
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    let mut msg = message(1);
    msg.to = vec![mailbridge::email::Mailbox {
        email: "a@münchen.de".into(),
        name: Some("Jörg".into()),
    }];
    msg.cc = vec![mailbridge::email::Mailbox::new("b@bücher.example")];

    smtp.send(&msg).await.unwrap();

    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].rcpt_tos,
        ["a@xn--mnchen-3ya.de", "b@xn--bcher-kva.example"]
    );
    let raw = std::fs::read(&received[0].path).unwrap();
    assert!(raw.is_ascii(), "{}", String::from_utf8_lossy(&raw));
    let eml = parse_eml(&received[0].path);
    assert_eq!(eml.header("to"), Some("Jörg <a@xn--mnchen-3ya.de>"));
    assert_eq!(eml.header("cc"), Some("b@xn--bcher-kva.example"));
}

/// An IDN address only in a header (`Reply-To`, or `From` beside an ASCII
/// `envelope_from`) needs SMTPUTF8 as much as one in the envelope: without
/// it, the header goes in ASCII too.
#[tokio::test]
async fn an_idn_address_in_a_header_only_goes_in_ascii_without_smtputf8() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    let mut msg = message(1);
    msg.reply_to = Some(mailbridge::email::Mailbox::new("x@münchen.example"));
    msg.from = mailbridge::email::Mailbox::new("no-reply@bücher.example");
    msg.envelope_from = Some("bounces@acme.example".into());

    smtp.send(&msg).await.unwrap();

    let received = peer.received();
    let raw = std::fs::read(&received[0].path).unwrap();
    assert!(raw.is_ascii(), "{}", String::from_utf8_lossy(&raw));
    let eml = parse_eml(&received[0].path);
    assert_eq!(eml.header("reply-to"), Some("x@xn--mnchen-3ya.example"));
    assert_eq!(eml.header("from"), Some("no-reply@xn--bcher-kva.example"));
    assert_eq!(received[0].mail_from, "bounces@acme.example");
}

#[tokio::test]
async fn non_ascii_local_part_fails_for_good_without_smtputf8() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    let mut msg = message(1);
    msg.to = vec![mailbridge::email::Mailbox::new("jörg@münchen.de")];

    let err = smtp.send(&msg).await.unwrap_err();

    assert!(matches!(err, TransportError::Permanent { .. }), "{err:?}");
    assert!(err.detail().contains("SMTPUTF8"), "{err}");
    assert!(err.detail().contains("local part"), "{err}");
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn international_addresses_go_as_given_to_a_server_with_smtputf8() {
    let peer = SmtpPeer::start(&["--smtputf8"]).await;
    let smtp = transport(&plain_dsn(&peer));
    let mut msg = message(1);
    msg.to = vec![mailbridge::email::Mailbox::new("jörg@münchen.de")];

    smtp.send(&msg).await.unwrap();

    let received = peer.received();
    assert_eq!(received[0].rcpt_tos, ["jörg@münchen.de"]);
    assert_eq!(
        parse_eml(&received[0].path).header("to"),
        Some("jörg@münchen.de")
    );
}

/// A sender in an IDN domain: the `Message-ID` the service makes in that
/// domain must be ASCII too, or every server refuses the message after it
/// was accepted.
#[tokio::test]
async fn a_sender_in_an_idn_domain_gets_an_ascii_message_id() {
    let peer = SmtpPeer::start(&[]).await;
    let dsn = plain_dsn(&peer);
    let server = crate::common::server::TestServer::start(&[("MAILBRIDGE_TRANSPORT", &dsn)]).await;
    let body = serde_json::json!({
        "from": {"email": "no-reply@münchen.example"},
        "to": [{"email": "ada@example.com"}],
        "subject": "Verify",
        "text": "Hi",
    });
    let (status, _, answer) = server.post("/v1/messages?wait=true", None, &body).await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &serde_json::json!("sent")),
        "{answer}"
    );
    let id = answer["id"].as_str().unwrap().replace('-', "");
    let received = peer.received();
    assert_eq!(received[0].mail_from, "no-reply@xn--mnchen-3ya.example");
    let eml = parse_eml(&received[0].path);
    assert_eq!(
        eml.header("message-id"),
        Some(format!("<{id}@xn--mnchen-3ya.example>").as_str())
    );
}
