//! What an `smtp://` or `smtps://` DSN asks for, checked once at start.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::dkim::DkimSigner;
use crate::oauth::{ClientCredentials, GMAIL_SCOPE, GoogleServiceAccount, TokenSource};
use crate::transport::{Dsn, DsnError};

/// Options an SMTP DSN may carry; any other is a typo worth refusing.
const KNOWN_OPTIONS: &[&str] = &[
    "tls",
    "ca_file",
    "helo",
    "timeout",
    "idle_timeout",
    "max_connections",
    "auth",
    "token_url",
    "client_id",
    "client_secret",
    "scope",
    "google_key_file",
    "cert_file",
    "key_file",
    "debug",
    "pipelining",
    "verp",
    "dkim_domain",
    "dkim_selector",
    "dkim_key_file",
];
const XOAUTH2_OPTIONS: &[&str] = &[
    "token_url",
    "client_id",
    "client_secret",
    "cert_file",
    "key_file",
    "scope",
    "google_key_file",
];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle connection is kept; servers commonly drop idle clients
/// after a few minutes (Postfix: 300 s).
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// Everything needed to open connections, except XOAUTH2 tokens.
pub(super) struct Settings {
    /// `host:port`, to name the server in errors and logs.
    pub server: String,
    /// The host to connect to.
    pub host: String,
    /// The port to connect to.
    pub port: u16,
    /// How the connection is encrypted.
    pub security: Security,
    /// The name we give in EHLO.
    pub hello: ClientId,
    /// Bound of one attempt: connecting, TLS, AUTH and the whole transfer.
    pub timeout: Duration,
    /// Most connections open at once.
    pub max_connections: u32,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
    /// User and password with the mechanisms to offer, if any.
    pub login: Option<Login>,
    /// The XOAUTH2 user and token source, when `auth=xoauth2`.
    pub xoauth2: Option<(String, Arc<dyn TokenSource>)>,
    /// `debug=true`: log the SMTP conversation (secrets redacted).
    pub debug: bool,
    /// `pipelining=false`: never group commands, even when the server
    /// offers PIPELINING.
    pub pipelining: bool,
    /// `verp=bounces@domain`: every message's envelope sender is
    /// `bounces+<its id>@domain`, so that a bounce names the message.
    pub verp: Option<(String, String)>,
    /// `dkim_domain`, `dkim_selector`, `dkim_key_file`: sign every message.
    pub dkim: Option<Arc<DkimSigner>>,
}

/// How a connection is encrypted.
#[derive(Clone)]
pub(super) enum Security {
    /// Never (`tls=none`).
    Plain,
    /// By STARTTLS: always when `required`, else when the server offers it.
    StartTls {
        /// The TLS settings (trust roots, name to check).
        params: TlsParameters,
        /// Refuse a server that does not offer STARTTLS.
        required: bool,
    },
    /// TLS from the first byte (`smtps`).
    Implicit {
        /// The TLS client settings.
        config: Arc<rustls::ClientConfig>,
        /// The name the certificate must carry.
        name: ServerName<'static>,
    },
}

/// Reads an `smtp://` or `smtps://` DSN.
pub(super) fn from_dsn(dsn: &Dsn) -> Result<Settings, DsnError> {
    let scheme = dsn.scheme.as_str();
    if let Some(unknown) = dsn
        .options
        .keys()
        .find(|k| !KNOWN_OPTIONS.contains(&k.as_str()))
    {
        return Err(DsnError::invalid(
            scheme,
            format!("unknown option `{unknown}`"),
        ));
    }
    if dsn.host.is_empty() {
        return Err(DsnError::invalid(scheme, "missing host"));
    }
    let implicit_tls = scheme == "smtps";
    let port = dsn.port.unwrap_or(if implicit_tls { 465 } else { 587 });
    let timeout = duration(dsn, "timeout", DEFAULT_TIMEOUT)?;
    let idle_timeout = duration(dsn, "idle_timeout", DEFAULT_IDLE_TIMEOUT)?;
    let max_connections = match dsn.option("max_connections") {
        Some(n) => n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            DsnError::invalid(scheme, "max_connections must be a positive number")
        })?,
        None => DEFAULT_MAX_CONNECTIONS,
    };
    let hello = match dsn.option("helo") {
        Some(helo) => ClientId::Domain(helo.to_owned()),
        None => ClientId::default(),
    };
    let debug = flag(dsn, "debug", false)?;
    let pipelining = flag(dsn, "pipelining", true)?;
    let (login, xoauth2) = if dsn.option("auth") == Some("xoauth2") {
        (None, Some(xoauth2(dsn, timeout)?))
    } else {
        (password_auth(dsn)?, None)
    };
    Ok(Settings {
        server: format!("{}:{port}", dsn.host),
        host: dsn.host.clone(),
        port,
        security: security(dsn, implicit_tls)?,
        hello,
        timeout,
        max_connections,
        idle_timeout,
        login,
        xoauth2,
        debug,
        pipelining,
        verp: verp(dsn)?,
        dkim: dkim(dsn)?,
    })
}

