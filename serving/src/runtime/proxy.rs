//! The per-replica proxy (Knative's queue-proxy, in-process): `containerConcurrency` as a hard
//! limit with a bounded wait queue of 10 × CC (full: 503), the time-weighted concurrency and
//! request count of reference §1.2 (probes never pass here, so they are not counted), and the
//! forwarding of one request to the replica: the gateway's fast path over the replica's
//! [`Pool`] of idle keep-alive connections, the hyper path over a pooled hyper client, bodies
//! streamed.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Instant;

use http::header::{HOST, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::pool::Pool;

/// The pooled HTTP/1.1 client to replicas.
pub(crate) type Upstream = PooledClient<HttpConnector, Incoming>;

/// A client with keep-alive connections to replicas.
pub(crate) fn upstream() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // No connect timeout of its own (see the fast path's): the request's deadlines bound it.
    PooledClient::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// One second's measurement (or whatever elapsed since the last cut).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sample {
    /// Time-weighted average of requests in flight.
    pub(crate) concurrency: f64,
    /// Requests that arrived, per second.
    pub(crate) rps: f64,
}

struct MeterState {
    in_flight: u32,
    integral: f64,
    last: Instant,
    window_start: Instant,
    requests: u64,
}

/// Concurrency integral and request count (reference §1.2).
pub(crate) struct Meter {
    state: Mutex<MeterState>,
    idle: Notify,
}

impl Meter {
    pub(crate) fn new() -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(MeterState {
                in_flight: 0,
                integral: 0.0,
                last: now,
                window_start: now,
                requests: 0,
            }),
            idle: Notify::new(),
        })
    }

    /// A request starts; it ends when the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> MeterGuard {
        self.begin();
        MeterGuard(self.clone())
    }

    /// A request starts; [`Self::leave`] ends it.
    fn begin(&self) {
        let mut s = self.state.lock();
        let now = Instant::now();
        s.integral += f64::from(s.in_flight) * now.duration_since(s.last).as_secs_f64();
        s.last = now;
        s.in_flight += 1;
        s.requests += 1;
    }

    fn leave(&self) {
        let mut s = self.state.lock();
        let now = Instant::now();
        s.integral += f64::from(s.in_flight) * now.duration_since(s.last).as_secs_f64();
        s.last = now;
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Requests in flight now.
    pub(crate) fn in_flight(&self) -> u32 {
        self.state.lock().in_flight
    }

    /// Wait until nothing is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The sample since the last cut, and start a new one.
    pub(crate) fn cut(&self, now: Instant) -> Sample {
        let mut s = self.state.lock();
        let now = now.max(s.last);
        s.integral += f64::from(s.in_flight) * now.duration_since(s.last).as_secs_f64();
        s.last = now;
        let elapsed = now.duration_since(s.window_start).as_secs_f64();
        let sample = if elapsed > 0.0 {
            Sample {
                concurrency: s.integral / elapsed,
                rps: s.requests as f64 / elapsed,
            }
        } else {
            Sample {
                concurrency: f64::from(s.in_flight),
                rps: 0.0,
            }
        };
        s.integral = 0.0;
        s.requests = 0;
        s.window_start = now;
        sample
    }
}

/// One request counted by a [`Meter`] until dropped.
pub(crate) struct MeterGuard(Arc<Meter>);

impl Drop for MeterGuard {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// The proxy in front of one replica.
pub(crate) struct Proxy {
    port: AtomicU16,
    /// Idle connections to the replica (the gateway's fast path).
    pub(crate) pool: Pool,
    pub(crate) meter: Arc<Meter>,
    /// `containerConcurrency` slots, when limited.
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Why the proxy refused a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// All slots busy and the wait queue full.
    #[error("queue full: {0} requests already wait for this replica")]
    QueueFull(usize),
}

/// A request counted in a replica's meter (and so waited for by its drain) until dropped.
pub(crate) struct Counted(Arc<Proxy>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.meter.leave();
    }
}

/// A request admitted to a replica: its slot and its place in the meter, both released when
/// the response (body included) is done.
pub(crate) struct Admitted {
    _permit: Option<OwnedSemaphorePermit>,
    counted: Counted,
}

impl Admitted {
    /// The replica's port.
    pub(crate) fn port(&self) -> u16 {
        self.counted.0.port()
    }

    /// The replica's idle connections.
    pub(crate) fn pool(&self) -> &Pool {
        &self.counted.0.pool
    }
}

