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
pub mod postgres;
pub mod postmark;
pub mod server;
