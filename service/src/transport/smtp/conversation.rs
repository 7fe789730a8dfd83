//! The SMTP conversation log of a transport with `debug=true`: what
//! operators read to find out why a server refuses a login or a TLS handshake.
//!
//! Every line is logged at INFO with target [`TARGET`], the server and a
//! connection number, so it shows with the default log filter and can be
//! picked out (`MAILBRIDGE_LOG=info,mailbridge::smtp::conversation=off`).
//! What is never logged: AUTH arguments (passwords, tokens, their base64
//! forms) — an AUTH command is shown as `AUTH PLAIN [redacted]`; message
//! content — DATA is shown as its size; the local part of addresses in
//! MAIL FROM and RCPT TO — `a***@example.com`.

use std::fmt::Display;
use std::sync::Arc;

use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::response::Response;

/// The log target of conversation lines.
pub(super) const TARGET: &str = "mailbridge::smtp::conversation";

/// The log of one connection; silent unless the transport has `debug=true`.
#[derive(Clone, Debug)]
pub(super) struct Conversation {
    server: Arc<str>,
    connection: u64,
    enabled: bool,
}

impl Conversation {
    pub(super) fn new(server: Arc<str>, connection: u64, enabled: bool) -> Self {
        Self {
            server,
            connection,
            enabled,
        }
    }

    /// Whether lines are logged: callers skip building costly lines when not.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Something that is neither a command nor a reply (connecting, TLS).
    pub(super) fn note(&self, text: impl Display) {
        self.line("--", text);
    }

    /// A command we sent; the caller has already redacted or masked it.
    pub(super) fn sent(&self, command: impl Display) {
        self.line(">>", command);
    }

    /// The server's answer to the last command, or why there was none.
    pub(super) fn answer(&self, result: &Result<Response, SmtpError>) {
        match result {
            Ok(response) if self.enabled => self.line("<<", reply(response)),
            Ok(_) => {}
            Err(error) => self.failed(error),
        }
    }

    /// The answer to AUTH, with `blank` taking out what may echo the secret.
    pub(super) fn answer_blanked(
        &self,
        result: &Result<Response, SmtpError>,
        blank: impl Fn(&str) -> String,
    ) {
        if self.enabled {
            let text = match result {
                Ok(response) => reply(response),
                Err(error) => failure(error),
            };
            self.line("<<", blank(&text));
        }
    }

    /// A negative reply as the server gave it, or why the step failed.
    pub(super) fn failed(&self, error: &SmtpError) {
        if self.enabled {
            self.line("<<", failure(error));
        }
    }

    fn line(&self, direction: &str, text: impl Display) {
        if self.enabled {
            tracing::info!(
                target: TARGET,
                server = %self.server,
                connection = self.connection,
                "{direction} {text}"
            );
        }
    }
}

/// `250 2.0.0 Ok: queued as 4Xyz`, several lines joined by ` / `.
fn reply(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" / "))
}

/// A negative reply as the server gave it (`535 5.7.3 Authentication
/// unsuccessful`), or the error with its causes.
fn failure(error: &SmtpError) -> String {
    let source = std::error::Error::source(error);
    if let (Some(code), Some(reply)) = (error.status(), source) {
        return format!("{code} {reply}");
    }
    let mut text = error.to_string();
    let mut source = source;
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `ada@example.com` as `a***@example.com`: enough to tell recipients apart
/// while debugging, without putting whole addresses in the log.
pub(super) fn mask(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None if address.is_empty() => String::new(),
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_local_part_only() {
        assert_eq!(mask("ada.lovelace@example.com"), "a***@example.com");
        assert_eq!(mask("\"odd@local\"@example.com"), "\"***@example.com");
        assert_eq!(mask("postmaster"), "***");
        assert_eq!(mask(""), "");
    }
}
