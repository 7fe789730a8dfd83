//! The suppression list: addresses a tenant no longer sends to, because they
//! bounced hard or complained (tenant setting `suppress`), or because an
//! administrator said so. Pure types and rules; the store keeps the list.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::email::Mailbox;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// A hard bounce was reported.
    Bounce,
    /// The recipient complained (marked it as spam).
    Complaint,
    /// Added through the API or the command line.
    Manual,
}

impl Reason {
    /// The name used in the API, the store and the tenant setting `suppress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Bounce => "bounce",
            Reason::Complaint => "complaint",
            Reason::Manual => "manual",
        }
    }

    /// Parses a name given by [`Reason::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "bounce" => Some(Reason::Bounce),
            "complaint" => Some(Reason::Complaint),
            "manual" => Some(Reason::Manual),
            _ => None,
        }
    }
}

/// Which delivery events add an address to a tenant's list (tenant setting `suppress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuppressOn {
    /// Hard bounces.
    pub bounce: bool,
    /// Complaints.
    pub complaint: bool,
}

impl Default for SuppressOn {
    /// Both, as the setting's default `["bounce", "complaint"]`.
    fn default() -> Self {
        Self {
            bounce: true,
            complaint: true,
        }
    }
}

impl SuppressOn {
    /// Reads the setting's values (`bounce`, `complaint`); answers the first unknown one.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let mut on = Self {
            bounce: false,
            complaint: false,
        };
        for value in values {
            match value.as_str() {
                "bounce" => on.bounce = true,
                "complaint" => on.complaint = true,
                other => return Err(other.to_owned()),
            }
        }
        Ok(on)
    }

    /// Whether `reason` adds an address.
    pub fn covers(self, reason: Reason) -> bool {
        match reason {
            Reason::Bounce => self.bounce,
            Reason::Complaint => self.complaint,
            Reason::Manual => true,
        }
    }
}

/// One suppressed address of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suppression {
    /// The tenant.
    pub tenant: String,
    /// The address in lower case, its domain in Unicode (see [`normalise`]).
    pub email: String,
    /// Why.
    pub reason: Reason,
    /// The provider's reason, or an administrator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The message whose event added it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<uuid::Uuid>,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The bare address a provider or an administrator names: no display
/// name, angle brackets or space (`Ada <ada@…>` as a provider may report
/// it); the domain part in lower case and in Unicode (an IDN a provider
/// reports in punycode is the same domain); the local part as written.
/// What Keycloak is told about.
pub fn mailbox_of(email: &str) -> String {
    let email = crate::events::bare_address(email);
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = domain.to_lowercase();
            let unicode = match idna::domain_to_unicode(&domain) {
                (unicode, Ok(())) if domain.contains("xn--") => unicode,
                _ => domain,
            };
            format!("{local}@{unicode}")
        }
        None => email.to_owned(),
    }
}

/// An address as the list keys it: [`mailbox_of`], its local part in lower
/// case too. Providers match their events to recipients in any case and
/// report an address in their own (`Ada@` bounced may come back as `ada@`),
/// so an entry stands for every case spelling of its address. The flow
/// limits key their cells by it too (one budget per address, whatever its
/// spelling).
pub fn normalise(email: &str) -> String {
    mailbox_of(email).to_lowercase()
}

