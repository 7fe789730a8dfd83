//! Keycloak → extension → mailbridge → a real SMTP server, with Keycloak from
//! its distribution zip. Every email kind an operator relies on is triggered
//! through Keycloak's own APIs and pages, and checked where it lands. Keycloak
//! and mailbridge both export traces to one OTLP receiver: a Keycloak request
//! and the delivery of its email must be one trace. The demo realm that
//! `docker-compose.yml` imports is checked to work as its comment says. With
//! the service down, the SMTP fallback sends the mailbridge template rendered
//! inside Keycloak, and the admin preview renders templates for realm admins.
//! The operator's console signs in through the same Keycloak (`support/console.rs`).

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::keycloak::{Admin, Keycloak, forgot_password};
use support::otlp::{Receiver, Span};
use support::{Mail, Service, SmtpServer, free_port, realm_key, wasm_in_keycloak};

const SECRET: &str = "e2e-shared-secret-0123456789abcdef-0123";
const ADA: &str = "ada@example.com";
const TIMEOUT_MS: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_sends_every_email_through_mailbridge() {
    let logs = tempfile::tempdir().unwrap();
    let otlp = Receiver::start().await;
    let otel = mailbridge::telemetry::OtelSettings::from_vars(|name| {
        (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| otlp.url.clone())
    })
    .unwrap();
    // The service runs in this process: its spans go to the receiver too.
    let _telemetry = mailbridge::telemetry::init_with("warn", &otel).unwrap();
    let smtp = SmtpServer::start().await;
    let mb_port = free_port();
    let kc_port = free_port();
    // One realm signs with its own keys: the service trusts that realm's issuer.
    let tenants = realm_key::tenant_config(&format!("http://127.0.0.1:{kc_port}"));
    let templates = support::root().join("templates");
    let mut service =
        Service::start_configured(mb_port, smtp.port, SECRET, &templates, &tenants).await;
    let options = [
        ("url", format!("http://127.0.0.1:{mb_port}")),
        ("secret", SECRET.to_owned()),
        ("timeout", TIMEOUT_MS.to_string()),
        ("fallback", "smtp".to_owned()),
    ];
    let kc = Keycloak::start_traced_at(kc_port, &options, logs.path(), &otlp.url).await;
    let admin = kc.admin().await;
    admin.create_realm("acme", smtp.port).await;
    let ada = admin.create_user("acme", "ada", ADA, "de").await;
    let mut seen = 0;

    // 1. Required actions, as an admin triggers them.
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/acme/users/{ada}/execute-actions-email"),
            Some(json!(["UPDATE_PASSWORD"])),
        )
        .await;
    assert_eq!(
        status,
        204,
        "execute-actions-email: {body}\n{}",
        kc.log_tail()
    );
    let mail = smtp.wait_for(ADA, seen, Duration::from_secs(30)).await;
    seen += 1;
    check_sender(&mail);
    check_rendered_by_service(&mail, "execute-actions", &service, "de").await;
    follow_action_link(&kc, &mail).await;

    // 2. Email verification.
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/acme/users/{ada}/send-verify-email"),
            None,
        )
        .await;
    assert_eq!(status, 204, "send-verify-email: {body}");
    let mail = smtp.wait_for(ADA, seen, Duration::from_secs(30)).await;
    seen += 1;
    check_rendered_by_service(&mail, "email-verification", &service, "de").await;
    follow_action_link(&kc, &mail).await;

    // 3. "Forgot password?" on the login page.
    forgot_password(&kc, "acme", "ada").await;
    if tokio::time::timeout(
        Duration::from_secs(30),
        smtp.wait_for(ADA, seen, Duration::from_secs(60)),
    )
    .await
    .is_err()
    {
        panic!(
            "no password reset email; Keycloak's log:\n{}",
            kc.log_tail()
        );
    }
    let mail = smtp.wait_for(ADA, seen, Duration::from_secs(30)).await;
    seen += 1;
    check_rendered_by_service(&mail, "password-reset", &service, "de").await;
    follow_action_link(&kc, &mail).await;

    // 4. An organization invitation.
    let org = json!({"name": "Globex", "alias": "globex", "domains": [{"name": "globex.example"}]});
    let (status, body, location) = admin
        .call(Method::POST, "/acme/organizations", Some(org))
        .await;
    assert_eq!(status, 201, "create organization: {body}");
    let org_id = location
        .and_then(|l| l.rsplit('/').next().map(str::to_owned))
        .unwrap();
    let (status, body) = admin
        .form(
            &format!("/acme/organizations/{org_id}/members/invite-existing-user"),
            &[("id", &ada)],
        )
        .await;
    assert_eq!(status, 204, "invite-existing-user: {body}");
    let mail = smtp.wait_for(ADA, seen, Duration::from_secs(30)).await;
    seen += 1;
    check_rendered_by_service(&mail, "org-invite", &service, "de").await;

    // 5. "Test connection" in the admin console: delivered before Keycloak answers.
    set_admin_email(&admin, "admin@example.com").await;
    let smtp_settings = json!({
        "host": "127.0.0.1", "port": smtp.port.to_string(), "from": "no-reply@acme.example",
        "fromDisplayName": "acme login", "auth": "false",
    });
    let (status, body, _) = admin
        .call(
            Method::POST,
            "/acme/testSMTPConnection",
            Some(smtp_settings.clone()),
        )
        .await;
    assert_eq!(status, 204, "testSMTPConnection: {body}\n{}", kc.log_tail());
    assert_eq!(
        smtp.count_to("admin@example.com"),
        1,
        "the test email was delivered before Keycloak answered"
    );
    let mail = smtp
        .wait_for("admin@example.com", 0, Duration::from_secs(5))
        .await;
    check_rendered_by_service(&mail, "email-test", &service, "en").await;

    // The realm's SMTP password never reached the service.
    assert_secret_not_forwarded(&service);

    // The first Keycloak request above and its email's delivery are one trace.
    one_trace_from_keycloak_to_delivery(&otlp).await;

    // docker-compose.yml's demo realm: "Forgot password?" for ada sends mail.
    let demo: Value = serde_json::from_str(
        &std::fs::read_to_string(support::root().join("deploy/keycloak/demo-realm.json")).unwrap(),
    )
    .unwrap();
    let (status, body, _) = admin.call(Method::POST, "", Some(demo)).await;
    assert_eq!(status, 201, "import the demo realm: {body}");
    forgot_password(&kc, "demo", "ada").await;
    let mail = smtp.wait_for(ADA, seen, Duration::from_secs(30)).await;
    seen += 1;
    assert!(
        mail.header("from").contains("no-reply@demo.localhost"),
        "From: {}",
        mail.header("from")
    );
    assert_eq!(
        mail.header("subject"),
        "Reset your password for mailbridge demo"
    );
    assert!(
        mail.html
            .contains("data-mailbridge-template=\"password-reset\"")
    );

    // The template preview in Keycloak's admin API, as the service renders it.
    wasm_in_keycloak::check_preview(&kc, &admin, &service.url, SECRET).await;

    // A realm on its own keys keeps sending through a key rotation; forgeries are refused.
    realm_key::realm_key_signing_survives_rotation(&kc, &admin, &smtp, &service, SECRET).await;

    // 6. The service goes away: Keycloak's own SMTP sender takes over (fallback=smtp)
    //    with the mailbridge template rendered inside Keycloak, and the admin
    //    call is not held up beyond the timeout.
    service.stop().await;
    let started = Instant::now();
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/acme/users/{ada}/execute-actions-email"),
            Some(json!(["UPDATE_PASSWORD"])),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        status,
        204,
        "with fallback=smtp the email still goes out: {body}\n{}",
        kc.log_tail()
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_MS * 3),
        "took {took:?}"
    );
    // Exactly as the service renders it, in German, once.
    wasm_in_keycloak::exactly(&smtp, ADA, seen + 1).await;
    let mail = smtp.wait_for(ADA, seen, Duration::from_secs(5)).await;
    let render_only = Service::start(free_port(), smtp.port, SECRET).await;
    // What Keycloak gives an admin-triggered action email: 12 hours, in minutes.
    let extra = json!({"linkExpiration": 720, "requiredActions": ["UPDATE_PASSWORD"]});
    let render = (render_only.url.as_str(), SECRET);
    wasm_in_keycloak::check_fallback(&kc, &mail, "execute-actions", extra, render).await;
    check_sender(&mail);
    follow_action_link(&kc, &mail).await;

    // 7. A realm that opts out of the fallback fails cleanly within the timeout.
    let (status, body, _) = admin
        .call(
            Method::PUT,
            "/acme",
            Some(json!({"smtpServer": {
                "host": "127.0.0.1", "port": smtp.port.to_string(), "from": "no-reply@acme.example",
                "mailbridgeFallback": "none",
            }})),
        )
        .await;
    assert_eq!(status, 204, "update realm: {body}");
    let started = Instant::now();
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/acme/users/{ada}/execute-actions-email"),
            Some(json!(["UPDATE_PASSWORD"])),
        )
        .await;
    let took = started.elapsed();
    assert!(
        status >= 400,
        "no service and no fallback: the call fails ({status} {body})"
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_MS * 3),
        "failed within the timeout, took {took:?}"
    );
    // 8. A hard bounce marks the user in Keycloak (feedback), through a
    //    confidential client of the realm with manage-users.
    feedback_marks_the_user(&kc, &admin, &smtp, &ada).await;

    // 9. The operator's console, signed in through this Keycloak (a realm of its own).
    support::console::check(&kc, &kc.admin().await).await;
    kc.stop().await;
}

