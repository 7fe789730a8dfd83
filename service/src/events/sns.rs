//! Amazon SNS as the carrier of SES events: the message envelope, its
//! signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) checked
//! against the signing certificate, fetched only from
//! `https://sns.<region>.amazonaws.com/….pem`, and the subscription
//! confirmation, a GET of the `SubscribeURL` (only on such a host too).
//! Only the topics named in the transport's `webhook_key` are accepted:
//! anyone can subscribe an endpoint to a topic of their own.
//!
//! Whoever knows a topic's ARN can post messages naming any `.pem` on an
//! SNS host, each a fetch: a fetch that was answered with no certificate
//! of SNS (a 404, an unreadable certificate) is remembered for
//! [`FAILURE_KEPT`] (its URL is refused, 401, without a fetch), at most
//! [`MAX_FETCHES`] run at once (a message that finds no place within
//! [`FETCH_WAIT`] is answered "try again", 503, which SNS retries), and
//! what is kept of either is bounded.
//!
//! A fetch that did not reach the certificate (no connection, a timeout,
//! a 5xx, 429 or 408 from the host) says nothing about the message: it is
//! answered "try again" (503) too, and remembered only for
//! [`UNREACHABLE_KEPT`], well within the 20 s SNS waits before a retry, so
//! that each retry fetches again. A 401 would lose the event: SNS does not
//! retry a 4xx.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use crate::transport::http::{BodyError, body_at_most};

use super::MAX_AGE;
use super::signature::Unverified;
use super::source::Refused;

/// Largest signing certificate we read.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Bound of a certificate fetch or a subscription confirmation.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most certificate fetches running at once (per SES transport).
const MAX_FETCHES: usize = 2;
/// Longest a message waits for a fetch to have a place; then it is answered
/// "try again" (503).
const FETCH_WAIT: Duration = Duration::from_secs(2);
/// How long a fetch answered with no certificate of SNS is answered from
/// memory: SNS's real certificates do not come and go, and a message naming
/// one that failed so (a 404, an unreadable certificate) would fail again.
const FAILURE_KEPT: Duration = Duration::from_secs(120);
/// How long a fetch that did not reach the certificate is answered "try
/// again" from memory: long enough that a burst of messages during an
/// outage of the host does not fetch for each, short enough that SNS's next
/// retry (20 s later by default) fetches again.
const UNREACHABLE_KEPT: Duration = Duration::from_secs(5);
/// Most failed fetches remembered; beyond, the oldest is forgotten.
const MAX_FAILED: usize = 1024;

/// An SNS HTTP(S) message: a notification or a (un)subscription confirmation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// SNS's id of this message.
    pub message_id: String,
    /// The topic.
    pub topic_arn: String,
    /// The payload (for SES: its event as JSON text).
    pub message: String,
    /// When SNS published it.
    pub timestamp: String,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    pub signature_version: String,
    /// Base64 signature.
    pub signature: String,
    /// Where the signing certificate is.
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    /// A notification's subject, if any.
    pub subject: Option<String>,
    /// A confirmation's token.
    pub token: Option<String>,
    /// A confirmation's URL.
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
}

impl Envelope {
    /// The text SNS signs: name/value lines of the fields each type signs, in order.
    pub fn string_to_sign(&self) -> Result<String, Unverified> {
        let fields: Vec<(&str, Option<&str>)> = match self.kind.as_str() {
            "Notification" => vec![
                ("Message", Some(&self.message)),
                ("MessageId", Some(&self.message_id)),
                ("Subject", self.subject.as_deref()),
                ("Timestamp", Some(&self.timestamp)),
                ("TopicArn", Some(&self.topic_arn)),
                ("Type", Some(&self.kind)),
            ],
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => vec![
                ("Message", Some(&self.message)),
                ("MessageId", Some(&self.message_id)),
                ("SubscribeURL", self.subscribe_url.as_deref()),
                ("Timestamp", Some(&self.timestamp)),
                ("Token", self.token.as_deref()),
                ("TopicArn", Some(&self.topic_arn)),
                ("Type", Some(&self.kind)),
            ],
            other => {
                return Err(Unverified::new(format!(
                    "unknown SNS message type `{}`",
                    crate::api::error::excerpt(other)
                )));
            }
        };
        let mut text = String::new();
        for (name, value) in fields {
            if let Some(value) = value {
                text.push_str(name);
                text.push('\n');
                text.push_str(value);
                text.push('\n');
            }
        }
        Ok(text)
    }
}

