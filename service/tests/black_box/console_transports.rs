//! The console's transports page against a real server on 127.0.0.1: health
//! from the attempts, and a test send that shows the server's answer.

use crate::common;

use common::console::{Browser, accept, console, csrf, wait_status};
use common::server::TestServer;
use mailbridge::console::session::Viewer;
use mailbridge::server::AuthMode;

/// The row of transport `name` on the page.
fn row<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!("data-transport=\"{name}\""))
        .expect("the transport's row");
    let end = page[start..].find("</tr>").expect("end of row");
    &page[start..start + end]
}

#[tokio::test]
async fn a_refusing_transport_shows_failing_and_a_test_shows_its_answer() {
    let (server, sessions) = console(&[Viewer::from_roles("ada", ["tenant:acme"])]).await;
    let id = accept(&server, "acme", "ada@example.com").await;
    wait_status(&server, &id, "failed").await;
    let mut browser = Browser::new(&server, None);
    let (status, _, page) = browser.get("/console/transports").await;
    assert_eq!(status, 200);
    let default = row(&page, "default");
    assert!(default.contains("class=\"failing\""), "{default}");
    assert!(
        default.contains("data-figure=\"consecutive-failures\">2<"),
        "{default}"
    );
    assert!(
        default.contains("127.0.0.1:1"),
        "the last answer: {default}"
    );

    let token = csrf(&page);
    let form = [
        ("csrf", token.as_str()),
        ("transport", "default"),
        ("to", "ops@example.com"),
    ];
    let (status, _, page) = browser.submit("/console/transports/test", &form).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-test-result=\"failed\""), "{page}");
    assert!(page.contains("127.0.0.1:1"), "the server's answer: {page}");
    assert!(row(&page, "default").contains("consecutive-failures\">3<"));

    assert_eq!(
        browser.post("/console/transports/test", &form[1..]).await,
        403,
        "no token"
    );
    // Webhooks and Keycloak feedback are listed, but are no mail transports.
    let (_, _, page) = browser.get("/console/transports").await;
    assert!(!page.contains("<option>webhook</option>"), "{page}");
    for notice in ["webhook", "keycloak"] {
        let form = [
            ("csrf", token.as_str()),
            ("transport", notice),
            ("to", "ops@example.com"),
        ];
        assert_eq!(browser.post("/console/transports/test", &form).await, 404);
    }
    let (session, own_token) = sessions[0].clone();
    let mut viewer = Browser::new(&server, Some(session));
    let (_, _, page) = viewer.get("/console/transports").await;
    assert!(!page.contains("name=\"test\""), "read-only: no test form");
    // A transport serves every tenant: its last answer may name another's
    // recipient, so a tenant's viewer sees that it failed, not what it said.
    let default = row(&page, "default");
    assert!(default.contains("class=\"failing\""), "{default}");
    assert!(default.contains("data-answer-hidden"), "{default}");
    assert!(!default.contains("127.0.0.1:1"), "{default}");
    let forged = [
        ("csrf", own_token.as_str()),
        ("transport", "default"),
        ("to", "ops@example.com"),
    ];
    assert_eq!(viewer.post("/console/transports/test", &forged).await, 403);
}

/// Five refusals in a row: the page says the transport is held, and a
/// message accepted then waits without spending an attempt.
#[tokio::test]
async fn a_transport_that_is_down_shows_held() {
    let (server, _) = console(&[]).await;
    for _ in 0..5 {
        accept(&server, "acme", "ada@example.com").await;
    }
    let mut browser = Browser::new(&server, None);
    let mut page = String::new();
    for _ in 0..100 {
        page = browser.get("/console/transports").await.2;
        if row(&page, "default").contains("data-held") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(row(&page, "default").contains("held: down"), "{page}");
    // The hold lasts MAILBRIDGE_RETRY_BASE (5 s) from the fifth refusal.
    let id = accept(&server, "acme", "ada@example.com").await;
    let record = wait_status(&server, &id, "retrying").await;
    assert_eq!(record["attempts"], 0, "{record}");
    assert_eq!(record["last_error"], serde_json::Value::Null, "{record}");
}

#[tokio::test]
async fn a_test_through_a_working_transport_is_delivered() {
    let server = TestServer::start_as(&[], AuthMode::InsecureNoAuth, |_| {}).await;
    let mut browser = Browser::new(&server, None);
    let (_, _, page) = browser.get("/console/transports").await;
    assert!(row(&page, "default").contains("never"), "{page}");
    let token = csrf(&page);
    let form = [
        ("csrf", token.as_str()),
        ("transport", "default"),
        ("to", "ops@example.com"),
    ];
    let (status, _, page) = browser.submit("/console/transports/test", &form).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-test-result=\"delivered\""), "{page}");
    let default = row(&page, "default");
    assert!(default.contains("consecutive-failures\">0<"), "{default}");
    let outbox = std::fs::read_dir(server.dir.path().join("outbox"))
        .expect("outbox")
        .count();
    assert_eq!(outbox, 1, "the test message was written");
    let unknown = [
        ("csrf", token.as_str()),
        ("transport", "nope"),
        ("to", "a@b.example"),
    ];
    assert_eq!(
        browser.post("/console/transports/test", &unknown).await,
        404
    );
}
