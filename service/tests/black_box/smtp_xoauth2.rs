//! SMTP with SASL XOAUTH2: tokens from a client-credentials grant or a Google
//! service account, cached, and refreshed once when the server refuses one.

use crate::smtp_support;

use std::collections::HashMap;

use mailbridge::transport::TransportError;
use smtp_support::{SmtpPeer, TokenEndpoint, make_certs, message, path_in, transport};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "s3cr3t-Value~1";

fn xoauth2_dsn(peer: &SmtpPeer, token_url: &str) -> String {
    format!(
        "smtp://noreply%40acme.example@127.0.0.1:{}?tls=none&auth=xoauth2\
         &token_url={token_url}&client_id=app-1&client_secret={SECRET}\
         &scope=https%3A%2F%2Foutlook.office365.com%2F.default",
        peer.port
    )
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

#[tokio::test]
async fn token_is_fetched_once_and_cached() {
    let tokens = TokenEndpoint::start(&["token-A"]).await;
    let peer = SmtpPeer::start(&["--xoauth2-token", "token-A"]).await;
    let smtp = transport(&xoauth2_dsn(&peer, &tokens.url_for_dsn()));

    // Concurrent first sends share one token request.
    let sends: Vec<_> = (0..3).map(message).collect();
    let results = futures::future::join_all(sends.iter().map(|m| smtp.send(m))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    smtp.send(&message(9)).await.unwrap();

    let requests = tokens.requests().await;
    assert_eq!(requests.len(), 1);
    let grant = form(&requests[0]);
    assert_eq!(grant["grant_type"], "client_credentials");
    assert_eq!(grant["client_id"], "app-1");
    assert_eq!(grant["client_secret"], SECRET);
    assert_eq!(grant["scope"], "https://outlook.office365.com/.default");
    let received = peer.received();
    assert_eq!(received.len(), 4);
    assert!(
        received
            .iter()
            .all(|r| r.auth_user.as_deref() == Some("noreply@acme.example"))
    );
}

async fn refused_token_is_replaced(style: &str) {
    let tokens = TokenEndpoint::start(&["stale", "fresh"]).await;
    let peer = SmtpPeer::start(&["--xoauth2-token", "fresh", "--xoauth2-style", style]).await;
    let smtp = transport(&xoauth2_dsn(&peer, &tokens.url_for_dsn()));

    smtp.send(&message(1)).await.unwrap();
    smtp.send(&message(2)).await.unwrap();

    assert_eq!(tokens.requests().await.len(), 2, "one refresh, then cached");
    assert_eq!(peer.received().len(), 2);
}

#[tokio::test]
async fn microsoft_style_refusal_refreshes_the_token() {
    refused_token_is_replaced("microsoft").await;
}

#[tokio::test]
async fn gmail_style_refusal_refreshes_the_token() {
    refused_token_is_replaced("gmail").await;
}

#[tokio::test]
async fn token_refused_twice_is_an_auth_failure() {
    for (style, expected) in [("microsoft", "535 5.7.3"), ("gmail", "XOAUTH2")] {
        let tokens = TokenEndpoint::start(&["bad-1", "bad-2", "bad-3"]).await;
        let peer = SmtpPeer::start(&["--xoauth2-token", "good", "--xoauth2-style", style]).await;
        let smtp = transport(&xoauth2_dsn(&peer, &tokens.url_for_dsn()));

        let err = smtp.send(&message(1)).await.unwrap_err();

        assert!(
            matches!(err, TransportError::Auth { .. }),
            "{style}: {err:?}"
        );
        assert!(err.detail().contains(expected), "{style}: {err}");
        assert!(!err.detail().contains("bad-"), "token leaked: {err}");
        assert_eq!(tokens.requests().await.len(), 2, "{style}: retried once");
        assert!(peer.received().is_empty());
    }
}

#[tokio::test]
async fn token_endpoint_refusal_is_clear_and_hides_the_secret() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS7000215: Invalid client secret provided ({SECRET}).\r\nTrace ID: 0"),
        })))
        .mount(&server)
        .await;
    let peer = SmtpPeer::start(&["--xoauth2-token", "good"]).await;
    let url = format!("{}/token", server.uri()).replace(':', "%3A");
    let smtp = transport(&xoauth2_dsn(&peer, &url));

    let err = smtp.send(&message(1)).await.unwrap_err();

    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    assert!(err.detail().contains("HTTP 401"), "{err}");
    assert!(
        err.detail()
            .contains("invalid_client: AADSTS7000215: Invalid client secret provided"),
        "{err}"
    );
    assert!(!err.detail().contains(SECRET), "secret leaked: {err}");
    assert!(!format!("{smtp:?}").contains(SECRET));
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn a_token_endpoint_that_redirects_is_not_followed_with_the_secret() {
    // A 307/308 would have the form (client_secret and all) posted again to
    // wherever it points.
    let elsewhere = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "good", "expires_in": 3599, "token_type": "Bearer",
        })))
        .mount(&elsewhere)
        .await;
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(308)
                .insert_header("location", format!("{}/steal", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    let peer = SmtpPeer::start(&["--xoauth2-token", "good"]).await;
    let url = format!("{}/token", server.uri()).replace(':', "%3A");
    let smtp = transport(&xoauth2_dsn(&peer, &url));

    let err = smtp.send(&message(1)).await.unwrap_err();

    assert!(err.detail().contains("308"), "{err}");
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "the secret went to the redirect's target"
    );
    assert!(peer.received().is_empty());
}

