//! HTML → text (the text part derived for an HTML-only message): never
//! panics, and its output stays within a linear bound of its input (or the
//! HTML is refused as too complex).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbridge::render::html_to_text;

/// Output octets allowed per input octet, beyond [`SLACK`].
const PER_INPUT_OCTET: usize = 16;
/// Output allowed for any input (line padding, list markers, link lists).
const SLACK: usize = 4096;

fuzz_target!(|html: &str| {
    let Ok(text) = html_to_text(html) else {
        return;
    };
    assert!(
        text.len() <= PER_INPUT_OCTET * html.len() + SLACK,
        "{} octets of HTML gave {} octets of text",
        html.len(),
        text.len()
    );
});