/// A `true`/`false` option (also `1`/`0`, `yes`/`no`).
fn flag(dsn: &Dsn, name: &str, default: bool) -> Result<bool, DsnError> {
    match dsn.option(name) {
        None => Ok(default),
        Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(DsnError::invalid(
            &dsn.scheme,
            format!("{name} `{other}` is not one of true, false"),
        )),
    }
}

/// The `verp` option: a plain address whose local part gets the message's tag.
fn verp(dsn: &Dsn) -> Result<Option<(String, String)>, DsnError> {
    let Some(address) = dsn.option("verp") else {
        return Ok(None);
    };
    let refuse = || {
        DsnError::invalid(
            &dsn.scheme,
            "verp must be an address like bounces@acme.example",
        )
    };
    let (local, domain) = address.rsplit_once('@').ok_or_else(refuse)?;
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    };
    if !plain(local) || !plain(domain) {
        return Err(refuse());
    }
    Ok(Some((local.to_owned(), domain.to_owned())))
}

/// The DKIM signer the DSN asks for: all three options or none; the key
/// is read and checked here, at start.
fn dkim(dsn: &Dsn) -> Result<Option<Arc<DkimSigner>>, DsnError> {
    let scheme = dsn.scheme.as_str();
    let options = (
        dsn.option("dkim_domain"),
        dsn.option("dkim_selector"),
        dsn.option("dkim_key_file"),
    );
    let (domain, selector, key_file) = match options {
        (None, None, None) => return Ok(None),
        (Some(d), Some(s), Some(k)) => (d, s, k),
        _ => {
            return Err(DsnError::invalid(
                scheme,
                "DKIM needs all of dkim_domain, dkim_selector and dkim_key_file",
            ));
        }
    };
    let pem = std::fs::read_to_string(key_file)
        .map_err(|e| DsnError::invalid(scheme, format!("dkim_key_file {key_file}: {e}")))?;
    let signer = DkimSigner::new(domain, selector, &pem)
        .map_err(|e| DsnError::invalid(scheme, format!("dkim_key_file {key_file}: {e}")))?;
    Ok(Some(Arc::new(signer)))
}

/// The duration option `name`, or `default`.
fn duration(dsn: &Dsn, name: &str, default: Duration) -> Result<Duration, DsnError> {
    match dsn.option(name) {
        Some(t) => humantime::parse_duration(t)
            .map_err(|_| DsnError::invalid(&dsn.scheme, format!("{name} `{t}` is not a duration"))),
        None => Ok(default),
    }
}

/// `smtps`: TLS from the first byte. `smtp`: STARTTLS required, unless `tls=`
/// says otherwise or the host is loopback. To a loopback host (a local relay,
/// often with a self-signed certificate such as Debian's Postfix) STARTTLS is
/// used when offered, without checking the certificate: that traffic never
/// leaves the machine.
fn security(dsn: &Dsn, implicit_tls: bool) -> Result<Security, DsnError> {
    let scheme = dsn.scheme.as_str();
    let (mode, verify) = match (implicit_tls, dsn.option("tls")) {
        (true, None) => ("wrapper", true),
        (true, Some(_)) => {
            return Err(DsnError::invalid(
                scheme,
                "`tls` does not apply to smtps (always TLS)",
            ));
        }
        (false, Some(mode)) => (mode, true),
        // Given a CA, the operator wants the certificate checked.
        (false, None) if is_loopback(&dsn.host) => {
            ("opportunistic", dsn.option("ca_file").is_some())
        }
        (false, None) => ("required", true),
    };
    let starttls = |required| {
        Ok(Security::StartTls {
            params: tls_parameters(dsn, verify)?,
            required,
        })
    };
    match mode {
        "none" => Ok(Security::Plain),
        "wrapper" => implicit(dsn),
        "required" => starttls(true),
        "opportunistic" => starttls(false),
        other => Err(DsnError::invalid(
            scheme,
            format!("tls `{other}` is not one of none, opportunistic, required"),
        )),
    }
}

