//! Serving limits against a real listener: a connection must send its head
//! and its body in time, connections beyond the cap get one quick answer
//! (probes as usual, anything else 503) or are closed at once, and `/healthz`
//! keeps answering.

use crate::common;

use std::time::Duration;

use common::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; what it sent before, if it
/// did so within `within`, else `None`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&received).into_owned())
}

async fn healthz_answers(server: &TestServer) {
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        server.http.get(server.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answers within 5 s")
    .expect("/healthz");
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let server = TestServer::start(&[
        ("MAILBRIDGE_MAX_CONNECTIONS", "50"),
        ("MAILBRIDGE_HEADER_TIMEOUT", "60s"),
    ])
    .await;
    let mut open = Vec::new();
    for _ in 0..200 {
        open.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // Long before the head's time is up, exactly the 150 beyond the cap are
    // closed: most at once, the few of the overflow lane after its 2 s for a head.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut closed = 0;
    while closed < 150 && tokio::time::Instant::now() < deadline {
        let mut still_open = Vec::new();
        for mut stream in open {
            if closed_within(&mut stream, Duration::from_millis(10))
                .await
                .is_some()
            {
                closed += 1;
            } else {
                still_open.push(stream);
            }
        }
        open = still_open;
    }
    assert_eq!(closed, 150, "connections beyond the cap closed at once");
    assert_eq!(open.len(), 50);
    // One leaves: once the service has seen it go, its place serves /healthz.
    drop(open.pop());
    let mut answered = false;
    for _ in 0..100 {
        let health = server.http.get(server.url("/healthz")).send().await;
        if health.is_ok_and(|r| r.status() == 200) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        answered,
        "/healthz did not answer in the freed place within 5 s"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_probes_still_answer_and_requests_get_503() {
    let server = TestServer::start(&[
        ("MAILBRIDGE_MAX_CONNECTIONS", "20"),
        ("MAILBRIDGE_HEADER_TIMEOUT", "60s"),
    ])
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // The cap is full of clients that send nothing; a probe on a new
    // connection is still answered, so an orchestrator keeps the replica.
    let mut probes_ok = false;
    for _ in 0..50 {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let health = fresh.get(server.url("/healthz")).send().await;
        if health.is_ok_and(|r| r.status() == 200) {
            probes_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(probes_ok, "/healthz did not answer beyond the cap");
    // Anything else: 503 problem+json with Retry-After, nothing stored.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let answer = fresh
        .post(server.url("/v1/messages"))
        .bearer_auth(server.token(Some("acme"), false))
        .header("content-type", "application/json")
        .body(r#"{"to":["a@example.com"],"subject":"s","text":"t"}"#)
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    assert_eq!(
        answer.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    drop(idle);
    server.stop().await;
}

/// A connection to `server` from the loopback address `source`.
async fn connect_from(server: &TestServer, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().unwrap())
        .expect("bind a loopback source");
    socket.connect(server.addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_one_host_leave_the_overflow_lane_to_probes_from_another() {
    let server = TestServer::start(&[
        ("MAILBRIDGE_MAX_CONNECTIONS", "10"),
        ("MAILBRIDGE_HEADER_TIMEOUT", "60s"),
    ])
    .await;
    // One host fills the cap and then tries to take the whole overflow
    // lane with connections that send nothing.
    let mut silent = Vec::new();
    for _ in 0..(10 + 64) {
        silent.push(connect_from(&server, "127.0.0.1").await);
    }
    // Within the 2 s those have for a head, a probe from another host gets
    // a place and its answer.
    let mut probe = connect_from(&server, "127.0.0.2").await;
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: mailbridge\r\n\r\n")
        .await
        .expect("send the probe");
    let answer = closed_within(&mut probe, Duration::from_secs(5))
        .await
        .expect("the probe's connection is answered and closed");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the probe from another host was answered: {answer:?}"
    );
    drop(silent);
    server.stop().await;
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_header_timeout() {
    let server = TestServer::start(&[("MAILBRIDGE_HEADER_TIMEOUT", "1s")]).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    for stream in &mut idle {
        assert!(
            closed_within(stream, Duration::from_secs(5))
                .await
                .is_some(),
            "a connection that sent nothing stayed open past the header timeout"
        );
    }
    healthz_answers(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_head_sent_one_byte_at_a_time_is_cut_off() {
    let server = TestServer::start(&[("MAILBRIDGE_HEADER_TIMEOUT", "1s")]).await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let trickle = async {
        for _ in 0..100 {
            if slow.write_all(b"X").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(5), trickle)
            .await
            .unwrap_or(false)
            || closed_within(&mut slow, Duration::from_millis(500))
                .await
                .is_some(),
        "a trickled head kept its connection open past the header timeout"
    );
    healthz_answers(&server).await;
    server.stop().await;
}

/// Sends a POST head announcing `length` bytes, then `sent` of them slowly.
async fn post_with_short_body(server: &TestServer, length: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        server.token(None, false)
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    for byte in sent {
        stream.write_all(&[*byte]).await.expect("body byte");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stream
}

fn assert_problem(response: &str, status: &str) {
    assert!(
        response.starts_with(&format!("HTTP/1.1 {status}")),
        "{response}"
    );
    assert!(response.contains("application/problem+json"), "{response}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_answers_408() {
    let server = TestServer::start(&[("MAILBRIDGE_BODY_TIMEOUT", "1s")]).await;
    // Announced, never sent.
    let mut missing = post_with_short_body(&server, 500, b"").await;
    let response = closed_within(&mut missing, Duration::from_secs(5)).await;
    assert_problem(&response.expect("answered and closed"), "408");
    // Sent one byte every 100 ms: still too slow for 1 s.
    let mut slow = post_with_short_body(&server, 200, b"{\"to\": [").await;
    let response = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert_problem(&response.expect("answered and closed"), "408");
    healthz_answers(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn an_announced_body_over_the_limit_is_refused_before_it_is_sent() {
    let server = TestServer::start(&[]).await;
    let mut large = post_with_short_body(&server, 2_000_000, b"").await;
    let response = closed_within(&mut large, Duration::from_secs(5)).await;
    assert_problem(&response.expect("answered and closed"), "413");
    server.stop().await;
}

/// Opens a connection and sends the head of a `POST` announcing `announced`
/// bytes, then the first `sent` of them.
async fn body_started(server: &TestServer, announced: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "POST /v1/events/sendgrid HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/json\r\nContent-Length: {announced}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // A connection refused mid-body is closed: what is left is not read.
    let _ = stream.write_all(&vec![b' '; sent]).await;
    stream
}

/// A Keycloak-sized request, answered `202`.
async fn small_request_is_stored(server: &TestServer) {
    let small = server
        .http
        .post(server.url("/v1/messages"))
        .bearer_auth(server.token(Some("acme"), false))
        .json(&serde_json::json!({"to": [{"email": "ada@example.com"}], "subject": "Hi", "text": "Hello"}))
        .send()
        .await
        .expect("a small request");
    assert_eq!(small.status(), 202);
}

#[tokio::test]
async fn an_announced_length_holds_no_memory_until_its_bytes_come() {
    let server = TestServer::start(&[("MAILBRIDGE_BODY_TIMEOUT", "60s")]).await;
    // Each announces the largest body and sends one byte: before, each took
    // a share for 1 MiB at once, and 64 of them answered every other body 503.
    let largest = mailbridge::api::MAX_BODY_BYTES;
    let mut held = Vec::new();
    for _ in 0..2 * mailbridge::listener::BODY_MEMORY / largest {
        held.push(body_started(&server, largest, 1).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    small_request_is_stored(&server).await;
    for stream in &mut held {
        assert!(
            closed_within(stream, Duration::from_millis(10))
                .await
                .is_none(),
            "a body that has barely started was refused"
        );
    }
    healthz_answers(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn bodies_in_memory_are_bounded_and_beyond_the_bound_get_503() {
    let server = TestServer::start(&[("MAILBRIDGE_BODY_TIMEOUT", "60s")]).await;
    // Each announces the largest body and sends most of it: its buffer
    // holds the announced length. Large bodies leave the reserve for small
    // ones free.
    let largest = mailbridge::api::MAX_BODY_BYTES;
    let large_room = mailbridge::listener::BODY_MEMORY - mailbridge::listener::SMALL_BODY_RESERVE;
    let fit = large_room / largest;
    let mut held = Vec::new();
    for _ in 0..fit + 10 {
        held.push(body_started(&server, largest, largest - 50_000).await);
        // Each read to its end before the next begins.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let answers = futures::future::join_all(
        held.iter_mut()
            .map(|stream| closed_within(stream, Duration::from_secs(2))),
    )
    .await;
    let mut refused = 0;
    for response in answers.into_iter().flatten() {
        assert_problem(&response, "503");
        assert!(response.contains("retry-after"), "{response}");
        refused += 1;
    }
    assert_eq!(refused, 10, "{fit} large bodies fit in the bound");
    // A Keycloak-sized request still fits beside them, and the probes answer.
    small_request_is_stored(&server).await;
    healthz_answers(&server).await;
    // Their shares come back when they go: a large body is read again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let large = server
        .http
        .post(server.url("/v1/events/sendgrid"))
        .header("content-type", "application/json")
        .body(vec![b' '; largest])
        .send()
        .await
        .expect("a large body");
    assert_ne!(large.status(), 503);
    server.stop().await;
}

#[tokio::test]
async fn a_request_head_far_over_32_kib_is_refused_with_431() {
    let server = TestServer::start(&[]).await;
    // Under the bound, a large head (cookies, a long token) is served.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..12 {
        head.push_str(&format!("X-Padding-{i}: {}\r\n", "p".repeat(2_000)));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    let response = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Before, hyper's default read heads of about 400 KiB.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        head.push_str(&format!("X-Padding-{i}: {}\r\n", "p".repeat(2_000)));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let response = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    healthz_answers(&server).await;
    server.stop().await;
}

/// Sends `GET /` on `stream` and reads its answer (`ok`).
async fn get_ok(stream: &mut TcpStream) {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while !received.ends_with(b"ok") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answer within 5 s")
            .expect("read");
        assert!(n > 0, "the connection closed before answering");
        received.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_lasts_the_idle_timeout_not_the_header_timeout() {
    use mailbridge::listener::{self, ServingLimits};
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let limits = ServingLimits {
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_connections: 10,
        drain_timeout: Duration::from_secs(10),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener::serve(socket, app, limits, async move {
        let _ = stopped.await;
    }));
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    get_ok(&mut stream).await;
    // Idle past the header timeout: still open for the next request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    get_ok(&mut stream).await;
    // Idle past the idle timeout: closed.
    assert!(
        closed_within(&mut stream, Duration::from_secs(5))
            .await
            .is_some(),
        "an idle keep-alive connection stayed open past the idle timeout"
    );
    let _ = stop.send(());
    server.await.expect("listener stopped");
}

#[tokio::test]
async fn shutdown_waits_for_a_client_that_never_reads_only_the_drain_timeout() {
    use mailbridge::listener::{self, ServingLimits};
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    let large = vec![b'x'; 16 << 20];
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let large = large.clone();
            async move { large }
        }),
    );
    let limits = ServingLimits {
        header_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_connections: 10,
        drain_timeout: Duration::from_secs(1),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener::serve(socket, app, limits, async move {
        let _ = stopped.await;
    }));
    // Asks for 16 MiB and never reads it: the answer stays half written.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = std::time::Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the listener stopped within its drain timeout, not the connection's 60 s")
        .expect("listener");
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "{:?}",
        began.elapsed()
    );
    drop(stream);
}
