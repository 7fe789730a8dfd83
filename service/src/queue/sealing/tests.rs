//! Sealing rules, each with the row that breaks it.

use super::*;
use crate::email::Mailbox;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn message(id: Uuid) -> OutgoingMessage {
    OutgoingMessage {
        id,
        tenant: "acme".into(),
        message_id: "abc@acme.example".into(),
        from: Mailbox::new("no-reply@acme.example"),
        envelope_from: None,
        reply_to: None,
        to: vec![Mailbox::new("ada@example.com")],
        cc: vec![],
        bcc: vec![],
        subject: "Reset SECRET-SUBJECT".into(),
        text: Some("https://sso.example/reset?key=SECRET-LINK".into()),
        html: None,
        tags: vec![],
        metadata: Default::default(),
    }
}

#[test]
fn seals_and_opens_without_plain_text() {
    let keys = Keyring::parse(K1).unwrap();
    let id = Uuid::now_v7();
    let stored = keys.seal(&message(id)).unwrap();
    let text = stored.to_string();
    assert!(!text.contains("SECRET"), "{text}");
    assert_eq!(Keyring::sealed_with(&stored).as_deref(), Some("k1"));
    assert_eq!(open(Some(&keys), id, stored).unwrap(), message(id));
    let again = keys.seal(&message(id)).unwrap();
    assert_ne!(again, keys.seal(&message(id)).unwrap(), "a nonce per seal");
}

#[test]
fn a_sealed_body_does_not_open_in_another_row() {
    let keys = Keyring::parse(K1).unwrap();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let stored_a = keys.seal(&message(a)).unwrap();
    let err = open(Some(&keys), b, stored_a).unwrap_err();
    assert!(matches!(err, OpenError::Damaged(_)), "{err:?}");
    assert!(err.to_string().contains("another row"), "{err}");
}

#[test]
fn old_keys_open_and_the_first_seals() {
    let old = Keyring::parse(K1).unwrap();
    let id = Uuid::now_v7();
    let stored = old.seal(&message(id)).unwrap();
    let rotated = Keyring::parse(&format!("{K2},{K1}")).unwrap();
    assert_eq!(rotated.primary(), "k2");
    assert_eq!(
        open(Some(&rotated), id, stored.clone()).unwrap(),
        message(id)
    );
    let only_new = Keyring::parse(K2).unwrap();
    // A key this process does not hold is told apart from damage: the
    // claim leaves such a row for a replica that holds the key.
    let err = open(Some(&only_new), id, stored.clone()).unwrap_err();
    assert!(matches!(&err, OpenError::KeyNotHeld { kid, keys_set: true } if kid == "k1"));
    assert!(err.to_string().contains("key `k1`"), "{err}");
    let err = open(None, id, stored).unwrap_err();
    assert!(matches!(
        &err,
        OpenError::KeyNotHeld {
            keys_set: false,
            ..
        }
    ));
    assert!(
        err.to_string().contains("no MAILBRIDGE_ENCRYPTION_KEYS"),
        "{err}"
    );
}

#[test]
fn plain_rows_still_open() {
    let id = Uuid::now_v7();
    let plain = serde_json::to_value(message(id)).unwrap();
    let keys = Keyring::parse(K1).unwrap();
    assert_eq!(open(Some(&keys), id, plain).unwrap(), message(id));
}

#[test]
fn clear_errors_without_the_key() {
    for (text, expected) in [
        ("k1", "not `id:base64key`"),
        (":AAAA", "unusable id"),
        ("k1:not base64!", "not valid base64"),
        ("k1:AAAA", "exactly 32"),
        (&format!("{K1},{K1}"), "twice"),
    ] {
        let err = Keyring::parse(text).unwrap_err().0;
        assert!(err.contains(expected), "{text}: {err}");
        assert!(!err.contains("AAECAwQF"), "no key in errors: {err}");
    }
}
