//! Limits that follow Keycloak's flows: a tenant's `recipient_rate` (per
//! address, across kinds of email) and `template_rates` (per kind and
//! address, e.g. `email-verification = "1/minute"`). Unlike the sending rates
//! of [`crate::transport::ratelimit`], these refuse *accepting* (429 with
//! Retry-After), so that Keycloak shows its own "failed to send" and the
//! address is not flooded by a "resend" button pressed in a loop.
//!
//! Each quota is a GCRA cell (`N/period` lets N through at once, then one
//! every `period / N`) kept in the queue store, so replicas sharing a
//! PostgreSQL store share the limits. This module is pure: it turns a
//! request's tenant, kind and recipients into the cells to check.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_lc_rs::digest;

use crate::suppression::normalise;
use crate::transport::ratelimit::{Quota, Rate};

/// Which limit a cell belongs to (the `limit` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The tenant's `recipient_rate`.
    Recipient,
    /// One of the tenant's `template_rates`.
    Template,
}

impl Limit {
    /// The name used in metrics and problem details.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Recipient => "recipient",
            Limit::Template => "template",
        }
    }
}

/// One GCRA cell to check and spend: its stored key and its quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCell {
    /// A digest of tenant, limit, kind, quota and address (no address is
    /// stored in clear), the address in one case spelling
    /// ([`normalise`]).
    pub key: String,
    /// Spacing between two messages once the burst is spent.
    pub interval: Duration,
    /// How far ahead of now the cell's time may run: `period − interval`.
    pub burst: Duration,
    /// Which limit.
    pub limit: Limit,
}

impl LimitCell {
    fn new(limit: Limit, quota: &Quota, parts: &[&str]) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        for part in parts {
            context.update(part.as_bytes());
            context.update(&[0]);
        }
        context.update(quota.to_string().as_bytes());
        let key = context
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            key,
            interval: quota.interval(),
            burst: quota.period.saturating_sub(quota.interval()),
            limit,
        }
    }
}

/// A tenant's flow limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowLimits {
    /// Per address, across kinds.
    pub recipient_rate: Option<Rate>,
    /// Per kind (template name) and address.
    pub template_rates: BTreeMap<String, Rate>,
}

impl FlowLimits {
    /// The cells a message of `tenant`, of kind `template`, to `recipients`
    /// must pass. An address is one budget whatever its case spelling
    /// ([`normalise`], as the suppression list keys it): `Ada@`, `ADA@` and
    /// `ada@` reach one mailbox, and varying the case must not multiply a
    /// recipient's limit.
    pub fn cells<'a>(
        &self,
        tenant: &str,
        template: Option<&str>,
        recipients: impl IntoIterator<Item = &'a str>,
    ) -> Vec<LimitCell> {
        let template_rate = template.and_then(|t| self.template_rates.get(t).map(|r| (t, r)));
        let mut cells = Vec::new();
        for recipient in recipients {
            let email = normalise(recipient);
            if let Some((kind, rate)) = template_rate {
                for quota in rate.quotas() {
                    let parts = [tenant, "template", kind, &email];
                    cells.push(LimitCell::new(Limit::Template, quota, &parts));
                }
            }
            for quota in self.recipient_rate.iter().flat_map(Rate::quotas) {
                let parts = [tenant, "recipient", &email];
                cells.push(LimitCell::new(Limit::Recipient, quota, &parts));
            }
        }
        // One order everywhere, so that two replicas lock shared cells alike.
        cells.sort_by(|a, b| a.key.cmp(&b.key));
        cells.dedup_by(|a, b| a.key == b.key);
        cells
    }
}

