//! Rendering the shipped templates with hostile data, locale and tenant, as
//! `POST /v1/render` does: never panics, the subject is one line, and the
//! output stays within a linear bound of the data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbridge::render::RenderRequest;
use mailbridge_fuzz::RENDERER;

/// Locales the selector byte picks from: real, unknown, malformed.
const LOCALES: [&str; 9] = ["en", "de", "de-AT", "pt_BR", "fr", "DE", "-", "de-", "x_"];
/// Tenants the selector byte picks from (overrides are looked up by name).
const TENANTS: [&str; 4] = ["default", "acme", "../..", ""];
/// Output allowed for any data (the templates themselves).
const SLACK: usize = 64 * 1024;
/// Output octets allowed per octet of data (escaping, repeated fields).
const PER_DATA_OCTET: usize = 64;

fuzz_target!(|input: &[u8]| {
    // Three selector bytes, then the data as JSON.
    let [template, locale, flags, data @ ..] = input else {
        return;
    };
    let Ok(data) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let names = RENDERER.template_names();
    let template = names[usize::from(*template) % names.len()].as_str();
    let locale = (flags & 1 == 1).then(|| LOCALES[usize::from(*locale) % LOCALES.len()]);
    let tenant = TENANTS[usize::from(flags >> 2) % TENANTS.len()];
    let request = RenderRequest {
        tenant,
        template,
        locale,
        data: &data,
        require_locale: flags & 2 == 2,
    };
    let Ok(rendered) = RENDERER.render(&request) else {
        return;
    };
    assert!(
        !rendered.subject.contains(['\r', '\n']),
        "subject spans lines: {:?}",
        rendered.subject
    );
    let size = rendered.subject.len() + rendered.html.len() + rendered.text.len();
    assert!(
        size <= SLACK + PER_DATA_OCTET * input.len(),
        "{} octets of data rendered to {size} octets",
        input.len()
    );
});
