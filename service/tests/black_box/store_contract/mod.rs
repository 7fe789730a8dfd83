//! What every queue store must do, whatever its database: idempotency
//! window, concurrent enqueues, leases, outcomes, listing, requeueing and
//! retention. Each check takes a fresh, empty store.
#![allow(dead_code)]

pub mod console;
pub mod events;
pub mod groups;
pub mod suppressions;

use std::sync::Arc;
use std::time::Duration;

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::queue::sealing::Keyring;
use mailbridge::queue::{
    ClaimedJob, Enqueued, JobStore, Lane, ListFilter, NewJob, Origin, Outcome, Pruned, Status,
};
use time::OffsetDateTime;
use uuid::Uuid;

pub fn message(tenant: &str) -> OutgoingMessage {
    OutgoingMessage::plain(
        tenant,
        Mailbox::new("no-reply@acme.example"),
        Mailbox::new("ada@example.com"),
        "Hi",
        "Hello",
    )
}

pub fn job(tenant: &str, key: Option<&str>, now: OffsetDateTime) -> NewJob {
    NewJob {
        message: message(tenant),
        idempotency_key: key.map(str::to_owned),
        transport: "default".into(),
        now,
        lease: None,
        origin: Origin::default(),
        limits: Vec::new(),
    }
}

/// Records `outcome` through `job`'s lease, which must still hold.
async fn settle(
    store: &Arc<dyn JobStore>,
    job: &ClaimedJob,
    outcome: Outcome,
    now: OffsetDateTime,
) {
    assert!(
        store.record(&job.lease, &outcome, now).await.unwrap(),
        "the lease holds"
    );
}

fn sent(provider_message_id: Option<&str>) -> Outcome {
    Outcome::Sent {
        provider_message_id: provider_message_id.map(str::to_owned),
    }
}

fn failed(error: &str) -> Outcome {
    Outcome::Failed {
        error: error.to_owned(),
    }
}

fn retrying(error: &str, next_attempt_at: OffsetDateTime) -> Outcome {
    Outcome::Retrying {
        error: error.to_owned(),
        next_attempt_at,
    }
}

/// The key material of [`keyring`]'s keys `new` and `old`.
pub const KEY_MATERIAL: [&str; 2] = [
    "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
];

/// A replica's `MAILBRIDGE_ENCRYPTION_KEYS` holding `ids` (`new`, `old`).
pub fn keyring(ids: &[&str]) -> Option<Arc<Keyring>> {
    let key = |id: &str| match id {
        "new" => format!("new:{}", KEY_MATERIAL[0]),
        _ => format!("old:{}", KEY_MATERIAL[1]),
    };
    let text: Vec<String> = ids.iter().map(|id| key(id)).collect();
    (!ids.is_empty()).then(|| Arc::new(Keyring::parse(&text.join(",")).unwrap()))
}

/// The retry age claims are given: the default's, a day.
pub const RETRY_AGE: Duration = Duration::from_secs(24 * 3600);

/// Claims up to `limit` messages due at `now` under a one-minute lease.
pub async fn claim<S: JobStore + ?Sized>(
    store: &Arc<S>,
    now: OffsetDateTime,
    limit: u32,
) -> Vec<ClaimedJob> {
    store
        .claim(
            now,
            Duration::from_secs(60),
            Lane::Messages,
            limit,
            RETRY_AGE,
        )
        .await
        .unwrap()
}

pub async fn idempotency_keys_hold_for_24_hours_per_tenant(store: Arc<dyn JobStore>) {
    let t0 = OffsetDateTime::now_utc() - Duration::from_secs(25 * 3600);
    let Enqueued::Created(first) = store.enqueue(job("acme", Some("k1"), t0)).await.unwrap() else {
        panic!()
    };
    let soon = t0 + Duration::from_secs(3600);
    assert_eq!(
        store.enqueue(job("acme", Some("k1"), soon)).await.unwrap(),
        Enqueued::Duplicate(first)
    );
    assert!(matches!(
        store
            .enqueue(job("globex", Some("k1"), soon))
            .await
            .unwrap(),
        Enqueued::Created(_)
    ));
    let later = t0 + Duration::from_secs(24 * 3600 + 60);
    let again = store.enqueue(job("acme", Some("k1"), later)).await.unwrap();
    assert!(
        matches!(again, Enqueued::Created(id) if id != first),
        "an expired key may be used again: {again:?}"
    );
}

