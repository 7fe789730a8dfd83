//! What the fuzz targets share: the shipped templates, and the invariants a
//! message must keep on the wire (see RELIABILITY.md, "Fuzzing").

use std::path::PathBuf;
use std::sync::LazyLock;

use mailbridge::email::OutgoingMessage;
use mailbridge::render::{Renderer, load_dir};

/// Longest line RFC 5322 allows, without its CRLF.
pub const MAX_LINE: usize = 998;

/// Header fields every message has, besides those of its addresses.
const FIXED_FIELDS: [&str; 4] = ["from", "subject", "message-id", "date"];
/// Header fields a message may have, depending on its body.
const BODY_FIELDS: [&str; 3] = ["mime-version", "content-type", "content-transfer-encoding"];

/// The renderer over the repository's `templates/`, as the service loads it.
pub static RENDERER: LazyLock<Renderer> = LazyLock::new(|| {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let sources = load_dir(&dir).expect("the shipped templates load");
    Renderer::new(sources).expect("the shipped templates compile")
});

/// Panics unless no header field of `msg` can carry a line break or NUL.
pub fn assert_header_fields_plain(msg: &OutgoingMessage) {
    let mut fields: Vec<(&str, &str)> = vec![
        ("subject", &msg.subject),
        ("message_id", &msg.message_id),
        ("tenant", &msg.tenant),
    ];
    let mailboxes = std::iter::once(&msg.from)
        .chain(msg.reply_to.iter())
        .chain(msg.recipients());
    for m in mailboxes {
        fields.push(("email", &m.email));
        fields.extend(m.name.as_deref().map(|n| ("name", n)));
    }
    fields.extend(msg.envelope_from.as_deref().map(|e| ("envelope_from", e)));
    fields.extend(msg.tags.iter().map(|t| ("tag", t.as_str())));
    for (k, v) in &msg.metadata {
        fields.push(("metadata key", k));
        fields.push(("metadata value", v));
    }
    for (name, value) in fields {
        assert!(
            !value.contains(['\r', '\n', '\0']),
            "{name} carries CR, LF or NUL: {value:?}"
        );
    }
}

/// Panics unless `eml` (`mime::to_eml` of `msg`) is safe to send: CRLF line
/// ends only, no NUL, no line over 998 octets, exactly the header fields
/// `msg` calls for (each once), and no end-of-data mark before the end once
/// an SMTP client has dot-stuffed it.
pub fn assert_wire_safe(msg: &OutgoingMessage, eml: &[u8]) {
    assert!(!eml.contains(&0), "NUL byte in the message");
    for (i, &b) in eml.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(eml.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => assert!(i > 0 && eml[i - 1] == b'\r', "bare LF at {i}"),
            _ => {}
        }
    }
    for line in eml.split(|&b| b == b'\n') {
        let len = line.strip_suffix(b"\r").unwrap_or(line).len();
        assert!(len <= MAX_LINE, "line of {len} octets");
    }
    assert_headers_not_split(msg, eml);
    assert_dot_safe(eml);
}

fn assert_headers_not_split(msg: &OutgoingMessage, eml: &[u8]) {
    let mut required = FIXED_FIELDS.to_vec();
    for (name, present) in [
        ("to", !msg.to.is_empty()),
        ("cc", !msg.cc.is_empty()),
        ("reply-to", msg.reply_to.is_some()),
    ] {
        if present {
            required.push(name);
        }
    }
    let text = String::from_utf8_lossy(eml);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut seen = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            assert!(!seen.is_empty(), "a continuation line opens the header");
            continue;
        }
        let name = line
            .split_once(':')
            .map(|(n, _)| n.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("header line without a field name: {line:?}"));
        assert!(
            required.contains(&name.as_str()) || BODY_FIELDS.contains(&name.as_str()),
            "unexpected header field {name:?}"
        );
        assert!(!seen.contains(&name), "header field {name:?} twice");
        seen.push(name);
    }
    for name in required {
        assert!(
            seen.iter().any(|s| s == name),
            "header field {name:?} missing"
        );
    }
}

/// Where lettre's SMTP client codec stands in the stream it sends.
#[derive(Clone, Copy, PartialEq)]
enum Codec {
    MiddleOfLine,
    AfterCr,
    StartOfLine,
}

/// The DATA stream as lettre's SMTP client sends it (the state machine of its
/// `ClientCodec`: a `.` at the start of a line is doubled), then the
/// end-of-data mark.
pub fn smtp_data_stream(eml: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(eml.len() + 8);
    let mut state = Codec::StartOfLine;
    for &b in eml {
        out.push(b);
        state = match (b, state) {
            (b'\r', _) => Codec::AfterCr,
            (b'\n', Codec::AfterCr) => Codec::StartOfLine,
            (b'.', Codec::StartOfLine) => {
                out.push(b'.');
                Codec::MiddleOfLine
            }
            (_, Codec::AfterCr | Codec::StartOfLine) => Codec::MiddleOfLine,
            (_, Codec::MiddleOfLine) => Codec::MiddleOfLine,
        };
    }
    out.extend_from_slice(b"\r\n.\r\n");
    out
}

fn assert_dot_safe(eml: &[u8]) {
    let stream = smtp_data_stream(eml);
    let body = &stream[..stream.len() - 5];
    // Lenient servers also end DATA on a `.` between bare CRs or LFs: no such
    // line may appear before the real end.
    let lenient_end = body.windows(3).position(|w| {
        matches!(w[0], b'\r' | b'\n') && w[1] == b'.' && matches!(w[2], b'\r' | b'\n')
    });
    assert_eq!(lenient_end, None, "end-of-data mark inside the message");
    assert!(
        !(body.starts_with(b".\r") || body.starts_with(b".\n")),
        "message starts with an end-of-data mark"
    );
}
