//! The console with a sign-in issuer, against a real server on 127.0.0.1:
//! nothing without a session, and a sign-in that cannot complete fails with
//! a page, not a crash. (The full sign-in runs against a real Keycloak in
//! the e2e crate.)

use crate::common;

use common::console::Browser;
use common::server::TestServer;

/// An issuer where nothing listens.
const ISSUER: [(&str, &str); 3] = [
    ("MAILBRIDGE_CONSOLE_ISSUER", "http://127.0.0.1:1/realms/ops"),
    ("MAILBRIDGE_CONSOLE_CLIENT_ID", "mailbridge-console"),
    ("MAILBRIDGE_CONSOLE_URL", "http://127.0.0.1:8090"),
];

#[tokio::test]
async fn without_a_session_pages_lead_to_the_sign_in_and_forms_change_nothing() {
    let server = TestServer::start(&ISSUER).await;
    let mut browser = Browser::new(&server, None);
    for path in ["/console/", "/console/messages", "/console/transports"] {
        let (status, headers, _) = browser.get(path).await;
        assert_eq!(status, 303, "{path}");
        assert_eq!(headers["location"], "/console/signin", "{path}");
        assert!(headers.get("set-cookie").is_none(), "no session is opened");
        let policy = headers["content-security-policy"].to_str().expect("policy");
        assert!(
            policy.contains("form-action 'self' http://127.0.0.1:1;"),
            "{policy}"
        );
    }
    let form = [("csrf", "x"), ("retry", "1")];
    let id = "01a24324-fabc-7115-9c72-a5424ba80f54";
    assert_eq!(
        browser
            .post(&format!("/console/messages/{id}"), &form)
            .await,
        403
    );
    assert_eq!(browser.post("/console/transports/test", &form).await, 403);
}

#[tokio::test]
async fn a_sign_in_that_cannot_complete_answers_with_a_page() {
    let server = TestServer::start(&ISSUER).await;
    let mut browser = Browser::new(&server, None);
    let (status, _, page) = browser.get("/console/signin").await;
    assert_eq!(status, 502, "the issuer is unreachable: {page}");
    assert!(page.contains("Sign-in failed"), "{page}");
    let (status, _, page) = browser.get("/console/callback?code=abc&state=forged").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown or expired"), "{page}");
    let (status, _, _) = browser.get("/console/callback?error=access_denied").await;
    assert_eq!(status, 400);
}