#[tokio::test]
async fn unreachable_token_endpoint_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = SmtpPeer::start(&["--xoauth2-token", "good"]).await;
    let url = format!("http%3A%2F%2F127.0.0.1%3A{port}%2Ftoken");
    let err = transport(&xoauth2_dsn(&peer, &url))
        .send(&message(1))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Transient { .. }), "{err:?}");
    assert!(err.detail().contains("token endpoint"), "{err}");
}

/// Google's token endpoint: checks the signed assertion like Google does.
struct GoogleTokens {
    public_key: Vec<u8>,
    token_uri: String,
}

impl Respond for GoogleTokens {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        #[derive(serde::Deserialize)]
        struct Claims {
            sub: String,
            scope: String,
        }
        let grant = form(request);
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(&self.public_key).unwrap();
        let mut rules = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        rules.set_audience(&[&self.token_uri]);
        rules.set_issuer(&["mailer@project.iam.gserviceaccount.com"]);
        let valid = grant.get("grant_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            && grant
                .get("assertion")
                .and_then(|a| jsonwebtoken::decode::<Claims>(a, &key, &rules).ok())
                .is_some_and(|t| {
                    t.claims.sub == "ada@acme.example"
                        && t.claims.scope == "https://mail.google.com/"
                });
        if valid {
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "ya29.google", "expires_in": 3599, "token_type": "Bearer",
            }))
        } else {
            ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_grant", "error_description": "Invalid JWT Signature.",
            }))
        }
    }
}

#[tokio::test]
async fn google_service_account_acts_for_the_user() {
    let keys = make_certs();
    let server = MockServer::builder().start().await;
    let token_uri = format!("{}/token", server.uri());
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(GoogleTokens {
            public_key: std::fs::read(keys.path().join("service-account.pub")).unwrap(),
            token_uri: token_uri.clone(),
        })
        .mount(&server)
        .await;
    let key_file = keys.path().join("key.json");
    let private_key = std::fs::read_to_string(keys.path().join("service-account.key")).unwrap();
    let key_json = serde_json::json!({
        "type": "service_account",
        "client_email": "mailer@project.iam.gserviceaccount.com",
        "private_key_id": "k1",
        "private_key": private_key,
        "token_uri": token_uri,
    });
    std::fs::write(&key_file, key_json.to_string()).unwrap();
    let peer =
        SmtpPeer::start(&["--xoauth2-token", "ya29.google", "--xoauth2-style", "gmail"]).await;
    let smtp = transport(&format!(
        "smtp://ada%40acme.example@127.0.0.1:{}?tls=none&auth=xoauth2&google_key_file={}",
        peer.port,
        path_in(&keys, "key.json")
    ));

    smtp.send(&message(1)).await.unwrap();
    smtp.send(&message(2)).await.unwrap();

    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let received = peer.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].auth_user.as_deref(), Some("ada@acme.example"));
}
