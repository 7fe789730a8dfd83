//! A transport's event endpoint: which provider's scheme verifies it, with
//! which key (the DSN option `webhook_key`).

use std::collections::{BTreeMap, BTreeSet};

use axum::http::HeaderMap;
use time::OffsetDateTime;

use super::signature::SignatureToken;
use super::sns::{Envelope, Sns};
use super::{
    ProviderEvent, Unreadable, Unverified, mailgun, mailjet, postmark, resend, sendgrid, ses,
};
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
    /// SES events through SNS (signed with SNS's certificate).
    Ses,
    /// Delivery status notifications posted by the mail server (basic auth).
    Smtp,
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
    /// A verified SNS subscription could not be confirmed: 502 (SNS tries again).
    #[error("{0}")]
    Unconfirmed(String),
    /// Not checked for now (no SNS certificate fetch had a place, or the
    /// fetch did not reach the certificate: no connection, a timeout, a 5xx
    /// from its host): 503 with `Retry-After` (SNS tries again).
    #[error("{0}")]
    Busy(String),
}

/// What a verified request brought.
#[derive(Debug)]
pub enum Delivered {
    /// Events to match and store.
    Events(Vec<ProviderEvent>),
    /// Events under a signature that covers none of them: taken only if the
    /// store has not seen its token with another body.
    Signed(Vec<ProviderEvent>, SignatureToken),
    /// An SNS subscription (or unsubscription) was confirmed; no events.
    Subscription,
}

/// One transport's event endpoint.
#[derive(Debug, Clone)]
pub struct EventSource {
    provider: Provider,
    key: Secret,
    /// For SES: the topics accepted and the certificate fetcher.
    sns: Option<Sns>,
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
            "ses+api" => Provider::Ses,
            "smtp" | "smtps" => Provider::Smtp,
            other => {
                return Err(DsnError::invalid(
                    other,
                    "`webhook_key` is read only for sendgrid+api, mailgun+api, postmark+api, mailjet+api, resend+api, ses+api, smtp and smtps",
                ));
            }
        };
        check_key(provider, key).map_err(|why| DsnError::invalid(&dsn.scheme, why))?;
        let sns = match provider {
            Provider::Ses => {
                let topics = key.split(',').map(|t| t.trim().to_owned()).collect();
                Some(Sns::new(crate::transport::http::client()?, topics))
            }
            _ => None,
        };
        Ok(Some(Self {
            provider,
            key: Secret::new(key),
            sns,
        }))
    }

    /// The same endpoint fetching SNS certificates and confirmations through
    /// `http` (a test's resolver and trust roots); the URL rules stay.
    pub fn with_sns_http(&self, http: reqwest::Client) -> Self {
        Self {
            sns: self.sns.as_ref().map(|sns| sns.with_http(http)),
            ..self.clone()
        }
    }

    /// Verifies a request and reads its events.
    pub async fn receive(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Delivered, Refused> {
        let key = self.key.expose();
        Ok(Delivered::Events(match (self.provider, &self.sns) {
            (Provider::SendGrid, _) => {
                sendgrid::verify(key, headers, body, now)?;
                sendgrid::parse(body)?
            }
            (Provider::Mailgun, _) => {
                let (events, token) = mailgun::verify_and_parse(key, body, now)?;
                return Ok(Delivered::Signed(events, token));
            }
            (Provider::Postmark, _) => {
                super::signature::basic_auth(headers, key)?;
                postmark::parse(body)?
            }
            (Provider::Mailjet, _) => {
                super::signature::basic_auth(headers, key)?;
                mailjet::parse(body)?
            }
            (Provider::Resend, _) => {
                let id = resend::verify(key, headers, body, now)?;
                resend::parse(body, id)?
            }
            (Provider::Smtp, _) => {
                super::signature::basic_auth(headers, key)?;
                super::dsn_report::parse(body)?
            }
            (Provider::Ses, Some(sns)) => return receive_sns(sns, body, now).await,
            (Provider::Ses, None) => return Err(Unverified::new("no SNS settings").into()),
        }))
    }
}