pub async fn concurrent_enqueues_are_all_committed(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        // Every tenth request repeats the key of the one before it.
        let key = format!("key-{}", i - i % 10 / 9);
        tasks.push(tokio::spawn(async move {
            store.enqueue(job("acme", Some(&key), now)).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut duplicates = 0;
    for t in tasks {
        match t.await.unwrap() {
            Enqueued::Created(_) => created += 1,
            Enqueued::Duplicate(_) => duplicates += 1,
            other => panic!("neither stored nor a repeat: {other:?}"),
        }
    }
    assert_eq!(created + duplicates, 300);
    assert_eq!(
        duplicates, 30,
        "each repeated key inside a commit group is found"
    );
    assert_eq!(store.pending_count("acme").await.unwrap(), 270);
}

/// Messages handed over from plain threads (as the rendering threads do),
/// more at once than the writers' inbox holds, are each answered as
/// `enqueue` answers; a ticket dropped unused answers an error.
pub async fn messages_handed_over_from_threads_are_answered_as_enqueued(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let (threads, each) = (4, 700);
    let mut receipts = Vec::new();
    let mut handing = Vec::new();
    for t in 0..threads {
        let mut tickets = Vec::new();
        for i in 0..each {
            let (ticket, receipt) = mailbridge::queue::ticket();
            receipts.push(receipt);
            // Every tenth message repeats the key of the one before it.
            let n = t * each + i;
            tickets.push((ticket, format!("key-{}", n - n % 10 / 9)));
        }
        let store = store.clone();
        handing.push(std::thread::spawn(move || {
            for (ticket, key) in tickets {
                store.hand_over(job("acme", Some(&key), now), ticket);
            }
        }));
    }
    let mut created = 0;
    let mut duplicates = 0;
    for receipt in receipts {
        match store.handed_over("acme", "default", receipt).await.unwrap() {
            Enqueued::Created(_) => created += 1,
            Enqueued::Duplicate(_) => duplicates += 1,
            other => panic!("neither stored nor a repeat: {other:?}"),
        }
    }
    for thread in handing {
        thread.join().unwrap();
    }
    assert_eq!((created, duplicates), (2520, 280));
    assert_eq!(store.pending_count("acme").await.unwrap(), 2520);
    let (ticket, receipt) = mailbridge::queue::ticket();
    drop(ticket);
    let error = store.handed_over("acme", "default", receipt).await;
    assert!(error.is_err(), "{error:?}");
}

pub async fn leases_expire_and_the_message_is_claimed_again(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    store.enqueue(job("acme", None, now)).await.unwrap();
    let claimed = claim(&store, now, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt(), 1);
    assert!(claim(&store, now, 10).await.is_empty(), "held by the lease");
    let ended = now + Duration::from_secs(61);
    assert!(
        claim(&store, ended, 10).await.is_empty(),
        "an ended lease is left to its attempt's outcome for one more lease length"
    );
    let after = now + Duration::from_secs(121);
    let again = claim(&store, after, 10).await;
    assert_eq!(again.len(), 1, "an abandoned lease is claimable");
    assert_eq!(again[0].attempt(), 2);
    assert_eq!(
        again[0].message.message_id, claimed[0].message.message_id,
        "same Message-ID"
    );
}

/// A claim takes the oldest due messages whatever their kind (new,
/// retrying, or abandoned by an attempt that never ended), and nothing that
/// is not due yet.
pub async fn claims_take_the_oldest_due_of_every_kind(store: Arc<dyn JobStore>) {
    // Claims never run before the clock: every time here is ahead of it.
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1000);
    let at = |seconds: i64| now + time::Duration::seconds(seconds);
    let enqueue = |t: OffsetDateTime| {
        let store = store.clone();
        async move {
            let Enqueued::Created(id) = store.enqueue(job("acme", None, t)).await.unwrap() else {
                panic!("a new message is stored unclaimed")
            };
            id
        }
    };
    // Abandoned: due 300 s ago, claimed 130 s ago under a one-minute
    // lease, no outcome since.
    let abandoned = enqueue(at(-300)).await;
    assert_eq!(claim(&store, at(-130), 10).await.len(), 1);
    // Retrying: its first attempt failed, due again 20 s ago.
    let retrying = enqueue(at(-30)).await;
    let first = claim(&store, at(-30), 10).await;
    assert_eq!(first.len(), 1);
    settle(
        &store,
        &first[0],
        self::retrying("451 later", at(-20)),
        at(-30),
    )
    .await;
    let queued_old = enqueue(at(-100)).await;
    let queued_new = enqueue(at(-10)).await;
    let queued_now = enqueue(now).await;
    let _not_yet = enqueue(at(100)).await;

    let ids = |jobs: Vec<ClaimedJob>| {
        let mut ids: Vec<Uuid> = jobs.iter().map(|j| j.message.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(claim(&store, now, 3).await),
        sorted(vec![abandoned, queued_old, retrying]),
        "the three oldest due, one of each kind"
    );
    assert_eq!(
        ids(claim(&store, now, 10).await),
        sorted(vec![queued_new, queued_now]),
        "then the rest that is due, and not the message due in 100 s"
    );
    assert!(claim(&store, now, 10).await.is_empty());
}

/// Messages and notices (rows of the transports `webhook` and `keycloak`)
/// are claimed apart: a claim takes due rows of its own lane only, the
/// oldest first and at most as many as asked, new, retrying and abandoned
/// alike, however many due rows of the other lane are older.
pub async fn each_lane_claims_only_its_own_rows(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1000);
    let at = |seconds: i64| now + time::Duration::seconds(seconds);
    let enqueue = |transport: &'static str, t: OffsetDateTime| {
        let store = store.clone();
        async move {
            let mut new = job("acme", None, t);
            new.transport = transport.into();
            let Enqueued::Created(id) = store.enqueue(new).await.unwrap() else {
                panic!("a new row is stored unclaimed")
            };
            id
        }
    };
    let lane = |lane: Lane, t: OffsetDateTime, limit: u32| {
        let store = store.clone();
        async move {
            let jobs = store
                .claim(t, Duration::from_secs(60), lane, limit, RETRY_AGE)
                .await
                .unwrap();
            let mut ids: Vec<Uuid> = jobs.iter().map(|j| j.message.id).collect();
            ids.sort();
            (ids, jobs)
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    let webhook_old = enqueue("webhook", at(-300)).await;
    let feedback = enqueue("keycloak", at(-200)).await;
    let email = enqueue("default", at(-100)).await;
    let relay = enqueue("relay", at(-50)).await;
    let webhook_new = enqueue("webhook", at(-10)).await;

    let (messages, _) = lane(Lane::Messages, now, 10).await;
    assert_eq!(messages, sorted(vec![email, relay]), "no notice");
    let (notices, _) = lane(Lane::Notices, now, 2).await;
    assert_eq!(
        notices,
        sorted(vec![webhook_old, feedback]),
        "the two oldest"
    );
    let (rest, jobs) = lane(Lane::Notices, now, 10).await;
    assert_eq!(rest, vec![webhook_new]);
    settle(&store, &jobs[0], retrying("503", at(20)), now).await;
    assert!(lane(Lane::Messages, now, 10).await.0.is_empty());
    assert!(lane(Lane::Notices, now, 10).await.0.is_empty());

    // Abandoned leases and retries come back in their own lane only.
    let later = at(121);
    let (messages, jobs) = lane(Lane::Messages, later, 10).await;
    assert_eq!(messages, sorted(vec![email, relay]));
    assert!(jobs.iter().all(|j| j.attempt() == 2));
    let (notices, jobs) = lane(Lane::Notices, later, 10).await;
    assert_eq!(notices, sorted(vec![webhook_old, feedback, webhook_new]));
    assert!(jobs.iter().all(|j| j.attempt() == 2));
}

/// Notices are claimed fairly across destinations (a tenant's webhook
/// receiver, a tenant's Keycloak): one destination has at most
/// `NOTICES_PER_DESTINATION` notices in `sending` at once, however many of
/// its rows are due and older than the others', and each further claim
/// takes its next due rows only as its own attempts end.
pub async fn notices_are_claimed_fairly_across_destinations(store: Arc<dyn JobStore>) {
    let cap = mailbridge::queue::lane::NOTICES_PER_DESTINATION as usize;
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1000);
    let at = |seconds: i64| now + time::Duration::seconds(seconds);
    let enqueue = |tenant: &'static str, transport: &'static str, t: OffsetDateTime| {
        let store = store.clone();
        async move {
            let mut new = job(tenant, None, t);
            new.transport = transport.into();
            let Enqueued::Created(id) = store.enqueue(new).await.unwrap() else {
                panic!("a new row is stored unclaimed")
            };
            id
        }
    };
    let notices = |t: OffsetDateTime, limit: u32| {
        let store = store.clone();
        async move {
            store
                .claim(t, Duration::from_secs(60), Lane::Notices, limit, RETRY_AGE)
                .await
                .unwrap()
        }
    };
    // Tenant `slow` has three times the cap of webhooks due, all older than
    // anyone else's; one of them has failed once and is due again.
    let mut slow = Vec::new();
    for n in 0..3 * cap as i64 {
        slow.push(enqueue("slow", "webhook", at(-600 + n)).await);
    }
    let first = notices(at(-600), 1).await;
    settle(&store, &first[0], retrying("timed out", at(-500)), at(-600)).await;
    let slow_feedback = enqueue("slow", "keycloak", at(-20)).await;
    let acme = enqueue("acme", "webhook", at(-10)).await;
    let zeta = enqueue("zeta", "keycloak", at(-5)).await;
    let _not_yet = enqueue("zeta", "keycloak", at(200)).await;
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    let ids = |jobs: &[ClaimedJob]| sorted(jobs.iter().map(|j| j.message.id).collect());

    // `slow`'s oldest due webhooks (the retried one is due later than
    // the others), and every other destination's due notices.
    let claimed = notices(now, 64).await;
    let mut expected = slow[1..=cap].to_vec();
    expected.extend([slow_feedback, acme, zeta]);
    assert_eq!(ids(&claimed), sorted(expected));
    assert!(
        notices(now, 64).await.is_empty(),
        "`slow`'s webhooks are at the cap"
    );

    // As one of its attempts ends, the destination takes its next due row.
    let done = claimed.iter().find(|j| j.message.id == slow[1]).unwrap();
    settle(&store, done, sent(None), now).await;
    assert_eq!(ids(&notices(now, 64).await), vec![slow[cap + 1]]);
    // Abandoned leases are claimed again whatever their destination's room.
    let later = at(121);
    assert_eq!(notices(later, 64).await.len(), cap + 3);
}

/// As notice slots free up, a destination with fewer notices in `sending`
/// is served before one with more, whatever their ages: receivers that
/// never answer, holding every slot between them, lose each slot that
/// frees to a destination waiting behind them.
pub async fn the_least_busy_destination_takes_a_freed_notice_slot(store: Arc<dyn JobStore>) {
    let cap = mailbridge::queue::lane::NOTICES_PER_DESTINATION as usize;
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1000);
    let at = |seconds: i64| now + time::Duration::seconds(seconds);
    let enqueue = |tenant: &'static str, t: OffsetDateTime| {
        let store = store.clone();
        async move {
            let mut new = job(tenant, None, t);
            new.transport = "webhook".into();
            let Enqueued::Created(id) = store.enqueue(new).await.unwrap() else {
                panic!("a new row is stored unclaimed")
            };
            id
        }
    };
    let notices = |limit: u32| {
        let store = store.clone();
        async move {
            (store.claim(
                now,
                Duration::from_secs(60),
                Lane::Notices,
                limit,
                RETRY_AGE,
            ))
            .await
            .unwrap()
        }
    };
    // `hung` has a long backlog, older than anything else; all but one of
    // its places are taken by attempts that do not end.
    let mut hung = Vec::new();
    for n in 0..2 * cap as i64 {
        hung.push(enqueue("hung", at(-600 + n)).await);
    }
    assert_eq!(notices(cap as u32 - 1).await.len(), cap - 1);
    let newer = enqueue("acme", at(-10)).await;
    let freed = notices(1).await;
    assert_eq!(
        freed.iter().map(|j| j.message.id).collect::<Vec<_>>(),
        vec![newer],
        "the destination with nothing in flight takes the one free slot"
    );
    // With nobody else waiting, `hung` takes its last place.
    assert_eq!(notices(1).await[0].message.id, hung[cap - 1]);
}