impl Proxy {
    pub(crate) fn new(container_concurrency: u32) -> Arc<Self> {
        let cc = container_concurrency as usize;
        Arc::new(Self {
            port: AtomicU16::new(0),
            pool: Pool::default(),
            meter: Meter::new(),
            slots: (cc > 0).then(|| Arc::new(Semaphore::new(cc))),
            waiting: AtomicUsize::new(0),
            max_waiting: 10 * cc,
        })
    }

    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Release);
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::Acquire)
    }

    /// Requests in flight or waiting here (for picking the least loaded replica).
    pub(crate) fn load(&self) -> u32 {
        self.meter.in_flight()
    }

    /// Whether a request would run at once (a free slot, or no limit).
    pub(crate) fn has_free_slot(&self) -> bool {
        self.slots
            .as_ref()
            .is_none_or(|s| s.available_permits() > 0)
    }

    /// Count the request (under the revision's replica lock, so a drain sees it), then wait for
    /// a slot ([`Counted::admit`]).
    pub(crate) fn count(self: &Arc<Self>) -> Counted {
        self.meter.begin();
        Counted(self.clone())
    }
}

impl Counted {
    /// Wait for a slot (bounded queue).
    pub(crate) async fn admit(self) -> Result<Admitted, Refused> {
        let proxy = &self.0;
        let permit = match &proxy.slots {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let before = proxy.waiting.fetch_add(1, Ordering::AcqRel);
                    let _waiting = WaitGuard(&proxy.waiting);
                    if before >= proxy.max_waiting {
                        return Err(Refused::QueueFull(before));
                    }
                    // Never closed: the error cannot happen; treat it as a full queue.
                    Some(
                        slots
                            .clone()
                            .acquire_owned()
                            .await
                            .map_err(|_| Refused::QueueFull(before))?,
                    )
                }
            },
        };
        Ok(Admitted {
            _permit: permit,
            counted: self,
        })
    }
}

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client side of a gateway connection, for the forwarding headers: `X-Forwarded-For`'s
/// address, `X-Forwarded-Proto` (`http` or `https`, what the client spoke to the gateway) and
/// `Forwarded`'s `for=…;proto=…`, formatted once per connection.
pub(crate) struct Client {
    pub(crate) ip: String,
    pub(crate) proto: &'static str,
    pub(crate) forwarded: String,
}

impl Client {
    pub(crate) fn new(remote: IpAddr, proto: &'static str) -> Self {
        let ip = remote.to_string();
        let forwarded = if remote.is_ipv6() {
            format!("for=\"[{ip}]\";proto={proto}")
        } else {
            format!("for={ip};proto={proto}")
        };
        Self {
            ip,
            proto,
            forwarded,
        }
    }
}

/// Send `req` to the replica on `port`, with the runtime contract's forwarding headers
/// (`proto`: what the client spoke to the gateway).
pub(crate) async fn forward(
    client: &Upstream,
    port: u16,
    remote: IpAddr,
    proto: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = format!("http://127.0.0.1:{port}{pq}");
    if let Ok(uri) = uri.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    let headers = req.headers_mut();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if host.is_none()
        && let Ok(v) = HeaderValue::from_str(&format!("127.0.0.1:{port}"))
    {
        headers.insert(HOST, v);
    }
    let ip = remote.to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|h| h.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    }
    let for_ = if remote.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip
    };
    let mut fwd = format!("for={for_};proto={proto}");
    if let Some(h) = host.filter(|h| !h.contains(['"', ';', ','])) {
        fwd.push_str(&format!(";host=\"{h}\""));
    }
    let fwd = match headers.get("forwarded").and_then(|h| h.to_str().ok()) {
        Some(prev) => format!("{prev}, {fwd}"),
        None => fwd,
    };
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.insert("forwarded", v);
    }
    headers.remove("knative-serving-tag");
    client.request(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn concurrency_is_time_weighted() {
        let m = Meter::new();
        let t0 = Instant::now();
        let _ = m.cut(t0);
        let a = m.enter();
        let b = m.enter();
        drop(a);
        drop(b);
        let s = m.cut(Instant::now() + Duration::from_secs(1));
        assert!(s.concurrency < 0.1, "{s:?}");
        assert!(s.rps > 1.0 && s.rps <= 2.0, "{s:?}");
        let _held = m.enter();
        let t = Instant::now();
        let _ = m.cut(t);
        let s = m.cut(t + Duration::from_millis(500));
        assert!((s.concurrency - 1.0).abs() < 1e-9, "{s:?}");
    }

    #[tokio::test]
    async fn queue_is_bounded() {
        let p = Proxy::new(1);
        let first = p.count().admit().await;
        assert!(first.is_ok());
        let mut waiting = Vec::new();
        for _ in 0..10 {
            let p2 = p.clone();
            waiting.push(tokio::spawn(
                async move { p2.count().admit().await.is_ok() },
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.waiting.load(Ordering::Acquire) < 10 {
            assert!(Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            p.count().admit().await,
            Err(Refused::QueueFull(10))
        ));
        drop(first);
        for w in waiting {
            // Each releases its slot when its Admitted drops at the end of the task.
            assert!(
                tokio::time::timeout(Duration::from_secs(5), w)
                    .await
                    .is_ok()
            );
        }
    }
}
