//! Scheduling the records of one egress: which record a worker takes next, under the egress's
//! ordering and in-flight limit.
//!
//! - unordered: one queue; up to `max_in_flight` deliveries at once, in any order of finishing;
//! - ordered: one lane per partition with one delivery in flight per lane (its retries
//!   included), so a partition's events arrive in log order;
//! - ordered-by-key: one lane per (partition, key) — the `partitionkey` — so each key's events
//!   arrive in order while different keys run in parallel. Events without a key share their
//!   partition's keyless lane.
//!
//! A worker holds one record at a time: the worker count is the in-flight count.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use knit_channels::{PartitionId, Record};
use knit_crds::contract::Ordering;
use parking_lot::Mutex;
use tokio::time::Instant;

/// The lane a record waits in (ordered modes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// A partition.
    Partition(PartitionId),
    /// A key within a partition.
    Key(PartitionId, Arc<str>),
}

/// A record taken by a worker, and the lane to release when it is done.
#[derive(Debug)]
pub struct Taken {
    /// The record.
    pub record: Record,
    /// Its lane (ordered modes).
    pub lane: Option<Lane>,
}

/// The waiting records and running workers of one egress.
#[derive(Debug, Default)]
pub struct Scheduler {
    ordering: Ordering,
    max_in_flight: usize,
    workers: usize,
    fifo: VecDeque<Record>,
    lanes: HashMap<Lane, VecDeque<Record>>,
    busy: HashSet<Lane>,
    runnable: VecDeque<Lane>,
    waiting: usize,
}

impl Scheduler {
    /// A scheduler for this ordering and limit.
    pub fn new(ordering: Ordering, max_in_flight: u32) -> Self {
        Self {
            ordering,
            max_in_flight: max_in_flight.max(1) as usize,
            ..Default::default()
        }
    }

    /// Change the ordering and limit for records queued from now on.
    pub fn configure(&mut self, ordering: Ordering, max_in_flight: u32) {
        self.ordering = ordering;
        self.max_in_flight = max_in_flight.max(1) as usize;
    }

    fn lane_of(&self, r: &Record) -> Option<Lane> {
        let p = r.id.partition;
        match self.ordering {
            Ordering::Unordered => None,
            Ordering::Ordered => Some(Lane::Partition(p)),
            Ordering::OrderedByKey => Some(match &r.key {
                Some(k) => Lane::Key(p, k.clone()),
                None => Lane::Partition(p),
            }),
        }
    }

    /// Queue a record.
    pub fn push(&mut self, record: Record) {
        self.waiting += 1;
        match self.lane_of(&record) {
            None => self.fifo.push_back(record),
            Some(lane) => {
                let q = self.lanes.entry(lane.clone()).or_default();
                q.push_back(record);
                if q.len() == 1 && !self.busy.contains(&lane) {
                    self.runnable.push_back(lane);
                }
            }
        }
    }

    fn take(&mut self) -> Option<Taken> {
        if let Some(record) = self.fifo.pop_front() {
            self.waiting -= 1;
            return Some(Taken { record, lane: None });
        }
        while let Some(lane) = self.runnable.pop_front() {
            if let Some(record) = self.lanes.get_mut(&lane).and_then(VecDeque::pop_front) {
                self.waiting -= 1;
                self.busy.insert(lane.clone());
                return Some(Taken {
                    record,
                    lane: Some(lane),
                });
            }
        }
        None
    }

    /// A record for a new worker, if one may start.
    pub fn start(&mut self) -> Option<Taken> {
        if self.workers >= self.max_in_flight {
            return None;
        }
        let t = self.take()?;
        self.workers += 1;
        Some(t)
    }

    /// A worker finished its record: release the lane and hand it the next record, or retire
    /// it (`None`).
    pub fn finish(&mut self, lane: Option<Lane>) -> Option<Taken> {
        if let Some(lane) = lane {
            self.busy.remove(&lane);
            match self.lanes.get(&lane) {
                Some(q) if !q.is_empty() => self.runnable.push_back(lane),
                _ => {
                    self.lanes.remove(&lane);
                }
            }
        }
        if self.workers > self.max_in_flight {
            self.workers -= 1;
            return None;
        }
        let next = self.take();
        if next.is_none() {
            self.workers -= 1;
        }
        next
    }

    /// A worker finished its record and stops (the egress is shutting down).
    pub fn retire(&mut self, lane: Option<Lane>) {
        if let Some(lane) = lane {
            self.busy.remove(&lane);
        }
        self.workers = self.workers.saturating_sub(1);
    }

