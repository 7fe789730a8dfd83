//! The admin API of a running service, as the `queue` and `suppressions`
//! commands call it: an admin token minted from `MAILBRIDGE_JWT_SECRET`, and
//! paths whose values are percent-encoded.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mailbridge::secret::Secret;
use mailbridge::{auth, config};
use percent_encoding::{NON_ALPHANUMERIC, PercentEncode, utf8_percent_encode};
use serde_json::Value;

/// How long a minted admin token is valid: short, as it is never stored.
const TOKEN_TTL: Duration = Duration::from_secs(60);

/// `value` for a path segment or a query value: a tenant may hold `&`, `#`,
/// `+`, `/` or a space, each of which would otherwise change the request
/// (`tenant=R&D` read as tenant `R`).
pub(super) fn encode(value: &str) -> PercentEncode<'_> {
    utf8_percent_encode(value, NON_ALPHANUMERIC)
}

/// `path?name=value&…` with each value [`encode`]d; pairs without a value are left out.
pub(super) fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={}", encode(v))))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// An admin token, minted again once half its life is spent, so that a long
/// command (a purge of thousands of messages) never sends an expired one.
pub(super) struct AdminToken {
    secret: Secret,
    value: String,
    minted: Instant,
}

impl AdminToken {
    /// A token signed with `secret`, minted at `now`.
    pub(super) fn mint(secret: Secret, now: Instant) -> anyhow::Result<AdminToken> {
        let value = auth::mint(secret.expose().as_bytes(), None, true, TOKEN_TTL.as_secs())?;
        Ok(AdminToken {
            secret,
            value,
            minted: now,
        })
    }

    /// The token to send at `now`: a new one when `renew` (the last was
    /// refused) or when half of this one's life has passed.
    pub(super) fn at(&mut self, now: Instant, renew: bool) -> anyhow::Result<String> {
        if renew || now.saturating_duration_since(self.minted) >= TOKEN_TTL / 2 {
            *self = AdminToken::mint(self.secret.clone(), now)?;
        }
        Ok(self.value.clone())
    }
}

/// The admin API of a running service, with an admin token.
pub(super) struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<Mutex<AdminToken>>,
}

impl Client {
    /// A client of the service at `server`.
    pub(super) fn new(server: &str) -> anyhow::Result<Client> {
        let settings = config::from_env()?;
        let token = match settings.jwt_secret {
            Some(secret) => Some(Mutex::new(AdminToken::mint(secret, Instant::now())?)),
            None => None,
        };
        Ok(Client {
            base: server.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token,
        })
    }

    /// Calls `path`; answers the status and the JSON body. A `401` is tried
    /// once more with a new token: this process may have paused past the
    /// token's life, or the service's clock may run ahead of ours.
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let (status, body) = self.send(method.clone(), path, false).await?;
        if status == 401 && self.token.is_some() {
            return self.send(method, path, true).await;
        }
        Ok((status, body))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        renew: bool,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(token) = &self.token {
            let token = token
                .lock()
                .map_err(|_| anyhow::anyhow!("the admin token's lock is poisoned"))?
                .at(Instant::now(), renew)?;
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }
}

/// A problem's `detail` (or a stand-in when the answer has none).
pub(super) fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or("request failed")
}

/// Prints a 2xx answer, or the problem's detail with exit code 1.
pub(super) fn report(status: u16, body: &Value) -> anyhow::Result<ExitCode> {
    if (200..300).contains(&status) {
        println!("{}", serde_json::to_string_pretty(body)?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{status}: {}", detail(body));
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_minted_again_once_half_its_life_is_spent() {
        // Minted once for a purge of thousands of messages, it expired
        // midway and every later call was refused.
        let start = Instant::now();
        let mut token = AdminToken::mint(Secret::new("s".repeat(32)), start).unwrap();
        let first = token.at(start, false).unwrap();
        assert_eq!(
            token.at(start + Duration::from_secs(29), false).unwrap(),
            first
        );
        let second = token.at(start + Duration::from_secs(30), false).unwrap();
        assert_ne!(second, first);
        assert_eq!(
            token.at(start + Duration::from_secs(59), false).unwrap(),
            second
        );
        assert_ne!(
            token.at(start + Duration::from_secs(59), true).unwrap(),
            second,
            "renewed when refused"
        );
    }

    #[test]
    fn query_values_are_encoded_so_a_tenant_cannot_add_parameters() {
        assert_eq!(
            with_query(
                "/v1/messages",
                &[
                    ("status", Some("failed")),
                    ("tenant", Some("R&D x+y#z")),
                    ("before", None)
                ]
            ),
            "/v1/messages?status=failed&tenant=R%26D%20x%2By%23z"
        );
        assert_eq!(
            with_query("/v1/messages", &[("tenant", None)]),
            "/v1/messages"
        );
    }
}
