//! The gateway: an HTTP/1.1 server that routes by Host (with or without a port, lower case) to a
//! Route's weighted split (smooth weighted round robin, exact over any 100 requests) or a tag's
//! revision, honours `Knative-Serving-Tag` when tag header routing is on, and sends the request
//! through the activator and the replica's proxy. Bodies stream both ways; HTTP/1.1 upgrades
//! (websockets) pass through; `timeoutSeconds` (waiting for a replica included),
//! `responseStartTimeoutSeconds` and `idleTimeoutSeconds` end a request with 504 (or cut the
//! body once it started).

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
use knit_crds::contract::serving::Serving as Spec;
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

use super::Inner;
use super::activator::{self, Refusal};
use super::proxy::{self, Admitted};

/// The error type of response bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body.
pub(crate) type GBody = BoxBody<Bytes, BoxError>;

/// Default `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
    fn resolve(&self, host: &str, tag: Option<&str>) -> Result<(String, String), String> {
        match self.hosts.get(host) {
            None => Err(format!("no route for host {host:?}")),
            Some(HostTarget::Revision { namespace, name }) => Ok((namespace.clone(), name.clone())),
            Some(HostTarget::Split(split)) => {
                if self.tag_header
                    && let Some(rev) = tag.and_then(|t| split.tags.get(t))
                {
                    return Ok((split.namespace.clone(), rev.clone()));
                }
                split
                    .next()
                    .map(|r| (split.namespace.clone(), r.to_string()))
                    .ok_or_else(|| format!("route for host {host:?} has no traffic target"))
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
        .map(str::to_string)
        .or_else(|| req.uri().host().map(str::to_string))?;
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => raw.as_str(),
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
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

/// Serve `listener` until the runtime shuts down.
pub(crate) async fn serve(inner: Arc<Inner>, listener: tokio::net::TcpListener) {
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
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(inner, req, remote).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
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
) -> Response<GBody> {
    let Some(host) = host_of(&req) else {
        return text(StatusCode::BAD_REQUEST, "no Host header");
    };
    let tag = req
        .headers()
        .get("knative-serving-tag")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let resolved = inner.table.read().resolve(&host, tag.as_deref());
    let (namespace, name) = match resolved {
        Ok(x) => x,
        Err(why) => return text(StatusCode::NOT_FOUND, why),
    };
    let Some(rev) = inner.revision(&namespace, &name) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("revision {namespace}/{name} is not running"),
        );
    };
    let start = Instant::now();
    let total = match rev.spec.timeout_seconds {
        0 => DEFAULT_TIMEOUT,
        s => Duration::from_secs(s),
    };
    let deadline = start + total;
    let start_deadline = match rev.spec.response_start_timeout_seconds {
        Some(s) if s > 0 => deadline.min(start + Duration::from_secs(s)),
        _ => deadline,
    };
    let idle = rev
        .spec
        .idle_timeout_seconds
        .filter(|&s| s > 0)
        .map(Duration::from_secs);
    let upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let client = inner.client.clone();
    let call = async {
        let admitted = activator::admit(&rev).await?;
        let resp = proxy::forward(&client, admitted.port, remote.ip(), req).await;
        Ok::<_, Refusal>((admitted, resp))
    };
    let (admitted, resp) = match tokio::time::timeout_at(start_deadline, call).await {
        Err(_) => {
            tracing::info!(revision = %name, %namespace, "request timed out before the response started");
            return text(StatusCode::GATEWAY_TIMEOUT, "request timeout");
        }
        Ok(Err(refusal)) => {
            let status = match refusal {
                Refusal::Gone(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return text(status, refusal.to_string());
        }
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
    let body = Timed {
        inner: body,
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
        idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        _admitted: admitted,
    };
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
/// until it is done.
struct Timed {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    _admitted: Admitted,
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
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout::Total))));
        }
        if let Some((_, sleep)) = this.idle.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout::Idle))));
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some((d, sleep)) = this.idle.as_mut() {
            sleep.as_mut().reset(Instant::now() + *d);
        }
        Poll::Ready(frame.map(|f| f.map_err(|e| Box::new(e) as BoxError)))
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
}