/// TLS from the first byte, always verified: the public roots, and the
/// DSN's `ca_file` if given.
fn implicit(dsn: &Dsn) -> Result<Security, DsnError> {
    let scheme = dsn.scheme.as_str();
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = dsn.option("ca_file") {
        let pem = read_ca_file(scheme, path)?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| DsnError::invalid(scheme, format!("ca_file {path}: {e}")))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(DsnError::invalid(
                scheme,
                format!("ca_file {path} holds no PEM certificate"),
            ));
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(dsn.host.clone())
        .map_err(|e| DsnError::invalid(scheme, format!("host `{}`: {e}", dsn.host)))?;
    Ok(Security::Implicit {
        config: Arc::new(config),
        name,
    })
}

fn read_ca_file(scheme: &str, path: &str) -> Result<Vec<u8>, DsnError> {
    std::fs::read(path)
        .map_err(|e| DsnError::invalid(scheme, format!("cannot read ca_file {path}: {e}")))
}

fn tls_parameters(dsn: &Dsn, verify: bool) -> Result<TlsParameters, DsnError> {
    let scheme = dsn.scheme.as_str();
    let mut params =
        TlsParameters::builder(dsn.host.clone()).dangerous_accept_invalid_certs(!verify);
    if let Some(path) = dsn.option("ca_file") {
        let pem = read_ca_file(scheme, path)?;
        let cert = Certificate::from_pem(&pem).map_err(|e| {
            DsnError::invalid(
                scheme,
                format!("ca_file {path} holds no PEM certificate: {e}"),
            )
        })?;
        params = params.add_root_certificate(cert);
    }
    params
        .build()
        .map_err(|e| DsnError::invalid(scheme, format!("TLS setup failed: {e}")))
}

pub(super) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// User and password (AUTH PLAIN or LOGIN; `auth=plain|login` to force one),
/// or no authentication at all (a relay that trusts our address).
fn password_auth(dsn: &Dsn) -> Result<Option<Login>, DsnError> {
    let scheme = dsn.scheme.as_str();
    if let Some(option) = XOAUTH2_OPTIONS.iter().find(|o| dsn.option(o).is_some()) {
        return Err(DsnError::invalid(
            scheme,
            format!("`{option}` needs auth=xoauth2"),
        ));
    }
    let mechanisms = match dsn.option("auth") {
        None => vec![Mechanism::Plain, Mechanism::Login],
        Some("plain") => vec![Mechanism::Plain],
        Some("login") => vec![Mechanism::Login],
        Some(other) => {
            return Err(DsnError::invalid(
                scheme,
                format!("auth `{other}` is not one of plain, login, xoauth2"),
            ));
        }
    };
    let Some(user) = &dsn.user else {
        return Ok(None);
    };
    let password = dsn.require_password("password")?;
    Ok(Some(Login::new(user, password, mechanisms)))
}

/// What AUTH sends: the credentials, the mechanisms to offer, and every form
/// in which the secret crosses the wire, to be blanked wherever the server's
/// answer is repeated (a server may echo the line it refuses).
#[derive(Clone)]
pub struct Login {
    pub credentials: Credentials,
    pub mechanisms: Vec<Mechanism>,
    pub hidden: Vec<String>,
}

impl Login {
    pub fn new(user: &str, secret: &str, mechanisms: Vec<Mechanism>) -> Self {
        use base64::Engine as _;
        let encode = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
        let mut hidden = vec![
            secret.to_owned(),
            // LOGIN answers the password prompt with the secret alone.
            encode(secret.to_owned()),
            // PLAIN's and XOAUTH2's initial responses.
            encode(format!("\u{0}{user}\u{0}{secret}")),
            encode(format!("user={user}\x01auth=Bearer {secret}\x01\x01")),
        ];
        hidden.retain(|form| !form.is_empty());
        Self {
            credentials: Credentials::new(user.to_owned(), secret.to_owned()),
            mechanisms,
            hidden,
        }
    }

