//! One renderer, three places: the service's `POST /v1/render` (native),
//! `java -jar mailbridge-keycloak.jar render` (the same Rust compiled to
//! WebAssembly, run by Chicory in the JVM) and the browser module
//! `render/wasm/render.js` (in headless Chromium) give byte-identical
//! subject, text and html for every shipped template, in `en`, `de`, `de-AT`
//! and `fr` (which falls back), with sample and hostile data, and with a
//! tenant's override. In the browser, a render that traps fails alone.

mod support;

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use support::{Service, free_port, keycloak::extension_jar, root};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "parity-shared-secret-0123456789abcdef-01";
const LOCALES: [&str; 4] = ["en", "de", "de-AT", "fr"];
const TENANTS: [&str; 2] = ["default", "acme"];
/// Marks the tenant's override, so that the test sees it was used.
const OVERRIDE: &str = "ACME-OVERRIDE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jvm_and_the_browser_module_render_byte_identical_to_the_service() {
    let templates = templates_with_tenant_override();
    let service = Service::start_with_templates(
        free_port(),
        free_port(),
        SECRET,
        &templates.path().join("templates"),
    )
    .await;
    let requests = requests();
    assert!(
        requests.len() >= 14 * 4 * 4 * 2,
        "{} requests",
        requests.len()
    );

    let by_service = render_by_service(&service, &requests).await;
    let lines: Vec<String> = requests.iter().map(Value::to_string).collect();
    let (by_jvm, status) = render_by_jvm(
        &[
            "--templates",
            &templates.path().join("templates").display().to_string(),
            "--lines",
        ],
        &(lines.join("\n") + "\n"),
    )
    .await;
    assert_eq!(status, 0, "every request renders in the JVM");
    let by_jvm = answers(&by_jvm, requests.len());
    let by_browser_module = answers(
        &render_by_browser_module(&templates.path().join("templates"), &lines.join("\n")).await,
        requests.len(),
    );

    let mut overrides = 0;
    for (i, (request, native)) in requests.iter().zip(&by_service).enumerate() {
        for part in ["subject", "text", "html"] {
            let native = native[part].as_str();
            assert!(native.is_some_and(|s| !s.is_empty()), "{part} of {request}");
            assert_eq!(native, by_jvm[i][part].as_str(), "JVM: {part} of {request}");
            let browser = by_browser_module[i][part].as_str();
            assert_eq!(native, browser, "browser module: {part} of {request}");
        }
        overrides += usize::from(
            native["subject"]
                .as_str()
                .is_some_and(|s| s.contains(OVERRIDE)),
        );
    }
    // acme's password-reset × 4 languages × 4 kinds of data.
    assert_eq!(overrides, 16, "the tenant's override was used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jar_renders_its_own_templates_like_the_service() {
    let service = Service::start(free_port(), free_port(), SECRET).await;
    let request = json!({"tenant": "default", "template": "password-reset", "locale": "de-AT",
                         "data": sample("password-reset")});
    let by_service = render_by_service(&service, std::slice::from_ref(&request)).await;
    // No --templates: the templates inside the jar; one request, pretty-printed.
    let pretty = serde_json::to_string_pretty(&request).unwrap();
    let (answer, status) = render_by_jvm(&[], &pretty).await;
    assert_eq!(status, 0, "{answer}");
    let by_jvm: Value = serde_json::from_str(&answer).expect("a JSON answer");
    assert_eq!(by_jvm, by_service[0]);
    assert!(by_jvm["subject"].as_str().unwrap().contains("Passwort"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_template_is_an_error_not_an_email() {
    let (answer, status) = render_by_jvm(&[], r#"{"template": "no-such-kind"}"#).await;
    assert_eq!(status, 1, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a JSON answer");
    assert_eq!(answer["kind"], "unknown-template", "{answer}");
}

/// Renders that trap, one after another. An instance kept after a trap keeps
/// the stack that call had taken: after a few hundred it can render nothing.
const TRAPS: usize = 1000;

/// A render that traps (it asks for more memory than a 32-bit module can
/// address) fails with the engine's `RuntimeError`, and the browser module
/// renders on: the same email after one trap and after a thousand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_browser_a_render_that_traps_fails_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&root().join("templates"), dir.path());
    let runaway = dir.path().join("emails/runaway");
    std::fs::create_dir_all(&runaway).unwrap();
    std::fs::write(runaway.join("subject.j2"), "Runaway").unwrap();
    std::fs::write(runaway.join("html.j2"), "{{ ((0,) * copies) | length }}").unwrap();
    let reset = json!({"template": "password-reset", "locale": "de",
                       "data": sample("password-reset")})
    .to_string();
    let trap = json!({"template": "runaway", "data": {"copies": 100_000_000}}).to_string();
    let mut lines = vec![reset.clone(), trap.clone(), reset.clone()];
    lines.extend(std::iter::repeat_n(trap, TRAPS));
    lines.push(reset);

    let answers = answers(
        &render_by_browser_module(dir.path(), &lines.join("\n")).await,
        lines.len(),
    );

    let email = &answers[0];
    assert!(
        email["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Passwort")),
        "{email}"
    );
    assert_eq!(answers[1]["thrown"], "RuntimeError", "{}", answers[1]);
    assert_eq!(&answers[2], email, "the render after a trap");
    let trapped = answers[3..3 + TRAPS]
        .iter()
        .filter(|a| a["thrown"] == "RuntimeError")
        .count();
    assert_eq!(trapped, TRAPS, "every runaway render traps");
    assert_eq!(&answers[3 + TRAPS], email, "the render after {TRAPS} traps");
}

/// One JSON answer per line, as many as requests.
fn answers(lines: &str, requests: usize) -> Vec<Value> {
    let answers: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON answer per line"))
        .collect();
    assert_eq!(answers.len(), requests, "one answer per request");
    answers
}

/// Every shipped template × language × kind of data × tenant.
fn requests() -> Vec<Value> {
    let mut requests = Vec::new();
    for template in template_names() {
        let sample = sample(&template);
        let data = [
            sample.clone(),
            hostile(&sample, ""),
            without_names(&sample),
            json!({}),
        ];
        for tenant in TENANTS {
            for locale in LOCALES {
                for data in &data {
                    requests.push(json!({"tenant": tenant, "template": template,
                                         "locale": locale, "data": data}));
                }
            }
        }
        // A part of its own alone is not content to send: the template is
        // rendered, in another language where `fr` is missing.
        for part in ["subject", "text", "html"] {
            requests.push(json!({"template": template, "locale": "fr", "data": sample,
                                 part: "<p>Keycloak's own part</p>"}));
        }
    }
    requests
}

fn template_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("templates/emails"))
        .expect("templates/emails")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("sample.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 14, "shipped templates: {names:?}");
    names
}

fn sample(template: &str) -> Value {
    let path = root().join(format!("templates/emails/{template}/sample.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("sample.json"))
        .expect("sample JSON")
}

/// Every string made hostile: markup and quotes, characters beyond ASCII
/// (combining marks, right-to-left, emoji), and links of 4,000 characters.
fn hostile(value: &Value, key: &str) -> Value {
    match value {
        Value::String(s)
            if key.contains("link") || key.contains("url") || s.starts_with("http") =>
        {
            Value::String(format!(
                "{s}&next=<script>\"'{}#Ünïcødé",
                "a%20b".repeat(800)
            ))
        }
        Value::String(s) => Value::String(format!(
            "{s} <b>&amp;</b> \"q\" 'a' Zoë Łukasz 李 שלום e\u{301} 👩‍💻 {{{{ x }}}}"
        )),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), hostile(v, k)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Array(items) => items.iter().map(|v| hostile(v, key)).collect(),
        other => other.clone(),
    }
}

/// The sample without the optional parts of a user (names) and of a realm.
fn without_names(sample: &Value) -> Value {
    let mut data = sample.clone();
    if let Some(user) = data.get_mut("user").and_then(Value::as_object_mut) {
        user.remove("firstName");
        user.remove("lastName");
    }
    if let Some(map) = data.as_object_mut() {
        map.remove("realmName");
    }
    data
}

/// A copy of the shipped templates with tenant `acme`'s own password-reset
/// (in English and German), under `templates/` of the returned directory.
fn templates_with_tenant_override() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&root().join("templates"), &dir.path().join("templates"));
    let own = dir
        .path()
        .join("templates/tenants/acme/emails/password-reset");
    for (sub, subject) in [("", "Reset at ACME"), ("de/", "Zurücksetzen bei ACME")] {
        let d = own.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("subject.j2"),
            format!("{subject} {OVERRIDE} {{{{ realmName }}}}"),
        )
        .unwrap();
        std::fs::write(
            d.join("html.j2"),
            "{% extends layout %}{% block content %}<p>{{ t(\"greeting\", name=user.firstName) }}</p>\
             <p><a href=\"{{ link }}\">{{ link }}</a> & {{ user.username | upper }}</p>{% endblock %}",
        )
        .unwrap();
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `POST /v1/render` of every request; each must answer 200.
async fn render_by_service(service: &Service, requests: &[Value]) -> Vec<Value> {
    let token = mailbridge::auth::mint(SECRET.as_bytes(), None, true, 600).unwrap();
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for request in requests {
        let response = http
            .post(format!("{}/v1/render", service.url))
            .bearer_auth(&token)
            .json(request)
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, 200, "{request}: {body}");
        answers.push(body);
    }
    answers
}

/// `java -jar mailbridge-keycloak.jar render ARGS` with `stdin`: its stdout and exit status.
async fn render_by_jvm(args: &[&str], stdin: &str) -> (String, i32) {
    let mut java = tokio::process::Command::new("java");
    java.arg("-jar")
        .arg(extension_jar())
        .arg("render")
        .args(args);
    let output = run_with_input(java, stdin, "the JVM").await;
    (
        String::from_utf8(output.stdout).expect("UTF-8 answers"),
        output.status.code().unwrap_or(-1),
    )
}

/// Runs `command` with `stdin` as its input, bounded to 120 s; `what` names
/// it in failures.
async fn run_with_input(
    mut command: tokio::process::Command,
    stdin: &str,
    what: &str,
) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what} (scripts/test-deps.sh installs it): {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write the requests");
    drop(input);
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} answers within 120 s"))
    .unwrap_or_else(|e| panic!("{what} runs: {e}"))
}

/// `render/wasm/render.js` in headless Chromium (`support/render_browser.py`)
/// on the module `scripts/build-wasm.sh` builds (built if missing): one
/// answer per request line.
async fn render_by_browser_module(templates: &Path, lines: &str) -> String {
    let module = root().join("target/wasm/mailbridge_render.wasm");
    if !module.exists() {
        let status = std::process::Command::new("bash")
            .arg(root().join("scripts/build-wasm.sh"))
            .status()
            .expect("run build-wasm.sh");
        assert!(status.success(), "building the module failed");
    }
    let mut driver = tokio::process::Command::new(support::python());
    driver
        .arg(root().join("tests/tests/support/render_browser.py"))
        .arg(root())
        .arg(templates);
    let output = run_with_input(driver, lines, "the browser driver").await;
    assert!(output.status.success(), "browser driver: {}", output.status);
    String::from_utf8(output.stdout).expect("UTF-8 answers")
}
