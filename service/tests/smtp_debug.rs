//! `debug=true` on an SMTP transport logs the conversation — connect, TLS,
//! EHLO, AUTH, MAIL/RCPT/DATA and the replies — with AUTH arguments, tokens,
//! message content and the local part of addresses left out. Without it,
//! nothing of the conversation is logged, even at TRACE.

#[path = "black_box/common/mod.rs"]
mod common;
#[path = "black_box/smtp_support/mod.rs"]
mod smtp_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use smtp_support::{SmtpPeer, TokenEndpoint, make_certs, message, path_in, transport};

const TARGET: &str = "mailbridge::smtp::conversation";
const PASSWORD: &str = "pa55-w0rd-never-logged";

/// Everything logged on this thread (at every level) while the guard lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn install(&self) -> common::Subscribed {
        let writer = self.clone();
        common::subscribe(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The conversation lines only.
    fn conversation(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(TARGET))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asserts that `lines` has, in this order, lines containing each of `wanted`.
fn in_order(lines: &[String], wanted: &[&str]) {
    let mut rest = lines.iter();
    for want in wanted {
        assert!(
            rest.any(|l| l.contains(want)),
            "no `{want}` (in order) in the conversation:\n{}",
            lines.join("\n")
        );
    }
}

fn assert_absent(log: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!log.contains(secret), "`{secret}` reached the log:\n{log}");
    }
}

#[tokio::test]
async fn password_login_over_starttls_is_logged_without_secrets() {
    let certs = make_certs();
    let (cert, key) = (path_in(&certs, "server.pem"), path_in(&certs, "server.key"));
    let peer = SmtpPeer::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--auth-user",
        "mailer",
        "--auth-pass",
        PASSWORD,
    ])
    .await;
    let dsn = format!(
        "smtp://mailer:{PASSWORD}@127.0.0.1:{}?tls=required&ca_file={}&debug=true",
        peer.port,
        path_in(&certs, "ca.pem")
    );
    let captured = Captured::default();
    let _guard = captured.install();
    let smtp = transport(&dsn);
    smtp.send(&message(7)).await.unwrap();

    let lines = captured.conversation();
    in_order(
        &lines,
        &[
            "-- connected to 127.0.0.1:",
            "-- greeting received; EHLO",
            ">> STARTTLS",
            "-- TLS established",
            ">> AUTH PLAIN [redacted]",
            "<< 235",
            ">> MAIL FROM:<n***@acme.example>",
            "<< 250",
            ">> RCPT TO:<a***@example.com>",
            "<< 250",
            ">> DATA",
            "<< 354",
            ">> <message, ",
            "<< 250",
        ],
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("server=127.0.0.1:") && l.contains("connection=1")),
        "one connection, named in every line"
    );
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0mailer\0{PASSWORD}"));
    assert_absent(
        &captured.text(),
        &[
            PASSWORD,
            &plain,
            "Hello 7",
            "ada@example.com",
            "no-reply@acme.example",
        ],
    );
}

#[tokio::test]
async fn a_refused_token_is_logged_and_the_tokens_are_not() {
    let tokens = TokenEndpoint::start(&["stale-token-value", "fresh-token-value"]).await;
    let peer = SmtpPeer::start(&["--xoauth2-token", "fresh-token-value"]).await;
    let dsn = format!(
        "smtp://noreply%40acme.example@127.0.0.1:{}?tls=none&auth=xoauth2\
         &token_url={}&client_id=app-1&client_secret=client-secret-never-logged&debug=1",
        peer.port,
        tokens.url_for_dsn()
    );
    let captured = Captured::default();
    let _guard = captured.install();
    transport(&dsn).send(&message(1)).await.unwrap();

    let lines = captured.conversation();
    in_order(
        &lines,
        &[
            "connection=1",
            ">> AUTH XOAUTH2 [redacted]",
            "<< ",
            "connection=2",
            ">> AUTH XOAUTH2 [redacted]",
            "<< 235",
            ">> DATA",
            "<< 250",
        ],
    );
    let log = captured.text();
    let sasl = |token: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!(
            "user=noreply@acme.example\x01auth=Bearer {token}\x01\x01"
        ))
    };
    assert_absent(
        &log,
        &[
            "stale-token-value",
            "fresh-token-value",
            &sasl("stale-token-value"),
            &sasl("fresh-token-value"),
            "client-secret-never-logged",
        ],
    );
}

