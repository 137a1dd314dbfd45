//! OpenTelemetry traces over OTLP/HTTP: an [`Observer`] that turns every step of an event's
//! journey into spans and exports them in batches as OTLP/HTTP JSON
//! (`POST {endpoint}/v1/traces`, `Content-Type: application/json`).
//!
//! The JSON is written by hand with serde rather than with the `opentelemetry*` SDK crates:
//! the OTLP JSON encoding is a small, stable spec (a handful of message types), and the SDK
//! crates bring a large dependency tree (their own runtime glue, protobuf, gRPC) for little.
//!
//! # Span model
//!
//! Every span of an event shares the trace id of the event's W3C `traceparent` (when the
//! event has none, a trace id derived from its `source` and `id`, so every step computes the
//! same one without shared state; that id is not written back onto the event).
//!
//! - `ingress {Kind}/{ns}/{name}` (SERVER): the event accepted at a Broker, channel or sink.
//!   Its parent is the sender's span (the `traceparent`'s parent id); for a reply, the
//!   delivery span that produced it. Attributes: `cloudevents.event_id`, `_type`, `_source`,
//!   `knit.ingress`, `knit.mode`, `knit.size`. A refused append adds an `refused` span.
//! - `deliver {Kind}/{ns}/{name}` (INTERNAL, child of the ingress span): one event at one
//!   Trigger or Subscription, from the first attempt to its fate. Attributes: `knit.egress`,
//!   `knit.fate` (`delivered`, `filtered`, `deferred`, `dead_lettered`, `dropped`),
//!   `knit.attempts`; span events `retry` (`knit.attempt`, `knit.wait_ms`) and `reply`
//!   (`knit.reply_id`). Status ERROR when dead-lettered or dropped. Filter evaluation is not a
//!   span of its own: an event a filter turned away (where the backend reports it, Kafka) is
//!   a `deliver` span with `knit.fate = filtered`.
//! - `POST subscriber` / `POST reply` / `POST dead-letter` (CLIENT, children of the deliver
//!   span): each HTTP attempt, with `url.full`, `http.response.status_code`, `knit.leg`,
//!   `error.type`; status ERROR on a transport error or a non-2xx answer.
//!
//! Span ids of ingress and deliver spans are derived from the trace id and the event (and
//! the ingress or egress), so the steps, reported separately, link up without a lookup.
//!
//! # Export
//!
//! Observer calls only push finished spans onto a bounded queue ([`QUEUE`]; when full the
//! oldest span is dropped and counted). A task posts what is queued every second, or sooner
//! once [`BATCH`] spans are waiting, with a timeout per request; failures are logged and the
//! batch is dropped (counted too).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use knit_channels::Event;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::Fate;
use super::otlp_json::*;
use super::seam::{Accepted, AttemptSeen, Hop, Leg, Mode, Observer, Origin};

pub use super::otlp_json::{SpanContext, generated_traceparent, parse_traceparent};

/// Spans held waiting for export; past that, the oldest are dropped.
pub const QUEUE: usize = 8192;
/// Spans per export request (and the count that triggers an early flush).
pub const BATCH: usize = 512;
/// How often queued spans are exported.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Timeout of one export request.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries in flight tracked for their start and span events; past that, new ones get
/// a deliver span that starts at their fate.
const OPEN: usize = 16_384;
/// Reply ids remembered so that a reply's ingress span becomes a child of its delivery.
const REPLIES: usize = 16_384;

/// A delivery in flight: when it started and its span events so far.
struct Open {
    start_ns: u64,
    events: Vec<Value>,
}

/// Exports traces to an OTLP/HTTP endpoint.
pub struct Otlp {
    queue: Mutex<VecDeque<Span>>,
    /// Spans dropped because the queue was full or an export failed.
    dropped: AtomicU64,
    /// Spans exported.
    exported: AtomicU64,
    wake: Arc<tokio::sync::Notify>,
    open: Mutex<HashMap<[u8; 8], Open>>,
    replies: Mutex<(HashMap<String, SpanContext>, VecDeque<String>)>,
    /// Ingress spans of events with no trace context, held for [`HOLD`] in case the event is
    /// a reply (reported [`Observer::replied`] only after the reply target took it).
    held: Mutex<HeldSpans>,
}

/// Held ingress spans by event id, and their ids in the order they were held.
type HeldSpans = (HashMap<String, Held>, VecDeque<(Instant, String)>);

