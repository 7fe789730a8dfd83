//! A message's timeline says where it came from, against a real server on
//! 127.0.0.1: the "accepted" entry names the tenant, the Keycloak realm, the
//! kind of email and the trace of the request that accepted it, when known.

use crate::common;

use common::console::{Browser, console_with};
use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::queue::{NewJob, Origin};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The "accepted" entry of message `id`'s timeline.
async fn accepted(browser: &mut Browser<'_>, id: &str) -> String {
    let (status, _, page) = browser.get(&format!("/console/messages/{id}")).await;
    assert_eq!(status, 200, "{page}");
    let start = page
        .find("<li data-entry=\"accepted\"")
        .expect("an accepted entry");
    let end = page[start..].find("</li>").expect("end of entry");
    page[start..start + end].to_owned()
}

#[tokio::test]
async fn the_accepted_entry_names_tenant_realm_kind_and_trace() {
    let (server, _) = console_with(&[], &[]).await;
    let mut browser = Browser::new(&server, None);

    // From Keycloak: a template for realm acme-prod, accepted for tenant acme.
    let body = json!({
        "tenant": "acme", "to": [{"email": "ada@example.com"}], "template": "password-reset",
        "data": {"link": "https://kc.example/reset?key=abc", "linkExpiration": 5,
                 "realmName": "Acme", "user": {"username": "ada"}},
        "metadata": {"realm": "acme-prod"},
    });
    let resp = server
        .http
        .post(server.url("/v1/messages"))
        .json(&body)
        .send()
        .await
        .expect("accept");
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let entry = accepted(&mut browser, &id).await;
    assert!(
        entry.contains("<strong data-kind>password-reset</strong>"),
        "{entry}"
    );
    assert!(
        entry.contains("<strong data-tenant>acme</strong>"),
        "{entry}"
    );
    assert!(
        entry.contains("<strong data-realm>acme-prod</strong>"),
        "{entry}"
    );
    assert!(!entry.contains("data-trace-id"), "not traced: {entry}");
    assert!(!entry.contains("kc.example"), "never the link: {entry}");

    // A message accepted while traces were exported keeps its trace: stored
    // here through a second handle on the server's own database.
    let url = format!("sqlite://{}/mb.db", server.dir.path().display());
    let store = mailbridge::queue::open(&url).await.expect("the store");
    let message = OutgoingMessage::plain(
        "globex",
        Mailbox::new("no-reply@globex.example"),
        Mailbox::new("bob@globex.example"),
        "Hi",
        "Hello",
    );
    let message_id = message.id;
    let traced = NewJob {
        message,
        idempotency_key: None,
        transport: "default".into(),
        now: OffsetDateTime::now_utc(),
        lease: None,
        origin: Origin {
            realm: None,
            kind: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        },
        limits: Vec::new(),
    };
    store.enqueue(traced).await.expect("enqueue");
    let entry = accepted(&mut browser, &message_id.to_string()).await;
    assert!(
        entry.contains("<code data-trace-id>4bf92f3577b34da6a3ce929d0e0e4736</code>"),
        "{entry}"
    );
    assert!(
        !entry.contains("00f067aa0ba902b7"),
        "the trace, not the span: {entry}"
    );
    assert!(
        !entry.contains("data-realm") && !entry.contains("data-kind"),
        "{entry}"
    );
    assert!(
        entry.contains("<strong data-tenant>globex</strong>"),
        "{entry}"
    );
}
