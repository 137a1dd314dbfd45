//! Where every event's fate is recorded: the one place that knows whether an event was
//! delivered, filtered out, retried, deferred, dead-lettered or dropped, per egress. Counters
//! are kept per egress and in total; `/api/v1/stats` and the egresses' status read them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

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
    /// An attempt failed and the event was stored on the durable retry stream for the next.
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
    /// Failed attempts stored on a durable retry stream.
    pub deferred: AtomicU64,
    /// Events shed because the egress fell too far behind (set from the log's count).
    pub shed: AtomicU64,
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
#[derive(Debug, Default)]
pub struct Stats {
    /// Over all egresses.
    pub total: Counters,
    /// Events no egress of their broker or channel wanted (memory logs know this at append).
    pub unmatched: Arc<AtomicU64>,
    by_egress: RwLock<BTreeMap<String, Arc<Counters>>>,
}

impl Stats {
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

    /// Record a fate of event `id` at `egress` (whose counters are `counters`).
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
