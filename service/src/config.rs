//! Settings: the environment and an optional TOML file (`MAILBRIDGE_CONFIG`;
//! the environment wins), validated once at start.
//!
//! Every secret may be given as `NAME_FILE` (a path) instead of `NAME`.
//! Domain code never reads these settings: `crate::server::build` turns them
//! into parts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::email::Mailbox;
use crate::queue::retry::RetryPolicy;
use crate::secret::Secret;
use crate::transport::Dsn;

/// A setting is missing or wrong. The message names the setting, never its secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that cannot be used.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable or TOML key.
        name: String,
        /// Why.
        reason: String,
    },
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// One tenant's settings (`[tenants.<name>]`); a tenant is a Keycloak realm by default.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The name of the transport (in `[transports]`) its mail goes through; `default` if unset.
    pub transport: Option<String>,
    /// Its default sender, and the domain its requests may send from.
    pub from: Option<String>,
    /// Its sending rate, e.g. `30/minute` (delays sending, never refuses accepting).
    pub rate: Option<String>,
    /// Which delivery events put an address on its suppression list:
    /// `bounce` (hard bounces), `complaint`; default both, `[]` for none.
    pub suppress: Option<Vec<String>>,
    /// Most messages per recipient address, across kinds, e.g. `5/hour`
    /// (429 beyond, with Retry-After).
    pub recipient_rate: Option<String>,
    /// `[tenants.<name>.template_rates]`: most messages of a kind per
    /// address, e.g. `email-verification = "1/minute"` (429 beyond).
    pub template_rates: Option<BTreeMap<String, String>>,
    /// Where its webhooks go (`https://…`): `message.sent`, `message.failed`,
    /// `message.delivered`, `message.bounced`, `message.complained`, `message.suppressed`.
    pub webhook_url: Option<String>,
    /// The `whsec_…` secret its webhooks are signed with (Standard Webhooks);
    /// `${VAR}` is replaced from the environment.
    pub webhook_secret: Option<String>,
    /// Its Keycloak realm's URL (`https://sso.example/realms/acme`), for
    /// feedback on hard bounces and complaints.
    pub keycloak_url: Option<String>,
    /// A confidential client of that realm with `manage-users` (client-credentials grant).
    pub keycloak_client_id: Option<String>,
    /// That client's secret; `${VAR}` is replaced from the environment.
    pub keycloak_client_secret: Option<String>,
    /// Also set `emailVerified = false` on such users after a hard bounce,
    /// never after a complaint (default false).
    pub keycloak_unverify: Option<bool>,
    /// The Keycloak realm whose signing keys it trusts, e.g.
    /// `https://sso.example/realms/acme`: tokens signed by that realm's keys
    /// (fetched from its JWKS) act for this tenant and no other.
    pub issuer: Option<String>,
    /// `false` refuses tokens signed with the shared secret for this tenant
    /// (admin tokens excepted), once its realm signs with its own keys; default `true`.
    pub accept_shared_secret: Option<bool>,
}

/// Shows `<redacted>` for a secret that is set.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for TenantSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSettings")
            .field("transport", &self.transport)
            .field("from", &self.from)
            .field("rate", &self.rate)
            .field("suppress", &self.suppress)
            .field("recipient_rate", &self.recipient_rate)
            .field("template_rates", &self.template_rates)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &redacted(&self.webhook_secret))
            .field("keycloak_url", &self.keycloak_url)
            .field("keycloak_client_id", &self.keycloak_client_id)
            .field(
                "keycloak_client_secret",
                &redacted(&self.keycloak_client_secret),
            )
            .field("keycloak_unverify", &self.keycloak_unverify)
            .field("issuer", &self.issuer)
            .field("accept_shared_secret", &self.accept_shared_secret)
            .finish()
    }
}

