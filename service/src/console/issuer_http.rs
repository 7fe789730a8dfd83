//! The HTTP client the `openidconnect` crate calls the issuer with: the
//! service's one HTTP client (reqwest), without following redirects.

use std::future::Future;
use std::pin::Pin;

use openidconnect::{HttpRequest, HttpResponse};

use crate::transport::http::{MAX_DOCUMENT, body_at_most};

/// The HTTP client of the sign-in: no redirects, bounded in time.
#[derive(Debug, Clone)]
pub struct Http(reqwest::Client);

impl Http {
    /// Wraps `client` (built without redirects, with a timeout).
    pub fn new(client: reqwest::Client) -> Http {
        Http(client)
    }
}

/// A failed request to the issuer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request =
                reqwest::Request::try_from(request).map_err(|e| HttpError(e.to_string()))?;
            let answer = self
                .0
                .execute(request)
                .await
                .map_err(|e| HttpError(e.without_url().to_string()))?;
            let mut built = axum::http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                built = built.header(name, value);
            }
            let body = body_at_most(answer, MAX_DOCUMENT)
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            built
                .body(body.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        })
    }
}
