//! Amazon SNS as the carrier of SES events: the message envelope, its
//! signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) checked
//! against the signing certificate, fetched only from
//! `https://sns.<region>.amazonaws.com/….pem`, and the subscription
//! confirmation, a GET of the `SubscribeURL` (only on such a host too).
//! Only the topics named in the transport's `webhook_key` are accepted:
//! anyone can subscribe an endpoint to a topic of their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Largest signing certificate we read.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Bound of a certificate fetch or a subscription confirmation.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

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
/// certificates' public keys by URL.
#[derive(Debug, Clone)]
pub struct Sns {
    http: reqwest::Client,
    topics: Vec<String>,
    keys: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
}

impl Sns {
    /// Accepts messages of `topics` only; fetches through `http`.
    pub fn new(http: reqwest::Client, topics: Vec<String>) -> Self {
        Self {
            http,
            topics,
            keys: Arc::default(),
        }
    }

    /// The same, fetching through another client (a test's own resolver and
    /// trust roots; the URL rules stay as they are).
    pub fn with_http(&self, http: reqwest::Client) -> Self {
        Self::new(http, self.topics.clone())
    }

    /// Checks the topic, the timestamp's age and the signature of `envelope`.
    pub async fn verify(&self, envelope: &Envelope, now: OffsetDateTime) -> Result<(), Unverified> {
        if !self.topics.iter().any(|t| t == &envelope.topic_arn) {
            return Err(Unverified::new(
                "the SNS topic is not this transport's webhook_key",
            ));
        }
        let at = OffsetDateTime::parse(&envelope.timestamp, &Rfc3339)
            .map_err(|_| Unverified::new("the SNS Timestamp is not a time"))?;
        if (now - at).abs() > MAX_AGE {
            return Err(Unverified::new(
                "the SNS Timestamp is more than 10 minutes away from now (a replay?)",
            ));
        }
        let algorithm = match envelope.signature_version.as_str() {
            "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(Unverified::new("unknown SNS SignatureVersion")),
        };
        let signature = STANDARD
            .decode(envelope.signature.trim())
            .map_err(|_| Unverified::new("the SNS Signature is not base64"))?;
        let signed = envelope.string_to_sign()?;
        let key = self.public_key(&envelope.signing_cert_url).await?;
        UnparsedPublicKey::new(algorithm, key.as_slice())
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| Unverified::new("the SNS signature does not match"))
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

    /// The signing certificate's public key (DER SubjectPublicKeyInfo).
    async fn public_key(&self, cert_url: &str) -> Result<Arc<Vec<u8>>, Unverified> {
        let url = cert_url_of(cert_url)?;
        if let Some(key) = self.cached(url.as_str()) {
            return Ok(key);
        }
        let unreachable = |e: reqwest::Error| {
            Unverified::new(format!(
                "the SNS signing certificate could not be fetched: {}",
                e.without_url()
            ))
        };
        let answer = self
            .http
            .get(url.clone())
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unreachable)?;
        let pem = body_at_most(answer, MAX_CERT_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::Read(e) => unreachable(e),
                BodyError::TooLarge(_) => {
                    Unverified::new("the SNS signing certificate is too large")
                }
            })?;
        let key = Arc::new(spki_of(&pem)?);
        if let Ok(mut keys) = self.keys.lock() {
            // SNS signs with a handful of certificates; more is not SNS.
            if keys.len() >= MAX_CERTS {
                keys.clear();
            }
            keys.insert(url.to_string(), key.clone());
        }
        Ok(key)
    }

    fn cached(&self, url: &str) -> Option<Arc<Vec<u8>>> {
        self.keys.lock().ok()?.get(url).cloned()
    }
}

/// Most signing certificates kept: SNS uses one per region at a time.
const MAX_CERTS: usize = 64;

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
        sns.keys
            .lock()
            .unwrap()
            .insert(envelope.signing_cert_url.clone(), key);
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