#[tokio::test]
async fn without_debug_the_conversation_is_not_logged() {
    let peer = SmtpPeer::start(&[]).await;
    let captured = Captured::default();
    let _guard = captured.install();
    let smtp = transport(&format!("smtp://127.0.0.1:{}?tls=none", peer.port));
    smtp.send(&message(1)).await.unwrap();
    assert_eq!(peer.received().len(), 1);
    assert!(captured.conversation().is_empty(), "{}", captured.text());
}

#[tokio::test]
async fn debug_takes_only_yes_or_no() {
    let dsn = mailbridge::transport::Dsn::parse("smtp://127.0.0.1:25?debug=verbose").unwrap();
    let err = mailbridge::transport::from_dsn(&dsn).unwrap_err();
    assert!(err.to_string().contains("debug `verbose`"), "{err}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_quit_after_its_idle_timeout() {
    let peer = SmtpPeer::start(&[]).await;
    let captured = Captured::default();
    let _guard = captured.install();
    let smtp = transport(&format!(
        "smtp://127.0.0.1:{}?tls=none&idle_timeout=200ms&debug=true",
        peer.port
    ));
    smtp.send(&message(1)).await.unwrap();
    // No more mail: the background sweep alone must close it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !captured.conversation().iter().any(|l| l.contains("<< 221")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle connection was not closed:\n{}",
            captured.conversation().join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    in_order(&captured.conversation(), &["<< 250", ">> QUIT", "<< 221"]);
}

/// A server offering AUTH PLAIN and LOGIN that refuses every login with a
/// `535` repeating what it received, as sent and decoded. Returns its port.
async fn echoing_server() -> u16 {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                let decode = |b64: &str| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .unwrap_or_default();
                    String::from_utf8_lossy(&bytes).replace(['\0', '\x01'], " ")
                };
                let mut login_step = 0;
                let _ = write.write_all(b"220 echo ready\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let answer = if upper.starts_with("EHLO") {
                        "250-echo\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n".to_owned()
                    } else if upper.starts_with("AUTH PLAIN ") {
                        let arg = &line["AUTH PLAIN ".len()..];
                        format!("535 5.7.8 refused: {line} ({})\r\n", decode(arg))
                    } else if upper == "AUTH LOGIN" {
                        login_step = 1;
                        "334 VXNlcm5hbWU6\r\n".to_owned()
                    } else if login_step == 1 {
                        login_step = 2;
                        "334 UGFzc3dvcmQ6\r\n".to_owned()
                    } else if login_step == 2 {
                        login_step = 0;
                        format!("535 5.7.8 refused: {line} ({})\r\n", decode(&line))
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        "250 OK\r\n".to_owned()
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_server_echoing_the_login_puts_no_secret_in_the_error_or_the_log() {
    let port = echoing_server().await;
    let captured = Captured::default();
    let _guard = captured.install();
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    for auth in ["plain", "login"] {
        let smtp = transport(&format!(
            "smtp://ada:{PASSWORD}@127.0.0.1:{port}?tls=none&auth={auth}&debug=true"
        ));
        let err = smtp.send(&message(1)).await.unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("535") && shown.contains("[redacted]"),
            "{auth}: {shown}"
        );
        for secret in [
            PASSWORD.to_owned(),
            b64(PASSWORD),
            b64(&format!("\0ada\0{PASSWORD}")),
        ] {
            assert!(!shown.contains(&secret), "{auth}: {shown}");
        }
    }
    assert!(
        captured.conversation().iter().any(|l| l.contains("<< 535")),
        "{}",
        captured.text()
    );
    assert_absent(
        &captured.text(),
        &[
            PASSWORD,
            &b64(PASSWORD),
            &b64(&format!("\0ada\0{PASSWORD}")),
        ],
    );
}
