//! The studio lists what a render does without, against a real server on
//! 127.0.0.1 with a tenant's template that uses a string only English has and
//! a variable the sample data lacks: in the page as served and in the
//! studio's render answer for edited data.

use crate::common;

use std::path::PathBuf;

use common::console::{Browser, console_with, copy_dir, csrf};
use serde_json::{Value, json};

/// The shipped templates, a string only in English, and acme's own
/// password-reset that uses it and `user.nickname`.
fn templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../templates");
    copy_dir(&shipped, dir.path());
    let en = dir.path().join("locales/en.ftl");
    let mut strings = std::fs::read_to_string(&en).expect("en.ftl");
    strings.push_str("\nstudio-only-en = Only in English\n");
    std::fs::write(&en, strings).expect("write");
    let own = dir.path().join("tenants/acme/emails/password-reset");
    std::fs::create_dir_all(&own).expect("dir");
    std::fs::write(
        own.join("subject.j2"),
        "{{ t(\"studio-only-en\") }} {{ realmName }}",
    )
    .expect("write");
    std::fs::write(own.join("html.j2"), "<p>Hi {{ user.nickname }}</p>").expect("write");
    dir
}

#[tokio::test]
async fn the_studio_lists_translations_the_language_lacks_and_variables_the_data_lacks() {
    let dir = templates();
    let path = dir.path().display().to_string();
    let (server, _) = console_with(&[("MAILBRIDGE_TEMPLATES", path.as_str())], &[]).await;
    let mut admin = Browser::new(&server, None);
    let (status, _, page) = admin
        .get("/console/templates?tenant=acme&template=password-reset&locale=de")
        .await;
    assert_eq!(status, 200);
    let list = |id: &str| {
        let start = page.find(&format!("<ul id=\"{id}\"")).expect("list");
        page[start..].split("</ul>").next().expect("end").to_owned()
    };
    assert!(
        list("missing-translations").contains("<code>studio-only-en</code>"),
        "{page}"
    );
    assert!(
        list("missing-variables").contains("<code>user.nickname</code>"),
        "{page}"
    );

    // Edited data: what it now has is no longer listed.
    let token = csrf(&page);
    let data = json!({"realmName": "ACME", "user": {"nickname": "ada"}}).to_string();
    let form = [
        ("csrf", token.as_str()),
        ("tenant", "acme"),
        ("template", "password-reset"),
        ("locale", "de"),
        ("data", data.as_str()),
    ];
    let (status, _, body) = admin.submit("/console/templates/render", &form).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        answer["missing"],
        json!({"lang": "de", "translations": ["studio-only-en"], "variables": []})
    );
    assert_eq!(answer["subject"], "Only in English ACME");
    let english = [form[0], form[1], form[2], ("locale", "en"), form[4]];
    let (_, _, body) = admin.submit("/console/templates/render", &english).await;
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        answer["missing"],
        json!({"lang": "en", "translations": [], "variables": []})
    );
}
