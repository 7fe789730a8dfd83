//! The console's view of what happens after sending: the providers' delivery
//! events in a message's timeline, and the suppression list, which admins
//! change (with the session's CSRF token) and tenant viewers only read.

use crate::common;

use common::console::{Browser, console_with, count, csrf};
use common::server::TestServer;
use mailbridge::console::session::Viewer;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use wiremock::MockServer;

/// A console server whose tenants `acme` and `globex` send through Postmark;
/// `viewers` get sessions (id, CSRF token).
async fn start(
    mock: &MockServer,
    viewers: &[Viewer],
) -> (TestServer, Vec<(String, String)>, tempfile::TempDir) {
    let uri =
        percent_encoding::utf8_percent_encode(&mock.uri(), percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let config = format!(
        r#"
[transports]
pm = "postmark+api://pm-token@default?endpoint={uri}&webhook_key=hooks%3Apm-pass"
[tenants.acme]
transport = "pm"
[tenants.globex]
transport = "pm"
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    let env = [("MAILBRIDGE_CONFIG", file.to_str().unwrap())];
    let (server, sessions) = console_with(&env, viewers).await;
    (server, sessions, dir)
}

/// Sends one message as `tenant` and waits until it is sent; answers its id.
async fn send(server: &TestServer, tenant: &str) -> String {
    let resp = server
        .http
        .post(server.url("/v1/messages?wait=true"))
        .json(
            &json!({"tenant": tenant, "to": [{"email": "ada@example.com"}],
            "subject": "Verify", "text": "secret body"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Postmark reports a hard bounce of its message `pm-msg`, now.
async fn bounce(server: &TestServer) {
    let now = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let event = json!({"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1,
        "MessageID": "pm-msg", "Email": "ada@example.com", "BouncedAt": now,
        "Details": "smtp;550 5.1.1 unknown user"});
    let resp = common::postmark::post_event(server, &event).await;
    assert_eq!(resp.status().as_u16(), 200);
}

/// The API's suppression list of `tenant`, as `tenant/email`.
async fn listed(server: &TestServer, tenant: &str) -> Vec<String> {
    let answer: Value = server
        .http
        .get(server.url(&format!("/v1/suppressions?tenant={tenant}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["tenant"].as_str().unwrap(),
                s["email"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_providers_bounce_shows_in_the_timeline_after_the_attempt() {
    let mock = common::postmark::send_api().await;
    let (server, _, _dir) = start(&mock, &[]).await;
    let id = send(&server, "acme").await;
    let mut browser = Browser::new(&server, None);
    let path = format!("/console/messages/{id}");
    let (_, _, before) = browser.get(&path).await;
    assert_eq!(count(&before, "data-entry=\"event\""), 0, "{before}");

    bounce(&server).await;
    let (status, _, page) = browser.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(count(&page, "data-entry=\"event\""), 1, "{page}");
    let event = page.find("data-event=\"bounced\"").expect("the bounce");
    let attempt = page.find("data-entry=\"attempt\"").expect("the attempt");
    assert!(attempt < event, "in time order: {page}");
    let entry = &page[event..];
    let entry = &entry[..entry.find("</li>").unwrap()];
    assert!(entry.contains("bounced (hard)"), "{entry}");
    assert!(entry.contains("ada@example.com"), "{entry}");
    assert!(entry.contains("550 5.1.1 unknown user"), "{entry}");
    assert!(entry.contains("<time>"), "{entry}");
}

#[tokio::test]
async fn a_hard_bounce_puts_the_address_on_the_suppressions_page() {
    let mock = common::postmark::send_api().await;
    let (server, _, _dir) = start(&mock, &[]).await;
    let id = send(&server, "acme").await;
    bounce(&server).await;
    let mut browser = Browser::new(&server, None);
    let (status, _, page) = browser.get("/console/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("href=\"/console/suppressions\""),
        "navigation"
    );
    let (status, _, page) = browser.get("/console/suppressions?tenant=acme").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-suppression=\"acme/ada@example.com\""),
        "{page}"
    );
    // A name no tenant can have is no tenant's list (PostgreSQL refuses a NUL).
    for tenant in ["%00", "a%2Fb"] {
        let (status, _, _) = browser
            .get(&format!("/console/suppressions?tenant={tenant}"))
            .await;
        assert_eq!(status, 404, "{tenant}");
    }
    assert!(page.contains(&format!("/console/messages/{id}")), "{page}");
}

#[tokio::test]
async fn an_admin_adds_and_removes_an_address_and_the_api_sees_it() {
    let mock = common::postmark::send_api().await;
    let (server, _, _dir) = start(&mock, &[]).await;
    let mut browser = Browser::new(&server, None);
    let (_, _, page) = browser.get("/console/suppressions").await;
    assert!(!page.contains("data-suppression="), "{page}");
    let token = csrf(&page);

    let add = [
        ("csrf", token.as_str()),
        ("tenant", "acme"),
        ("email", "Bob@Example.COM"),
        ("add", "1"),
    ];
    let (status, headers, _) = browser.submit("/console/suppressions", &add).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/console/suppressions?tenant=acme");
    assert_eq!(listed(&server, "acme").await, ["acme/bob@example.com"]);
    let (_, _, page) = browser.get("/console/suppressions?tenant=acme").await;
    assert!(
        page.contains("data-suppression=\"acme/bob@example.com\""),
        "{page}"
    );
    assert!(
        page.contains("button type=\"submit\" name=\"remove\""),
        "{page}"
    );

    // A viewer filtering by another tenant does not see it.
    let (_, _, page) = browser.get("/console/suppressions?tenant=globex").await;
    assert!(!page.contains("data-suppression="), "{page}");

    let remove = [
        ("csrf", token.as_str()),
        ("tenant", "acme"),
        ("email", "Bob@example.com"),
        ("remove", "1"),
    ];
    assert_eq!(browser.post("/console/suppressions", &remove).await, 303);
    assert!(listed(&server, "acme").await.is_empty());

    // Bad input is a 400 page, and nothing is listed.
    let bad = [
        ("csrf", token.as_str()),
        ("tenant", "acme"),
        ("email", "not an address"),
        ("add", "1"),
    ];
    assert_eq!(browser.post("/console/suppressions", &bad).await, 400);
    assert!(listed(&server, "acme").await.is_empty());
}

#[tokio::test]
async fn without_the_token_or_as_a_tenant_viewer_nothing_changes() {
    let mock = common::postmark::send_api().await;
    let viewers = [Viewer::from_roles("ada", ["tenant:acme"])];
    let (server, sessions, _dir) = start(&mock, &viewers).await;
    let mut admin = Browser::new(&server, None);
    let (_, _, page) = admin.get("/console/suppressions").await;
    let token = csrf(&page);
    for (tenant, email) in [("acme", "bob@example.com"), ("globex", "carol@example.com")] {
        let add = [
            ("csrf", token.as_str()),
            ("tenant", tenant),
            ("email", email),
            ("add", "1"),
        ];
        assert_eq!(admin.post("/console/suppressions", &add).await, 303);
    }
    let no_token = [
        ("tenant", "acme"),
        ("email", "dan@example.com"),
        ("add", "1"),
    ];
    assert_eq!(admin.post("/console/suppressions", &no_token).await, 403);
    let forged = [
        ("csrf", "forged"),
        ("tenant", "acme"),
        ("email", "bob@example.com"),
        ("remove", "1"),
    ];
    assert_eq!(admin.post("/console/suppressions", &forged).await, 403);
    assert_eq!(listed(&server, "acme").await, ["acme/bob@example.com"]);

    let (session, viewer_token) = sessions[0].clone();
    let mut viewer = Browser::new(&server, Some(session));
    let (status, _, page) = viewer.get("/console/suppressions").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-suppression=\"acme/bob@example.com\""),
        "{page}"
    );
    assert!(
        !page.contains("carol@example.com"),
        "only their tenant: {page}"
    );
    assert!(
        !page.contains("name=\"remove\"") && !page.contains("name=\"add\""),
        "read-only: {page}"
    );
    let (status, _, _) = viewer.get("/console/suppressions?tenant=globex").await;
    assert_eq!(status, 404);
    for (tenant, button) in [("acme", "remove"), ("globex", "remove"), ("acme", "add")] {
        let form = [
            ("csrf", viewer_token.as_str()),
            ("tenant", tenant),
            ("email", "bob@example.com"),
            (button, "1"),
        ];
        assert_eq!(
            viewer.post("/console/suppressions", &form).await,
            403,
            "{tenant} {button}"
        );
    }
    assert_eq!(listed(&server, "acme").await, ["acme/bob@example.com"]);
    assert_eq!(
        listed(&server, "globex").await,
        ["globex/carol@example.com"]
    );
}
