//! Holes in a partition's offsets, read again before they are believed. Knit's own topics have
//! none (no compaction, no transactions), but a broker may show a record before the one below
//! it can be read: nisshi allocates a batch's offsets (moving the high watermark) and then
//! writes the batch, so a fetch in between, with a later batch already written, skips the
//! earlier one, and the client moves past it. A reader that sees a record past the offset it
//! expects seeks back and reads the hole again, up to [`REREADS`] times; a hole still there
//! is one the log has (compaction, transaction markers).

use std::collections::HashMap;
use std::hash::Hash;

/// How many times a hole is read again before it counts as one the log really has.
const REREADS: u32 = 8;

/// The holes being read again, by partition: where each starts and how many times it was.
#[derive(Debug)]
pub(crate) struct Holes<K> {
    rereads: HashMap<K, (i64, u32)>,
}

impl<K> Default for Holes<K> {
    fn default() -> Self {
        Self {
            rereads: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Holes<K> {
    /// Whether the hole starting at `from` in partition `key` is to be read again (false once
    /// it was [`REREADS`] times: the log has it).
    pub(crate) fn reread(&mut self, key: K, from: i64) -> bool {
        let entry = self.rereads.entry(key).or_insert((from, 0));
        if entry.0 != from {
            *entry = (from, 0);
        }
        if entry.1 >= REREADS {
            self.rereads.remove(&key);
            return false;
        }
        entry.1 += 1;
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
}
