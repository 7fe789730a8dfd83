//! The token rules, each with the token that breaks it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::executor::block_on;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// A token with exactly this header and these claims, signed with `SECRET`.
fn token(header: &str, claims: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = EncodingKey::from_secret(SECRET);
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{signing_input}.{signature}")
}

fn hs256(claims: &str) -> String {
    token(r#"{"alg":"HS256","typ":"JWT"}"#, claims)
}

fn verify(token: &str) -> Result<Caller, TokenError> {
    block_on(Verifier::new(SECRET).verify(token, now()))
}

#[test]
fn accepts_a_fresh_token_and_reads_claims() {
    let v = Verifier::new(SECRET);
    let minted = mint(SECRET, Some("acme"), false, 60).unwrap();
    let caller = block_on(v.verify(&minted, SystemTime::now())).unwrap();
    assert_eq!(
        caller,
        Caller {
            tenant: "acme".into(),
            admin: false
        }
    );
    let admin = mint(SECRET, None, true, 60).unwrap();
    let admin = block_on(v.verify(&admin, SystemTime::now())).unwrap();
    assert_eq!(admin.tenant, "default");
    assert!(admin.admin);
}

#[test]
fn times_are_honoured_with_thirty_seconds_of_skew() {
    let claims = |extra: &str| {
        format!(
            r#"{{"aud":"mailbridge","exp":{},"iat":{NOW}{extra}}}"#,
            NOW + 60
        )
    };
    assert!(verify(&hs256(&claims(""))).is_ok());
    let nbf_ahead = format!(r#","nbf":{}"#, NOW + 120);
    assert_eq!(
        verify(&hs256(&claims(&nbf_ahead))),
        Err(TokenError::NotYetValid)
    );
    let nbf_skew = format!(r#","nbf":{}"#, NOW + 20);
    assert!(verify(&hs256(&claims(&nbf_skew))).is_ok());
    let iat_ahead = format!(
        r#"{{"aud":"mailbridge","exp":{},"iat":{}}}"#,
        NOW + 200,
        NOW + 120
    );
    assert_eq!(verify(&hs256(&iat_ahead)), Err(TokenError::IssuedInFuture));
    let iat_skew = format!(
        r#"{{"aud":"mailbridge","exp":{},"iat":{}}}"#,
        NOW + 60,
        NOW + 10
    );
    assert!(verify(&hs256(&iat_skew)).is_ok());
    let expired = format!(
        r#"{{"aud":"mailbridge","exp":{},"iat":{}}}"#,
        NOW - 120,
        NOW - 180
    );
    assert_eq!(verify(&hs256(&expired)), Err(TokenError::Expired));
    let long = format!(r#"{{"aud":"mailbridge","exp":{},"iat":{NOW}}}"#, NOW + 3600);
    assert_eq!(verify(&hs256(&long)), Err(TokenError::Lifetime));
    let long_without_iat = format!(r#"{{"aud":"mailbridge","exp":{}}}"#, NOW + 3600);
    assert_eq!(verify(&hs256(&long_without_iat)), Err(TokenError::Lifetime));
    assert_eq!(
        verify(&hs256(r#"{"aud":"mailbridge"}"#)),
        Err(TokenError::NoExpiry)
    );
}

#[test]
fn refuses_crit_headers_and_other_algorithms() {
    let claims = format!(r#"{{"aud":"mailbridge","exp":{}}}"#, NOW + 60);
    let crit = token(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &claims);
    assert_eq!(verify(&crit), Err(TokenError::Critical));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(&claims)
    );
    assert_eq!(verify(&none), Err(TokenError::Algorithm));
    let hs512 = token(r#"{"alg":"HS512"}"#, &claims);
    assert_eq!(verify(&hs512), Err(TokenError::Algorithm));
    let odd = token(r#"{"alg":"XY999"}"#, &claims);
    assert_eq!(verify(&odd), Err(TokenError::Algorithm));
}

#[test]
fn names_the_rule_not_the_parser() {
    let claims = format!(r#"{{"aud":"mailbridge","exp":{}}}"#, NOW + 60);
    let foreign = {
        let v = Verifier::new(b"another-secret-another-secret-xx");
        block_on(v.verify(&hs256(&claims), now()))
    };
    assert_eq!(foreign, Err(TokenError::Signature));
    let cases = [
        ("not-a-jwt", TokenError::Malformed),
        ("e30.e30.", TokenError::Algorithm),
        ("!!!.e30.x", TokenError::Malformed),
        (
            &*hs256(r#"{"aud":"other","exp":1800000060}"#),
            TokenError::Audience,
        ),
        (&*hs256(r#"{"exp":1800000060}"#), TokenError::Audience),
        (
            &*hs256(r#"{"aud":"mailbridge","exp":"soon"}"#),
            TokenError::Claims,
        ),
        (&*hs256("[1,2]"), TokenError::Claims),
    ];
    for (token, want) in cases {
        let got = verify(token);
        assert_eq!(got, Err(want.clone()), "{token}");
        let text = want.to_string();
        for internal in ["JSON", "variant", "Base64", "expected"] {
            assert!(!text.contains(internal), "{text}");
        }
    }
}

#[test]
fn tenant_rules() {
    let caller = Caller {
        tenant: "acme".into(),
        admin: false,
    };
    assert_eq!(caller.tenant_for(None).unwrap(), "acme");
    assert_eq!(caller.tenant_for(Some("acme")).unwrap(), "acme");
    assert!(caller.tenant_for(Some("other")).is_err());
    assert!(caller.require_admin().is_err());
    let admin = Caller {
        tenant: "default".into(),
        admin: true,
    };
    assert_eq!(admin.tenant_for(Some("other")).unwrap(), "other");
    assert!(admin.require_admin().is_ok());
}
