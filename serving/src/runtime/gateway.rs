//! The gateway: an HTTP/1.1 server that routes by Host (with or without a port, lower case) to a
//! Route's weighted split (smooth weighted round robin, exact over any 100 requests) or a tag's
//! revision, honours `Knative-Serving-Tag` when tag header routing is on, and sends the request
//! through the activator and the replica's proxy. Each connection starts on the fast path
//! (`fastpath`, plain exchanges without hyper) and moves to hyper here for the rest of its life
//! at the first request that is not plain. Bodies stream both ways; HTTP/1.1 upgrades
//! (websockets) pass through; `timeoutSeconds` (waiting for a replica included),
//! `responseStartTimeoutSeconds` and `idleTimeoutSeconds` end a request with 504 (or cut the
//! body once it started).

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use knit_crds::contract::serving::{Revision, Serving as Spec};
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

use super::Inner;
use super::activator::{self, Refusal};
use super::fastpath::{self, Left};
use super::proxy::{self, Admitted};
use super::revision::Rev;
use super::rewind::Rewind;

/// The error type of response bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body.
pub(crate) type GBody = BoxBody<Bytes, BoxError>;

/// Default `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a client may take to send its request head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A Route's split.
struct Split {
    namespace: String,
    targets: Vec<(String, i64)>,
    tags: HashMap<String, String>,
    current: Mutex<Vec<i64>>,
}

impl Split {
    /// Smooth weighted round robin.
    fn next(&self) -> Option<&str> {
        let total: i64 = self.targets.iter().map(|(_, w)| w).sum();
        if total <= 0 {
            return None;
        }
        let mut cur = self.current.lock();
        let mut best = 0;
        for (i, (_, w)) in self.targets.iter().enumerate() {
            cur[i] += w;
            if cur[i] > cur[best] {
                best = i;
            }
        }
        cur[best] -= total;
        Some(self.targets[best].0.as_str())
    }
}

enum HostTarget {
    Split(Arc<Split>),
    Revision { namespace: String, name: String },
}

/// Hosts to targets.
#[derive(Default)]
pub(crate) struct Table {
    hosts: HashMap<String, HostTarget>,
    tag_header: bool,
}

impl Table {
    pub(crate) fn build(spec: &Spec) -> Self {
        let mut hosts = HashMap::new();
        for route in &spec.routes {
            let traffic: Vec<(String, i64)> = route
                .traffic
                .iter()
                .filter(|t| t.percent > 0)
                .map(|t| (t.revision.clone(), i64::from(t.percent)))
                .collect();
            let split = Arc::new(Split {
                namespace: route.namespace.clone(),
                current: Mutex::new(vec![0; traffic.len()]),
                targets: traffic,
                tags: route
                    .tags
                    .iter()
                    .map(|t| (t.tag.clone(), t.revision.clone()))
                    .collect(),
            });
            for h in &route.hosts {
                hosts.insert(h.to_ascii_lowercase(), HostTarget::Split(split.clone()));
            }
            for tag in &route.tags {
                for h in &tag.hosts {
                    hosts.insert(
                        h.to_ascii_lowercase(),
                        HostTarget::Revision {
                            namespace: route.namespace.clone(),
                            name: tag.revision.clone(),
                        },
                    );
                }
            }
        }
        Self {
            hosts,
            tag_header: spec.tag_header_routing,
        }
    }

    /// The (namespace, revision) for a request's host and tag header.
    fn resolve(&self, host: &str, tag: Option<&str>) -> crate::Result<(&str, &str)> {
        match self.hosts.get(host) {
            None => Err(crate::Error::NoRoute { host: host.into() }),
            Some(HostTarget::Revision { namespace, name }) => Ok((namespace, name)),
            Some(HostTarget::Split(split)) => {
                if self.tag_header
                    && let Some(rev) = tag.and_then(|t| split.tags.get(t))
                {
                    return Ok((&split.namespace, rev));
                }
                split
                    .next()
                    .map(|r| (split.namespace.as_str(), r))
                    .ok_or_else(|| crate::Error::NoTrafficTarget { host: host.into() })
            }
        }
    }
}

/// The host of a request, lower case, without port or trailing dot.
fn host_of(req: &Request<Incoming>) -> Option<String> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    Some(normalize_host(raw).into_owned())
}

