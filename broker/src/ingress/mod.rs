//! The ingress of Brokers and channels: one listener, routed by path (`/<ns>/<broker>`,
//! `/channels/<ns>/<channel>`) or, for channels, by Host (`<channel>-kn-channel.<ns>...`); a
//! source's webhook (`/github/<ns>/<name>`) gets the body read within the same limits.
//!
//! Answers (eventing-spec E1–E11): 202 once the event is in the log; 400 naming the bad or
//! missing attribute; 404 for an unknown target; 405 with `Allow` for other methods (OPTIONS
//! answers 200); 413 above the size limit; 415 for an unknown event format; 429 with
//! `Retry-After` when the log is full. Brokers apply the `knativebrokerttl` hop limit.

mod auth;
mod body;
mod hop;
mod limits;
mod routes;
mod server;
mod target;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Body;
use knit_channels::{AppendError, Event};
use knit_dispatcher::binding::{self, BindingError, Decoded};
use knit_dispatcher::observe::{Accepted, Mode};

use body::BodyError;

pub use auth::Authz;
pub use hop::{HopError, TTL_EXTENSION};
pub use limits::Limits;
pub use routes::{Settings, Shared, Table};
pub use server::{Encryption, serve};
pub use target::{NoLog, Target};

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
    let limits = &shared.settings.limits;
    if let Some(answer) = not_a_post(&parts.method) {
        return refuse(answer, body, limits);
    }
    let target = match lookup(shared, parts.uri.path(), &parts.headers) {
        Lookup::Found(t) => Some(t),
        Lookup::Webhook => None,
        Lookup::NotFound(m) => return refuse(text(StatusCode::NOT_FOUND, m), body, limits),
        Lookup::Malformed(m) => return refuse(text(StatusCode::BAD_REQUEST, m), body, limits),
    };
    let bytes = match read_body(&shared.settings, &parts.headers, &mut body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let answer = too_large(shared.settings.max_event_size);
            return refuse(counted(shared, target.as_deref(), answer), body, limits);
        }
        Err(BodyError::TimedOut) => return timed_out(limits),
        Err(BodyError::Broken(e)) => {
            let why = format!("cannot read the request body: {e}");
            return text(StatusCode::BAD_REQUEST, why);
        }
    };
    let Some(target) = target else {
        // Looked up again: the receiver may have been replaced while the body arrived.
        return webhook(shared, parts, bytes).await;
    };
    let size = bytes.len();
    let (events, mode) = match decode(&parts.headers, bytes, limits.max_batch) {
        // An empty batch is a valid batch: nothing to store.
        Ok((events, _)) if events.is_empty() => return empty(StatusCode::ACCEPTED),
        Ok(decoded) => decoded,
        Err(e) => return counted(shared, Some(&target), e.answer()),
    };
    let stored = match admit(shared, &target, events, &parts.headers) {
        Ok(stored) => stored,
        Err(e) => {
            let answer = text(StatusCode::BAD_REQUEST, e.to_string());
            return counted(shared, Some(&target), answer);
        }
    };
    // Reported before the append: an egress may deliver before the append returns.
    record_accepted(shared, &target, &stored, size, mode);
    if let Some(authz) = target.authz()
        && let Some(answer) =
            auth::refusal(shared.trust().as_deref(), &authz, &parts.headers, &stored).await
    {
        // A refusal (401, 403) is the journey's last step, as a full log's 429 is.
        let status = answer.status().as_u16();
        shared
            .stats
            .answered(&target.counters, &target.origin, &stored, status);
        return answer;
    }
    let answer = stored_answer(store(shared, &target, &parts, &stored).await);
    shared.stats.answered(
        &target.counters,
        &target.origin,
        &stored,
        answer.status().as_u16(),
    );
    answer
}