/// Everything the service needs, validated.
#[derive(Clone)]
pub struct Settings {
    /// `MAILBRIDGE_LISTEN`: address to listen on.
    pub listen: SocketAddr,
    /// `MAILBRIDGE_DATABASE_URL`: the queue store, `sqlite://PATH` or `postgres://…`.
    pub database_url: String,
    /// `MAILBRIDGE_TEMPLATES`: the template directory.
    pub templates: PathBuf,
    /// `MAILBRIDGE_FROM`: the sender when neither request nor tenant gives one.
    pub from: Mailbox,
    /// `MAILBRIDGE_JWT_SECRET(_FILE)`: the HS256 secret shared with Keycloak.
    pub jwt_secret: Option<Secret>,
    /// `MAILBRIDGE_ENCRYPTION_KEYS(_FILE)`: `id:base64key,…` sealing stored
    /// messages (the first seals, all open); checked at start.
    pub encryption_keys: Option<Secret>,
    /// `MAILBRIDGE_RETRY_*`: the retry policy.
    pub retry: RetryPolicy,
    /// `MAILBRIDGE_WAIT_TIMEOUT`: bound of `?wait=true`.
    pub wait_timeout: Duration,
    /// `MAILBRIDGE_MAX_PENDING`: most unsent messages one tenant may have queued (429 beyond).
    pub max_pending: u64,
    /// `MAILBRIDGE_LOG`: the log filter.
    pub log: String,
    /// `MAILBRIDGE_RETENTION`: how long the bodies of sent messages are kept
    /// (their status rows stay; failed messages keep theirs until retried or deleted).
    pub retention: Duration,
    /// `MAILBRIDGE_SHUTDOWN_DELAY`: how long the service keeps serving with
    /// `/readyz` at 503 after a stop signal, so load balancers stop sending first.
    pub shutdown_delay: Duration,
    /// `MAILBRIDGE_SHUTDOWN_GRACE`: once the worker stops, how long a send
    /// whose message was handed over (the end of an SMTP `DATA`, an API
    /// request sent) may take to be answered and recorded.
    pub shutdown_grace: Duration,
    /// `MAILBRIDGE_LEASE`: how long a worker's claim on a message holds; renewed
    /// every third of it while an attempt runs, and the bound of one attempt's send.
    pub lease: Duration,
    /// `MAILBRIDGE_HEADER_TIMEOUT`: time a connection has to send a complete
    /// request head (also the longest an idle keep-alive connection stays open).
    pub header_timeout: Duration,
    /// `MAILBRIDGE_BODY_TIMEOUT`: time a request has to send its whole body (408 beyond).
    pub body_timeout: Duration,
    /// `MAILBRIDGE_MAX_CONNECTIONS`: open connections beyond which new ones get only the probes (else 503) or are closed.
    pub max_connections: usize,
    /// The transports by name: `default` from `MAILBRIDGE_TRANSPORT(_FILE)` or
    /// `[transports] default`, the others from `[transports]`. Values are secrets (they hold credentials).
    pub transports: BTreeMap<String, Secret>,
    /// `[tenants.<name>]`.
    pub tenants: BTreeMap<String, TenantSettings>,
    /// `MAILBRIDGE_CONSOLE_*`: the console's OpenID Connect sign-in; `None`: the
    /// console is served only with `--insecure-no-auth` on loopback.
    pub console: Option<ConsoleSettings>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field(
                "database_url",
                &crate::queue::postgres::redact(&self.database_url),
            )
            .field("templates", &self.templates)
            .field("from", &self.from)
            .field("jwt_secret", &self.jwt_secret)
            .field("encryption_keys", &self.encryption_keys)
            .field("retry", &self.retry)
            .field("wait_timeout", &self.wait_timeout)
            .field("max_pending", &self.max_pending)
            .field("log", &self.log)
            .field("retention", &self.retention)
            .field("shutdown_delay", &self.shutdown_delay)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("lease", &self.lease)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_connections", &self.max_connections)
            .field("transports", &self.transports)
            .field("tenants", &self.tenants)
            .field("console", &self.console)
            .finish()
    }
}

/// The console's sign-in through OpenID Connect (a public client with PKCE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// `MAILBRIDGE_CONSOLE_ISSUER`: the issuer, e.g. `https://sso.example/realms/master`.
    pub issuer: url::Url,
    /// `MAILBRIDGE_CONSOLE_CLIENT_ID`: the public client whose roles say what a viewer may do.
    pub client_id: String,
    /// `MAILBRIDGE_CONSOLE_URL`: the service's external base URL; sign-in comes
    /// back to `<URL>/console/callback`.
    pub url: url::Url,
}

