//! Feedback into Keycloak, against a stand-in built from Keycloak's admin
//! REST API (token endpoint, user search, user representation read and
//! written back): a hard bounce sets the user's `mailbridge_email_status`
//! and `emailVerified = false`, keeping the user's other attributes (a
//! complaint sets only the attribute); a token
//! endpoint that fails first only delays it (the feedback is a queue row),
//! and the provider's event is answered at once.

use crate::common;

use std::time::Duration;

use common::server::TestServer;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Postmark's send API and a Keycloak realm `acme` with one user, Ada.
async fn peers() -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"MessageID": "pm-msg", "ErrorCode": 0})),
        )
        .mount(&server)
        .await;
    let token = "/realms/acme/protocol/openid-connect/token";
    Mock::given(method("POST"))
        .and(path(token))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(token))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=mailbridge-feedback"))
        .and(body_string_contains("client_secret=kc-s3cret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "kc-admin-token", "expires_in": 300, "token_type": "Bearer"}),
        ))
        .mount(&server)
        .await;
    let bearer = || header("authorization", "Bearer kc-admin-token");
    Mock::given(method("GET"))
        .and(path("/admin/realms/acme/users"))
        .and(query_param("email", "ada@example.com"))
        .and(query_param("exact", "true"))
        .and(bearer())
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!([{"id": "u-1", "username": "ada", "email": "ada@example.com", "emailVerified": true}]),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/admin/realms/acme/users/u-1"))
        .and(bearer())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "u-1", "username": "ada", "email": "ada@example.com", "emailVerified": true,
            "enabled": true, "attributes": {"locale": ["de"]}})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/admin/realms/acme/users/u-1"))
        .and(bearer())
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