/// The answer to a request that is not a POST: 200 with `Allow` to OPTIONS (and the
/// CloudEvents webhook handshake), 405 to anything else.
fn not_a_post(method: &Method) -> Option<Response> {
    match *method {
        Method::POST => None,
        Method::OPTIONS => {
            let mut r = allow(empty(StatusCode::OK));
            let h = r.headers_mut();
            h.insert("WebHook-Allowed-Origin", HeaderValue::from_static("*"));
            h.insert("WebHook-Allowed-Rate", HeaderValue::from_static("*"));
            Some(r)
        }
        _ => Some(allow(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only POST is allowed",
        ))),
    }
}

/// Answer `r` to a request whose body is not read, draining the body in the background.
/// The answer of a listener transport encryption closes: 404 (Knative's; retried by senders
/// that learn of the mode later than the ingress), the body drained as for any refusal.
fn closed<B>(shared: &Shared, req: Request<B>, why: &'static str) -> Response
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
{
    refuse(
        text(StatusCode::NOT_FOUND, why),
        req.into_body(),
        &shared.settings.limits,
    )
}

fn refuse<B>(r: Response, body: B, limits: &Limits) -> Response
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
{
    body::drain(body, limits.drain_bytes, limits.drain_time);
    r
}

/// Count `r` under the Broker or channel it refuses a request to, once that is known.
#[inline]
fn counted(shared: &Shared, target: Option<&Target>, r: Response) -> Response {
    if let Some(t) = target {
        shared
            .stats
            .answered(&t.counters, &t.origin, &[], r.status().as_u16());
    }
    r
}

fn too_large(limit: usize) -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the event is larger than {limit} bytes (--max-event-size)"),
    )
}

/// Read the request body within the event size limit (checked against `Content-Length`
/// first) and the body timeout.
#[inline]
async fn read_body<B>(
    settings: &Settings,
    headers: &HeaderMap,
    body: &mut B,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let limit = settings.max_event_size;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > limit) {
        return Err(BodyError::TooLarge);
    }
    body::read(body, limit, length, settings.limits.body_timeout).await
}

fn timed_out(limits: &Limits) -> Response {
    text(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} s",
            limits.body_timeout.as_secs()
        ),
    )
}