/// The optional TOML file. Keys are the variable names without `MAILBRIDGE_`, in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    database_url: Option<String>,
    templates: Option<String>,
    from: Option<String>,
    jwt_secret_file: Option<String>,
    retry_base: Option<String>,
    retry_max_interval: Option<String>,
    retry_max_attempts: Option<u32>,
    retry_max_age: Option<String>,
    wait_timeout: Option<String>,
    max_pending: Option<u64>,
    log: Option<String>,
    retention: Option<String>,
    shutdown_delay: Option<String>,
    shutdown_grace: Option<String>,
    lease: Option<String>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    max_connections: Option<usize>,
    console_issuer: Option<String>,
    console_client_id: Option<String>,
    console_url: Option<String>,
    #[serde(default)]
    transports: BTreeMap<String, String>,
    #[serde(default)]
    tenants: BTreeMap<String, TenantSettings>,
}

/// Reads settings from the process environment (and the file it names).
pub fn from_env() -> Result<Settings, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load(&env)
}

/// Reads settings from `env` (a snapshot of the environment) and the file `MAILBRIDGE_CONFIG` names.
pub fn load(env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    let lookup = Lookup { env };
    let file = match lookup.get("MAILBRIDGE_CONFIG")? {
        Some(path) => read_file(Path::new(&path), &lookup)?,
        None => FileSettings::default(),
    };
    let pick =
        |var: &str, from_file: Option<String>, default: &str| -> Result<String, ConfigError> {
            Ok(lookup
                .get(var)?
                .or(from_file)
                .unwrap_or_else(|| default.to_owned()))
        };
    let listen = pick("MAILBRIDGE_LISTEN", file.listen, "127.0.0.1:8090")?;
    let from = pick("MAILBRIDGE_FROM", file.from, "mailbridge@localhost")?;
    let retry = RetryPolicy {
        base: duration(&lookup, "MAILBRIDGE_RETRY_BASE", file.retry_base, "5s")?,
        max_interval: duration(
            &lookup,
            "MAILBRIDGE_RETRY_MAX_INTERVAL",
            file.retry_max_interval,
            "1h",
        )?,
        max_attempts: number(
            &lookup,
            "MAILBRIDGE_RETRY_MAX_ATTEMPTS",
            file.retry_max_attempts,
            10,
        )?,
        max_age: duration(
            &lookup,
            "MAILBRIDGE_RETRY_MAX_AGE",
            file.retry_max_age,
            "24h",
        )?,
    };
    if retry.max_attempts == 0 || retry.base.is_zero() {
        return Err(invalid(
            "MAILBRIDGE_RETRY_*",
            "attempts and base delay must be above zero",
        ));
    }
    let jwt_secret = match lookup.secret("MAILBRIDGE_JWT_SECRET")? {
        Some(s) => Some(s),
        None => file
            .jwt_secret_file
            .map(|p| read_secret_file("jwt_secret_file", &p))
            .transpose()?,
    };
    if let Some(secret) = &jwt_secret
        && secret.expose().len() < 32
    {
        return Err(invalid(
            "MAILBRIDGE_JWT_SECRET",
            "must be at least 32 bytes long",
        ));
    }
    let encryption_keys = lookup.secret("MAILBRIDGE_ENCRYPTION_KEYS")?;
    if let Some(keys) = &encryption_keys {
        crate::queue::sealing::Keyring::parse(keys.expose())
            .map_err(|e| invalid("MAILBRIDGE_ENCRYPTION_KEYS", e.0))?;
    }
    let mut transports: BTreeMap<String, Secret> = file
        .transports
        .into_iter()
        .map(|(name, dsn)| (name, Secret::new(dsn)))
        .collect();
    if let Some(dsn) = lookup.secret("MAILBRIDGE_TRANSPORT")? {
        transports.insert("default".into(), dsn);
    }
    transports
        .entry("default".into())
        .or_insert_with(|| Secret::new("file://outbox"));
    let settings = Settings {
        listen: listen
            .parse()
            .map_err(|_| invalid("MAILBRIDGE_LISTEN", format!("`{listen}` is not host:port")))?,
        database_url: pick(
            "MAILBRIDGE_DATABASE_URL",
            file.database_url,
            "sqlite://data/mailbridge.db",
        )?,
        templates: PathBuf::from(pick("MAILBRIDGE_TEMPLATES", file.templates, "templates")?),
        from: Mailbox::parse(&from).map_err(|e| invalid("MAILBRIDGE_FROM", e.reason))?,
        jwt_secret,
        encryption_keys,
        retry,
        wait_timeout: duration(&lookup, "MAILBRIDGE_WAIT_TIMEOUT", file.wait_timeout, "30s")?,
        max_pending: number(&lookup, "MAILBRIDGE_MAX_PENDING", file.max_pending, 100_000)?,
        log: pick("MAILBRIDGE_LOG", file.log, "info")?,
        retention: duration(&lookup, "MAILBRIDGE_RETENTION", file.retention, "7d")?,
        shutdown_delay: duration(
            &lookup,
            "MAILBRIDGE_SHUTDOWN_DELAY",
            file.shutdown_delay,
            "2s",
        )?,
        shutdown_grace: duration(
            &lookup,
            "MAILBRIDGE_SHUTDOWN_GRACE",
            file.shutdown_grace,
            "20s",
        )?,
        lease: duration(&lookup, "MAILBRIDGE_LEASE", file.lease, "2m")?,
        header_timeout: duration(
            &lookup,
            "MAILBRIDGE_HEADER_TIMEOUT",
            file.header_timeout,
            "10s",
        )?,
        body_timeout: duration(&lookup, "MAILBRIDGE_BODY_TIMEOUT", file.body_timeout, "30s")?,
        max_connections: number(
            &lookup,
            "MAILBRIDGE_MAX_CONNECTIONS",
            file.max_connections,
            4096,
        )?,
        transports,
        tenants: file.tenants,
        console: console_settings(
            lookup
                .get("MAILBRIDGE_CONSOLE_ISSUER")?
                .or(file.console_issuer),
            lookup
                .get("MAILBRIDGE_CONSOLE_CLIENT_ID")?
                .or(file.console_client_id),
            lookup.get("MAILBRIDGE_CONSOLE_URL")?.or(file.console_url),
        )?,
    };
    settings.validate()?;
    Ok(settings)
}

