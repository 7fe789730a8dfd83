//! SMTP bounces: a delivery status notification (RFC 3464) that came back to
//! the envelope sender, posted raw (`message/rfc822`) by the mail server's
//! pipe. The report is `multipart/report; report-type=delivery-status`; its
//! `message/delivery-status` part has one block per recipient (`Final-Recipient`,
//! `Action`, `Status`, `Diagnostic-Code`), and the returned message or its
//! headers carry our `Message-ID`. With the SMTP transport's `verp` option the
//! address the report was sent to names the message too
//! (`bounces+<id>@domain`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use uuid::Uuid;

use super::{Bounce, EventType, MessageRef, ProviderEvent, Unreadable, bare_address, detail};

/// The envelope sender of message `id` under VERP: `local+<id>@domain`.
pub fn verp_address(local: &str, id: Uuid, domain: &str) -> String {
    format!("{local}+{}@{domain}", id.simple())
}

/// The message id a VERP address in `text` carries, if any.
pub fn verp_id(text: &str) -> Option<Uuid> {
    text.match_indices('+').find_map(|(at, _)| {
        let tag = text.get(at + 1..at + 33)?;
        let after = text.get(at + 33..at + 34)?;
        (after == "@").then(|| Uuid::try_parse(tag).ok()).flatten()
    })
}

/// A header block: (lower-case name, unfolded value) pairs.
type Fields = Vec<(String, String)>;

/// Splits `text` at its first empty line into unfolded header fields and the rest.
fn split_headers(text: &str) -> (Fields, &str) {
    let (head, body) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&text[..b], &text[b + 2..]),
        (Some(a), _) => (&text[..a], &text[a + 4..]),
        (None, Some(b)) => (&text[..b], &text[b + 2..]),
        (None, None) => (text, ""),
    };
    (fields(head), body)
}

/// Unfolded header fields of a block.
fn fields(block: &str) -> Fields {
    let mut out: Fields = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    out
}

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A parameter of a header value (`boundary="…"`), case-insensitive name.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (key, v) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The parts of a multipart body with `boundary`: (headers, body) each.
fn parts<'a>(body: &'a str, boundary: &str) -> Vec<(Fields, &'a str)> {
    let delimiter = format!("--{boundary}");
    body.split(delimiter.as_str())
        .skip(1)
        .take_while(|part| !part.starts_with("--"))
        .map(|part| split_headers(part.trim_start_matches(['\r', '\n'])))
        .collect()
}

/// The events of a delivery status notification.
pub fn parse(raw: &[u8]) -> Result<Vec<ProviderEvent>, Unreadable> {
    let text = String::from_utf8_lossy(raw);
    let (headers, body) = split_headers(&text);
    let content_type = field(&headers, "content-type").unwrap_or_default();
    let is_report = content_type
        .to_ascii_lowercase()
        .starts_with("multipart/report")
        && parameter(content_type, "report-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"));
    let boundary = parameter(content_type, "boundary").filter(|_| is_report).ok_or_else(|| {
        Unreadable("not a delivery status notification (multipart/report; report-type=delivery-status)".into())
    })?;
    let parts = parts(body, &boundary);
    let kind_of = |fields: &Fields| {
        field(fields, "content-type")
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let status = parts
        .iter()
        .find(|(f, _)| kind_of(f).starts_with("message/delivery-status"))
        .map(|(_, b)| *b)
        .ok_or_else(|| Unreadable("the report has no message/delivery-status part".into()))?;
    let returned = parts
        .iter()
        .find(|(f, _)| {
            let kind = kind_of(f);
            kind.starts_with("message/rfc822") || kind.starts_with("text/rfc822-headers")
        })
        .map(|(_, b)| split_headers(b).0)
        .unwrap_or_default();
    let addressed = ["delivered-to", "x-original-to", "envelope-to", "to"]
        .iter()
        .filter_map(|name| field(&headers, name))
        .find_map(verp_id);
    let reference = MessageRef {
        ours: addressed,
        message_id_header: field(&returned, "message-id").map(str::to_owned),
        provider: None,
    };
    let report_id = field(&headers, "message-id").unwrap_or_default().to_owned();
    let mut blocks = status
        .split("\r\n\r\n")
        .flat_map(|b| b.split("\n\n"))
        .map(fields)
        .filter(|f| !f.is_empty());
    let per_message = blocks.next().unwrap_or_default();
    let arrived = field(&per_message, "arrival-date");
    // One event per recipient (its first block), and no more recipients than
    // a message may have: anyone may write to the bounce address, and a
    // report that names one address a thousand times, or a thousand
    // addresses, is one event or none, not a thousand suppressions,
    // Keycloak updates and webhooks.
    let mut events: Vec<ProviderEvent> = Vec::new();
    for block in blocks {
        let Some(event) = recipient_event(&block, &reference, arrived, &report_id) else {
            continue;
        };
        let named = |e: &ProviderEvent| e.recipient.as_deref().map(str::to_ascii_lowercase);
        if events.iter().any(|e| named(e) == named(&event)) {
            continue;
        }
        if events.len() == crate::email::MAX_RECIPIENTS {
            break;
        }
        events.push(event);
    }
    Ok(events)
}