/// `text` as a URL of SNS itself: https on `sns.<region>.amazonaws.com`
/// (or `.amazonaws.com.cn`), default port, no credentials.
pub fn sns_url(text: &str) -> Result<Url, Unverified> {
    let refuse = || Unverified::new("the URL is not https://sns.<region>.amazonaws.com/…");
    let url = Url::parse(text).map_err(|_| refuse())?;
    let host = url.host_str().ok_or_else(refuse)?;
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .ok_or_else(refuse)?;
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if url.scheme() != "https"
        || !region_ok
        || url.port().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(refuse());
    }
    Ok(url)
}

/// Whether `text` is the ARN of an SNS topic
/// (`arn:<partition>:sns:<region>:<account>:<name>`), checked at start: a
/// subscription's ARN, or any other text, would refuse every message.
pub fn check_topic(text: &str) -> Result<(), &'static str> {
    match text.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, "sns", region, account, name]
            if [partition, region, account, name]
                .iter()
                .all(|p| !p.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(
            "`webhook_key` is not the ARN of an SNS topic (arn:aws:sns:<region>:<account>:<topic>)",
        ),
    }
}

/// Verifies SNS messages and confirms subscriptions, caching signing
/// certificates' public keys (and failed fetches) by URL.
#[derive(Debug, Clone)]
pub struct Sns {
    http: reqwest::Client,
    topics: Vec<String>,
    certificates: Arc<Mutex<Certificates>>,
    /// The places of certificate fetches ([`MAX_FETCHES`]).
    fetches: Arc<tokio::sync::Semaphore>,
}

impl Sns {
    /// Accepts messages of `topics` only; fetches through `http`.
    pub fn new(http: reqwest::Client, topics: Vec<String>) -> Self {
        Self {
            http,
            topics,
            certificates: Arc::default(),
            fetches: Arc::new(tokio::sync::Semaphore::new(MAX_FETCHES)),
        }
    }

    /// The same, fetching through another client (a test's own resolver and
    /// trust roots; the URL rules stay as they are).
    pub fn with_http(&self, http: reqwest::Client) -> Self {
        Self::new(http, self.topics.clone())
    }

