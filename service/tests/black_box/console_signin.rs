//! The console with a sign-in issuer, against a real server on 127.0.0.1:
//! nothing without a session, a sign-in that cannot complete fails with a
//! page, not a crash, and a sign-in completes only in the browser that began
//! it (against a stand-in for the realm; the full sign-in runs against a
//! real Keycloak in the e2e crate).

use crate::common;

use common::console::Browser;
use common::issuer::Issuer;
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

/// The sign-in cookie's name.
const SIGN_IN: &str = "mailbridge_console_signin";

/// Where the console says it is (its `url`).
const CONSOLE: &str = "http://127.0.0.1:8090";

/// A console that signs in at `issuer`, where `mallory` is logged in.
async fn console_at(issuer: &Issuer) -> TestServer {
    console_at_url(issuer, CONSOLE).await
}

/// The same, saying it is at `url`.
async fn console_at_url(issuer: &Issuer, url: &str) -> TestServer {
    let settings = issuer.settings(url);
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestServer::start(&env).await
}

/// `browser` begins a sign-in and passes the issuer; answers the callback
/// link the issuer sends it back with (path and query).
async fn callback_link(browser: &mut Browser<'_>) -> String {
    callback_link_to(browser, CONSOLE).await
}

/// The same, for a console at `console`.
async fn callback_link_to(browser: &mut Browser<'_>, console: &str) -> String {
    let (status, headers, _) = browser.get("/console/signin").await;
    assert_eq!(status, 303);
    let issuer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let at_issuer = headers["location"].to_str().expect("location");
    let back = issuer.get(at_issuer).send().await.expect("issuer");
    let back = back.headers()["location"].to_str().expect("callback");
    let link = back.strip_prefix(console).expect("to the console");
    assert!(link.starts_with("/console/callback?code="), "{link}");
    link.to_owned()
}

#[tokio::test]
async fn a_sign_in_completes_in_the_browser_that_began_it() {
    let issuer = Issuer::start("ada", &["admin"]).await;
    let server = console_at(&issuer).await;
    let mut browser = Browser::new(&server, None);
    let (_, headers, _) = browser.get("/console/signin").await;
    let cookie = headers["set-cookie"].to_str().expect("cookie");
    assert!(cookie.starts_with(&format!("{SIGN_IN}=")), "{cookie}");
    for flag in [
        "; Path=/console",
        "; HttpOnly",
        "; SameSite=Lax",
        "; Max-Age=600",
    ] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "the console is on http: {cookie}"
    );

    let link = callback_link(&mut browser).await;
    let (status, headers, page) = browser.get(&link).await;
    assert_eq!(status, 303, "{page}");
    assert_eq!(headers["location"], "/console/");
    assert!(browser.cookie.is_some(), "a session is opened");
    assert!(
        !browser.jar.contains_key(SIGN_IN),
        "the sign-in's cookie is removed"
    );
    let (status, _, page) = browser.get("/console/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<span class=\"who\">ada</span>"), "{page}");
}

#[tokio::test]
async fn a_callback_opened_in_another_browser_signs_no_one_in() {
    let issuer = Issuer::start("mallory", &["admin"]).await;
    let server = console_at(&issuer).await;
    let mut mallory = Browser::new(&server, None);

    // Without a sign-in of its own, and with one of its own begun.
    let mut fresh = Browser::new(&server, None);
    let mut signing_in = Browser::new(&server, None);
    signing_in.get("/console/signin").await;
    for victim in [&mut fresh, &mut signing_in] {
        let link = callback_link(&mut mallory).await;
        let (status, headers, page) = victim.get(&link).await;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("begun in another browser"), "{page}");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert!(
            cookies
                .iter()
                .all(|c| c.to_str().expect("cookie").starts_with(SIGN_IN)),
            "no session cookie: {cookies:?}"
        );
        assert!(victim.cookie.is_none());
        let (status, headers, _) = victim.get("/console/").await;
        assert_eq!(status, 303);
        assert_eq!(headers["location"], "/console/signin");

        // The refused callback used the sign-in up: it cannot be retried anywhere.
        let (status, _, page) = mallory.get(&link).await;
        assert_eq!(status, 400);
        assert!(page.contains("unknown or expired"), "{page}");
    }
}

#[tokio::test]
async fn behind_https_every_console_cookie_is_secure_their_removals_too() {
    let issuer = Issuer::start("ada", &["admin"]).await;
    let console = "https://console.acme.example";
    let server = console_at_url(&issuer, console).await;
    let mut browser = Browser::new(&server, None);
    let mut set = Vec::new();
    let (_, headers, _) = browser.get("/console/signin").await;
    set.extend(headers.get_all("set-cookie").iter().cloned());
    let link = callback_link_to(&mut browser, console).await;
    let (status, headers, page) = browser.get(&link).await;
    assert_eq!(status, 303, "{page}");
    set.extend(headers.get_all("set-cookie").iter().cloned());
    let (_, _, page) = browser.get("/console/").await;
    let token = common::console::csrf(&page);
    let (status, headers, _) = browser
        .submit("/console/signout", &[("csrf", token.as_str())])
        .await;
    assert_eq!(status, 303);
    let removals: Vec<_> = headers.get_all("set-cookie").iter().cloned().collect();
    assert!(
        !removals.is_empty(),
        "sign-out removes the session's cookie"
    );
    set.extend(removals);
    // The sign-in's cookie set, the session's set, the sign-in's removed, the session's removed.
    assert!(set.len() >= 4, "{set:?}");
    for cookie in &set {
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
}
