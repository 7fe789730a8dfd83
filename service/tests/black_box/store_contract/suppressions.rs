//! The suppression list's entries written before addresses were kept with
//! their domain in Unicode: they still suppress, and they can be removed.
//! An address is one entry whatever the case it is written in.

use std::sync::Arc;

use mailbridge::queue::JobStore;
use mailbridge::suppression::{Reason, Suppression};
use time::OffsetDateTime;

pub async fn an_address_is_removed_in_every_form_it_is_stored_under(store: Arc<dyn JobStore>) {
    let entry = |email: &str| Suppression {
        tenant: "acme".into(),
        email: email.into(),
        reason: Reason::Bounce,
        detail: None,
        message_id: None,
        created_at: OffsetDateTime::now_utc(),
    };
    // An old entry keeps its domain in punycode; a newer one of the same
    // address is in Unicode. Both forms must go, or mail stays suppressed.
    for email in ["ada@xn--bcher-kva.example", "ada@bücher.example"] {
        assert!(store.suppress(&entry(email)).await.unwrap(), "{email}");
    }
    assert!(
        store
            .suppress(&entry("grace@xn--bcher-kva.example"))
            .await
            .unwrap()
    );
    assert!(
        store
            .unsuppress("acme", "ada@bücher.example")
            .await
            .unwrap()
    );
    let left: Vec<String> = store
        .suppressions(Some("acme"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.email)
        .collect();
    assert_eq!(
        left,
        ["grace@xn--bcher-kva.example"],
        "only the other address stays"
    );
    assert!(
        !store
            .unsuppress("acme", "ada@bücher.example")
            .await
            .unwrap(),
        "gone in every form: nothing more to remove"
    );
    // An entry only in its old form is removed by the address as the list now keys it.
    assert!(
        store
            .unsuppress("acme", "grace@bücher.example")
            .await
            .unwrap()
    );
    assert!(
        store
            .suppressions(Some("acme"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn an_address_is_listed_and_removed_in_any_case(store: Arc<dyn JobStore>) {
    let entry = |email: &str| Suppression {
        tenant: "acme".into(),
        email: email.into(),
        reason: Reason::Bounce,
        detail: None,
        message_id: None,
        created_at: OffsetDateTime::now_utc(),
    };
    assert!(store.suppress(&entry("Ada@Example.com")).await.unwrap());
    assert!(
        !store.suppress(&entry("ada@example.com")).await.unwrap(),
        "the same address"
    );
    let asked = ["ada@example.com".to_owned()];
    assert_eq!(
        store.suppressed_among("acme", &asked).await.unwrap(),
        asked,
        "listed in lower case"
    );
    assert!(store.unsuppress("acme", "ADA@EXAMPLE.COM").await.unwrap());
    assert!(
        store
            .suppressions(Some("acme"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// After the migration that lower-cased the list: the entries written in
/// several spellings before it (see the stores' own tests, which write
/// them) are one entry per address, the first listed kept, and each
/// suppresses its address for its tenant only.
pub async fn entries_listed_before_lower_casing_are_one_per_address(store: &dyn JobStore) {
    let listed: Vec<(String, String)> = (store.suppressions(Some("acme"), 10).await.unwrap())
        .into_iter()
        .map(|s| (s.email, s.reason.as_str().to_owned()))
        .collect();
    let pair = |email: &str, reason: &str| (email.to_owned(), reason.to_owned());
    assert_eq!(
        listed,
        [
            pair("linus@xn--bcher-kva.example", "bounce"),
            pair("grace@bücher.example", "complaint"),
            pair("ada@example.com", "bounce"),
        ],
        "one entry per address, the first listed kept"
    );
    let asked = [
        "ada@example.com".to_owned(),
        "grace@bücher.example".to_owned(),
        "linus@xn--bcher-kva.example".to_owned(),
    ];
    let mut found = store.suppressed_among("acme", &asked).await.unwrap();
    found.sort();
    assert_eq!(found, asked);
    assert_eq!(
        store.suppressed_among("other", &asked).await.unwrap(),
        ["ada@example.com"]
    );
}