    /// Checks the topic, the timestamp's age and the signature of
    /// `envelope`: [`Refused::Busy`] when its certificate is to be fetched
    /// and no fetch has a place, or its fetch did not reach it (see
    /// [`UNREACHABLE_KEPT`]), else [`Refused::Unverified`] if it fails.
    pub async fn verify(&self, envelope: &Envelope, now: OffsetDateTime) -> Result<(), Refused> {
        if !self.topics.iter().any(|t| t == &envelope.topic_arn) {
            return Err(
                Unverified::new("the SNS topic is not this transport's webhook_key").into(),
            );
        }
        let at = OffsetDateTime::parse(&envelope.timestamp, &Rfc3339)
            .map_err(|_| Unverified::new("the SNS Timestamp is not a time"))?;
        if (now - at).abs() > MAX_AGE {
            return Err(Unverified::new(
                "the SNS Timestamp is more than 10 minutes away from now (a replay?)",
            )
            .into());
        }
        let algorithm = match envelope.signature_version.as_str() {
            "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(Unverified::new("unknown SNS SignatureVersion").into()),
        };
        let signature = STANDARD
            .decode(envelope.signature.trim())
            .map_err(|_| Unverified::new("the SNS Signature is not base64"))?;
        let signed = envelope.string_to_sign()?;
        let key = self.public_key(&envelope.signing_cert_url).await?;
        UnparsedPublicKey::new(algorithm, key.as_slice())
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| Unverified::new("the SNS signature does not match").into())
    }

    /// Confirms a verified subscription by a GET of its `SubscribeURL`.
    pub async fn confirm(&self, envelope: &Envelope) -> Result<(), String> {
        let url = envelope
            .subscribe_url
            .as_deref()
            .ok_or("the confirmation has no SubscribeURL")?;
        let url = sns_url(url).map_err(|e| e.0)?;
        let answer = self
            .http
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("confirming the SNS subscription: {}", e.without_url()))?;
        if !answer.status().is_success() {
            return Err(format!(
                "SNS answered {} to the confirmation",
                answer.status()
            ));
        }
        Ok(())
    }

    /// The signing certificate's public key (DER SubjectPublicKeyInfo):
    /// kept, or fetched when one of [`MAX_FETCHES`] places is free within
    /// [`FETCH_WAIT`]. A failed fetch is remembered for [`FAILURE_KEPT`],
    /// one that did not reach the certificate for [`UNREACHABLE_KEPT`].
    async fn public_key(&self, cert_url: &str) -> Result<Arc<Vec<u8>>, Refused> {
        let url = cert_url_of(cert_url)?;
        if let Some(known) = self.known(url.as_str()) {
            return known;
        }
        let place = tokio::time::timeout(FETCH_WAIT, self.fetches.acquire()).await;
        let Ok(Ok(_place)) = place else {
            // Not remembered: the certificate may be fine, and SNS retries.
            return Err(Refused::Busy(
                "too many SNS signing certificates are being fetched at once; try again shortly"
                    .into(),
            ));
        };
        // Fetched (or failed) while this message waited?
        if let Some(known) = self.known(url.as_str()) {
            return known;
        }
        let fetched = self.fetch(&url).await;
        if let Ok(mut certificates) = self.certificates.lock() {
            match &fetched {
                Ok(key) => certificates.keep(url.as_str(), key.clone()),
                Err(why) => certificates.failed(url.as_str(), why, Instant::now()),
            }
        }
        fetched.map_err(Failure::refusal)
    }

    /// The key kept for `url`, or the failure of its fetch while remembered.
    fn known(&self, url: &str) -> Option<Result<Arc<Vec<u8>>, Refused>> {
        self.certificates.lock().ok()?.known(url, Instant::now())
    }

    /// Fetches the certificate at `url` and reads its public key.
    async fn fetch(&self, url: &Url) -> Result<Arc<Vec<u8>>, Failure> {
        let unreachable = |why: &dyn std::fmt::Display| {
            Failure::Unreachable(format!(
                "the SNS signing certificate could not be fetched: {why}; try again shortly"
            ))
        };
        let answer = self
            .http
            .get(url.clone())
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(&e.without_url()))?;
        let status = answer.status();
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            return Err(unreachable(&format_args!("the host answered {status}")));
        }
        if !status.is_success() {
            return Err(Failure::Refused(format!(
                "the SNS signing certificate could not be fetched: the host answered {status}"
            )));
        }
        let pem = body_at_most(answer, MAX_CERT_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::Read(e) => unreachable(&e.without_url()),
                BodyError::TooLarge(_) => {
                    Failure::Refused("the SNS signing certificate is too large".into())
                }
            })?;
        let key = spki_of(&pem).map_err(|why| Failure::Refused(why.0))?;
        Ok(Arc::new(key))
    }
}

/// Why a certificate's fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The host answered with no certificate of SNS (a 404, a body that is
    /// no certificate, one too large): refused, 401, and remembered for
    /// [`FAILURE_KEPT`].
    Refused(String),
    /// The certificate was not reached (no connection, a timeout, a 5xx,
    /// 429 or 408): "try again", 503, remembered for [`UNREACHABLE_KEPT`].
    Unreachable(String),
}

impl Failure {
    /// How long the failure is answered from memory.
    fn kept(&self) -> Duration {
        match self {
            Failure::Refused(_) => FAILURE_KEPT,
            Failure::Unreachable(_) => UNREACHABLE_KEPT,
        }
    }

    /// The answer to a message whose certificate failed so.
    fn refusal(self) -> Refused {
        match self {
            Failure::Refused(why) => Unverified::new(why).into(),
            Failure::Unreachable(why) => Refused::Busy(why),
        }
    }
}

/// Most signing certificates kept: SNS uses one per region at a time.
const MAX_CERTS: usize = 64;

/// What is known of signing certificates by URL: the public keys fetched
/// (at most [`MAX_CERTS`]) and the fetches that failed, with when and why
/// (at most [`MAX_FAILED`], each for as long as its [`Failure::kept`]).
#[derive(Debug, Default)]
struct Certificates {
    keys: HashMap<String, Arc<Vec<u8>>>,
    failed: HashMap<String, (Instant, Failure)>,
}

