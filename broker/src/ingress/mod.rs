//! The ingress of Brokers and channels: one listener, routed by path (`/<ns>/<broker>`,
//! `/channels/<ns>/<channel>`) or, for channels, by Host (`<channel>-kn-channel.<ns>...`); a
//! source's webhook (`/github/<ns>/<name>`) gets the body read within the same limits.
//!
//! Answers (eventing-spec E1–E11): 202 once the event is in the log; 400 naming the bad or
//! missing attribute; 404 for an unknown target; 405 with `Allow` for other methods (OPTIONS
//! answers 200); 413 above the size limit; 415 for an unknown event format; 429 with
//! `Retry-After` when the log is full. Brokers apply the `knativebrokerttl` hop limit.

mod body;
mod hop;
mod limits;
mod server;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Body;
use knit_channels::{AppendError, Event};
use knit_dispatcher::binding::{self, BindingError, Decoded};
use knit_dispatcher::observe::{Accepted, Mode};

use crate::dataplane::{Shared, Target};
use body::BodyError;

pub use hop::TTL_EXTENSION;
pub use limits::Limits;
pub use server::serve;

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
    Webhook,
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
    if shared.webhooks.get(trimmed).is_some() {
        return Lookup::Webhook;
    }
    match segments.as_slice() {
        ["github", ns, name] => Lookup::NotFound(format!("no GitHubSource {ns}/{name}")),
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

/// Handle one ingress request. A request refused before its body is read has the body
/// drained in the background (see [`Limits::drain_bytes`]).
pub async fn handle<B>(shared: &Shared, req: Request<B>) -> Response
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: std::fmt::Display,
{
    let (parts, mut body) = req.into_parts();
    let limits = &shared.config.limits;
    let refuse = |r: Response, body: B| {
        body::drain(body, limits.drain_bytes, limits.drain_time);
        r
    };
    match parts.method {
        Method::POST => {}
        Method::OPTIONS => {
            let mut r = allow(empty(StatusCode::OK));
            let h = r.headers_mut();
            h.insert("WebHook-Allowed-Origin", HeaderValue::from_static("*"));
            h.insert("WebHook-Allowed-Rate", HeaderValue::from_static("*"));
            return refuse(r, body);
        }
        _ => {
            return refuse(
                allow(text(StatusCode::METHOD_NOT_ALLOWED, "only POST is allowed")),
                body,
            );
        }
    }
    let target = match lookup(shared, parts.uri.path(), &parts.headers) {
        Lookup::Found(t) => Some(t),
        Lookup::Webhook => None,
        Lookup::NotFound(m) => return refuse(text(StatusCode::NOT_FOUND, m), body),
        Lookup::Malformed(m) => return refuse(text(StatusCode::BAD_REQUEST, m), body),
    };
    // Requests refused once their Broker or channel is known are counted under it.
    let counted = |r: Response| {
        if let Some(t) = &target {
            shared
                .stats
                .answered(&t.counters, &t.origin, &[], r.status().as_u16());
        }
        r
    };
    let limit = shared.config.max_event_size;
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the event is larger than {limit} bytes (--max-event-size)"),
        )
    };
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > limit) {
        return refuse(counted(too_large()), body);
    }
    let bytes = match body::read(&mut body, limit, length, limits.body_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return refuse(counted(too_large()), body),
        Err(BodyError::TimedOut) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    limits.body_timeout.as_secs()
                ),
            );
        }
        Err(BodyError::Broken(e)) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    let target = match target {
        Some(t) => t,
        // Looked up again: the receiver may have been replaced while the body arrived.
        None => return webhook(shared, parts, bytes).await,
    };
    let size = bytes.len();
    let refused = |r: Response| {
        shared
            .stats
            .answered(&target.counters, &target.origin, &[], r.status().as_u16());
        r
    };
    let decoded = binding::decode(&parts.headers, bytes);
    let mode = match &decoded {
        Ok(Decoded::Batch(_)) => Mode::Batch,
        _ if parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/cloudevents")) =>
        {
            Mode::Structured
        }
        _ => Mode::Binary,
    };
    let events = match decoded {
        Ok(Decoded::One(e)) => vec![*e],
        // An empty batch is a valid batch: nothing to store.
        Ok(Decoded::Batch(es)) if es.is_empty() => return empty(StatusCode::ACCEPTED),
        Ok(Decoded::Batch(es)) if es.len() > limits.max_batch => {
            return refused(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a batch of {} events; at most {} are accepted at once",
                    es.len(),
                    limits.max_batch
                ),
            ));
        }
        Ok(Decoded::Batch(es)) => es,
        Err(e @ BindingError::UnsupportedMediaType(_)) => {
            return refused(text(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()));
        }
        Err(e) => return refused(text(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let propagated = binding::propagated_headers(&parts.headers);
    let mut stored = Vec::with_capacity(events.len());
    for mut ev in events {
        if target.is_broker()
            && let Err(m) = hop::hop(&mut ev, shared.config.default_ttl)
        {
            return refused(text(StatusCode::BAD_REQUEST, m));
        }
        ev.headers = propagated.clone();
        if shared.config.otlp_endpoint.is_some()
            && !ev.headers.iter().any(|(n, _)| n == "traceparent")
        {
            // Traces are exported: an event without a trace context gets a new one, which its
            // subscribers receive and their replies carry back.
            let tp = knit_dispatcher::observe::otlp::generated_traceparent(&target.origin, &ev);
            ev.headers.push(("traceparent".into(), tp));
        }
        stored.push(Arc::new(ev));
    }
    // Reported before the append: an egress may deliver before the append returns.
    let view = target.view();
    let at_ms = knit_dispatcher::deliver::now_ms();
    for event in &stored {
        shared.stats.accepted(&Accepted {
            origin: &target.origin,
            view: &view,
            event,
            size,
            mode,
            at_ms,
        });
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
    let answer = match result {
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
    };
    shared.stats.answered(
        &target.counters,
        &target.origin,
        &stored,
        answer.status().as_u16(),
    );
    answer
}

/// Hand a request to the source webhook registered at its path.
async fn webhook(shared: &Shared, parts: http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path().trim_end_matches('/');
    let Some(hook) = shared.webhooks.get(path) else {
        return text(StatusCode::NOT_FOUND, format!("no receiver at {path}"));
    };
    let answer = hook.handle(parts.headers, body).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if answer.body.is_empty() {
        empty(status)
    } else {
        text(status, answer.body)
    }
}

/// How long an event waits for a log that is first being opened.
const OPENING_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

async fn append(target: &Target, events: &[Arc<Event>]) -> Result<(), AppendError> {
    match target.log_within(OPENING_WAIT).await {
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