fn recipient_event(
    block: &Fields,
    reference: &MessageRef,
    arrived: Option<&str>,
    report_id: &str,
) -> Option<ProviderEvent> {
    let status = field(block, "status").unwrap_or_default();
    let (kind, bounce) = match field(block, "action")?.to_ascii_lowercase().as_str() {
        "failed" if status.starts_with('4') => (EventType::Bounced, Some(Bounce::Soft)),
        "failed" => (EventType::Bounced, Some(Bounce::Hard)),
        "delayed" => (EventType::Deferred, None),
        "delivered" | "relayed" | "expanded" => (EventType::Delivered, None),
        _ => return None,
    };
    // RFC 3464 requires it; a block without one speaks for nobody, and anyone
    // may write to the bounce address (an event without a recipient would
    // be matched by its `Message-ID` alone and reach the tenant's webhook).
    let recipient = field(block, "final-recipient")
        .or_else(|| field(block, "original-recipient"))
        // Some servers write the address in angle brackets.
        .map(|v| bare_address(v.split_once(';').map_or(v, |(_, a)| a)).to_owned())
        .filter(|a| a.contains('@'))?;
    let reason = field(block, "diagnostic-code")
        .map(|v| v.split_once(';').map_or(v, |(_, d)| d).trim().to_owned())
        .or_else(|| (!status.is_empty()).then(|| status.to_owned()));
    let at = field(block, "last-attempt-date").or(arrived);
    Some(ProviderEvent {
        message: reference.clone(),
        kind,
        bounce,
        detail: detail(reason.as_deref()),
        provider_event_id: (!report_id.is_empty())
            .then(|| format!("{report_id}:{}", recipient.to_ascii_lowercase())),
        recipient: Some(recipient),
        occurred_at: at
            .and_then(|t| OffsetDateTime::parse(t, &Rfc2822).ok())
            .unwrap_or_else(OffsetDateTime::now_utc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Postfix bounce in the shape RFC 3464 gives (its appendix's examples).
    pub(crate) fn postfix_bounce(to: &str, message_id: &str) -> String {
        format!(
            "Return-Path: <>\r\nDelivered-To: {to}\r\nFrom: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\nTo: {to}\r\nMessage-Id: <20261204220000.ABC12@mx.acme.example>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"ABC12.1733349600/mx.acme.example\"\r\n\r\n\
This is a MIME-encapsulated message.\r\n\r\n--ABC12.1733349600/mx.acme.example\r\nContent-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered.\r\n\r\n\
--ABC12.1733349600/mx.acme.example\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.acme.example\r\nX-Postfix-Queue-ID: ABC12\r\nArrival-Date: Fri,  4 Dec 2026 21:59:58 +0000 (UTC)\r\n\r\n\
Final-Recipient: rfc822; ada@example.com\r\nOriginal-Recipient: rfc822;ada@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Remote-MTA: dns; mx.example.com\r\nDiagnostic-Code: smtp; 550 5.1.1 <ada@example.com>: Recipient address rejected:\r\n    User unknown\r\n\r\n\
Final-Recipient: rfc822; grace@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: X-Postfix; connect to mx.example.com timed out\r\n\r\n\
--ABC12.1733349600/mx.acme.example\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n\
From: ACME <no-reply@acme.example>\r\nTo: ada@example.com\r\nSubject: Verify your email\r\nMessage-ID: {message_id}\r\n\r\n\
--ABC12.1733349600/mx.acme.example--\r\n"
        )
    }

    #[test]
    fn reads_a_postfix_bounce() {
        let id = Uuid::now_v7();
        let to = verp_address("bounces", id, "acme.example");
        let header = format!("<{}@acme.example>", Uuid::now_v7().simple());
        let events = parse(postfix_bounce(&to, &header).as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].message.ours, Some(id));
        assert_eq!(
            events[0].message.message_id_header.as_deref(),
            Some(header.as_str())
        );
        assert_eq!(
            (events[0].kind, events[0].bounce),
            (EventType::Bounced, Some(Bounce::Hard))
        );
        assert_eq!(events[0].recipient.as_deref(), Some("ada@example.com"));
        assert_eq!(
            events[0].detail.as_deref(),
            Some("550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown")
        );
        assert_eq!(events[1].kind, EventType::Deferred);
        assert_eq!(
            events[1].provider_event_id.as_deref(),
            Some("<20261204220000.ABC12@mx.acme.example>:grace@example.com")
        );
    }

    #[test]
    fn a_block_without_its_recipient_is_no_event() {
        let id = Uuid::now_v7();
        let to = verp_address("bounces", id, "acme.example");
        let report = postfix_bounce(&to, "<x@acme.example>")
            .replace("Final-Recipient: rfc822; ada@example.com\r\nOriginal-Recipient: rfc822;ada@example.com\r\n", "")
            .replace("Final-Recipient: rfc822; grace@example.com", "Final-Recipient: rfc822; ");
        let events = parse(report.as_bytes()).unwrap();
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn a_recipient_named_again_and_again_is_one_event_and_recipients_are_bounded() {
        let id = Uuid::now_v7();
        let to = verp_address("bounces", id, "acme.example");
        let block = "Final-Recipient: rfc822; ada@example.com\r\nOriginal-Recipient: rfc822;ada@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n";
        let again = format!("{block}\r\n{}", block.replace("ada@", "ADA@")).repeat(500);
        let report = postfix_bounce(&to, "<x@acme.example>").replace(block, &again);
        let events = parse(report.as_bytes()).unwrap();
        let named: Vec<_> = events
            .iter()
            .map(|e| e.recipient.clone().unwrap())
            .collect();
        assert_eq!(named, ["ada@example.com", "grace@example.com"]);

        let many: String = (0..1000)
            .map(|i| block.replace("ada@", &format!("user{i}@")) + "\r\n")
            .collect();
        let report = postfix_bounce(&to, "<x@acme.example>").replace(block, &many);
        let events = parse(report.as_bytes()).unwrap();
        assert_eq!(events.len(), crate::email::MAX_RECIPIENTS);
    }

    #[test]
    fn a_plain_message_is_not_a_report() {
        assert!(parse(b"Subject: hi\r\n\r\nhello").is_err());
        assert_eq!(verp_id("bounces+0123@acme.example"), None);
    }
}
