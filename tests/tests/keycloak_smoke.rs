//! The short end-to-end smoke that `scripts/keycloak-compat.sh` runs against
//! every Keycloak version in `keycloak-versions.txt` (the version comes from
//! `MAILBRIDGE_KEYCLOAK_VERSION`): an email sent through mailbridge, the admin
//! console's "Test connection", the template preview, and the SMTP fallback
//! rendered inside Keycloak. Ignored in the plain test run, where
//! `tests/keycloak.rs` covers all of it and more on the pinned version.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::keycloak::{Keycloak, forgot_password, version};
use support::{Service, SmtpServer, free_port, wasm_in_keycloak};

const SECRET: &str = "e2e-shared-secret-0123456789abcdef-0123";
const ADA: &str = "ada@example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/keycloak-compat.sh, once per Keycloak version"]
async fn keycloak_smoke() {
    eprintln!("Keycloak {}", version());
    let logs = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start().await;
    let mb_port = free_port();
    let mut service = Service::start(mb_port, smtp.port, SECRET).await;
    let options = [
        ("url", format!("http://127.0.0.1:{mb_port}")),
        ("secret", SECRET.to_owned()),
        ("timeout", "3000".to_owned()),
        ("fallback", "smtp".to_owned()),
    ];
    let kc = Keycloak::start(&options, logs.path()).await;
    let admin = kc.admin().await;
    admin.create_realm("acme", smtp.port).await;
    let ada = admin.create_user("acme", "ada", ADA, "de").await;

    // Sent through mailbridge, rendered by the service.
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/acme/users/{ada}/send-verify-email"),
            None,
        )
        .await;
    assert_eq!(status, 204, "send-verify-email: {body}\n{}", kc.log_tail());
    let mail = smtp.wait_for(ADA, 0, Duration::from_secs(30)).await;
    assert!(
        mail.html
            .contains("data-mailbridge-template=\"email-verification\""),
        "{}",
        mail.html
    );

    // "Test connection": delivered before Keycloak answers.
    set_admin_email(&admin).await;
    let settings = json!({"host": "127.0.0.1", "port": smtp.port.to_string(),
                          "from": "no-reply@acme.example", "auth": "false"});
    let (status, body, _) = admin
        .call(Method::POST, "/acme/testSMTPConnection", Some(settings))
        .await;
    assert_eq!(status, 204, "testSMTPConnection: {body}\n{}", kc.log_tail());
    assert_eq!(smtp.count_to("admin@example.com"), 1);

    wasm_in_keycloak::check_preview(&kc, &admin, &service.url, SECRET).await;

    // The service goes away: the German reset email, rendered inside Keycloak, once.
    service.stop().await;
    let render_only = Service::start(free_port(), smtp.port, SECRET).await;
    forgot_password(&kc, "acme", "ada").await;
    wasm_in_keycloak::exactly(&smtp, ADA, 2).await;
    let mail = smtp.wait_for(ADA, 1, Duration::from_secs(5)).await;
    let lifetime = json!({"linkExpiration": 5});
    let service = (render_only.url.as_str(), SECRET);
    wasm_in_keycloak::check_fallback(&kc, &mail, "password-reset", lifetime, service).await;
    kc.stop().await;
}

async fn set_admin_email(admin: &support::keycloak::Admin) {
    let (_, body, _) = admin
        .call(Method::GET, "/master/users?username=admin&exact=true", None)
        .await;
    let users: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = users[0]["id"].as_str().unwrap().to_owned();
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/master/users/{id}"),
            Some(
                json!({"email": "admin@example.com", "firstName": "Admin", "lastName": "Istrator"}),
            ),
        )
        .await;
    assert_eq!(status, 204, "set the admin's email: {body}");
}
