//! The transport of feedback rows: find the realm's users with the address
//! (`GET /admin/realms/{realm}/users?email=…&exact=true`), and for each one
//! read its representation and write it back with the attribute set (and
//! `emailVerified = false` if asked), keeping its other attributes. Keycloak
//! unreachable and the statuses every HTTP transport retries (408, 429, 5xx
//! but 501 and 505) are transient; a refused token is fetched anew once;
//! other 4xx are permanent (a setting to fix).
//!
//! Realms that allow duplicate emails may hold several users with the
//! address. Each is marked on its own: one whose write is refused for good
//! (a 400 for a read-only LDAP user) does not keep the others unmarked. The
//! row fails only when no user could be marked and one was refused for good;
//! a transient failure retries the whole row (writing a user's attribute
//! again changes nothing).

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ATTRIBUTE, Feedback, Realm, unverifies};
use crate::email::OutgoingMessage;
use crate::oauth::TokenSource as _;
use crate::transport::http::{MAX_DOCUMENT, body_at_most, is_transient_status};
use crate::transport::{Delivery, Transport, TransportError};

/// Delivers feedback rows to Keycloak.
#[derive(Debug, Clone)]
pub struct KeycloakTransport {
    feedback: Feedback,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct Row {
    email: String,
    status: String,
}

impl KeycloakTransport {
    /// Calls the realms of `feedback` through `http`.
    pub fn new(feedback: Feedback, http: reqwest::Client) -> Self {
        Self { feedback, http }
    }

    /// One admin API call with the realm's token; `Ok(None)` for a 404.
    async fn call(
        &self,
        realm: &Realm,
        method: reqwest::Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, TransportError> {
        let mut url = realm.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["admin", "realms", &realm.realm])
                .extend(path);
        }
        // A refused client secret is fixed by an operator, not by giving up:
        // retried for the notice's 24 hours, as a transport's refused
        // credentials are until a message's max age.
        let token = (realm.tokens.token().await)
            .map_err(|e| TransportError::transient(format!("keycloak token: {e}")))?;
        let reads = method == reqwest::Method::GET;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token.secret())
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(|e| {
            TransportError::transient(format!("keycloak unreachable: {}", e.without_url()))
        })?;
        let status = answer.status();
        if status == StatusCode::UNAUTHORIZED {
            realm.tokens.invalidate(&token);
        }
        match status {
            // A read must be whole: a user written back from half a
            // representation would lose what is missing.
            s if s.is_success() && reads => {
                let unreadable =
                    |why: String| TransportError::transient(format!("keycloak answered {s} {why}"));
                let body = body_at_most(answer, MAX_DOCUMENT)
                    .await
                    .map_err(|e| unreadable(format!("with a body that could not be read ({e})")))?;
                serde_json::from_slice(&body)
                    .map(Some)
                    .map_err(|_| unreadable("with a body that is not JSON".into()))
            }
            s if s.is_success() => Ok(Some(Value::Null)),
            StatusCode::NOT_FOUND => Ok(None),
            // The token is fetched anew by the next attempt.
            StatusCode::UNAUTHORIZED => Err(TransportError::transient(format!(
                "keycloak answered {status}"
            ))),
            // The rule every HTTP transport follows (408 and 429 included).
            s if is_transient_status(s) => Err(TransportError::transient(format!(
                "keycloak answered {status}"
            ))),
            s => Err(TransportError::permanent(format!(
                "keycloak answered {s} (does the client have manage-users, and does the realm's user profile allow `{ATTRIBUTE}`?)"
            ))),
        }
    }
}

#[async_trait]
impl Transport for KeycloakTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let Some(realm) = self.feedback.realm(&message.tenant) else {
            return Err(TransportError::permanent(format!(
                "tenant `{}` has no keycloak_url any more",
                message.tenant
            )));
        };
        let row: Row = serde_json::from_str(message.text.as_deref().unwrap_or_default())
            .map_err(|e| TransportError::permanent(format!("unreadable feedback row: {e}")))?;
        let query = [
            ("email", row.email.as_str()),
            ("exact", "true"),
            ("briefRepresentation", "true"),
        ];
        let Some(users) = self
            .call(realm, reqwest::Method::GET, &["users"], &query, None)
            .await?
        else {
            return Err(TransportError::permanent(
                "keycloak answered 404 for the realm's users (is keycloak_url the realm's URL?)",
            ));
        };
        let Some(users) = users.as_array() else {
            return Err(TransportError::transient(
                "keycloak's user search answered something other than a list",
            ));
        };
        let ids: Vec<String> = (users.iter())
            .filter_map(|u| u["id"].as_str().map(str::to_owned))
            .collect();
        let mut tally = Tally::default();
        for id in &ids {
            match self.mark(realm, &row, id).await {
                Ok(true) => tally.marked += 1,
                // A user deleted meanwhile has nothing left to mark.
                Ok(false) => {}
                // Keycloak is in trouble: the whole row is tried again later
                // rather than pressing on user after user.
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tally.refused.push((id.clone(), e)),
            }
        }
        tally.outcome(&row.status)
    }
}

impl KeycloakTransport {
    /// Marks user `id` with `row`'s status; `Ok(false)` when it is gone.
    async fn mark(&self, realm: &Realm, row: &Row, id: &str) -> Result<bool, TransportError> {
        let Some(mut user) = self
            .call(realm, reqwest::Method::GET, &["users", id], &[], None)
            .await?
        else {
            return Ok(false);
        };
        if user["id"].as_str() != Some(id) {
            return Err(TransportError::transient(format!(
                "keycloak answered something other than user {id}"
            )));
        }
        if !user["attributes"].is_object() {
            user["attributes"] = json!({});
        }
        user["attributes"][ATTRIBUTE] = json!([row.status]);
        if realm.unverify && unverifies(&row.status) {
            user["emailVerified"] = json!(false);
        }
        let path = ["users", id];
        (self
            .call(realm, reqwest::Method::PUT, &path, &[], Some(&user))
            .await)
            .map(|_| true)
    }
}

/// What became of the users with the address.
#[derive(Default)]
struct Tally {
    marked: usize,
    /// Users whose read or write was refused for good, with why.
    refused: Vec<(String, TransportError)>,
}

impl Tally {
    /// Done if any user was marked, or none was refused; failed if every
    /// user left was refused: retrying would be refused again.
    fn outcome(self, status: &str) -> Result<Delivery, TransportError> {
        let Tally { marked, refused } = self;
        if let Some((id, e)) = refused.first() {
            let count = refused.len();
            if marked == 0 {
                return Err(TransportError::permanent(format!(
                    "no user with the address could be marked ({count} refused); user {id}: {}",
                    e.detail()
                )));
            }
            tracing::warn!(marked, refused = count, user = %id, error = %e.detail(), "Keycloak refused to mark some users with the address; the others are marked");
        }
        tracing::info!(users = marked, status = %status, "Keycloak told of an address that does not work");
        Ok(Delivery {
            provider_message_id: None,
        })
    }
}