/// The forms under which `email` may be on a list: [`normalise`]d, with
/// its local part lowered in ASCII only (as a database's `lower()` turned
/// entries made before the list was in lower case: migration
/// `suppressions_any_case`), and as written (as a replica of an earlier
/// release still writes them); each also with its domain in ASCII, as
/// entries made before domains were kept in Unicode may have it. Lookups
/// try each; removal takes each off.
pub(crate) fn keys(email: &str) -> impl Iterator<Item = String> {
    let written = mailbox_of(email);
    let mut forms: Vec<String> = Vec::new();
    for form in [
        written.to_lowercase(),
        written.to_ascii_lowercase(),
        written,
    ] {
        let ascii = crate::email::ascii_address(&form).into_owned();
        for form in [form, ascii] {
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms.into_iter()
}

/// The suppressed recipients of a message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// The message's suppressed addresses, as written, each once.
    pub addresses: Vec<String>,
    /// No `to` recipient is left: nothing is sent.
    pub everyone: bool,
}

/// Asks `store` once which of `lists`' addresses are on `tenant`'s list and
/// applies [`leave_out`]: what accept and each attempt both do.
pub async fn screen(
    store: &dyn crate::queue::JobStore,
    tenant: &str,
    lists: [&mut Vec<Mailbox>; 3],
) -> Result<LeftOut, crate::queue::StoreError> {
    let all: Vec<String> = lists
        .iter()
        .flat_map(|list| list.iter())
        .flat_map(|m| keys(&m.email))
        .collect();
    let listed = store.suppressed_among(tenant, &all).await?;
    Ok(leave_out(lists, &listed))
}

/// Applies `listed` (the normalised addresses on the tenant's list) to a
/// message's `to`, `cc` and `bcc`: unless that is every `to` recipient, the
/// listed ones are taken out. The same rule at accept and before each attempt.
pub fn leave_out(lists: [&mut Vec<Mailbox>; 3], listed: &[String]) -> LeftOut {
    if listed.is_empty() {
        return LeftOut::default();
    }
    let is_listed = |m: &Mailbox| keys(&m.email).any(|key| listed.contains(&key));
    let mut addresses: Vec<String> = Vec::new();
    for mailbox in lists.iter().flat_map(|list| list.iter()) {
        if is_listed(mailbox) && !addresses.contains(&mailbox.email) {
            addresses.push(mailbox.email.clone());
        }
    }
    let [to, cc, bcc] = lists;
    let everyone = to.iter().all(is_listed);
    if !everyone {
        for list in [to, cc, bcc] {
            list.retain(|m| !is_listed(m));
        }
    }
    LeftOut {
        addresses,
        everyone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_keys_an_address_in_lower_case() {
        assert_eq!(normalise(" Ada@Example.COM "), "ada@example.com");
        assert_eq!(normalise("Ada@example.com"), normalise("ada@example.com"));
        assert_eq!(normalise("JÖRG@Bücher.example"), "jörg@bücher.example");
        // Keycloak is told of, and the rate limits count, the mailbox as written.
        assert_eq!(mailbox_of(" Ada@Example.COM "), "Ada@example.com");
    }

    #[test]
    fn an_address_is_looked_up_in_every_form_it_may_be_listed_under() {
        let forms: Vec<String> = keys("Ada@Bücher.example").collect();
        assert_eq!(
            forms,
            [
                "ada@bücher.example",
                "ada@xn--bcher-kva.example",
                "Ada@bücher.example",
                "Ada@xn--bcher-kva.example",
            ]
        );
        // A local part lowered in ASCII only by the database.
        assert!(keys("JÖRG@example.com").any(|k| k == "jÖrg@example.com"));
        assert_eq!(keys("ada@example.com").count(), 1);
    }

    #[test]
    fn a_reported_address_is_the_mailbox_the_message_went_to() {
        // Display names, brackets and punycode, as providers report them.
        for reported in [
            "Ada@xn--bcher-kva.example",
            "Ada@XN--BCHER-KVA.EXAMPLE",
            "\"Ada\" <Ada@bücher.example>",
            "<Ada@Bücher.example>",
        ] {
            assert_eq!(normalise(reported), "ada@bücher.example", "{reported}");
            assert_eq!(mailbox_of(reported), "Ada@bücher.example", "{reported}");
        }
        // An entry kept with its domain in ASCII still leaves the address out.
        let mut to = vec![
            Mailbox::new("Ada@bücher.example"),
            Mailbox::new("grace@example.com"),
        ];
        let listed = vec!["Ada@xn--bcher-kva.example".to_owned()];
        let left = leave_out([&mut to, &mut Vec::new(), &mut Vec::new()], &listed);
        assert_eq!(left.addresses, ["Ada@bücher.example"]);
    }

    #[test]
    fn the_setting_takes_bounce_and_complaint_only() {
        let on = SuppressOn::parse(&["complaint".into()]).unwrap();
        assert!(!on.covers(Reason::Bounce) && on.covers(Reason::Complaint));
        assert_eq!(SuppressOn::parse(&["spam".into()]), Err("spam".into()));
        assert_eq!(
            SuppressOn::default(),
            SuppressOn::parse(&["bounce".into(), "complaint".into()]).unwrap()
        );
    }

    #[test]
    fn listed_recipients_are_left_out_unless_no_to_is_left() {
        let mut to = vec![
            Mailbox::new("Ada@Example.com"),
            Mailbox::new("grace@example.com"),
        ];
        let mut cc = vec![Mailbox::new("ada@example.COM")];
        let mut bcc = vec![Mailbox::new("Ada@Example.com")];
        let listed = vec![normalise("Ada@example.com")];
        let left = leave_out([&mut to, &mut cc, &mut bcc], &listed);
        assert_eq!(left.addresses, ["Ada@Example.com", "ada@example.COM"]);
        assert!(!left.everyone);
        assert_eq!(to, [Mailbox::new("grace@example.com")]);
        assert_eq!((cc.len(), bcc.len()), (0, 0), "every spelling of Ada's");

        let mut only = vec![Mailbox::new("ADA@example.com")];
        let left = leave_out([&mut only, &mut cc, &mut Vec::new()], &listed);
        assert!(left.everyone);
        assert_eq!(only.len(), 1, "kept as it was: nothing is sent");
    }
}
