//! The deadline of one connection, by what it is doing: sending a request
//! head (the header timeout, counted from its first byte, or from the accept
//! for the first request), being served (no deadline here: the body has its
//! own, and handlers are bounded), or idle between requests (the idle
//! timeout, longer, so that keep-alive clients close first).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Phase {
    Head { until: Instant },
    Serving,
    Idle { until: Instant },
}

/// The deadline of one connection; shared by its reader and its service.
#[derive(Debug)]
pub(super) struct ConnectionClock {
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: Mutex<Phase>,
}

impl ConnectionClock {
    /// A new connection: its first head is due within the header timeout.
    pub(super) fn start(header_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            header_timeout,
            idle_timeout,
            phase: Mutex::new(Phase::Head {
                until: Instant::now() + header_timeout,
            }),
        })
    }

    fn set(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
    }

    /// Bytes arrived: on an idle connection they begin the next head.
    fn bytes_arrived(&self) {
        let header_timeout = self.header_timeout;
        self.set(|phase| match phase {
            Phase::Idle { .. } => Phase::Head {
                until: Instant::now() + header_timeout,
            },
            other => other,
        });
    }

    /// A complete head arrived: the request is being served.
    pub(super) fn serving(&self) {
        self.set(|_| Phase::Serving);
    }

    /// The answer is out: the connection is idle until the next head.
    pub(super) fn served(&self) {
        let idle_timeout = self.idle_timeout;
        self.set(|_| Phase::Idle {
            until: Instant::now() + idle_timeout,
        });
    }

    /// Completes when the connection has used up its time.
    pub(super) async fn expired(&self) {
        loop {
            let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
            match phase {
                Phase::Head { until } | Phase::Idle { until } if until <= Instant::now() => return,
                Phase::Head { until } | Phase::Idle { until } => {
                    tokio::time::sleep_until(until).await;
                }
                // The phase changes only through a request; look again later.
                Phase::Serving => tokio::time::sleep(self.header_timeout).await,
            }
        }
    }
}

/// A connection's stream, telling its clock when bytes arrive.
#[derive(Debug)]
pub(super) struct Watched<T> {
    pub(super) io: T,
    pub(super) clock: Arc<ConnectionClock>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
