//! The file transport (`file://DIR`): one parseable `.eml` per message.

use crate::smtp_support;

use mailbridge::email::Mailbox;
use smtp_support::{message, parse_eml, transport};

#[tokio::test]
async fn writes_one_parseable_eml_per_message() {
    let root = tempfile::TempDir::new().unwrap();
    let dir = root.path().join("outbox/new");
    let smtp = transport(&format!("file://{}", dir.display()));
    let mut msg = message(1);
    msg.bcc = vec![Mailbox::new("audit@acme.example")];
    msg.html = None;

    let delivery = smtp.send(&msg).await.unwrap();
    smtp.send(&message(2)).await.unwrap();

    let path = dir.join(format!("{}.eml", msg.id));
    assert_eq!(
        delivery.provider_message_id.as_deref(),
        Some(path.display().to_string().as_str())
    );
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n.ends_with(".eml")),
        "left a temporary file: {names:?}"
    );

    let eml = parse_eml(&path);
    let expected_id = format!("<{}>", msg.message_id);
    assert_eq!(eml.header("message-id"), Some(expected_id.as_str()));
    assert_eq!(eml.header("subject"), Some("Message 1"));
    assert_eq!(eml.header("to"), Some("ada@example.com"));
    assert_eq!(eml.header("bcc"), None);
    assert_eq!(eml.content_type, "text/plain");
    assert_eq!(eml.parts[0].body.trim_end(), "Hello 1");
}