/// Refuses, at start, a `webhook_key` the provider's scheme cannot use:
/// every event would be refused (401) and lost, with nothing but a warning
/// per request to tell. The reason never quotes the key.
fn check_key(provider: Provider, key: &str) -> Result<(), &'static str> {
    match provider {
        Provider::SendGrid => sendgrid::check_key(key),
        Provider::Resend => resend::check_key(key),
        Provider::Ses => key
            .split(',')
            .try_for_each(|t| super::sns::check_topic(t.trim())),
        Provider::Mailgun if key.trim().is_empty() => Err("`webhook_key` is empty"),
        Provider::Mailgun => Ok(()),
        Provider::Postmark | Provider::Mailjet | Provider::Smtp => match key.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(()),
            _ => Err("`webhook_key` must be `user:password` (basic auth)"),
        },
    }
}

/// An SNS message: verified first, then a confirmation is confirmed and a
/// notification read as SES events.
async fn receive_sns(sns: &Sns, body: &[u8], now: OffsetDateTime) -> Result<Delivered, Refused> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|_| Unverified::new("not an SNS message (JSON with Type, Signature, …)"))?;
    sns.verify(&envelope, now).await?;
    match envelope.kind.as_str() {
        "SubscriptionConfirmation" => {
            super::sns::sns_url(envelope.subscribe_url.as_deref().unwrap_or_default())?;
            sns.confirm(&envelope).await.map_err(Refused::Unconfirmed)?;
            tracing::info!(topic = %envelope.topic_arn, "SNS subscription confirmed");
            Ok(Delivered::Subscription)
        }
        "UnsubscribeConfirmation" => Ok(Delivered::Subscription),
        _ => Ok(Delivered::Events(ses::parse(
            &envelope.message,
            &envelope.message_id,
        )?)),
    }
}

/// The event endpoints of every transport that has a `webhook_key`, by
/// transport name, and which endpoints may speak of which transport's
/// messages.
#[derive(Debug, Clone, Default)]
pub struct EventSources {
    by_transport: BTreeMap<String, EventSource>,
    /// Per transport a message may be stored with: the endpoints whose
    /// events may concern it (its own, and those of the same provider
    /// account among a failover group's members).
    concerns: BTreeMap<String, BTreeSet<String>>,
}

/// Whether two DSNs send through one provider account (or server), whatever
/// their options.
fn same_account(a: &Dsn, b: &Dsn) -> bool {
    account(a) == account(b)
}

/// What names a DSN's account: all but its options and members.
fn account(
    dsn: &Dsn,
) -> (
    &str,
    &Option<String>,
    &Option<String>,
    &str,
    Option<u16>,
    &str,
) {
    let Dsn {
        scheme,
        user,
        password,
        host,
        port,
        path,
        ..
    } = dsn;
    (scheme, user, password, host, *port, path)
}

/// The transports `dsn` delivers through: itself, or a group's members, all the way down.
fn leaves(dsn: &Dsn) -> Vec<&Dsn> {
    if dsn.children.is_empty() {
        return vec![dsn];
    }
    dsn.children.iter().flat_map(leaves).collect()
}