/// A Host header's host: lower case, without port or trailing dot (borrowed when it already
/// is).
pub(crate) fn normalize_host(raw: &str) -> Cow<'_, str> {
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => raw,
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The running revision a request for `host` (with the tag header `tag`) goes to, or the
/// answer the gateway gives instead.
pub(crate) fn target(
    inner: &Inner,
    host: &str,
    tag: Option<&str>,
) -> Result<Arc<Rev>, (StatusCode, String)> {
    // Lock order: the table, then the revisions (apply never holds both).
    let table = inner.table.read();
    let (namespace, name) = table
        .resolve(host, tag)
        .map_err(|why| (StatusCode::NOT_FOUND, why.to_string()))?;
    inner.revision(namespace, name).ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("revision {namespace}/{name} is not running"),
        )
    })
}

/// A request's deadlines from the revision's timeouts.
pub(crate) struct Deadlines {
    /// `timeoutSeconds` (default 300 s): the whole exchange, waiting for a replica included.
    pub(crate) total: Instant,
    /// `responseStartTimeoutSeconds`: until the response head.
    pub(crate) start: Instant,
    /// `idleTimeoutSeconds`: longest pause in the response body.
    pub(crate) idle: Option<Duration>,
}

/// The longest timeout a deadline counts: admission caps the timeouts at 600 s, but a
/// hand-made Contract may say anything, and an `Instant` past what the clock holds panics.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `secs` seconds as a timeout, at most [`LONGEST_TIMEOUT`].
fn timeout(secs: u64) -> Duration {
    Duration::from_secs(secs).min(LONGEST_TIMEOUT)
}

impl Deadlines {
    pub(crate) fn of(spec: &Revision, now: Instant) -> Self {
        let total = now
            + match spec.timeout_seconds {
                0 => DEFAULT_TIMEOUT,
                s => timeout(s),
            };
        let start = match spec.response_start_timeout_seconds {
            Some(s) if s > 0 => total.min(now + timeout(s)),
            _ => total,
        };
        Self {
            total,
            start,
            idle: spec.idle_timeout_seconds.filter(|&s| s > 0).map(timeout),
        }
    }
}

pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response<GBody> {
    let mut body = msg.into();
    body.push('\n');
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Serve `listener` (plain TCP or TLS) until the runtime shuts down.
pub(crate) async fn serve<A: knit_tls::Accept>(inner: Arc<Inner>, mut listener: A) {
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = inner.cancel.cancelled() => break,
        };
        let inner = inner.clone();
        conns.spawn(async move {
            let client = proxy::Client::new(remote.ip(), A::SCHEME);
            let (stream, read) = match fastpath::serve(&inner, stream, &client).await {
                Left::Done => return,
                Left::Hyper(stream, read) => (stream, read),
            };
            let svc = service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(inner, req, remote, A::SCHEME).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder
                .serve_connection(TokioIo::new(Rewind::new(stream, read)), svc)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %remote, "gateway connection ended");
            }
        });
    }
    conns.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), conns.wait()).await;
}

async fn handle(
    inner: Arc<Inner>,
    mut req: Request<Incoming>,
    remote: SocketAddr,
    proto: &'static str,
) -> Response<GBody> {
    let Some(host) = host_of(&req) else {
        return text(StatusCode::BAD_REQUEST, "no Host header");
    };
    let tag = req
        .headers()
        .get("knative-serving-tag")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let rev = match target(&inner, &host, tag.as_deref()) {
        Ok(rev) => rev,
        Err((status, why)) => return text(status, why),
    };
    let name = rev.spec.name.clone();
    let namespace = rev.spec.namespace.clone();
    let d = Deadlines::of(&rev.spec, Instant::now());
    let upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let client = inner.client.clone();
    let call = async {
        let admitted = activator::admit(&rev).await?;
        let resp = proxy::forward(&client, admitted.port(), remote.ip(), proto, req).await;
        Ok::<_, Refusal>((admitted, resp))
    };
    let (admitted, resp) = match tokio::time::timeout_at(d.start, call).await {
        Err(_) => {
            tracing::info!(revision = %name, %namespace, "request timed out before the response started");
            return text(StatusCode::GATEWAY_TIMEOUT, "request timeout");
        }
        Ok(Err(refusal)) => return text(StatusCode::SERVICE_UNAVAILABLE, refusal.to_string()),
        Ok(Ok((_, Err(e)))) => {
            tracing::warn!(revision = %name, %namespace, error = %e, "replica did not answer");
            return text(
                StatusCode::BAD_GATEWAY,
                format!("replica did not answer: {e}"),
            );
        }
        Ok(Ok((admitted, Ok(resp)))) => (admitted, resp),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return switch(resp, upgrade, admitted);
    }
    let (parts, body) = resp.into_parts();
    let body = Timed::new(body, d.total, d.idle, admitted);
    Response::from_parts(parts, body.boxed())
}

