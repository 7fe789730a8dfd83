//! Changes that arrive together share one commit (and, in the writers, a few
//! statements): their answers are still those of one change after the other.
//! New messages: a key repeated among them is a repeat of its first use, an
//! expired key is taken over once, recipients are written for every message
//! stored. Outcomes: each is fenced by its own lease and answered alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mailbridge::email::Mailbox;
use mailbridge::queue::history::{RecipientMatch, Search};
use mailbridge::queue::{Enqueued, JobStore, Lease, NewJob, Outcome, Status};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{claim, job};

/// Enqueues every job at once (so that they share commit groups); the answers in order.
async fn enqueue_together(store: &Arc<dyn JobStore>, jobs: Vec<NewJob>) -> Vec<Enqueued> {
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(job).await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

pub async fn new_messages_arriving_together_answer_one_after_the_other(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let t0 = now - Duration::from_secs(48 * 3600);
    let Enqueued::Created(fresh) = store
        .enqueue(job("acme", Some("fresh"), now))
        .await
        .unwrap()
    else {
        panic!("stored")
    };
    store.enqueue(job("acme", Some("old"), t0)).await.unwrap();

    let mut jobs = Vec::new();
    for i in 0..120 {
        let key = ["k", "old", "fresh", ""][i % 4];
        let mut job = job("acme", (!key.is_empty()).then_some(key), now);
        job.message.to = vec![Mailbox::new(format!("user{i}@example.com"))];
        if i % 8 == 3 {
            job.lease = Some(Duration::from_secs(60));
        }
        jobs.push(job);
    }
    let leased: HashSet<Uuid> = (jobs.iter())
        .filter(|j| j.lease.is_some())
        .map(|j| j.message.id)
        .collect();
    let answers = enqueue_together(&store, jobs).await;

    // Tasks reach the writer in any order: whichever use of a key came
    // first is stored, every other one answers with its id.
    let mut firsts: HashMap<&str, Uuid> = HashMap::new();
    let mut repeats: Vec<(&str, Uuid)> = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        let key = ["k", "old", "fresh", ""][i % 4];
        match (key, answer) {
            ("fresh", other) => {
                assert_eq!(*other, Enqueued::Duplicate(fresh), "a live key on disk")
            }
            ("", Enqueued::Created(_)) => {}
            ("", Enqueued::Claimed(lease)) => {
                assert!(leased.contains(&lease.id));
                assert_eq!((lease.attempt, lease.claim), (1, 1));
            }
            (key, Enqueued::Created(id)) => {
                assert_eq!(firsts.insert(key, *id), None, "`{key}` stored once");
            }
            (key, Enqueued::Duplicate(id)) => repeats.push((key, *id)),
            (key, other) => panic!("`{key}`: {other:?}"),
        }
    }
    for (key, id) in repeats {
        assert_eq!(
            firsts.get(key),
            Some(&id),
            "`{key}`: a repeat of its first use"
        );
    }
    assert_eq!(
        firsts.len(),
        2,
        "`k` stored, and `old` taken over: {firsts:?}"
    );
    // 30 without a key (of which 15 stored claimed), `k` and `old` once each,
    // and the two stored before.
    assert_eq!(store.pending_count("acme").await.unwrap(), 30 + 2 + 2);
    assert_eq!(
        store.find_idempotent("acme", "old", now).await.unwrap(),
        firsts.get("old").copied()
    );
    let search = Search {
        recipient: RecipientMatch::parse("user*"),
        limit: 500,
        ..Search::default()
    };
    let found = store.search(&search).await.unwrap();
    assert_eq!(
        found.len(),
        32,
        "every message stored can be found by recipient"
    );
    for record in found.iter().filter(|r| leased.contains(&r.id)) {
        assert_eq!(record.status, Status::Sending, "stored claimed");
    }
}

/// Forty messages claimed, ten of them given back and claimed again (their
/// first leases are lost): the first claims and the second.
async fn claimed_twice(
    store: &Arc<dyn JobStore>,
    now: OffsetDateTime,
) -> (
    Vec<mailbridge::queue::ClaimedJob>,
    Vec<mailbridge::queue::ClaimedJob>,
) {
    for _ in 0..40 {
        store.enqueue(job("acme", None, now)).await.unwrap();
    }
    let first = claim(store, now, 100).await;
    assert_eq!(first.len(), 40);
    for job in &first[..10] {
        let back = Outcome::Released {
            next_attempt_at: now,
        };
        assert!(store.record(&job.lease, &back, now).await.unwrap());
    }
    let second = claim(store, now, 100).await;
    assert_eq!(second.len(), 10);
    (first, second)
}