/// Checks and spends one message of `cells` at `now` (Unix milliseconds)
/// against the cells' times in `tats` (a cell not there has none): if every
/// cell allows it, moves their times on and answers `None`; else changes
/// nothing and answers the longest wait and the index of the cell that
/// needs it. A store's writer runs this for the checks of one commit group
/// in their order, over times it read once for the whole group.
pub(crate) fn spend(
    cells: &[LimitCell],
    now: i64,
    tats: &mut HashMap<String, i64>,
) -> Option<(Duration, usize)> {
    let mut wait = (0i64, 0usize);
    let mut next = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        // A cell's time is never more than one burst and one interval
        // ahead of a spend; further ahead, the clock was set back (or
        // another replica's runs ahead): counted from now, so that a step
        // back does not make an address wait for the length of the step.
        let furthest = now
            .saturating_add(millis(cell.burst))
            .saturating_add(millis(cell.interval));
        let tat = tats
            .get(&cell.key)
            .copied()
            .unwrap_or(now)
            .clamp(now, furthest);
        wait = wait.max((tat - now - millis(cell.burst), index));
        next.push(tat.saturating_add(millis(cell.interval)));
    }
    if wait.0 > 0 {
        return Some((Duration::from_millis(wait.0.unsigned_abs()), wait.1));
    }
    for (cell, tat) in cells.iter().zip(next) {
        tats.insert(cell.key.clone(), tat);
    }
    None
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_clock_set_back_makes_no_address_wait_longer_than_its_rate_allows() {
        let cells = limits().cells("acme", Some("email-verification"), ["ada@example.com"]);
        let now = 1_800_000_000_000;
        let mut tats = HashMap::new();
        assert_eq!(spend(&cells, now, &mut tats), None);
        // The clock steps back an hour: a cell so far ahead counts as spent
        // up to its burst, so the next verification email waits one
        // interval at most (the recipient's 12 minutes), not the hour.
        let back = now - 3_600_000;
        let (wait, _) = spend(&cells, back, &mut tats).expect("spent");
        assert!(wait <= Duration::from_secs(720), "{wait:?}");
        let template: Vec<_> = (cells.iter())
            .filter(|c| c.limit == Limit::Template)
            .cloned()
            .collect();
        let (wait, _) = spend(&template, back, &mut tats).expect("1/minute");
        assert!(wait <= Duration::from_secs(60), "{wait:?}");
        // The recipient's 5/hour still counts its spends.
        let mut tats = HashMap::new();
        let recipient: Vec<_> = cells
            .iter()
            .filter(|c| c.limit == Limit::Recipient)
            .cloned()
            .collect();
        for _ in 0..5 {
            assert_eq!(spend(&recipient, now, &mut tats), None);
        }
        assert!(spend(&recipient, now, &mut tats).is_some(), "the sixth");
        let (wait, _) = spend(&recipient, back, &mut tats).expect("still spent");
        assert!(wait <= Duration::from_secs(720), "{wait:?}");
    }

    use super::*;

    fn limits() -> FlowLimits {
        FlowLimits {
            recipient_rate: Some(Rate::parse("5/hour").unwrap()),
            template_rates: BTreeMap::from([(
                "email-verification".to_owned(),
                Rate::parse("1/minute").unwrap(),
            )]),
        }
    }

    #[test]
    fn a_kind_with_a_rate_adds_its_cell_per_address() {
        let cells = limits().cells("acme", Some("email-verification"), ["ada@Example.com"]);
        assert_eq!(cells.len(), 2);
        let template = cells.iter().find(|c| c.limit == Limit::Template).unwrap();
        assert_eq!(
            (template.interval, template.burst),
            (Duration::from_secs(60), Duration::ZERO)
        );
        let recipient = cells.iter().find(|c| c.limit == Limit::Recipient).unwrap();
        assert_eq!(recipient.interval, Duration::from_secs(720));
        assert_eq!(recipient.burst, Duration::from_secs(2880));
        assert_eq!(
            limits()
                .cells("acme", Some("password-reset"), ["ada@example.com"])
                .len(),
            1
        );
    }

    #[test]
    fn keys_tell_tenants_and_addresses_apart_but_not_domain_case() {
        let key = |tenant, email| limits().cells(tenant, None, [email])[0].key.clone();
        assert_eq!(
            key("acme", "ada@example.com"),
            key("acme", "ada@EXAMPLE.com")
        );
        assert_ne!(
            key("acme", "ada@example.com"),
            key("other", "ada@example.com")
        );
        assert_ne!(
            key("acme", "ada@example.com"),
            key("acme", "grace@example.com")
        );
        assert!(!key("acme", "ada@example.com").contains("ada"));
    }

    #[test]
    fn every_case_spelling_of_an_address_is_one_cell() {
        let keys = |email: &str| -> Vec<String> {
            let cells = limits().cells("acme", Some("email-verification"), [email]);
            cells.into_iter().map(|c| c.key).collect()
        };
        let ada = keys("ada@example.com");
        // An address written in lower case keeps the cells it had before
        // keys were lowered: its spends so far still count.
        assert_eq!(
            ada,
            [
                "36ff088f8a28c280207c958e7057ae8b3aff65b5e15c1cd1eff9b9b1f032dd62",
                "758034898229db92b4e9c6d068e4dfb0d96ae5c96dc4c78b420672d2ed36a038"
            ]
        );
        for spelling in ["Ada@example.com", "ADA@EXAMPLE.COM", "<aDa@Example.com>"] {
            assert_eq!(keys(spelling), ada, "{spelling}");
        }
        // Beyond ASCII too, and whatever form the domain is written in.
        assert_eq!(
            keys("ZOË@xn--bcher-kva.example"),
            keys("zoë@bücher.example")
        );
        // One message to several spellings of one address spends once.
        let cells = limits().cells(
            "acme",
            Some("email-verification"),
            ["Ada@example.com", "ada@example.com", "ADA@example.com"],
        );
        assert_eq!(cells.len(), 2);
        assert_ne!(keys("ada@example.com"), keys("grace@example.com"));
    }

    #[test]
    fn checks_spend_in_order_and_a_refusal_spends_nothing() {
        // 5/hour per address and 1/minute for the kind: three checks of the
        // same address in one group, one minute apart for the last.
        let cells = limits().cells("acme", Some("email-verification"), ["ada@example.com"]);
        assert_eq!(cells.len(), 2);
        let kind = cells
            .iter()
            .position(|c| c.limit == Limit::Template)
            .unwrap();
        let now = 1_000_000_000;
        let mut tats = HashMap::new();
        assert_eq!(spend(&cells, now, &mut tats), None);
        let after_first = tats.clone();
        let (wait, index) = spend(&cells, now, &mut tats).expect("the kind allows one a minute");
        assert_eq!(index, kind);
        assert_eq!(wait, Duration::from_secs(60));
        assert_eq!(tats, after_first, "a refusal moves no cell on");
        assert_eq!(spend(&cells, now + 60_000, &mut tats), None);
        let recipient = &cells[1 - kind].key;
        assert_eq!(
            tats[recipient],
            now + 2 * 12 * 60_000,
            "the address spent twice"
        );
    }
}