pub async fn outcomes_listing_and_requeue(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let claimed = claim(&store, now, 10).await;
    let ids: Vec<Uuid> = claimed.iter().map(|j| j.message.id).collect();
    settle(&store, &claimed[0], sent(Some("prov-1")), now).await;
    let next = now + Duration::from_secs(30);
    settle(&store, &claimed[1], retrying("451 try later", next), now).await;
    settle(&store, &claimed[2], failed("550 no such user"), now).await;

    let sent = store.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (sent.status, sent.provider_message_id.as_deref()),
        (Status::Sent, Some("prov-1"))
    );
    assert!(sent.sent_at.is_some());
    let retrying = store.get(ids[1]).await.unwrap().unwrap();
    assert_eq!(retrying.status, Status::Retrying);
    assert_eq!(retrying.last_error.as_deref(), Some("451 try later"));
    assert!(retrying.next_attempt_at.is_some());
    assert!(claim(&store, now, 10).await.is_empty(), "not due yet");
    assert_eq!(claim(&store, next, 10).await.len(), 1);

    let failed = store
        .list(&ListFilter {
            status: Some(Status::Failed),
            tenant: Some("acme".into()),
            limit: 10,
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, ids[2]);
    assert!(
        !store.requeue_failed(ids[0], now).await.unwrap(),
        "only failed messages"
    );
    assert!(store.requeue_failed(ids[2], now).await.unwrap());
    assert_eq!(
        store.get(ids[2]).await.unwrap().unwrap().status,
        Status::Queued
    );
}

pub async fn retention_drops_old_sent_bodies_but_keeps_their_status(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    for _ in 0..2 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let claimed = claim(&store, now, 10).await;
    let old = claimed[0].message.id;
    let dead = claimed[1].message.id;
    let long_ago = now - Duration::from_secs(8 * 24 * 3600);
    settle(&store, &claimed[0], sent(None), long_ago).await;
    settle(&store, &claimed[1], failed("550 no"), long_ago).await;
    let purged = purge(&store, now - Duration::from_secs(7 * 24 * 3600)).await;
    assert_eq!(purged, 1, "only the sent message loses its body");
    assert_eq!(
        store.get(old).await.unwrap().unwrap().status,
        Status::Sent,
        "the status row stays"
    );
    assert!(
        store.requeue_failed(dead, now).await.unwrap(),
        "a failed message keeps its body and can be retried"
    );
    assert!(store.delete(old).await.unwrap());
    assert!(store.get(old).await.unwrap().is_none());
}

/// A message stored for suppressed recipients only is never sent and
/// cannot be retried: its body (reset links) goes at retention like a sent
/// one's, counted from when it was suppressed. A failed one keeps its body
/// for an admin's retry.
pub async fn retention_drops_the_bodies_of_suppressed_messages_too(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let long_ago = now - Duration::from_secs(8 * 24 * 3600);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut new = job("acme", None, long_ago);
        new.lease = Some(Duration::from_secs(60));
        let Enqueued::Claimed(lease) = store.enqueue(new).await.unwrap() else {
            panic!("stored claimed");
        };
        ids.push(lease.id);
        let outcome = Outcome::Suppressed {
            reason: "every recipient is suppressed".into(),
        };
        // The last one suppressed only now: within its retention.
        let at = if ids.len() == 3 { now } else { long_ago };
        settle_lease(&store, &lease, outcome, at).await;
    }
    let dead = store_one(&store, long_ago).await;
    let job = claim(&store, long_ago, 1).await.remove(0);
    settle(&store, &job, failed("550 no"), long_ago).await;
    let purged = purge(&store, now - Duration::from_secs(7 * 24 * 3600)).await;
    assert_eq!(purged, 2, "the two suppressed past their retention");
    assert_eq!(
        store.get(ids[0]).await.unwrap().unwrap().status,
        Status::Suppressed,
        "the status row stays"
    );
    assert!(
        store.requeue_failed(dead, now).await.unwrap(),
        "a failed message keeps its body and can be retried"
    );
}

