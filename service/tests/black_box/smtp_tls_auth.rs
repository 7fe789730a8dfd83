//! TLS (STARTTLS, implicit TLS, a private CA) and password authentication
//! against a real SMTP server.

use crate::smtp_support;

use mailbridge::transport::TransportError;
use smtp_support::{SmtpPeer, make_certs, message, path_in, transport};
use tempfile::TempDir;

async fn tls_peer(certs: &TempDir, extra: &[&str]) -> SmtpPeer {
    let (cert, key) = (path_in(certs, "server.pem"), path_in(certs, "server.key"));
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    SmtpPeer::start(&args).await
}

#[tokio::test]
async fn starttls_with_a_private_ca() {
    let certs = make_certs();
    let peer = tls_peer(&certs, &["--require-starttls"]).await;
    let ca = path_in(&certs, "ca.pem");
    let smtp = transport(&format!(
        "smtp://127.0.0.1:{}?tls=required&ca_file={ca}",
        peer.port
    ));
    smtp.send(&message(1)).await.unwrap();
    let received = peer.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls, "message travelled unencrypted");
}

#[tokio::test]
async fn starttls_required_refuses_a_server_without_it() {
    let peer = SmtpPeer::start(&[]).await;
    let smtp = transport(&format!("smtp://127.0.0.1:{}?tls=required", peer.port));
    let err = smtp.send(&message(1)).await.unwrap_err();
    assert!(err.detail().contains("STARTTLS"), "{err}");
    assert!(err.is_transient(), "{err:?}");
    assert!(peer.received().is_empty(), "sent in plain text");
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let certs = make_certs();
    let peer = tls_peer(&certs, &[]).await;
    // No ca_file: the test CA is not among the trusted roots.
    let smtp = transport(&format!("smtp://127.0.0.1:{}?tls=required", peer.port));
    let err = smtp.send(&message(1)).await.unwrap_err();
    assert!(err.detail().to_lowercase().contains("certificate"), "{err}");
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn loopback_relay_uses_starttls_when_offered() {
    let certs = make_certs();
    let peer = tls_peer(&certs, &[]).await;
    // A local relay with a self-signed certificate, no options at all.
    transport(&format!("smtp://127.0.0.1:{}", peer.port))
        .send(&message(1))
        .await
        .unwrap();
    assert!(peer.received()[0].tls);

    let plain = SmtpPeer::start(&[]).await;
    transport(&format!("smtp://127.0.0.1:{}", plain.port))
        .send(&message(2))
        .await
        .unwrap();
    assert!(!plain.received()[0].tls);
}

#[tokio::test]
async fn implicit_tls() {
    let certs = make_certs();
    let peer = tls_peer(&certs, &["--implicit-tls"]).await;
    let ca = path_in(&certs, "ca.pem");
    transport(&format!("smtps://127.0.0.1:{}?ca_file={ca}", peer.port))
        .send(&message(1))
        .await
        .unwrap();
    assert!(peer.received()[0].tls);
}

#[tokio::test]
async fn auth_plain_and_login() {
    let certs = make_certs();
    let password = "p@ss w:rd/ü";
    let peer = tls_peer(&certs, &["--auth-user", "mailer", "--auth-pass", password]).await;
    let ca = path_in(&certs, "ca.pem");
    for mechanism in ["", "&auth=login"] {
        let dsn = format!(
            "smtp://mailer:p%40ss%20w%3Ard%2F%C3%BC@127.0.0.1:{}?tls=required&ca_file={ca}{mechanism}",
            peer.port
        );
        transport(&dsn).send(&message(1)).await.unwrap();
    }
    let received = peer.received();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|r| r.auth_user.as_deref() == Some("mailer"))
    );
}

#[tokio::test]
async fn wrong_password_is_an_auth_failure_without_the_password() {
    let peer = SmtpPeer::start(&["--auth-user", "mailer", "--auth-pass", "right"]).await;
    let smtp = transport(&format!(
        "smtp://mailer:Wr0ngSecret@127.0.0.1:{}?tls=none",
        peer.port
    ));
    let err = smtp.send(&message(1)).await.unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    assert!(
        err.detail()
            .contains("535 5.7.8 Authentication credentials invalid"),
        "{err}"
    );
    for text in [err.to_string(), format!("{err:?}"), format!("{smtp:?}")] {
        assert!(!text.contains("Wr0ngSecret"), "password leaked: {text}");
    }
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn missing_credentials_are_an_auth_failure() {
    let peer = SmtpPeer::start(&["--auth-user", "mailer", "--auth-pass", "right"]).await;
    let err = transport(&format!("smtp://127.0.0.1:{}?tls=none", peer.port))
        .send(&message(1))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    assert!(err.detail().contains("530"), "{err}");
}
