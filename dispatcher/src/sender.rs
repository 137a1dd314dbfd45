//! One HTTP POST with a timeout and a bounded response body: the only place egress traffic
//! leaves Knit.
//!
//! Plain `http://` destinations (the hot path: sinks, replies into the ingress) go through a
//! hyper-util client directly; the benchmark showed reqwest re-parsing every URL (with IDNA)
//! and cloning its service stack per request. `https://` destinations go through reqwest with
//! rustls.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::egress::Target;

/// Largest response body read from a subscriber (a reply event); longer bodies fail the attempt.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

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

/// The shared HTTP clients of the dispatcher.
#[derive(Clone)]
pub struct Sender {
    plain: Client<HttpConnector, Full<Bytes>>,
    tls: reqwest::Client,
}

/// Install the ring crypto provider for rustls if none is installed (reqwest needs one).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Sender {
    /// Clients with connection pools; redirects are not followed (3xx is a failure).
    pub fn new() -> crate::Result<Self> {
        install_crypto_provider();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let plain = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let tls = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| crate::Error::Client(e.to_string()))?;
        Ok(Self { plain, tls })
    }

    /// POST `body` to `target` with `headers`, giving up after `timeout` (timed by `deadline`).
    pub async fn post(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
        deadline: &mut Deadline,
    ) -> Attempt {
        let result = match &target.uri {
            Some(uri) => {
                deadline
                    .run(timeout, self.post_plain(uri.clone(), headers, body))
                    .await
            }
            None => {
                deadline
                    .run(timeout, self.post_tls(&target.url, headers, body))
                    .await
            }
        };
        match result {
            Some(Ok((status, headers, body))) => Attempt::Response {
                status,
                headers,
                body,
            },
            Some(Err(error)) => Attempt::Failed { error },
            None => Attempt::Failed {
                error: format!("timed out after {timeout:?}"),
            },
        }
    }

    async fn post_plain(
        &self,
        uri: http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(u16, HeaderMap, Bytes), String> {
        let mut req = http::Request::post(uri)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        *req.headers_mut() = headers;
        let resp = self.plain.request(req).await.map_err(|e| error_chain(&e))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?
            .to_bytes();
        Ok((parts.status.as_u16(), parts.headers, body))
    }

    async fn post_tls(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(u16, HeaderMap, Bytes), String> {
        let mut resp = self
            .tls
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
            if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err("response body too large".into());
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
