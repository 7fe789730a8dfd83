//! The console's template studio against a real server on 127.0.0.1: it
//! renders what `POST /v1/render` renders, into a frame that may run no
//! script, only for viewers of that tenant and only with the session's token.

use crate::common;

use common::console::{Browser, console, csrf};
use mailbridge::console::session::Viewer;
use serde_json::{Value, json};

/// The shipped sample data of `template`.
fn sample(template: &str) -> String {
    let path = format!(
        "{}/../templates/emails/{template}/sample.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("sample data")
}

#[tokio::test]
async fn the_studio_renders_what_the_api_renders() {
    let (server, _) = console(&[]).await;
    let mut browser = Browser::new(&server, None);
    let (status, _, page) = browser
        .get("/console/templates?tenant=acme&template=password-reset&locale=de")
        .await;
    assert_eq!(status, 200);
    for control in [
        "select name=\"tenant\"",
        "select name=\"template\"",
        "select name=\"locale\"",
        "textarea id=\"data\" name=\"data\"",
        // Sandboxed: scripts only where the preview shell runs the WebAssembly renderer's output.
        "iframe id=\"preview\" name=\"preview\" title=\"The email as HTML\" sandbox",
    ] {
        assert!(page.contains(control), "{control}: {page}");
    }
    let token = csrf(&page);
    let data = sample("password-reset");
    let form = [
        ("csrf", token.as_str()),
        ("tenant", "acme"),
        ("template", "password-reset"),
        ("locale", "de"),
        ("data", data.as_str()),
    ];
    let api: Value = server
        .http
        .post(server.url("/v1/render"))
        .json(&json!({
            "tenant": "acme", "template": "password-reset", "locale": "de",
            "data": serde_json::from_str::<Value>(&data).expect("sample JSON"),
        }))
        .send()
        .await
        .expect("render")
        .json()
        .await
        .expect("JSON");
    let (status, _, body) = browser.submit("/console/templates/render", &form).await;
    assert_eq!(status, 200, "{body}");
    let studio: Value = serde_json::from_str(&body).expect("JSON");
    for part in ["subject", "text", "html"] {
        assert_eq!(studio[part], api[part], "{part}");
    }
    assert!(api["subject"].as_str().is_some_and(|s| !s.is_empty()));

    let (status, headers, html) = browser.submit("/console/templates/preview", &form).await;
    assert_eq!(status, 200);
    assert_eq!(html, api["html"].as_str().expect("html"));
    let policy = headers["content-security-policy"].to_str().expect("policy");
    assert!(policy.starts_with("sandbox;"), "{policy}");
    assert!(
        !policy.contains("script-src"),
        "no script in the preview: {policy}"
    );
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
}

/// The status of `POST /console/templates/render` for password-reset in English.
async fn render_status(browser: &mut Browser<'_>, tenant: &str, token: &str, data: &str) -> u16 {
    let form = [
        ("csrf", token),
        ("tenant", tenant),
        ("template", "password-reset"),
        ("locale", "en"),
        ("data", data),
    ];
    browser.submit("/console/templates/render", &form).await.0
}

#[tokio::test]
async fn the_studio_refuses_bad_data_other_tenants_and_missing_tokens() {
    let (server, sessions) = console(&[Viewer::from_roles("ada", ["tenant:acme"])]).await;
    let (session, token) = sessions[0].clone();
    let mut browser = Browser::new(&server, Some(session));
    let data = sample("password-reset");
    assert_eq!(
        render_status(&mut browser, "acme", &token, &data).await,
        200
    );
    assert_eq!(
        render_status(&mut browser, "globex", &token, &data).await,
        404
    );
    assert_eq!(
        render_status(&mut browser, "acme", "forged", &data).await,
        403
    );
    assert_eq!(
        render_status(&mut browser, "acme", &token, "{not json").await,
        422
    );
    let (status, _, _) = browser.get("/console/templates?tenant=globex").await;
    assert_eq!(status, 404);
}
