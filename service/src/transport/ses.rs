//! Amazon SES v2 `SendEmail` (`ses+api://ACCESS_KEY:SECRET_KEY@default?region=R`),
//! signed with SigV4 (service name `ses`).
//!
//! Without credentials in the DSN, the standard `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` are read once, when the
//! transport is built; without those either, the AWS SDK's default
//! credential chain is used (see `identity`). The region falls back to `AWS_REGION`.
//! Options: `region`, `endpoint` (base URL, default
//! `https://email.{region}.amazonaws.com`), `configuration_set`.

mod body;
mod error;
mod identity;

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::Deserialize;

use self::identity::Identity;
use super::{Delivery, Dsn, DsnError, Transport, TransportError, http, mime};
use crate::email::OutgoingMessage;

/// Delivers through the SES v2 API. `Debug` never shows the secret key.
pub struct SesTransport {
    http: reqwest::Client,
    url: String,
    region: String,
    identity: Identity,
    configuration_set: Option<String>,
}

impl fmt::Debug for SesTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SesTransport")
            .field("url", &self.url)
            .field("region", &self.region)
            .field("credentials", &self.identity.describe())
            .field("configuration_set", &self.configuration_set)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendEmailAnswer {
    message_id: Option<String>,
}

impl SesTransport {
    /// Builds the transport from its DSN, falling back to the process environment.
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        Self::from_dsn_with_env(dsn, http::client()?, |name| std::env::var(name).ok())
    }

    /// [`from_dsn`](Self::from_dsn) with the environment given as a lookup (tests).
    pub fn from_dsn_with_env(
        dsn: &Dsn,
        http: reqwest::Client,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, DsnError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let region = dsn
            .option("region")
            .map(str::to_owned)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| invalid(dsn, "missing option `region` (or AWS_REGION)"))?;
        let base = http::endpoint(dsn, &format!("https://email.{region}.amazonaws.com"))?;
        let identity = identity(dsn, &region, env)?;
        Ok(Self {
            http,
            identity,
            url: http::join(&base, &["v2", "email", "outbound-emails"]).to_string(),
            region,
            configuration_set: dsn.option("configuration_set").map(str::to_owned),
        })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, …) for a POST of `body`.
    fn signature(
        &self,
        credentials: &Credentials,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, TransportError> {
        let failed = |e: &dyn fmt::Display| {
            TransportError::permanent(format!("cannot sign the SES request: {e}"))
        };
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ses")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let headers = [("content-type", "application/json")];
        let request = SignableRequest::new(
            "POST",
            &self.url,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

/// One send's view of the transport: with the credentials of that moment.
/// `Debug` shows the transport's, never the credentials.
struct Signed<'a> {
    ses: &'a SesTransport,
    credentials: Credentials,
}

impl fmt::Debug for Signed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ses.fmt(f)
    }
}

impl http::Provider for Signed<'_> {
    const NAME: &'static str = "SES";

    /// `SendEmail` with the raw message, signed.
    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        // SES takes no SMTPUTF8: IDN domains go in their ASCII form.
        let eml = mime::to_eml(message, mime::AddressForm::Ascii)?;
        let body = serde_json::to_vec(&body::SendEmail::new(
            message,
            &eml,
            self.ses.configuration_set.as_deref(),
        ))
        .map_err(|e| TransportError::permanent(format!("cannot encode the SES request: {e}")))?;
        let mut request = client
            .post(&self.ses.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in self
            .ses
            .signature(&self.credentials, &body, SystemTime::now())?
        {
            request = request.header(name, value);
        }
        Ok(request.body(body))
    }

    /// A 200 whose body we cannot read was still accepted: never send it twice.
    fn message_id(&self, answer: &http::Answer) -> Option<String> {
        serde_json::from_slice::<SendEmailAnswer>(&answer.body)
            .ok()?
            .message_id
    }

    /// SES's own error codes decide, before the status (see `error`).
    fn judge(&self, answer: &http::Answer) -> Result<Delivery, TransportError> {
        if answer.status.is_success() {
            return Ok(Delivery {
                provider_message_id: self.message_id(answer),
            });
        }
        let hint = http::parse_retry_after(&answer.headers, SystemTime::now());
        Err(error::classify(
            answer.status,
            &answer.headers,
            &answer.body,
            hint,
        ))
    }
}

#[async_trait]
impl Transport for SesTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let credentials = self.identity.current().await?;
        let signed = Signed {
            ses: self,
            credentials,
        };
        http::deliver(&self.http, &signed, message).await
    }
}

/// The key pair from the DSN, else from the standard AWS variables, else
/// the SDK's default credential chain.
fn identity(
    dsn: &Dsn,
    region: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Identity, DsnError> {
    match (&dsn.user, &dsn.password) {
        (Some(key), Some(secret)) => Ok(Identity::Static(Credentials::new(
            key, secret, None, None, "dsn",
        ))),
        (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => Ok(Identity::Static(Credentials::new(
                key,
                secret,
                env("AWS_SESSION_TOKEN"),
                None,
                "environment",
            ))),
            _ => Ok(Identity::chain(region)),
        },
        _ => Err(invalid(dsn, "give both ACCESS_KEY and SECRET_KEY")),
    }
}

fn invalid(dsn: &Dsn, reason: &str) -> DsnError {
    DsnError::invalid(&dsn.scheme, reason)
}
