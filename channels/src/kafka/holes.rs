//! Holes in a partition's offsets, read again before they are believed. Knit's own topics have
//! none (no compaction, no transactions), but a broker may show a record before the one below
//! it can be read: nisshi allocates a batch's offsets (moving the high watermark) and then
//! writes the batch, so a fetch in between, with a later batch already written, skips the
//! earlier one, and the client moves past it. A reader that sees a record past the offset it
//! expects seeks back and reads the hole again: at least [`REREADS`] times and, on a topic only
//! Knit writes, for at least [`OWN_TOPIC_PATIENCE`] (however long the broker takes to write
//! the batch). A hole still there is one the log has (compaction; transaction markers, which
//! a topic written by others may have after every transaction: there the count alone bounds
//! the cost).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, ConsumerContext};

/// How many times a hole is read again, at least, before it counts as one the log has.
const REREADS: u32 = 8;

/// How long a hole in a topic only Knit writes is read again, at least.
pub(crate) const OWN_TOPIC_PATIENCE: Duration = Duration::from_secs(1);

/// A hole being read again.
#[derive(Debug)]
struct Hole {
    /// Its first offset.
    from: i64,
    times: u32,
    since: Instant,
}

/// The holes being read again, by partition.
#[derive(Debug)]
pub(crate) struct Holes<K> {
    /// How long a hole is read again at least (besides [`REREADS`] times).
    patience: Duration,
    rereads: HashMap<K, Hole>,
}

impl<K> Default for Holes<K> {
    fn default() -> Self {
        Self::new(Duration::ZERO)
    }
}

impl<K> Holes<K> {
    /// Holes read again [`REREADS`] times and for at least `patience`.
    pub(crate) fn new(patience: Duration) -> Self {
        Self {
            patience,
            rereads: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Holes<K> {
    /// Whether the hole starting at `from` in partition `key` is to be read again (false once
    /// it was, [`REREADS`] times and for the patience: the log has it).
    pub(crate) fn reread(&mut self, key: K, from: i64) -> bool {
        let now = Instant::now();
        let hole = self.rereads.entry(key).or_insert(Hole {
            from,
            times: 0,
            since: now,
        });
        if hole.from != from {
            *hole = Hole {
                from,
                times: 0,
                since: now,
            };
        }
        if hole.times >= REREADS && now.duration_since(hole.since) >= self.patience {
            self.rereads.remove(&key);
            return false;
        }
        hole.times = hole.times.saturating_add(1);
        true
    }

    /// Forget partition `key` (no longer read).
    pub(crate) fn forget(&mut self, key: &K) {
        self.rereads.remove(key);
    }

    /// Whether no hole is being read again.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.rereads.is_empty()
    }
}

/// Seek `consumer` back to `expected` in `partition` of `topic`, to read the hole before
/// `offset` again (the seek's version barrier drops what was fetched before it); false, with a
/// warning, when it cannot.
pub(crate) fn seek_back<X: ConsumerContext + 'static>(
    consumer: &impl Consumer<X>,
    topic: &str,
    partition: i32,
    expected: i64,
    offset: i64,
) -> bool {
    match consumer.seek(topic, partition, Offset::Offset(expected), Duration::ZERO) {
        Ok(()) => {
            tracing::debug!(
                topic,
                partition,
                expected,
                offset,
                "a hole in the log: reading it again"
            );
            true
        }
        Err(e) => {
            tracing::warn!(topic, partition, expected, offset, error = %e, "a hole in the log cannot be read again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hole_is_read_again_a_few_times_then_passed() {
        let mut h = Holes::default();
        for _ in 0..REREADS {
            assert!(h.reread(1, 10));
        }
        assert!(!h.reread(1, 10), "still there: the log has it");
        assert!(h.reread(2, 10), "each partition has its own");
        assert!(h.reread(2, 30), "a later hole is read again anew");
        h.forget(&2);
        assert!(h.is_empty(), "a partition no longer read is forgotten");
    }

    #[test]
    fn with_patience_a_hole_is_read_again_until_it_is_old_enough() {
        let mut h = Holes::new(Duration::from_secs(3_600));
        for _ in 0..REREADS * 10 {
            assert!(h.reread(1, 10), "younger than the patience");
        }
    }
}
