//! Feedback into Keycloak: on a hard bounce or a complaint, the user with
//! that address gets the attribute `mailbridge_email_status` (`bounced` /
//! `complained`) and, after a hard bounce with `keycloak_unverify = true`,
//! `emailVerified = false`, through the realm's admin REST API with a
//! client-credentials token (a confidential client of that realm with
//! `manage-users`). A complaint never unverifies: the mailbox works and is
//! read, and its address is suppressed, so the email Keycloak would send to
//! verify it again never goes; a realm that requires a verified email would
//! lock the user out.
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
    /// Also set `emailVerified = false` after a hard bounce (see [`unverifies`]).
    pub unverify: bool,
}

/// Whether a feedback of `status` (`bounced`, `complained`) sets
/// `emailVerified = false` in a realm with `keycloak_unverify = true`: only
/// a hard bounce, which says the address does not work.
pub fn unverifies(status: &str) -> bool {
    status == "bounced"
}

/// Why a `keycloak_url` is refused; never quotes the URL, whose query
/// could hold a secret.
const NOT_A_REALM: &str = "must be a realm's URL, like https://sso.example/realms/acme";

impl Realm {
    /// The base and realm of `realm_url` (`https://sso.example/realms/acme`),
    /// or why it is not a realm's URL.
    ///
    /// The realm is read from the URL's path alone, and a query string or a
    /// fragment is refused: every URL we call is built from the base and the
    /// realm, so `?kc_locale=de` would otherwise end up in the realm's name.
    pub fn parse_url(realm_url: &str) -> Result<(url::Url, String), &'static str> {
        let mut url = url::Url::parse(realm_url).map_err(|_| NOT_A_REALM)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NOT_A_REALM);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must be a realm's URL without a query string or fragment (`?…`, `#…`)");
        }
        // Checked before anything quotes the URL: a password there would be
        // shown, and the client secret has a setting of its own.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "must be a realm's URL without a user or password (`user:pass@`); the client's secret is keycloak_client_secret",
            );
        }
        let path = url.path().trim_end_matches('/');
        let (base, realm) = path.rsplit_once("/realms/").ok_or(NOT_A_REALM)?;
        let realm = percent_encoding::percent_decode_str(realm)
            .decode_utf8()
            .map_err(|_| NOT_A_REALM)?;
        if realm.is_empty() || realm.contains('/') {
            return Err(NOT_A_REALM);
        }
        let realm = realm.into_owned();
        url.set_path(&format!("{base}/"));
        Ok((url, realm))
    }

    /// The realm's token endpoint (`{base}realms/{realm}/protocol/openid-connect/token`).
    pub fn token_url(base: &url::Url, realm: &str) -> url::Url {
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "realms",
                realm,
                "protocol",
                "openid-connect",
                "token",
            ]);
        }
        url
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
        assert_eq!(
            Realm::token_url(&base, &realm).as_str(),
            "https://sso.example/auth/realms/acme%20corp/protocol/openid-connect/token"
        );
        assert!(Realm::parse_url("https://sso.example/acme").is_err());
        assert!(Realm::parse_url("ftp://sso.example/realms/acme").is_err());
        assert!(Realm::parse_url("https://sso.example/realms/acme/account").is_err());
    }

    #[test]
    fn a_realm_url_with_a_query_or_fragment_is_refused_not_read_into_the_realm() {
        for url in [
            "https://sso.example/realms/acme?kc_locale=de",
            "https://sso.example/realms/acme/?kc_locale=de",
            "https://sso.example/realms/acme#x",
            "https://sso.example/realms/acme?",
        ] {
            let why = Realm::parse_url(url).unwrap_err();
            assert!(why.contains("query string or fragment"), "{url}: {why}");
        }
    }

    #[test]
    fn a_realm_url_with_a_user_or_password_is_refused_without_showing_them() {
        for url in [
            "https://admin:s3cr3t-pw@sso.example/realms/acme",
            "https://admin@sso.example/realms/acme",
            "http://:s3cr3t-pw@127.0.0.1:8080/realms/acme",
        ] {
            let why = Realm::parse_url(url).unwrap_err();
            assert!(why.contains("without a user or password"), "{url}: {why}");
            assert!(!why.contains("s3cr3t") && !why.contains("admin"), "{why}");
        }
    }
}