/// The console's sign-in: all three settings, or none.
fn console_settings(
    issuer: Option<String>,
    client_id: Option<String>,
    url: Option<String>,
) -> Result<Option<ConsoleSettings>, ConfigError> {
    const NAMES: &str = "MAILBRIDGE_CONSOLE_ISSUER / _CLIENT_ID / _URL";
    let (issuer, client_id, url) = match (issuer, client_id, url) {
        (None, None, None) => return Ok(None),
        (Some(i), Some(c), Some(u)) => (i, c, u),
        _ => return Err(invalid(NAMES, "set all three, or none (console off)")),
    };
    let parse = |name: &str, text: &str| -> Result<url::Url, ConfigError> {
        let parsed = url::Url::parse(text.trim())
            .map_err(|e| invalid(name, format!("`{text}` is not a URL: {e}")))?;
        let loopback = matches!(parsed.host(), Some(url::Host::Domain("localhost")))
            || match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            };
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(invalid(
                name,
                "must be https (http only to a loopback host)",
            ));
        }
        Ok(parsed)
    };
    if client_id.trim().is_empty() {
        return Err(invalid("MAILBRIDGE_CONSOLE_CLIENT_ID", "must not be empty"));
    }
    Ok(Some(ConsoleSettings {
        issuer: parse("MAILBRIDGE_CONSOLE_ISSUER", &issuer)?,
        client_id: client_id.trim().to_owned(),
        url: parse("MAILBRIDGE_CONSOLE_URL", &url)?,
    }))
}

