//! The studio's renderer in the page, against a real server on 127.0.0.1:
//! the binary serves the WebAssembly module it was built with (the one
//! `scripts/build-wasm.sh` writes) and the template sources the service
//! renders with, a tenant's overrides only to that tenant's viewers; the
//! studio's page may compile WebAssembly, no other console page may.

use crate::common;

use std::path::PathBuf;

use common::console::{Browser, console_with, copy_dir as copy};
use mailbridge::console::session::Viewer;
use serde_json::Value;

/// The module the build script embeds (when it was built).
fn built_module() -> Option<Vec<u8>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/mailbridge_render.wasm");
    std::fs::read(path).ok()
}

/// The shipped templates, with overrides for tenants acme and globex.
fn templates_with_overrides() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../templates");
    copy(&shipped, dir.path());
    for tenant in ["acme", "globex"] {
        let own = dir
            .path()
            .join(format!("tenants/{tenant}/emails/password-reset"));
        std::fs::create_dir_all(&own).expect("override dir");
        std::fs::write(own.join("subject.j2"), format!("{tenant}'s own reset")).expect("write");
        std::fs::write(own.join("html.j2"), format!("<p>{tenant}</p>")).expect("write");
    }
    dir
}

#[tokio::test]
async fn the_binary_serves_the_module_it_was_built_with_and_says_which_renderer_the_studio_uses() {
    let (server, _) = console_with(&[], &[]).await;
    let mut browser = Browser::new(&server, None);
    let (status, _, page) = browser.get("/console/templates?tenant=acme").await;
    assert_eq!(status, 200);
    let resp = server
        .http
        .get(server.url("/console/assets/mailbridge_render.wasm"))
        .send()
        .await
        .expect("module");
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").cloned();
    let bytes = resp.bytes().await.expect("bytes");
    match built_module() {
        Some(module) => {
            assert_eq!(status, 200);
            assert_eq!(kind.expect("content type"), "application/wasm");
            assert_eq!(bytes.as_ref(), module.as_slice(), "the module as built");
            assert!(
                page.contains("data-renderer=\"webassembly\""),
                "the page names the WebAssembly renderer: {page}"
            );
            assert!(page.contains("sandbox=\"allow-scripts\" src=\"/console/templates/frame\""));
        }
        None => {
            assert_eq!(status, 404, "no module in this build");
            assert!(page.contains("data-renderer=\"service\""), "{page}");
        }
    }
    let (status, headers, script) = browser.get("/console/assets/render.js").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert!(script.contains("export class Renderer"));
    let (status, _, script) = browser.get("/console/assets/studio.js").await;
    assert_eq!(status, 200);
    assert!(script.contains("import { Renderer } from \"/console/assets/render.js\""));
}

#[tokio::test]
async fn only_the_studio_may_compile_webassembly_and_the_preview_shell_has_its_own_sandbox() {
    let (server, _) = console_with(&[], &[]).await;
    let mut browser = Browser::new(&server, None);
    let policy = |headers: &reqwest::header::HeaderMap| {
        headers["content-security-policy"]
            .to_str()
            .expect("policy")
            .to_owned()
    };
    let (_, headers, _) = browser.get("/console/templates").await;
    let studio = policy(&headers);
    assert!(studio.contains("script-src 'self'"), "{studio}");
    assert!(!studio.contains("unsafe-inline"), "{studio}");
    assert_eq!(
        studio.contains("'wasm-unsafe-eval'"),
        built_module().is_some(),
        "WebAssembly only when the binary carries the module: {studio}"
    );
    let (_, headers, _) = browser.get("/console/messages").await;
    assert!(!policy(&headers).contains("wasm"), "{}", policy(&headers));

    let (status, headers, shell) = browser.get("/console/templates/frame").await;
    assert_eq!(status, 200);
    let frame = policy(&headers);
    assert!(frame.starts_with("sandbox allow-scripts;"), "{frame}");
    assert!(frame.contains("script-src 'self';"), "{frame}");
    assert!(!frame.contains("eval"), "{frame}");
    assert!(frame.contains("frame-ancestors 'self'"), "{frame}");
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert!(shell.contains("<script src=\"/console/assets/frame.js\"></script>"));
}

/// `GET /console/templates/sources?tenant=` by `browser`: status and files.
async fn sources(browser: &mut Browser<'_>, tenant: &str) -> (u16, Value) {
    let (status, _, body) = browser
        .get(&format!("/console/templates/sources?tenant={tenant}"))
        .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn template_sources_go_to_viewers_of_that_tenant_with_its_overrides_only() {
    let templates = templates_with_overrides();
    let dir = templates.path().display().to_string();
    let env = [("MAILBRIDGE_TEMPLATES", dir.as_str())];
    let (server, sessions) =
        console_with(&env, &[Viewer::from_roles("ada", ["tenant:acme"])]).await;

    let mut admin = Browser::new(&server, None);
    let (status, files) = sources(&mut admin, "globex").await;
    assert_eq!(status, 200);
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../templates/emails/password-reset/subject.j2");
    assert_eq!(
        files["emails/password-reset/subject.j2"],
        std::fs::read_to_string(shipped).expect("shipped subject")
    );
    assert!(files["locales/de.ftl"].is_string());
    assert_eq!(
        files["tenants/globex/emails/password-reset/subject.j2"],
        "globex's own reset"
    );
    assert!(
        files
            .get("tenants/acme/emails/password-reset/subject.j2")
            .is_none()
    );

    let mut ada = Browser::new(&server, Some(sessions[0].0.clone()));
    let (status, files) = sources(&mut ada, "acme").await;
    assert_eq!(status, 200);
    assert_eq!(
        files["tenants/acme/emails/password-reset/subject.j2"],
        "acme's own reset"
    );
    let tenants: Vec<&String> = files
        .as_object()
        .expect("files")
        .keys()
        .filter(|path| path.starts_with("tenants/"))
        .collect();
    assert!(
        tenants.iter().all(|p| p.starts_with("tenants/acme/")),
        "{tenants:?}"
    );
    assert_eq!(sources(&mut ada, "globex").await.0, 404);
    assert_eq!(sources(&mut ada, "").await.0, 404);
}
