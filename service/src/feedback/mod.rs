//! Feedback into Keycloak: on a hard bounce or a complaint, the user with
//! that address gets the attribute `mailbridge_email_status` (`bounced` /
//! `complained`) and, with `keycloak_unverify = true`, `emailVerified =
//! false`, through the realm's admin REST API with a client-credentials token
//! (a confidential client of that realm with `manage-users`).
//!
//! Like webhooks, each feedback is a row of the same queue, under the
//! reserved transport [`TRANSPORT`]: stored before the event is answered,
//! retried with backoff for 24 hours when Keycloak cannot be reached, and
//! never in the way of the messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::email::{Mailbox, OutgoingMessage};
use crate::oauth::ClientCredentials;
use crate::queue::{JobStore, NewJob, Origin, StoreError};

pub mod transport;

/// The reserved transport name of feedback rows.
pub const TRANSPORT: &str = "keycloak";
/// The user attribute set.
pub const ATTRIBUTE: &str = "mailbridge_email_status";

/// One tenant's Keycloak realm and credentials.
#[derive(Debug, Clone)]
pub struct Realm {
    /// `https://sso.example` (the part before `/realms/`).
    pub base: url::Url,
    /// The realm's name.
    pub realm: String,
    /// Client-credentials tokens of the tenant's client.
    pub tokens: Arc<ClientCredentials>,
    /// Also set `emailVerified = false`.
    pub unverify: bool,
}

impl Realm {
    /// The realm of `realm_url` (`https://sso.example/realms/acme`), if it is one.
    pub fn parse_url(realm_url: &str) -> Option<(url::Url, String)> {
        let url = url::Url::parse(realm_url.trim_end_matches('/')).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let (base, realm) = url.as_str().rsplit_once("/realms/")?;
        let realm = percent_encoding::percent_decode_str(realm)
            .decode_utf8()
            .ok()?;
        if realm.is_empty() || realm.contains('/') {
            return None;
        }
        Some((
            url::Url::parse(&format!("{base}/")).ok()?,
            realm.into_owned(),
        ))
    }
}

/// Every tenant's Keycloak realm, and how to queue a feedback.
#[derive(Debug, Clone, Default)]
pub struct Feedback {
    realms: Arc<BTreeMap<String, Realm>>,
}

impl Feedback {
    /// The realms by tenant.
    pub fn new(realms: BTreeMap<String, Realm>) -> Self {
        Self {
            realms: Arc::new(realms),
        }
    }

    /// The realm of `tenant`, if it has one.
    pub fn realm(&self, tenant: &str) -> Option<&Realm> {
        self.realms.get(tenant)
    }

    /// Queues "the user with `email` has status `status`" for `tenant`, if it
    /// has a Keycloak realm; answers whether one was queued.
    pub async fn queue(
        &self,
        store: &dyn JobStore,
        tenant: &str,
        email: &str,
        status: &str,
        about: Uuid,
    ) -> Result<bool, StoreError> {
        if self.realm(tenant).is_none() {
            return Ok(false);
        }
        let body = json!({"email": email, "status": status, "message_id": about});
        let message = OutgoingMessage {
            tags: vec!["keycloak-feedback".to_owned()],
            metadata: BTreeMap::from([("message_id".to_owned(), about.to_string())]),
            ..OutgoingMessage::plain(
                tenant,
                Mailbox::new("feedback@mailbridge.invalid"),
                Mailbox::new("keycloak@mailbridge.invalid"),
                &format!("{ATTRIBUTE} = {status}"),
                &body.to_string(),
            )
        };
        let job = NewJob {
            message,
            idempotency_key: None,
            transport: TRANSPORT.to_owned(),
            now: OffsetDateTime::now_utc(),
            lease: None,
            origin: Origin {
                kind: Some("keycloak-feedback".to_owned()),
                ..Origin::default()
            },
            limits: Vec::new(),
        };
        store.enqueue(job).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realm_url_splits_into_base_and_realm() {
        let (base, realm) =
            Realm::parse_url("https://sso.example/auth/realms/acme%20corp/").unwrap();
        assert_eq!(base.as_str(), "https://sso.example/auth/");
        assert_eq!(realm, "acme corp");
        assert!(Realm::parse_url("https://sso.example/acme").is_none());
        assert!(Realm::parse_url("ftp://sso.example/realms/acme").is_none());
        assert!(Realm::parse_url("https://sso.example/realms/acme/account").is_none());
    }
}
