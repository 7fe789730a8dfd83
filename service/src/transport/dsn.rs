//! Transport DSNs in the style of Symfony Mailer:
//! `scheme://[user[:password]@]host[:port][/path][?key=value&…]`, plus the
//! combinators `failover(A B …)` and `roundrobin(A B …)`.

use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::percent_decode_str;

/// A DSN could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    /// Not of the form `scheme://…`.
    #[error("not a transport DSN (expected scheme://…): {0}")]
    Malformed(String),
    /// A scheme no transport answers to.
    #[error("unknown transport scheme `{0}`")]
    UnknownScheme(String),
    /// A required part is missing or a value is wrong.
    #[error("{scheme}: {reason}")]
    Invalid {
        /// The DSN's scheme.
        scheme: String,
        /// What is wrong, never echoing a secret.
        reason: String,
    },
}

impl DsnError {
    /// An invalid DSN of `scheme` for `reason`.
    pub fn invalid(scheme: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            scheme: scheme.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One parsed DSN. Credentials are percent-decoded. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn {
    /// `smtp`, `smtps`, `sendgrid+api`, `file`, `failover`, `roundrobin`, …
    pub scheme: String,
    /// The user name, decoded.
    pub user: Option<String>,
    /// The password or API secret, decoded.
    pub password: Option<String>,
    /// The host (`default` for provider APIs), or for `file://` the directory.
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
    /// The path after the host, decoded, without the leading `/`.
    pub path: String,
    /// Query options, decoded.
    pub options: BTreeMap<String, String>,
    /// For `failover(…)` and `roundrobin(…)`: the inner DSNs.
    pub children: Vec<Dsn>,
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dsn")
            .field("scheme", &self.scheme)
            // A provider API's user part is its key (or an access key id).
            .field(
                "user",
                &match self.scheme.ends_with("+api") {
                    true => self.user.as_ref().map(|_| "<redacted>"),
                    false => self.user.as_deref(),
                },
            )
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("options", &redacted_options(&self.options))
            .field("children", &self.children)
            .finish()
    }
}

fn redacted_options(options: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    options
        .iter()
        .map(|(k, v)| {
            let secret = secret_option(&k.to_ascii_lowercase());
            (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
        })
        .collect()
}

impl Dsn {
    /// Parses one DSN.
    pub fn parse(text: &str) -> Result<Self, DsnError> {
        Self::parse_nested(text, 0)
    }

    /// Parses one DSN that sits `depth` combinators deep.
    fn parse_nested(text: &str, depth: usize) -> Result<Self, DsnError> {
        let text = text.trim();
        for combinator in ["failover", "roundrobin"] {
            if let Some(inner) = text
                .strip_prefix(combinator)
                .and_then(|rest| rest.strip_prefix('('))
                .and_then(|rest| rest.strip_suffix(')'))
            {
                if depth >= MAX_NESTING {
                    return Err(DsnError::invalid(
                        combinator,
                        format!("nested more than {MAX_NESTING} deep"),
                    ));
                }
                let children = members(combinator, inner)?
                    .into_iter()
                    .map(|member| Dsn::parse_nested(member, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if children.is_empty() {
                    return Err(DsnError::invalid(
                        combinator,
                        "needs at least one transport",
                    ));
                }
                return Ok(Dsn {
                    scheme: combinator.to_owned(),
                    user: None,
                    password: None,
                    host: String::new(),
                    port: None,
                    path: String::new(),
                    options: BTreeMap::new(),
                    children,
                });
            }
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| DsnError::Malformed(redact(text)))?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(DsnError::Malformed(redact(text)));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        // The last `@` separates credentials: a password may hold an encoded one only.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                (
                    Some(decode(scheme, u)?),
                    p.map(|p| decode(scheme, p)).transpose()?,
                )
            }
            None => (None, None),
        };
        let (hostport, path) = match hostpart.split_once('/') {
            Some((h, p)) => (h, decode(scheme, p)?),
            None => (hostpart, String::new()),
        };
        let (host, port) = split_port(scheme, hostport).map_err(|e| {
            // `smtp://user:pa?ss@host`: the `?` ended the host part inside the
            // password, and whatever `split_port` would quote is part of it.
            if userinfo.is_none() && query.contains('@') {
                DsnError::invalid(
                    scheme,
                    "the host part does not parse: percent-encode `?`, `/` and `#` in the user or password (`%3F`, `%2F`, `%23`)",
                )
            } else {
                e
            }
        })?;
        let mut options = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            options.insert(decode(scheme, k)?, decode(scheme, v)?);
        }
        Ok(Dsn {
            scheme: scheme.to_ascii_lowercase(),
            user: user.filter(|u| !u.is_empty()),
            password,
            host,
            port,
            path,
            options,
            children: Vec::new(),
        })
    }

