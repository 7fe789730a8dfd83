//! Where SES requests get their AWS credentials: keys given in the DSN (or
//! the `AWS_*` variables), or, without any, the AWS SDK's own default chain
//! (environment, shared profile, web identity token file as on EKS, ECS
//! container credentials, EC2 instance metadata v2). Temporary credentials
//! are kept until five minutes before they expire, then fetched again.

use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use tokio::sync::{Mutex, OnceCell};

use crate::transport::TransportError;

/// How long before their expiry temporary credentials are replaced.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// The credentials of an SES transport.
pub enum Identity {
    /// Fixed keys.
    Static(Credentials),
    /// The default chain, built on first use, its answer cached.
    Chain {
        /// The region the chain's STS calls use.
        region: String,
        /// The chain, once built.
        chain: OnceCell<DefaultCredentialsChain>,
        /// The last credentials it gave.
        cached: Mutex<Option<Credentials>>,
    },
}

impl Identity {
    /// The default chain for `region`.
    pub fn chain(region: &str) -> Self {
        Identity::Chain {
            region: region.to_owned(),
            chain: OnceCell::new(),
            cached: Mutex::new(None),
        }
    }

    /// The access key id to show in `Debug` output (never the secret).
    pub fn describe(&self) -> String {
        match self {
            Identity::Static(c) => c.access_key_id().to_owned(),
            Identity::Chain { .. } => "default credential chain".to_owned(),
        }
    }

    /// Credentials valid for at least a few more minutes.
    pub async fn current(&self) -> Result<Credentials, TransportError> {
        match self {
            Identity::Static(credentials) => Ok(credentials.clone()),
            Identity::Chain {
                region,
                chain,
                cached,
            } => {
                let mut cached = cached.lock().await;
                if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
                    return Ok(credentials.clone());
                }
                let chain = chain
                    .get_or_init(|| async {
                        DefaultCredentialsChain::builder()
                            .region(Region::new(region.clone()))
                            .build()
                            .await
                    })
                    .await;
                let credentials = chain.provide_credentials().await.map_err(|e| {
                    TransportError::transient(format!(
                        "no AWS credentials from the default chain (environment, profile, \
                         web identity, ECS, instance metadata): {}",
                        with_sources(&e)
                    ))
                })?;
                *cached = Some(credentials.clone());
                Ok(credentials)
            }
        }
    }
}

/// An error with its causes, which the SDK keeps in `source()`.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Whether `credentials` stay valid beyond [`REFRESH_BEFORE`] from now.
fn fresh(credentials: &Credentials) -> bool {
    credentials
        .expiry()
        .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE)
}
