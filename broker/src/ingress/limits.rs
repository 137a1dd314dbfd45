//! The ingress listener's limits: what one request, one client and all clients may hold. Each
//! limit has a test and a line in the README's "Limits" table.

use std::time::Duration;

/// Limits of the ingress listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once, all clients together; more wait in the accept queue.
    pub max_connections: usize,
    /// Connections open at once from one IP address; the next one is answered 429 and closed.
    pub connections_per_client: usize,
    /// Most request headers (hyper answers 431 beyond it).
    pub max_headers: usize,
    /// Most bytes of a request head (request line and headers; 431 beyond it).
    pub max_header_bytes: usize,
    /// Time for a request's head to arrive once its connection has sent anything or was opened
    /// (a slow-loris client is disconnected after it).
    pub header_timeout: Duration,
    /// Time for a request's whole body to arrive (408 after it).
    pub body_timeout: Duration,
    /// Most events in one batch (413 beyond it).
    pub max_batch: usize,
    /// After refusing a request before reading its body, up to this many of its bytes are read
    /// and discarded so that a client still writing can read the refusal ("lingering close").
    pub drain_bytes: usize,
    /// ... and for at most this long.
    pub drain_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            connections_per_client: 1_024,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_batch: 1_000,
            drain_bytes: 64 * 1024 * 1024,
            drain_time: Duration::from_secs(10),
        }
    }
}
