//! `GET /openapi.json`: the OpenAPI 3.1 description of this API.

use axum::Json;
use serde_json::{Value, json};

/// The document, built once per call (it is small and rarely fetched).
pub async fn document() -> Json<Value> {
    Json(spec())
}

fn problem(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn ok(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

/// The OpenAPI document.
pub fn spec() -> Value {
    let message_body = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageRequest"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "mailbridge", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Durable, retrying email delivery for Keycloak."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/messages": {
                "post": {
                    "summary": "Queue one email",
                    "parameters": [
                        {"name": "wait", "in": "query", "schema": {"type": "boolean"}, "description": "Deliver before answering."},
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}}
                    ],
                    "requestBody": message_body,
                    "responses": {
                        "200": ok("Sent (with wait=true), or the first message of a repeated idempotency key", "Accepted"),
                        "202": ok("Durably queued", "Accepted"),
                        "400": problem("Malformed request"), "401": problem("No valid token"),
                        "403": problem("Tenant or sender not allowed"), "413": problem("Body over 1 MiB"),
                        "422": problem("Nothing to send"), "429": problem("The tenant's queue is full"),
                        "502": problem("wait=true: the transport failed; detail carries its error"),
                        "504": problem("wait=true: not delivered in time; it stays queued")
                    }
                },
                "get": {
                    "summary": "List messages (admin)",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}},
                        {"name": "tenant", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "before", "in": "query", "schema": {"type": "string", "format": "uuid"}}
                    ],
                    "responses": {"200": ok("A page, newest first", "Page"), "403": problem("Not an admin")}
                }
            },
            "/v1/messages/{id}": {
                "get": {"summary": "A message's status", "parameters": [id_param()],
                        "responses": {"200": ok("The status row (no bodies)", "MessageRecord"), "404": problem("No such message")}},
                "delete": {"summary": "Delete a sent or failed message (admin)", "parameters": [id_param()],
                           "responses": {"204": {"description": "Deleted"}, "404": problem("No such message"), "409": problem("Not sent or failed")}}
            },
            "/v1/messages/{id}/retry": {
                "post": {"summary": "Queue a failed message again (admin)", "parameters": [id_param()],
                         "responses": {"200": ok("Queued again", "Accepted"), "404": problem("No such message"), "409": problem("Not failed")}}
            },
            "/v1/render": {
                "post": {"summary": "Render without sending", "requestBody": message_body,
                         "responses": {"200": ok("The rendered content", "Rendered"), "422": problem("Nothing to render")}}
            },
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "Running"}}}},
            "/readyz": {"get": {"summary": "Readiness", "security": [], "responses": {"200": {"description": "Ready"}, "503": problem("Store down or shutting down")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "HS256, aud=mailbridge, exp at most 10 minutes ahead, optional tenant and scope=mailbridge:admin"}},
            "schemas": {
                "Mailbox": {"type": "object", "required": ["email"], "properties": {"email": {"type": "string", "format": "email"}, "name": {"type": "string"}}},
                "Status": {"type": "string", "enum": ["queued", "sending", "sent", "retrying", "failed"]},
                "MessageRequest": {"type": "object", "required": ["to"], "properties": {
                    "tenant": {"type": "string"},
                    "to": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"$ref": "#/components/schemas/Mailbox"}},
                    "cc": {"type": "array", "items": {"$ref": "#/components/schemas/Mailbox"}},
                    "bcc": {"type": "array", "items": {"$ref": "#/components/schemas/Mailbox"}},
                    "from": {"$ref": "#/components/schemas/Mailbox"}, "reply_to": {"$ref": "#/components/schemas/Mailbox"},
                    "envelope_from": {"type": "string"},
                    "subject": {"type": "string"}, "text": {"type": "string"}, "html": {"type": "string"},
                    "template": {"type": "string"}, "locale": {"type": "string"}, "data": {"type": "object"},
                    "idempotency_key": {"type": "string", "maxLength": 255},
                    "tags": {"type": "array", "maxItems": 10, "items": {"type": "string"}},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
                }},
                "Accepted": {"type": "object", "required": ["id", "status"], "properties": {"id": {"type": "string", "format": "uuid"}, "status": {"$ref": "#/components/schemas/Status"}}},
                "Rendered": {"type": "object", "properties": {"subject": {"type": "string"}, "text": {"type": "string"}, "html": {"type": "string"}}},
                "MessageRecord": {"type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "tenant": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                    "attempts": {"type": "integer"}, "last_error": {"type": ["string", "null"]}, "transport": {"type": "string"},
                    "provider_message_id": {"type": ["string", "null"]}, "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                    "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
                    "sent_at": {"type": ["string", "null"], "format": "date-time"}
                }},
                "Page": {"type": "object", "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/MessageRecord"}}, "next": {"type": ["string", "null"], "format": "uuid"}}},
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}}}
            }
        }
    })
}