impl Settings {
    /// Checks what can be checked without I/O: DSNs parse, tenants name existing transports.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lease < Duration::from_secs(3) {
            return Err(invalid(
                "MAILBRIDGE_LEASE",
                "must be at least 3s (it is renewed every third of its length)",
            ));
        }
        if self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return Err(invalid(
                "MAILBRIDGE_HEADER_TIMEOUT / MAILBRIDGE_BODY_TIMEOUT",
                "must be above zero",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("MAILBRIDGE_MAX_CONNECTIONS", "must be above zero"));
        }
        for reserved in [crate::webhooks::TRANSPORT, crate::feedback::TRANSPORT] {
            if self.transports.contains_key(reserved) {
                return Err(invalid(
                    &format!("transport `{reserved}`"),
                    "the name is reserved for the queue's webhook and Keycloak deliveries",
                ));
            }
        }
        for (name, dsn) in &self.transports {
            Dsn::parse(dsn.expose())
                .map_err(|e| invalid(&format!("transport `{name}`"), e.to_string()))?;
        }
        for (tenant, t) in &self.tenants {
            let key = format!("tenants.{tenant}");
            if let Some(transport) = &t.transport
                && !self.transports.contains_key(transport)
            {
                return Err(invalid(
                    &key,
                    format!("names transport `{transport}`, which is not in [transports]"),
                ));
            }
            if let Some(from) = &t.from {
                Mailbox::parse(from).map_err(|e| invalid(&format!("{key}.from"), e.reason))?;
            }
            if let Some(rate) = &t.rate {
                crate::transport::ratelimit::Rate::parse(rate)
                    .map_err(|e| invalid(&format!("{key}.rate"), e.to_string()))?;
            }
            let rates = t
                .recipient_rate
                .iter()
                .map(|r| ("recipient_rate".to_owned(), r));
            let templates = t.template_rates.iter().flatten();
            for (name, rate) in
                rates.chain(templates.map(|(k, r)| (format!("template_rates.{k}"), r)))
            {
                crate::transport::ratelimit::Rate::parse(rate)
                    .map_err(|e| invalid(&format!("{key}.{name}"), e.to_string()))?;
            }
            check_webhook(&key, t)?;
            check_keycloak(&key, t)?;
            if let Some(suppress) = &t.suppress {
                crate::suppression::SuppressOn::parse(suppress).map_err(|other| {
                    invalid(
                        &format!("{key}.suppress"),
                        format!("`{other}` is not `bounce` or `complaint`"),
                    )
                })?;
            }
        }
        self.validate_issuers()
    }

    /// Each issuer is an https URL (http only to a loopback host) and names one tenant only:
    /// a realm's tokens must never act for two tenants.
    fn validate_issuers(&self) -> Result<(), ConfigError> {
        let mut seen = BTreeMap::new();
        for (tenant, issuer) in self.issuers() {
            let key = format!("tenants.{tenant}.issuer");
            crate::auth::realm::check_issuer(issuer).map_err(|e| invalid(&key, e))?;
            if let Some(other) = seen.insert(issuer, tenant) {
                return Err(invalid(
                    &key,
                    format!("`{issuer}` is already the issuer of tenant `{other}`"),
                ));
            }
        }
        Ok(())
    }

    /// The tenants that refuse tokens signed with the shared secret.
    pub fn realm_key_only(&self) -> impl Iterator<Item = &str> {
        self.tenants
            .iter()
            .filter(|(_, t)| t.accept_shared_secret == Some(false))
            .map(|(name, _)| name.as_str())
    }

    /// Every tenant that trusts a realm's keys, with that realm's issuer.
    pub fn issuers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tenants
            .iter()
            .filter_map(|(name, t)| t.issuer.as_deref().map(|i| (name.as_str(), i)))
    }

    /// The tenant's settings, or the defaults for a tenant the file does not name.
    pub fn tenant(&self, name: &str) -> TenantSettings {
        self.tenants.get(name).cloned().unwrap_or_default()
    }
}

/// A tenant's webhook settings: both or neither, an http(s) URL, a `whsec_` secret.
fn check_webhook(key: &str, t: &TenantSettings) -> Result<(), ConfigError> {
    match (&t.webhook_url, &t.webhook_secret) {
        (None, None) => Ok(()),
        (Some(url), Some(secret)) => {
            let parsed = url::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if parsed.is_none() {
                return Err(invalid(
                    &format!("{key}.webhook_url"),
                    "must be an http(s) URL",
                ));
            }
            crate::webhooks::sign::key(secret)
                .map(|_| ())
                .map_err(|e| invalid(&format!("{key}.webhook_secret"), e.to_string()))
        }
        _ => Err(invalid(key, "webhook_url and webhook_secret go together")),
    }
}

/// A tenant's Keycloak feedback settings: URL, client id and secret together.
fn check_keycloak(key: &str, t: &TenantSettings) -> Result<(), ConfigError> {
    match (
        &t.keycloak_url,
        &t.keycloak_client_id,
        &t.keycloak_client_secret,
    ) {
        (None, None, None) => Ok(()),
        (Some(url), Some(_), Some(_)) => {
            let field = format!("{key}.keycloak_url");
            // Before the https check, which quotes the URL: a query string
            // is refused without being shown (it may hold a secret).
            crate::feedback::Realm::parse_url(url).map_err(|why| invalid(&field, why))?;
            // The client secret and a `manage-users` token travel to it.
            crate::auth::realm::check_fetch_url(url).map_err(|e| invalid(&field, e))
        }
        _ => Err(invalid(
            key,
            "keycloak_url, keycloak_client_id and keycloak_client_secret go together",
        )),
    }
}

