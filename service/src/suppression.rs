//! The suppression list: addresses a tenant no longer sends to, because they
//! bounced hard or complained (tenant setting `suppress`), or because an
//! administrator said so. Pure types; the store keeps the list.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
    /// The address, its domain in lower case (see [`normalise`]).
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

/// An address as the list keys it: the domain part is case-insensitive
/// (lower-cased), the local part is kept as written (RFC 5321 lets a server
/// tell `Ada` from `ada`, though few do).
pub fn normalise(email: &str) -> String {
    let email = email.trim();
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => email.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_domain_part_is_case_insensitive() {
        assert_eq!(normalise(" Ada@Example.COM "), "Ada@example.com");
        assert_ne!(normalise("Ada@example.com"), normalise("ada@example.com"));
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
}
