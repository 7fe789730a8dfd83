//! DKIM on the SMTP transport, checked by an independent verifier (dkimpy)
//! over the bytes a real SMTP server (aiosmtpd) received, with its DNS answer
//! made from the signer's key: RSA and Ed25519 keys, a message with what
//! changes on the way (non-ASCII subject, long lines, bare LF, a line with a
//! leading dot, HTML), and the header list; a changed body fails.

use crate::common;
use crate::smtp_support;

use std::path::{Path, PathBuf};

use mailbridge::email::Mailbox;
use serde_json::Value;
use smtp_support::{SmtpPeer, message, transport};

fn key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dkim")
        .join(name)
}

fn dsn(peer: &SmtpPeer, key_file: &Path) -> String {
    format!(
        "smtp://127.0.0.1:{}?tls=none&dkim_domain=acme.example&dkim_selector=mb2026&dkim_key_file={}",
        peer.port,
        key_file.display()
    )
}

fn verify(eml: &Path, key_file: &Path, tamper: bool) -> Value {
    let mut cmd = std::process::Command::new(common::python());
    cmd.arg(common::peers_dir().join("dkim_verify.py"))
        .arg("--eml")
        .arg(eml)
        .arg("--key")
        .arg(key_file);
    if tamper {
        cmd.arg("--tamper");
    }
    let out = cmd.output().expect("run dkim_verify.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("its JSON line")
}

async fn send_and_verify(key_name: &str, algorithm: &str) {
    let peer = SmtpPeer::start(&[]).await;
    let key_file = key(key_name);
    let smtp = transport(&dsn(&peer, &key_file));
    let mut msg = message(1);
    msg.subject = "Passwort zurücksetzen — ein sehr langer Betreff, der gefaltet werden muss, weil er lang ist".into();
    msg.reply_to = Some(Mailbox::new("support@acme.example"));
    msg.cc = vec![Mailbox::new("grace@example.com")];
    msg.text = Some(format!(
        "Hello\n.leading dot\ntrailing spaces   \n{}\n\n\n",
        "x".repeat(1500)
    ));
    smtp.send(&msg).await.expect("sent");

    let received = peer.received();
    let result = verify(&received[0].path, &key_file, false);
    assert_eq!(result["valid"], true, "{result}");
    let tags = &result["tags"];
    assert_eq!(tags["a"], algorithm);
    assert_eq!(tags["c"], "relaxed/relaxed");
    assert_eq!(tags["d"], "acme.example");
    assert_eq!(tags["s"], "mb2026");
    assert_eq!(
        tags["h"],
        "from:to:cc:subject:date:message-id:mime-version:content-type:reply-to"
    );
    let tampered = verify(&received[0].path, &key_file, true);
    assert_eq!(
        tampered["valid"], false,
        "a changed body must fail: {tampered}"
    );
}

#[tokio::test]
async fn rsa_signatures_verify_after_the_transport_path() {
    send_and_verify("rsa-2048.pem", "rsa-sha256").await;
}

#[tokio::test]
async fn ed25519_signatures_verify_after_the_transport_path() {
    send_and_verify("ed25519.pem", "ed25519-sha256").await;
}

#[test]
fn a_weak_or_missing_key_is_refused_at_start() {
    let dsn = |key: &Path| {
        format!(
            "smtp://127.0.0.1:2525?tls=none&dkim_domain=acme.example&dkim_selector=mb&dkim_key_file={}",
            key.display()
        )
    };
    let parse = |text: &str| {
        mailbridge::transport::from_dsn(&mailbridge::transport::Dsn::parse(text).unwrap())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(parse(&dsn(&key("rsa-1024.pem"))).contains("at least 2048 bits"));
    assert!(parse(&dsn(&key("missing.pem"))).contains("dkim_key_file"));
    let partial = "smtp://127.0.0.1:2525?tls=none&dkim_domain=acme.example";
    assert!(parse(partial).contains("all of dkim_domain"));
}
