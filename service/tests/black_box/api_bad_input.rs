//! Every malformed or hostile request gets a 4xx problem+json with a useful detail.

use crate::common;

use common::server::{SECRET, TestServer, split};
use serde_json::{Value, json};

async fn raw(
    server: &TestServer,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = server
        .http
        .post(server.url("/v1/messages"))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let (status, headers, body) = split(req.send().await.unwrap()).await;
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "status {status}: {body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["type"].is_string(),
        "{body}"
    );
    (status, body)
}

fn valid() -> Value {
    json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"})
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn malformed_bodies() {
    let server = TestServer::start(&[]).await;
    let token = server.token(Some("acme"), false);
    let t = Some(token.as_str());
    let json_ct = "application/json";

    let (s, b) = raw(&server, t, json_ct, b"{\"to\": [".to_vec()).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = raw(
        &server,
        t,
        json_ct,
        br#"{"to": "ada@example.com", "subject": 5}"#.to_vec(),
    )
    .await;
    assert!(s == 400 || s == 422, "wrong types: {s} {b}");
    // A body that does not parse is answered naming where, however its
    // JSON type is spelled.
    for ct in [
        json_ct,
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ] {
        let body = br#"{"to": [{"email": 5}], "subject": "Hi", "text": "x"}"#;
        let (s, b) = raw(&server, t, ct, body.to_vec()).await;
        assert_eq!(s, 400, "{ct}: {b}");
        assert!(detail(&b).contains("to[0].email"), "{ct}: {b}");
    }
    let (s, _) = raw(
        &server,
        t,
        "text/plain",
        serde_json::to_vec(&valid()).unwrap(),
    )
    .await;
    assert_eq!(s, 415);

    let mut big = valid();
    big["text"] = json!("x".repeat(1024 * 1024 + 10));
    let (s, b) = raw(&server, t, json_ct, serde_json::to_vec(&big).unwrap()).await;
    assert_eq!(s, 413, "{b}");

    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"to": [], "subject": "Hi", "text": "x"}), 400, "to"),
        (
            json!({"to": (0..51).map(|i| json!({"email": format!("u{i}@example.com")})).collect::<Vec<_>>(), "subject": "Hi", "text": "x"}),
            400,
            "to",
        ),
        (
            json!({"to": [{"email": "not an address"}], "subject": "Hi", "text": "x"}),
            400,
            "to[0].email",
        ),
        (
            json!({"to": [{"email": "ada@example.com", "name": "Ada\r\nBcc: evil@example.com"}], "subject": "Hi", "text": "x"}),
            400,
            "to[0].name",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "subject": "Hi\nBcc: evil@example.com", "text": "x"}),
            400,
            "subject",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "from": {"email": "a@b.example\r\nX: y"}, "subject": "Hi", "text": "x"}),
            400,
            "from.email",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "reply_to": {"email": "x@y.example", "name": "a\nb"}, "subject": "Hi", "text": "x"}),
            400,
            "reply_to.name",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "template": "no-such-template"}),
            422,
            "unknown template",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}]}),
            422,
            "no `template`",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "subject": "Hi"}),
            422,
            "text",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "template": "../../etc/passwd"}),
            400,
            "template",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "d\u{0}.\r\n"}),
            400,
            "text: must not contain NUL",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "html": "<p>\u{0}</p>"}),
            400,
            "html: must not contain NUL",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "template": "password-reset", "data": {"user": {"firstName": "A\u{0}"}}}),
            400,
            "data.user.firstName",
        ),
        (
            json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "x", "tags": ["a\r\nb"]}),
            400,
            "tags[0]",
        ),
    ];
    for (body, want, needle) in cases {
        let (s, b) = raw(&server, t, json_ct, serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(s, want, "{body} -> {b}");
        assert!(
            detail(&b).contains(needle),
            "detail of {body} should mention {needle}: {b}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_tokens_and_foreign_tenants() {
    let server = TestServer::start(&[]).await;
    let body = serde_json::to_vec(&valid()).unwrap();
    let ct = "application/json";
    let (s, b) = raw(&server, None, ct, body.clone()).await;
    assert_eq!(s, 401);
    assert!(detail(&b).contains("Authorization"), "{b}");
    let (s, _) = raw(&server, Some("not-a-jwt"), ct, body.clone()).await;
    assert_eq!(s, 401);
    let foreign = mailbridge::auth::mint(
        b"some-other-secret-some-other-secret!",
        Some("acme"),
        false,
        60,
    )
    .unwrap();
    let (s, _) = raw(&server, Some(&foreign), ct, body.clone()).await;
    assert_eq!(s, 401);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none"}"#),
        b64.encode(format!(r#"{{"aud":"mailbridge","exp":{exp}}}"#))
    );
    let (s, _) = raw(&server, Some(&none), ct, body.clone()).await;
    assert_eq!(s, 401);

    let mut other = valid();
    other["tenant"] = json!("globex");
    let token = server.token(Some("acme"), false);
    let (s, b) = raw(
        &server,
        Some(&token),
        ct,
        serde_json::to_vec(&other).unwrap(),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(detail(&b).contains("acme"));
    // An admin may act for any tenant.
    let admin = server.token(None, true);
    let resp = server
        .http
        .post(server.url("/v1/messages"))
        .bearer_auth(admin)
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(!SECRET.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_methods_and_ids() {
    let server = TestServer::start(&[]).await;
    let token = server.token(None, true);
    let resp = server
        .http
        .get(server.url("/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = server
        .http
        .delete(server.url("/v1/messages"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (s, _) = server.get("/v1/messages/not-a-uuid", &token).await;
    assert_eq!(s, 404);
    let (s, _) = server
        .get("/v1/messages/0190b8a0-0000-7000-8000-000000000000", &token)
        .await;
    assert_eq!(s, 404);
    // A query the routes cannot read is a problem too, before anything is queued.
    for path in ["/v1/messages?wait=maybe", "/v1/messages?wait=1&wait=2"] {
        let resp = server
            .http
            .post(server.url(path))
            .bearer_auth(&token)
            .json(&valid())
            .send()
            .await
            .unwrap();
        let (status, headers, body) = split(resp).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(detail(&body).contains("wait"), "{body}");
    }
    let (s, page) = server.get("/v1/messages?status=queued", &token).await;
    assert_eq!(s, 200);
    assert_eq!(page["messages"], json!([]), "nothing was queued");
    let (s, body) = server.get("/v1/messages?limit=-1", &token).await;
    assert_eq!(s, 400, "{body}");
    // A path segment that is not UTF-8 once decoded, on every route that
    // reads one: a problem, not the framework's plain-text answer.
    for (method, path) in [
        ("GET", "/v1/messages/%ff"),
        ("DELETE", "/v1/messages/%ff"),
        ("POST", "/v1/messages/%ff/retry"),
        ("POST", "/v1/events/%ff"),
        ("PUT", "/v1/suppressions/%ff/ada@example.com"),
        ("DELETE", "/v1/suppressions/acme/%ff"),
    ] {
        let resp = server
            .http
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth(&token)
            .json(&json!({"reason": "manual"}))
            .send()
            .await
            .unwrap();
        let (status, headers, body) = split(resp).await;
        assert!((400..500).contains(&status), "{method} {path}: {status}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{method} {path}: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_full_tenant_queue_answers_429() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dsn = format!("smtp://127.0.0.1:{closed}?tls=none");
    let server = TestServer::start(&[
        ("MAILBRIDGE_TRANSPORT", &dsn),
        ("MAILBRIDGE_MAX_PENDING", "1"),
    ])
    .await;
    let (s, _, _) = server.post("/v1/messages", Some("acme"), &valid()).await;
    assert_eq!(s, 202);
    let (s, headers, b) = server.post("/v1/messages", Some("acme"), &valid()).await;
    assert_eq!(s, 429, "{b}");
    assert!(headers.contains_key("retry-after"));
    // Another tenant is not held back.
    let (s, _, _) = server.post("/v1/messages", Some("globex"), &valid()).await;
    assert_eq!(s, 202);
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_cannot_send_from_another_domain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mb.toml");
    std::fs::write(
        &path,
        "[tenants.acme]\nfrom = \"ACME <no-reply@acme.example>\"\n",
    )
    .unwrap();
    let server = TestServer::start(&[("MAILBRIDGE_CONFIG", path.to_str().unwrap())]).await;
    let mut body = valid();
    body["from"] = json!({"email": "ceo@globex.example"});
    let (s, _, b) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(s, 403, "{b}");
    body["from"] = json!({"email": "support@acme.example"});
    let (s, _, _) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(s, 202);
    // The envelope sender is held to the same domain: bounces to another
    // tenant's domain, SPF checked against it.
    body["envelope_from"] = json!("bounces@globex.example");
    let (s, _, b) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(s, 403, "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("envelope_from"),
        "{b}"
    );
    for allowed in ["bounces@acme.example", "b@bounces.ACME.example"] {
        body["envelope_from"] = json!(allowed);
        let (s, _, b) = server.post("/v1/messages", Some("acme"), &body).await;
        assert_eq!(s, 202, "{allowed}: {b}");
    }
    body["envelope_from"] = json!("b@notacme.example");
    let (s, _, b) = server.post("/v1/messages", Some("acme"), &body).await;
    assert_eq!(s, 403, "{b}");
    server.stop().await;
}

/// What a problem repeats of the request is short and on one line: a long
/// or multi-line transport name, status or metadata key comes back cut to
/// 40 characters with its control characters escaped.
#[tokio::test]
async fn problems_repeat_little_of_the_request() {
    let server = TestServer::start(&[]).await;
    let long = format!("a\r\nforged: yes{}", "x".repeat(60_000));
    let shown = |body: &Value| {
        let detail = detail(body).to_owned();
        assert!(
            detail.len() < 300,
            "{} bytes: {}",
            detail.len(),
            &detail[..300]
        );
        assert!(!detail.contains('\n') && !detail.contains('\r'), "{detail}");
        assert!(detail.contains("a\\r\\nforged"), "{detail}");
    };
    let transport =
        percent_encoding::utf8_percent_encode(&long[..5000], percent_encoding::NON_ALPHANUMERIC);
    let answer = server
        .http
        .post(server.url(&format!("/v1/events/{transport}")))
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, _, body) = common::server::split(answer).await;
    assert_eq!(status, 404, "{body}");
    shown(&body);

    let admin = server.token(None, true);
    let status_query =
        percent_encoding::utf8_percent_encode(&long[..200], percent_encoding::NON_ALPHANUMERIC);
    let (status, body) = server
        .get(&format!("/v1/messages?status={status_query}"), &admin)
        .await;
    assert_eq!(status, 400, "{body}");
    shown(&body);

    let mut request = valid();
    request["metadata"] = json!({ long.clone(): "v" });
    let token = server.token(Some("acme"), false);
    let (status, body) = raw(
        &server,
        Some(&token),
        "application/json",
        serde_json::to_vec(&request).unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    shown(&body);
}
