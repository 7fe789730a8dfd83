//! The console signed in through the real Keycloak of the end-to-end test:
//! a realm with the console's public client (PKCE S256, its roles in the ID
//! token), an admin and a `tenant:acme` viewer, a service whose console signs
//! in there, and headless Chromium walking the pages (`console_browser.py`).
//! Screenshots land in `target/console-screenshots/`.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::keycloak::{Admin, Keycloak};
use super::{Service, SmtpServer, free_port, python, root};

const REALM: &str = "ops";
const CLIENT: &str = "mailbridge-console";
const SECRET: &str = "e2e-console-secret-0123456789abcdef-0123";

/// The realm, its console client with roles `admin` and `tenant:acme`, and a user for each.
async fn prepare_realm(admin: &Admin, console_url: &str) {
    let realm = json!({"realm": REALM, "enabled": true});
    let (status, body, _) = admin.call(Method::POST, "", Some(realm)).await;
    assert_eq!(status, 201, "create realm: {body}");
    let client = json!({
        "clientId": CLIENT, "publicClient": true, "standardFlowEnabled": true,
        "directAccessGrantsEnabled": false,
        "redirectUris": [format!("{console_url}/console/callback")],
        "webOrigins": [console_url],
        "attributes": {
            "pkce.code.challenge.method": "S256",
            "post.logout.redirect.uris": format!("{console_url}/console/"),
        },
        "protocolMappers": [{
            "name": "console roles", "protocol": "openid-connect",
            "protocolMapper": "oidc-usermodel-client-role-mapper",
            "config": {
                "usermodel.clientRoleMapping.clientId": CLIENT,
                "claim.name": "resource_access.${client_id}.roles",
                "jsonType.label": "String", "multivalued": "true",
                "id.token.claim": "true", "access.token.claim": "true",
            },
        }],
    });
    let path = format!("/{REALM}/clients");
    let (status, body, location) = admin.call(Method::POST, &path, Some(client)).await;
    assert_eq!(status, 201, "create the console client: {body}");
    let uuid = location
        .and_then(|l| l.rsplit('/').next().map(str::to_owned))
        .expect("the client's id");
    for (role, user) in [("admin", "root"), ("tenant:acme", "ada-ops")] {
        let roles = format!("/{REALM}/clients/{uuid}/roles");
        let (status, body, _) = admin
            .call(Method::POST, &roles, Some(json!({"name": role})))
            .await;
        assert_eq!(status, 201, "create role {role}: {body}");
        let (_, rep, _) = admin
            .call(Method::GET, &format!("{roles}/{role}"), None)
            .await;
        let rep: Value = serde_json::from_str(&rep).expect("role");
        let person = json!({
            "username": user, "enabled": true, "emailVerified": true,
            "email": format!("{user}@ops.example"), "firstName": user, "lastName": "Ops",
            "credentials": [{"type": "password", "value": format!("{user}-password"), "temporary": false}],
        });
        let (status, body, location) = admin
            .call(Method::POST, &format!("/{REALM}/users"), Some(person))
            .await;
        assert_eq!(status, 201, "create user {user}: {body}");
        let id = location
            .and_then(|l| l.rsplit('/').next().map(str::to_owned))
            .expect("the user's id");
        let mapping = format!("/{REALM}/users/{id}/role-mappings/clients/{uuid}");
        let (status, body, _) = admin.call(Method::POST, &mapping, Some(json!([rep]))).await;
        assert_eq!(status, 204, "give {user} {role}: {body}");
    }
}

/// A service whose console signs in at the realm; its only transport's
/// server answers every recipient `450 4.2.1` (mailbox busy: an answer
/// about the message) and two attempts are the most, so messages end
/// `failed`. (A server that refuses connections, or answers `451 4.3.0`,
/// its own trouble, would have the transport held as down after five
/// failures: messages would wait.)
async fn start_service(kc: &Keycloak) -> (Service, SmtpServer) {
    let smtp = SmtpServer::start_with(&["--fail-rcpt", "450"]).await;
    let port = free_port();
    let extra = [
        (
            "MAILBRIDGE_CONSOLE_ISSUER",
            format!("{}/realms/{REALM}", kc.url),
        ),
        ("MAILBRIDGE_CONSOLE_CLIENT_ID", CLIENT.to_owned()),
        ("MAILBRIDGE_CONSOLE_URL", format!("http://127.0.0.1:{port}")),
        (
            "MAILBRIDGE_TRANSPORT",
            format!("smtp://127.0.0.1:{}?tls=none", smtp.port),
        ),
        ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "2".to_owned()),
        ("MAILBRIDGE_RETRY_BASE", "100ms".to_owned()),
    ];
    let templates = root().join("templates");
    let service = Service::start_with(port, free_port(), SECRET, &templates, &extra).await;
    (service, smtp)
}

