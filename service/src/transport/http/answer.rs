//! Reading and judging a provider's answer: success, or a [`TransportError`]
//! of the right class with the provider's own words and retry hint.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, RETRY_AFTER};

use crate::transport::TransportError;

/// Most bytes of an answer we read: provider answers are small JSON documents.
const MAX_BODY: usize = 64 * 1024;
/// Most bytes of a provider's error text we keep in an error message.
pub(super) const MAX_ERROR_TEXT: usize = 500;
/// Longest wait we accept from a provider's hint; beyond it a hint is likely wrong.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Reads the answer, at most [`MAX_BODY`] bytes of its body, without
/// judging it: [`super::Provider::judge`] does. A 2xx whose body breaks off
/// is judged without its body: the provider has the message, and sending it
/// again would send it twice (its id is lost unless a header carries it).
pub(super) async fn read_answer(
    provider: &str,
    resp: reqwest::Response,
) -> Result<(StatusCode, HeaderMap, Bytes), TransportError> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match read_up_to(resp, MAX_BODY).await {
        Ok((body, _)) => body,
        Err(error) if status.is_success() => {
            // Described as a network error is, without the request's URL.
            let error = network_error(provider, error);
            tracing::warn!(%status, error = %error, "the provider accepted the message but its answer broke off; taken as sent");
            Bytes::new()
        }
        Err(error) => return Err(network_error(provider, error)),
    };
    Ok((status, headers, body))
}

/// The first `max` bytes of an answer, and whether more followed (not read).
async fn read_up_to(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<(Bytes, bool), reqwest::Error> {
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = max - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            return Ok((body.freeze(), true));
        }
    }
    Ok((body.freeze(), false))
}

/// Most we read of an answer we parse whole (an access token, a key set, a
/// discovery document, an admin API's JSON): far above any real one.
pub const MAX_DOCUMENT: usize = 1 << 20;

/// Why a whole answer was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the bound given, in bytes: refused before it is all in memory.
    TooLarge(usize),
    /// The connection failed or timed out while reading.
    Read(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(max) => write!(f, "the answer is larger than {} KiB", max / 1024),
            BodyError::Read(e) if e.is_timeout() => f.write_str("the answer did not come in time"),
            BodyError::Read(_) => f.write_str("the answer could not be read to its end"),
        }
    }
}

/// The whole body of `resp`, at most `max` bytes: a peer that sends more
/// (a wrong URL serving a large file, a stream that never ends) is refused
/// as soon as it passes the bound, not once it has filled the memory.
pub async fn body_at_most(resp: reqwest::Response, max: usize) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    match read_up_to(resp, max).await.map_err(BodyError::Read)? {
        (_, true) => Err(BodyError::TooLarge(max)),
        (body, false) => Ok(body),
    }
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
    status_error(status, headers, message, now)
}

/// The error an HTTP `status` stands for, with `message`: transient (with the
/// provider's `Retry-After`) for 408, 429 and 5xx; a refusal of the
/// transport's own key or account for 401 and 403; else permanent.
pub fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    message: String,
    now: SystemTime,
) -> TransportError {
    let error = if is_transient_status(status) {
        TransportError::transient_after(message, parse_retry_after(headers, now))
    } else if matches!(status.as_u16(), 401 | 403) {
        TransportError::refused_credentials(message)
    } else {
        TransportError::permanent(message)
    };
    error.with_code(status.as_u16())
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
    // A time past what the clock can hold is as far as a hint may go.
    let Some(at) = UNIX_EPOCH.checked_add(Duration::from_secs(number)) else {
        return Some(MAX_RETRY_AFTER);
    };
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
    err.map_message(|m| m.replace(secret, "<redacted>"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reset_time_past_what_the_clock_holds_is_the_longest_hint_not_a_panic() {
        let now = SystemTime::now();
        for reset in [
            "18446744073709551615",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("x-ratelimit-reset", reset.parse().unwrap());
            let hint = parse_retry_after(&headers, now);
            assert!(
                hint.is_none_or(|h| h <= MAX_RETRY_AFTER),
                "{reset}: {hint:?}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", "18446744073709551615".parse().unwrap());
        assert_eq!(parse_retry_after(&headers, now), Some(MAX_RETRY_AFTER));
    }

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// An HTTP server on loopback that answers one request with `head`, then
    /// `body` again and again (once when `repeat` is false) until the client
    /// goes away.
    async fn server(head: &'static str, body: &'static [u8], repeat: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            socket.write_all(head.as_bytes()).await.unwrap();
            while socket.write_all(body).await.is_ok() && repeat {}
        });
        url
    }

    async fn get(url: &str, max: usize) -> Result<Bytes, BodyError> {
        let answer = reqwest::get(url).await.unwrap();
        body_at_most(answer, max).await
    }

    #[tokio::test]
    async fn an_answer_within_the_bound_is_read_whole() {
        let url = server(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"hello",
            false,
        )
        .await;
        assert_eq!(get(&url, 5).await.unwrap(), Bytes::from_static(b"hello"));
    }

    #[tokio::test]
    async fn an_announced_length_over_the_bound_is_refused_unread() {
        let url = server(
            "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n",
            b"x",
            false,
        )
        .await;
        assert!(matches!(
            get(&url, 1024).await,
            Err(BodyError::TooLarge(1024))
        ));
    }

    #[tokio::test]
    async fn an_answer_that_never_ends_is_refused_at_the_bound() {
        static CHUNK: [u8; 8192] = [b'x'; 8192];
        let url = server(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
            &CHUNK,
            true,
        )
        .await;
        let refused = tokio::time::timeout(std::time::Duration::from_secs(10), get(&url, 1 << 16))
            .await
            .expect("refused long before the end that never comes");
        assert!(matches!(refused, Err(BodyError::TooLarge(_))));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "the answer is larger than 64 KiB"
        );
    }
}
