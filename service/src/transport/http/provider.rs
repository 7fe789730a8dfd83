//! One shape for every provider's HTTP API. A [`Provider`] says how to ask
//! (the request for a message: URL, credentials, body) and how to read a
//! successful answer (the provider's id of the message); [`deliver`] does the
//! rest the same way for all of them: bodies with CRLF line ends only (NUL
//! refused, as for SMTP), send, read a bounded answer, classify a failure,
//! keep keys out of errors. [`Api`] makes a provider a
//! [`Transport`], so a new provider is one small file.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::{error_for, network_error, read_answer, without_secret};
use crate::email::OutgoingMessage;
use crate::transport::mime::wire_bodies;
use crate::transport::{Delivery, DsnError, Transport, TransportError, handover};

/// What a provider answered (the body read up to a bound).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers (ids, rate-limit hints).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// A provider's mail API.
pub trait Provider: Send + Sync + fmt::Debug {
    /// Its name in errors: `sendgrid: HTTP 400 …`.
    const NAME: &'static str;

    /// The request that delivers `message`, ready to send on `client`.
    fn request(
        &self,
        client: &reqwest::Client,
        message: &OutgoingMessage,
    ) -> Result<reqwest::RequestBuilder, TransportError>;

    /// The provider's id of the message in a successful answer, if it gives one.
    fn message_id(&self, answer: &Answer) -> Option<String> {
        let _ = answer;
        None
    }

    /// The outcome an answer stands for. By default a 2xx is delivered and
    /// every other status is classified by [`error_for`]; providers whose
    /// body can contradict the status judge it themselves.
    fn judge(&self, answer: &Answer) -> Result<Delivery, TransportError> {
        if answer.status.is_success() {
            return Ok(Delivery {
                provider_message_id: self.message_id(answer),
            });
        }
        Err(error_for(
            Self::NAME,
            answer.status,
            &answer.headers,
            &answer.body,
            SystemTime::now(),
        ))
    }

    /// Keys an answer might echo, to be blanked out of errors.
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Delivers `message` through `provider` on `client`.
pub async fn deliver<P: Provider>(
    client: &reqwest::Client,
    provider: &P,
    message: &OutgoingMessage,
) -> Result<Delivery, TransportError> {
    let outcome = exchange(client, provider, message).await;
    outcome.map_err(|error| provider.secrets().into_iter().fold(error, without_secret))
}

async fn exchange<P: Provider>(
    client: &reqwest::Client,
    provider: &P,
    message: &OutgoingMessage,
) -> Result<Delivery, TransportError> {
    let message = wire_bodies(message)?;
    let request = provider.request(client, &message)?;
    // From here on the provider may have the message: a stop waits for its
    // answer (see `handover`).
    let handed = handover::begin().await;
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            if e.is_connect() {
                handed.refused();
            }
            return Err(network_error(P::NAME, e));
        }
    };
    let (status, headers, body) = read_answer(P::NAME, response).await?;
    if !status.is_success() {
        handed.refused();
    }
    provider.judge(&Answer {
        status,
        headers,
        body,
    })
}

/// A provider as a transport, with its own HTTP client.
pub struct Api<P> {
    client: reqwest::Client,
    provider: P,
}

impl<P: Provider> Api<P> {
    /// `provider` with a new client (see [`super::client`]).
    pub fn new(provider: P) -> Result<Self, DsnError> {
        Ok(Self {
            client: super::client()?,
            provider,
        })
    }
}

impl<P: Provider> fmt::Debug for Api<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The provider's own Debug shows its URL and never its key.
        self.provider.fmt(f)
    }
}

#[async_trait]
impl<P: Provider> Transport for Api<P> {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        deliver(&self.client, &self.provider, message).await
    }
}
