//! What every provider API transport shares: one HTTP client, the `?endpoint=`
//! option, and one classification of answers into [`TransportError`].
//!
//! Classification: 2xx is success; 408, 429 and 5xx (but 501 and 505) are
//! transient, carrying the provider's hint of when to retry; every other
//! status is permanent, including 401 and 403 (an API key that is refused
//! will not fix itself). A transport that can refresh its credentials (OAuth)
//! turns a 401 into [`TransportError::Auth`] itself, see [`error_for`].

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, RETRY_AFTER};

use super::{Dsn, DsnError, TransportError};
use crate::email::{Mailbox, OutgoingMessage};

/// The `User-Agent` of every request we make.
pub const USER_AGENT: &str = concat!("mailbridge/", env!("CARGO_PKG_VERSION"));
/// Bound of establishing a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one whole request, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of an answer we read: provider answers are small JSON documents.
const MAX_BODY: usize = 64 * 1024;
/// Most bytes of a provider's error text we keep in an error message.
const MAX_ERROR_TEXT: usize = 500;
/// Longest wait we accept from a provider's hint; beyond it a hint is likely wrong.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

/// The shared HTTP client (rustls, timeouts, our user agent, no redirects).
///
/// One client for all transports, so they share one connection pool.
pub fn client() -> Result<reqwest::Client, DsnError> {
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        // A mail API that redirects a POST is misconfigured; following it could
        // resend the message elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DsnError::invalid("http", format!("cannot build HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// The base URL of a provider: the DSN's `?endpoint=` or `default`.
///
/// Only `http` and `https` URLs with a host are accepted.
pub fn endpoint(dsn: &Dsn, default: &str) -> Result<url::Url, DsnError> {
    let text = dsn.option("endpoint").unwrap_or(default);
    let url = url::Url::parse(text)
        .map_err(|e| DsnError::invalid(&dsn.scheme, format!("endpoint `{text}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(DsnError::invalid(
            &dsn.scheme,
            format!("endpoint `{text}` must be an http(s) URL with a host"),
        ));
    }
    Ok(url)
}

/// Refuses a DSN whose host is not `default` or that has an option not in
/// `allowed` (`endpoint` is always allowed), so that a typo is not ignored.
pub fn check_dsn(dsn: &Dsn, allowed: &[&str]) -> Result<(), DsnError> {
    if dsn.host != "default" {
        return Err(DsnError::invalid(
            &dsn.scheme,
            "the host must be `default`; use ?endpoint=URL to change the base URL",
        ));
    }
    match dsn
        .options
        .keys()
        .find(|k| k.as_str() != "endpoint" && !allowed.contains(&k.as_str()))
    {
        Some(unknown) => Err(DsnError::invalid(
            &dsn.scheme,
            format!("unknown option `{unknown}`"),
        )),
        None => Ok(()),
    }
}

/// An API key or token: kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `base` with `segments` appended to its path, each percent-encoded.
pub fn join(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    // Only cannot-be-a-base URLs refuse segments; `endpoint` never returns one.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Reads the answer and classifies it: `Ok` with status, headers and body for
/// 2xx, else the [`TransportError`] its status calls for (see [`error_for`]).
pub async fn classify(
    provider: &str,
    resp: reqwest::Response,
) -> Result<(StatusCode, HeaderMap, Bytes), TransportError> {
    let (status, headers, body) = read_answer(provider, resp).await?;
    if status.is_success() {
        return Ok((status, headers, body));
    }
    Err(error_for(
        provider,
        status,
        &headers,
        &body,
        SystemTime::now(),
    ))
}

/// Reads the answer without judging it, for providers whose body can
/// contradict the status (a 200 carrying an error, a 4xx that is transient).
pub async fn read_answer(
    provider: &str,
    resp: reqwest::Response,
) -> Result<(StatusCode, HeaderMap, Bytes), TransportError> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = read_body(provider, resp).await?;
    Ok((status, headers, body))
}

/// Reads at most [`MAX_BODY`] bytes of an answer; the rest is dropped.
async fn read_body(provider: &str, mut resp: reqwest::Response) -> Result<Bytes, TransportError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| network_error(provider, e))? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body.freeze())
}

