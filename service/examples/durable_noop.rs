//! The durable no-op baseline of `bench/run.sh`: the least an HTTP service
//! must do to answer "stored" honestly. Every request body is appended to one
//! file, and the `202` goes out only after an `fdatasync` that covers it. One
//! writer thread takes whatever arrived meanwhile and syncs it once (group
//! commit), as mailbridge's store writer does; nothing is parsed, checked or
//! indexed. mailbridge's accept rate is reported as a share of this one's.
//!
//! `cargo run --release -p mailbridge --example durable_noop -- ADDR FILE`

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::mpsc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::sync::oneshot;

/// Most bodies synced at once (mailbridge's writer takes up to 512 too).
const MAX_GROUP: usize = 512;

/// A body to store, and where to say that it is on disk.
type Append = (Bytes, oneshot::Sender<bool>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(path)) = (args.next(), args.next()) else {
        return Err("usage: durable_noop ADDR FILE".into());
    };
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let (appends, inbox) = mpsc::channel::<Append>();
    std::thread::spawn(move || write_groups(file, &inbox));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/v1/messages", post(accept))
            .with_state(appends);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app).await
    })?;
    Ok(())
}

/// Answers 202 once the body is on disk, 503 if the write or sync failed.
async fn accept(State(appends): State<mpsc::Sender<Append>>, body: Bytes) -> (StatusCode, String) {
    let (done, synced) = oneshot::channel();
    if appends.send((body, done)).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    match synced.await {
        Ok(true) => (
            StatusCode::ACCEPTED,
            format!(r#"{{"id":"{}","status":"queued"}}"#, uuid::Uuid::now_v7()),
        ),
        _ => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
    }
}

/// Appends whatever is waiting as one write, syncs it, answers every body of it.
fn write_groups(mut file: File, inbox: &mpsc::Receiver<Append>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut bytes = Vec::new();
    while let Ok(first) = inbox.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        bytes.clear();
        for (body, _) in &group {
            // A length prefix keeps the file readable record by record.
            bytes.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
            bytes.extend_from_slice(body);
        }
        let stored = file
            .write_all(&bytes)
            .and_then(|()| file.sync_data())
            .is_ok();
        for (_, done) in group.drain(..) {
            let _ = done.send(stored);
        }
    }
}