/// Looks up variables, with `NAME_FILE` for secrets.
struct Lookup<'a> {
    env: &'a BTreeMap<String, String>,
}

impl Lookup<'_> {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.env.get(name).filter(|v| !v.is_empty()).cloned())
    }

    fn secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
        if let Some(value) = self.get(name)? {
            return Ok(Some(Secret::new(value)));
        }
        match self.get(&format!("{name}_FILE"))? {
            Some(path) => read_secret_file(&format!("{name}_FILE"), &path).map(Some),
            None => Ok(None),
        }
    }
}

fn read_secret_file(name: &str, path: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(name, format!("cannot read {path}: {e}")))?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

fn duration(
    lookup: &Lookup<'_>,
    name: &str,
    from_file: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = lookup
        .get(name)?
        .or(from_file)
        .unwrap_or_else(|| default.to_owned());
    let parsed = humantime::parse_duration(&text).map_err(|e| {
        invalid(
            name,
            format!("`{text}` is not a duration like 100ms, 5s, 1h ({e})"),
        )
    })?;
    if parsed > LONGEST_SETTING {
        return Err(invalid(name, format!("`{text}` is longer than 10 years")));
    }
    Ok(parsed)
}

/// The longest duration a setting takes: times are computed from it (a
/// message's age limit, a lease's end), and beyond calendars and clocks
/// they overflow.
const LONGEST_SETTING: Duration = Duration::from_secs(3650 * 24 * 3600);

fn number<T: std::str::FromStr>(
    lookup: &Lookup<'_>,
    name: &str,
    from_file: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    match lookup.get(name)? {
        Some(text) => text
            .parse()
            .map_err(|_| invalid(name, format!("`{text}` is not a whole number"))),
        None => Ok(from_file.unwrap_or(default)),
    }
}

/// Where and why the file does not parse, without its text: toml's own
/// message quotes the line, which may hold a secret written in the file.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", error.message().trim())
        }
        None => error.message().trim().to_owned(),
    }
}

fn read_file(path: &Path, lookup: &Lookup<'_>) -> Result<FileSettings, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let mut file: FileSettings =
        toml::from_str(&text).map_err(|e| file_error(toml_error(&text, &e)))?;
    for dsn in file.transports.values_mut() {
        *dsn = substitute(dsn, lookup).map_err(file_error)?;
    }
    for tenant in file.tenants.values_mut() {
        for secret in [
            &mut tenant.webhook_secret,
            &mut tenant.keycloak_client_secret,
        ]
        .into_iter()
        .flatten()
        {
            *secret = substitute(secret, lookup).map_err(file_error)?;
        }
    }
    Ok(file)
}

