//! `GET /openapi.json`: the OpenAPI 3.1 document of this API.
//!
//! Schemas are derived from the very types the handlers read and write
//! (`utoipa::ToSchema`), so they cannot drift; the paths are written out
//! here, and a test checks them against the routes the router serves.

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::admin::Page;
use super::compose::Content;
use super::error::Problem;
use super::events::Received;
use super::messages::{Accepted, MessageView};
use super::request::MessageRequest;
use super::suppressions::SuppressionList;
use crate::email::Mailbox;
use crate::events::{Bounce, DeliveryEvent, EventType};
use crate::queue::{MessageRecord, Status};
use crate::suppression::{Reason, Suppression};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mailbridge",
        description = "Durable, retrying email delivery for Keycloak. Every endpoint under /v1 takes \
                       `Authorization: Bearer <JWT>` (HS256, aud `mailbridge`); errors are \
                       application/problem+json (RFC 9457)."
    ),
    components(schemas(
        MessageRequest,
        Mailbox,
        Accepted,
        MessageRecord,
        MessageView,
        DeliveryEvent,
        EventType,
        Bounce,
        Received,
        Suppression,
        SuppressionList,
        Reason,
        Status,
        Page,
        Content,
        Problem
    ))
)]
struct Schemas;

static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

/// `GET /openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(DOCUMENT.clone())
}

/// The whole document.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(Schemas::openapi()).unwrap_or_else(|_| json!({}));
    doc["openapi"] = json!("3.1.0");
    doc["paths"] = paths();
    doc["security"] = json!([{"bearer": []}]);
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    });
    doc
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema(name)}}})
}

fn answer(description: &str, name: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema(name)}}})
}

fn problem(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": schema("Problem")}}})
}

fn id_parameter() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

