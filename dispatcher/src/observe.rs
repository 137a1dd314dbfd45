//! Where every event's fate is recorded: the one place that knows whether an event was
//! delivered, retried, dead-lettered or dropped, per egress.

use std::sync::atomic::{AtomicU64, Ordering};

/// What finally happened to one event at one egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The subscriber took it (and its reply, if any, was delivered).
    Delivered {
        /// Attempts made (1 = no retry).
        attempts: u32,
        /// Whether a reply was forwarded.
        replied: bool,
    },
    /// Delivery failed; the dead-letter sink took it.
    DeadLettered {
        /// Attempts made at the subscriber.
        attempts: u32,
        /// The last status from the subscriber, if it answered.
        status: Option<u16>,
    },
    /// Delivery failed and there was no dead-letter sink, or it failed too.
    Dropped {
        /// Attempts made at the subscriber.
        attempts: u32,
        /// Why.
        reason: String,
    },
}

/// Counters of fates, plus events no egress wanted.
#[derive(Debug, Default)]
pub struct Stats {
    /// Deliveries that succeeded.
    pub delivered: AtomicU64,
    /// Deliveries that went to a dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Deliveries that were dropped.
    pub dropped: AtomicU64,
    /// Retries made (attempts beyond the first).
    pub retries: AtomicU64,
    /// Events that matched no egress.
    pub unmatched: AtomicU64,
}

impl Stats {
    /// Record a fate of event `id` at `egress`.
    pub fn record(&self, egress: &str, id: &str, fate: &Fate) {
        match fate {
            Fate::Delivered { attempts, replied } => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.retries
                    .fetch_add(u64::from(attempts.saturating_sub(1)), Ordering::Relaxed);
                tracing::debug!(egress, id, attempts, replied, "delivered");
            }
            Fate::DeadLettered { attempts, status } => {
                self.dead_lettered.fetch_add(1, Ordering::Relaxed);
                self.retries
                    .fetch_add(u64::from(attempts.saturating_sub(1)), Ordering::Relaxed);
                tracing::info!(egress, id, attempts, status, "dead-lettered");
            }
            Fate::Dropped { attempts, reason } => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.retries
                    .fetch_add(u64::from(attempts.saturating_sub(1)), Ordering::Relaxed);
                tracing::warn!(egress, id, attempts, reason = %reason, "dropped");
            }
        }
    }

    /// A snapshot as JSON-friendly numbers.
    pub fn snapshot(&self) -> [(&'static str, u64); 5] {
        [
            ("delivered", self.delivered.load(Ordering::Relaxed)),
            ("deadLettered", self.dead_lettered.load(Ordering::Relaxed)),
            ("dropped", self.dropped.load(Ordering::Relaxed)),
            ("retries", self.retries.load(Ordering::Relaxed)),
            ("unmatched", self.unmatched.load(Ordering::Relaxed)),
        ]
    }
}
