//! PIPELINING (RFC 2920) against a real server: MAIL FROM, every RCPT TO and
//! DATA go in one write when the server offers it, one by one when it does
//! not (or the DSN says `pipelining=false`); a refused recipient sends
//! nothing, even when the server already took the others and waits for the
//! message.

use crate::smtp_support;

use mailbridge::email::Mailbox;
use mailbridge::transport::TransportError;
use smtp_support::{SmtpPeer, message, parse_eml, transport};

fn plain_dsn(peer: &SmtpPeer) -> String {
    format!("smtp://127.0.0.1:{}?tls=none", peer.port)
}

#[tokio::test]
async fn commands_go_grouped_to_a_server_that_offers_pipelining() {
    let peer = SmtpPeer::start(&["--pipelining"]).await;
    let smtp = transport(&plain_dsn(&peer));
    for n in 0..3 {
        let mut msg = message(n);
        msg.cc = vec![Mailbox::new("grace@example.com")];
        // Lines that start with a dot, one of them alone on its line.
        msg.text = Some(format!(".{n} first\n.\n..two dots\nlast"));
        let delivery = smtp.send(&msg).await.unwrap();
        assert_eq!(delivery.provider_message_id, Some(format!("Q{:05}", n + 1)));
        tokio::task::yield_now().await;
    }
    let received = peer.received();
    assert_eq!(received.len(), 3);
    for (n, r) in received.iter().enumerate() {
        assert!(r.pipelined, "message {n} went one command at a time");
        assert_eq!(r.connection, 1, "the connection is reused");
        assert_eq!(r.rcpt_tos, ["ada@example.com", "grace@example.com"]);
        let eml = parse_eml(&r.path);
        assert_eq!(eml.parts[0].content_type, "text/plain");
        assert_eq!(
            eml.parts[0].body.trim_end(),
            format!(".{n} first\n.\n..two dots\nlast"),
            "the message arrives as written, dots and all"
        );
    }
}

#[tokio::test]
async fn commands_go_one_by_one_to_a_server_without_it() {
    let peer = SmtpPeer::start(&[]).await;
    transport(&plain_dsn(&peer))
        .send(&message(1))
        .await
        .unwrap();
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert!(!received[0].pipelined);
}

#[tokio::test]
async fn the_dsn_can_turn_it_off() {
    let peer = SmtpPeer::start(&["--pipelining"]).await;
    let dsn = format!("{}&pipelining=false", plain_dsn(&peer));
    transport(&dsn).send(&message(1)).await.unwrap();
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert!(!received[0].pipelined);
}

#[tokio::test]
async fn a_refused_recipient_sends_nothing_though_the_others_were_taken() {
    let peer = SmtpPeer::start(&["--pipelining", "--reject-address", "grace@example.com"]).await;
    let smtp = transport(&plain_dsn(&peer));
    let mut msg = message(1);
    msg.cc = vec![Mailbox::new("grace@example.com")];

    let err = smtp.send(&msg).await.unwrap_err();
    assert!(matches!(err, TransportError::Permanent { .. }), "{err:?}");
    assert!(err.detail().contains("550 5.1.1"), "{err}");
    assert!(err.detail().contains("grace@example.com"), "{err}");
    // The server had answered DATA with 354 for ada: the connection was
    // left before the message's end, so nothing was stored for her.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(peer.received().is_empty(), "{:?}", peer.received());

    // The next message goes on a new connection.
    smtp.send(&message(2)).await.unwrap();
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_tos, ["ada@example.com"]);
    assert_eq!(received[0].connection, 2);
    assert!(received[0].pipelined);
}

#[tokio::test]
async fn when_every_recipient_is_refused_the_recipient_s_reply_is_the_error() {
    let peer = SmtpPeer::start(&["--pipelining", "--reject-address", "ada@example.com"]).await;
    let err = transport(&plain_dsn(&peer))
        .send(&message(1))
        .await
        .unwrap_err();
    // Not the `503 need RCPT` that DATA got after it.
    assert!(matches!(err, TransportError::Permanent { .. }), "{err:?}");
    assert!(err.detail().contains("550 5.1.1"), "{err}");
    assert!(err.detail().contains("user unknown"), "{err}");
    assert_eq!(err.code(), Some(550));
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn a_temporary_refusal_of_the_sender_is_reported_as_such() {
    let peer = SmtpPeer::start(&["--pipelining", "--fail-rcpt", "451", "--fail-times", "1"]).await;
    let smtp = transport(&plain_dsn(&peer));
    let err = smtp.send(&message(1)).await.unwrap_err();
    assert!(matches!(err, TransportError::Transient { .. }), "{err:?}");
    assert_eq!(err.code(), Some(451));
    assert!(peer.received().is_empty());
    smtp.send(&message(1)).await.unwrap();
    assert_eq!(peer.received().len(), 1);
}
