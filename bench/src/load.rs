//! The load generator: a fixed number of keep-alive HTTP/1.1 connections (plain or TLS)
//! posting binary-mode CloudEvents, optionally at a fixed total rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::servers::now_nanos;

/// What to send.
#[derive(Clone)]
pub(crate) struct Load {
    /// Target `host:port`.
    pub(crate) addr: std::net::SocketAddr,
    /// The `Host` header; `None`: `addr`.
    pub(crate) host: Option<String>,
    /// Request path.
    pub(crate) path: String,
    /// CloudEvent `type`.
    pub(crate) ty: String,
    /// Connections.
    pub(crate) concurrency: usize,
    /// How long.
    pub(crate) duration: Duration,
    /// Total events per second; `None` = as fast as possible.
    pub(crate) rate: Option<f64>,
    /// An `Authorization` header for every request (an OIDC bearer token).
    pub(crate) authorization: Option<String>,
}

/// What happened.
#[derive(Default, Debug)]
pub(crate) struct Outcome {
    /// Responses by status.
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Request latencies in microseconds.
    pub(crate) latencies_us: Vec<u32>,
    /// Wall time.
    pub(crate) elapsed: Duration,
}

impl Outcome {
    /// Responses with this status.
    pub(crate) fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

const BODY: &[u8] = br#"{"message":"Hello, Knit! This is a small benchmark event.","n":42}"#;

/// A keep-alive HTTP/1.1 connection to `addr`, over TLS when `tls` says how (verifying the
/// server as `127.0.0.1`).
async fn connect(
    addr: std::net::SocketAddr,
    tls: Option<&TlsConnector>,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let Some(tls) = tls else {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        return Ok(sender);
    };
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tls.connect(name, stream).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn worker(
    load: Load,
    index: usize,
    start: Instant,
    tls: Option<TlsConnector>,
) -> anyhow::Result<Outcome> {
    let mut sender = connect(load.addr, tls.as_ref()).await?;
    let mut out = Outcome::default();
    let interval = load
        .rate
        .map(|r| Duration::from_secs_f64(load.concurrency as f64 / r));
    let mut next = start
        + interval
            .map(|i| i.mul_f64(index as f64 / load.concurrency as f64))
            .unwrap_or_default();
    let host = load.host.clone().unwrap_or_else(|| load.addr.to_string());
    let mut n: u64 = 0;
    while start.elapsed() < load.duration {
        if let Some(i) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += i;
        }
        n += 1;
        let mut req = Request::post(&load.path).header("host", &host);
        if let Some(a) = &load.authorization {
            req = req.header("authorization", a);
        }
        let req = req
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("{index}-{n}"))
            .header("ce-source", "/bench")
            .header("ce-type", &load.ty)
            .header("ce-sentat", now_nanos().to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(BODY)))?;
        let t = Instant::now();
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        out.latencies_us
            .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        *out.statuses.entry(status).or_default() += 1;
        if status == 429 {
            // Back off as a client honouring Retry-After would, but briefly: this is a bench.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(out)
}

/// Run the load and merge the workers' outcomes.
pub(crate) async fn run(load: &Load) -> anyhow::Result<Outcome> {
    run_over(load, None).await
}

/// [`run`], over TLS connections made by `tls` when given (one handshake per connection, then
/// keep-alive).
pub(crate) async fn run_over(load: &Load, tls: Option<&TlsConnector>) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let handles: Vec<_> = (0..load.concurrency)
        .map(|i| tokio::spawn(worker(load.clone(), i, start, tls.cloned())))
        .collect();
    let mut total = Outcome::default();
    for h in handles {
        let o = h.await??;
        for (s, c) in o.statuses {
            *total.statuses.entry(s).or_default() += c;
        }
        total.latencies_us.extend(o.latencies_us);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// The `p`-th percentile (0..=100) in milliseconds.
pub(crate) fn percentile_ms(samples: &mut [u32], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let i = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    f64::from(samples[i.min(samples.len() - 1)]) / 1000.0
}
