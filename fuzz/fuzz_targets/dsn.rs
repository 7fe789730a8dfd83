//! Transport DSNs: `Dsn::parse` on any text, and `from_dsn` on what parses,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbridge::transport::{Dsn, from_dsn};

fuzz_target!(|text: &str| {
    let Ok(dsn) = Dsn::parse(text) else {
        return;
    };
    // Debug output must never show the password (long enough not to match
    // a field name by chance).
    if let Some(password) = dsn.password.as_deref().filter(|p| p.len() >= 12) {
        let shown = format!("{dsn:?}");
        assert!(!shown.contains(password) || dsn_mentions_elsewhere(&dsn, password));
    }
    let _ = from_dsn(&dsn);
});

/// A password that also appears as another part (user, host, …) is shown there, not leaked.
fn dsn_mentions_elsewhere(dsn: &Dsn, password: &str) -> bool {
    let mut parts = vec![dsn.scheme.as_str(), dsn.host.as_str(), dsn.path.as_str()];
    parts.extend(dsn.user.as_deref());
    parts.extend(
        dsn.options
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
    );
    parts.extend(dsn.children.iter().map(|c| c.host.as_str()));
    parts.iter().any(|p| p.contains(password))
        || dsn
            .children
            .iter()
            .any(|c| format!("{c:?}").contains(password))
}