/// The error a non-2xx answer stands for; pure, so other transports can reuse it.
///
/// The message reads `PROVIDER: HTTP 400 Bad Request: <provider's text>`.
pub fn error_for(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> TransportError {
    let text = error_text(body);
    let message = if text.is_empty() {
        format!("{provider}: HTTP {status}")
    } else {
        format!("{provider}: HTTP {status}: {text}")
    };
    if is_transient_status(status) {
        TransportError::Transient {
            message,
            retry_after: parse_retry_after(headers, now),
        }
    } else {
        TransportError::Permanent { message }
    }
}

/// Whether an HTTP status calls for a later retry.
pub fn is_transient_status(status: StatusCode) -> bool {
    match status.as_u16() {
        408 | 429 => true,
        // 501 and 505: the endpoint will never do what we ask.
        501 | 505 => false,
        code => (500..600).contains(&code),
    }
}

/// A network failure (refused, reset, timeout, unreadable answer): transient.
///
/// The URL is left out: an `?endpoint=` may carry credentials.
pub fn network_error(provider: &str, err: reqwest::Error) -> TransportError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_body() || err.is_decode() {
        "cannot read the answer"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let message = match causes.last() {
        Some(root) => format!("{provider}: {what}: {root}"),
        None => format!("{provider}: {what}"),
    };
    TransportError::transient(message)
}

/// The provider's hint of when to retry: `Retry-After` (seconds or HTTP date),
/// else `X-RateLimit-Reset` (Unix time, as SendGrid sends it, or seconds),
/// else `RateLimit-Reset` (seconds). A time already past gives zero.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let hint = if let Some(value) = text(&RETRY_AFTER) {
        delay_or_date(value.trim(), now)
    } else if let Some(value) = text(&HeaderName::from_static("x-ratelimit-reset")) {
        delay_or_epoch(value.trim(), now)
    } else if let Some(value) = text(&HeaderName::from_static("ratelimit-reset")) {
        value.trim().parse().ok().map(Duration::from_secs)
    } else {
        None
    };
    hint.map(|d| d.min(MAX_RETRY_AFTER))
}

/// `Retry-After` per RFC 9110: delay-seconds or an HTTP date.
fn delay_or_date(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A reset time as Unix seconds (SendGrid) or, when small, seconds from now.
fn delay_or_epoch(value: &str, now: SystemTime) -> Option<Duration> {
    // Any value past 2001-09-09 is a point in time, not a delay.
    const EPOCH_THRESHOLD: u64 = 1_000_000_000;
    let number: u64 = value.split('.').next()?.parse().ok()?;
    if number < EPOCH_THRESHOLD {
        return Some(Duration::from_secs(number));
    }
    let at = UNIX_EPOCH + Duration::from_secs(number);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The provider's error text from an answer body: the `message`-like fields of
/// a JSON body, else the body as text; whitespace collapsed, truncated.
pub fn error_text(body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(body);
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => {
            let mut found = Vec::new();
            collect_messages(&json, &mut found);
            if found.is_empty() {
                json.to_string()
            } else {
                found.join("; ")
            }
        }
        Err(_) => raw.into_owned(),
    };
    truncate(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Collects string fields that carry a human-readable error.
fn collect_messages(value: &serde_json::Value, found: &mut Vec<String>) {
    const KEYS: [&str; 5] = ["message", "errormessage", "error", "detail", "title"];
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value {
                    serde_json::Value::String(s) if KEYS.contains(&key.to_lowercase().as_str()) => {
                        found.push(s.clone());
                    }
                    _ => collect_messages(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_messages(v, found)),
        _ => {}
    }
}

/// `text` cut to [`MAX_ERROR_TEXT`] bytes at a character boundary.
fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `err` with every occurrence of `secret` replaced, for answers that echo a key.
pub fn without_secret(err: TransportError, secret: &str) -> TransportError {
    if secret.is_empty() || !err.detail().contains(secret) {
        return err;
    }
    let scrub = |m: String| m.replace(secret, "<redacted>");
    match err {
        TransportError::Transient {
            message,
            retry_after,
        } => TransportError::Transient {
            message: scrub(message),
            retry_after,
        },
        TransportError::Auth { message } => TransportError::Auth {
            message: scrub(message),
        },
        TransportError::Permanent { message } => TransportError::Permanent {
            message: scrub(message),
        },
    }
}

/// The metadata key under which every provider gets our id of the message.
pub const ID_KEY: &str = "mailbridge_id";

/// The `Message-ID` header value of a message, with its angle brackets.
pub fn message_id_header(message: &OutgoingMessage) -> String {
    format!("<{}>", message.message_id)
}

/// A mailbox as `Name <addr>` with the name quoted per RFC 5322 when it holds
/// anything but atoms and spaces (`"Doe, Jane" <jane@example.com>`), or `addr`.
pub fn format_mailbox(mailbox: &Mailbox) -> String {
    let Some(name) = mailbox.name.as_deref().filter(|n| !n.trim().is_empty()) else {
        return mailbox.email.clone();
    };
    // RFC 6532 lets non-ASCII text stand in atoms.
    let is_atom_text =
        |c: char| c.is_alphanumeric() || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~ ".contains(c);
    if name.chars().all(is_atom_text) && !name.starts_with(' ') && !name.ends_with(' ') {
        return format!("{name} <{}>", mailbox.email);
    }
    let mut quoted = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    format!("\"{quoted}\" <{}>", mailbox.email)
}

#[cfg(test)]
mod tests;
