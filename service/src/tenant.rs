//! Tenants (Keycloak realms by default): which transport their mail goes
//! through and which senders they may use.

use std::collections::BTreeMap;

use crate::config::{Settings, TenantSettings};
use crate::email::Mailbox;
use crate::limits::FlowLimits;
use crate::suppression::SuppressOn;
use crate::transport::ratelimit::Rate;

/// The transport every tenant uses unless its settings name another.
pub const DEFAULT_TRANSPORT: &str = "default";

/// One tenant's resolved route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The name of its transport.
    pub transport: String,
    /// Its default sender.
    pub from: Mailbox,
    /// When set, the only domain its requests may send from.
    pub sender_domain: Option<String>,
    /// Which delivery events put an address on its suppression list.
    pub suppress: SuppressOn,
    /// Its limits per address and per kind of email.
    pub limits: FlowLimits,
}

/// Every configured tenant, and the defaults for the others.
#[derive(Debug, Clone)]
pub struct Tenants {
    configured: BTreeMap<String, Route>,
    default_from: Mailbox,
}

impl Tenants {
    /// The tenants the settings name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.configured.keys().cloned().collect()
    }

    /// Resolves the tenants of validated settings.
    pub fn from_settings(settings: &Settings) -> Self {
        let configured = settings
            .tenants
            .iter()
            .map(|(name, t)| (name.clone(), resolve(t, &settings.from)))
            .collect();
        Self {
            configured,
            default_from: settings.from.clone(),
        }
    }

    /// The route of `tenant`.
    pub fn route(&self, tenant: &str) -> Route {
        self.configured
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| Route {
                transport: DEFAULT_TRANSPORT.to_owned(),
                from: self.default_from.clone(),
                sender_domain: None,
                suppress: SuppressOn::default(),
                limits: FlowLimits::default(),
            })
    }
}

fn resolve(t: &TenantSettings, default_from: &Mailbox) -> Route {
    let own_from = t.from.as_deref().and_then(|f| Mailbox::parse(f).ok());
    Route {
        transport: t
            .transport
            .clone()
            .unwrap_or_else(|| DEFAULT_TRANSPORT.to_owned()),
        sender_domain: own_from
            .as_ref()
            .map(|m| domain(&m.email).to_ascii_lowercase()),
        from: own_from.unwrap_or_else(|| default_from.clone()),
        // Validated at start; an unreadable value cannot reach here.
        suppress: t
            .suppress
            .as_deref()
            .and_then(|values| SuppressOn::parse(values).ok())
            .unwrap_or_default(),
        limits: flow_limits(t),
    }
}

/// The tenant's flow limits; rates that do not parse were refused at start.
fn flow_limits(t: &TenantSettings) -> FlowLimits {
    let rate = |text: &String| Rate::parse(text).ok();
    FlowLimits {
        recipient_rate: t.recipient_rate.as_ref().and_then(rate),
        template_rates: t
            .template_rates
            .iter()
            .flatten()
            .filter_map(|(kind, text)| Some((kind.clone(), rate(text)?)))
            .collect(),
    }
}

fn domain(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or(email)
}

impl Route {
    /// Checks a request's envelope sender (where bounces go, what SPF
    /// checks): in the tenant's sender domain or a subdomain of it (a
    /// bounce domain such as `bounces.acme.example`).
    pub fn envelope_sender(&self, address: &str) -> Result<(), String> {
        let Some(allowed) = &self.sender_domain else {
            return Ok(());
        };
        let domain = domain(address).to_ascii_lowercase();
        let allowed = allowed.to_ascii_lowercase();
        if domain == allowed || domain.ends_with(&format!(".{allowed}")) {
            return Ok(());
        }
        Err(format!(
            "envelope_from domain `{domain}` is not `{allowed}` or a subdomain of it"
        ))
    }

    /// The sender of a request: its own `from` if the tenant may use it, else the tenant's.
    pub fn sender(&self, requested: Option<&Mailbox>) -> Result<Mailbox, String> {
        let Some(from) = requested else {
            return Ok(self.from.clone());
        };
        match &self.sender_domain {
            Some(allowed) if !domain(&from.email).eq_ignore_ascii_case(allowed) => Err(format!(
                "sender domain `{}` is not allowed for this tenant (allowed: `{allowed}`)",
                domain(&from.email)
            )),
            _ => Ok(from.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_cannot_use_another_domain() {
        let route = resolve(
            &TenantSettings {
                transport: Some("m365".into()),
                from: Some("ACME <no-reply@acme.example>".into()),
                ..TenantSettings::default()
            },
            &Mailbox::new("mailbridge@localhost"),
        );
        assert_eq!(route.transport, "m365");
        assert_eq!(route.sender(None).unwrap().email, "no-reply@acme.example");
        assert!(route.sender(Some(&Mailbox::new("x@ACME.example"))).is_ok());
        assert!(
            route
                .sender(Some(&Mailbox::new("ceo@evil.example")))
                .is_err()
        );
    }
}
