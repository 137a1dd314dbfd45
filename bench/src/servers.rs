//! The servers of the benchmark: the bare baseline that answers 202, and the sink at the end of
//! Knit's pipeline, which records end-to-end latency from the `ce-sentat` extension.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;

/// Nanoseconds since the Unix epoch (shared clock of load generator and sink).
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What a server saw.
#[derive(Default)]
pub(crate) struct Counters {
    /// Requests answered.
    pub(crate) requests: AtomicU64,
    /// End-to-end latencies in microseconds (sink only, while recording).
    pub(crate) latencies_us: Mutex<Vec<u32>>,
    /// Whether to record latencies now.
    pub(crate) recording: std::sync::atomic::AtomicBool,
}

/// How a server answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 202 at once.
    Accept,
    /// Never answer (holds the request open).
    Hang,
}

/// Start a server on an ephemeral loopback port.
pub(crate) async fn start(mode: Mode) -> anyhow::Result<(SocketAddr, Arc<Counters>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((addr, serve(listener, mode)))
}

/// Serve `listener` (plain TCP or TLS) in the background.
pub(crate) fn serve(mut listener: impl knit_tls::Accept, mode: Mode) -> Arc<Counters> {
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let c = c.clone();
                    async move { Ok::<_, Infallible>(handle(req, &c, mode).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    counters
}

async fn handle(req: Request<Incoming>, c: &Counters, mode: Mode) -> Response<Empty<Bytes>> {
    let sent = req
        .headers()
        .get("ce-sentat")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let _ = req.into_body().collect().await;
    if mode == Mode::Hang {
        std::future::pending::<()>().await;
    }
    c.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(sent) = sent
        && c.recording.load(Ordering::Relaxed)
    {
        let us = now_nanos().saturating_sub(sent) / 1000;
        c.latencies_us
            .lock()
            .push(u32::try_from(us).unwrap_or(u32::MAX));
    }
    let mut r = Response::new(Empty::new());
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

/// `knit-bench app`: the tiny app the serving scenario runs as a revision (and starts by hand
/// for its start time). It serves `PORT` on loopback over keep-alive HTTP/1.1, answers every
/// request 200 `ok` once its body is read, says `listening on PORT` on stdout, and exits when
/// its stdin closes, so it never outlives whoever started it.
pub(crate) async fn app() -> anyhow::Result<()> {
    use anyhow::Context as _;
    let port: u16 = std::env::var("PORT")
        .context("PORT is not set")?
        .trim()
        .parse()
        .context("PORT is not a port number")?;
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {port}")?;
        out.flush()?;
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|req: Request<Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