/// An SMTP bounce report for Ada's message, posted to a service whose tenant
/// `acme` has Keycloak feedback: Keycloak's own admin API then shows the
/// attribute and `emailVerified = false`.
async fn feedback_marks_the_user(kc: &Keycloak, admin: &Admin, smtp: &SmtpServer, ada: &str) {
    let client = json!({"clientId": "mailbridge-feedback", "enabled": true, "publicClient": false,
        "serviceAccountsEnabled": true, "standardFlowEnabled": false,
        "clientAuthenticatorType": "client-secret", "secret": "kc-feedback-secret"});
    let (status, body, location) = admin
        .call(Method::POST, "/acme/clients", Some(client))
        .await;
    assert_eq!(status, 201, "create the feedback client: {body}");
    let client_id = location
        .and_then(|l| l.rsplit('/').next().map(str::to_owned))
        .unwrap();
    let get = |path: String| async move {
        let (status, body, _) = admin.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let account = get(format!("/acme/clients/{client_id}/service-account-user")).await;
    let management = get("/acme/clients?clientId=realm-management".to_owned()).await;
    let management = management[0]["id"].as_str().unwrap().to_owned();
    let role = get(format!("/acme/clients/{management}/roles/manage-users")).await;
    let path = format!(
        "/acme/users/{}/role-mappings/clients/{management}",
        account["id"].as_str().unwrap()
    );
    let (status, body, _) = admin.call(Method::POST, &path, Some(json!([role]))).await;
    assert_eq!(status, 204, "grant manage-users: {body}");
    // Keycloak keeps only attributes its user profile allows.
    let mut profile = get("/acme/users/profile".to_owned()).await;
    profile["unmanagedAttributePolicy"] = json!("ADMIN_EDIT");
    let (status, body, _) = admin
        .call(Method::PUT, "/acme/users/profile", Some(profile))
        .await;
    assert_eq!(status, 200, "user profile: {body}");

    let config = format!(
        r#"
[transports]
bounces = "smtp://127.0.0.1:{{smtp_port}}?tls=none&webhook_key=pipe%3Apipe-secret"
[tenants.acme]
transport = "bounces"
keycloak_url = "{}/realms/acme"
keycloak_client_id = "mailbridge-feedback"
keycloak_client_secret = "kc-feedback-secret"
keycloak_unverify = true
"#,
        kc.url
    );
    let port = free_port();
    let mut service = Service::start_with_config(port, smtp.port, SECRET, &config).await;
    let token = mailbridge::auth::mint(SECRET.as_bytes(), Some("acme"), false, 60).unwrap();
    let http = reqwest::Client::new();
    let seen = smtp.count_to(ADA);
    let sent = http
        .post(format!("{}/v1/messages?wait=true", service.url))
        .bearer_auth(&token)
        .json(&json!({"to": [{"email": ADA}], "subject": "Hello", "text": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let mail = smtp.wait_for(ADA, seen, Duration::from_secs(30)).await;
    let message_id = mail.header("message-id");
    let report = format!(
        "From: MAILER-DAEMON@mx.acme.example\r\nTo: bounces@acme.example\r\nMessage-Id: <r1@mx.acme.example>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.example\r\n\r\n\
Final-Recipient: rfc822; {ADA}\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\n\r\n--B--\r\n"
    );
    let posted = http
        .post(format!("{}/v1/events/bounces", service.url))
        .basic_auth("pipe", Some("pipe-secret"))
        .header("content-type", "message/rfc822")
        .body(report)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let user = get(format!("/acme/users/{ada}")).await;
        let marked = user["attributes"]["mailbridge_email_status"] == json!(["bounced"]);
        if marked && user["emailVerified"] == json!(false) {
            assert_eq!(
                user["attributes"]["locale"],
                json!(["de"]),
                "other attributes kept"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Keycloak never learnt of the bounce: {user}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    service.stop().await;
}

fn check_sender(mail: &Mail) {
    let from = mail.header("from");
    assert!(
        from.contains("no-reply@acme.example") && from.contains("acme login"),
        "From: {from}"
    );
    assert!(
        mail.header("reply-to").contains("help@acme.example"),
        "Reply-To: {}",
        mail.header("reply-to")
    );
    assert!(!mail.header("message-id").is_empty());
}

async fn check_rendered_by_service(mail: &Mail, template: &str, service: &Service, locale: &str) {
    let marker = format!("data-mailbridge-template=\"{template}\"");
    assert!(
        mail.html.contains(&marker),
        "{template}: rendered by the service's own template:\n{}",
        mail.html
    );
    // The subject is the service's own, in the user's language.
    let render = |locale: &str| {
        json!({"tenant": "acme", "to": [{"email": ADA}], "template": template, "locale": locale,
               "data": {"realmName": "Acme", "user": {"username": "ada", "firstName": "Ada", "lastName": "Lovelace", "email": ADA},
                        "link": "https://example.invalid/x", "linkExpiration": 5, "organization": {"name": "Globex"}}})
    };
    let token = mailbridge::auth::mint(SECRET.as_bytes(), None, true, 60).unwrap();
    let http = reqwest::Client::new();
    let mut subjects = Vec::new();
    for l in [locale, if locale == "de" { "en" } else { "de" }] {
        let rendered: Value = match http
            .post(format!("{}/v1/render", service.url))
            .bearer_auth(&token)
            .json(&render(l))
            .send()
            .await
        {
            Ok(resp) => resp.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        subjects.push(rendered["subject"].as_str().unwrap_or_default().to_owned());
    }
    if !subjects[0].is_empty() {
        assert_eq!(
            mail.header("subject"),
            subjects[0],
            "{template} in {locale}"
        );
        assert_ne!(
            subjects[0], subjects[1],
            "{template}: the two languages differ"
        );
    }
}

async fn follow_action_link(kc: &Keycloak, mail: &Mail) {
    let start = mail
        .text
        .find(&kc.url)
        .unwrap_or_else(|| panic!("a link to Keycloak in:\n{}", mail.text));
    let link: String = mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != ')')
        .collect();
    assert!(link.contains("/realms/acme/login-actions/"), "{link}");
    let page = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
        .get(&link)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{link}");
    let html = page.text().await.unwrap();
    // Keycloak's error page (expired or invalid action) carries this id.
    assert!(
        !html.contains("kc-error-message"),
        "the action link {link} leads to an error page:\n{html}"
    );
}

async fn set_admin_email(admin: &Admin, email: &str) {
    let (_, body, _) = admin
        .call(Method::GET, "/master/users?username=admin&exact=true", None)
        .await;
    let users: Value = serde_json::from_str(&body).unwrap();
    let id = users[0]["id"].as_str().unwrap().to_owned();
    let (status, body, _) = admin
        .call(
            Method::PUT,
            &format!("/master/users/{id}"),
            Some(json!({"email": email, "firstName": "Admin", "lastName": "Istrator"})),
        )
        .await;
    assert_eq!(status, 204, "set the admin's email: {body}");
}

fn assert_secret_not_forwarded(service: &Service) {
    for entry in std::fs::read_dir(service.dir()).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("realm-smtp-password-never-forwarded"),
            "the realm's SMTP password reached {}",
            entry.path().display()
        );
    }
}

/// Waits (bounded) until the receiver holds a Keycloak span whose trace also
/// holds mailbridge's `POST /v1/messages` span, as a child of a Keycloak span,
/// and its `delivery` span; checks their attributes and that no address
/// reached mailbridge's spans.
async fn one_trace_from_keycloak_to_delivery(otlp: &Receiver) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let spans = otlp.spans();
        if let Some(trace) = joined_trace(&spans) {
            let in_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace).collect();
            assert!(
                in_trace.iter().any(|s| s.service == "keycloak"
                    && ["GET ", "POST ", "PUT "]
                        .iter()
                        .any(|m| s.name.starts_with(m))),
                "the trace starts at a Keycloak HTTP request: {in_trace:#?}"
            );
            let request = in_trace
                .iter()
                .find(|s| s.service == "mailbridge" && s.name == "POST /v1/messages")
                .unwrap();
            assert_eq!(request.attribute("tenant"), Some("acme"), "{request:?}");
            let delivery = in_trace
                .iter()
                .find(|s| s.service == "mailbridge" && s.name == "delivery")
                .unwrap();
            assert_eq!(delivery.attribute("tenant"), Some("acme"), "{delivery:?}");
            assert_eq!(
                delivery.attribute("transport"),
                Some("default"),
                "{delivery:?}"
            );
            assert_eq!(delivery.attribute("outcome"), Some("sent"), "{delivery:?}");
            assert!(delivery.attribute("message_id").is_some(), "{delivery:?}");
            for span in spans.iter().filter(|s| s.service == "mailbridge") {
                for (key, value) in &span.attributes {
                    assert!(
                        !value.contains('@'),
                        "an address in mailbridge span {}: {key}={value}",
                        span.name
                    );
                }
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no Keycloak trace reaching mailbridge's delivery; spans received: {:#?}",
            spans
                .iter()
                .map(|s| (&s.service, &s.name, &s.trace_id, &s.parent_span_id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The id of a trace in which mailbridge's request span is the child of a span
/// Keycloak exported, and which holds a `delivery` span.
fn joined_trace(spans: &[Span]) -> Option<String> {
    let keycloak: Vec<&Span> = spans.iter().filter(|s| s.service == "keycloak").collect();
    spans
        .iter()
        .filter(|s| s.service == "mailbridge" && s.name == "POST /v1/messages")
        .find(|request| {
            keycloak
                .iter()
                .any(|k| k.span_id == request.parent_span_id && k.trace_id == request.trace_id)
                && spans
                    .iter()
                    .any(|d| d.name == "delivery" && d.trace_id == request.trace_id)
        })
        .map(|request| request.trace_id.clone())
}
