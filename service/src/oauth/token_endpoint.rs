//! The token endpoint conversation shared by every grant (RFC 6749 §5).

use std::time::Duration;

use serde::Deserialize;

use crate::transport::http::{BodyError, MAX_DOCUMENT, body_at_most};

use super::{AccessToken, DEFAULT_LIFETIME, OAuthError};

/// Longest part of an error body kept in a message.
const MAX_REASON: usize = 300;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Posts `form` to `url` and reads the access token from the answer.
/// Any of `secrets` found in an error text is blanked out.
pub(super) async fn request_token(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    secrets: &[&str],
) -> Result<AccessToken, OAuthError> {
    let unavailable = |reason: String| OAuthError::Unavailable {
        url: url.to_owned(),
        reason: redact(&reason, secrets),
    };
    let response = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .map_err(|e| unavailable(describe(&e.without_url())))?;
    let status = response.status();
    let body = body_at_most(response, MAX_DOCUMENT)
        .await
        .map_err(|e| match e {
            BodyError::Read(e) => unavailable(describe(&e.without_url())),
            too_large => unavailable(too_large.to_string()),
        })?;
    if status.is_success() {
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| unavailable("answer holds no access_token".to_owned()))?;
        let lifetime = token
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        return Ok(AccessToken::new(token.access_token, lifetime));
    }
    let reason = redact(&error_reason(&body), secrets);
    // A 4xx other than 429 means the grant itself is wrong; the rest may pass.
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(OAuthError::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
            reason,
        });
    }
    Err(OAuthError::Unavailable {
        url: url.to_owned(),
        reason: format!("HTTP {}: {reason}", status.as_u16()),
    })
}

/// The RFC 6749 `error` and `error_description`, or the start of the body.
fn error_reason(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => match e.error_description {
            Some(d) => truncate(&format!("{}: {}", e.error, first_line(&d))),
            None => e.error,
        },
        Err(_) => truncate(String::from_utf8_lossy(body).trim()),
    }
}

/// Microsoft puts trace ids and timestamps on further lines of the description.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_REASON) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A reqwest error with its causes (timeout, connection refused, TLS…).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `text` with every non-empty secret replaced.
pub(super) fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |t, s| t.replace(s, "<redacted>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oauth_error_body() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}"#;
        assert_eq!(
            error_reason(body),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(error_reason(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn blanks_secrets() {
        assert_eq!(
            redact("bad s3cr3t here", &["s3cr3t", ""]),
            "bad <redacted> here"
        );
    }
}
