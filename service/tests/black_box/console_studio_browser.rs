//! The template studio in headless Chromium against a real server on
//! 127.0.0.1 (no Keycloak: a local administrator): the page renders with the
//! WebAssembly module embedded in the binary, byte for byte what
//! `POST /v1/render` answers, with no render request to the server while the
//! data is edited; a link in the email goes nowhere (the next edit is never
//! posted to another page); with the module's download refused, the service
//! renders.
//! The check is the browser walk's own (`tests/tests/support/console_browser.py`).

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::console::console_with;
use serde_json::{Value, json};

#[tokio::test]
async fn the_studio_renders_in_the_page_and_falls_back_to_the_service() {
    let module =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/mailbridge_render.wasm");
    assert!(
        module.exists(),
        "the renderer's module is missing: run `bash scripts/build-wasm.sh` before the tests"
    );
    let (server, _) = console_with(&[], &[]).await;
    let shots = server.dir.path().join("screenshots");
    let run = tokio::process::Command::new(common::python())
        .arg(common::peers_dir().join("studio_browser.py"))
        .arg(server.url(""))
        .arg(&shots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser finishes within 3 minutes")
        .expect("run the browser");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("JSON");

    let studio = &seen["studio"];
    let data: Value = serde_json::from_str(studio["data"].as_str().expect("data")).expect("JSON");
    let api: Value = server
        .http
        .post(server.url("/v1/render"))
        .json(
            &json!({"tenant": "acme", "template": "password-reset", "locale": "de", "data": data}),
        )
        .send()
        .await
        .expect("render")
        .json()
        .await
        .expect("JSON");
    assert_eq!(studio["renderer"], "webassembly", "{seen}");
    for part in ["html", "subject", "text"] {
        assert_eq!(
            studio[part], api[part],
            "{part}: the page renders what the service sends"
        );
    }
    assert_eq!(studio["server_renders"], json!([]), "{seen}");
    assert_eq!(studio["missing_variables"], json!(["link"]), "{seen}");
    assert!(
        studio["edited_subject"]
            .as_str()
            .is_some_and(|s| s.contains("Edited Realm")),
        "{seen}"
    );

    let frame = seen["link_clicked"]["frame_url"]
        .as_str()
        .unwrap_or_default();
    assert!(
        frame.ends_with("/console/templates/frame"),
        "a link in the email leaves the preview where it is: {seen}"
    );

    let blocked = &seen["blocked"];
    assert_eq!(blocked["renderer"], "service", "{seen}");
    assert_eq!(blocked["subject"], api["subject"], "{seen}");
    assert!(
        blocked["server_renders"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "the service rendered: {seen}"
    );
}
