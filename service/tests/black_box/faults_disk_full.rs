//! The queue's disk fills up (SQLite on a small tmpfs, mounted by the test):
//! every `202` is on disk and delivered once, every other answer is a 503
//! problem with `Retry-After` whose message is never stored nor delivered,
//! `/readyz` says 503 while commits fail, and the service recovers by itself
//! once there is room again. Needs root (to mount); skipped otherwise.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::server::TestServer;
use mailbridge::queue::sqlite::SqliteStore;
use mailbridge::queue::{JobStore, ListFilter, Status};
use serde_json::json;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn message(i: usize) -> serde_json::Value {
    json!({
        "to": [{"email": "ada@example.com"}],
        "subject": format!("m{i}"),
        // 40 KB that do not compress away.
        "text": (0..4000).map(|n| format!("{:09}\n", n * 7919 + i)).collect::<String>(),
    })
}

fn outbox_subjects(server: &TestServer) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(server.dir.path().join("outbox")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|eml| {
            eml.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_acknowledges_what_it_did_not_store() {
    let Some(disk) = SmallDisk::mount("2m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let url = format!("sqlite://{}/mb.db", disk.path().display());
    let server = TestServer::start(&[
        ("MAILBRIDGE_DATABASE_URL", url.as_str()),
        ("MAILBRIDGE_LEASE", "5s"),
    ])
    .await;

    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    let mut i = 0;
    // Groups of concurrent requests until the disk is clearly full.
    while refused < 12 && i < 400 {
        let mut group = Vec::new();
        for _ in 0..6 {
            i += 1;
            let (n, body) = (i, message(i));
            let server = &server;
            group.push(async move { (n, server.post("/v1/messages", None, &body).await) });
        }
        for (n, (status, headers, answer)) in futures::future::join_all(group).await {
            match status {
                202 => {
                    accepted.insert((format!("m{n}"), answer["id"].as_str().unwrap().to_owned()));
                }
                503 => {
                    refused += 1;
                    assert!(headers.contains_key("retry-after"), "{answer}");
                    assert_eq!(answer["status"], 503, "{answer}");
                }
                other => panic!("only 202 or 503 may answer, not {other}: {answer}"),
            }
        }
    }
    assert!(
        refused >= 12,
        "the disk never filled ({} accepted)",
        accepted.len()
    );
    assert!(!accepted.is_empty());
    let (status, body) = server.get("/readyz", "").await;
    assert_eq!(status, 503, "readiness while commits fail: {body}");

    // Room again: the service recovers by itself.
    disk.grow("64m");
    let mut ready = false;
    for _ in 0..100 {
        if server.get("/readyz", "").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz never recovered");
    for _ in 0..3 {
        i += 1;
        let (status, _, answer) = server.post("/v1/messages", None, &message(i)).await;
        assert_eq!(status, 202, "{answer}");
        accepted.insert((format!("m{i}"), answer["id"].as_str().unwrap().to_owned()));
    }

    // Every 202 is delivered, exactly once; nothing refused ever is.
    for (_, id) in &accepted {
        server
            .wait_status(id, "sent", Duration::from_secs(60))
            .await;
    }
    let mut delivered = outbox_subjects(&server);
    delivered.sort();
    let mut expected: Vec<String> = accepted.iter().map(|(s, _)| s.clone()).collect();
    expected.sort();
    assert_eq!(delivered, expected, "delivered = accepted, once each");
    server.stop().await;

    // And they survive a restart: the file holds exactly the accepted ones.
    let store = SqliteStore::open(&url).await.unwrap();
    for (_, id) in &accepted {
        let record = store
            .get(id.parse().unwrap())
            .await
            .unwrap()
            .expect("on disk");
        assert_eq!(record.status, Status::Sent);
    }
    let all = store
        .list(&ListFilter {
            limit: 10_000,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), accepted.len(), "no refused message was stored");
    drop(Arc::new(store) as Arc<dyn JobStore>);
}