impl Certificates {
    /// The key of `url`, or the answer to its failed fetch if that is
    /// remembered at `now`.
    fn known(&self, url: &str, now: Instant) -> Option<Result<Arc<Vec<u8>>, Refused>> {
        if let Some(key) = self.keys.get(url) {
            return Some(Ok(key.clone()));
        }
        let (at, why) = self.failed.get(url)?;
        (now.saturating_duration_since(*at) < why.kept()).then(|| Err(why.clone().refusal()))
    }

    /// Keeps the key of `url`.
    fn keep(&mut self, url: &str, key: Arc<Vec<u8>>) {
        // SNS signs with a handful of certificates; more is not SNS.
        if self.keys.len() >= MAX_CERTS {
            self.keys.clear();
        }
        self.keys.insert(url.to_owned(), key);
        self.failed.remove(url);
    }

    /// Remembers that the fetch of `url` failed at `now`, and why.
    fn failed(&mut self, url: &str, why: &Failure, now: Instant) {
        if self.failed.len() >= MAX_FAILED {
            self.failed
                .retain(|_, (at, why)| now.saturating_duration_since(*at) < why.kept());
        }
        if self.failed.len() >= MAX_FAILED {
            let oldest = self.failed.iter().min_by_key(|(_, (at, _))| *at);
            if let Some(oldest) = oldest.map(|(url, _)| url.clone()) {
                self.failed.remove(&oldest);
            }
        }
        self.failed.insert(url.to_owned(), (now, why.clone()));
    }
}

/// A `SigningCertURL`: an SNS URL of a `.pem` with no query or fragment,
/// so that one certificate has one URL (its cache key), and a message that
/// varies them cannot have a certificate fetched and kept for each.
fn cert_url_of(text: &str) -> Result<Url, Unverified> {
    let url = sns_url(text)?;
    if !url.path().ends_with(".pem") || url.query().is_some() || url.fragment().is_some() {
        return Err(Unverified::new(
            "the SigningCertURL is not a .pem of SNS without query or fragment",
        ));
    }
    Ok(url)
}

