//! Who is looking: the signed-in viewer, their server-side session and its
//! CSRF token, and what they may see and do.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore as _;

use crate::secret::Secret;

/// The session cookie's name.
pub const COOKIE: &str = "mailbridge_console";

/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(8 * 3600);

/// A session ends this long after its sign-in however often it is used:
/// roles are read at sign-in, so a changed role reaches the console within this.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Sessions kept at most; beyond, the longest idle ones go first.
const MAX_SESSIONS: usize = 10_000;

/// What a viewer may see and do, from their roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// Shown in the header (a user name; never a token).
    pub name: String,
    /// Role `admin`: every tenant; may retry and delete.
    pub admin: bool,
    /// Roles `tenant:<name>`: these tenants, read-only.
    pub tenants: BTreeSet<String>,
}

impl Viewer {
    /// The viewer from a user name and the console client's roles: `admin`
    /// and `tenant:<name>`; other roles give nothing.
    pub fn from_roles<'a>(name: &str, roles: impl IntoIterator<Item = &'a str>) -> Viewer {
        let mut viewer = Viewer {
            name: name.to_owned(),
            admin: false,
            tenants: BTreeSet::new(),
        };
        for role in roles {
            if role == "admin" {
                viewer.admin = true;
            } else if let Some(tenant) = role.strip_prefix("tenant:")
                && !tenant.is_empty()
            {
                viewer.tenants.insert(tenant.to_owned());
            }
        }
        viewer
    }

    /// Whether the viewer may see `tenant`'s messages.
    pub fn can_see(&self, tenant: &str) -> bool {
        self.admin || self.tenants.contains(tenant)
    }

    /// The tenants a query is limited to; `None`: every tenant.
    pub fn scope(&self) -> Option<Vec<String>> {
        (!self.admin).then(|| self.tenants.iter().cloned().collect())
    }
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id: the cookie's value.
    pub id: String,
    /// Who.
    pub viewer: Viewer,
    /// The ID token of the sign-in, the hint of the sign-out at the issuer.
    pub id_token: Option<Secret>,
    /// Every form carries it; a POST without it is refused.
    pub csrf: String,
    opened: Instant,
    last_seen: Instant,
}

impl Session {
    /// Whether the session still holds at `now`: used within [`IDLE`] and
    /// opened less than [`LIFETIME`] ago.
    fn live_at(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < IDLE && now.duration_since(self.opened) < LIFETIME
    }
}

/// The sessions of this process (in memory: one replica; a restart signs everyone out).
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `viewer`; answers its id (the cookie's value).
    pub fn open(&self, viewer: Viewer) -> String {
        self.open_signed_in(viewer, None)
    }

    /// Opens a session for `viewer` signed in with `id_token`; answers its id.
    pub fn open_signed_in(&self, viewer: Viewer, id_token: Option<Secret>) -> String {
        let id = random_token();
        let now = Instant::now();
        let session = Session {
            id: id.clone(),
            viewer,
            id_token,
            csrf: random_token(),
            opened: now,
            last_seen: now,
        };
        let mut by_id = self.lock();
        if by_id.len() >= MAX_SESSIONS {
            by_id.retain(|_, s| s.live_at(now));
            if by_id.len() >= MAX_SESSIONS
                && let Some(oldest) = (by_id.iter())
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            {
                by_id.remove(&oldest);
            }
        }
        by_id.insert(id.clone(), session);
        id
    }

    /// The live session `id` names, marked as seen now.
    pub fn find(&self, id: &str) -> Option<Session> {
        self.find_at(id, Instant::now())
    }

    /// The session `id` names if it is live at `now`, marked as seen then;
    /// one past its idle time or its lifetime is forgotten.
    fn find_at(&self, id: &str, now: Instant) -> Option<Session> {
        let mut by_id = self.lock();
        let session = by_id.get_mut(id)?;
        if !session.live_at(now) {
            by_id.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends session `id` (sign-out).
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 256 random bits, URL-safe.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    cookie_named(header, COOKIE)
}

/// The value of cookie `name` in a `Cookie` header, if any.
pub fn cookie_named<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_give_tenants_and_admin_and_nothing_else() {
        let v = Viewer::from_roles("ada", ["tenant:acme", "offline_access", "tenant:"]);
        assert!(!v.admin);
        assert!(v.can_see("acme"));
        assert!(!v.can_see("globex"));
        assert_eq!(v.scope(), Some(vec!["acme".to_owned()]));
        let admin = Viewer::from_roles("root", ["admin"]);
        assert!(admin.can_see("globex"));
        assert_eq!(admin.scope(), None);
        let nobody = Viewer::from_roles("eve", ["user"]);
        assert_eq!(nobody.scope(), Some(vec![]));
    }

    #[test]
    fn a_session_is_found_by_its_id_only() {
        let sessions = Sessions::default();
        let id = sessions.open(Viewer::from_roles("ada", ["admin"]));
        assert!(sessions.find(&id).is_some());
        assert!(sessions.find("forged").is_none());
        sessions.close(&id);
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn a_session_in_use_still_ends_twelve_hours_after_its_sign_in() {
        let sessions = Sessions::default();
        let id = sessions.open(Viewer::from_roles("ada", ["admin"]));
        let opened = sessions.lock()[&id].opened;
        let hours = |h: u64| opened + Duration::from_secs(h * 3600);
        for h in [4, 8, 11] {
            assert!(sessions.find_at(&id, hours(h)).is_some(), "used at {h} h");
        }
        let last_minute = hours(12) - Duration::from_secs(60);
        assert!(sessions.find_at(&id, last_minute).is_some());
        assert!(
            sessions.find_at(&id, hours(12)).is_none(),
            "used a minute ago, but 12 h old"
        );
        assert!(
            sessions.find_at(&id, last_minute).is_none(),
            "and forgotten"
        );
    }

    #[test]
    fn a_session_unused_for_eight_hours_ends() {
        let sessions = Sessions::default();
        let id = sessions.open(Viewer::from_roles("ada", ["admin"]));
        let opened = sessions.lock()[&id].opened;
        let later = opened + Duration::from_secs(8 * 3600);
        assert!(sessions.find_at(&id, later).is_none());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
        assert_eq!(
            cookie_value("a=1; mailbridge_console=xyz; b=2"),
            Some("xyz")
        );
        assert_eq!(cookie_value("a=1"), None);
    }
}
