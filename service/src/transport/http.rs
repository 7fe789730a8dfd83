//! What every provider API transport shares: one shape ([`Provider`]: build
//! the request, read the message id; [`Api`] does the rest), one HTTP client,
//! the `?endpoint=` option, and one classification of answers into
//! [`TransportError`](super::TransportError).
//!
//! Classification: 2xx is success; 408, 429 and 5xx (but 501 and 505) are
//! transient, carrying the provider's hint of when to retry; every other
//! status is permanent, including 401 and 403 (an API key that is refused
//! will not fix itself). A transport that can refresh its credentials (OAuth)
//! turns a 401 into [`TransportError::Auth`](super::TransportError::Auth)
//! itself, see [`error_for`].

mod answer;
mod provider;

use std::time::Duration;

use answer::read_answer;
pub use answer::{
    BodyError, MAX_DOCUMENT, body_at_most, error_for, error_text, is_transient_status,
    network_error, parse_retry_after, status_error, without_secret,
};
pub use provider::{Answer, Api, Provider, deliver};

use super::{Dsn, DsnError};
use crate::email::{Mailbox, OutgoingMessage};

/// The `User-Agent` of every request we make.
pub const USER_AGENT: &str = concat!("mailbridge/", env!("CARGO_PKG_VERSION"));
/// Bound of establishing a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one whole request, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A new HTTP client (rustls, timeouts, our user agent, no redirects).
///
/// Each transport builds its own at start and keeps it: a client's pooled
/// connections belong to the runtime that opened them, so one process-wide
/// client would break when used from several runtimes (as tests do).
pub fn client() -> Result<reqwest::Client, DsnError> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        // A mail API that redirects a POST is misconfigured; following it could
        // resend the message elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DsnError::invalid("http", format!("cannot build HTTP client: {e}")))
}

/// The base URL of a provider: the DSN's `?endpoint=` or `default`.
///
/// Only `http` and `https` URLs with a host are accepted.
pub fn endpoint(dsn: &Dsn, default: &str) -> Result<url::Url, DsnError> {
    let text = dsn.option("endpoint").unwrap_or(default);
    // Never repeated as given: a proxy's URL may carry a user and password
    // or a key in its query.
    let url = url::Url::parse(text)
        .map_err(|e| DsnError::invalid(&dsn.scheme, format!("endpoint is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(DsnError::invalid(
            &dsn.scheme,
            format!(
                "endpoint `{}:…` must be an http(s) URL with a host",
                url.scheme()
            ),
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
pub use crate::secret::Secret;

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
/// The metadata key under which every provider gets our id of the message.
pub const ID_KEY: &str = "mailbridge-id";
/// The metadata key under which every provider gets the message's tenant.
pub const TENANT_KEY: &str = "mailbridge-tenant";

/// What a provider gets as metadata: our id and the tenant first, then the
/// message's own metadata (a key of ours given there is left out).
pub fn metadata(message: &OutgoingMessage) -> Vec<(String, String)> {
    let ours = [
        (ID_KEY.to_owned(), message.id.to_string()),
        (TENANT_KEY.to_owned(), message.tenant.clone()),
    ];
    let theirs = message
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != ID_KEY && k.as_str() != TENANT_KEY)
        .map(|(k, v)| (k.clone(), v.clone()));
    ours.into_iter().chain(theirs).collect()
}

/// The `Message-ID` header value of a message, with its angle brackets, in
/// its wire form (an IDN domain as punycode; see `wire_message_id`).
pub fn message_id_header(message: &OutgoingMessage) -> String {
    let id = crate::email::wire_message_id(&message.message_id);
    format!("<{}>", id.as_deref().unwrap_or(&message.message_id))
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
