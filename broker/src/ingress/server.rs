//! The ingress listener: accepts connections within the connection limits and serves HTTP/1.1
//! on them with bounded heads and a header timeout (slow-loris clients are cut off).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Shared;

/// Open connections per client address.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its client; uncounted when dropped.
struct ClientSlot {
    counts: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut map = self.0.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serve the ingress on `listener`, forever (HTTP/1.1; `Upgrade` requests are answered as plain
/// HTTP/1.1, E33).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let limits = shared.settings.limits.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ingress accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(client) = clients.admit(peer.ip(), limits.connections_per_client) else {
            tracing::debug!(client = %peer.ip(), limit = limits.connections_per_client, "too many connections from one client");
            tokio::spawn(async move {
                refuse_connection(stream).await;
                drop(slot);
            });
            continue;
        };
        let shared = shared.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(super::handle(&shared, req).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_header_size(limits.max_header_bytes);
            if limits.max_headers != HYPER_MAX_HEADERS {
                // hyper parses up to 100 headers on the stack; any other bound costs a heap
                // allocation per request.
                builder.max_headers(limits.max_headers);
            }
            let served = builder.serve_connection(TokioIo::new(stream), svc).await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "ingress connection closed");
            }
            drop(client);
            drop(slot);
        });
    }
}

/// hyper's own bound on request headers.
const HYPER_MAX_HEADERS: usize = 100;

/// How long a refused connection is read from before it is closed.
const REFUSE_LINGER: Duration = Duration::from_secs(2);
/// How much of it is read.
const REFUSE_LINGER_BYTES: usize = 1024 * 1024;

/// Answer a connection over its client's limit with 429 and close it, reading (and
/// discarding) what the client still sends for a moment so that it can read the answer.
async fn refuse_connection(mut stream: TcpStream) {
    let body = "too many connections from this client; retry later\n";
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let linger = async {
        stream.write_all(head.as_bytes()).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 8192];
        let mut left = REFUSE_LINGER_BYTES;
        while left > 0 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSE_LINGER, linger).await;
}
