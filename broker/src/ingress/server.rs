//! The ingress listener: accepts connections within the connection limits and serves HTTP/1.1
//! on them with bounded heads and a header timeout (slow-loris clients are cut off), over plain
//! TCP or TLS alike; the transport encryption mode decides whether a listener answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use knit_crds::contract::TransportEncryption;
use knit_tls::Accept;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Shared;

/// The transport encryption mode the ingress's listeners follow (the Contract's), shared by
/// them and set on every Contract; `disabled` until set.
#[derive(Clone, Debug, Default)]
pub struct Encryption(Arc<AtomicU8>);

impl Encryption {
    /// Follow `mode` from now on (requests already answering finish).
    pub fn set(&self, mode: TransportEncryption) {
        let v = match mode {
            TransportEncryption::Disabled => 0,
            TransportEncryption::Permissive => 1,
            TransportEncryption::Strict => 2,
        };
        self.0.store(v, Ordering::Relaxed);
    }

    /// The mode now.
    pub fn get(&self) -> TransportEncryption {
        match self.0.load(Ordering::Relaxed) {
            0 => TransportEncryption::Disabled,
            1 => TransportEncryption::Permissive,
            _ => TransportEncryption::Strict,
        }
    }

    /// Why a listener speaking `scheme` does not answer now, if it does not.
    fn closed(&self, scheme: &str) -> Option<&'static str> {
        let mode = self.get();
        if scheme == "https" {
            (!mode.serves_tls()).then_some(
                "HTTPS is off (transport-encryption is disabled): use the http:// address\n",
            )
        } else {
            (!mode.serves_plain()).then_some(
                "plain HTTP is off (transport-encryption is strict): use the https:// address\n",
            )
        }
    }
}

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
/// HTTP/1.1, E33). While `encryption` closes this kind of listener (plain in `strict`, TLS in
/// `disabled`), every request is answered 404, as Knative's listeners do.
pub async fn serve<A: Accept>(mut listener: A, shared: Arc<Shared>, encryption: Encryption) {
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
        let encryption = encryption.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                let closed = encryption.closed(A::SCHEME);
                async move {
                    let answer = match closed {
                        Some(why) => super::closed(&shared, req, why),
                        None => super::handle(&shared, req).await,
                    };
                    Ok::<_, std::convert::Infallible>(answer)
                }
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
async fn refuse_connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
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
