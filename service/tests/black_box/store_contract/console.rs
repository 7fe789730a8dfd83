//! The console's reads, on every store: each outcome leaves one history row
//! under the same lease fence, recipients are found exactly or by prefix,
//! and the breakdown counts by tenant, transport and status.

use std::sync::Arc;
use std::time::Duration;

use mailbridge::email::Mailbox;
use mailbridge::queue::history::{RecipientMatch, Search};
use mailbridge::queue::{JobStore, Outcome, Status};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{claim, failed, job, retrying, sent, settle};

/// No rows.
const NONE: [Uuid; 0] = [];

/// Ids of a search's rows.
async fn found(store: &Arc<dyn JobStore>, search: Search) -> Vec<Uuid> {
    let search = Search {
        limit: search.limit.max(10),
        ..search
    };
    store
        .search(&search)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

pub async fn history_searches_and_breakdown(store: Arc<dyn JobStore>) {
    let t0 = OffsetDateTime::now_utc();
    // acme, to Ada and (cc) Bob: a transient failure, then a permanent one.
    let mut first = job("acme", None, t0);
    first.message.cc = vec![Mailbox::new("Bob@Example.com")];
    let ada = first.message.id;
    store.enqueue(first).await.unwrap();
    let attempt = claim(&store, t0, 1).await.remove(0);
    settle(&store, &attempt, retrying("451 4.3.0 try later", t0), t0).await;
    let attempt = claim(&store, t0, 1).await.remove(0);
    settle(&store, &attempt, failed("550 5.1.1 no such user"), t0).await;

    // globex, to Adam: the first attempt loses its lease; its late answer leaves no trace.
    let mut second = job("globex", None, t0);
    second.message.to = vec![Mailbox::new("adam@example.com")];
    let adam = second.message.id;
    store.enqueue(second).await.unwrap();
    let lost = claim(&store, t0, 1).await.remove(0);
    let later = t0 + Duration::from_secs(121);
    let won = claim(&store, later, 1).await.remove(0);
    assert!(
        !store
            .record(&lost.lease, &failed("late"), later)
            .await
            .unwrap()
    );
    settle(&store, &won, sent(Some("provider-1")), later).await;

    // acme, to Carl through m365: given back uncounted (a rate limit): no history row.
    let mut third = job("acme", None, t0);
    third.message.to = vec![Mailbox::new("carl@example.org")];
    third.transport = "m365".into();
    let carl = third.message.id;
    store.enqueue(third).await.unwrap();
    let held = claim(&store, later, 1).await.remove(0);
    let back = Outcome::Released {
        next_attempt_at: later + Duration::from_secs(3600),
    };
    settle(&store, &held, back, later).await;

    let history = store.attempts(ada).await.unwrap();
    let seen: Vec<(u32, &str, Option<&str>)> = history
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.answer.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "retrying", Some("451 4.3.0 try later")),
            (2, "failed", Some("550 5.1.1 no such user")),
        ]
    );
    assert!(history.iter().all(|a| a.transport == "default"));
    let history = store.attempts(adam).await.unwrap();
    assert_eq!(history.len(), 1, "only the attempt that held the lease");
    assert_eq!(
        (history[0].attempt, history[0].outcome.as_str()),
        (2, "sent")
    );
    assert_eq!(history[0].answer.as_deref(), Some("provider-1"));
    assert!(store.attempts(carl).await.unwrap().is_empty());

    let exact = |a: &str| Some(RecipientMatch::Exact(a.into()));
    let prefix = |p: &str| Some(RecipientMatch::Prefix(p.into()));
    let by = |recipient| Search {
        recipient,
        ..Search::default()
    };
    assert_eq!(found(&store, by(exact("bob@example.com"))).await, [ada]);
    assert_eq!(found(&store, by(exact("ada@example"))).await, NONE);
    assert_eq!(found(&store, by(prefix("ada"))).await, [adam, ada]);
    assert_eq!(found(&store, by(prefix("a%"))).await, NONE, "no wildcard");
    let acme = Search {
        tenants: Some(vec!["acme".into()]),
        ..by(prefix("ada"))
    };
    assert_eq!(found(&store, acme).await, [ada]);
    let globex = Search {
        tenants: Some(vec!["globex".into()]),
        ..Search::default()
    };
    assert_eq!(found(&store, globex).await, [adam]);
    let both = Search {
        tenants: Some(vec!["acme".into(), "globex".into()]),
        ..by(prefix("ada"))
    };
    assert_eq!(found(&store, both).await, [adam, ada]);
    let acme_and_unknown = Search {
        tenants: Some(vec!["acme".into(), "initech".into()]),
        ..Search::default()
    };
    assert_eq!(found(&store, acme_and_unknown).await, [carl, ada]);
    let none = Search {
        tenants: Some(vec![]),
        ..Search::default()
    };
    assert_eq!(found(&store, none).await, NONE, "no tenant, nothing");
    let dead = Search {
        status: Some(Status::Failed),
        ..Search::default()
    };
    assert_eq!(found(&store, dead).await, [ada]);
    let future = Search {
        since: Some(t0 + Duration::from_secs(3600)),
        ..Search::default()
    };
    assert_eq!(found(&store, future).await, NONE);
    let through = |transport: &str| Search {
        transport: Some(transport.into()),
        ..Search::default()
    };
    assert_eq!(found(&store, through("m365")).await, [carl]);
    assert_eq!(found(&store, through("default")).await, [adam, ada]);
    assert_eq!(found(&store, through("webhook")).await, NONE);
    let page = Search {
        limit: 1,
        ..Search::default()
    };
    let newest = store.search(&page).await.unwrap();
    assert_eq!(newest.iter().map(|r| r.id).collect::<Vec<_>>(), [carl]);
    let next = Search {
        before: Some(carl),
        limit: 1,
        ..Search::default()
    };
    let older = store.search(&next).await.unwrap();
    assert_eq!(older.iter().map(|r| r.id).collect::<Vec<_>>(), [adam]);

    let hour_ago = t0 - Duration::from_secs(3600);
    let all = store.breakdown(None, hour_ago).await.unwrap();
    let mut counts = all.counts.clone();
    counts.sort_by(|a, b| (&a.0, a.2.as_str()).cmp(&(&b.0, b.2.as_str())));
    let d = "default".to_owned();
    assert_eq!(
        counts,
        [
            ("acme".to_owned(), d.clone(), Status::Failed, 1),
            ("acme".to_owned(), "m365".to_owned(), Status::Retrying, 1),
            ("globex".to_owned(), d.clone(), Status::Sent, 1),
        ]
    );
    assert_eq!(all.sent_since, 1);
    assert!(all.oldest_unsent.is_some(), "Carl's message waits");
    let globex = store
        .breakdown(Some(&["globex".to_owned()]), hour_ago)
        .await
        .unwrap();
    assert_eq!(globex.counts, [("globex".to_owned(), d, Status::Sent, 1)]);
    assert_eq!(globex.oldest_unsent, None);

    let health = store
        .transport_health(&["default".to_owned()])
        .await
        .unwrap();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].transport, "default");
    assert!(health[0].last_sent_at.is_some());
    assert_eq!(
        health[0].last_error.as_deref(),
        Some("550 5.1.1 no such user")
    );
    assert_eq!(health[0].consecutive_failures, 0, "a delivery came after");

    assert!(store.delete(ada).await.unwrap());
    assert!(
        store.attempts(ada).await.unwrap().is_empty(),
        "deleted with its message"
    );
}
