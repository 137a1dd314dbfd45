//! Where every event's fate is recorded: the one place that knows whether an event was
//! delivered, filtered out, retried, deferred, dead-lettered or dropped, per egress. Counters
//! are kept per egress and in total; `/api/v1/stats`, `/metrics` and the egresses' status read
//! them. Every step of a journey (accepted, each attempt, each retry, the reply, the fate) is
//! reported here too ([`Stats::accepted`], [`Stats::attempt`], ...): counted first, then
//! handed to the [`Observer`]s (the [`Journal`] behind `knit trace`; an OpenTelemetry
//! exporter plugs in the same way).

mod counting;
pub mod journal;
pub mod journey;
pub mod otlp;
mod otlp_json;
mod seam;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use knit_channels::Event;
use parking_lot::RwLock;

pub use counting::{
    BUCKETS, Histogram, HistogramSnapshot, IngressCounters, Latencies, MAX_TYPES, OTHER,
};
pub use journal::{Journal, Unknown};
pub use journey::{Journey, Query};
pub use otlp::Otlp;
pub use seam::{
    Accepted, AttemptSeen, Explain, Hop, IngressView, Leg, Mode, Observer, Origin, Verdict,
    ViewEntry,
};

/// What finally happened to one event at one egress (or, for `Deferred`, what happened to
/// this attempt: the record was stored for a later one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The subscriber took it (and its reply, if any, was delivered).
    Delivered {
        /// Attempts made (1 = no retry).
        attempts: u32,
        /// Whether a reply was forwarded.
        replied: bool,
    },
    /// The egress's filter said no.
    Filtered,
    /// An attempt failed and the log took the event back for the next (its durable retry
    /// path: Kafka's retry topic); the record is settled.
    Deferred {
        /// Attempts made so far.
        attempts: u32,
    },
    /// Delivery failed; the dead-letter sink took it.
    DeadLettered {
        /// Attempts made at the subscriber.
        attempts: u32,
        /// The last status from the subscriber, if it answered.
        status: Option<u16>,
    },
    /// Delivery failed and there was no dead-letter sink, or it refused the event for good.
    Dropped {
        /// Attempts made at the subscriber.
        attempts: u32,
        /// Why.
        reason: String,
    },
}

/// Counters of one egress (or of all).
#[derive(Debug, Default)]
pub struct Counters {
    /// Deliveries that succeeded.
    pub delivered: AtomicU64,
    /// Events the filter turned away.
    pub filtered: AtomicU64,
    /// Deliveries that went to a dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Deliveries that were dropped.
    pub dropped: AtomicU64,
    /// Retries made (attempts beyond the first).
    pub retries: AtomicU64,
    /// Failed attempts taken back by the log's durable retry path.
    pub deferred: AtomicU64,
    /// Events shed because the egress fell too far behind (set from the log's count).
    pub shed: AtomicU64,
    /// Events read but not finished, or waiting in the log, where the backend knows (set
    /// from the consumer group's stats about every second).
    pub lag: AtomicU64,
    /// Deliveries in flight (set with `lag`).
    pub in_flight: AtomicU64,
    /// Attempt latencies by response status.
    pub latency: Latencies,
}

impl Counters {
    fn add(&self, fate: &Fate) {
        let retried = |attempts: u32| u64::from(attempts.saturating_sub(1));
        match fate {
            Fate::Delivered { attempts, .. } => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.retries
                    .fetch_add(retried(*attempts), Ordering::Relaxed);
            }
            Fate::Filtered => {
                self.filtered.fetch_add(1, Ordering::Relaxed);
            }
            Fate::Deferred { .. } => {
                self.deferred.fetch_add(1, Ordering::Relaxed);
            }
            Fate::DeadLettered { attempts, .. } => {
                self.dead_lettered.fetch_add(1, Ordering::Relaxed);
                self.retries
                    .fetch_add(retried(*attempts), Ordering::Relaxed);
            }
            Fate::Dropped { attempts, .. } => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.retries
                    .fetch_add(retried(*attempts), Ordering::Relaxed);
            }
        }
    }

    /// A snapshot as name → number, in a stable order.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("delivered", l(&self.delivered)),
            ("filtered", l(&self.filtered)),
            ("deadLettered", l(&self.dead_lettered)),
            ("dropped", l(&self.dropped)),
            ("retries", l(&self.retries)),
            ("deferred", l(&self.deferred)),
            ("shed", l(&self.shed)),
        ])
    }
}

/// Fates of every egress, by its reference (`Kind/namespace/name`), plus totals.
#[derive(Default)]
pub struct Stats {
    /// Over all egresses.
    pub total: Counters,
    /// Events no egress of their broker or channel wanted (memory logs know this at append).
    pub unmatched: Arc<AtomicU64>,
    by_egress: RwLock<BTreeMap<String, Arc<Counters>>>,
    by_ingress: RwLock<BTreeMap<Arc<Origin>, Arc<IngressCounters>>>,
    observers: Vec<Arc<dyn Observer>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("total", &self.total)
            .field("observers", &self.observers.len())
            .finish_non_exhaustive()
    }
}

impl Stats {
    /// Stats that report every step to `observers` as well.
    pub fn with_observers(observers: Vec<Arc<dyn Observer>>) -> Self {
        Self {
            observers,
            ..Default::default()
        }
    }

