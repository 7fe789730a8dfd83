//! `failover(…)` and `roundrobin(…)` as DSNs, over real HTTP transports: one
//! whose endpoint refuses connections and one answered by a Graph mock.

use mailbridge::email::{Mailbox, OutgoingMessage};
use mailbridge::transport::{Dsn, DsnError, from_dsn};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn graph(endpoint: &str) -> String {
    format!(
        "microsoftgraph+api://app:secret@default?user=no-reply%40acme.example&endpoint={endpoint}&token_url={endpoint}/token"
    )
}

fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn graph_mock(sends: u64) -> MockServer {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "t", "expires_in": 3600})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/users/no-reply@acme.example/sendMail"))
        .respond_with(ResponseTemplate::new(202))
        .expect(sends)
        .mount(&server)
        .await;
    server
}

fn message() -> OutgoingMessage {
    OutgoingMessage::plain(
        "acme",
        Mailbox::new("no-reply@acme.example"),
        Mailbox::new("ada@example.com"),
        "Hello",
        "Hi",
    )
}

#[tokio::test]
async fn failover_delivers_through_the_second_when_the_first_is_down() {
    let up = graph_mock(2).await;
    let dsn = format!("failover({} {})", graph(&closed_port()), graph(&up.uri()));
    let transport = from_dsn(&Dsn::parse(&dsn).unwrap()).unwrap();
    transport.send(&message()).await.unwrap();
    transport.send(&message()).await.unwrap();
}

#[tokio::test]
async fn all_down_names_each_transport_without_secrets() {
    let dsn = format!(
        "failover({} {})",
        graph(&closed_port()),
        graph(&closed_port())
    );
    let err = from_dsn(&Dsn::parse(&dsn).unwrap())
        .unwrap()
        .send(&message())
        .await
        .unwrap_err();
    assert!(err.is_transient());
    let text = err.detail();
    assert!(
        text.contains("#1 microsoftgraph+api://default")
            && text.contains("#2 microsoftgraph+api://default"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn roundrobin_spreads_messages() {
    let (a, b) = (graph_mock(2).await, graph_mock(2).await);
    let dsn = format!("roundrobin({} {})", graph(&a.uri()), graph(&b.uri()));
    let transport = from_dsn(&Dsn::parse(&dsn).unwrap()).unwrap();
    for _ in 0..4 {
        transport.send(&message()).await.unwrap();
    }
}

#[test]
fn an_invalid_member_makes_the_whole_dsn_invalid() {
    let err =
        from_dsn(&Dsn::parse("failover(nosuch://x microsoftgraph+api://a:b@default)").unwrap())
            .unwrap_err();
    assert_eq!(err, DsnError::UnknownScheme("nosuch".into()));
}