/// The public key (DER SubjectPublicKeyInfo) of a PEM certificate.
fn spki_of(pem: &[u8]) -> Result<Vec<u8>, Unverified> {
    let unreadable = || Unverified::new("the SNS signing certificate cannot be read");
    let der = CertificateDer::from_pem_slice(pem).map_err(|_| unreadable())?;
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| unreadable())?;
    Ok(cert.subject_public_key_info().as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_hosts_over_https_are_accepted() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
        ] {
            assert!(sns_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us_east.amazonaws.com/x.pem",
            "https://xsns.us-east-1.amazonaws.com/x.pem",
        ] {
            assert!(sns_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_certificate_has_one_url_without_query_or_fragment() {
        let pem = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem";
        assert!(cert_url_of(pem).is_ok());
        for bad in [
            format!("{pem}#1"),
            format!("{pem}?v=1"),
            format!("{pem}?"),
            "https://sns.us-east-1.amazonaws.com/x.txt".to_owned(),
        ] {
            assert!(cert_url_of(&bad).is_err(), "{bad}");
        }
    }

    /// AWS's published example: a notification SNS really signed and the
    /// certificate it was signed with, the fixtures of the signature check
    /// of the AWS SDK for Java (`services/sns/src/test/resources/…`).
    #[tokio::test]
    async fn the_published_aws_example_verifies() {
        let message = include_str!("../../tests/fixtures/published/sns-notification.json");
        let cert = include_bytes!("../../tests/fixtures/published/sns-signing-cert.pem");
        let envelope: Envelope = serde_json::from_str(message).unwrap();
        let topic = envelope.topic_arn.clone();
        let sns = Sns::new(reqwest::Client::new(), vec![topic]);
        // As if fetched from its SigningCertURL (no network in tests).
        let key = Arc::new(spki_of(cert).unwrap());
        sns.certificates
            .lock()
            .unwrap()
            .keep(&envelope.signing_cert_url, key);
        let sent_at = OffsetDateTime::parse(&envelope.timestamp, &Rfc3339).unwrap();
        sns.verify(&envelope, sent_at).await.unwrap();

        let tampered = Envelope {
            message: "boo!".into(),
            ..envelope.clone()
        };
        assert!(sns.verify(&tampered, sent_at).await.is_err());
        let unsubjected = Envelope {
            subject: None,
            ..envelope.clone()
        };
        assert!(sns.verify(&unsubjected, sent_at).await.is_err());
        let today = OffsetDateTime::now_utc();
        assert!(sns.verify(&envelope, today).await.is_err(), "a replay");
    }

    const HOST: &str = "sns.us-east-1.amazonaws.com";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses";

    /// A stand-in for SNS's host that counts the connections made to it and
    /// closes each at once (every fetch fails) or holds it (every fetch
    /// hangs); and a client that reaches it under SNS's name.
    async fn sns_host(hold: bool) -> (reqwest::Client, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if hold {
                    held.push(connection);
                }
            }
        });
        let http = reqwest::Client::builder()
            .resolve(HOST, address)
            .build()
            .unwrap();
        (http, accepted)
    }

    /// A notification of [`TOPIC`] whose certificate is at `cert_url`.
    fn notification(cert_url: &str) -> Envelope {
        Envelope {
            kind: "Notification".into(),
            message_id: "m-1".into(),
            topic_arn: TOPIC.into(),
            message: "{}".into(),
            timestamp: OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
            signature_version: "2".into(),
            signature: "AAAA".into(),
            signing_cert_url: cert_url.into(),
            subject: None,
            token: None,
            subscribe_url: None,
        }
    }

    #[tokio::test]
    async fn a_certificate_host_out_of_reach_is_answered_try_again_and_asked_again_soon() {
        // The host takes each connection and closes it: no certificate was
        // read, so nothing is known of the message; SNS retries a 503, not
        // a 401.
        let (http, accepted) = sns_host(false).await;
        let accepted = move || accepted.load(std::sync::atomic::Ordering::SeqCst);
        let sns = Sns::new(http, vec![TOPIC.into()]);
        let url = format!("https://{HOST}/SimpleNotificationService-1.pem");
        for _ in 0..3 {
            let now = OffsetDateTime::now_utc();
            let error = sns.verify(&notification(&url), now).await.unwrap_err();
            assert!(
                matches!(&error, Refused::Busy(why) if why.contains("could not be fetched")),
                "{error}"
            );
        }
        assert_eq!(accepted(), 1, "a burst is answered from memory");
        let other = format!("https://{HOST}/SimpleNotificationService-2.pem");
        let now = OffsetDateTime::now_utc();
        let error = sns.verify(&notification(&other), now).await.unwrap_err();
        assert!(matches!(error, Refused::Busy(_)), "{error}");
        assert_eq!(accepted(), 2);
        // Once UNREACHABLE_KEPT has passed (SNS's retry comes 20 s later),
        // the certificate is fetched again, not refused from memory.
        if let Ok(mut certificates) = sns.certificates.lock() {
            let (at, _) = certificates.failed.get_mut(&url).unwrap();
            *at = at.checked_sub(UNREACHABLE_KEPT).unwrap();
        }
        let now = OffsetDateTime::now_utc();
        let error = sns.verify(&notification(&url), now).await.unwrap_err();
        assert!(matches!(error, Refused::Busy(_)), "{error}");
        assert_eq!(accepted(), 3);
    }

    #[tokio::test]
    async fn at_most_two_certificate_fetches_run_at_once() {
        let (http, accepted) = sns_host(true).await;
        let accepted = move || accepted.load(std::sync::atomic::Ordering::SeqCst);
        let sns = Sns::new(http, vec![TOPIC.into()]);
        let url = |n: u32| format!("https://{HOST}/SimpleNotificationService-{n}.pem");
        let mut checks = tokio::task::JoinSet::new();
        for n in 0..6 {
            let (sns, envelope) = (sns.clone(), notification(&url(n)));
            checks.spawn(async move {
                let now = OffsetDateTime::now_utc();
                sns.verify(&envelope, now).await.unwrap_err()
            });
        }
        // Two fetches hang; the other four messages are answered "try again".
        let refused = tokio::time::timeout(Duration::from_secs(8), async {
            let mut refused = Vec::new();
            while refused.len() < 4 {
                refused.push(checks.join_next().await.unwrap().unwrap());
            }
            refused
        })
        .await
        .expect("the messages beyond the bound were answered");
        for refused in refused {
            assert!(matches!(refused, Refused::Busy(_)), "{refused}");
        }
        assert_eq!(accepted(), 2);
        checks.abort_all();
        while checks.join_next().await.is_some() {}
        // A message refused for want of a place is not remembered as failed:
        // its certificate is fetched once a place is free.
        let envelope = notification(&url(5));
        let again = tokio::spawn(async move {
            let now = OffsetDateTime::now_utc();
            sns.verify(&envelope, now).await
        });
        for _ in 0..100 {
            if accepted() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted(), 3);
        again.abort();
    }

    #[test]
    fn failed_fetches_are_remembered_for_a_while_and_a_bounded_number() {
        let mut certificates = Certificates::default();
        let start = Instant::now();
        let why = Failure::Refused("the SNS signing certificate could not be fetched: 404".into());
        for n in 0..MAX_FAILED + 10 {
            let at = start + Duration::from_millis(n as u64);
            certificates.failed(&format!("https://{HOST}/{n}.pem"), &why, at);
        }
        assert_eq!(certificates.failed.len(), MAX_FAILED);
        let later = start + Duration::from_secs(1);
        let url = |n: usize| format!("https://{HOST}/{n}.pem");
        assert!(
            certificates.known(&url(0), later).is_none(),
            "the oldest went"
        );
        let last = certificates.known(&url(MAX_FAILED + 9), later);
        assert!(
            matches!(&last, Some(Err(Refused::Unverified(e))) if e.0.contains("404")),
            "{last:?}"
        );
        let much_later = start + FAILURE_KEPT + Duration::from_secs(2);
        assert!(
            certificates
                .known(&url(MAX_FAILED + 9), much_later)
                .is_none()
        );
        // Those forgotten make room without evicting the remembered.
        certificates.failed(&url(0), &why, much_later);
        assert_eq!(certificates.failed.len(), 1);

        let key = Arc::new(vec![1]);
        for n in 0..MAX_CERTS * 2 {
            certificates.keep(&url(n), key.clone());
            assert!(certificates.keys.len() <= MAX_CERTS);
        }
        assert!(
            certificates.failed.is_empty(),
            "a key fetched is no failure"
        );
        let newest = certificates.known(&url(MAX_CERTS * 2 - 1), much_later);
        assert!(matches!(newest, Some(Ok(_))));
    }

    #[test]
    fn a_fetch_that_did_not_reach_the_certificate_is_remembered_briefly_as_try_again() {
        let mut certificates = Certificates::default();
        let start = Instant::now();
        let url = format!("https://{HOST}/SimpleNotificationService-1.pem");
        let down = Failure::Unreachable("the host answered 503 Service Unavailable".into());
        certificates.failed(&url, &down, start);
        let soon = certificates.known(&url, start + Duration::from_secs(1));
        assert!(matches!(soon, Some(Err(Refused::Busy(_)))), "{soon:?}");
        // Gone before SNS's first retry, 20 s later: that retry fetches again.
        assert!(UNREACHABLE_KEPT < Duration::from_secs(20));
        assert!(certificates.known(&url, start + UNREACHABLE_KEPT).is_none());
        // Room is made by forgetting it, not a refusal still remembered.
        let refused = Failure::Refused("the SNS signing certificate cannot be read".into());
        for n in 0..MAX_FAILED - 1 {
            certificates.failed(&format!("https://{HOST}/{n}.pem"), &refused, start);
        }
        let later = start + UNREACHABLE_KEPT;
        certificates.failed(&format!("https://{HOST}/last.pem"), &refused, later);
        assert!(
            certificates
                .failed
                .contains_key(&format!("https://{HOST}/0.pem"))
        );
        assert!(!certificates.failed.contains_key(&url));
    }

    #[test]
    fn only_an_answer_with_no_certificate_is_refused() {
        let refused = Failure::Refused("no certificate".into()).refusal();
        assert!(matches!(refused, Refused::Unverified(_)), "{refused}");
        let down = Failure::Unreachable("timed out".into()).refusal();
        assert!(matches!(down, Refused::Busy(_)), "{down}");
    }

    #[test]
    fn a_notification_signs_its_subject_only_when_present() {
        let envelope = Envelope {
            kind: "Notification".into(),
            message_id: "m-1".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:ses".into(),
            message: "{}".into(),
            timestamp: "2026-12-04T22:00:00.000Z".into(),
            signature_version: "2".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subject: None,
            token: None,
            subscribe_url: None,
        };
        assert_eq!(
            envelope.string_to_sign().unwrap(),
            "Message\n{}\nMessageId\nm-1\nTimestamp\n2026-12-04T22:00:00.000Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:ses\nType\nNotification\n"
        );
    }
}
