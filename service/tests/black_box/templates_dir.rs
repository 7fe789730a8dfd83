//! The templates directory at start: links followed, and a directory that
//! holds no email template (a wrong mount, an empty volume) refused with a
//! message instead of a service whose every render answers unknown-template.

use std::collections::BTreeMap;

fn renderer_for(dir: &std::path::Path) -> anyhow::Result<mailbridge::render::Renderer> {
    let env = BTreeMap::from([
        ("MAILBRIDGE_TEMPLATES".to_owned(), dir.display().to_string()),
        ("MAILBRIDGE_JWT_SECRET".to_owned(), "x".repeat(32)),
    ]);
    let settings = mailbridge::config::load(&env)?;
    mailbridge::server::load_renderer(&settings)
}

#[test]
fn an_empty_templates_directory_is_refused_at_start() {
    let empty = tempfile::tempdir().unwrap();
    let Err(err) = renderer_for(empty.path()) else {
        panic!("an empty directory was taken")
    };
    let err = format!("{err:#}");
    assert!(err.contains("holds no email template"), "{err}");
}

#[test]
fn a_templates_directory_behind_a_link_is_read() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let mount = tempfile::tempdir().unwrap();
    let link = mount.path().join("templates");
    std::os::unix::fs::symlink(shipped.canonicalize().unwrap(), &link).unwrap();
    let renderer = renderer_for(&link).expect("read through the link");
    assert!(renderer.has_template("", "password-reset"));
}
