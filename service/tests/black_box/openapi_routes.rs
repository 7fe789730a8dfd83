//! `GET /openapi.json` describes exactly the routes the server serves, with
//! the request and answer schemas of the API contract.

use crate::common;

use std::collections::BTreeSet;

use common::server::TestServer;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Whether the router has a handler for `method` on `path` (not its fallbacks).
async fn served(server: &TestServer, method: &str, path: &str) -> bool {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let resp = server
        .http
        .request(method, server.url(path))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let fallback = (status == 404 && body["detail"] == "no such endpoint") || status == 405;
    !fallback
}

fn refs(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.insert(r.clone());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has no properties"))
        .keys()
        .cloned()
        .collect()
}

/// The properties of a schema, with those of the schemas it flattens (`allOf`).
fn flattened_properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    let node = &doc["components"]["schemas"][schema];
    let mut found = BTreeSet::new();
    let parts = node["allOf"].as_array().cloned().unwrap_or_default();
    for part in parts.iter().chain(std::iter::once(node)) {
        if let Some(name) = part["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
            found.extend(flattened_properties(doc, name));
        }
        if let Some(own) = part["properties"].as_object() {
            found.extend(own.keys().cloned());
        }
    }
    found
}

#[tokio::test]
async fn documents_every_route_and_nothing_else() {
    let server = TestServer::start(&[]).await;
    let resp = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "served without a token");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{id}", "0195f0e2-7c1a-7000-8000-000000000000");
        for method in METHODS {
            let in_doc = item.get(method).is_some();
            assert_eq!(
                served(&server, method, &concrete).await,
                in_doc,
                "{} {path}: served and documented differ",
                method.to_uppercase()
            );
            if in_doc {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    for route in [
        "POST /v1/messages",
        "GET /v1/messages",
        "GET /v1/messages/{id}",
        "POST /v1/messages/{id}/retry",
        "POST /v1/render",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /openapi.json",
    ] {
        assert!(
            documented.contains(route),
            "{route} is not documented: {documented:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn schemas_follow_the_contract_and_every_reference_resolves() {
    let doc = mailbridge::api::openapi::document();
    let mut found = BTreeSet::new();
    refs(&doc, &mut found);
    for r in &found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
    let request = properties(&doc, "MessageRequest");
    for field in [
        "tenant",
        "to",
        "cc",
        "bcc",
        "from",
        "reply_to",
        "subject",
        "text",
        "html",
        "template",
        "locale",
        "data",
        "idempotency_key",
        "tags",
        "metadata",
    ] {
        assert!(request.contains(field), "MessageRequest lacks {field}");
    }
    let record = properties(&doc, "MessageRecord");
    for field in [
        "id",
        "tenant",
        "status",
        "attempts",
        "last_error",
        "transport",
        "provider_message_id",
        "created_at",
        "updated_at",
        "sent_at",
    ] {
        assert!(record.contains(field), "MessageRecord lacks {field}");
    }
    assert_eq!(
        properties(&doc, "Accepted"),
        BTreeSet::from(["id".into(), "status".into(), "suppressed_recipients".into()])
    );
    let view = flattened_properties(&doc, "MessageView");
    for field in ["id", "status", "delivery", "events"] {
        assert!(view.contains(field), "MessageView lacks {field}");
    }
    assert_eq!(
        properties(&doc, "RenderedContent"),
        BTreeSet::from(["subject".into(), "text".into(), "html".into()])
    );
    assert_eq!(
        properties(&doc, "Problem"),
        BTreeSet::from([
            "type".into(),
            "title".into(),
            "status".into(),
            "detail".into()
        ])
    );
    let statuses = doc["components"]["schemas"]["Status"]["enum"].clone();
    assert_eq!(
        statuses,
        serde_json::json!([
            "queued",
            "sending",
            "sent",
            "retrying",
            "failed",
            "suppressed"
        ])
    );
    let send = &doc["paths"]["/v1/messages"]["post"];
    assert_eq!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MessageRequest"
    );
    assert_eq!(
        send["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Accepted"
    );
}
