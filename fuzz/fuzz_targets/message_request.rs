//! The body of `POST /v1/messages` → `MessageRequest` → `validate()` →
//! content and message, composed as the API composes them. Never panics;
//! an accepted message has no CR, LF or NUL in any header field, and builds
//! into a message that is safe on the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbridge::api::compose;
use mailbridge::api::request::MessageRequest;
use mailbridge::email::Mailbox;
use mailbridge::tenant::Route;
use mailbridge::transport::mime::{AddressForm, to_eml};
use mailbridge_fuzz::{RENDERER, assert_header_fields_plain, assert_wire_safe};

fuzz_target!(|body: &[u8]| {
    let Ok(req) = serde_json::from_slice::<MessageRequest>(body) else {
        return;
    };
    if req.validate().is_err() {
        return;
    }
    // An admin caller: the request's tenant, else `default`.
    let tenant = req.tenant.clone().unwrap_or_else(|| "default".into());
    let route = Route {
        transport: "default".into(),
        from: Mailbox::new("mailbridge@localhost"),
        sender_domain: None,
        suppress: Default::default(),
        limits: Default::default(),
    };
    let Ok(from) = route.sender(req.from.as_ref()) else {
        return;
    };
    let Ok(content) = compose::content(&RENDERER, &tenant, &req) else {
        return;
    };
    let message = compose::message(uuid::Uuid::nil(), &tenant, from, req, content);
    assert_header_fields_plain(&message);
    for form in [AddressForm::AsGiven, AddressForm::Ascii] {
        match to_eml(&message, form) {
            Ok(eml) => assert_wire_safe(&message, &eml),
            Err(e) => panic!("an accepted message does not build ({form:?}): {e}"),
        }
    }
});
