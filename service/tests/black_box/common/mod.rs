//! Shared helpers of the black-box tests. Each test file uses a part of them.
#![allow(dead_code)]

use std::path::PathBuf;

/// The Python interpreter that has the test peers (aiosmtpd, moto) installed
/// by `scripts/test-deps.sh`; `MAILBRIDGE_TEST_PYTHON` overrides it.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("MAILBRIDGE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let venv = PathBuf::from(home).join(".cache/mailbridge/venv/bin/python");
    assert!(
        venv.exists(),
        "test peers are missing: run `bash scripts/test-deps.sh` first ({} not found)",
        venv.display()
    );
    venv
}

/// The directory of the test peers' scripts.
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}
pub mod console;
pub mod issuer;
pub mod postgres;
pub mod postmark;
pub mod server;

/// A subscriber of this test's thread, installed for as long as this lives,
/// and the process's turn to have one: tracing caches, per site and for the
/// whole process, which subscribers care about it, so tests that each
/// install their own lost a span or line now and then when run side by side.
pub struct Subscribed {
    _subscriber: tracing::subscriber::DefaultGuard,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// Installs `subscriber` for this thread once no other test has one.
pub fn subscribe(subscriber: impl tracing::Subscriber + Send + Sync + 'static) -> Subscribed {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed still hands the turn on.
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Subscribed {
        _subscriber: tracing::subscriber::set_default(subscriber),
        _turn: turn,
    }
}