async fn start(peers: &MockServer) -> (TestServer, tempfile::TempDir) {
    let encode = |t: &str| {
        percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let config = format!(
        r#"
[transports]
pm = "postmark+api://pm-token@default?endpoint={uri}&webhook_key=hooks%3Apm-pass"
[tenants.acme]
transport = "pm"
keycloak_url = "{url}/realms/acme"
keycloak_client_id = "mailbridge-feedback"
keycloak_client_secret = "${{KC_FEEDBACK_SECRET}}"
keycloak_unverify = true
"#,
        uri = encode(&peers.uri()),
        url = peers.uri(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailbridge.toml");
    std::fs::write(&file, config).unwrap();
    let env = [
        ("MAILBRIDGE_CONFIG", file.to_str().unwrap()),
        ("KC_FEEDBACK_SECRET", "kc-s3cret"),
    ];
    (TestServer::start(&env).await, dir)
}

/// Sends Ada a message, and Postmark reports it bounced (event `event_id`):
/// answered at once.
async fn sent_and_bounced(server: &TestServer, event_id: u64) {
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "Verify", "text": "Hi"});
    let (_, _, sent) = server.post("/v1/messages", Some("acme"), &body).await;
    let id = sent["id"].as_str().unwrap().to_owned();
    server
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await;
    let bounce = json!({"RecordType": "Bounce", "ID": event_id, "Type": "HardBounce", "MessageID": "pm-msg",
        "Email": "ada@example.com", "BouncedAt": "2026-12-04T22:00:00Z", "Metadata": {"mailbridge-id": id}});
    let answer = common::postmark::post_event(server, &bounce).await;
    assert_eq!(
        answer.status(),
        200,
        "answered without waiting for Keycloak"
    );
}

/// Sends Ada a message, and Postmark reports that she marked it as spam
/// (event `event_id`).
async fn sent_and_complained(server: &TestServer, event_id: u64) {
    let body = json!({"to": [{"email": "ada@example.com"}], "subject": "News", "text": "Hi"});
    let (_, _, sent) = server.post("/v1/messages", Some("acme"), &body).await;
    let id = sent["id"].as_str().unwrap().to_owned();
    server
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await;
    let complaint = json!({"RecordType": "SpamComplaint", "ID": event_id, "MessageID": "pm-msg",
        "Email": "ada@example.com", "BouncedAt": "2026-12-04T22:00:00Z", "Metadata": {"mailbridge-id": id}});
    let answer = common::postmark::post_event(server, &complaint).await;
    assert_eq!(answer.status(), 200);
}

/// The user representations written back to Keycloak so far.
async fn written(peers: &MockServer) -> Vec<Value> {
    peers
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(|r| r.body_json().unwrap())
        .collect()
}

#[tokio::test]
async fn a_hard_bounce_marks_the_keycloak_user() {
    let peers = peers().await;
    let (server, _dir) = start(&peers).await;
    sent_and_bounced(&server, 11).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let users = loop {
        let users = written(&peers).await;
        if !users.is_empty() {
            break users;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Keycloak was never told"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(users.len(), 1);
    let user = &users[0];
    assert_eq!(
        user["attributes"]["mailbridge_email_status"],
        json!(["bounced"])
    );
    assert_eq!(
        user["attributes"]["locale"],
        json!(["de"]),
        "other attributes are kept"
    );
    assert_eq!(user["emailVerified"], false);
    assert_eq!(user["username"], "ada");
    // The token endpoint failed once: the feedback row was tried again.
    let token_calls = peers
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/token"))
        .count();
    assert_eq!(token_calls, 2);
    // The feedback is a queue row like any other, and it is done (its
    // outcome is stored once Keycloak has answered the write seen above).
    server
        .wait_sent_through("acme", "keycloak", 1, Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn a_complaint_marks_the_keycloak_user_but_leaves_the_address_verified() {
    // A complaint says the mailbox works and is read; its address is
    // suppressed, so an email asking to verify it again would never go, and
    // a realm that requires a verified email would lock the user out.
    let peers = peers().await;
    let (server, _dir) = start(&peers).await;
    sent_and_complained(&server, 12).await;
    server
        .wait_sent_through("acme", "keycloak", 1, Duration::from_secs(20))
        .await;
    let users = written(&peers).await;
    assert_eq!(users.len(), 1);
    let user = &users[0];
    assert_eq!(
        user["attributes"]["mailbridge_email_status"],
        json!(["complained"])
    );
    assert_eq!(
        user["emailVerified"], true,
        "keycloak_unverify applies to hard bounces only"
    );
}

#[tokio::test]
async fn an_unreadable_user_is_read_again_not_written_back_without_its_attributes() {
    let peers = peers().await;
    // Once: a success whose body is cut short (a proxy, a restart).
    Mock::given(method("GET"))
        .and(path("/admin/realms/acme/users/u-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(r#"{"id": "u-1", "attrib"#, "application/json"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&peers)
        .await;
    let (server, _dir) = start(&peers).await;
    sent_and_bounced(&server, 12).await;
    server
        .wait_sent_through("acme", "keycloak", 1, Duration::from_secs(30))
        .await;
    let users = written(&peers).await;
    assert!(!users.is_empty(), "Keycloak was told");
    for user in &users {
        assert_eq!(user["attributes"]["locale"], json!(["de"]), "{user}");
        assert_eq!(user["username"], "ada", "{user}");
    }
}

#[tokio::test]
async fn a_refused_client_secret_is_retried_not_given_up() {
    let peers = peers().await;
    Mock::given(method("POST"))
        .and(path("/realms/acme/protocol/openid-connect/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"}),
        ))
        .with_priority(1)
        .mount(&peers)
        .await;
    let (server, _dir) = start(&peers).await;
    sent_and_bounced(&server, 13).await;
    let admin = server.token(None, true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let (_, listed) = server.get("/v1/messages?tenant=acme", &admin).await;
        let row = (listed["messages"].as_array().into_iter().flatten())
            .find(|m| {
                // Past the first token request (answered 503 by `peers`).
                m["transport"] == "keycloak"
                    && m["last_error"].as_str().is_some_and(|e| e.contains("401"))
            })
            .cloned();
        if let Some(row) = row {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never attempted: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["status"], "retrying", "{row}");
    assert!(!row.to_string().contains("kc-s3cret"), "{row}");
}

/// The feedback row once it reached its end (`sent` or `failed`).
async fn settled_feedback(server: &TestServer) -> Value {
    let admin = server.token(None, true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) = server.get("/v1/messages?tenant=acme", &admin).await;
        let row = (listed["messages"].as_array().into_iter().flatten())
            .find(|m| {
                m["transport"] == "keycloak" && (m["status"] == "sent" || m["status"] == "failed")
            })
            .cloned();
        if let Some(row) = row {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feedback never ended: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The users written back so far, by id.
async fn written_ids(peers: &MockServer) -> Vec<String> {
    (written(peers).await.iter())
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_request_timeout_from_keycloak_is_retried_as_every_http_transport_does() {
    let peers = peers().await;
    // Once: Keycloak (or the proxy before it) gives up waiting for our request.
    Mock::given(method("PUT"))
        .and(path("/admin/realms/acme/users/u-1"))
        .respond_with(ResponseTemplate::new(408))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&peers)
        .await;
    let (server, _dir) = start(&peers).await;
    sent_and_bounced(&server, 14).await;
    let row = settled_feedback(&server).await;
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(written_ids(&peers).await, ["u-1", "u-1"], "written again");
}

/// Ada's address held by a second user whose write Keycloak refuses for
/// good (a read-only user of an LDAP federation answers 400).
async fn a_second_user_refusing_writes(peers: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/admin/realms/acme/users"))
        .and(query_param("email", "ada@example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "u-ldap", "username": "ada.ldap", "email": "ada@example.com"},
            {"id": "u-1", "username": "ada", "email": "ada@example.com"}])))
        .with_priority(1)
        .mount(peers)
        .await;
    Mock::given(method("GET"))
        .and(path("/admin/realms/acme/users/u-ldap"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "u-ldap", "username": "ada.ldap", "email": "ada@example.com",
            "federationLink": "ldap-1", "attributes": {"LDAP_ID": ["ada"]}})))
        .mount(peers)
        .await;
    Mock::given(method("PUT"))
        .and(path("/admin/realms/acme/users/u-ldap"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"errorMessage": "error-user-attribute-read-only"})),
        )
        .mount(peers)
        .await;
}

#[tokio::test]
async fn a_user_refusing_its_write_does_not_keep_the_others_with_the_address_unmarked() {
    let peers = peers().await;
    a_second_user_refusing_writes(&peers).await;
    let (server, _dir) = start(&peers).await;
    sent_and_bounced(&server, 15).await;
    let row = settled_feedback(&server).await;
    assert_eq!(
        row["status"], "sent",
        "the users that could be marked are: {row}"
    );
    assert_eq!(written_ids(&peers).await, ["u-ldap", "u-1"]);
}

#[tokio::test]
async fn feedback_fails_when_every_user_with_the_address_refuses_it() {
    let peers = peers().await;
    a_second_user_refusing_writes(&peers).await;
    Mock::given(method("PUT"))
        .and(path("/admin/realms/acme/users/u-1"))
        .respond_with(ResponseTemplate::new(403))
        .with_priority(1)
        .mount(&peers)
        .await;
    let (server, _dir) = start(&peers).await;
    sent_and_bounced(&server, 16).await;
    let row = settled_feedback(&server).await;
    assert_eq!(row["status"], "failed", "{row}");
    let error = row["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("2 refused"), "{error}");
    assert_eq!(
        written_ids(&peers).await.len(),
        2,
        "each user was tried once"
    );
}
