//! What arrived at the sink, a sink that stalls on demand, and waiting for what is missing.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::crash::{RECOVERY, within_recovery};
use crate::common::sink::{Reply, Sink};

/// What arrived at the sink, followed as it comes (copying thousands of requests at every poll
/// would take a core of this 2-core machine).
pub(crate) struct Arrivals<'a> {
    pub(crate) sink: &'a Sink,
    pub(crate) seen: parking_lot::Mutex<Seen>,
}

#[derive(Default)]
pub(crate) struct Seen {
    /// Every arrival's time, in order.
    pub(crate) times: Vec<Instant>,
    /// When each event first arrived.
    pub(crate) first: HashMap<String, Instant>,
    /// Each arrival of an event after its first.
    pub(crate) again: Vec<String>,
}

impl<'a> Arrivals<'a> {
    pub(crate) fn new(sink: &'a Sink) -> Self {
        Arrivals {
            sink,
            seen: parking_lot::Mutex::new(Seen::default()),
        }
    }

    /// Up to date.
    pub(crate) fn now(&self) -> parking_lot::MutexGuard<'_, Seen> {
        let mut guard = self.seen.lock();
        let s = &mut *guard;
        for (id, at) in self.sink.arrivals_since(s.times.len()) {
            s.times.push(at);
            match s.first.entry(id) {
                Entry::Occupied(e) => s.again.push(e.key().clone()),
                Entry::Vacant(e) => {
                    e.insert(at);
                }
            }
        }
        guard
    }

    /// Deliveries so far, duplicates included.
    pub(crate) fn count(&self) -> usize {
        self.now().times.len()
    }

    /// How many of `wanted` have not arrived.
    pub(crate) fn missing(&self, wanted: &BTreeSet<String>) -> usize {
        let s = self.now();
        wanted
            .iter()
            .filter(|id| !s.first.contains_key(*id))
            .count()
    }

    /// The first ten of `wanted` that have not arrived.
    pub(crate) fn missing_ids(&self, wanted: &BTreeSet<String>) -> Vec<String> {
        let s = self.now();
        wanted
            .iter()
            .filter(|id| !s.first.contains_key(*id))
            .take(10)
            .cloned()
            .collect()
    }

    /// When the last of `wanted` first arrived.
    pub(crate) fn last_of(&self, wanted: &BTreeSet<String>) -> Option<Instant> {
        let s = self.now();
        wanted
            .iter()
            .filter_map(|id| s.first.get(id))
            .max()
            .copied()
    }

    /// The first arrival after `t`.
    pub(crate) fn first_after(&self, t: Instant) -> Option<Instant> {
        self.now().times.iter().find(|at| **at > t).copied()
    }

    /// Of the duplicates, how many are of an event in `ids`.
    pub(crate) fn duplicates_among(&self, ids: &BTreeSet<String>) -> usize {
        self.now()
            .again
            .iter()
            .filter(|id| ids.contains(*id))
            .count()
    }

    /// The duplicates by when their event first arrived: before `times[0]`, between `times[0]`
    /// and `times[1]`, ..., after the last.
    pub(crate) fn duplicates_by_first_arrival(&self, times: &[Instant]) -> Vec<usize> {
        let s = self.now();
        let mut by = vec![0; times.len() + 1];
        for id in &s.again {
            let first = s.first[id];
            by[times.iter().filter(|t| **t <= first).count()] += 1;
        }
        by
    }
}

/// A stalling sink: the next `left` deliveries are answered only after `delay` (or once
/// released), the rest at once.
pub(crate) struct Hold {
    pub(crate) delay: Duration,
    pub(crate) left: AtomicUsize,
    pub(crate) taken: AtomicUsize,
    pub(crate) release: tokio::sync::watch::Sender<bool>,
}

impl Hold {
    /// A sink that stalls on demand, holding deliveries for `delay`.
    pub(crate) fn start(sink: &Sink, delay: Duration) -> Arc<Hold> {
        let hold = Arc::new(Hold {
            delay,
            left: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            release: tokio::sync::watch::Sender::new(false),
        });
        let h = hold.clone();
        sink.respond_with(move |_| h.reply());
        hold
    }

    pub(crate) fn reply(&self) -> Reply {
        let hold = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !hold {
            return Reply::default();
        }
        self.taken.fetch_add(1, Ordering::SeqCst);
        Reply {
            delay: self.delay,
            until: Some(self.release.subscribe()),
            ..Reply::default()
        }
    }

    /// Hold the next `n` deliveries.
    pub(crate) fn arm(&self, n: usize) {
        self.release.send_replace(false);
        self.taken.store(0, Ordering::SeqCst);
        self.left.store(n, Ordering::SeqCst);
    }

    /// Deliveries held since [`Hold::arm`].
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }

    /// Hold no more; how many were held since [`Hold::arm`].
    pub(crate) fn disarm(&self) -> usize {
        self.left.store(0, Ordering::SeqCst);
        self.taken()
    }

    /// Answer the held deliveries now.
    pub(crate) fn release(&self) {
        self.release.send_replace(true);
    }

    /// The sink stalls: it holds the next `n` deliveries, and the stream goes on `past` more
    /// deliveries beyond them (finished while the held ones are not: a commit of the finished
    /// prefix only stops at the first held one).
    pub(crate) async fn stall(&self, arrivals: &Arrivals<'_>, n: usize, past: usize) {
        self.arm(n);
        within_recovery(&format!("the sink to hold {n} deliveries"), || async {
            (self.taken() >= n).then_some(())
        })
        .await;
        let to = arrivals.count() + past;
        within_recovery(&format!("{past} deliveries past the held ones"), || async {
            (arrivals.count() >= to).then_some(())
        })
        .await;
    }
}

/// Poll `missing` (a count of what has not arrived) until it is 0, or [`RECOVERY`] passed; its
/// last value.
pub(crate) async fn until_none_missing(mut missing: impl FnMut() -> usize) -> usize {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let m = missing();
        if m == 0 || Instant::now() >= deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `to - from` for the messages (negative when `to` came first).
pub(crate) fn since(from: Instant, to: Instant) -> String {
    match to.checked_duration_since(from) {
        Some(d) => format!("{d:.2?}"),
        None => format!("-{:.2?}", from - to),
    }
}
