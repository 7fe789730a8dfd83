//! A transport's event endpoint: which provider's scheme verifies it, with
//! which key (the DSN option `webhook_key`).

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use time::OffsetDateTime;

use super::{ProviderEvent, Unreadable, Unverified, mailgun, mailjet, postmark, resend, sendgrid};
use crate::secret::Secret;
use crate::transport::{Dsn, DsnError};

/// The DSN option holding a transport's webhook key.
pub const WEBHOOK_KEY: &str = "webhook_key";

/// The providers whose events we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// ECDSA-signed Event Webhook.
    SendGrid,
    /// HMAC-signed webhooks.
    Mailgun,
    /// Basic auth.
    Postmark,
    /// Basic auth.
    Mailjet,
    /// Svix-signed webhooks.
    Resend,
}

/// Why events were not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The request is not from the provider (or is a replay): 401.
    #[error(transparent)]
    Unverified(#[from] Unverified),
    /// Verified, but not a body of the provider's format: 400.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
}

/// One transport's event endpoint.
#[derive(Debug, Clone)]
pub struct EventSource {
    provider: Provider,
    key: Secret,
}

impl EventSource {
    /// The endpoint of a transport's DSN: `None` when it has no
    /// `webhook_key`; an error when it has one but takes no events.
    pub fn from_dsn(dsn: &Dsn) -> Result<Option<Self>, DsnError> {
        let Some(key) = dsn.option(WEBHOOK_KEY) else {
            return Ok(None);
        };
        let provider = match dsn.scheme.as_str() {
            "sendgrid+api" => Provider::SendGrid,
            "mailgun+api" => Provider::Mailgun,
            "postmark+api" => Provider::Postmark,
            "mailjet+api" => Provider::Mailjet,
            "resend+api" => Provider::Resend,
            other => {
                return Err(DsnError::invalid(
                    other,
                    "`webhook_key` is read only for sendgrid+api, mailgun+api, postmark+api, mailjet+api and resend+api",
                ));
            }
        };
        if matches!(provider, Provider::Postmark | Provider::Mailjet) && !key.contains(':') {
            return Err(DsnError::invalid(
                &dsn.scheme,
                "`webhook_key` must be `user:password` (basic auth)",
            ));
        }
        Ok(Some(Self {
            provider,
            key: Secret::new(key),
        }))
    }

    /// Verifies a request and reads its events.
    pub fn receive(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<ProviderEvent>, Refused> {
        let key = self.key.expose();
        Ok(match self.provider {
            Provider::SendGrid => {
                sendgrid::verify(key, headers, body, now)?;
                sendgrid::parse(body)?
            }
            Provider::Mailgun => mailgun::verify_and_parse(key, body, now)?,
            Provider::Postmark => {
                super::signature::basic_auth(headers, key)?;
                postmark::parse(body)?
            }
            Provider::Mailjet => {
                super::signature::basic_auth(headers, key)?;
                mailjet::parse(body)?
            }
            Provider::Resend => {
                let id = resend::verify(key, headers, body, now)?;
                resend::parse(body, id)?
            }
        })
    }
}

/// The event endpoints of every transport that has a `webhook_key`, by transport name.
#[derive(Debug, Clone, Default)]
pub struct EventSources {
    by_transport: BTreeMap<String, EventSource>,
}

impl EventSources {
    /// Reads the endpoints of named DSNs.
    pub fn from_dsns<'a>(
        dsns: impl IntoIterator<Item = (&'a str, &'a Dsn)>,
    ) -> Result<Self, (String, DsnError)> {
        let mut by_transport = BTreeMap::new();
        for (name, dsn) in dsns {
            if let Some(source) = EventSource::from_dsn(dsn).map_err(|e| (name.to_owned(), e))? {
                by_transport.insert(name.to_owned(), source);
            }
        }
        Ok(Self { by_transport })
    }

    /// The endpoint of transport `name`, if it takes events.
    pub fn get(&self, name: &str) -> Option<&EventSource> {
        self.by_transport.get(name)
    }
}
