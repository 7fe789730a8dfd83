//! Suppression lookups, asked together. Every accepted message and every
//! attempt asks the store which of its recipients are on the tenant's
//! suppression list: one query each was a round trip to a database thread
//! (SQLite) or server (PostgreSQL) per message. Lookups asked while one is
//! running wait for it and then go as one query (`(tenant, email)` pairs in,
//! the listed pairs out); each asker gets the answer for its own addresses.
//! A quiet store answers one lookup at once, as before; a busy one answers
//! many with one query.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// At most this many lookups go into one query.
const MAX_GROUP: usize = 256;
/// Longest a query may take: a store that hangs (packets lost on the way to
/// the database) fails its askers instead of holding them until TCP gives up.
const DEADLINE: Duration = Duration::from_secs(10);

/// A `(tenant, normalised email)` pair.
pub(crate) type Pair = (String, String);

/// Runs one query for many pairs: answers those on their tenant's list.
pub(crate) type Query = Arc<
    dyn Fn(Vec<Pair>) -> Pin<Box<dyn Future<Output = Result<Vec<Pair>, StoreError>> + Send>>
        + Send
        + Sync,
>;

struct Ask {
    tenant: String,
    emails: Vec<String>,
    reply: oneshot::Sender<Result<Vec<String>, String>>,
}

/// The askers' side; the task answering them ends with the last clone.
#[derive(Debug, Clone)]
pub(crate) struct Lookups {
    asks: mpsc::UnboundedSender<Ask>,
}

impl Lookups {
    /// Starts the task that answers lookups with `query`.
    pub(crate) fn start(query: Query) -> Self {
        let (asks, inbox) = mpsc::unbounded_channel();
        tokio::spawn(answer(inbox, query));
        Self { asks }
    }

    /// Which of `emails` (normalised) are on `tenant`'s list.
    pub(crate) async fn among(
        &self,
        tenant: &str,
        emails: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            tenant: tenant.to_owned(),
            emails: emails.to_vec(),
            reply,
        };
        self.asks
            .send(ask)
            .map_err(|_| anyhow!("the suppression lookups have stopped"))?;
        match answer.await {
            Ok(Ok(listed)) => Ok(listed),
            Ok(Err(error)) => Err(anyhow!("looking up suppressions: {error}").into()),
            Err(_) => Err(anyhow!("a suppression lookup ended without an answer").into()),
        }
    }
}

async fn answer(mut inbox: mpsc::UnboundedReceiver<Ask>, query: Query) {
    let mut waiting = Vec::with_capacity(MAX_GROUP);
    while inbox.recv_many(&mut waiting, MAX_GROUP).await > 0 {
        let pairs: BTreeSet<Pair> = waiting
            .iter()
            .flat_map(|ask| {
                let tenant = &ask.tenant;
                ask.emails.iter().map(|e| (tenant.clone(), e.clone()))
            })
            .collect();
        let result = tokio::time::timeout(DEADLINE, query(pairs.into_iter().collect()))
            .await
            .unwrap_or_else(
                |_| Err(anyhow!("the store did not answer within {DEADLINE:?}").into()),
            );
        let listed = result.map(by_tenant).map_err(|e| format!("{:#}", e.0));
        for ask in waiting.drain(..) {
            let answer = match &listed {
                Ok(listed) => {
                    let theirs = listed.get(&ask.tenant);
                    Ok((ask.emails.into_iter())
                        .filter(|e| theirs.is_some_and(|t| t.contains(e)))
                        .collect())
                }
                Err(error) => Err(error.clone()),
            };
            // An asker that has gone needs no answer.
            let _ = ask.reply.send(answer);
        }
    }
}

fn by_tenant(pairs: Vec<Pair>) -> BTreeMap<String, BTreeSet<String>> {
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (tenant, email) in pairs {
        listed.entry(tenant).or_default().insert(email);
    }
    listed
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<Pair> {
        list.iter()
            .map(|(t, e)| ((*t).to_owned(), (*e).to_owned()))
            .collect()
    }

    /// A query over a fixed list that records each group it was given.
    fn listing(listed: Vec<Pair>, groups: Arc<Mutex<Vec<Vec<Pair>>>>) -> Query {
        Arc::new(move |asked: Vec<Pair>| {
            groups.lock().unwrap().push(asked.clone());
            let found = asked.into_iter().filter(|p| listed.contains(p)).collect();
            Box::pin(async move { Ok(found) })
        })
    }

    #[tokio::test]
    async fn each_asker_gets_its_own_tenant_s_answer() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let listed = pairs(&[("acme", "ada@example.com"), ("globex", "bob@example.com")]);
        let lookups = Lookups::start(listing(listed, groups.clone()));
        let emails = ["ada@example.com".to_owned(), "bob@example.com".to_owned()];
        let (acme, globex, nobody) = tokio::join!(
            lookups.among("acme", &emails),
            lookups.among("globex", &emails),
            lookups.among("initech", &emails),
        );
        assert_eq!(acme.unwrap(), ["ada@example.com"]);
        assert_eq!(globex.unwrap(), ["bob@example.com"]);
        assert!(nobody.unwrap().is_empty());
        let asked: usize = groups.lock().unwrap().iter().map(Vec::len).sum();
        assert_eq!(asked, 6, "every pair asked once");
    }

    #[tokio::test]
    async fn lookups_waiting_together_go_as_one_query() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let lookups = Lookups::start(listing(Vec::new(), groups.clone()));
        let emails = ["ada@example.com".to_owned()];
        // Asked before the answering task first runs (current-thread runtime).
        let asks: Vec<_> = (0..10).map(|_| lookups.among("acme", &emails)).collect();
        for result in futures::future::join_all(asks).await {
            assert!(result.unwrap().is_empty());
        }
        let groups = groups.lock().unwrap();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0], pairs(&[("acme", "ada@example.com")]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_query_that_never_answers_fails_its_askers_after_the_deadline() {
        let query: Query = Arc::new(|_| Box::pin(std::future::pending()));
        let lookups = Lookups::start(query);
        let emails = ["ada@example.com".to_owned()];
        let started = tokio::time::Instant::now();
        let error = lookups
            .among("acme", &emails)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("did not answer"), "{error}");
        assert_eq!(started.elapsed(), DEADLINE);
    }

    #[tokio::test]
    async fn a_failed_query_fails_every_lookup_it_answered() {
        let query: Query = Arc::new(|_| Box::pin(async { Err(anyhow!("disk I/O error").into()) }));
        let lookups = Lookups::start(query);
        let emails = ["ada@example.com".to_owned()];
        let (a, b) = tokio::join!(
            lookups.among("acme", &emails),
            lookups.among("globex", &emails)
        );
        for result in [a, b] {
            let error = result.unwrap_err().to_string();
            assert!(error.contains("disk I/O error"), "{error}");
        }
    }

    #[tokio::test]
    async fn no_addresses_ask_nothing() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let lookups = Lookups::start(listing(Vec::new(), groups.clone()));
        assert!(lookups.among("acme", &[]).await.unwrap().is_empty());
        tokio::task::yield_now().await;
        assert!(groups.lock().unwrap().is_empty());
    }
}
