//! The studio's "send me a test" against a real server on 127.0.0.1 whose
//! transport writes `.eml` files: an administrator's test arrives rendered
//! from the data on screen; a tenant's viewer, a form without the session's
//! token and an unusable address send nothing.

use crate::common;

use common::console::{Browser, console_with, csrf};
use common::server::TestServer;
use mailbridge::console::session::Viewer;
use serde_json::{Value, json};

/// The emails the file transport wrote so far.
fn outbox(server: &TestServer) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(server.dir.path().join("outbox")) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("eml"))
        .collect()
}

/// The subject line of an email, unfolded.
fn subject(eml: &str) -> String {
    let unfolded = eml.replace("\r\n ", " ").replace("\r\n\t", " ");
    let line = unfolded
        .lines()
        .find(|l| l.starts_with("Subject: "))
        .expect("a subject");
    line["Subject: ".len()..].to_owned()
}

/// The studio's form for password-reset in English with `data`, to `to`.
fn form<'a>(token: &'a str, data: &'a str, to: &'a str) -> [(&'a str, &'a str); 6] {
    [
        ("csrf", token),
        ("tenant", "acme"),
        ("template", "password-reset"),
        ("locale", "en"),
        ("data", data),
        ("to", to),
    ]
}

#[tokio::test]
async fn an_administrator_gets_the_email_rendered_from_the_data_on_screen() {
    let (server, _) = console_with(&[], &[]).await;
    let mut admin = Browser::new(&server, None);
    let (_, _, page) = admin
        .get("/console/templates?tenant=acme&template=password-reset&locale=en")
        .await;
    assert!(
        page.contains("formaction=\"/console/templates/test\""),
        "{page}"
    );
    let token = csrf(&page);
    let data = json!({"realmName": "Studio Realm", "link": "https://sso.example/reset", "linkExpiration": 5,
                      "user": {"username": "ada"}})
    .to_string();
    let (status, _, page) = admin
        .submit(
            "/console/templates/test",
            &form(&token, &data, "ada@example.com"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("data-test-result=\"delivered\""),
        "the transport's answer is shown: {page}"
    );
    assert!(page.contains("Studio Realm"), "the data stays on screen");

    let rendered: Value = server
        .http
        .post(server.url("/v1/render"))
        .json(
            &json!({"tenant": "acme", "template": "password-reset", "locale": "en",
                      "data": serde_json::from_str::<Value>(&data).expect("JSON")}),
        )
        .send()
        .await
        .expect("render")
        .json()
        .await
        .expect("JSON");
    let sent = outbox(&server);
    assert_eq!(sent.len(), 1, "one test email");
    let expected = rendered["subject"].as_str().expect("subject");
    assert!(expected.contains("Studio Realm"), "{expected}");
    assert_eq!(subject(&sent[0]), expected);
    assert!(sent[0].contains("To: ada@example.com"), "{}", sent[0]);
}

#[tokio::test]
async fn viewers_forms_without_the_token_and_bad_addresses_send_nothing() {
    let (server, sessions) = console_with(&[], &[Viewer::from_roles("ada", ["tenant:acme"])]).await;
    let data = "{}";
    let (session, token) = sessions[0].clone();
    let mut viewer = Browser::new(&server, Some(session));
    let (_, _, page) = viewer.get("/console/templates?tenant=acme").await;
    assert!(
        !page.contains("/console/templates/test"),
        "no test for viewers"
    );
    let (status, _, _) = viewer
        .submit(
            "/console/templates/test",
            &form(&token, data, "ada@example.com"),
        )
        .await;
    assert_eq!(status, 403, "a viewer may not send");

    let mut admin = Browser::new(&server, None);
    let (_, _, page) = admin.get("/console/templates").await;
    let token = csrf(&page);
    let forged = admin
        .submit(
            "/console/templates/test",
            &form("forged", data, "ada@example.com"),
        )
        .await;
    assert_eq!(forged.0, 403, "without the session's token");
    let bad = admin
        .submit(
            "/console/templates/test",
            &form(&token, data, "not an address"),
        )
        .await;
    assert_eq!(bad.0, 422, "{}", bad.2);
    // A tenant name the API would refuse (a `/`, a NUL) is no tenant.
    for tenant in ["a/b", "a\0b", ""] {
        let mut fields = form(&token, "{}", "ada@example.com");
        fields[1] = ("tenant", tenant);
        let (status, _, page) = admin.submit("/console/templates/test", &fields).await;
        assert_eq!(status, 404, "{tenant:?}: {page}");
    }
    assert!(outbox(&server).is_empty(), "nothing was sent");
}
