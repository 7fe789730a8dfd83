//! A transport that keeps what it is given: for tests and trials (`memory://`).
//! Results can be scripted to rehearse failures.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Delivery, Transport, TransportError};
use crate::email::OutgoingMessage;

/// Records every message; answers scripted results first, then success.
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport {
    sent: Arc<Mutex<Vec<OutgoingMessage>>>,
    attempts: Arc<Mutex<Vec<OutgoingMessage>>>,
    script: Arc<Mutex<VecDeque<Result<Delivery, TransportError>>>>,
    /// How long each attempt takes before it answers.
    latency: Arc<Mutex<Duration>>,
}

impl MemoryTransport {
    /// An empty transport that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a result for the next attempt.
    pub fn push_result(&self, result: Result<Delivery, TransportError>) {
        if let Ok(mut s) = self.script.lock() {
            s.push_back(result);
        }
    }

    /// Makes every attempt take `latency` before it answers, as a peer would.
    pub fn set_latency(&self, latency: Duration) {
        if let Ok(mut l) = self.latency.lock() {
            *l = latency;
        }
    }

    /// Messages delivered so far.
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every attempt so far, failed ones included.
    pub fn attempts(&self) -> Vec<OutgoingMessage> {
        self.attempts.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let latency = self.latency.lock().map(|l| *l).unwrap_or_default();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Ok(mut a) = self.attempts.lock() {
            a.push(message.clone());
        }
        let scripted = self.script.lock().ok().and_then(|mut s| s.pop_front());
        let result = scripted.unwrap_or_else(|| {
            Ok(Delivery {
                provider_message_id: Some(format!("mem-{}", message.id)),
            })
        });
        if result.is_ok()
            && let Ok(mut s) = self.sent.lock()
        {
            s.push(message.clone());
        }
        result
    }
}
