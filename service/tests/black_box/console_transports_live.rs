//! The transports page shows what the process keeps in memory, against a
//! real server on 127.0.0.1 delivering to a real SMTP server with XOAUTH2
//! (tokens from a stand-in token endpoint): the sending limit (how many may
//! pass now, the wait, how many were held back), the token's freshness
//! (fetched, expires, the latest failure) and never the token itself.

use crate::common;
use crate::smtp_support;

use common::console::{Browser, console_with, csrf};
use mailbridge::console::session::Viewer;
use smtp_support::{SmtpPeer, TokenEndpoint};

const SECRET: &str = "s3cr3t-Value~1";

/// The row of transport `name` on the page (with `/` as itself, not `&#x2f;`).
fn row(page: &str, name: &str) -> String {
    let start = page
        .find(&format!("data-transport=\"{name}\""))
        .expect("the transport's row");
    let end = page[start..].find("</tr>").expect("end of row");
    page[start..start + end].replace("&#x2f;", "/")
}

/// An XOAUTH2 DSN to `peer` with tokens from `token_url`, at most 2 a minute.
fn dsn(port: u16, token_url: &str) -> String {
    format!(
        "smtp://noreply%40acme.example@127.0.0.1:{port}?tls=none&auth=xoauth2\
         &token_url={token_url}&client_id=app-1&client_secret={SECRET}\
         &scope=https%3A%2F%2Foutlook.office365.com%2F.default&rate=2/minute"
    )
}

/// Sends the transports page's test through `default`; answers the page.
async fn test_send(browser: &mut Browser<'_>) -> String {
    let (_, _, page) = browser.get("/console/transports").await;
    let token = csrf(&page);
    let form = [
        ("csrf", token.as_str()),
        ("transport", "default"),
        ("to", "ops@example.com"),
    ];
    let (status, _, page) = browser.submit("/console/transports/test", &form).await;
    assert_eq!(status, 200, "{page}");
    page
}

#[tokio::test]
async fn the_page_shows_the_sending_limit_and_the_token_but_never_the_token() {
    let tokens = TokenEndpoint::start(&["token-A-do-not-show"]).await;
    let peer = SmtpPeer::start(&["--xoauth2-token", "token-A-do-not-show"]).await;
    let transport = dsn(peer.port, &tokens.url_for_dsn());
    let (server, _) = console_with(&[("MAILBRIDGE_TRANSPORT", transport.as_str())], &[]).await;
    let mut admin = Browser::new(&server, None);

    let (_, _, page) = admin.get("/console/transports").await;
    let before = row(&page, "default");
    assert!(before.contains("not fetched yet"), "{before}");
    assert!(before.contains("2/minute: 2 of 2 may pass now"), "{before}");
    assert!(before.contains("data-held-back=\"0\""), "{before}");
    assert!(page.contains("each replica keeps its own"), "{page}");

    let page = test_send(&mut admin).await;
    assert!(page.contains("data-test-result=\"delivered\""), "{page}");
    let after = row(&page, "default");
    assert!(after.contains("data-token-fetched"), "{after}");
    assert!(
        after.contains("expires <span data-token-expires>"),
        "{after}"
    );
    assert!(after.contains("2/minute: 1 of 2 may pass now"), "{after}");

    test_send(&mut admin).await;
    let page = test_send(&mut admin).await;
    assert!(
        page.contains("data-test-result=\"failed\""),
        "the third is held back: {page}"
    );
    let held = row(&page, "default");
    assert!(
        held.contains("2/minute: 0 of 2 may pass now, next in "),
        "{held}"
    );
    assert!(held.contains("data-held-back=\"1\""), "{held}");
    assert_eq!(peer.received().len(), 2);
    assert_eq!(tokens.requests().await.len(), 1, "one token, cached");
    assert!(
        !page.contains("token-A-do-not-show"),
        "the token is never shown"
    );
    assert!(!page.contains(SECRET), "nor the client secret");
}

#[tokio::test]
async fn a_failed_token_fetch_is_shown_with_its_answer() {
    // A port nobody listens on: the token endpoint cannot be reached.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let token_url = format!("http%3A%2F%2F127.0.0.1%3A{port}%2Ftoken");
    let transport = dsn(1, &token_url);
    let (server, sessions) = console_with(
        &[("MAILBRIDGE_TRANSPORT", transport.as_str())],
        &[Viewer::from_roles("ada", ["tenant:acme"])],
    )
    .await;
    let mut admin = Browser::new(&server, None);
    let page = test_send(&mut admin).await;
    let failed = row(&page, "default");
    assert!(failed.contains("data-token-error"), "{failed}");
    assert!(failed.contains("unavailable"), "{failed}");
    assert!(!page.contains(SECRET), "no secret in the answer: {page}");

    // Read-only viewers see the same health.
    let mut viewer = Browser::new(&server, Some(sessions[0].0.clone()));
    let (_, _, page) = viewer.get("/console/transports").await;
    assert!(row(&page, "default").contains("data-token-error"));
}