pub async fn outcomes_arriving_together_are_fenced_each_by_its_lease(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let (first, second) = claimed_twice(&store, now).await;

    let leases: Vec<Lease> = (first.iter().chain(&second)).map(|j| j.lease).collect();
    let tasks: Vec<_> = leases
        .iter()
        .map(|lease| {
            let (store, lease) = (store.clone(), *lease);
            let outcome = Outcome::Sent {
                provider_message_id: Some(format!("prov-{}-{}", lease.id, lease.claim)),
            };
            tokio::spawn(async move { store.record(&lease, &outcome, now).await.unwrap() })
        })
        .collect();
    let mut applied = Vec::new();
    for task in tasks {
        applied.push(task.await.unwrap());
    }
    let lost: HashSet<Uuid> = first[..10].iter().map(|j| j.lease.id).collect();
    for (lease, applied) in leases.iter().zip(&applied) {
        let holds = lease.claim == 2 || !lost.contains(&lease.id);
        assert_eq!(*applied, holds, "{lease:?}");
    }
    for lease in leases
        .iter()
        .filter(|l| l.claim == 2 || !lost.contains(&l.id))
    {
        let answer = format!("prov-{}-{}", lease.id, lease.claim);
        let record = store.get(lease.id).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Sent);
        assert_eq!(record.provider_message_id.as_deref(), Some(answer.as_str()));
        let history = store.attempts(lease.id).await.unwrap();
        assert_eq!(
            history.len(),
            1,
            "one history row, from the lease that held"
        );
        assert_eq!(history[0].outcome, "sent");
        assert_eq!(history[0].answer.as_deref(), Some(answer.as_str()));
    }
}

/// A webhook row about `id` (as the worker makes one for an outcome).
fn notice(id: Uuid, now: OffsetDateTime) -> NewJob {
    let mut notice = job("acme", None, now);
    notice.transport = "webhook".into();
    notice.message.text = Some(format!(
        "{{\"type\":\"message.sent\",\"message_id\":\"{id}\"}}"
    ));
    notice
}

pub async fn a_notice_is_stored_with_its_outcome_and_only_then(store: Arc<dyn JobStore>) {
    let now = OffsetDateTime::now_utc();
    let (first, second) = claimed_twice(&store, now).await;

    // Every attempt records its outcome with a notice, all at once (so that
    // they share commit groups), half of them `failed`.
    let leases: Vec<Lease> = (first.iter().chain(&second)).map(|j| j.lease).collect();
    let tasks: Vec<_> = leases
        .iter()
        .enumerate()
        .map(|(i, lease)| {
            let (store, lease) = (store.clone(), *lease);
            let outcome = match i % 2 {
                0 => Outcome::Sent {
                    provider_message_id: None,
                },
                _ => Outcome::Failed {
                    error: "550 no such user".into(),
                },
            };
            let notice = notice(lease.id, now);
            tokio::spawn(async move {
                let applied = (store.record_with(&lease, &outcome, now, Some(&notice)))
                    .await
                    .unwrap();
                (applied, notice.message.id)
            })
        })
        .collect();
    let mut stored = HashSet::new();
    for (lease, task) in leases.iter().zip(tasks) {
        let (applied, notice) = task.await.unwrap();
        let lost = lease.claim == 1 && first[..10].iter().any(|j| j.lease.id == lease.id);
        assert_eq!(applied, !lost, "{lease:?}");
        let row = store.get(notice).await.unwrap();
        assert_eq!(row.is_some(), applied, "the notice of {lease:?}");
        if let Some(row) = row {
            assert_eq!(row.status, Status::Queued);
            assert_eq!(row.transport, "webhook");
            stored.insert(notice);
        }
    }
    assert_eq!(stored.len(), 40, "one notice per message");
    // The notices are claimed on their own lane, as any webhook row (a
    // destination's few at a time, each round once the last has ended).
    let mut claimed = HashSet::new();
    loop {
        let notices = store
            .claim(
                now,
                Duration::from_secs(60),
                mailbridge::queue::Lane::Notices,
                100,
                super::RETRY_AGE,
            )
            .await
            .unwrap();
        if notices.is_empty() {
            break;
        }
        for notice in notices {
            let sent = Outcome::Sent {
                provider_message_id: None,
            };
            assert!(store.record(&notice.lease, &sent, now).await.unwrap());
            assert!(claimed.insert(notice.message.id), "claimed once");
        }
    }
    assert_eq!(claimed, stored);
    // An outcome that is not recorded (its lease is gone) stores no notice.
    let late = notice(first[10].lease.id, now);
    let outcome = Outcome::Sent {
        provider_message_id: None,
    };
    assert!(
        !(store.record_with(&first[10].lease, &outcome, now, Some(&late)))
            .await
            .unwrap()
    );
    assert!(store.get(late.message.id).await.unwrap().is_none());
}
