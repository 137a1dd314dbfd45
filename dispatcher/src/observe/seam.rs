//! The observation seam: the steps of an event's journey, as the data plane reports them, and
//! the [`Observer`] trait every reader of those steps implements (the journal behind
//! `knit trace`; an OpenTelemetry exporter plugs in the same way). Counting (the fate
//! counters, the latency histograms, the ingress counts behind `/metrics`) is done by
//! [`crate::Stats`] itself before the observers are called, so metrics read the same record.
//!
//! Steps are reported from: the ingress (accepted, refused), the egress engine (filtered out:
//! Kafka logs filter when reading), `deliver` (each attempt at the subscriber, the reply target
//! and the dead-letter sink; each retry and its wait; the reply's new id) and the end of every
//! delivery (its [`Fate`]).

use std::sync::Arc;
use std::time::Duration;

use knit_channels::Event;
use serde::{Deserialize, Serialize};

use super::Fate;

/// Where an event entered: a Broker, a channel, a sink, or a source (which sends directly).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    /// `Broker`, `Channel`, `Sink`, or the source's kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Origin {
    /// An origin.
    pub fn new(kind: impl Into<String>, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// How an event arrived at an ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Attributes in `ce-` headers.
    Binary,
    /// `application/cloudevents+json`.
    Structured,
    /// One of a `application/cloudevents-batch+json` batch.
    Batch,
}

/// The verdict of an egress's filter on one event, with the clause that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the egress takes the event.
    pub matched: bool,
    /// The deciding clause (`filters[0].exact.type`, `(no filter)`).
    pub clause: String,
    /// Why, in words.
    pub reason: String,
}

/// Explains an egress's filter on an event. Only called when someone asks (a `knit trace`),
/// never on the hot path.
pub trait Explain: Send + Sync {
    /// The verdict on `event`.
    fn explain(&self, event: &Event) -> Verdict;
}

/// One egress of an ingress as the journal needs it.
#[derive(Clone)]
pub struct ViewEntry {
    /// `Kind/namespace/name`.
    pub reference: Arc<str>,
    /// Its filter (`None`: it takes every event).
    pub filter: Option<Arc<dyn Explain>>,
}

/// The egresses of an ingress at the time an event was accepted.
#[derive(Clone, Default)]
pub struct IngressView {
    /// In Contract order.
    pub egresses: Vec<ViewEntry>,
}

/// An event accepted at an ingress (reported before the log append; a failed append is
/// reported with [`Observer::refused`]).
pub struct Accepted<'a> {
    /// Where.
    pub origin: &'a Arc<Origin>,
    /// The ingress's egresses at that time.
    pub view: &'a Arc<IngressView>,
    /// The event.
    pub event: &'a Arc<Event>,
    /// Bytes of the request body (of the whole batch for a batch).
    pub size: usize,
    /// Content mode.
    pub mode: Mode,
    /// Wall clock, unix milliseconds.
    pub at_ms: i64,
}

/// Which delivery a step belongs to: one event at one egress.
#[derive(Clone, Copy)]
pub struct Hop<'a> {
    /// Where the event entered (`None`: unknown).
    pub origin: Option<&'a Arc<Origin>>,
    /// The egress, `Kind/namespace/name`.
    pub egress: &'a Arc<str>,
    /// The event.
    pub event: &'a Arc<Event>,
}

/// Where an attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Leg {
    /// The subscriber.
    Subscriber,
    /// The reply target (the subscriber's reply, or a subscription's forward).
    Reply,
    /// The dead-letter sink.
    DeadLetter,
}

/// One attempt (one HTTP request).
pub struct AttemptSeen<'a> {
    /// Where to.
    pub leg: Leg,
    /// The URL.
    pub url: &'a str,
    /// The same URL, shared (cheap to keep).
    pub shared_url: &'a Arc<str>,
    /// The answer's status, if there was one.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<&'a str>,
    /// Request to response.
    pub latency: Duration,
    /// When it started, unix milliseconds.
    pub at_ms: i64,
}

/// Reads the steps of every event's journey. Every method has an empty default; calls come
/// from the data plane's tasks and must return quickly (no I/O, no waiting).
pub trait Observer: Send + Sync {
    /// An event was accepted at an ingress (before its log append).
    fn accepted(&self, _a: &Accepted<'_>) {}
    /// The ingress refused these events after [`Observer::accepted`] (the append failed).
    fn refused(&self, _origin: &Arc<Origin>, _events: &[Arc<Event>], _status: u16) {}
    /// An attempt finished.
    fn attempt(&self, _hop: &Hop<'_>, _a: &AttemptSeen<'_>) {}
    /// Attempt number `attempts` failed; the next comes after `wait`.
    fn retry(&self, _hop: &Hop<'_>, _attempts: u32, _wait: Duration) {}
    /// The subscriber replied with a new event, now delivered to the reply target.
    fn replied(&self, _hop: &Hop<'_>, _reply_id: &str) {}
    /// The delivery ended (or, for [`Fate::Deferred`], was stored for a later attempt).
    fn fate(&self, _hop: &Hop<'_>, _fate: &Fate) {}
}