/// Retention's steps, two bodies at a time, to the end; the bodies dropped.
async fn purge(store: &Arc<dyn JobStore>, older_than: OffsetDateTime) -> u64 {
    let (mut after, mut purged) = (None, 0);
    loop {
        let step = store
            .purge_bodies(older_than, after.as_deref(), 2)
            .await
            .unwrap();
        assert!(step.deleted <= 2, "{step:?}");
        purged += step.deleted;
        match step.next {
            Some(next) => after = Some(next),
            None => return purged,
        }
    }
}

/// Many workers claiming at once, through one store or several (replicas on
/// one database): every message is claimed exactly once.
pub async fn concurrent_claims_never_overlap(stores: Vec<Arc<dyn JobStore>>) {
    let now = OffsetDateTime::now_utc();
    let mut expected = std::collections::HashSet::new();
    for _ in 0..200 {
        match stores[0].enqueue(job("acme", None, now)).await.unwrap() {
            Enqueued::Created(id) => expected.insert(id),
            other => panic!("{other:?}"),
        };
    }
    let mut workers = Vec::new();
    for i in 0..8 {
        let store = stores[i % stores.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = claim(&store, now, 7).await;
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|j| j.message.id));
            }
        }));
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for w in workers {
        for id in w.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "{id} was claimed twice");
        }
    }
    assert_eq!(total, 200);
    assert_eq!(seen, expected);
    for store in &stores {
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.queued, stats.sending), (0, 200));
    }
}

/// The figures behind `/metrics`: counts per unfinished status, and the
/// oldest message not yet sent (failed ones do not count as waiting).
pub async fn queue_figures(store: Arc<dyn JobStore>) {
    let empty = store.stats().await.unwrap();
    assert_eq!(empty, Default::default());
    let now = OffsetDateTime::now_utc();
    let old = now - Duration::from_secs(3600);
    let older = now - Duration::from_secs(7200);
    store.enqueue(job("acme", None, older)).await.unwrap();
    store.enqueue(job("acme", None, old)).await.unwrap();
    for _ in 0..3 {
        store.enqueue(job("globex", None, now)).await.unwrap();
    }
    // The two oldest are claimed first: one fails for good, one will be retried.
    let claimed = claim(&store, now, 2).await;
    assert_eq!(claimed.len(), 2);
    let second = claimed[1].message.id;
    settle(&store, &claimed[0], failed("550 no"), now).await;
    let later = now + Duration::from_secs(60);
    settle(&store, &claimed[1], retrying("451 later", later), now).await;
    claim(&store, now, 1).await;
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.sending, stats.retrying, stats.failed),
        (2, 1, 1, 1)
    );
    let oldest = stats.oldest_unsent.expect("something waits");
    let second_created = store.get(second).await.unwrap().unwrap().created_at;
    assert_eq!(oldest, second_created, "the failed one does not count");
    assert!((oldest - old).abs() < time::Duration::milliseconds(1));
    assert_eq!(store.pending_count("globex").await.unwrap(), 3);
}

/// An attempt whose lease expired and was claimed again records nothing,
/// cannot renew, and never overwrites the newer attempt's outcome.
pub async fn outcomes_are_fenced_by_the_lease(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    store.enqueue(job("acme", None, now)).await.unwrap();
    let first = claim(&store, now, 1).await.remove(0);
    let later = now + Duration::from_secs(121);
    let second = claim(&store, later, 1).await.remove(0);
    assert_eq!((first.attempt(), second.attempt()), (1, 2));
    let id = first.message.id;

    assert!(
        !store.renew(&first.lease, later).await.unwrap(),
        "the first attempt lost its lease"
    );
    settle(&store, &second, sent(Some("250 ok")), later).await;
    let late_failure = failed("550 late answer of the first attempt");
    assert!(
        !store
            .record(&first.lease, &late_failure, later)
            .await
            .unwrap(),
        "a lost lease records nothing"
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Sent, "the delivery stands");
    assert_eq!(record.provider_message_id.as_deref(), Some("250 ok"));
    assert!(
        !store
            .record(&second.lease, &failed("twice"), later)
            .await
            .unwrap(),
        "an outcome is recorded once"
    );
}

/// A renewed lease is not claimable when the old one would have expired; a
/// released one gives the attempt back, and the next claim fences it out.
pub async fn renewal_and_release(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    store.enqueue(job("acme", None, now)).await.unwrap();
    let held = claim(&store, now, 1).await.remove(0);
    let renewed_until = now + Duration::from_secs(180);
    assert!(store.renew(&held.lease, renewed_until).await.unwrap());
    let after_first_lease = now + Duration::from_secs(90);
    assert!(
        claim(&store, after_first_lease, 1).await.is_empty(),
        "the renewal holds"
    );
    let back = Outcome::Released {
        next_attempt_at: after_first_lease,
    };
    settle(&store, &held, back, after_first_lease).await;
    let again = claim(&store, after_first_lease, 1).await.remove(0);
    assert_eq!(again.attempt(), 1, "a released attempt is not counted");
    assert_ne!(again.lease.claim, held.lease.claim);
    assert!(
        !store
            .record(&held.lease, &sent(None), after_first_lease)
            .await
            .unwrap(),
        "the released lease no longer holds, though the attempt number repeats"
    );
}

