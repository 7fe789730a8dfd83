//! The token endpoint conversation shared by every grant (RFC 6749 §5).

use std::time::Duration;

use serde::Deserialize;

use crate::transport::http::{BodyError, MAX_DOCUMENT, body_at_most};

use super::{AccessToken, DEFAULT_LIFETIME, OAuthError};

/// Longest part of an error body kept in a message.
const MAX_REASON: usize = 300;

/// Longest lifetime a token is kept for, whatever the endpoint says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds, as a number (RFC 6749) or a string (Entra ID's v1
    /// endpoint, ADFS).
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// The lifetime `expires_in` gives: whole seconds, as a number or a string,
/// at most [`MAX_LIFETIME`]; [`DEFAULT_LIFETIME`] when absent or unreadable.
fn lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    let seconds = match expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 0.0 => {
            Duration::from_secs_f64(s.min(MAX_LIFETIME.as_secs_f64()))
        }
        _ => DEFAULT_LIFETIME,
    }
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
        let lifetime = lifetime(token.expires_in.as_ref());
        return Ok(AccessToken::new(token.access_token, lifetime));
    }
    let reason = error_reason(&body, secrets);
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

/// The RFC 6749 `error` and `error_description`, with `secrets` blanked out
/// before it is cut short (a secret cut in two would no longer be found).
/// Any other answer is not quoted: an endpoint (or a proxy) that echoes the
/// request would hand back the client secret in some encoding or other.
fn error_reason(body: &[u8], secrets: &[&str]) -> String {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => {
            let reason = match e.error_description {
                Some(d) => format!("{}: {}", e.error, first_line(&d)),
                None => e.error,
            };
            truncate(&redact(&reason, secrets))
        }
        Err(_) => format!(
            "an answer that is not an OAuth error document ({} bytes, not shown)",
            body.len()
        ),
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

/// `text` with every non-empty secret replaced, as it is and in the forms a
/// request carries it (form-urlencoded, percent-encoded).
pub(super) fn redact(text: &str, secrets: &[&str]) -> String {
    let forms = |secret: &&str| {
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let percent =
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        [secret.to_string(), form, percent]
    };
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(forms)
        .fold(text.to_owned(), |t, s| t.replace(&s, "<redacted>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oauth_error_body() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}"#;
        assert_eq!(
            error_reason(body, &[]),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            error_reason(b"<html>oops</html>", &[]),
            "an answer that is not an OAuth error document (17 bytes, not shown)"
        );
    }

    #[test]
    fn blanks_secrets() {
        assert_eq!(
            redact("bad s3cr3t here", &["s3cr3t", ""]),
            "bad <redacted> here"
        );
    }

    #[test]
    fn a_secret_echoed_in_any_encoding_or_across_the_cut_is_blanked() {
        let secret = "Ab8Q~s3cr3t V4lue.xyz";
        let echoed = |value: &str| {
            let description = format!("{}client_id=app&client_secret={value}", "x".repeat(280));
            serde_json::to_vec(
                &serde_json::json!({"error": "invalid_request", "error_description": description}),
            )
            .unwrap()
        };
        for value in [
            secret,
            "Ab8Q%7Es3cr3t+V4lue.xyz",
            "Ab8Q%7Es3cr3t%20V4lue%2Exyz",
        ] {
            let reason = error_reason(&echoed(value), &[secret]);
            assert!(!reason.contains("s3cr3t"), "{reason}");
            assert!(!reason.contains("Ab8Q"), "{reason}");
        }
        // A body that is no error document is not quoted at all.
        let form = format!("grant_type=client_credentials&client_secret={secret}");
        let reason = error_reason(form.as_bytes(), &[secret]);
        assert!(!reason.contains("s3cr3t"), "{reason}");
    }

    #[test]
    fn expires_in_is_read_as_a_number_or_a_string_and_bounded() {
        use serde_json::json;
        let secs = |v: serde_json::Value| lifetime(Some(&v)).as_secs();
        assert_eq!(secs(json!(3599)), 3599);
        assert_eq!(secs(json!("3599")), 3599);
        assert_eq!(secs(json!(u64::MAX)), 24 * 3600);
        assert_eq!(secs(json!("1e300")), 24 * 3600);
        assert_eq!(secs(json!(-5)), DEFAULT_LIFETIME.as_secs());
        assert_eq!(secs(json!("soon")), DEFAULT_LIFETIME.as_secs());
        assert_eq!(lifetime(None), DEFAULT_LIFETIME);
        // A token for the longest lifetime is made without overflow.
        let token = AccessToken::new("t", lifetime(Some(&json!(u64::MAX))));
        assert!(token.expires_at() > std::time::SystemTime::now());
    }
}
