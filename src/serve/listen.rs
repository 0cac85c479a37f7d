//! Accepting connections with limits, so that slow or idle clients cannot hold the server:
//! a deadline for each request's headers (which is also the idle keep-alive timeout, since
//! hyper starts that clock as soon as it waits for a request), one for its body (read by the
//! extractors in `error.rs`), a cap on open connections, and back-off when accepting fails
//! (out of file descriptors) instead of a busy loop.
//!
//! axum's own `serve` cannot set hyper's timers; this is its accept loop with them. Each
//! connection is plain HTTP/1.1, served by hyper directly: a connection that never sends a
//! byte is dropped by the header deadline too.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Limits on the connections the server keeps (`[connections]` in a serve file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this; a keep-alive connection with no new
    /// request for this long is closed.
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this (else 408).
    pub body_timeout_ms: u64,
    /// Open connections at most; more wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout_ms: 30_000,
            body_timeout_ms: 60_000,
            max_connections: 1024,
        }
    }
}

impl ConnectionLimits {
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.header_timeout_ms == 0 || self.body_timeout_ms == 0 {
            anyhow::bail!("connections: header_timeout_ms and body_timeout_ms must be at least 1");
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            anyhow::bail!(
                "connections.max_connections: between 1 and {MAX_CONNECTIONS}, got {}",
                self.max_connections
            );
        }
        Ok(())
    }
}

const MAX_CONNECTIONS: usize = 1 << 20;

/// The longest pause between tries when accepting keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, closes idle
/// connections, and returns once every request in flight has been answered.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping, stop_seen) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    let mut failures = 0u64;
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if failures > 0 {
                        tracing::info!(failures, "accepting connections again");
                    }
                    (backoff, failures) = (Duration::ZERO, 0);
                    stream
                }
                Err(e) if is_peer_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most often: wait for connections to close,
                    // longer each time, and say so at 1, 2, 4, 8... failures, not every loop.
                    failures += 1;
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_BACKOFF);
                    if failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "cannot accept connections; backing off");
                    }
                    drop(slot);
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stop_seen = stop_seen.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => Some(ended),
                _ = stop_seen.wait_for(|s| *s) => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    // Idle connections close now; a request in flight is answered first.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a slot until it ends: all slots back means all answered.
    let all = u32::try_from(limits.max_connections).expect("checked: at most 2^20");
    let _ = slots.acquire_many(all).await;
}

fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    )
}