    /// `text` with every form of the secret replaced by `[redacted]`.
    pub fn blank(&self, text: &str) -> String {
        self.hidden.iter().fold(text.to_owned(), |t, form| {
            t.replace(form.as_str(), "[redacted]")
        })
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("mechanisms", &self.mechanisms)
            .finish_non_exhaustive()
    }
}

/// The XOAUTH2 user and where its tokens come from.
fn xoauth2(dsn: &Dsn, timeout: Duration) -> Result<(String, Arc<dyn TokenSource>), DsnError> {
    let scheme = dsn.scheme.as_str();
    let user = dsn.require_user("XOAUTH2 user (the mailbox)")?.to_owned();
    if dsn.password.is_some() {
        return Err(DsnError::invalid(
            scheme,
            "auth=xoauth2 takes no password: give client_secret, cert_file and key_file, or google_key_file",
        ));
    }
    let http = reqwest::Client::builder()
        .timeout(timeout)
        // A redirected token request would post the client secret (or the
        // signed assertion) again to wherever the answer points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DsnError::invalid(scheme, format!("HTTP client setup failed: {e}")))?;
    let source: Arc<dyn TokenSource> = match dsn.option("google_key_file") {
        Some(path) => {
            let scope = dsn.option("scope").unwrap_or(GMAIL_SCOPE).to_owned();
            let account =
                GoogleServiceAccount::from_key_file(http, Path::new(path), user.clone(), scope)
                    .map_err(|e| DsnError::invalid(scheme, e.to_string()))?;
            Arc::new(account)
        }
        None => match crate::transport::graph::certificate(dsn)? {
            Some(assertion) => Arc::new(ClientCredentials::with_certificate(
                http,
                dsn.require("token_url")?.to_owned(),
                dsn.require("client_id")?.to_owned(),
                assertion,
                dsn.option("scope").unwrap_or_default().to_owned(),
            )),
            None => Arc::new(ClientCredentials::new(
                http,
                dsn.require("token_url")?.to_owned(),
                dsn.require("client_id")?.to_owned(),
                dsn.require("client_secret")?.to_owned(),
                dsn.option("scope").unwrap_or_default().to_owned(),
            )),
        },
    };
    Ok((user, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dsn: &str) -> Result<Settings, DsnError> {
        from_dsn(&Dsn::parse(dsn).unwrap())
    }

    fn refusal(dsn: &str) -> String {
        match settings(dsn) {
            Ok(_) => panic!("accepted {dsn}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn default_ports() {
        assert_eq!(
            settings("smtp://relay.example").unwrap().server,
            "relay.example:587"
        );
        assert_eq!(
            settings("smtps://relay.example").unwrap().server,
            "relay.example:465"
        );
        assert_eq!(
            settings("smtp://relay.example:25").unwrap().server,
            "relay.example:25"
        );
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(refusal("smtp://h?tsl=none").contains("unknown option `tsl`"));
        assert!(refusal("smtps://h?tls=none").contains("smtps"));
        assert!(refusal("smtp://h?tls=maybe").contains("tls `maybe`"));
        assert!(refusal("smtp://user@h").contains("password"));
        assert!(refusal("smtp://h?timeout=soon").contains("timeout"));
        assert!(refusal("smtp://h?token_url=x").contains("needs auth=xoauth2"));
        assert!(
            refusal("smtp://u@h?auth=xoauth2&client_id=a&client_secret=b").contains("token_url")
        );
        assert!(
            refusal("smtp://h?auth=xoauth2&token_url=x&client_id=a&client_secret=b")
                .contains("user")
        );
        let with_password =
            refusal("smtp://u:pw@h?auth=xoauth2&token_url=x&client_id=a&client_secret=b");
        assert!(with_password.contains("no password"), "{with_password}");
        assert!(refusal("smtp://h?ca_file=/nonexistent/ca.pem").contains("ca_file"));
    }

    #[test]
    fn xoauth2_settings() {
        let s = settings("smtp://u%40x.example@h?auth=xoauth2&token_url=http%3A%2F%2F127.0.0.1%2Ft&client_id=a&client_secret=b").unwrap();
        let (user, source) = s.xoauth2.unwrap();
        assert_eq!(user, "u@x.example");
        let shown = format!("{source:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("\"b\""),
            "{shown}"
        );
    }
}