    /// The counters of one ingress (created on first use).
    pub fn ingress(&self, origin: &Arc<Origin>) -> Arc<IngressCounters> {
        if let Some(c) = self.by_ingress.read().get(origin) {
            return c.clone();
        }
        self.by_ingress
            .write()
            .entry(origin.clone())
            .or_default()
            .clone()
    }

    /// Every ingress's counters.
    pub fn ingresses(&self) -> Vec<(Arc<Origin>, Arc<IngressCounters>)> {
        self.by_ingress
            .read()
            .iter()
            .map(|(o, c)| (o.clone(), c.clone()))
            .collect()
    }

    /// Forget a deleted ingress's counters.
    pub fn forget_ingress(&self, origin: &Origin) {
        self.by_ingress.write().remove(origin);
    }

    /// Every egress's counters, by reference.
    pub fn egress_counters(&self) -> Vec<(String, Arc<Counters>)> {
        self.by_egress
            .read()
            .iter()
            .map(|(r, c)| (r.clone(), c.clone()))
            .collect()
    }

    /// An event was accepted at an ingress, before its append (whose answer follows with
    /// [`Stats::answered`]).
    pub fn accepted(&self, a: &Accepted<'_>) {
        for o in &self.observers {
            o.accepted(a);
        }
    }

    /// An ingress answered `status` to a request carrying `events` (empty: refused before
    /// they were decoded; counted once, with an empty type). Events that were reported
    /// [`Stats::accepted`] and got anything but 202 are reported refused.
    pub fn answered(
        &self,
        counters: &IngressCounters,
        origin: &Arc<Origin>,
        events: &[Arc<Event>],
        status: u16,
    ) {
        if events.is_empty() {
            counters.add(status, "", 1);
            return;
        }
        for e in events {
            counters.add(status, &e.ty, 1);
        }
        if status != 202 {
            for o in &self.observers {
                o.refused(origin, events, status);
            }
        }
    }

    /// An attempt of a delivery at the egress whose counters are `counters` finished.
    pub fn attempt(&self, counters: &Counters, hop: &Hop<'_>, a: &AttemptSeen<'_>) {
        counters.latency.observe(a.status, a.latency);
        for o in &self.observers {
            o.attempt(hop, a);
        }
    }

    /// An attempt failed; the next one comes after `wait`.
    pub fn retry(&self, hop: &Hop<'_>, attempts: u32, wait: Duration) {
        for o in &self.observers {
            o.retry(hop, attempts, wait);
        }
    }

    /// The subscriber replied with a new event `reply_id`, delivered to the reply target.
    pub fn replied(&self, hop: &Hop<'_>, reply_id: &str) {
        for o in &self.observers {
            o.replied(hop, reply_id);
        }
    }

    /// The counters of one egress (created on first use).
    pub fn egress(&self, reference: &str) -> Arc<Counters> {
        if let Some(c) = self.by_egress.read().get(reference) {
            return c.clone();
        }
        self.by_egress
            .write()
            .entry(reference.to_string())
            .or_default()
            .clone()
    }

    /// Record the fate of `hop`'s event at its egress (whose counters are `counters`), and
    /// report it to the observers.
    pub fn fate(&self, counters: &Counters, hop: &Hop<'_>, fate: &Fate) {
        self.record(counters, hop.egress, &hop.event.id, fate);
        for o in &self.observers {
            o.fate(hop, fate);
        }
    }

    /// Record a fate of event `id` at `egress` (whose counters are `counters`), without a
    /// journey (the observers are not told; see [`Stats::fate`]).
    pub fn record(&self, counters: &Counters, egress: &str, id: &str, fate: &Fate) {
        self.total.add(fate);
        counters.add(fate);
        match fate {
            Fate::Delivered { attempts, replied } => {
                tracing::debug!(egress, id, attempts, replied, "delivered");
            }
            Fate::Filtered => tracing::trace!(egress, id, "filtered out"),
            Fate::Deferred { attempts } => {
                tracing::debug!(egress, id, attempts, "attempt failed; stored for retry");
            }
            Fate::DeadLettered { attempts, status } => {
                tracing::info!(egress, id, attempts, status, "dead-lettered");
            }
            Fate::Dropped { attempts, reason } => {
                tracing::warn!(egress, id, attempts, reason = %reason, "dropped");
            }
        }
    }

    /// Totals, with `shed` summed over egresses and `unmatched`.
    pub fn totals(&self) -> BTreeMap<&'static str, u64> {
        let mut t = self.total.snapshot();
        let shed = self
            .by_egress
            .read()
            .values()
            .map(|c| c.shed.load(Ordering::Relaxed))
            .sum();
        t.insert("shed", shed);
        t.insert("unmatched", self.unmatched.load(Ordering::Relaxed));
        t
    }

    /// Snapshots of every egress.
    pub fn egresses(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        self.by_egress
            .read()
            .iter()
            .map(|(k, c)| (k.clone(), c.snapshot()))
            .collect()
    }

    /// Forget an egress that was deleted.
    pub fn forget(&self, reference: &str) {
        self.by_egress.write().remove(reference);
    }
}