/// Waking a transport makes its waiting messages due, however many (the
/// store works in steps of a thousand), and no other transport's.
pub async fn waking_a_transport_makes_its_waiting_messages_due(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::from_secs(600);
    let mut tasks = Vec::new();
    for i in 0..1_005 {
        let store = store.clone();
        let mut new = job("acme", None, now);
        if i > 0 {
            new.transport = "relay".into();
        }
        tasks.push(tokio::spawn(
            async move { store.enqueue(new).await.unwrap() },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    loop {
        let held = claim(&store, now, 500).await;
        if held.is_empty() {
            break;
        }
        for job in &held {
            let back = Outcome::Released {
                next_attempt_at: later,
            };
            settle(&store, job, back, now).await;
        }
    }
    assert_eq!(store.wake("relay", now).await.unwrap(), 1_004);
    let mut due = Vec::new();
    loop {
        let batch = claim(&store, now, 500).await;
        if batch.is_empty() {
            break;
        }
        due.extend(batch);
    }
    assert_eq!(
        due.len(),
        1_004,
        "every waiting relay message, and only those"
    );
    assert!(due.iter().all(|j| j.transport == "relay"));
    assert!(
        due.iter().all(|j| j.attempt() == 1),
        "waking counts no attempt"
    );
    assert_eq!(store.wake("relay", now).await.unwrap(), 0, "none waits now");
}

/// `?wait=true` stores a message already claimed: no claim takes it while
/// its lease holds, and its outcome goes through that lease.
pub async fn an_enqueue_can_claim_at_once(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let mut new = job("acme", Some("wait-1"), now);
    new.lease = Some(Duration::from_secs(60));
    let Enqueued::Claimed(lease) = store.enqueue(new.clone()).await.unwrap() else {
        panic!("claimed at once")
    };
    assert_eq!((lease.attempt, lease.id), (1, new.message.id));
    assert!(claim(&store, now, 10).await.is_empty(), "held by its lease");
    assert_eq!(
        store.enqueue(new).await.unwrap(),
        Enqueued::Duplicate(lease.id),
        "the same key again"
    );
    assert!(store.record(&lease, &sent(None), now).await.unwrap());
    assert_eq!(
        store.get(lease.id).await.unwrap().unwrap().status,
        Status::Sent
    );
}

/// The realm, kind and trace a message came with are kept in plain columns:
/// shown by `get` and `list`, and handed out with each claim (a delivery after
/// a restart still joins the accepting request's trace).
pub async fn origin_is_kept_beside_the_body(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let origin = Origin {
        realm: Some("acme".into()),
        kind: Some("password-reset".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    };
    let traced = NewJob {
        origin: origin.clone(),
        ..job("acme", None, now)
    };
    let plain = job("acme", None, now);
    store.enqueue(traced.clone()).await.unwrap();
    store.enqueue(plain.clone()).await.unwrap();

    let record = store.get(traced.message.id).await.unwrap().unwrap();
    assert_eq!(record.origin(), origin);
    let listed = store
        .list(&ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    let listed = listed.iter().find(|r| r.id == traced.message.id).unwrap();
    assert_eq!(listed.origin(), origin);
    assert_eq!(
        store.get(plain.message.id).await.unwrap().unwrap().origin(),
        Origin::default()
    );

    let claimed = claim(&store, now, 10).await;
    let trace_of = |id: Uuid| {
        claimed
            .iter()
            .find(|job| job.message.id == id)
            .map(|job| job.traceparent.clone())
    };
    assert_eq!(
        trace_of(traced.message.id),
        Some(origin.traceparent.clone())
    );
    assert_eq!(trace_of(plain.message.id), Some(None));
}

/// A row whose body cannot be read is not handed out and does not stop the
/// others: it ends `failed` with the reason, in the claim's own commit.
/// `corrupt` spoils one row's stored body behind the store's back.
pub async fn an_unreadable_row_fails_alone<F, Fut>(store: Arc<dyn JobStore>, corrupt: F)
where
    F: FnOnce(Uuid) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for _ in 0..3 {
        match store.enqueue(job("acme", None, now)).await.unwrap() {
            Enqueued::Created(id) => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    corrupt(ids[1]).await;
    let claimed = claim(&store, now, 10).await;
    let mut got: Vec<Uuid> = claimed.iter().map(|j| j.message.id).collect();
    got.sort();
    assert_eq!(got, vec![ids[0], ids[2]], "the readable ones are delivered");
    let bad = store.get(ids[1]).await.unwrap().unwrap();
    assert_eq!(bad.status, Status::Failed);
    let reason = bad.last_error.unwrap_or_default();
    assert!(reason.contains("cannot be read"), "{reason}");
    assert!(
        claim(&store, now + Duration::from_secs(3600), 10)
            .await
            .len()
            == 2
    );
}

/// A rolling key rotation: a replica restarted with the new key first
/// (`holder`: [new, old]) seals with it; replicas not yet restarted
/// (`lacking`: [old] only, or no keys at all while encryption is being
/// switched on) claim the row and cannot open it. That is not damage: the row
/// goes back as `retrying`, the claim not spent as an attempt, its
/// `last_error` naming the key id (never a key, `secrets`), and `holder`'s
/// next claim delivers it. Waiting ends like any transient failure, when
/// the message is older than the retry age.
pub async fn a_row_sealed_with_a_key_a_replica_lacks_waits_for_one_that_holds_it(
    holder: Arc<dyn JobStore>,
    lacking: Vec<Arc<dyn JobStore>>,
    secrets: &[&str],
) {
    let now = OffsetDateTime::now_utc();
    let Enqueued::Created(id) = holder.enqueue(job("acme", None, now)).await.unwrap() else {
        panic!("not created")
    };
    let mut at = now;
    for replica in &lacking {
        assert!(claim(replica, at, 10).await.is_empty(), "not handed out");
        let row = holder.get(id).await.unwrap().unwrap();
        assert_eq!(row.status, Status::Retrying, "{row:?}");
        assert_eq!(row.attempts, 0, "no attempt spent: {row:?}");
        let error = row.last_error.unwrap_or_default();
        assert!(error.contains("key `new`"), "{error}");
        for secret in secrets {
            assert!(!error.contains(secret), "{error}");
        }
        // Not due again at once: the replica is not kept busy claiming it.
        assert!(claim(replica, at, 10).await.is_empty());
        at = row.next_attempt_at.expect("due again later");
        assert!(at > now, "{at}");
    }
    let delivered = claim(&holder, at, 10).await;
    assert_eq!(
        delivered.len(),
        1,
        "the replica holding the key delivers it"
    );
    assert_eq!(delivered[0].message.id, id);
    assert_eq!(delivered[0].attempt(), 1);

    // Accepted almost a retry age ago: it waits until that age, not past it.
    let old = now - RETRY_AGE + Duration::from_secs(10);
    let Enqueued::Created(late) = holder.enqueue(job("acme", None, old)).await.unwrap() else {
        panic!("not created")
    };
    assert!(claim(&lacking[0], now, 10).await.is_empty());
    let row = holder.get(late).await.unwrap().unwrap();
    assert_eq!(row.status, Status::Retrying, "{row:?}");
    let last = row.next_attempt_at.expect("a last look");
    assert_eq!(last, row.created_at + RETRY_AGE, "{row:?}");
    assert!(claim(&lacking[0], last, 10).await.is_empty());
    let row = holder.get(late).await.unwrap().unwrap();
    assert_eq!(row.status, Status::Failed, "{row:?}");
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.contains("key `new`") && error.contains("gave up"),
        "{error}"
    );
}

/// A claim that waited for the store (an outage longer than a lease) still
/// hands out a lease counted from when it ran, so the next claim cannot take
/// the message again while it is being sent.
pub async fn a_late_claim_hands_out_a_live_lease(store: Arc<dyn JobStore>) {
    let long_ago = OffsetDateTime::now_utc() - Duration::from_secs(600);
    store.enqueue(job("acme", None, long_ago)).await.unwrap();
    let claimed = claim(&store, long_ago, 10).await;
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].lease.until > OffsetDateTime::now_utc());
    assert!(
        claim(&store, OffsetDateTime::now_utc(), 10)
            .await
            .is_empty(),
        "held by a live lease"
    );
}

/// Delivery events: stored per message in order of occurrence, a provider
/// event stored once, a message found by its provider id, and the events go
/// with their message when it is deleted.
pub async fn delivery_events_are_kept_once_per_provider_event(store: Arc<dyn JobStore>) {
    use mailbridge::events::{Bounce, DeliveryEvent, EventType};
    let now = OffsetDateTime::now_utc();
    store.enqueue(job("acme", None, now)).await.unwrap();
    let claimed = claim(&store, now, 1).await;
    let id = claimed[0].message.id;
    settle(&store, &claimed[0], sent(Some("prov-7")), now).await;
    assert_eq!(store.find_by_provider_id("prov-7").await.unwrap(), Some(id));
    assert_eq!(store.find_by_provider_id("prov-8").await.unwrap(), None);
    // The addresses an event about it may name (lower case, each once).
    assert_eq!(store.recipients(id).await.unwrap(), ["ada@example.com"]);
    assert!(store.recipients(Uuid::now_v7()).await.unwrap().is_empty());

    let event = |kind, bounce, event_id: Option<&str>, seconds_ago| DeliveryEvent {
        message_id: id,
        kind,
        bounce,
        recipient: Some("ada@example.com".into()),
        detail: Some("550 5.1.1 unknown user".into()),
        transport: "sg".into(),
        provider_event_id: event_id.map(str::to_owned),
        occurred_at: now - Duration::from_secs(seconds_ago),
        received_at: now,
    };
    let bounced = event(EventType::Bounced, Some(Bounce::Hard), Some("ev-2"), 0);
    assert!(store.add_event(&bounced).await.unwrap());
    assert!(
        !store.add_event(&bounced).await.unwrap(),
        "a repeat is stored once"
    );
    // Events without a provider id are never taken for repeats.
    let delivered = event(EventType::Delivered, None, None, 60);
    assert!(store.add_event(&delivered).await.unwrap());
    assert!(store.add_event(&delivered).await.unwrap());

    let events = store.events(id).await.unwrap();
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventType::Delivered,
            EventType::Delivered,
            EventType::Bounced
        ]
    );
    let last = events.last().unwrap();
    assert_eq!(last.bounce, Some(Bounce::Hard));
    assert_eq!(last.detail.as_deref(), Some("550 5.1.1 unknown user"));
    assert_eq!(
        last.occurred_at.unix_timestamp(),
        bounced.occurred_at.unix_timestamp()
    );

    assert!(store.delete(id).await.unwrap());
    assert!(store.events(id).await.unwrap().is_empty());
}

/// A webhook signature that covers no event (Mailgun's) is taken with one
/// body only, by every store handle on the same data (every replica) and
/// after a restart; the same body again is the provider's retry. Tokens
/// too old for the signature's own check are let go.
pub async fn a_signature_is_taken_with_one_body_only(stores: Vec<Arc<dyn JobStore>>) {
    use mailbridge::events::MAX_AGE;
    use mailbridge::events::signature::SignatureToken;
    let now = OffsetDateTime::now_utc();
    let token = SignatureToken::new("tok-1", b"{\"event\":\"delivered\"}", now);
    let forged = SignatureToken::new("tok-1", b"{\"event\":\"failed\"}", now);
    let (one, other) = (&stores[0], &stores[stores.len() - 1]);
    assert!(one.take_signature(&token, now).await.unwrap());
    assert!(one.take_signature(&token, now).await.unwrap(), "a retry");
    assert!(
        other.take_signature(&token, now).await.unwrap(),
        "a retry elsewhere"
    );
    assert!(
        !other.take_signature(&forged, now).await.unwrap(),
        "a replay"
    );
    assert!(!one.take_signature(&forged, now).await.unwrap(), "a replay");
    // Another token is another signature.
    let second = SignatureToken::new("tok-2", b"{\"event\":\"failed\"}", now);
    assert!(other.take_signature(&second, now).await.unwrap());
    // Once the first is too old to be taken anyway, it is let go: its token
    // with another body is new again (the signature check refuses it first).
    let later = now + MAX_AGE + Duration::from_secs(1);
    let renewed = SignatureToken::new("tok-1", b"{\"event\":\"failed\"}", later);
    assert!(one.take_signature(&renewed, later).await.unwrap());
    let stale_second = SignatureToken::new("tok-2", b"{}", later);
    assert!(other.take_signature(&stale_second, later).await.unwrap());
}

/// A peer's words may hold NUL (an SMTP reply, a provider's JSON error or
/// id, an event's detail), which PostgreSQL's text refuses: stored with
/// U+FFFD in its place on every store, and an outcome carrying one fails
/// neither itself nor the accepts and outcomes that share its commit.
pub async fn a_peers_nul_bytes_are_stored_replaced(store: Arc<dyn JobStore>) {
    use mailbridge::events::{DeliveryEvent, EventType};
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let claimed = claim(&store, now, 3).await;
    let outcomes = [
        sent(Some("id\0x")),
        retrying("451 \0try later", now + Duration::from_secs(60)),
        failed("550 \0no"),
    ];
    let mut tasks = Vec::new();
    for (job, outcome) in claimed.iter().zip(outcomes) {
        let (store, lease) = (store.clone(), job.lease);
        tasks.push(tokio::spawn(async move {
            store.record(&lease, &outcome, now).await
        }));
    }
    let newcomer = {
        let store = store.clone();
        tokio::spawn(async move { store.enqueue(job("acme", None, now)).await })
    };
    for task in tasks {
        assert!(task.await.unwrap().unwrap(), "each outcome is recorded");
    }
    assert!(newcomer.await.unwrap().is_ok(), "an accept beside them too");
    let ids: Vec<Uuid> = claimed.iter().map(|j| j.message.id).collect();
    let record = |i: usize| {
        let store = store.clone();
        let id = ids[i];
        async move { store.get(id).await.unwrap().unwrap() }
    };
    assert_eq!(
        record(0).await.provider_message_id.as_deref(),
        Some("id\u{FFFD}x")
    );
    assert_eq!(
        record(1).await.last_error.as_deref(),
        Some("451 \u{FFFD}try later")
    );
    assert_eq!(
        record(2).await.last_error.as_deref(),
        Some("550 \u{FFFD}no")
    );
    let history = store.attempts(ids[2]).await.unwrap();
    assert_eq!(history[0].answer.as_deref(), Some("550 \u{FFFD}no"));
    assert_eq!(
        store.find_by_provider_id("id\0x").await.unwrap(),
        Some(ids[0]),
        "found by the id as the provider wrote it"
    );

    let event = DeliveryEvent {
        message_id: ids[0],
        kind: EventType::Delivered,
        bounce: None,
        recipient: Some("ada@example.com".into()),
        detail: Some("250 \0ok".into()),
        transport: "sg".into(),
        provider_event_id: Some("ev\0".into()),
        occurred_at: now,
        received_at: now,
    };
    assert!(store.add_event(&event).await.unwrap());
    assert!(!store.add_event(&event).await.unwrap(), "a repeat");
    let events = store.events(ids[0]).await.unwrap();
    assert_eq!(events[0].detail.as_deref(), Some("250 \u{FFFD}ok"));

    // Filters typed with a NUL match nothing, and fail nothing.
    let listed = store
        .list(&ListFilter {
            tenant: Some("ac\0me".into()),
            limit: 10,
            status: None,
            before: None,
        })
        .await
        .unwrap();
    assert!(listed.is_empty());
    let search = mailbridge::queue::history::Search {
        tenants: Some(vec!["ac\0me".into()]),
        recipient: Some(mailbridge::queue::history::RecipientMatch::Prefix(
            "ada\0".into(),
        )),
        transport: Some("\0".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(store.search(&search).await.unwrap().is_empty());
}

/// A peer's id may be of any length (a bounce report's `Message-ID` is
/// written by whoever mailed it), and PostgreSQL indexes no more than about
/// 2,700 bytes of a row: a provider's message id or an event's id is stored
/// whatever its length, found again by the id as the peer wrote it, and an
/// event repeated with it is a repeat.
pub async fn a_peers_long_ids_are_stored_and_found(store: Arc<dyn JobStore>) {
    use mailbridge::events::{DeliveryEvent, EventType};
    let now = OffsetDateTime::now_utc();
    // Hex of random ids: no compression brings 8,000 of them under the bound.
    let long = |tail: &str| {
        let mut id: String = (0..250)
            .map(|_| Uuid::new_v4().simple().to_string())
            .collect();
        id.push_str(tail);
        id
    };
    let message_id = long("");
    store.enqueue(job("acme", None, now)).await.unwrap();
    let claimed = claim(&store, now, 1).await;
    settle(&store, &claimed[0], sent(Some(&message_id)), now).await;
    let id = claimed[0].message.id;
    assert_eq!(
        store.find_by_provider_id(&message_id).await.unwrap(),
        Some(id)
    );
    let mut other = message_id.clone();
    other.pop();
    assert_eq!(store.find_by_provider_id(&other).await.unwrap(), None);

    let event_id = long("a");
    let event = |provider_event_id: &str| DeliveryEvent {
        message_id: id,
        kind: EventType::Delivered,
        bounce: None,
        recipient: Some("ada@example.com".into()),
        detail: None,
        transport: "default".into(),
        provider_event_id: Some(provider_event_id.to_owned()),
        occurred_at: now,
        received_at: now,
    };
    assert!(store.add_event(&event(&event_id)).await.unwrap());
    assert!(
        !store.add_event(&event(&event_id)).await.unwrap(),
        "a repeat"
    );
    let mut next = event_id.clone();
    next.pop();
    next.push('b');
    assert!(
        store.add_event(&event(&next)).await.unwrap(),
        "another event"
    );
    assert_eq!(store.events(id).await.unwrap().len(), 2);
}

/// The suppression list: one entry per tenant and address, looked up in
/// bulk, listed per tenant; a message stored claimed can be settled as
/// `suppressed`, and then deleted.
pub async fn suppressions_and_suppressed_messages(store: Arc<dyn JobStore>) {
    use mailbridge::suppression::{Reason, Suppression};
    let now = OffsetDateTime::now_utc();
    let entry = |tenant: &str, email: &str, reason| Suppression {
        tenant: tenant.into(),
        email: email.into(),
        reason,
        detail: Some("550 5.1.1".into()),
        message_id: Some(Uuid::now_v7()),
        created_at: now,
    };
    assert!(
        store
            .suppress(&entry("acme", "ada@example.com", Reason::Bounce))
            .await
            .unwrap()
    );
    assert!(
        !store
            .suppress(&entry("acme", "ada@example.com", Reason::Manual))
            .await
            .unwrap()
    );
    assert!(
        store
            .suppress(&entry("other", "grace@example.com", Reason::Complaint))
            .await
            .unwrap()
    );
    let among = |tenant: &'static str| {
        let store = store.clone();
        async move {
            let asked = ["ada@example.com".to_owned(), "grace@example.com".to_owned()];
            store.suppressed_among(tenant, &asked).await.unwrap()
        }
    };
    assert_eq!(among("acme").await, ["ada@example.com"]);
    assert_eq!(among("other").await, ["grace@example.com"]);
    // Lookups of several tenants at once may go as one query: each answer
    // is still its own tenant's.
    let (acme, other, nobody) = tokio::join!(among("acme"), among("other"), among("nobody"));
    assert_eq!(acme, ["ada@example.com"]);
    assert_eq!(other, ["grace@example.com"]);
    assert!(nobody.is_empty(), "{nobody:?}");
    assert!(
        store
            .suppressed_among("acme", &[])
            .await
            .unwrap()
            .is_empty()
    );
    let listed = store.suppressions(Some("acme"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reason, Reason::Bounce, "the first entry is kept");
    assert_eq!(store.suppressions(None, 10).await.unwrap().len(), 2);
    assert!(store.unsuppress("acme", "ada@example.com").await.unwrap());
    assert!(!store.unsuppress("acme", "ada@example.com").await.unwrap());

    let mut new = job("acme", None, now);
    new.lease = Some(Duration::from_secs(60));
    let Enqueued::Claimed(lease) = store.enqueue(new).await.unwrap() else {
        panic!("stored claimed");
    };
    let outcome = Outcome::Suppressed {
        reason: "every recipient is suppressed".into(),
    };
    settle_lease(&store, &lease, outcome, now).await;
    let record = store.get(lease.id).await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Suppressed, 0));
    assert!(
        claim(&store, now + Duration::from_secs(120), 10)
            .await
            .is_empty()
    );
    assert!(store.delete(lease.id).await.unwrap());

    // Suppressed at a later attempt: the attempts before it stay counted,
    // and the history ends with the suppression.
    let id = store_one(&store, now).await;
    let first = claim(&store, now, 1).await.remove(0);
    settle(&store, &first, retrying("429", now), now).await;
    let second = claim(&store, now + Duration::from_secs(1), 1)
        .await
        .remove(0);
    assert_eq!(second.attempt(), 2);
    let outcome = Outcome::Suppressed {
        reason: "suppressed since accept".into(),
    };
    settle(&store, &second, outcome, now).await;
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Suppressed, 1));
    let history: Vec<String> = (store.attempts(id).await.unwrap().into_iter())
        .map(|a| a.outcome)
        .collect();
    assert_eq!(history, ["retrying", "suppressed"]);
}

