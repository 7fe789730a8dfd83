//! Delivery over plain SMTP to a real server: headers, envelope, pooling,
//! and how 4xx/5xx replies are classified.

use crate::smtp_support;

use mailbridge::email::Mailbox;
use mailbridge::transport::TransportError;
use smtp_support::{SmtpPeer, message, parse_eml, transport};

fn plain_dsn(peer: &SmtpPeer) -> String {
    format!("smtp://127.0.0.1:{}?tls=none", peer.port)
}

#[tokio::test]
async fn delivers_with_headers_and_hidden_bcc() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    let mut msg = message(1);
    msg.subject = "Passwort zurücksetzen".into();
    msg.reply_to = Some(Mailbox::new("support@acme.example"));
    msg.cc = vec![Mailbox::new("grace@example.com")];
    msg.bcc = vec![Mailbox::new("audit@acme.example")];
    msg.envelope_from = Some("bounces@acme.example".into());

    let delivery = smtp.send(&msg).await.unwrap();

    assert_eq!(delivery.provider_message_id.as_deref(), Some("Q00001"));
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "bounces@acme.example");
    let mut rcpts = received[0].rcpt_tos.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["ada@example.com", "audit@acme.example", "grace@example.com"]
    );
    let eml = parse_eml(&received[0].path);
    let expected_id = format!("<{}>", msg.message_id);
    assert_eq!(eml.header("message-id"), Some(expected_id.as_str()));
    assert_eq!(
        eml.header("from"),
        Some("ACME Accounts <no-reply@acme.example>")
    );
    assert_eq!(eml.header("to"), Some("ada@example.com"));
    assert_eq!(eml.header("cc"), Some("grace@example.com"));
    assert_eq!(eml.header("reply-to"), Some("support@acme.example"));
    assert_eq!(eml.header("subject"), Some("Passwort zurücksetzen"));
    assert_eq!(eml.header("bcc"), None);
    let raw = std::fs::read_to_string(&received[0].path).unwrap();
    assert!(!raw.contains("audit@acme.example"), "Bcc leaked: {raw}");
    assert_eq!(eml.content_type, "multipart/alternative");
    let parts: Vec<_> = eml
        .parts
        .iter()
        .map(|p| (p.content_type.as_str(), p.body.trim_end()))
        .collect();
    assert_eq!(
        parts,
        [("text/plain", "Hello 1"), ("text/html", "<p>Hello 1</p>")]
    );
}

#[tokio::test]
async fn same_message_id_on_every_attempt() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    let msg = message(1);
    smtp.send(&msg).await.unwrap();
    smtp.send(&msg).await.unwrap();
    let ids: Vec<_> = peer
        .received()
        .iter()
        .map(|r| parse_eml(&r.path).header("message-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn reuses_pooled_connections() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&plain_dsn(&peer));
    for n in 0..5 {
        smtp.send(&message(n)).await.unwrap();
        // The connection goes back to the pool in a task of its own.
        tokio::task::yield_now().await;
    }
    let connections: Vec<u32> = peer.received().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [1, 1, 1, 1, 1]);
}

#[tokio::test]
async fn temporary_refusal_is_transient_with_the_reply() {
    let peer = SmtpPeer::start(&["--fail-rcpt", "451", "--fail-times", "1"]).await;
    let smtp = transport(&plain_dsn(&peer));

    let err = smtp.send(&message(1)).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Transient { .. }),
        "not transient: {err:?}"
    );
    assert!(
        err.detail()
            .contains("451 4.3.0 Temporary local problem, try later"),
        "{err}"
    );
    assert_eq!(err.code(), Some(451));
    assert!(peer.received().is_empty());

    // The server recovers: the next attempt goes through.
    smtp.send(&message(1)).await.unwrap();
    assert_eq!(peer.received().len(), 1);
}

#[tokio::test]
async fn a_full_or_failing_server_is_down_not_answering_about_the_message() {
    // Its own trouble (4.3.x): a failover group tries the next member and
    // the transport may be held; a busy mailbox is about the message.
    for (code, about_the_message) in [("452", false), ("451", false), ("450", true)] {
        let peer = SmtpPeer::start(&["--fail-rcpt", code]).await;
        let err = transport(&plain_dsn(&peer))
            .send(&message(1))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert_eq!(err.is_about_the_message(), about_the_message, "{err}");
    }
}

#[tokio::test]
async fn unknown_recipient_is_permanent() {
    let peer = SmtpPeer::start(&["--fail-rcpt", "550"]).await;
    let err = transport(&plain_dsn(&peer))
        .send(&message(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Permanent { .. }),
        "not permanent: {err:?}"
    );
    assert!(err.detail().contains("550 5.1.1"), "{err}");
    assert!(err.detail().contains("user unknown"), "{err}");
    assert_eq!(err.code(), Some(550));
}

#[tokio::test]
async fn rejection_after_data_is_classified_too() {
    let peer = SmtpPeer::start(&["--fail-rcpt", "554", "--fail-at", "data"]).await;
    let err = transport(&plain_dsn(&peer))
        .send(&message(1))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Permanent { .. }), "{err:?}");
    assert!(err.detail().contains("554 5.7.1"), "{err}");
    assert_eq!(err.code(), Some(554));
}

#[tokio::test]
async fn unreachable_server_is_transient_and_check_says_so() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = transport(&format!("smtp://127.0.0.1:{port}?tls=none&timeout=5s"));
    let err = smtp.send(&message(1)).await.unwrap_err();
    assert!(matches!(err, TransportError::Transient { .. }), "{err:?}");
    assert!(err.detail().contains(&format!("127.0.0.1:{port}")), "{err}");
    assert_eq!(err.code(), None, "no server answered");
    assert!(smtp.check().await.is_err());

    let peer = SmtpPeer::start(&[]).await;
    transport(&plain_dsn(&peer)).check().await.unwrap();
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let smtp = transport(&format!("smtp://127.0.0.1:{port}?tls=none&timeout=1s"));
    let err = smtp.send(&message(1)).await.unwrap_err();
    assert!(matches!(err, TransportError::Transient { .. }), "{err:?}");
    assert!(err.detail().contains("did not finish within 1s"), "{err}");
    held.abort();
}

/// A minimal SMTP server that takes one message per connection and then
/// hangs up, as a server does with a client that idled too long. Answers
/// the number of connections accepted so far. Offers PIPELINING if asked.
async fn one_message_per_connection(
    pipelining: bool,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] =
                        match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                            "EHLO" if pipelining => {
                                b"250-test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                            }
                            "EHLO" => b"250-test\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                write.write_all(b"354 go on\r\n").await.unwrap();
                                while let Ok(Some(body)) = lines.next_line().await {
                                    if body == "." {
                                        break;
                                    }
                                }
                                write
                                    .write_all(b"250 2.0.0 Ok: queued as ONE\r\n")
                                    .await
                                    .unwrap();
                                return; // hang up after the message
                            }
                            _ => b"250 OK\r\n",
                        };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced_at_once() {
    for pipelining in [false, true] {
        replaced_at_once(pipelining).await;
    }
}

async fn replaced_at_once(pipelining: bool) {
    let (port, accepted) = one_message_per_connection(pipelining).await;
    let smtp = transport(&format!("smtp://127.0.0.1:{port}?tls=none"));
    for n in 0..3 {
        let delivery = smtp.send(&message(n)).await.unwrap();
        assert_eq!(delivery.provider_message_id.as_deref(), Some("ONE"));
        // Let the server's hang-up arrive before the next message.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
}