fn suppression_parameters() -> Value {
    json!([
        {"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "email", "in": "path", "required": true, "schema": {"type": "string", "format": "email"}}
    ])
}

/// Answers shared by every authenticated endpoint (each reads the store).
fn with_auth_errors(mut responses: Value) -> Value {
    responses["401"] = problem("No valid token.");
    responses["403"] = problem("The token does not allow this (tenant or admin scope).");
    responses["503"] = problem("The queue store does not answer; see Retry-After.");
    responses
}

fn paths() -> Value {
    json!({
        "/v1/messages": {
            "post": {
                "operationId": "sendMessage",
                "summary": "Queue one email (202 once it is durably stored)",
                "parameters": [
                    {"name": "wait", "in": "query", "schema": {"type": "boolean"},
                     "description": "Deliver before answering (bounded by MAILBRIDGE_WAIT_TIMEOUT)."},
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}}
                ],
                "requestBody": body("MessageRequest"),
                "responses": with_auth_errors(json!({
                    "202": answer("Queued.", "Accepted"),
                    "200": answer("Delivered (`?wait=true`), or a repeated idempotency key: the first message.", "Accepted"),
                    "400": problem("Invalid field."),
                    "408": problem("The body did not arrive within MAILBRIDGE_BODY_TIMEOUT."),
                    "413": problem("Body over 1 MiB."),
                    "422": problem("Nothing to send (unknown template and no content), or HTML nested too deep to derive its text (type `…/html-too-complex`)."),
                    "429": problem("The tenant's queue is over its bound, or the message is beyond its recipient_rate or template_rates; see Retry-After."),
                    "502": problem("`?wait=true`: the transport refused; detail carries its error."),
                    "504": problem("`?wait=true`: not delivered in time; the message stays queued.")
                }))
            },
            "get": {
                "operationId": "listMessages",
                "summary": "Admin: a page of status rows, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": schema("Status")},
                    {"name": "tenant", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "before", "in": "query", "schema": {"type": "string", "format": "uuid"}}
                ],
                "responses": with_auth_errors(json!({
                    "200": answer("A page.", "MessagePage"),
                    "400": problem("Unknown status.")
                }))
            }
        },
        "/v1/messages/{id}": {
            "get": {
                "operationId": "getMessage",
                "parameters": [id_parameter()],
                "summary": "One message's status and delivery events (no bodies)",
                "responses": with_auth_errors(json!({
                    "200": answer("The status row, `delivery` (the latest event) and `events`.", "MessageView"),
                    "404": problem("No such message, or not the caller's tenant's.")
                }))
            },
            "delete": {
                "operationId": "deleteMessage",
                "parameters": [id_parameter()],
                "summary": "Admin: delete a sent or failed message",
                "responses": with_auth_errors(json!({
                    "204": {"description": "Deleted."},
                    "404": problem("No such message."),
                    "409": problem("The message is still queued, sending or retrying.")
                }))
            }
        },
        "/v1/messages/{id}/retry": {
            "post": {
                "operationId": "retryMessage",
                "parameters": [id_parameter()],
                "summary": "Admin: a failed message back to queued",
                "responses": with_auth_errors(json!({
                    "200": answer("Queued again.", "Accepted"),
                    "404": problem("No such message."),
                    "409": problem("The message is not failed.")
                }))
            }
        },
        "/v1/render": {
            "post": {
                "operationId": "render",
                "summary": "Render a message's content without sending it",
                "requestBody": body("MessageRequest"),
                "responses": with_auth_errors(json!({
                    "200": answer("The rendered content.", "RenderedContent"),
                    "400": problem("Invalid field."),
                    "408": problem("The body did not arrive within MAILBRIDGE_BODY_TIMEOUT."),
                    "422": problem("Nothing to render, or HTML nested too deep to derive its text (type `…/html-too-complex`).")
                }))
            }
        },
        "/v1/suppressions": {
            "get": {
                "operationId": "listSuppressions",
                "summary": "Admin: the suppression list, newest first",
                "parameters": [
                    {"name": "tenant", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
                ],
                "responses": with_auth_errors(json!({
                    "200": answer("The list.", "SuppressionList"),
                    "400": problem("Invalid tenant name.")
                }))
            }
        },
        "/v1/suppressions/{tenant}/{email}": {
            "put": {
                "operationId": "suppressAddress",
                "summary": "Admin: stop sending to an address",
                "parameters": suppression_parameters(),
                "responses": with_auth_errors(json!({
                    "201": answer("Listed.", "Suppression"),
                    "200": answer("Listed already (the first entry is kept).", "Suppression"),
                    "400": problem("Invalid tenant name or address.")
                }))
            },
            "delete": {
                "operationId": "unsuppressAddress",
                "summary": "Admin: send to an address again",
                "parameters": suppression_parameters(),
                "responses": with_auth_errors(json!({
                    "204": {"description": "Taken off the list."},
                    "400": problem("Invalid tenant name or address."),
                    "404": problem("Not on the list.")
                }))
            }
        },
        "/v1/events/{transport}": {
            "post": {
                "operationId": "receiveDeliveryEvents",
                "summary": "A provider's delivery events, verified with its own scheme and the transport's webhook_key",
                "security": [],
                "parameters": [{"name": "transport", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {}},
                    "message/rfc822": {"schema": {"type": "string"}, "description": "SMTP transports: a delivery status notification (RFC 3464), raw"}
                }},
                "responses": {
                    "200": answer("Stored, unmatched and repeated counts.", "Received"),
                    "400": problem("Verified, but not the provider's event format."),
                    "401": problem("Not verified as the provider's, or signed more than 10 minutes ago."),
                    "404": problem("No such transport, or it has no webhook_key."),
                    "413": problem("Body over 1 MiB."),
                    "503": problem("The queue store does not answer, or (SES) too many SNS signing certificates are being fetched at once or the certificate could not be reached; see Retry-After.")
                }
            }
        },
        "/healthz": {"get": open("health", "200 while the process runs.", "text")},
        "/readyz": {"get": open("ready", "200 when the store answers and the service accepts, else 503.", "text")},
        "/metrics": {"get": open("metrics", "Prometheus text: metrics prefixed mailbridge_.", "prometheus")},
        "/openapi.json": {"get": open("openapi", "This document.", "json")}
    })
}

/// An endpoint without a token.
fn open(operation: &str, summary: &str, kind: &str) -> Value {
    let content = match kind {
        "prometheus" => json!({"text/plain": {"schema": {"type": "string"}}}),
        "json" => json!({"application/json": {"schema": {"type": "object"}}}),
        _ => json!({"application/json": {"schema": {
            "type": "object", "properties": {"status": {"type": "string"}}
        }}}),
    };
    let mut responses = json!({"200": {"description": summary, "content": content}});
    if operation == "ready" {
        responses["503"] = problem("Not ready: the store does not answer, or shutting down.");
    }
    json!({"operationId": operation, "summary": summary, "security": [], "responses": responses})
}