async fn store_one(store: &Arc<dyn JobStore>, now: OffsetDateTime) -> Uuid {
    match store.enqueue(job("acme", None, now)).await.unwrap() {
        Enqueued::Created(id) => id,
        other => panic!("stored: {other:?}"),
    }
}

async fn settle_lease(
    store: &Arc<dyn JobStore>,
    lease: &mailbridge::queue::Lease,
    outcome: Outcome,
    now: OffsetDateTime,
) {
    assert!(store.record(lease, &outcome, now).await.unwrap());
}

/// Flow-limit cells whose window has passed are deleted in bounded
/// batches; a cell still within its window is kept and still limits.
pub async fn flow_limit_cells_are_pruned_after_their_window(store: Arc<dyn JobStore>) {
    use mailbridge::limits::{Limit, LimitCell};
    let cell = |key: &str, interval: Duration| LimitCell {
        key: key.into(),
        interval,
        burst: Duration::ZERO,
        limit: Limit::Recipient,
    };
    let now = OffsetDateTime::now_utc();
    let limited = |limits: Vec<LimitCell>, now| NewJob {
        limits,
        ..job("acme", None, now)
    };
    let second = Duration::from_secs(1);
    let passing: Vec<LimitCell> = (0..3).map(|i| cell(&format!("p{i}"), second)).collect();
    let hour = cell("h", Duration::from_secs(3600));
    for c in passing.iter().chain([&hour]) {
        let stored = store.enqueue(limited(vec![c.clone()], now)).await.unwrap();
        assert!(stored.stored(), "a new cell lets the first message through");
    }
    let whole = store.prune_limits(now, None, 100).await.unwrap();
    assert_eq!(
        whole,
        Pruned::default(),
        "all within their window, and fewer than a batch of cells"
    );
    // Two at a time until the walk ends: three expired cells deleted, never
    // more than two a step (SQLite looks at two cells a step, PostgreSQL
    // deletes two expired ones a step).
    let later = now + Duration::from_secs(2);
    let (mut after, mut steps, mut deleted) = (None, 0, 0);
    loop {
        let step = store
            .prune_limits(later, after.as_deref(), 2)
            .await
            .unwrap();
        assert!(step.deleted <= 2, "{step:?}");
        deleted += step.deleted;
        steps += 1;
        assert!(steps <= 3, "a walk over four cells ends: {step:?}");
        match step.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(deleted, 3);
    let again = store.prune_limits(later, None, 100).await.unwrap();
    assert_eq!(again, Pruned::default(), "nothing expired is left");
    let refused = store.enqueue(limited(vec![hour], later)).await.unwrap();
    let Enqueued::Limited { wait, .. } = refused else {
        panic!("the hour's cell was kept and still limits: {refused:?}")
    };
    assert!(wait > Duration::from_secs(3500), "{wait:?}");
    let stored = store.enqueue(limited(passing, later)).await.unwrap();
    assert!(stored.stored(), "{stored:?}");
}

/// Flow limits carried by the message, checked and spent in the commit that
/// stores it, from one store or several sharing a database: of twenty
/// concurrent messages through a cell of five, five are stored and fifteen
/// refused with the wait; a refused message stores nothing and spends none
/// of its other cells; a repeat of a stored message's key is answered as a
/// repeat, never refused, and spends nothing.
pub async fn messages_spend_their_limits_when_stored(stores: Vec<Arc<dyn JobStore>>) {
    use mailbridge::limits::{Limit, LimitCell};
    let hour = Duration::from_secs(3600);
    let cell = |name: &str, burst: Duration| LimitCell {
        key: format!("{name}-{}", Uuid::now_v7()),
        interval: hour,
        burst,
        limit: Limit::Recipient,
    };
    let five = cell("five", hour * 4);
    let now = OffsetDateTime::now_utc();
    let limited = |key: Option<&str>, limits: Vec<LimitCell>| NewJob {
        limits,
        ..job("acme", key, now)
    };
    let tries = (0..20).map(|i| {
        let store = stores[i % stores.len()].clone();
        let job = limited(Some(&format!("race-{i}")), vec![five.clone()]);
        let id = job.message.id;
        tokio::spawn(async move { (id, store.enqueue(job).await.unwrap()) })
    });
    let (mut stored, mut refused) = (Vec::new(), Vec::new());
    for answer in futures::future::join_all(tries).await {
        match answer.unwrap() {
            (_, Enqueued::Created(id)) => stored.push(id),
            (id, Enqueued::Limited { wait, index }) => {
                assert_eq!(index, 0);
                assert!(wait > Duration::from_secs(3500), "{wait:?}");
                refused.push(id);
            }
            (_, other) => panic!("{other:?}"),
        }
    }
    assert_eq!(
        stored.len(),
        5,
        "one in the hour plus a burst of four hours"
    );
    let store = &stores[0];
    for id in &refused {
        assert!(
            store.get(*id).await.unwrap().is_none(),
            "a refused message is not stored"
        );
    }

    // Refused by one cell, it spends none of the others.
    let (fresh, single) = (
        cell("fresh", Duration::ZERO),
        cell("single", Duration::ZERO),
    );
    let answer = store
        .enqueue(limited(None, vec![fresh.clone(), five.clone()]))
        .await
        .unwrap();
    assert!(
        matches!(answer, Enqueued::Limited { index: 1, .. }),
        "{answer:?}"
    );
    let answer = store
        .enqueue(limited(None, vec![fresh.clone()]))
        .await
        .unwrap();
    assert!(matches!(answer, Enqueued::Created(_)), "{answer:?}");

    // A repeat is a repeat, even where a new message would be refused, and
    // spends nothing: the single cell still lets one message through.
    let first = store
        .enqueue(limited(Some("first"), vec![single.clone()]))
        .await
        .unwrap();
    let Enqueued::Created(first) = first else {
        panic!("{first:?}")
    };
    let again = store
        .enqueue(limited(Some("first"), vec![five.clone()]))
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate(first));
    let other = cell("other", Duration::ZERO);
    let again = store
        .enqueue(limited(Some("first"), vec![other.clone()]))
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate(first));
    let answer = store.enqueue(limited(None, vec![other])).await.unwrap();
    assert!(
        matches!(answer, Enqueued::Created(_)),
        "the repeat spent nothing: {answer:?}"
    );
}

/// The store's migrations in `dir` older than `version`: a database as an
/// earlier release left it, for the tests of a migration.
pub async fn migrations_before(dir: &str, version: &str) -> sqlx::migrate::Migrator {
    let earlier = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < version {
            std::fs::copy(&path, earlier.path().join(name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(earlier.path()).await.unwrap()
}
