//! MIME building: `mime::to_eml` on any message never panics, and what it
//! builds is safe on the wire (see `mailbridge_fuzz::assert_wire_safe`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::mime::{AddressForm, to_eml};

/// Addresses that parse, so that most inputs get past the envelope.
const ADDRESSES: [&str; 7] = [
    "ada@example.com",
    "no-reply@acme.example",
    "a@münchen.de",
    "ü@example.com",
    "\"quoted local\"@example.com",
    "user+tag@sub.example.org",
    "x@[127.0.0.1]",
];

#[derive(Debug, Arbitrary)]
enum Address {
    Known(u8),
    Raw(String),
}

impl Address {
    fn text(self) -> String {
        match self {
            Address::Known(i) => ADDRESSES[usize::from(i) % ADDRESSES.len()].to_owned(),
            Address::Raw(text) => text,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Person {
    email: Address,
    name: Option<String>,
}

impl Person {
    fn mailbox(self) -> Mailbox {
        Mailbox {
            email: self.email.text(),
            name: self.name,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    message_id: Option<String>,
    from: Person,
    envelope_from: Option<Address>,
    reply_to: Option<Person>,
    to: Vec<Person>,
    cc: Vec<Person>,
    bcc: Vec<Person>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
}

fn people(list: Vec<Person>) -> Vec<Mailbox> {
    list.into_iter().take(8).map(Person::mailbox).collect()
}

fuzz_target!(|input: Input| {
    let message = OutgoingMessage {
        id: uuid::Uuid::nil(),
        tenant: "acme".into(),
        message_id: input
            .message_id
            .unwrap_or_else(|| "0198a3f2c0de7c4e8a1b2c3d4e5f6a7b@acme.example".into()),
        from: input.from.mailbox(),
        envelope_from: input.envelope_from.map(Address::text),
        reply_to: input.reply_to.map(Person::mailbox),
        to: people(input.to),
        cc: people(input.cc),
        bcc: people(input.bcc),
        subject: input.subject,
        text: input.text,
        html: input.html,
        tags: Vec::new(),
        metadata: Default::default(),
    };
    // As given (to servers with SMTPUTF8) and with punycode domains.
    for form in [AddressForm::AsGiven, AddressForm::Ascii] {
        if let Ok(eml) = to_eml(&message, form) {
            mailbridge_fuzz::assert_wire_safe(&message, &eml);
        }
    }
});
