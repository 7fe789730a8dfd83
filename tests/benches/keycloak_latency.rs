//! How long Keycloak's `execute-actions-email` takes when the mail server is
//! slow (every SMTP reply after 100 ms, like a distant provider): with
//! Keycloak's built-in SMTP sender, and with mailbridge. One Keycloak, two
//! realms: one opted out of mailbridge (`mailbridge = off` in its SMTP
//! settings), one through it.
//!
//! Run with `cargo bench -p e2e --bench keycloak_latency` (CALLS=50 by default).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::keycloak::Keycloak;
use support::{Service, SmtpServer, free_port};

const SECRET: &str = "bench-shared-secret-0123456789abcdef-0123";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    let logs = tempfile::tempdir().expect("temp dir");
    let smtp = SmtpServer::start_with(&["--reply-delay", "0.1"]).await;
    let mb_port = free_port();
    let _service = Service::start(mb_port, smtp.port, SECRET).await;
    let options = [
        ("url", format!("http://127.0.0.1:{mb_port}")),
        ("secret", SECRET.to_owned()),
    ];
    let kc = Keycloak::start(&options, logs.path()).await;
    let admin = kc.admin().await;
    admin.create_realm("bridged", smtp.port).await;
    admin.create_realm("direct", smtp.port).await;
    let (status, body, _) = admin
        .call(Method::PUT, "/direct", Some(json!({"smtpServer": {
            "host": "127.0.0.1", "port": smtp.port.to_string(), "from": "no-reply@direct.example", "mailbridge": "off",
        }})))
        .await;
    assert_eq!(status, 204, "{body}");
    let direct_user = admin
        .create_user("direct", "ada", "ada@direct.example", "en")
        .await;
    let bridged_user = admin
        .create_user("bridged", "ada", "ada@bridged.example", "en")
        .await;

    // A few calls first, so that both paths are warm.
    measure(&kc, "direct", &direct_user, 3).await;
    measure(&kc, "bridged", &bridged_user, 3).await;
    let direct = measure(&kc, "direct", &direct_user, calls).await;
    let bridged = measure(&kc, "bridged", &bridged_user, calls).await;
    println!(
        "execute-actions-email, {calls} calls each, SMTP server answering every command after 100 ms:"
    );
    report("Keycloak's built-in SMTP sender", &direct);
    report("through mailbridge", &bridged);
    let deadline = Instant::now() + Duration::from_secs(120);
    while smtp.count_to("ada@bridged.example") < calls + 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "delivered: {} direct, {} through mailbridge",
        smtp.count_to("ada@direct.example"),
        smtp.count_to("ada@bridged.example")
    );
    kc.stop().await;
}

async fn measure(kc: &Keycloak, realm: &str, user: &str, calls: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(calls);
    let mut admin = kc.admin().await;
    for call in 0..calls {
        if call % 10 == 9 {
            // Admin tokens live a minute; the direct path can take longer than that for ten calls.
            admin = kc.admin().await;
        }
        let started = Instant::now();
        let (status, body, _) = admin
            .call(
                Method::PUT,
                &format!("/{realm}/users/{user}/execute-actions-email"),
                Some(json!(["UPDATE_PASSWORD"])),
            )
            .await;
        took.push(started.elapsed());
        assert_eq!(status, 204, "{realm}: {body}");
    }
    took.sort();
    took
}

fn report(what: &str, sorted: &[Duration]) {
    let at =
        |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1];
    println!(
        "  {what:<32} median {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3
    );
}