/// Why the events of a request are refused.
enum Undecodable {
    /// A batch of more events than allowed (413).
    BatchTooLarge {
        /// Events in the batch.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// Not a CloudEvents format Knit reads (415), or not valid events (400).
    Binding(BindingError),
}

impl Undecodable {
    fn answer(self) -> Response {
        match self {
            Undecodable::BatchTooLarge { len, max } => text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a batch of {len} events; at most {max} are accepted at once"),
            ),
            Undecodable::Binding(e @ BindingError::UnsupportedMediaType(_)) => {
                text(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string())
            }
            Undecodable::Binding(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

/// The events in a request body (binary, structured or batched mode) and the mode they came
/// in; a batch holds at most `max_batch` events.
#[inline]
fn decode(
    headers: &HeaderMap,
    bytes: Bytes,
    max_batch: usize,
) -> Result<(Vec<Event>, Mode), Undecodable> {
    let event = match binding::decode(headers, bytes).map_err(Undecodable::Binding)? {
        Decoded::One(e) => e,
        Decoded::Batch(es) if es.len() > max_batch => {
            return Err(Undecodable::BatchTooLarge {
                len: es.len(),
                max: max_batch,
            });
        }
        Decoded::Batch(es) => return Ok((es, Mode::Batch)),
    };
    let structured = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/cloudevents"));
    let mode = if structured {
        Mode::Structured
    } else {
        Mode::Binary
    };
    Ok((vec![*event], mode))
}

/// The events as they are stored: the hop limit applied (Brokers), the request's propagated
/// headers attached, and a trace context given to those without one when traces are exported.
#[inline]
fn admit(
    shared: &Shared,
    target: &Target,
    events: Vec<Event>,
    headers: &HeaderMap,
) -> Result<Vec<Arc<Event>>, HopError> {
    let propagated = binding::propagated_headers(headers);
    let mut stored = Vec::with_capacity(events.len());
    for mut ev in events {
        if target.is_broker() {
            hop::hop(&mut ev, shared.settings.default_ttl)?;
        }
        ev.headers = propagated.clone();
        if shared.settings.traced && !ev.headers.iter().any(|(n, _)| n == "traceparent") {
            // Traces are exported: an event without a trace context gets a new one, which its
            // subscribers receive and their replies carry back.
            let tp = knit_dispatcher::observe::otlp::generated_traceparent(&target.origin, &ev);
            ev.headers.push(("traceparent".into(), tp));
        }
        stored.push(Arc::new(ev));
    }
    Ok(stored)
}

/// Record each event's acceptance (the journal, traces, counters).
#[inline]
fn record_accepted(
    shared: &Shared,
    target: &Target,
    stored: &[Arc<Event>],
    size: usize,
    mode: Mode,
) {
    let view = target.view();
    let at_ms = knit_dispatcher::deliver::now_ms();
    for event in stored {
        shared.stats.accepted(&Accepted {
            origin: &target.origin,
            view: &view,
            event,
            size,
            mode,
            at_ms,
        });
    }
}

/// Append the events to the target's log; a target recreated while the request was in flight
/// hands them to its successor.
#[inline]
async fn store(
    shared: &Shared,
    target: &Arc<Target>,
    parts: &http::request::Parts,
    stored: &[Arc<Event>],
) -> Result<(), AppendError> {
    let result = append(target, stored).await;
    if matches!(result, Err(AppendError::Closed))
        && let Lookup::Found(successor) = lookup(shared, parts.uri.path(), &parts.headers)
        && !Arc::ptr_eq(&successor, target)
    {
        return append(&successor, stored).await;
    }
    result
}

/// The answer to an append: 202 once stored, 429 or 503 to retry later, 413, or 404 when the
/// broker or channel is gone.
fn stored_answer(result: Result<(), AppendError>) -> Response {
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
        Err(AppendError::TooLarge(m)) => text(StatusCode::PAYLOAD_TOO_LARGE, m.to_string()),
        Err(AppendError::Closed) => {
            text(StatusCode::NOT_FOUND, "the broker or channel was deleted")
        }
    }
}

/// Hand a request to the source webhook registered at its path.
async fn webhook(shared: &Shared, parts: http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path().trim_end_matches('/');
    let Some(hook) = shared.webhooks.get(path) else {
        return text(StatusCode::NOT_FOUND, format!("no receiver at {path}"));
    };
    if let Some(wa) = hook.auth() {
        // The event it would forward, for the policies' filters: none (a ping, a refused
        // signature) checks the sender alone.
        let events: Vec<Arc<Event>> = hook
            .preview(&parts.headers, &body)
            .map(Arc::new)
            .into_iter()
            .collect();
        let authz = auth::Authz::new(&wa.auth, &wa.namespace);
        if let Some(answer) =
            auth::refusal(shared.trust().as_deref(), &authz, &parts.headers, &events).await
        {
            // Counted and journaled as a Broker's refusal is.
            let status = answer.status().as_u16();
            let at_ms = knit_dispatcher::deliver::now_ms();
            let view = Arc::default();
            for event in &events {
                shared.stats.accepted(&Accepted {
                    origin: &wa.origin,
                    view: &view,
                    event,
                    size: body.len(),
                    mode: Mode::Binary,
                    at_ms,
                });
            }
            let counters = shared.stats.ingress(&wa.origin);
            shared
                .stats
                .answered(&counters, &wa.origin, &events, status);
            tracing::info!(path, status, "webhook request refused");
            return answer;
        }
    }
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
        Err(why) => Err(AppendError::Unavailable(Box::new(why))),
    }
}

fn retry_later(status: StatusCode, msg: String) -> Response {
    let mut r = text(status, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}
