//! Bearer tokens as `Authorization` brings them: `Verifier::verify` with the
//! shared secret (no realm keys) on any text.
//!
//! Checks: no panic, and a token is accepted only if it is an HS256 JWS
//! whose signature is the HMAC-SHA256 of its first two parts under the
//! secret, checked here apart from the verifier (no `alg: none`, no other
//! algorithm, no signature taken from elsewhere).
#![no_main]

use std::future::Future;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mailbridge::auth::Verifier;
use mailbridge::events::signature::hmac_sha256;

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef-0123456789";

/// One verifier for every input, as the service keeps one.
static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| Verifier::new(SECRET));

fuzz_target!(|token: &str| {
    let verify = std::pin::pin!(VERIFIER.verify(token, SystemTime::now()));
    // With a shared secret only, nothing is fetched: the answer is ready.
    let Poll::Ready(answer) = verify.poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("verifying a token waited for something");
    };
    if answer.is_ok() {
        assert!(signed_with_the_secret(token), "accepted: {token:?}");
    }
});

fn signed_with_the_secret(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(header) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    let alg = serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(str::to_owned));
    let expected = hmac_sha256(SECRET, &[token[..token.rfind('.').unwrap()].as_bytes()]);
    alg.as_deref() == Some("HS256") && URL_SAFE_NO_PAD.decode(signature).ok() == Some(expected)
}