/// Replaces `${VAR}` with the variable's value (or the contents of `VAR_FILE`).
fn substitute(text: &str, lookup: &Lookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| "unclosed `${` in a transport".to_owned())?;
        let name = &rest[start + 2..start + end];
        let value = lookup
            .secret(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("a transport uses ${{{name}}}, which is not set"))?;
        out.push_str(value.expose());
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_console_sign_in_takes_all_three_settings_and_https() {
        let issuer = (
            "MAILBRIDGE_CONSOLE_ISSUER",
            "https://sso.example/realms/master",
        );
        let client = ("MAILBRIDGE_CONSOLE_CLIENT_ID", "mailbridge-console");
        let url = ("MAILBRIDGE_CONSOLE_URL", "https://mailbridge.example");
        let console = load(&env(&[issuer, client, url])).unwrap().console.unwrap();
        assert_eq!(console.client_id, "mailbridge-console");
        assert!(load(&env(&[issuer, client])).is_err(), "all three or none");
        let plain = (
            "MAILBRIDGE_CONSOLE_ISSUER",
            "http://sso.example/realms/master",
        );
        assert!(load(&env(&[plain, client, url])).is_err(), "https only");
        let local = (
            "MAILBRIDGE_CONSOLE_ISSUER",
            "http://127.0.0.1:8080/realms/master",
        );
        assert!(
            load(&env(&[local, client, url])).is_ok(),
            "http to loopback"
        );
    }

    #[test]
    fn durations_beyond_ten_years_are_refused() {
        let long = load(&env(&[("MAILBRIDGE_RETRY_MAX_AGE", "9999y")]));
        assert!(long.unwrap_err().to_string().contains("10 years"));
        assert!(load(&env(&[("MAILBRIDGE_LEASE", "100000000d")])).is_err());
        let year = load(&env(&[("MAILBRIDGE_RETENTION", "365d")])).unwrap();
        assert_eq!(year.retention, Duration::from_secs(365 * 24 * 3600));
    }

    /// The settings of a tenant whose Keycloak feedback goes to `url`, validated.
    fn with_keycloak_url(dir: &tempfile::TempDir, url: &str) -> Result<Settings, ConfigError> {
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            format!(
                "[tenants.acme]\nkeycloak_url = \"{url}\"\nkeycloak_client_id = \"mb\"\nkeycloak_client_secret = \"s3cret-s3cret\"\n"
            ),
        )
        .unwrap();
        load(&env(&[("MAILBRIDGE_CONFIG", path.to_str().unwrap())]))
            .and_then(|s| s.validate().map(|()| s))
    }

    #[test]
    fn keycloak_feedback_goes_over_https_off_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let with = |url: &str| with_keycloak_url(&dir, url);
        let plain = with("http://sso.example/realms/acme")
            .unwrap_err()
            .to_string();
        assert!(plain.contains("https"), "{plain}");
        assert!(!plain.contains("s3cret"), "{plain}");
        assert!(with("https://sso.example/realms/acme").is_ok());
        assert!(with("http://127.0.0.1:8080/realms/acme").is_ok());
    }

    #[test]
    fn a_keycloak_url_with_a_query_string_or_fragment_is_refused_at_start_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let with = |url: &str| with_keycloak_url(&dir, url);
        for url in [
            "https://sso.example/realms/acme?kc_locale=de",
            "https://sso.example/realms/acme#x",
            "http://sso.example/realms/acme?token=url-s3cret",
        ] {
            let refused = with(url).expect_err(url).to_string();
            assert!(refused.contains("keycloak_url"), "{refused}");
            assert!(refused.contains("query string or fragment"), "{refused}");
            assert!(!refused.contains("s3cret"), "{refused}");
        }
    }

    #[test]
    fn an_emails_last_attempt_is_at_its_max_age_whatever_the_longest_delay() {
        use crate::queue::retry::Decision;
        use time::macros::datetime;
        let s = load(&env(&[
            ("MAILBRIDGE_RETRY_MAX_INTERVAL", "6h"),
            ("MAILBRIDGE_RETRY_MAX_ATTEMPTS", "100"),
        ]))
        .unwrap();
        let accepted = datetime!(2026-01-01 00:00 UTC);
        let hour = Duration::from_secs(3600);
        // After an attempt in the 20th hour the next delay (up to 6 h) may
        // pass the 24th: the message is tried once more at the 24th hour.
        assert_eq!(
            s.retry
                .decide(20, accepted, accepted + 20 * hour, None, 0.9),
            Decision::Retry {
                at: accepted + 24 * hour
            }
        );
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let s = load(&env(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8090");
        assert_eq!(s.database_url, "sqlite://data/mailbridge.db");
        assert_eq!(s.transports["default"].expose(), "file://outbox");
        assert_eq!(s.retry.base, Duration::from_secs(5));
        assert_eq!(s.retry.max_attempts, 10);
        assert_eq!(s.wait_timeout, Duration::from_secs(30));
        assert!(s.jwt_secret.is_none());
    }

    #[test]
    fn file_with_tenants_and_substitution() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            r#"
retry_base = "100ms"
[transports]
eu = "sendgrid+api://${SG_KEY}@default"
[tenants.acme]
transport = "eu"
from = "ACME <no-reply@acme.example>"
rate = "30/minute"
"#,
        )
        .unwrap();
        let s = load(&env(&[
            ("MAILBRIDGE_CONFIG", path.to_str().unwrap()),
            ("SG_KEY", "k%2B1"),
            ("MAILBRIDGE_RETRY_BASE", "250ms"),
        ]))
        .unwrap();
        assert_eq!(s.transports["eu"].expose(), "sendgrid+api://k%2B1@default");
        assert_eq!(s.retry.base, Duration::from_millis(250), "environment wins");
        assert_eq!(s.tenant("acme").transport.as_deref(), Some("eu"));
        assert_eq!(s.tenant("other"), TenantSettings::default());
        assert!(
            !format!("{s:?}").contains("k%2B1"),
            "secrets are redacted in debug output"
        );
        let s = load(&env(&[
            ("MAILBRIDGE_DATABASE_URL", "postgres://mb:db-s3cret@db/mb"),
            ("MAILBRIDGE_CONFIG", path.to_str().unwrap()),
            ("SG_KEY", "k"),
        ]))
        .unwrap();
        let mut s = s;
        let acme = s.tenants.get_mut("acme").unwrap();
        acme.webhook_secret = Some("whsec_s3cret".into());
        acme.keycloak_client_secret = Some("kc-s3cret".into());
        let shown = format!("{s:?}");
        for secret in ["db-s3cret", "whsec_s3cret", "kc-s3cret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_file_that_does_not_parse_is_named_by_line_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        for (text, line) in [
            // A misspelt key, a value without quotes, a bad escape.
            (
                "[tenants.acme]\nkeycloak_client_secet = \"s3cr3t-value\"\n",
                2,
            ),
            ("[tenants.acme]\nwebhook_secret = whsec_s3cr3t-value\n", 2),
            ("[transports]\n\neu = \"smtp://u:s3cr3t-value\\q@h\"\n", 3),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = load(&env(&[("MAILBRIDGE_CONFIG", path.to_str().unwrap())]))
                .unwrap_err()
                .to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
            assert!(err.contains(&format!("line {line}, column")), "{err}");
        }
    }

    #[test]
    fn clear_errors() {
        let err = load(&env(&[("MAILBRIDGE_RETRY_BASE", "soon")])).unwrap_err();
        assert!(err.to_string().contains("MAILBRIDGE_RETRY_BASE"), "{err}");
        let err = load(&env(&[("MAILBRIDGE_JWT_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert!(!err.to_string().contains("short"));
        let err = load(&env(&[("MAILBRIDGE_MAX_CONNECTIONS", "0")])).unwrap_err();
        assert!(
            err.to_string().contains("MAILBRIDGE_MAX_CONNECTIONS"),
            "{err}"
        );
        let err = load(&env(&[("MAILBRIDGE_ENCRYPTION_KEYS", "k1:c2hvcnQ=")])).unwrap_err();
        assert!(
            err.to_string().contains("MAILBRIDGE_ENCRYPTION_KEYS"),
            "{err}"
        );
        assert!(err.to_string().contains("exactly 32"), "{err}");
        assert!(!err.to_string().contains("c2hvcnQ="), "{err}");
        let err = load(&env(&[("MAILBRIDGE_BODY_TIMEOUT", "0s")])).unwrap_err();
        assert!(err.to_string().contains("MAILBRIDGE_BODY_TIMEOUT"), "{err}");
        let err = load(&env(&[("MAILBRIDGE_TRANSPORT", "bogus")])).unwrap_err();
        assert!(err.to_string().contains("transport `default`"), "{err}");
    }

    #[test]
    fn one_issuer_one_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        let load_with = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            load(&env(&[("MAILBRIDGE_CONFIG", path.to_str().unwrap())]))
        };
        let ok =
            load_with("[tenants.acme]\nissuer = \"https://sso.example/realms/acme\"\n").unwrap();
        assert_eq!(
            ok.issuers().collect::<Vec<_>>(),
            [("acme", "https://sso.example/realms/acme")]
        );
        let twice = "[tenants.a]\nissuer = \"https://sso.example/realms/a\"\n\
                     [tenants.b]\nissuer = \"https://sso.example/realms/a\"\n";
        let err = load_with(twice).unwrap_err();
        assert!(
            err.to_string().contains("already the issuer of tenant `a`"),
            "{err}"
        );
        let err = load_with("[tenants.a]\nissuer = \"http://sso.example/realms/a\"\n").unwrap_err();
        assert!(err.to_string().contains("tenants.a.issuer"), "{err}");
    }
}
