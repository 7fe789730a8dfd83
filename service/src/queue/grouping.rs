//! The order in which a writer applies the ops of one commit group. Every op
//! of a group is concurrent with every other (each caller waits for its
//! group's commit before it sends another op), so any serial order is one
//! the callers could have seen. The writers pick the one that lets like ops
//! share statements: new messages first, in arrival order (a repeated
//! idempotency key is a repeat of its first use); then the `sent` outcomes,
//! each still fenced by its own lease; then everything else in arrival order.
//! A new message's flow limits are checked and spent as it is stored, in
//! arrival order over the cells' times read once for the group (and, on
//! PostgreSQL, locked first, in one order).

use time::OffsetDateTime;

use super::batch::{Answer, Enqueue, Op};
use super::{Enqueued, Lease, Outcome};

/// What a store's writer does with the parts of a group's [`Plan`], inside
/// its transaction.
pub(crate) trait GroupWrites {
    /// Stores new messages together; one answer each, in their order.
    async fn insert_all(&mut self, new: &[&Enqueue]) -> anyhow::Result<Vec<Enqueued>>;
    /// Records `sent` outcomes together; whether each one's lease still held.
    async fn record_all(&mut self, sent: &[Delivered<'_>]) -> anyhow::Result<Vec<bool>>;
    /// Applies one op on its own.
    async fn apply(&mut self, op: &Op) -> anyhow::Result<Answer>;
}

/// Applies `ops` in the order [`plan`] gives: new messages together, `sent`
/// outcomes together, the rest one by one; answers in the group's order.
pub(crate) async fn apply_all(
    writes: &mut impl GroupWrites,
    ops: &[Op],
) -> anyhow::Result<Vec<Answer>> {
    let plan = plan(ops);
    let mut answers = Answers::new(ops.len());
    let new: Vec<&Enqueue> = plan.new.iter().map(|(_, new)| *new).collect();
    let stored = writes.insert_all(&new).await?;
    for ((place, _), done) in plan.new.iter().zip(stored) {
        answers.put(*place, Answer::Enqueued(done));
    }
    let delivered: Vec<Delivered<'_>> = plan.sent.iter().map(|(_, d)| *d).collect();
    let applied = writes.record_all(&delivered).await?;
    for ((place, _), applied) in plan.sent.iter().zip(applied) {
        answers.put(*place, Answer::Applied(applied));
    }
    for &place in &plan.rest {
        answers.put(place, writes.apply(&ops[place]).await?);
    }
    // The notices of the outcomes that were recorded, in the same commit.
    let notices: Vec<&Enqueue> = ops
        .iter()
        .enumerate()
        .filter_map(|(place, op)| match op {
            Op::Record {
                notice: Some(notice),
                ..
            } if answers.applied(place) => Some(notice.as_ref()),
            _ => None,
        })
        .collect();
    if !notices.is_empty() {
        writes.insert_all(&notices).await?;
    }
    answers.finish()
}

/// A `sent` outcome to record through its lease.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivered<'a> {
    pub(crate) lease: &'a Lease,
    pub(crate) provider_message_id: Option<&'a str>,
    pub(crate) now: OffsetDateTime,
}

/// A group's ops sorted by how they are applied; each with its place in the group.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// New messages, in arrival order.
    pub(crate) new: Vec<(usize, &'a Enqueue)>,
    /// `sent` outcomes, at most one per message (a second one waits in `rest`,
    /// so that it is answered as if applied after the first).
    pub(crate) sent: Vec<(usize, Delivered<'a>)>,
    /// Everything else, in arrival order.
    pub(crate) rest: Vec<usize>,
}

/// Sorts `ops` into a [`Plan`].
pub(crate) fn plan(ops: &[Op]) -> Plan<'_> {
    let mut plan = Plan::default();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Enqueue(new) => plan.new.push((i, new.as_ref())),
            Op::Record {
                lease,
                outcome: Outcome::Sent {
                    provider_message_id,
                },
                now,
                ..
            } if !plan.sent.iter().any(|(_, d)| d.lease.id == lease.id) => {
                let delivered = Delivered {
                    lease,
                    provider_message_id: provider_message_id.as_deref(),
                    now: *now,
                };
                plan.sent.push((i, delivered));
            }
            _ => plan.rest.push(i),
        }
    }
    plan
}

/// The answers of a group, filled in whatever order the ops are applied.
#[derive(Debug)]
pub(crate) struct Answers(Vec<Option<Answer>>);

impl Answers {
    /// Room for `count` answers.
    pub(crate) fn new(count: usize) -> Self {
        Answers((0..count).map(|_| None).collect())
    }

    /// The answer of the op at `place`.
    pub(crate) fn put(&mut self, place: usize, answer: Answer) {
        if let Some(slot) = self.0.get_mut(place) {
            *slot = Some(answer);
        }
    }

    /// Whether the op at `place` is a fenced write that applied.
    fn applied(&self, place: usize) -> bool {
        matches!(self.0.get(place), Some(Some(Answer::Applied(true))))
    }

    /// Every answer in the group's order; an error if one is missing.
    pub(crate) fn finish(self) -> anyhow::Result<Vec<Answer>> {
        self.0
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::anyhow!("a queue change of the group was not applied"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::plan;
    use crate::queue::batch::Op;
    use crate::queue::{Lease, Outcome};

    fn lease(id: Uuid) -> Lease {
        Lease {
            id,
            attempt: 1,
            claim: 1,
            until: OffsetDateTime::now_utc(),
        }
    }

    fn sent(id: Uuid) -> Op {
        Op::Record {
            lease: lease(id),
            outcome: Outcome::Sent {
                provider_message_id: None,
            },
            now: OffsetDateTime::now_utc(),
            notice: None,
        }
    }

    #[test]
    fn sent_outcomes_share_a_statement_unless_they_name_the_same_message() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let now = OffsetDateTime::now_utc();
        let ops = vec![
            sent(a),
            Op::Claim {
                now,
                lease: Duration::from_secs(60),
                lane: crate::queue::Lane::Messages,
                limit: 8,
                max_age: Duration::from_secs(24 * 3600),
            },
            sent(b),
            sent(a),
            Op::Record {
                lease: lease(b),
                outcome: Outcome::Released {
                    next_attempt_at: now,
                },
                now,
                notice: None,
            },
        ];
        let plan = plan(&ops);
        let sent: Vec<usize> = plan.sent.iter().map(|(i, _)| *i).collect();
        assert_eq!(sent, vec![0, 2]);
        assert_eq!(plan.rest, vec![1, 3, 4]);
        assert!(plan.new.is_empty());
    }
}