/// `GET path` on the API as an admin.
async fn api(service: &Service, path: &str) -> Value {
    let token = mailbridge::auth::mint(SECRET.as_bytes(), None, true, 120).expect("token");
    reqwest::Client::new()
        .get(format!("{}{path}", service.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("API")
        .json()
        .await
        .expect("JSON")
}

/// Queues a message for `tenant` to `to`; answers its id once it is `failed`.
async fn failed_message(service: &Service, tenant: &str, to: &str) -> String {
    let token = mailbridge::auth::mint(SECRET.as_bytes(), Some(tenant), false, 120).expect("token");
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v1/messages", service.url))
        .bearer_auth(token)
        .json(&json!({"to": [{"email": to}], "subject": "Hello", "text": "a body the console never shows"}))
        .send()
        .await
        .expect("accept")
        .json()
        .await
        .expect("JSON");
    let id = answer["id"].as_str().expect("id").to_owned();
    for _ in 0..200 {
        if api(service, &format!("/v1/messages/{id}")).await["status"] == "failed" {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} never failed");
}

/// Runs the browser walk with `plan`; answers what it saw.
async fn browse(plan: &Value) -> Value {
    let mut child = tokio::process::Command::new(python())
        .arg(root().join("tests/tests/support/console_browser.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the browser driver (scripts/test-deps.sh installs it)");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(plan.to_string().as_bytes())
        .await
        .expect("plan");
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the browser walk ends within 3 minutes")
        .expect("browser driver");
    assert!(output.status.success(), "browser driver: {}", output.status);
    serde_json::from_slice(&output.stdout).expect("the walk's JSON")
}

/// The studio showed what `POST /v1/render` answers for the same data,
/// rendered in the page by the WebAssembly renderer: no render request left
/// the page, neither on load nor while the data was edited.
async fn check_studio(service: &Service, studio: &Value) {
    assert_eq!(studio["renderer"], "webassembly", "{studio}");
    assert_eq!(studio["server_renders"], json!([]), "{studio}");
    assert!(
        studio["edited_subject"]
            .as_str()
            .is_some_and(|s| s.contains("Edited Realm")),
        "an edit is rendered in the page: {studio}"
    );
    assert_eq!(
        studio["missing_variables"],
        json!(["link"]),
        "data without the link: the page lists it: {studio}"
    );
    let data: Value = serde_json::from_str(studio["data"].as_str().expect("data")).expect("JSON");
    let token = mailbridge::auth::mint(SECRET.as_bytes(), Some("acme"), false, 120).expect("token");
    let api: Value = reqwest::Client::new()
        .post(format!("{}/v1/render", service.url))
        .bearer_auth(token)
        .json(&json!({"template": "password-reset", "locale": "de", "data": data}))
        .send()
        .await
        .expect("render")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        studio["html"], api["html"],
        "the frame holds what /v1/render renders"
    );
    assert_eq!(studio["subject"], api["subject"]);
    assert_eq!(studio["text"], api["text"]);
    assert_eq!(
        studio["invalid_data"], "true",
        "bad JSON is marked as typed"
    );
}

/// Signs in as an admin and as a `tenant:acme` viewer and checks what each may see and do.
pub async fn check(kc: &Keycloak, admin: &Admin) {
    let (mut service, _smtp) = start_service(kc).await;
    prepare_realm(admin, &service.url).await;
    let ada = failed_message(&service, "acme", "ada@example.com").await;
    let adam = failed_message(&service, "acme", "adam@example.com").await;
    let bob = failed_message(&service, "globex", "bob@globex.example").await;
    let plan = json!({
        "console": service.url,
        "admin": {"username": "root", "password": "root-password"},
        "viewer": {"username": "ada-ops", "password": "ada-ops-password"},
        "recipient": "ada@example.com",
        "retry": ada, "own_tenant": adam, "other_tenant": bob,
        "screenshots": root().join("target/console-screenshots"),
    });
    let seen = browse(&plan).await;
    let by_admin = &seen["admin"];
    assert_eq!(by_admin["signed_in_as"], "root", "{seen}");
    for status in ["queued", "sending", "retrying", "sent", "failed"] {
        let listed = api(&service, &format!("/v1/messages?status={status}&limit=100")).await;
        let count = listed["messages"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        // The retry below changes these figures: they were read before it.
        assert_eq!(by_admin["overview"][status], count, "{status}: {seen}");
    }
    assert_eq!(by_admin["by_recipient"], json!([ada]), "{seen}");
    assert_eq!(by_admin["post_without_csrf"], 403, "{seen}");
    assert_eq!(by_admin["attempts_before"], 2, "{seen}");
    assert_eq!(by_admin["attempts_after"], 4, "{seen}");
    assert_eq!(by_admin["shows_delete"], true, "{seen}");
    // Three messages failed twice each, then the retried one twice more.
    assert_eq!(by_admin["transport_failures"], "8", "{seen}");
    for (page, fits) in by_admin["phone_fits"].as_object().expect("phone pages") {
        assert_eq!(fits, true, "{page} scrolls sideways at 375 px");
    }
    check_studio(&service, &by_admin["studio"]).await;
    let kc_url = kc.url.as_str();
    let after = by_admin["after_sign_out_messages"]
        .as_str()
        .unwrap_or_default();
    assert!(
        after.starts_with(kc_url),
        "signed out: the console asks to sign in again: {seen}"
    );

    let by_viewer = &seen["tenant"];
    let mut rows: Vec<&str> = (by_viewer["rows"].as_array().expect("rows").iter())
        .filter_map(Value::as_str)
        .collect();
    rows.sort_unstable();
    let mut acme = vec![ada.as_str(), adam.as_str()];
    acme.sort_unstable();
    assert_eq!(rows, acme, "only acme's messages: {seen}");
    assert_eq!(by_viewer["shows_bulk_retry"], false, "{seen}");
    assert_eq!(by_viewer["own_shows_retry"], false, "{seen}");
    assert_eq!(by_viewer["other_tenant_page"], 404, "{seen}");
    assert_eq!(by_viewer["other_tenant_filter"], 404, "{seen}");
    for (post, status) in by_viewer["forged_posts"].as_object().expect("posts") {
        assert_eq!(status, 403, "{post}: {seen}");
    }
    for id in [&adam, &bob] {
        let record = api(&service, &format!("/v1/messages/{id}")).await;
        assert_eq!(record["status"], "failed", "unchanged: {record}");
        assert_eq!(record["attempts"], 2, "unchanged: {record}");
    }
    service.stop().await;
}
