//! Page times of the console with 100,000 messages in a SQLite store.
//!
//! `cargo bench -p mailbridge --bench console_pages` (release), or with
//! `-- MESSAGES` for another size. Fills a fresh store (five tenants, two
//! transports, one recipient each; 60 % sent, 20 % failed, 20 % waiting),
//! serves it with the console on (local, no sign-in) and times each page's
//! answer over 30 requests: p50, p95 and the slowest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::queue::{JobStore, Lane, NewJob, Origin, Outcome};
use time::OffsetDateTime;

const TENANTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];

fn message(i: usize) -> OutgoingMessage {
    OutgoingMessage::plain(
        TENANTS[i % TENANTS.len()],
        Mailbox::new("no-reply@bench.example"),
        Mailbox::new(format!("user{i}@example.com")),
        "Reset your password",
        &"A body of ordinary length. ".repeat(20),
    )
}

/// Enqueues `count` messages, then settles them: sent, failed, or waiting.
async fn fill(store: &Arc<dyn JobStore>, count: usize) {
    let now = OffsetDateTime::now_utc();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let jobs = chunk.iter().map(|&i| {
            store.enqueue(NewJob {
                message: message(i),
                idempotency_key: None,
                // One row in a thousand is the application's webhook: the rare transport.
                transport: match i {
                    _ if i % 1000 == 7 => "webhook",
                    _ if i % 2 == 0 => "default",
                    _ => "m365",
                }
                .into(),
                now,
                lease: None,
                origin: Origin::default(),
                limits: Vec::new(),
            })
        });
        for done in futures::future::join_all(jobs).await {
            done.expect("enqueue");
        }
    }
    let mut n = 0usize;
    loop {
        let claimed = store
            .claim(
                now,
                Duration::from_secs(600),
                Lane::Messages,
                1000,
                Duration::from_secs(24 * 3600),
            )
            .await
            .expect("claim");
        if claimed.is_empty() {
            break;
        }
        let mut records = Vec::with_capacity(claimed.len());
        for job in &claimed {
            n += 1;
            let outcome = match n % 5 {
                0 => Outcome::Released {
                    next_attempt_at: now + Duration::from_secs(86_400),
                },
                1 => Outcome::Failed {
                    error: "550 5.1.1 no such user".into(),
                },
                _ => Outcome::Sent {
                    provider_message_id: Some(format!("p-{n}")),
                },
            };
            records.push(async move { store.record(&job.lease, &outcome, now).await });
        }
        for done in futures::future::join_all(records).await {
            done.expect("record");
        }
    }
}

/// p50, p95 and the slowest of `runs` answers to `url`.
async fn time_page(http: &reqwest::Client, url: &str, runs: usize) -> [Duration; 3] {
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let answer = http.get(url).send().await.expect("page");
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        answer.bytes().await.expect("body");
        took.push(started.elapsed());
    }
    took.sort();
    [took[runs / 2], took[runs * 95 / 100], took[runs - 1]]
}

/// The pages to time, by name.
fn pages(count: usize, failed: &str) -> Vec<(&'static str, String)> {
    let today = OffsetDateTime::now_utc().date();
    vec![
        ("overview", "/console/".into()),
        (
            "overview figures (refresh)",
            "/console/?part=figures".into(),
        ),
        ("messages, newest", "/console/messages".into()),
        ("messages, failed", "/console/messages?status=failed".into()),
        (
            "messages, one tenant",
            "/console/messages?tenant=globex".into(),
        ),
        (
            "messages, exact recipient",
            format!("/console/messages?to=user{}%40example.com", count / 2),
        ),
        (
            "messages, recipient prefix",
            "/console/messages?to=user4242*".into(),
        ),
        (
            "messages, tenant + failed + day",
            format!("/console/messages?tenant=acme&status=failed&since={today}"),
        ),
        (
            "messages, rare transport (webhook)",
            "/console/messages?transport=webhook".into(),
        ),
        ("one message", format!("/console/messages/{failed}")),
        ("transports", "/console/transports".into()),
        ("template studio", "/console/templates".into()),
        (
            "template sources (for the page's renderer)",
            "/console/templates/sources?tenant=acme".into(),
        ),
    ]
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/mb.db", dir.path().display());
    let store: Arc<dyn JobStore> = mailbridge::queue::open(&url).await.expect("store");
    let started = Instant::now();
    fill(&store, count).await;
    eprintln!("filled {count} messages in {:.1?}", started.elapsed());
    drop(store);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let templates = root.join("templates").display().to_string();
    let vars = std::collections::BTreeMap::from([
        ("MAILBRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("MAILBRIDGE_DATABASE_URL".to_owned(), url),
        ("MAILBRIDGE_TEMPLATES".to_owned(), templates),
        (
            "MAILBRIDGE_TRANSPORT".to_owned(),
            "smtp://127.0.0.1:1?tls=none".to_owned(),
        ),
    ]);
    let settings = mailbridge::config::load(&vars).expect("settings");
    let auth = mailbridge::server::AuthMode::InsecureNoAuth;
    let parts = mailbridge::server::build(&settings, auth)
        .await
        .expect("parts");
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mailbridge::server::serve(parts, listener, async move {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let newest: serde_json::Value = http
        .get(format!("{base}/v1/messages?status=failed&limit=1"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let failed = newest["messages"][0]["id"]
        .as_str()
        .expect("a failed message");
    println!("| page ({count} messages) | p50 | p95 | slowest |\n|---|---|---|---|");
    for (name, path) in pages(count, failed) {
        let [p50, p95, max] = time_page(&http, &format!("{base}{path}"), 30).await;
        println!("| {name} | {p50:.1?} | {p95:.1?} | {max:.1?} |");
    }
    let _ = stop.send(());
    let _ = server.await;
}
