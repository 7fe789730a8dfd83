//! The ABI as a host uses it, natively: buffers in, JSON answers out.

use super::*;

/// Writes `input` into a new buffer and calls `export` with it, as a host does.
fn call(export: extern "C" fn(usize) -> usize, input: &[u8]) -> serde_json::Value {
    let address = mb_alloc(input.len());
    let mut buffer = buffers::take(address).expect("the buffer just made");
    buffer.copy_from_slice(input);
    let address = buffers::keep(buffer);
    let answer = export(address);
    assert_eq!(mb_len(address), 0, "the input buffer was taken over");
    let json = buffers::take(answer).expect("an answer buffer");
    serde_json::from_slice(&json).expect("a JSON answer")
}

fn load_hello() {
    let templates = serde_json::json!({
        "emails/hello/subject.j2": "Hello {{ name }}",
        "emails/hello/html.j2": "<p>Hello {{ name }}</p>",
        "emails/hello/de/subject.j2": "Hallo {{ name }}",
        "emails/hello/de/html.j2": "<p>Hallo {{ name }}</p>",
        "tenants/acme/emails/hello/subject.j2": "ACME greets {{ name }}",
        "tenants/acme/emails/hello/html.j2": "<p>ACME</p>",
    });
    let answer = call(mb_load_templates, templates.to_string().as_bytes());
    assert_eq!(answer, serde_json::json!({"templates": 1}));
}

#[test]
fn renders_a_request_into_subject_text_and_html() {
    load_hello();
    let request =
        r#"{"template": "hello", "locale": "de-AT", "data": {"name": "<Ada>"}, "to": []}"#;
    assert_eq!(
        call(mb_render, request.as_bytes()),
        serde_json::json!({"subject": "Hallo <Ada>", "text": "Hallo <Ada>\n", "html": "<p>Hallo &lt;Ada&gt;</p>"})
    );
    let request = r#"{"tenant": "acme", "template": "hello", "data": {"name": "Ada"}}"#;
    assert_eq!(
        call(mb_render, request.as_bytes())["subject"],
        "ACME greets Ada"
    );
}

#[test]
fn failures_are_answers_with_a_kind() {
    load_hello();
    let kind = |request: &str| call(mb_render, request.as_bytes())["kind"].clone();
    assert_eq!(kind(r#"{"template": "nope"}"#), "unknown-template");
    assert_eq!(
        kind(r#"{"template": "hello", "locale": "fr", "subject": "s", "text": "t"}"#),
        "language-unavailable"
    );
    assert_eq!(kind(r#"{"locale": "de"}"#), "bad-request");
    assert_eq!(kind("not json"), "bad-request");
    let broken = call(mb_load_templates, br#"{"emails/x/html.j2": "{% if %}"}"#);
    assert_eq!(broken["kind"], "syntax", "{broken}");
}

#[test]
fn without_templates_a_render_says_so() {
    // Each test thread has its own module state, as each instance does.
    assert_eq!(
        call(mb_render, br#"{"template": "hello"}"#)["kind"],
        "no-templates"
    );
}

#[test]
fn an_unknown_address_is_an_empty_input_not_foreign_memory() {
    load_hello();
    let answer = mb_render(12345);
    let json = buffers::take(answer).expect("an answer buffer");
    let answer: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(answer["kind"], "bad-request");
    mb_free(12345);
}

#[test]
fn names_what_a_render_does_without() {
    load_hello();
    let request = r#"{"template": "hello", "locale": "de", "data": {}}"#;
    assert_eq!(
        call(mb_missing, request.as_bytes()),
        serde_json::json!({"lang": "de", "translations": [], "variables": ["name"]})
    );
    let request = r#"{"template": "nope", "data": {}}"#;
    assert_eq!(
        call(mb_missing, request.as_bytes())["kind"],
        "unknown-template"
    );
}
