//! The one error type of the HTTP API: `application/problem+json` (RFC 9457),
//! with a detail fit for the caller and never an internal message.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub detail: String,
    /// For 429/503: when to come back.
    pub retry_after: Option<Duration>,
    /// The last segment of the problem type when it says more than the
    /// status (`html-too-complex`); the status code otherwise.
    pub problem: Option<&'static str>,
}

/// The body of every error answer (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ApiError {
    /// An error of `status` with `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            retry_after: None,
            problem: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no valid token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: valid token, not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: no such thing (or not yours).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the thing is not in a state that allows this.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: well-formed but cannot be processed (e.g. nothing to send).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 422 of type `…/html-too-complex`: deriving text from the HTML would
    /// pass the bound on its work.
    pub fn html_too_complex(detail: impl Into<String>) -> Self {
        Self {
            problem: Some("html-too-complex"),
            ..Self::unprocessable(detail)
        }
    }

    /// 408: the request's body did not arrive within its time.
    pub fn body_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, detail)
    }

    /// 429: the tenant's queue is over its bound.
    pub fn too_many(detail: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, detail)
        }
    }

    /// 502: the transport refused or failed (`?wait=true`); the detail is its real error.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, detail)
    }

    /// 503: not ready (store down, shutting down).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(Duration::from_secs(5)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
        }
    }

    /// 500: logs the cause, answers without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error while handling a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an internal error occurred; the operator can find it in the service log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let kind = match self.problem {
            Some(name) => format!("https://mailbridge.dev/problems/{name}"),
            None => format!("https://mailbridge.dev/problems/{}", self.status.as_u16()),
        };
        let problem = Problem {
            kind,
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = self.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is larger than 1 MiB",
                )
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than 1 MiB",
            ),
            other => Self::bad_request(shorten_quotes(&other.body_text())),
        }
    }
}

/// The longest quoted value a rejection repeats back, in characters.
const QUOTE_MAX: usize = 40;

/// `text` as a problem's `detail` or a log line may repeat it: at most
/// [`QUOTE_MAX`] characters, control characters (CR, LF, ESC, …) escaped, so
/// that input echoed back can neither be long nor forge a line of its own.
pub fn excerpt(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(QUOTE_MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(QUOTE_MAX).is_some() {
        out.push('…');
    }
    out
}

/// Shortens every quoted value in a parser's message to [`QUOTE_MAX`]
/// characters, so a 20 kB string sent in the wrong place is not echoed whole;
/// the field and what was expected stay readable.
pub fn shorten_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(1024));
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        let mut kept = 0;
        let mut escaped = false;
        for c in chars.by_ref() {
            let closing = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            if closing {
                if kept > QUOTE_MAX {
                    out.push('…');
                }
                out.push('"');
                break;
            }
            kept += 1;
            if kept <= QUOTE_MAX {
                out.push(c);
            }
        }
    }
    out
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(shorten_quotes(&rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(shorten_quotes(&rejection.body_text()))
    }
}

impl From<crate::queue::StoreError> for ApiError {
    /// The store did not answer (database down, disk full): 503 with
    /// `Retry-After`, the cause in the log only.
    fn from(error: crate::queue::StoreError) -> Self {
        tracing::error!(error = %error, "the queue store failed while handling a request");
        if error.outcome_unknown() {
            // Not 503: a caller may take 503 as "not stored" and send the
            // email another way. The same key again tells which it was.
            return Self {
                retry_after: Some(Duration::from_secs(5)),
                ..Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the queue store did not confirm the commit, and it may have happened: repeat the \
                     request with the same Idempotency-Key to learn the message's id (it is never \
                     stored twice)",
                )
            };
        }
        Self::unavailable(
            "the queue store did not answer; try again shortly (a retry with the same \
             Idempotency-Key cannot send twice; the cause is in the service log)",
        )
    }
}

impl From<crate::email::InvalidField> for ApiError {
    fn from(error: crate::email::InvalidField) -> Self {
        Self::bad_request(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_excerpt_is_short_and_on_one_line() {
        assert_eq!(super::excerpt("plain"), "plain");
        let forged = format!("x\r\n2026-01-01 INFO signed in{}", "y".repeat(100));
        let shown = super::excerpt(&forged);
        assert!(shown.starts_with("x\\r\\n2026"), "{shown}");
        assert!(!shown.contains('\n') && shown.ends_with('…'), "{shown}");
        assert_eq!(super::excerpt(&"é".repeat(40)), "é".repeat(40));
    }

    use super::shorten_quotes;

    #[test]
    fn long_quoted_values_are_cut_and_the_rest_is_kept() {
        let long = "x".repeat(500);
        let text = format!("to: invalid type: string \"{long}\", expected a sequence at line 1");
        let short = shorten_quotes(&text);
        assert_eq!(
            short,
            format!(
                "to: invalid type: string \"{}…\", expected a sequence at line 1",
                "x".repeat(40)
            )
        );
        // Escaped quotes stay inside their value; short values are untouched.
        let text = r#"a: "say \"hi\"" and "b""#;
        assert_eq!(shorten_quotes(text), text);
        // An unclosed quote (cut message) does not panic or grow.
        assert_eq!(shorten_quotes("oops \"abc"), "oops \"abc");
    }
}
