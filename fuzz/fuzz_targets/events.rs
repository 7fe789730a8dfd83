//! Delivery events as they arrive at `POST /v1/events/{transport}`: a mail
//! server's delivery status notification (written by whichever server sent
//! the bounce), each provider's event body, an SNS envelope and the URLs it
//! names. The first byte picks the reader, the rest is the body.
//!
//! Checks: no panic; an event's detail is at most 500 bytes; a body yields
//! at most one event per 8 bytes; an SNS URL that is accepted is
//! `https://sns.<region>.amazonaws.com[.cn]/…` on the default port, without
//! credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbridge::events::sns::{Envelope, sns_url};
use mailbridge::events::{
    ProviderEvent, address_key, dsn_report, mailgun, mailjet, postmark, resend, sendgrid, ses,
    signature,
};
use time::OffsetDateTime;

/// Mailgun's signing key in this harness: bodies are signed with it, so
/// that their events are read, not refused as unverified.
const MAILGUN_KEY: &str = "key-fuzz";

fuzz_target!(|input: &[u8]| {
    let Some((&which, body)) = input.split_first() else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    let (events, size) = match which % 8 {
        0 => (dsn_report::parse(body).ok(), body.len()),
        1 => (sendgrid::parse(body).ok(), body.len()),
        2 => {
            let Some(signed) = mailgun_signed(body, now) else {
                return;
            };
            let events = mailgun::verify_and_parse(MAILGUN_KEY, &signed, now).ok();
            (events.map(|(events, _)| events), signed.len())
        }
        3 => (postmark::parse(body).ok(), body.len()),
        4 => (mailjet::parse(body).ok(), body.len()),
        5 => (resend::parse(body, "msg_fuzz".into()).ok(), body.len()),
        6 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            (ses::parse(text, "sns-fuzz").ok(), body.len())
        }
        _ => {
            sns(body);
            return;
        }
    };
    let events = events.unwrap_or_default();
    assert!(
        events.len() <= size / 8 + 1,
        "{} events from {size} bytes",
        events.len()
    );
    events.iter().for_each(check);
});

fn check(event: &ProviderEvent) {
    if let Some(detail) = &event.detail {
        assert!(detail.len() <= 500, "a detail of {} bytes", detail.len());
    }
    let _ = event.message.id_from_header();
    if let Some(recipient) = &event.recipient {
        let _ = address_key(recipient);
    }
}

/// `body` (a JSON object) with a valid, fresh Mailgun signature in place of
/// whatever it had.
fn mailgun_signed(body: &[u8], now: OffsetDateTime) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    let timestamp = now.unix_timestamp().to_string();
    let token = "fuzz-token";
    let hex: String = signature::hmac_sha256(
        MAILGUN_KEY.as_bytes(),
        &[timestamp.as_bytes(), token.as_bytes()],
    )
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect();
    object.insert(
        "signature".into(),
        serde_json::json!({"timestamp": timestamp, "token": token, "signature": hex}),
    );
    serde_json::to_vec(&value).ok()
}

/// An SNS envelope: the text it signs, and its URLs as the verifier judges them.
fn sns(body: &[u8]) {
    let urls: Vec<String> = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => {
            let _ = envelope.string_to_sign();
            std::iter::once(envelope.signing_cert_url)
                .chain(envelope.subscribe_url)
                .collect()
        }
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => vec![text.to_owned()],
            Err(_) => return,
        },
    };
    for text in urls {
        let Ok(url) = sns_url(&text) else {
            continue;
        };
        assert_eq!(url.scheme(), "https", "{text:?}");
        assert!(url.port().is_none(), "{text:?}");
        assert!(url.username().is_empty() && url.password().is_none(), "{text:?}");
        let host = url.host_str().unwrap_or_default();
        let region = host
            .strip_prefix("sns.")
            .and_then(|h| {
                h.strip_suffix(".amazonaws.com")
                    .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
            })
            .unwrap_or_else(|| panic!("host {host:?} accepted from {text:?}"));
        assert!(
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "region {region:?} accepted from {text:?}"
        );
    }
}
