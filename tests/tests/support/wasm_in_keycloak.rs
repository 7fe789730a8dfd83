//! Checks of the renderer inside Keycloak, shared by the full end-to-end test
//! and the compatibility smoke: the SMTP fallback renders the mailbridge
//! template, and the admin preview answers realm admins only.

use std::time::Duration;

use serde_json::{Value, json};

use super::keycloak::{Admin, Keycloak};
use super::{Mail, SmtpServer};

/// What the service's `POST /v1/render` answers for `template` in `locale`
/// with `data`, tenant `acme`.
pub async fn service_render(
    service_url: &str,
    secret: &str,
    template: &str,
    locale: &str,
    data: &Value,
) -> Value {
    let token = mailbridge::auth::mint(secret.as_bytes(), None, true, 60).expect("a token");
    let body = json!({"tenant": "acme", "to": [{"email": "ada@example.com"}], "template": template,
                      "locale": locale, "data": data});
    let resp = reqwest::Client::new()
        .post(format!("{service_url}/v1/render"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST /v1/render");
    assert_eq!(resp.status(), 200, "render {template} in {locale}");
    resp.json().await.expect("render JSON")
}

/// The first link into Keycloak in `text`.
pub fn keycloak_link(kc: &Keycloak, text: &str) -> String {
    let start = text
        .find(&kc.url)
        .unwrap_or_else(|| panic!("a link to Keycloak in:\n{text}"));
    text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != ')')
        .collect()
}

fn lf(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end().to_owned()
}

/// The `template` email `mail` (sent by Keycloak's SMTP sender while the
/// service was down) is exactly the service's rendering of the mailbridge
/// template in German for the same data (`extra` plus link, realm and user;
/// Keycloak capitalises the realm name),
/// its link included.
pub async fn check_fallback(
    kc: &Keycloak,
    mail: &Mail,
    template: &str,
    extra: Value,
    service: (&str, &str),
) {
    assert!(
        mail.html
            .contains(&format!("data-mailbridge-template=\"{template}\"")),
        "the fallback rendered the mailbridge template, not Keycloak's theme:\n{}",
        mail.html
    );
    let link = keycloak_link(kc, &mail.text);
    assert!(link.contains("/realms/acme/login-actions/"), "{link}");
    let mut data = json!({"link": link, "realmName": "Acme",
        "user": {"username": "ada", "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"}});
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    let (render_url, secret) = service;
    let expected = service_render(render_url, secret, template, "de", &data).await;
    assert_eq!(
        mail.header("subject"),
        expected["subject"],
        "German subject"
    );
    assert_eq!(
        lf(&mail.text),
        lf(expected["text"].as_str().unwrap_or_default())
    );
    assert_eq!(
        lf(&mail.html),
        lf(expected["html"].as_str().unwrap_or_default())
    );
}

/// Waits until `n` messages went to `to`, then a little longer: exactly `n`.
pub async fn exactly(smtp: &SmtpServer, to: &str, n: usize) {
    smtp.wait_for(to, n - 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.count_to(to), n, "one email each, no duplicate");
}

/// `GET /admin/realms/acme/mailbridge/preview/…` with `token` (none: no header).
async fn preview(kc: &Keycloak, token: Option<&str>, path: &str) -> (u16, String, String, String) {
    let mut req = reqwest::Client::new().get(format!(
        "{}/admin/realms/acme/mailbridge/preview/{path}",
        kc.url
    ));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("preview request");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, subject) = (header("content-type"), header("mailbridge-subject"));
    let status = resp.status().as_u16();
    (
        status,
        resp.text().await.unwrap_or_default(),
        content_type,
        subject,
    )
}

/// The preview: a realm admin gets the template rendered with its sample data
/// (as the service renders it), a user without `view-realm` 403, no token 401,
/// an unknown template 404, a bad format 400; an admin of this realm alone
/// (view-realm) 200.
pub async fn check_preview(kc: &Keycloak, admin: &Admin, render_url: &str, secret: &str) {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(super::root().join("templates/emails/password-reset/sample.json"))
            .expect("sample.json"),
    )
    .expect("sample JSON");
    let expected = service_render(render_url, secret, "password-reset", "de", &sample).await;
    let token = &admin.token();

    let (status, body, content_type, subject) =
        preview(kc, Some(token), "password-reset?locale=de&format=html").await;
    assert_eq!(status, 200, "admin preview: {body}\n{}", kc.log_tail());
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(body, expected["html"].as_str().unwrap_or_default());
    let decoded = url::form_urlencoded::parse(format!("s={subject}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned());
    assert_eq!(decoded.as_deref(), expected["subject"].as_str());

    let (status, body, content_type, _) =
        preview(kc, Some(token), "password-reset?locale=de-AT&format=text").await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(body, expected["text"].as_str().unwrap_or_default());

    let (status, body, ..) = preview(kc, Some(token), "password-reset?format=pdf").await;
    assert_eq!(status, 400, "{body}");
    let (status, body, ..) = preview(kc, Some(token), "no-such-template").await;
    assert_eq!(status, 404, "{body}");
    let (status, body, ..) = preview(kc, None, "password-reset").await;
    assert_eq!(status, 401, "{body}");

    let user = user_token(kc, admin, "bob", &[]).await;
    let (status, body, ..) = preview(kc, Some(&user), "password-reset").await;
    assert_eq!(status, 403, "a user without view-realm: {body}");

    // An admin of this realm only, with realm-management's view-realm role.
    let viewer = user_token(kc, admin, "carol", &["view-realm"]).await;
    let (status, body, ..) = preview(kc, Some(&viewer), "password-reset?locale=de").await;
    assert_eq!(status, 200, "a realm admin with view-realm: {body}");
    assert_eq!(body, expected["html"].as_str().unwrap_or_default());
}

/// A token of a new `acme` user holding `roles` of the `realm-management` client.
async fn user_token(kc: &Keycloak, admin: &Admin, username: &str, roles: &[&str]) -> String {
    let user = json!({"username": username, "email": format!("{username}@example.com"), "enabled": true,
        "emailVerified": true, "firstName": username, "lastName": "Tester",
        "credentials": [{"type": "password", "value": "user-password", "temporary": false}]});
    let (status, body, location) = admin
        .call(reqwest::Method::POST, "/acme/users", Some(user))
        .await;
    assert_eq!(status, 201, "create {username}: {body}");
    let id = location
        .and_then(|l| l.rsplit('/').next().map(str::to_owned))
        .expect("the new user's id");
    if !roles.is_empty() {
        grant_realm_management(admin, &id, roles).await;
    }
    let resp: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/acme/protocol/openid-connect/token",
            kc.url
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", username),
            ("password", "user-password"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    resp["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{username}'s token: {resp}"))
        .to_owned()
}

/// Gives user `id` the `realm-management` client's `roles` in `acme`.
async fn grant_realm_management(admin: &Admin, id: &str, roles: &[&str]) {
    let get = |path: String| async move {
        let (status, body, _) = admin.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    let clients = get("/acme/clients?clientId=realm-management".to_owned()).await;
    let client = clients[0]["id"].as_str().expect("realm-management's id");
    let mut granted = Vec::new();
    for role in roles {
        granted.push(get(format!("/acme/clients/{client}/roles/{role}")).await);
    }
    let (status, body, _) = admin
        .call(
            reqwest::Method::POST,
            &format!("/acme/users/{id}/role-mappings/clients/{client}"),
            Some(Value::Array(granted)),
        )
        .await;
    assert_eq!(status, 204, "grant {roles:?}: {body}");
}