impl EventSources {
    /// Reads the endpoints of named DSNs.
    pub fn from_dsns<'a>(
        dsns: impl IntoIterator<Item = (&'a str, &'a Dsn)>,
    ) -> Result<Self, (String, DsnError)> {
        let dsns: Vec<(&str, &Dsn)> = dsns.into_iter().collect();
        let mut by_transport = BTreeMap::new();
        for &(name, dsn) in &dsns {
            if let Some(source) = EventSource::from_dsn(dsn).map_err(|e| (name.to_owned(), e))? {
                by_transport.insert(name.to_owned(), source);
            }
        }
        let mut concerns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for &(name, dsn) in &dsns {
            let endpoints = dsns
                .iter()
                .filter(|(endpoint, _)| by_transport.contains_key(*endpoint))
                .filter(|(endpoint, own)| {
                    *endpoint == name || leaves(dsn).iter().any(|leaf| same_account(leaf, own))
                })
                .map(|(endpoint, _)| (*endpoint).to_owned());
            concerns.insert(name.to_owned(), endpoints.collect());
        }
        Ok(Self {
            by_transport,
            concerns,
        })
    }

    /// Whether events posted to `endpoint` may concern a message stored with
    /// `transport`: its own endpoint, or one of the same provider account
    /// (a failover group's member). Events of one tenant's provider account
    /// never act on another transport's messages.
    pub fn may_concern(&self, endpoint: &str, transport: &str) -> bool {
        self.concerns
            .get(transport)
            .is_some_and(|endpoints| endpoints.contains(endpoint))
    }

    /// Every SES endpoint fetching through `http` instead (tests: a local
    /// certificate server under an SNS host name); nothing else changes.
    pub fn with_sns_http(mut self, http: &reqwest::Client) -> Self {
        for source in self.by_transport.values_mut() {
            *source = source.with_sns_http(http.clone());
        }
        self
    }

    /// The endpoint of transport `name`, if it takes events.
    pub fn get(&self, name: &str) -> Option<&EventSource> {
        self.by_transport.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dsn: &str) -> Result<Option<EventSource>, DsnError> {
        EventSource::from_dsn(&Dsn::parse(dsn).unwrap())
    }

    /// SendGrid's published verification key, and a Svix secret.
    const SENDGRID: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC%2Bu4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu%2F1FwCM%2FQmGUhA%3D%3D";

    #[test]
    fn a_key_its_providers_scheme_cannot_use_is_refused_at_start() {
        for good in [
            format!("sendgrid+api://SG.k@default?webhook_key={SENDGRID}"),
            "resend+api://re_k@default?webhook_key=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            "ses+api://default?region=eu-west-1&webhook_key=arn%3Aaws%3Asns%3Aeu-west-1%3A123456789012%3Ases, arn%3Aaws-cn%3Asns%3Acn-north-1%3A123456789012%3Ab".into(),
            "mailgun+api://k:mg.example@default?webhook_key=key-1".into(),
            "postmark+api://t@default?webhook_key=hooks%3Apw".into(),
        ] {
            assert!(source(&good).unwrap().is_some(), "{good}");
        }
        for (bad, key) in [
            // The API key where the verification key belongs, a PEM block, a cut key.
            (
                "sendgrid+api://SG.k@default?webhook_key=SG.secret-api-key",
                "SG.secret-api-key",
            ),
            (
                "sendgrid+api://SG.k@default?webhook_key=-----BEGIN%20PUBLIC%20KEY-----",
                "BEGIN",
            ),
            (
                "sendgrid+api://SG.k@default?webhook_key=MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
                "MFkw",
            ),
            (
                "resend+api://re_k@default?webhook_key=whsec_not*base64",
                "not*base64",
            ),
            ("resend+api://re_k@default?webhook_key=whsec_", ""),
            // A subscription's ARN, a topic's name, an empty entry.
            (
                "ses+api://default?region=eu-west-1&webhook_key=arn%3Aaws%3Asns%3Aeu-west-1%3A123456789012%3Ases%3A5f6e7d",
                "5f6e7d",
            ),
            (
                "ses+api://default?region=eu-west-1&webhook_key=ses-events",
                "ses-events",
            ),
            (
                "ses+api://default?region=eu-west-1&webhook_key=arn%3Aaws%3Asns%3Aeu-west-1%3A1%3Aa,",
                "eu-west-1:1:a",
            ),
            ("mailgun+api://k:mg.example@default?webhook_key=", ""),
            ("postmark+api://t@default?webhook_key=hooks%3A", "hooks"),
            ("mailjet+api://k:s@default?webhook_key=nocolon", "nocolon"),
        ] {
            let error = source(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was taken"));
            let text = error.to_string();
            assert!(text.contains("webhook_key"), "{text}");
            assert!(
                key.is_empty() || !text.contains(key),
                "{text} quotes the key"
            );
        }
    }
}