    /// An option's value.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// An option that must be present.
    pub fn require(&self, key: &str) -> Result<&str, DsnError> {
        self.option(key)
            .ok_or_else(|| DsnError::invalid(&self.scheme, format!("missing option `{key}`")))
    }

    /// The user name, which must be present.
    pub fn require_user(&self, what: &str) -> Result<&str, DsnError> {
        self.user
            .as_deref()
            .ok_or_else(|| DsnError::invalid(&self.scheme, format!("missing {what} (user part)")))
    }

    /// The password part, which must be present.
    pub fn require_password(&self, what: &str) -> Result<&str, DsnError> {
        self.password.as_deref().ok_or_else(|| {
            DsnError::invalid(&self.scheme, format!("missing {what} (password part)"))
        })
    }
}

fn decode(scheme: &str, text: &str) -> Result<String, DsnError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| DsnError::invalid(scheme, "a percent-encoded part is not UTF-8"))
}

fn split_port(scheme: &str, hostport: &str) -> Result<(String, Option<u16>), DsnError> {
    // `[::1]:25` keeps its brackets off the host.
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| DsnError::invalid(scheme, "unclosed `[` in host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(scheme, p)?),
            None => None,
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((decode(scheme, host)?, Some(parse_port(scheme, port)?))),
        None => Ok((decode(scheme, hostport)?, None)),
    }
}

fn parse_port(scheme: &str, port: &str) -> Result<u16, DsnError> {
    port.parse()
        .map_err(|_| DsnError::invalid(scheme, format!("`{port}` is not a port number")))
}

/// How deep `failover(…)` and `roundrobin(…)` may nest: deeper is a typo,
/// and the bound keeps parsing a hostile value from exhausting the stack.
const MAX_NESTING: usize = 4;

