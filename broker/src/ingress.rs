//! The ingress of Brokers and channels: one listener, routed by path (`/<ns>/<broker>`,
//! `/channels/<ns>/<channel>`) or, for channels, by Host (`<channel>-kn-channel.<ns>...`).
//!
//! Answers (eventing-spec E1–E11): 202 once the event is in the log; 400 naming the bad or
//! missing attribute; 404 for an unknown target; 405 with `Allow` for other methods (OPTIONS
//! answers 200); 413 above the size limit; 415 for an unknown event format; 429 with
//! `Retry-After` when the log is full. Brokers apply the `knativebrokerttl` hop limit.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use knit_channels::{AppendError, Event, ExtValue};
use knit_dispatcher::binding::{self, BindingError, Decoded};
use tokio::net::TcpListener;

use crate::dataplane::{Shared, Target};

/// The extension carrying a Broker's remaining hop count.
pub const TTL_EXTENSION: &str = "knativebrokerttl";

/// An ingress response.
pub type Response = http::Response<Full<Bytes>>;

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn allow(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    r
}

/// Where a request goes.
enum Lookup {
    Found(Arc<Target>),
    NotFound(String),
    Malformed(String),
}

fn lookup(shared: &Shared, path: &str, headers: &HeaderMap) -> Lookup {
    let table = shared.table();
    let trimmed = path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    if trimmed.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        return match host.and_then(|h| table.by_host.get(&h).cloned()) {
            Some(t) => Lookup::Found(t),
            None => Lookup::NotFound("no broker or channel at /".into()),
        };
    }
    match segments.as_slice() {
        [ns, name] => match table.by_path.get(trimmed) {
            Some(t) => Lookup::Found(t.clone()),
            None => Lookup::NotFound(format!("no broker {ns}/{name}")),
        },
        ["channels", ns, name] => match table.by_path.get(trimmed) {
            Some(t) => Lookup::Found(t.clone()),
            None => Lookup::NotFound(format!("no channel {ns}/{name}")),
        },
        ["sinks", ns, name] => match table.by_path.get(trimmed) {
            Some(t) => Lookup::Found(t.clone()),
            None => Lookup::NotFound(format!("no sink {ns}/{name}")),
        },
        _ => Lookup::Malformed(format!(
            "malformed path {path:?}: use /<namespace>/<broker>, /channels/<namespace>/<channel> or /sinks/<namespace>/<sink>"
        )),
    }
}

/// Apply the hop limit: set 255 when absent or unreadable, otherwise decrement; `Err` when
/// nothing is left.
fn hop(event: &mut Event, default_ttl: i64) -> Result<(), String> {
    let current = event.extension(TTL_EXTENSION).and_then(|v| match v {
        ExtValue::Integer(i) => Some(*i),
        ExtValue::String(s) => s.trim().parse::<i64>().ok(),
        ExtValue::Boolean(_) => None,
    });
    let next = match current {
        None => default_ttl,
        Some(n) => (n - 1).max(0),
    };
    if next <= 0 {
        return Err(format!(
            "dropping event {:?}: hop limit ({TTL_EXTENSION}) reached",
            event.id
        ));
    }
    event.set_extension(TTL_EXTENSION, ExtValue::Integer(next));
    Ok(())
}

async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Response>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the event is larger than {limit} bytes"),
                ))
            } else {
                Err(text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                ))
            }
        }
    }
}

/// Most ingress connections open at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Serve the ingress on `listener`, forever (HTTP/1.1; `Upgrade` requests are answered as plain
/// HTTP/1.1, E33). Connections are capped and request headers must arrive within 30 s.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ingress accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
            });
            let served = http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "ingress connection closed");
            }
            drop(slot);
        });
    }
}

/// Handle one ingress request.
pub async fn handle<B>(shared: &Shared, req: Request<B>) -> Response
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match *req.method() {
        Method::POST => {}
        Method::OPTIONS => {
            let mut r = allow(empty(StatusCode::OK));
            let h = r.headers_mut();
            h.insert("WebHook-Allowed-Origin", HeaderValue::from_static("*"));
            h.insert("WebHook-Allowed-Rate", HeaderValue::from_static("*"));
            return r;
        }
        _ => return allow(text(StatusCode::METHOD_NOT_ALLOWED, "only POST is allowed")),
    }
    let target = match lookup(shared, req.uri().path(), req.headers()) {
        Lookup::Found(t) => t,
        Lookup::NotFound(m) => return text(StatusCode::NOT_FOUND, m),
        Lookup::Malformed(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    let limit = shared.config.max_event_size;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > limit) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the event is larger than {limit} bytes"),
        );
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, limit).await {
        // The body is a slice of the connection's read buffer; events outlive the request in
        // the log, so they get their own right-sized copy instead of pinning that buffer.
        Ok(b) => Bytes::copy_from_slice(&b),
        Err(r) => return r,
    };
    let events = match binding::decode(&parts.headers, body) {
        Ok(Decoded::One(e)) => vec![*e],
        Ok(Decoded::Batch(es)) if es.is_empty() => {
            return text(StatusCode::BAD_REQUEST, "empty batch");
        }
        Ok(Decoded::Batch(es)) => es,
        Err(e @ BindingError::UnsupportedMediaType(_)) => {
            return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string());
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let propagated = binding::propagated_headers(&parts.headers);
    let mut stored = Vec::with_capacity(events.len());
    for mut ev in events {
        if target.is_broker()
            && let Err(m) = hop(&mut ev, shared.config.default_ttl)
        {
            return text(StatusCode::BAD_REQUEST, m);
        }
        ev.headers = propagated.clone();
        stored.push(Arc::new(ev));
    }
    let path = parts.uri.path();
    let mut result = append(&target, &stored).await;
    if result == Err(AppendError::Closed) {
        // Recreated while this request was in flight: its successor takes the events.
        result = match lookup(shared, path, &parts.headers) {
            Lookup::Found(t) if !Arc::ptr_eq(&t, &target) => append(&t, &stored).await,
            _ => result,
        };
    }
    match result {
        Ok(()) => empty(StatusCode::ACCEPTED),
        Err(AppendError::Full) => retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "the log is full; retry later".into(),
        ),
        Err(AppendError::Unavailable(m)) => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the event was not stored: {m}"),
        ),
        Err(AppendError::TooLarge(m)) => text(StatusCode::PAYLOAD_TOO_LARGE, m),
        Err(AppendError::Closed) => {
            text(StatusCode::NOT_FOUND, "the broker or channel was deleted")
        }
    }
}

async fn append(target: &Target, events: &[Arc<Event>]) -> Result<(), AppendError> {
    match target.log() {
        Ok(log) => log.append(events).await,
        Err(why) => Err(AppendError::Unavailable(why)),
    }
}

fn retry_later(status: StatusCode, msg: String) -> Response {
    let mut r = text(status, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl() {
        let mut e = Event::new("1", "s", "t");
        hop(&mut e, 255).expect("fresh event");
        assert_eq!(e.extension(TTL_EXTENSION), Some(&ExtValue::Integer(255)));
        let mut e = Event::new("1", "s", "t");
        e.set_extension(TTL_EXTENSION, ExtValue::String("2".into()));
        hop(&mut e, 255).expect("one hop left");
        assert_eq!(e.extension(TTL_EXTENSION), Some(&ExtValue::Integer(1)));
        assert!(hop(&mut e, 255).is_err());
    }
}
