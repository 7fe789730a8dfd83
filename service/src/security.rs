//! What `mailbridge check` reports about secrets: tenants that still accept
//! the shared secret, transports with static credentials, messages stored
//! in plain text. Pure: settings in, findings out.

use crate::config::Settings;
use crate::transport::Dsn;

/// One thing an operator may want to change, in words fit for a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding(pub String);

/// Every finding about `settings`, in a stable order.
pub fn findings(settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    shared_secret(settings, &mut out);
    for (name, dsn) in &settings.transports {
        if let Ok(dsn) = Dsn::parse(dsn.expose()) {
            static_credentials(name, &dsn, &mut out);
        }
    }
    if settings.encryption_keys.is_none() {
        out.push(Finding(
            "MAILBRIDGE_ENCRYPTION_KEYS is not set: stored messages (bodies, reset and verification links) are plain text in the database"
                .into(),
        ));
    }
    out
}

fn shared_secret(settings: &Settings, out: &mut Vec<Finding>) {
    let issuers = settings.issuers().count();
    if settings.jwt_secret.is_none() {
        if issuers == 0 {
            out.push(Finding(
                "no MAILBRIDGE_JWT_SECRET and no tenant `issuer`: `serve` will refuse to start without --insecure-no-auth"
                    .into(),
            ));
        }
        return;
    }
    let realm_key_only: Vec<&str> = settings.realm_key_only().collect();
    let mut accepting: Vec<&str> = settings
        .tenants
        .keys()
        .map(String::as_str)
        .filter(|t| !realm_key_only.contains(t))
        .collect();
    accepting.push("every tenant not in the file");
    out.push(Finding(format!(
        "tenants that accept the shared secret (MAILBRIDGE_JWT_SECRET): {}; set `issuer` and `accept_shared_secret = false` per tenant",
        accepting.join(", ")
    )));
}

/// A transport whose DSN carries a long-lived secret.
fn static_credentials(name: &str, dsn: &Dsn, out: &mut Vec<Finding>) {
    for child in &dsn.children {
        static_credentials(name, child, out);
    }
    let what = match dsn.scheme.as_str() {
        "ses+api" if dsn.user.is_some() => "static AWS access keys",
        "microsoftgraph+api" if dsn.password.is_some() => "a client secret",
        "smtp" | "smtps" if dsn.option("client_secret").is_some() => "an OAuth2 client secret",
        "smtp" | "smtps" if dsn.password.is_some() => "an SMTP password",
        "sendgrid+api" | "mailgun+api" | "postmark+api" | "mailjet+api" | "resend+api" => {
            "a static API key"
        }
        _ => return,
    };
    out.push(Finding(format!(
        "transport `{name}` ({}) uses {what}",
        dsn.scheme
    )));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn reports_shared_secrets_static_keys_and_plain_storage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[transports]\nses = \"ses+api://AKIAEXAMPLE:s3cr3t-value@default?region=eu-west-1\"\n\
             both = \"failover(sendgrid+api://sg-key-value@default file://out)\"\n\
             [tenants.acme]\nissuer = \"https://sso.example/realms/acme\"\naccept_shared_secret = false\n\
             [tenants.globex]\n",
        )
        .unwrap();
        let env: BTreeMap<String, String> = [
            ("MAILBRIDGE_CONFIG", path.to_str().unwrap()),
            ("MAILBRIDGE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            (
                "MAILBRIDGE_TRANSPORT",
                "smtp://u:smtp-pass-value@relay.example",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = crate::config::load(&env).unwrap();
        let text: Vec<String> = findings(&settings).into_iter().map(|f| f.0).collect();
        let all = text.join("\n");
        assert!(all.contains("accept the shared secret (MAILBRIDGE_JWT_SECRET): globex, every tenant not in the file"), "{all}");
        assert!(
            all.contains("transport `ses` (ses+api) uses static AWS access keys"),
            "{all}"
        );
        assert!(
            all.contains("transport `both` (sendgrid+api) uses a static API key"),
            "{all}"
        );
        assert!(
            all.contains("transport `default` (smtp) uses an SMTP password"),
            "{all}"
        );
        assert!(
            all.contains("MAILBRIDGE_ENCRYPTION_KEYS is not set"),
            "{all}"
        );
        for secret in ["AKIAEXAMPLE", "s3cr3t", "sg-key", "smtp-pass"] {
            assert!(!all.contains(secret), "no secret in findings: {all}");
        }
    }
}
