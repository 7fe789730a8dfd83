//! The JSON body of Microsoft Graph `sendMail` for one message.
//!
//! Graph takes one body: the HTML when there is one, else the text. It only
//! accepts custom headers whose names start with `X-`, so our id travels as
//! `X-Mailbridge-Id`; our `Message-ID` goes as `internetMessageId`.

use serde::Serialize;

use crate::email::{Mailbox, OutgoingMessage};
use crate::transport::http;

/// The request body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SendMail<'a> {
    message: Message<'a>,
    save_to_sent_items: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    subject: &'a str,
    body: Body<'a>,
    from: Recipient<'a>,
    to_recipients: Vec<Recipient<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cc_recipients: Vec<Recipient<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bcc_recipients: Vec<Recipient<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reply_to: Vec<Recipient<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    internet_message_id: Option<String>,
    internet_message_headers: Vec<Header>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    content_type: &'static str,
    content: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Recipient<'a> {
    email_address: Address<'a>,
}

#[derive(Debug, Serialize)]
struct Address<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Header {
    name: &'static str,
    value: String,
}

impl<'a> SendMail<'a> {
    /// The body for `msg`; `with_message_id` sets `internetMessageId`.
    pub(super) fn new(msg: &'a OutgoingMessage, with_message_id: bool) -> Self {
        let body = match (&msg.html, &msg.text) {
            (Some(html), _) => Body {
                content_type: "HTML",
                content: html,
            },
            (None, text) => Body {
                content_type: "Text",
                content: text.as_deref().unwrap_or_default(),
            },
        };
        let list = |m: &'a [Mailbox]| m.iter().map(recipient).collect::<Vec<_>>();
        Self {
            message: Message {
                subject: &msg.subject,
                body,
                from: recipient(&msg.from),
                to_recipients: list(&msg.to),
                cc_recipients: list(&msg.cc),
                bcc_recipients: list(&msg.bcc),
                reply_to: msg.reply_to.iter().map(recipient).collect(),
                internet_message_id: with_message_id.then(|| http::message_id_header(msg)),
                internet_message_headers: vec![Header {
                    name: "X-Mailbridge-Id",
                    value: msg.id.to_string(),
                }],
            },
            // The mailbox is a sending account: copies in Sent Items only fill it.
            save_to_sent_items: false,
        }
    }
}

fn recipient(m: &Mailbox) -> Recipient<'_> {
    Recipient {
        email_address: Address {
            address: &m.email,
            name: m.name.as_deref(),
        },
    }
}
