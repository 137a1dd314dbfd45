//! One HTTP POST with a timeout and a bounded response body: the only place egress traffic
//! leaves Knit.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

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

/// The shared HTTP client of the dispatcher.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

/// Install the ring crypto provider for rustls if none is installed (reqwest needs one).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Sender {
    /// A sender with a connection pool; redirects are not followed (3xx is a failure).
    pub fn new() -> crate::Result<Self> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| crate::Error::Client(e.to_string()))?;
        Ok(Self { client })
    }

    /// POST `body` to `url` with `headers`, giving up after `timeout`.
    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Attempt {
        let send = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send();
        let resp = match send.await {
            Ok(r) => r,
            Err(e) => {
                let error = if e.is_timeout() {
                    format!("timed out after {timeout:?}")
                } else {
                    error_chain(&e)
                };
                return Attempt::Failed { error };
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = BytesMut::new();
        let mut resp = resp;
        loop {
            match tokio::time::timeout(timeout, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Attempt::Failed {
                            error: "response body too large".into(),
                        };
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Attempt::Failed {
                        error: error_chain(&e),
                    };
                }
                Err(_) => {
                    return Attempt::Failed {
                        error: format!("timed out reading the response after {timeout:?}"),
                    };
                }
            }
        }
        Attempt::Response {
            status,
            headers,
            body: body.freeze(),
        }
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
