//! One HTTP POST with a timeout and a bounded response body: the only place egress traffic
//! leaves Knit.
//!
//! Plain `http://` destinations (the hot path: sinks, replies into the ingress) go through the
//! worker's own connections ([`crate::http1`]); the benchmark showed reqwest re-parsing every
//! URL (with IDNA) and cloning its service stack per request, and hyper-util's pool handing
//! every request to a connection task and back. `https://` destinations go through reqwest
//! with rustls.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use parking_lot::RwLock;

use crate::binding::Lines;
use crate::egress::Target;
use crate::hosts::LocalHosts;

/// Largest response body read from a subscriber (a reply event); longer bodies fail the attempt.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Why a POST got no answer.
#[derive(Debug, thiserror::Error)]
enum PostError {
    /// On a worker's own connection (`http://`).
    #[error(transparent)]
    Plain(#[from] crate::http1::Error),
    /// Through reqwest (`https://`); the text is the whole chain of causes.
    #[error("{}", error_chain(.0))]
    Tls(#[source] reqwest::Error),
    /// The response body is longer than [`MAX_RESPONSE_BYTES`].
    #[error("response body too large")]
    TooLarge,
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// The destination answered.
    Response {
        /// HTTP status.
        status: u16,
        /// Response headers.
        headers: HeaderMap,
        /// Response body (at most [`MAX_RESPONSE_BYTES`]).
        body: Bytes,
    },
    /// No answer: connection error, timeout, or an oversized body.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// A reusable timer for attempt timeouts, one per worker. Tokio extends a registered timer's
/// deadline without touching its timer wheel, so resetting this to `now + timeout` before each
/// attempt is far cheaper than a fresh `tokio::time::timeout` per request (measured: about
/// 10% of the data plane's CPU).
pub struct Deadline {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    /// A timer, not yet armed.
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        }
    }

    /// Run `fut`, giving up after `timeout`.
    pub async fn run<F: std::future::Future>(
        &mut self,
        timeout: Duration,
        fut: F,
    ) -> Option<F::Output> {
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + timeout);
        tokio::select! {
            biased;
            out = fut => Some(out),
            () = &mut self.sleep => None,
        }
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

/// What one worker keeps between deliveries: its attempt timer and its own keep-alive
/// connections to plain `http://` destinations.
#[derive(Default)]
pub struct Session {
    deadline: Deadline,
    conns: crate::http1::Connections,
}

impl Session {
    /// A fresh session.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The dispatcher's HTTP clients: plain `http://` goes through each worker's own connections
/// ([`Session`]), `https://` through a shared reqwest client with rustls. A new plain
/// connection goes where the [`LocalHosts`] say (the hosts this process serves; by default
/// none). Clones share them.
#[derive(Clone)]
pub struct Sender {
    tls: reqwest::Client,
    hosts: Arc<RwLock<LocalHosts>>,
}

/// Install the ring crypto provider for rustls if none is installed (reqwest needs one).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Sender {
    /// The clients; redirects are not followed (3xx is a failure).
    pub fn new() -> crate::Result<Self> {
        install_crypto_provider();
        let tls = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(crate::Error::Client)?;
        Ok(Self {
            tls,
            hosts: Arc::default(),
        })
    }

    /// Serve `hosts` from now on: connections opened from now on go where they say (the
    /// Contract's hosts, at this process's listeners). Connections already open stay.
    pub fn serve_hosts(&self, hosts: LocalHosts) {
        *self.hosts.write() = hosts;
    }

    /// POST `body` to `target` with `headers`, giving up after `timeout`, on `session`'s
    /// connections.
    pub async fn post(
        &self,
        target: &Target,
        headers: &Lines,
        body: &Bytes,
        timeout: Duration,
        session: &mut Session,
    ) -> Attempt {
        let Session { deadline, conns } = session;
        let result = match &target.uri {
            Some(uri) => {
                let post = conns.post(uri, headers, body, MAX_RESPONSE_BYTES, &self.hosts);
                let result = deadline.run(timeout, post).await;
                result.map(|r| r.map_err(PostError::Plain))
            }
            None => {
                deadline
                    .run(
                        timeout,
                        self.post_tls(&target.url, headers.to_header_map(), body.clone()),
                    )
                    .await
            }
        };
        match result {
            Some(Ok((status, headers, body))) => Attempt::Response {
                status,
                headers,
                body,
            },
            Some(Err(error)) => Attempt::Failed {
                error: error.to_string(),
            },
            None => Attempt::Failed {
                error: format!("timed out after {timeout:?}"),
            },
        }
    }

    async fn post_tls(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(u16, HeaderMap, Bytes), PostError> {
        let mut resp = self
            .tls
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(PostError::Tls)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(PostError::Tls)? {
            if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(PostError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok((status, headers, out.freeze()))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