    /// Drop records not yet started on these partitions (they were revoked); returns how many.
    pub fn revoke(&mut self, partitions: &[PartitionId]) -> usize {
        let hit = |r: &Record| partitions.contains(&r.id.partition);
        let before = self.waiting;
        self.fifo.retain(|r| !hit(r));
        for q in self.lanes.values_mut() {
            q.retain(|r| !hit(r));
        }
        self.lanes
            .retain(|l, q| !q.is_empty() || self.busy.contains(l));
        let lanes = &self.lanes;
        self.runnable.retain(|l| lanes.contains_key(l));
        self.waiting = self.fifo.len() + self.lanes.values().map(VecDeque::len).sum::<usize>();
        before - self.waiting
    }

    /// Records waiting plus in flight.
    pub fn backlog(&self) -> usize {
        self.waiting + self.workers
    }

    /// Deliveries in flight.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The in-flight limit.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

/// Spaces deliveries at least `1/rate` apart (a leaky bucket without bursts).
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// At most `per_second` starts per second.
    pub fn new(per_second: f64) -> Self {
        let secs = if per_second.is_finite() && per_second > 0.0 {
            1.0 / per_second
        } else {
            0.0
        };
        Self {
            interval: Duration::from_secs_f64(secs.min(86_400.0)),
            next: Mutex::new(None),
        }
    }

    /// Wait for the next free slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock();
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knit_channels::{Event, RecordId};

    fn rec(partition: u64, offset: i64, key: Option<&str>) -> Record {
        Record {
            id: RecordId {
                partition: PartitionId(partition),
                offset,
                handle: 0,
            },
            event: Arc::new(Event::new(offset.to_string(), "s", "t")),
            key: key.map(Arc::from),
            retry: None,
        }
    }

    fn offset(t: &Taken) -> i64 {
        t.record.id.offset
    }

    #[test]
    fn unordered_runs_up_to_the_limit() {
        let mut s = Scheduler::new(Ordering::Unordered, 2);
        for o in 0..3 {
            s.push(rec(0, o, None));
        }
        let a = s.start().expect("first");
        let b = s.start().expect("second");
        assert!(s.start().is_none(), "limit 2");
        assert_eq!((offset(&a), offset(&b)), (0, 1));
        assert_eq!(s.backlog(), 3);
        let c = s.finish(a.lane).expect("the worker takes the next record");
        assert_eq!(offset(&c), 2);
        assert!(s.finish(b.lane).is_none(), "nothing left: retire");
        assert!(s.finish(c.lane).is_none());
        assert_eq!(s.backlog(), 0);
    }

    #[test]
    fn ordered_keeps_one_in_flight_per_partition() {
        let mut s = Scheduler::new(Ordering::Ordered, 10);
        s.push(rec(0, 0, None));
        s.push(rec(0, 1, None));
        s.push(rec(1, 0, None));
        let a = s.start().expect("partition 0");
        let b = s.start().expect("partition 1");
        assert!(s.start().is_none(), "partition 0 is busy");
        assert_eq!((a.record.id.partition.0, b.record.id.partition.0), (0, 1));
        let next = s.finish(a.lane).expect("partition 0 again");
        assert_eq!((next.record.id.partition.0, offset(&next)), (0, 1));
    }

    #[test]
    fn ordered_by_key_runs_keys_in_parallel_in_order() {
        let mut s = Scheduler::new(Ordering::OrderedByKey, 10);
        s.push(rec(0, 0, Some("a")));
        s.push(rec(0, 1, Some("a")));
        s.push(rec(0, 2, Some("b")));
        let a0 = s.start().expect("a");
        let b = s.start().expect("b runs beside a");
        assert!(s.start().is_none(), "a's second waits");
        assert_eq!((offset(&a0), offset(&b)), (0, 2));
        assert!(s.finish(b.lane).is_none());
        let a1 = s.finish(a0.lane).expect("a's next");
        assert_eq!(offset(&a1), 1);
    }

    #[test]
    fn revoked_partitions_lose_their_waiting_records() {
        let mut s = Scheduler::new(Ordering::Ordered, 10);
        s.push(rec(0, 0, None));
        s.push(rec(0, 1, None));
        s.push(rec(1, 0, None));
        let running = s.start().expect("p0");
        assert_eq!(s.revoke(&[PartitionId(0)]), 1, "the record not started");
        assert!(
            s.finish(running.lane)
                .is_some_and(|t| t.record.id.partition.0 == 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_spaces_starts() {
        let r = RateLimiter::new(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            r.acquire().await;
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(400));
    }
}