/// The members of a combinator: split at whitespace outside parentheses, so
/// `failover(roundrobin(a b) c)` has two.
fn members<'a>(combinator: &str, inner: &'a str) -> Result<Vec<&'a str>, DsnError> {
    let unbalanced = || DsnError::invalid(combinator, "unbalanced parentheses");
    let mut members = Vec::new();
    let (mut open, mut start) = (0usize, None);
    for (i, c) in inner.char_indices() {
        match c {
            '(' => open += 1,
            ')' => open = open.checked_sub(1).ok_or_else(unbalanced)?,
            c if c.is_whitespace() && open == 0 => {
                if let Some(s) = start.take() {
                    members.push(&inner[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if open != 0 {
        return Err(unbalanced());
    }
    if let Some(s) = start {
        members.push(&inner[s..]);
    }
    Ok(members)
}

/// The DSN with everything between `://` and `@` hidden, for error messages.
pub fn redact(text: &str) -> String {
    // Credentials: whatever lies between the scheme and the last `@`
    // (`scheme:` counts as a scheme too: `sendgrid+api:KEY@default`).
    let (mut out, rest) = match text.rfind('@') {
        Some(at) => {
            let start = (text.find("://").map(|s| s + 3))
                .or_else(|| {
                    let colon = text.find(':')?;
                    let scheme = &text[..colon];
                    (scheme.chars())
                        .all(|c| c.is_ascii_alphanumeric() || c == '+')
                        .then_some(colon + 1)
                })
                .filter(|&s| s <= at)
                .unwrap_or(0);
            (format!("{}<redacted>", &text[..start]), &text[at..])
        }
        None => (String::new(), text),
    };
    // Options: the values of those that name a secret.
    match rest.split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            let pairs: Vec<String> = (query.split('&'))
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if secret_option(&k.to_ascii_lowercase()) => {
                        format!("{k}=<redacted>")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// Whether an option's value is a secret (a key, a token, a password, an assertion).
fn secret_option(key: &str) -> bool {
    ["secret", "key", "token", "password", "assertion"]
        .iter()
        .any(|s| key.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smtp_with_encoded_user() {
        let d = Dsn::parse("smtp://noreply%40acme.example:p%3Ass@smtp.office365.com:587?auth=xoauth2&scope=https%3A%2F%2Fx%2F.default").unwrap();
        assert_eq!(d.scheme, "smtp");
        assert_eq!(d.user.as_deref(), Some("noreply@acme.example"));
        assert_eq!(d.password.as_deref(), Some("p:ss"));
        assert_eq!(d.host, "smtp.office365.com");
        assert_eq!(d.port, Some(587));
        assert_eq!(d.option("scope"), Some("https://x/.default"));
        assert!(!format!("{d:?}").contains("p:ss"));
    }

    #[test]
    fn parses_failover() {
        let d = Dsn::parse("failover(smtp://a:25 file://outbox)").unwrap();
        assert_eq!(d.scheme, "failover");
        assert_eq!(d.children.len(), 2);
        assert_eq!(d.children[1].scheme, "file");
        assert_eq!(d.children[1].host, "outbox");
    }

    #[test]
    fn nested_combinators_keep_their_members() {
        let d = Dsn::parse("failover(roundrobin(smtp://a:25 smtp://b:25) file://outbox)").unwrap();
        assert_eq!(d.children.len(), 2);
        assert_eq!(d.children[0].scheme, "roundrobin");
        assert_eq!(d.children[0].children.len(), 2);
        assert_eq!(d.children[0].children[1].host, "b");
        assert_eq!(d.children[1].scheme, "file");
    }

    #[test]
    fn nesting_is_bounded_and_balanced() {
        let deep = format!(
            "{}file://x{}",
            "failover(".repeat(100_000),
            ")".repeat(100_000)
        );
        let err = Dsn::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("nested more than 4 deep"), "{err}");
        let four = format!("{}file://x{}", "failover(".repeat(4), ")".repeat(4));
        assert!(Dsn::parse(&four).is_ok());
        let err = Dsn::parse("failover(smtp://a:25) file://x)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unbalanced"), "{err}");
    }

    #[test]
    fn file_paths() {
        assert_eq!(
            Dsn::parse("file:///var/mail/out").unwrap().path,
            "var/mail/out"
        );
        assert!(Dsn::parse("nonsense").is_err());
        assert_eq!(redact("smtp://u:secret@h:25"), "smtp://<redacted>@h:25");
    }

    #[test]
    fn a_provider_api_key_in_the_user_part_is_not_shown() {
        let d = Dsn::parse("sendgrid+api://SG.k3y@default").unwrap();
        assert!(!format!("{d:?}").contains("SG.k3y"));
        let d = Dsn::parse("smtp://noreply%40acme.example@h").unwrap();
        assert!(format!("{d:?}").contains("noreply@acme.example"));
    }

    #[test]
    fn errors_never_show_credentials() {
        for (dsn, secrets) in [
            // No `//`: the key sits between the scheme and the `@`.
            ("sendgrid+api:SG.k3y@default", &["SG.k3y"][..]),
            (
                "smtp//us3r:pw0rd@h?client_secret=S3C&auth=xoauth2",
                &["us3r", "pw0rd", "S3C"],
            ),
            ("smtp:/u:pw0rd@h?webhook_key=K3Y", &["pw0rd", "K3Y"]),
            // An unencoded `?` in the password ends the host part early.
            ("smtp://u:p4?w0rd@h:587", &["p4", "w0rd"]),
            ("smtp://u:p4?w0rd@h", &["p4", "w0rd"]),
        ] {
            let err = Dsn::parse(dsn).unwrap_err().to_string();
            for secret in secrets {
                assert!(!err.contains(secret), "{dsn}: {err}");
            }
        }
        assert_eq!(
            redact("smtp//u:pw@h:25?auth=xoauth2&Client_Secret=s&scope=x"),
            "<redacted>@h:25?auth=xoauth2&Client_Secret=<redacted>&scope=x"
        );
    }
}
