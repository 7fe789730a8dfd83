//! The console against a real server on 127.0.0.1: who may see and do what,
//! CSRF, the security headers, the timeline of attempts, and the filters.
//! (The browser tests with a real Keycloak sign-in live in the e2e crate.)

use crate::common;

use std::time::Duration;

use common::console::{Browser, accept, console, count, csrf, wait_status};
use common::server::TestServer;
use mailbridge::console::session::Viewer;
use serde_json::Value;

#[tokio::test]
async fn without_insecure_no_auth_or_an_issuer_there_is_no_console() {
    let server = TestServer::start(&[]).await;
    let mut browser = Browser::new(&server, None);
    for path in [
        "/console/",
        "/console/messages",
        "/console/assets/console.css",
    ] {
        let (status, _, _) = browser.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(browser.post("/console/messages/retry", &[]).await, 404);
    // Another method on a console page: no console either, not a 405.
    let answer = server
        .http
        .delete(server.url("/console/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
}

/// A method a page does not take is answered by the console's own page, with
/// its security headers; the API's routes answer problem+json as before.
#[tokio::test]
async fn a_method_a_page_does_not_take_is_the_consoles_405() {
    let (server, _) = console(&[]).await;
    for path in ["/console/messages", "/console/templates/test", "/console/"] {
        let answer = server.http.delete(server.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 405, "{path}");
        let headers = answer.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
    let answer = server
        .http
        .delete(server.url("/v1/render"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 405);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn every_page_forbids_inline_code_frames_and_other_origins() {
    let (server, _) = console(&[]).await;
    let mut browser = Browser::new(&server, None);
    for path in ["/console/", "/console/messages", "/console/nothing-here"] {
        let (_, headers, _) = browser.get(path).await;
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let (status, headers, page) = Browser::new(&server, None).get("/console/").await;
    assert_eq!(status, 200);
    let cookie = headers["set-cookie"].to_str().expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "nothing inline"
    );
}

#[tokio::test]
async fn malformed_paths_forms_and_queries_get_the_consoles_own_page() {
    let (server, _) = console(&[]).await;
    let mut browser = Browser::new(&server, None);
    let (_, _, overview) = browser.get("/console/").await;
    let token = csrf(&overview);
    let id = "0190f3a0-0000-7000-8000-000000000000";
    let answers = [
        browser.get("/console/messages/%ff").await,
        browser.get("/console/assets/%ff%fe").await,
        browser.get("/console/templates?tenant=a&tenant=b").await,
        browser
            .submit(&format!("/console/messages/{id}"), &[("retry", "1")])
            .await,
        browser
            .submit("/console/messages/%ff", &[("csrf", token.as_str())])
            .await,
    ];
    for (i, (status, headers, page)) in answers.into_iter().enumerate() {
        assert!((400..500).contains(&status), "{i}: {status} {page}");
        let kind = headers["content-type"].to_str().expect("type");
        assert!(kind.starts_with("text/html"), "{i}: {kind}: {page}");
        assert!(page.contains(&format!("<h1>{status}</h1>")), "{i}: {page}");
        assert!(!page.contains("<script"), "{i}: {page}");
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("default-src 'none'"), "{i}: {csp}");
    }
}

#[tokio::test]
async fn a_failed_message_shows_its_attempts_and_a_retry_adds_more() {
    let (server, _) = console(&[]).await;
    let id = accept(&server, "acme", "ada@example.com").await;
    wait_status(&server, &id, "failed").await;
    let mut browser = Browser::new(&server, None);
    let (_, _, list) = browser.get("/console/messages?status=failed").await;
    assert!(
        list.contains(&format!("tr data-message-id=\"{id}\"")),
        "{list}"
    );
    let (status, _, page) = browser.get(&format!("/console/messages/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(count(&page, "data-entry=\"attempt\""), 2, "{page}");
    assert!(page.contains("data-outcome=\"failed\""));
    assert!(
        page.contains("127.0.0.1:1"),
        "the server's answer is shown: {page}"
    );
    assert!(page.contains("button type=\"submit\" name=\"retry\""));
    assert!(!page.contains("secret body"), "never the body");

    let path = format!("/console/messages/{id}");
    let status = browser
        .post(&path, &[("csrf", &csrf(&page)), ("retry", "1")])
        .await;
    assert_eq!(status, 303);
    // The retried message fails again after two more attempts.
    let mut attempts = 0;
    for _ in 0..200 {
        let (_, _, page) = browser.get(&path).await;
        attempts = count(&page, "data-entry=\"attempt\"");
        if attempts == 4 && page.contains("status-failed\">failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts, 4);
}

#[tokio::test]
async fn a_post_without_the_sessions_token_changes_nothing() {
    let (server, _) = console(&[]).await;
    let id = accept(&server, "acme", "ada@example.com").await;
    wait_status(&server, &id, "failed").await;
    let mut browser = Browser::new(&server, None);
    let path = format!("/console/messages/{id}");
    let (_, _, page) = browser.get(&path).await;
    let token = csrf(&page);
    assert_eq!(browser.post(&path, &[("retry", "1")]).await, 403);
    assert_eq!(
        browser
            .post(&path, &[("csrf", "forged"), ("retry", "1")])
            .await,
        403
    );
    // Another browser's valid token is not this session's.
    let mut other = Browser::new(&server, None);
    assert_eq!(
        other
            .post(&path, &[("csrf", &token), ("delete", "1")])
            .await,
        403
    );
    assert_eq!(
        browser
            .post("/console/messages/retry", &[("status", "failed")])
            .await,
        403
    );
    let record = wait_status(&server, &id, "failed").await;
    assert_eq!(record["attempts"], 2, "nothing was retried");
}

#[tokio::test]
async fn a_tenant_viewer_sees_and_does_nothing_outside_their_tenant() {
    let (server, sessions) = console(&[Viewer::from_roles("ada", ["tenant:acme"])]).await;
    let ours = accept(&server, "acme", "ada@acme.example").await;
    let theirs = accept(&server, "globex", "bob@globex.example").await;
    wait_status(&server, &ours, "failed").await;
    wait_status(&server, &theirs, "failed").await;
    let (session, token) = sessions[0].clone();
    let mut browser = Browser::new(&server, Some(session));

    let (_, _, list) = browser.get("/console/messages").await;
    assert!(
        list.contains(&format!("data-message-id=\"{ours}\"")),
        "{list}"
    );
    assert!(!list.contains(&theirs), "{list}");
    assert!(
        !list.contains("name=\"bulk_retry\""),
        "read-only: no bulk retry"
    );
    let (_, _, overview) = browser.get("/console/").await;
    assert!(overview.contains("data-tenant=\"acme\""));
    assert!(!overview.contains("globex"), "{overview}");

    // Forged URLs.
    let (status, _, _) = browser.get(&format!("/console/messages/{theirs}")).await;
    assert_eq!(status, 404);
    let (status, _, _) = browser.get("/console/messages?tenant=globex").await;
    assert_eq!(status, 404);

    // Forged form posts, with this session's own valid token.
    let (status, _, page) = browser.get(&format!("/console/messages/{ours}")).await;
    assert_eq!(status, 200);
    assert!(!page.contains("name=\"retry\"") && !page.contains("name=\"delete\""));
    for id in [&ours, &theirs] {
        let path = format!("/console/messages/{id}");
        assert_eq!(
            browser
                .post(&path, &[("csrf", &token), ("retry", "1")])
                .await,
            403
        );
        assert_eq!(
            browser
                .post(&path, &[("csrf", &token), ("delete", "1")])
                .await,
            403
        );
    }
    let bulk = [("csrf", token.as_str()), ("tenant", "globex")];
    assert_eq!(browser.post("/console/messages/retry", &bulk).await, 403);
    for id in [&ours, &theirs] {
        assert_eq!(wait_status(&server, id, "failed").await["attempts"], 2);
    }
}

#[tokio::test]
async fn messages_are_found_by_recipient_exactly_or_by_prefix() {
    let (server, _) = console(&[]).await;
    let ada = accept(&server, "acme", "Ada@Example.com").await;
    let adam = accept(&server, "acme", "adam@example.com").await;
    let bob = accept(&server, "acme", "bob@example.com").await;
    let mut browser = Browser::new(&server, None);
    let (_, _, exact) = browser.get("/console/messages?to=ada%40example.com").await;
    assert!(
        exact.contains(&ada) && !exact.contains(&adam) && !exact.contains(&bob),
        "{exact}"
    );
    let (_, _, prefix) = browser.get("/console/messages?to=ada*").await;
    assert!(
        prefix.contains(&ada) && prefix.contains(&adam) && !prefix.contains(&bob),
        "{prefix}"
    );
}

#[tokio::test]
async fn messages_are_found_by_day_to_the_last_one_there_is() {
    let (server, _) = console(&[]).await;
    let ada = accept(&server, "acme", "ada@example.com").await;
    let mut browser = Browser::new(&server, None);
    // The last day `time` knows: the day after it is not a bound to add.
    for query in [
        "until=9999-12-31",
        "since=2000-01-01&until=9999-12-31",
        "since=-9999-01-01",
    ] {
        let (status, _, page) = browser.get(&format!("/console/messages?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert!(page.contains(&ada), "{query}: {page}");
    }
    let (status, _, page) = browser.get("/console/messages?until=2000-01-01").await;
    assert_eq!(status, 200);
    assert!(!page.contains(&ada), "{page}");
}

#[tokio::test]
async fn messages_are_found_by_transport() {
    let (server, _) = console(&[]).await;
    let ada = accept(&server, "acme", "ada@example.com").await;
    let mut browser = Browser::new(&server, None);
    let (_, _, by_default) = browser.get("/console/messages?transport=default").await;
    assert!(by_default.contains(&ada), "{by_default}");
    // The application's webhooks and Keycloak feedback are rows of their own transports.
    let (_, _, webhooks) = browser.get("/console/messages?transport=webhook").await;
    assert!(
        !webhooks.contains(&ada) && webhooks.contains("No messages match"),
        "{webhooks}"
    );
    let (_, _, overview) = browser.get("/console/").await;
    assert!(
        overview.contains("href=\"/console/messages?transport=default\""),
        "the overview links each transport to its messages: {overview}"
    );
}

#[tokio::test]
async fn the_overview_counts_what_the_api_lists() {
    let (server, _) = console(&[]).await;
    let mut ids = Vec::new();
    for to in ["a@example.com", "b@example.com", "c@example.com"] {
        ids.push(accept(&server, "acme", to).await);
    }
    for id in &ids {
        wait_status(&server, id, "failed").await;
    }
    let listed: Value = server
        .http
        .get(server.url("/v1/messages?status=failed"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let failed = listed["messages"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    assert_eq!(failed, 3, "{listed}");
    let (_, _, page) = Browser::new(&server, None)
        .get("/console/?part=figures")
        .await;
    assert!(
        page.contains(&format!(
            "data-status=\"failed\"><a href=\"/console/messages?status=failed\">{failed}</a>"
        )),
        "{page}"
    );
}