/// An ingress span waiting to learn whether its event was a reply.
struct Held {
    span: Span,
    origin: String,
    source: String,
}

/// How long an ingress span of an event without trace context is held back.
const HOLD: Duration = Duration::from_millis(500);

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otlp")
            .field("dropped", &self.dropped)
            .field("exported", &self.exported)
            .finish_non_exhaustive()
    }
}

impl Otlp {
    /// An exporter posting to `{endpoint}/v1/traces` from a task on the current runtime.
    pub fn start(endpoint: &str) -> crate::Result<Arc<Self>> {
        crate::sender::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(crate::Error::Client)?;
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let otlp = Arc::new(Self::unstarted());
        let weak = Arc::downgrade(&otlp);
        let wake = otlp.wake.clone();
        tokio::spawn(async move { export_loop(weak, wake, client, url).await });
        Ok(otlp)
    }

    fn unstarted() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            wake: Arc::new(tokio::sync::Notify::new()),
            open: Mutex::new(HashMap::new()),
            replies: Mutex::new((HashMap::new(), VecDeque::new())),
            held: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Spans dropped so far (queue full, or export failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn push(&self, span: Span) {
        let len = {
            let mut q = self.queue.lock();
            if q.len() >= QUEUE {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(span);
            q.len()
        };
        if len >= BATCH {
            self.wake.notify_one();
        }
    }

    /// The trace of `event` and its ingress span's parent: the delivery that replied with it,
    /// else its `traceparent`, else a trace derived from it (no parent).
    fn parent_of(&self, event: &Event) -> (SpanContext, bool) {
        if let Some(ctx) = self.replies.lock().0.get(&event.id) {
            return (*ctx, true);
        }
        if let Some(ctx) = traceparent_of(event) {
            return (ctx, true);
        }
        (
            SpanContext {
                trace: derived_trace(event),
                span: [0; 8],
            },
            false,
        )
    }

    /// The trace id and the ingress span id of `event` entered at `origin`.
    fn ingress_of(&self, event: &Event, origin: Option<&Origin>) -> ([u8; 16], [u8; 8]) {
        let (parent, _) = self.parent_of(event);
        let trace = hex::encode(parent.trace);
        let at = origin.map(origin_ref).unwrap_or_default();
        (
            parent.trace,
            ingress_span_id(&trace, &at, &event.source, &event.id),
        )
    }

    /// Hold `span` (a root) back for [`HOLD`]; the oldest held goes out when too many are.
    fn hold(&self, id: &str, held: Held) {
        let evicted = {
            let mut h = self.held.lock();
            let (map, order) = &mut *h;
            let evicted = if map.len() >= QUEUE {
                order.pop_front().and_then(|(_, old)| map.remove(&old))
            } else {
                None
            };
            if map.insert(id.to_string(), held).is_none() {
                order.push_back((Instant::now(), id.to_string()));
            }
            evicted
        };
        if let Some(e) = evicted {
            self.push(e.span);
        }
    }

    /// Queue the held spans older than [`HOLD`] as they are (roots).
    fn release_held(&self) {
        let mut out = Vec::new();
        {
            let mut h = self.held.lock();
            let (map, order) = &mut *h;
            while let Some((at, _)) = order.front() {
                if at.elapsed() < HOLD {
                    break;
                }
                if let Some((_, id)) = order.pop_front()
                    && let Some(held) = map.remove(&id)
                {
                    out.push(held.span);
                }
            }
        }
        for span in out {
            self.push(span);
        }
    }

    fn deliver_of(&self, hop: &Hop<'_>) -> ([u8; 16], [u8; 8], [u8; 8]) {
        let (trace, ingress) = self.ingress_of(hop.event, hop.origin.map(|o| &**o));
        let span = span_id(&[
            "deliver",
            &hex::encode(ingress),
            hop.egress,
            &hop.event.source,
            &hop.event.id,
        ]);
        (trace, ingress, span)
    }

    fn event_on(&self, span: [u8; 8], event: Value) {
        let mut open = self.open.lock();
        if let Some(o) = open.get_mut(&span) {
            o.events.push(event);
        } else if open.len() < OPEN {
            open.insert(
                span,
                Open {
                    start_ns: now_ns(),
                    events: vec![event],
                },
            );
        }
    }
}

impl Observer for Otlp {
    fn accepted(&self, a: &Accepted<'_>) {
        let (parent, has_parent) = self.parent_of(a.event);
        let (trace, span) = self.ingress_of(a.event, Some(a.origin));
        // A `traceparent` the ingress generated names this very span: it is a root.
        let has_parent = has_parent && parent.span != span;
        let start = ms_to_ns(a.at_ms);
        let mut attributes = event_attrs(a.event);
        attributes.push(attr("knit.ingress", origin_ref(a.origin)));
        let mode = match a.mode {
            Mode::Binary => "binary",
            Mode::Structured => "structured",
            Mode::Batch => "batch",
        };
        attributes.push(attr("knit.mode", mode));
        attributes.push(attr("knit.size", i64::try_from(a.size).unwrap_or(i64::MAX)));
        let events = filter_events(a, start);
        let span = Span {
            trace_id: hex::encode(trace),
            span_id: hex::encode(span),
            parent_span_id: if has_parent {
                hex::encode(parent.span)
            } else {
                String::new()
            },
            name: format!("ingress {}", origin_ref(a.origin)),
            kind: KIND_SERVER,
            start_time_unix_nano: start.to_string(),
            end_time_unix_nano: now_ns().max(start).to_string(),
            attributes,
            events,
            status: status(None),
        };
        if has_parent {
            self.push(span);
        } else {
            self.hold(
                &a.event.id,
                Held {
                    span,
                    origin: origin_ref(a.origin),
                    source: a.event.source.clone(),
                },
            );
        }
    }

    fn refused(&self, origin: &Arc<Origin>, events: &[Arc<Event>], code: u16) {
        for event in events {
            let (trace, ingress) = self.ingress_of(event, Some(origin));
            let now = now_ns().to_string();
            let mut attributes = event_attrs(event);
            attributes.push(attr("http.response.status_code", i64::from(code)));
            self.push(Span {
                trace_id: hex::encode(trace),
                span_id: hex::encode(span_id(&["refused", &hex::encode(ingress)])),
                parent_span_id: hex::encode(ingress),
                name: "refused".to_string(),
                kind: KIND_INTERNAL,
                start_time_unix_nano: now.clone(),
                end_time_unix_nano: now,
                attributes,
                events: Vec::new(),
                status: status(Some("the append failed")),
            });
        }
    }

    fn attempt(&self, hop: &Hop<'_>, a: &AttemptSeen<'_>) {
        let (trace, _, deliver) = self.deliver_of(hop);
        let start = ms_to_ns(a.at_ms);
        {
            let mut open = self.open.lock();
            if !open.contains_key(&deliver) && open.len() < OPEN {
                open.insert(
                    deliver,
                    Open {
                        start_ns: start,
                        events: Vec::new(),
                    },
                );
            } else if let Some(o) = open.get_mut(&deliver) {
                o.start_ns = o.start_ns.min(start);
            }
        }
        let latency = u64::try_from(a.latency.as_nanos()).unwrap_or(u64::MAX);
        let leg = match a.leg {
            Leg::Subscriber => "subscriber",
            Leg::Reply => "reply",
            Leg::DeadLetter => "dead-letter",
        };
        let mut attributes = vec![
            attr("knit.egress", &**hop.egress),
            attr("knit.leg", leg),
            attr("url.full", a.url.to_string()),
            attr("http.request.method", "POST"),
        ];
        if let Some(s) = a.status {
            attributes.push(attr("http.response.status_code", i64::from(s)));
        }
        if let Some(e) = a.error {
            attributes.push(attr("error.type", e));
        }
        let failed = a.error.map(str::to_string).or_else(|| match a.status {
            Some(s) if (200..300).contains(&s) => None,
            Some(s) => Some(format!("status {s}")),
            None => Some("no answer".to_string()),
        });
        let unique = format!("{}:{}:{}", a.at_ms, latency, leg);
        let count = NEXT.fetch_add(1, Ordering::Relaxed).to_string();
        self.push(Span {
            trace_id: hex::encode(trace),
            span_id: hex::encode(span_id(&[
                "attempt",
                &hex::encode(deliver),
                &unique,
                &count,
            ])),
            parent_span_id: hex::encode(deliver),
            name: format!("POST {leg}"),
            kind: KIND_CLIENT,
            start_time_unix_nano: start.to_string(),
            end_time_unix_nano: start.saturating_add(latency).to_string(),
            attributes,
            events: Vec::new(),
            status: status(failed.as_deref()),
        });
    }

    fn retry(&self, hop: &Hop<'_>, attempts: u32, wait: Duration) {
        let (_, _, deliver) = self.deliver_of(hop);
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        self.event_on(
            deliver,
            json!({
                "timeUnixNano": now_ns().to_string(),
                "name": "retry",
                "attributes": [attr("knit.attempt", i64::from(attempts)), attr("knit.wait_ms", wait_ms)],
            }),
        );
    }

    fn replied(&self, hop: &Hop<'_>, reply_id: &str) {
        let (trace, _, deliver) = self.deliver_of(hop);
        {
            let mut replies = self.replies.lock();
            let (map, order) = &mut *replies;
            if map.len() >= REPLIES
                && let Some(old) = order.pop_front()
            {
                map.remove(&old);
            }
            if map
                .insert(
                    reply_id.to_string(),
                    SpanContext {
                        trace,
                        span: deliver,
                    },
                )
                .is_none()
            {
                order.push_back(reply_id.to_string());
            }
        }
        let held = self.held.lock().0.remove(reply_id);
        if let Some(mut h) = held {
            // The reply's ingress span, held back: now a child of this delivery.
            let trace_hex = hex::encode(trace);
            h.span.span_id =
                hex::encode(ingress_span_id(&trace_hex, &h.origin, &h.source, reply_id));
            h.span.trace_id = trace_hex;
            h.span.parent_span_id = hex::encode(deliver);
            self.push(h.span);
        }
        self.event_on(
            deliver,
            json!({
                "timeUnixNano": now_ns().to_string(),
                "name": "reply",
                "attributes": [attr("knit.reply_id", reply_id)],
            }),
        );
    }

    fn fate(&self, hop: &Hop<'_>, fate: &Fate) {
        let (trace, ingress, deliver) = self.deliver_of(hop);
        let end = now_ns();
        let open = self.open.lock().remove(&deliver);
        let (start, events) = open.map_or((end, Vec::new()), |o| (o.start_ns.min(end), o.events));
        let (name, attempts, error) = match fate {
            Fate::Delivered { attempts, .. } => ("delivered", *attempts, None),
            Fate::Filtered => ("filtered", 0, None),
            Fate::Deferred { attempts } => ("deferred", *attempts, None),
            Fate::DeadLettered { attempts, status } => (
                "dead_lettered",
                *attempts,
                Some(match status {
                    Some(s) => format!("dead-lettered after status {s}"),
                    None => "dead-lettered".to_string(),
                }),
            ),
            Fate::Dropped { attempts, reason } => {
                ("dropped", *attempts, Some(format!("dropped: {reason}")))
            }
        };
        let mut attributes = event_attrs(hop.event);
        attributes.push(attr("knit.egress", &**hop.egress));
        attributes.push(attr("knit.fate", name));
        attributes.push(attr("knit.attempts", i64::from(attempts)));
        self.push(Span {
            trace_id: hex::encode(trace),
            span_id: hex::encode(deliver),
            parent_span_id: hex::encode(ingress),
            name: format!("deliver {}", hop.egress),
            kind: KIND_INTERNAL,
            start_time_unix_nano: start.to_string(),
            end_time_unix_nano: end.to_string(),
            attributes,
            events,
            status: status(error.as_deref()),
        });
    }
}

/// Distinguishes attempt spans.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Exports what is queued every [`FLUSH_EVERY`] or when woken, until the exporter is gone.
async fn export_loop(
    otlp: std::sync::Weak<Otlp>,
    wake: Arc<tokio::sync::Notify>,
    client: reqwest::Client,
    url: String,
) {
    loop {
        // Woken early, or not: either way the queue is drained.
        let _ = tokio::time::timeout(FLUSH_EVERY, wake.notified()).await;
        let Some(strong) = otlp.upgrade() else { return };
        strong.release_held();
        loop {
            let batch: Vec<Span> = {
                let mut q = strong.queue.lock();
                let n = q.len().min(BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body(&batch).to_string())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    strong.exported.fetch_add(n, Ordering::Relaxed);
                }
                Ok(r) => {
                    strong.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(url = %url, status = %r.status(), spans = n, dropped = strong.dropped(), "OTLP export refused");
                }
                Err(e) => {
                    strong.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(url = %url, error = %e, spans = n, dropped = strong.dropped(), "OTLP export failed");
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