/// Pass a 101 through and join the two upgraded connections.
fn switch(
    mut resp: Response<Incoming>,
    client_side: Option<hyper::upgrade::OnUpgrade>,
    admitted: Admitted,
) -> Response<GBody> {
    let Some(client_side) = client_side else {
        return text(
            StatusCode::BAD_GATEWAY,
            "the replica switched protocols unasked",
        );
    };
    let replica_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let _admitted = admitted;
        let (Ok(a), Ok(b)) = (client_side.await, replica_side.await) else {
            tracing::debug!("upgrade did not complete");
            return;
        };
        let mut a = TokioIo::new(a);
        let mut b = TokioIo::new(b);
        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(
        parts,
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// A response body under the request deadline and the idle timeout; holds the replica slot
/// until it is done. The timer is armed only once the body has to wait (a small body that
/// arrived with the head never touches the timer wheel).
struct Timed {
    inner: Incoming,
    deadline: Instant,
    idle: Option<Duration>,
    /// When the last frame arrived (with an idle timeout).
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    _admitted: Admitted,
}

impl Timed {
    fn new(inner: Incoming, deadline: Instant, idle: Option<Duration>, admitted: Admitted) -> Self {
        Self {
            inner,
            deadline,
            idle,
            last: if idle.is_some() {
                Instant::now()
            } else {
                deadline
            },
            timer: None,
            _admitted: admitted,
        }
    }

    /// When waiting for the next frame must end.
    fn wake_at(&self) -> Instant {
        match self.idle {
            Some(d) => self.deadline.min(self.last + d),
            None => self.deadline,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BodyTimeout {
    #[error("request timeout while streaming the response")]
    Total,
    #[error("idle timeout while streaming the response")]
    Idle,
}

impl Body for Timed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if this.timer.as_ref().is_some_and(|t| t.is_elapsed())
                && Instant::now() >= this.deadline
            {
                return Poll::Ready(Some(Err(Box::new(BodyTimeout::Total))));
            }
            if this.idle.is_some() {
                this.last = Instant::now();
            }
            return Poll::Ready(frame.map(|f| f.map_err(|e| Box::new(e) as BoxError)));
        }
        let wake_at = this.wake_at();
        let timer = match this.timer.as_mut() {
            Some(t) => {
                if t.deadline() != wake_at {
                    t.as_mut().reset(wake_at);
                }
                t
            }
            None => this
                .timer
                .insert(Box::pin(tokio::time::sleep_until(wake_at))),
        };
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(if Instant::now() >= this.deadline {
            Box::new(BodyTimeout::Total)
        } else {
            Box::new(BodyTimeout::Idle)
        })))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_round_robin_is_exact_per_hundred() {
        let split = Split {
            namespace: "ns".into(),
            targets: vec![("a".into(), 70), ("b".into(), 30)],
            tags: HashMap::new(),
            current: Mutex::new(vec![0, 0]),
        };
        let a = (0..100).filter(|_| split.next() == Some("a")).count();
        assert_eq!(a, 70);
    }

    #[test]
    fn timeouts_past_the_clock_are_capped_not_panics() {
        let value = serde_json::json!({
            "uid": "u", "namespace": "default", "name": "r-00001", "configuration": "r",
            "container": {"name": "c", "argv": ["true"]},
            "containerConcurrency": 0, "routed": true, "timeoutSeconds": u64::MAX,
            "responseStartTimeoutSeconds": u64::MAX, "idleTimeoutSeconds": u64::MAX,
        });
        let spec: Revision = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => panic!("revision JSON: {e}"),
        };
        let now = Instant::now();
        let d = Deadlines::of(&spec, now);
        assert_eq!(d.total, now + LONGEST_TIMEOUT);
        assert_eq!(d.start, d.total);
        assert_eq!(d.idle, Some(LONGEST_TIMEOUT));
    }
}
