//! What a group's consumer knows of its partitions: a [`Tracker`] each, what it committed and
//! wrote to the progress topic last, the progress a new assignment starts from, and the drain
//! after its log was closed.

use std::collections::HashMap;

use rdkafka::{Offset, TopicPartitionList};

use super::super::holes::Holes;
use super::super::progress::{ByBase, Entry};
use crate::tracker::Tracker;

/// At most this many run lengths are written per partition (the value's size is capped too).
const MAX_RUNS: usize = 1_024;

/// A partition: the index of its topic among the group's streams, and its number.
pub(super) type Key = (u8, i32);

/// Draining after the log was closed: read up to these end offsets, then stop.
#[derive(Default)]
pub(super) struct Drain {
    /// `(stream, partition)` → end offset when the log was closed; `None` until read.
    pub(super) ends: Option<HashMap<Key, i64>>,
    /// Committed offsets when the drain started (partitions with no record since).
    pub(super) start: HashMap<Key, i64>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) generation: u64,
    pub(super) trackers: HashMap<Key, Tracker>,
    pub(super) committed: HashMap<Key, i64>,
    /// What was last written to the progress topic: the commit point and the runs.
    pub(super) written: HashMap<Key, Entry>,
    /// Progress read at assignment (by commit point), used when the partition's first record
    /// is read.
    pub(super) resume: HashMap<Key, ByBase>,
    /// The committed offsets read at assignment: where each new partition's first record is.
    pub(super) starts: HashMap<Key, i64>,
    /// The holes in partitions' offsets being read again.
    pub(super) holes: Holes<Key>,
    pub(super) revoked: Vec<Key>,
    pub(super) paused: bool,
    /// The consumer is closing: a revocation now waits for nothing.
    pub(super) closing: bool,
    /// Records finished so far (a revocation waits for this to move).
    pub(super) finishes: u64,
    pub(super) drain: Option<Drain>,
}

impl State {
    /// Forget the partitions `keys` (revoked).
    pub(super) fn forget(&mut self, keys: &[Key]) {
        for key in keys {
            self.trackers.remove(key);
            self.committed.remove(key);
            self.written.remove(key);
            self.resume.remove(key);
            self.starts.remove(key);
            self.holes.forget(key);
        }
    }

    /// Commit points that moved since the last commit (all of them when `all`), of the
    /// partitions `only` (all when `None`).
    pub(super) fn commit_list(
        &mut self,
        streams: &[String],
        all: bool,
        only: Option<&[Key]>,
    ) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (&key, t) in &self.trackers {
            if only.is_some_and(|o| !o.contains(&key)) {
                continue;
            }
            let point = t.commit_point();
            if !all && self.committed.get(&key) == Some(&point) {
                continue;
            }
            if let Some(topic) = streams.get(usize::from(key.0))
                && tpl
                    .add_partition_offset(topic, key.1, Offset::Offset(point))
                    .is_ok()
            {
                self.committed.insert(key, point);
            }
        }
        tpl
    }

    /// Progress entries that changed since last written, of the partitions `only` (all when
    /// `None`): only where something past the commit point is finished.
    pub(super) fn progress_list(&mut self, only: Option<&[Key]>) -> Vec<(Key, Entry)> {
        let mut out = Vec::new();
        for (&key, t) in &self.trackers {
            if only.is_some_and(|o| !o.contains(&key)) {
                continue;
            }
            let runs = t.runs(MAX_RUNS);
            if runs.is_empty() {
                continue;
            }
            let entry = Entry {
                base: t.commit_point(),
                runs,
            };
            if self.written.get(&key) != Some(&entry) {
                self.written.insert(key, entry.clone());
                out.push((key, entry));
            }
        }
        out
    }

    /// Records of `keys` handed out and not finished.
    pub(super) fn outstanding(&self, keys: &[Key]) -> usize {
        keys.iter()
            .filter_map(|k| self.trackers.get(k))
            .map(Tracker::outstanding)
            .sum()
    }

    pub(super) fn drained(&self) -> bool {
        let Some(Drain {
            ends: Some(ends),
            start,
        }) = &self.drain
        else {
            return false;
        };
        ends.iter().all(|(key, &end)| {
            let done = match self.trackers.get(key) {
                Some(t) => t.commit_point(),
                None => start.get(key).copied().unwrap_or(i64::MIN),
            };
            done >= end
        })
    }
}
