//! The OTLP/HTTP JSON encoding of spans (the OTLP JSON mapping: hex ids, nanosecond times as
//! strings, typed attribute values) and the ids of Knit's spans: W3C `traceparent` parsing, the
//! trace derived for an event without one, and the ingress span ids every step recomputes.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use knit_channels::Event;
use serde::Serialize;
use serde_json::{Value, json};

use super::seam::{Accepted, Origin};

pub(crate) const KIND_INTERNAL: u8 = 1;
pub(crate) const KIND_SERVER: u8 = 2;
pub(crate) const KIND_CLIENT: u8 = 3;
pub(crate) const STATUS_ERROR: u8 = 2;

/// A trace id and a span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanContext {
    /// 16 bytes.
    pub trace: [u8; 16],
    /// 8 bytes.
    pub span: [u8; 8],
}

/// Parse a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); all-zero ids are invalid.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version == "ff" || flags.len() != 2 {
        return None;
    }
    let mut t = [0u8; 16];
    let mut s = [0u8; 8];
    hex::decode_to_slice(trace, &mut t).ok()?;
    hex::decode_to_slice(span, &mut s).ok()?;
    if t == [0; 16] || s == [0; 8] {
        return None;
    }
    Some(SpanContext { trace: t, span: s })
}

pub(crate) fn hash64(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// A non-zero 8-byte id from `parts`.
pub(crate) fn span_id(parts: &[&str]) -> [u8; 8] {
    let v = hash64(parts).max(1);
    v.to_be_bytes()
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn ms_to_ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

pub(crate) fn traceparent_of(event: &Event) -> Option<SpanContext> {
    event
        .headers
        .iter()
        .find(|(n, _)| n == "traceparent")
        .and_then(|(_, v)| parse_traceparent(v))
}

pub(crate) fn origin_ref(o: &Origin) -> String {
    format!("{}/{}/{}", o.kind, o.namespace, o.name)
}

/// One finished span, in the OTLP JSON mapping.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Span {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) parent_span_id: String,
    pub(crate) name: String,
    pub(crate) kind: u8,
    pub(crate) start_time_unix_nano: String,
    pub(crate) end_time_unix_nano: String,
    pub(crate) attributes: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) events: Vec<Value>,
    pub(crate) status: Value,
}

pub(crate) fn attr(key: &str, value: impl Into<AttrValue>) -> Value {
    let value = match value.into() {
        AttrValue::Str(s) => json!({ "stringValue": s }),
        // int64 values are strings in the OTLP JSON mapping.
        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttrValue::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}

pub(crate) enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

pub(crate) fn status(error: Option<&str>) -> Value {
    match error {
        Some(message) => json!({ "code": STATUS_ERROR, "message": message }),
        None => json!({}),
    }
}

pub(crate) fn ingress_span_id(trace_hex: &str, origin: &str, source: &str, id: &str) -> [u8; 8] {
    span_id(&["ingress", trace_hex, origin, source, id])
}

/// The trace derived for an event that arrived without a `traceparent`.
pub(crate) fn derived_trace(event: &Event) -> [u8; 16] {
    let a = hash64(&["trace", &event.source, &event.id]).to_be_bytes();
    let b = hash64(&["trace2", &event.source, &event.id]).to_be_bytes();
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&a);
    trace[8..].copy_from_slice(&b);
    trace[0] |= 1;
    trace
}

/// The `traceparent` the ingress gives an event that arrived without one (when traces are
/// exported): the trace derived from it and, as parent, its own ingress span — so subscribers
/// receive the trace and their spans hang under Knit's. The ingress span itself stays a root
/// ([`Observer::accepted`] recognises the generated parent).
pub fn generated_traceparent(origin: &Origin, event: &Event) -> String {
    let trace = derived_trace(event);
    let trace_hex = hex::encode(trace);
    let span = ingress_span_id(&trace_hex, &origin_ref(origin), &event.source, &event.id);
    format!("00-{trace_hex}-{}-01", hex::encode(span))
}

/// Most Triggers whose filter evaluation is recorded on one ingress span.
pub(crate) const MAX_FILTER_EVENTS: usize = 100;

/// Filter evaluation, as span events of the ingress span: one `filter` event per Trigger of a
/// Broker (at most [`MAX_FILTER_EVENTS`]), matched or not and the clause that decided. Events
/// rather than child spans, so they follow the ingress span when a reply's is re-parented.
pub(crate) fn filter_events(a: &Accepted<'_>, at_ns: u64) -> Vec<Value> {
    if a.origin.kind != "Broker" {
        return Vec::new();
    }
    a.view
        .egresses
        .iter()
        .take(MAX_FILTER_EVENTS)
        .map(|e| {
            let (matched, clause, reason) = match &e.filter {
                Some(f) => {
                    let v = f.explain(a.event);
                    (v.matched, v.clause, v.reason)
                }
                None => (true, "(no filter)".to_string(), String::new()),
            };
            json!({
                "timeUnixNano": at_ns.to_string(),
                "name": "filter",
                "attributes": [
                    attr("knit.egress", e.reference.to_string()),
                    attr("knit.matched", matched),
                    attr("knit.clause", clause),
                    attr("knit.reason", reason),
                ],
            })
        })
        .collect()
}

pub(crate) fn event_attrs(event: &Event) -> Vec<Value> {
    vec![
        attr("cloudevents.event_id", event.id.as_str()),
        attr("cloudevents.event_type", event.ty.as_str()),
        attr("cloudevents.event_source", event.source.as_str()),
    ]
}

/// The OTLP/HTTP JSON body for `spans`.
pub(crate) fn body(spans: &[Span]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [attr("service.name", "knit")] },
            "scopeSpans": [{
                "scope": { "name": "knit", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}
