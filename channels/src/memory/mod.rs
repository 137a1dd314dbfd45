//! The in-memory log (Knative's InMemoryChannel, and the embedded default). Not durable: what
//! it holds is lost when the process stops.
//!
//! Each consumer group has its own queue: an append puts the event (shared, not copied) on the
//! queue of every group that wants it — all groups, or those a [`Selector`] picks — and wakes
//! only those. So a group's position is its own, a slow group never holds back another, and
//! 1,000 triggers cost one index lookup per event, not 1,000 wake-ups.
//!
//! Bounds, per group: at most `capacity` events and `max_bytes` bytes waiting (read records in
//! flight are bounded by the dispatcher's in-flight limit). When an append would overflow a
//! group, the group's [`Overflow`] policy decides: `Shed` drops that group's oldest waiting
//! events (counted in [`GroupStats::shed`] and logged) so other groups and the ingress go on;
//! `Block` fails the whole append with [`AppendError::Full`] (the ingress answers 429) until the
//! group catches up. Memory is therefore bounded by groups × (capacity, max_bytes).
//!
//! Closing the log (its broker or channel was deleted or recreated) or deleting a group stops
//! new appends; consumers still read everything already accepted, then end.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::event::Event;
use crate::log::{
    AppendError, BoxFuture, Consumer, GroupSpec, GroupStats, Log, LogError, Overflow, PartitionId,
    Polled, Record, RecordId, Selector, Settle, Settling,
};
use crate::tracker::Tracker;

/// Bounds of a memory log, per consumer group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Most events waiting for one group.
    pub capacity: usize,
    /// Most bytes of events waiting for one group.
    pub max_bytes: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

struct Waiting {
    seq: i64,
    event: Arc<Event>,
    size: usize,
}

struct GroupState {
    queue: VecDeque<Waiting>,
    bytes: usize,
    next_seq: i64,
    tracker: Tracker,
    overflow: Overflow,
    paused: bool,
    shed: u64,
    /// No more appends (the group was deleted or the log closed).
    closed: bool,
}

struct Group {
    name: String,
    state: Mutex<GroupState>,
    readable: Notify,
}

impl Group {
    fn new(spec: &GroupSpec) -> Arc<Self> {
        Arc::new(Self {
            name: spec.name.clone(),
            state: Mutex::new(GroupState {
                queue: VecDeque::new(),
                bytes: 0,
                next_seq: 0,
                tracker: Tracker::new(0),
                overflow: spec.overflow,
                paused: false,
                shed: 0,
                closed: false,
            }),
            readable: Notify::new(),
        })
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.readable.notify_one();
    }
}

#[derive(Default)]
struct Inner {
    closed: bool,
    groups: HashMap<String, Arc<Group>>,
    selector: Option<Arc<dyn Selector>>,
    /// `selector.groups()[i]` → the open group of that name.
    routed: Vec<Option<Arc<Group>>>,
    /// A group name → its index in `selector.groups()`.
    position: HashMap<String, usize>,
    /// Open groups the selector does not name: they get every event.
    uncovered: Vec<Arc<Group>>,
    /// Some group pushes back (`Overflow::Block`).
    blocking: bool,
    /// Reused by the selector.
    scratch: Vec<usize>,
}

impl Inner {
    /// Rebuild the routing from the selector and the open groups: O(groups + named).
    fn remap(&mut self) {
        let Inner {
            groups,
            selector,
            routed,
            position,
            uncovered,
            ..
        } = self;
        let named: &[String] = selector.as_ref().map(|s| s.groups()).unwrap_or_default();
        position.clear();
        position.extend(named.iter().enumerate().map(|(i, n)| (n.clone(), i)));
        routed.clear();
        routed.extend(named.iter().map(|n| groups.get(n).cloned()));
        uncovered.clear();
        uncovered.extend(
            groups
                .values()
                .filter(|g| !position.contains_key(&g.name))
                .cloned(),
        );
        self.recheck_blocking();
    }

    /// Route a group just opened: O(1), so opening N groups is O(N).
    fn place(&mut self, g: &Arc<Group>) {
        match self.position.get(&g.name) {
            Some(&i) => {
                if let Some(slot) = self.routed.get_mut(i) {
                    *slot = Some(g.clone());
                }
            }
            None => self.uncovered.push(g.clone()),
        }
        self.blocking |= g.state.lock().overflow == Overflow::Block;
    }

    /// Stop routing to a group just deleted: O(1) for a group the selector names.
    fn unplace(&mut self, g: &Arc<Group>) {
        match self.position.get(&g.name) {
            Some(&i) => {
                if let Some(slot) = self.routed.get_mut(i) {
                    *slot = None;
                }
            }
            None => self.uncovered.retain(|u| !Arc::ptr_eq(u, g)),
        }
        if self.blocking {
            self.recheck_blocking();
        }
    }

    fn recheck_blocking(&mut self) {
        self.blocking = self
            .groups
            .values()
            .any(|g| g.state.lock().overflow == Overflow::Block);
    }

    /// Call `f` for every group that wants `event`.
    fn for_each_target(&mut self, event: &Event, mut f: impl FnMut(&Arc<Group>)) {
        let Inner {
            selector,
            routed,
            uncovered,
            scratch,
            ..
        } = self;
        if let Some(sel) = selector {
            scratch.clear();
            sel.select(event, scratch);
            for &i in scratch.iter() {
                if let Some(Some(g)) = routed.get(i) {
                    f(g);
                }
            }
        }
        for g in uncovered.iter() {
            f(g);
        }
    }
}

/// A bounded in-memory log.
pub struct MemoryLog {
    inner: Mutex<Inner>,
    config: MemoryConfig,
    unrouted: Arc<AtomicU64>,
}

impl MemoryLog {
    /// An empty log with these bounds.
    pub fn new(config: MemoryConfig) -> Arc<Self> {
        Self::counting_unrouted(config, Arc::default())
    }

    /// An empty log that adds to `unrouted` every event no group wanted.
    pub fn counting_unrouted(config: MemoryConfig, unrouted: Arc<AtomicU64>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            config: MemoryConfig {
                capacity: config.capacity.max(1),
                max_bytes: config.max_bytes.max(1),
            },
            unrouted,
        })
    }

    fn append_now(&self, events: &[Arc<Event>]) -> Result<(), AppendError> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if inner.closed {
            return Err(AppendError::Closed);
        }
        if inner.blocking {
            // Push-back first: a group that blocks refuses the whole batch before anything is
            // queued.
            self.check_blocking(inner, events)?;
        }
        for event in events {
            let size = event.size();
            let mut routed = false;
            inner.for_each_target(event, |g| {
                routed = true;
                if self.push(g, event, size) {
                    g.readable.notify_one();
                }
            });
            if !routed {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn check_blocking(&self, inner: &mut Inner, events: &[Arc<Event>]) -> Result<(), AppendError> {
        let mut need: Vec<(Arc<Group>, usize, usize)> = Vec::new();
        for event in events {
            let size = event.size();
            inner.for_each_target(event, |g| {
                match need.iter_mut().find(|(n, _, _)| Arc::ptr_eq(n, g)) {
                    Some(entry) => {
                        entry.1 += 1;
                        entry.2 += size;
                    }
                    None => need.push((g.clone(), 1, size)),
                }
            });
        }
        for (g, count, bytes) in need {
            let s = g.state.lock();
            if s.overflow == Overflow::Block
                && !s.closed
                && (s.queue.len() + count > self.config.capacity
                    || (s.bytes + bytes > self.config.max_bytes && !s.queue.is_empty()))
            {
                return Err(AppendError::Full);
            }
        }
        Ok(())
    }

    /// Queue `event` for `g`, shedding its oldest waiting events if it must. True when queued.
    fn push(&self, g: &Group, event: &Arc<Event>, size: usize) -> bool {
        let mut s = g.state.lock();
        if s.closed {
            return false;
        }
        let mut shed = 0u64;
        while !s.queue.is_empty()
            && (s.queue.len() >= self.config.capacity || s.bytes + size > self.config.max_bytes)
        {
            if let Some(old) = s.queue.pop_front() {
                s.bytes -= old.size;
                shed += 1;
                tracing::debug!(group = %g.name, id = %old.event.id, "shed: the group fell too far behind");
            }
        }
        if shed > 0 {
            let before = s.shed;
            s.shed += shed;
            // Log the first shed and then every 1,000th, not every event.
            if before == 0 || before / 1000 != s.shed / 1000 {
                tracing::warn!(group = %g.name, shed_total = s.shed, capacity = self.config.capacity,
                    "events shed: the consumer fell too far behind (annotation knit.dev/overflow: block pushes back instead)");
            }
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.bytes += size;
        s.queue.push_back(Waiting {
            seq,
            event: event.clone(),
            size,
        });
        true
    }

    /// Events waiting (not yet read) over all groups.
    pub fn waiting(&self) -> usize {
        let inner = self.inner.lock();
        inner
            .groups
            .values()
            .map(|g| g.state.lock().queue.len())
            .sum()
    }
}

impl Log for MemoryLog {
    fn append<'a>(&'a self, events: &'a [Arc<Event>]) -> BoxFuture<'a, Result<(), AppendError>> {
        let result = self.append_now(events);
        Box::pin(std::future::ready(result))
    }

    fn open(&self, spec: GroupSpec) -> BoxFuture<'_, Result<Arc<dyn Consumer>, LogError>> {
        let result = (|| {
            let mut inner = self.inner.lock();
            if inner.closed {
                return Err(LogError::Closed);
            }
            let group = match inner.groups.get(&spec.name).cloned() {
                Some(g) => {
                    let changed = std::mem::replace(&mut g.state.lock().overflow, spec.overflow)
                        != spec.overflow;
                    if changed {
                        inner.recheck_blocking();
                    }
                    g
                }
                None => {
                    let g = Group::new(&spec);
                    inner.groups.insert(spec.name.clone(), g.clone());
                    inner.place(&g);
                    g
                }
            };
            Ok(Arc::new(MemoryConsumer { group }) as Arc<dyn Consumer>)
        })();
        Box::pin(std::future::ready(result))
    }

    fn delete_group(&self, name: &str) -> BoxFuture<'_, Result<(), LogError>> {
        let mut inner = self.inner.lock();
        if let Some(g) = inner.groups.remove(name) {
            g.close();
            inner.unplace(&g);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn select(&self, selector: Option<Arc<dyn Selector>>) {
        let mut inner = self.inner.lock();
        inner.selector = selector;
        inner.remap();
    }

    fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        for g in inner.groups.values() {
            g.close();
        }
    }

    fn durable(&self) -> bool {
        false
    }
}

/// The consumer of one memory group.
struct MemoryConsumer {
    group: Arc<Group>,
}

impl MemoryConsumer {
    fn take(&self, max: usize) -> Option<Option<Polled>> {
        let mut s = self.group.state.lock();
        if !s.paused && !s.queue.is_empty() {
            let n = s.queue.len().min(max.max(1));
            let mut records = Vec::with_capacity(n);
            for _ in 0..n {
                let Some(w) = s.queue.pop_front() else { break };
                s.bytes -= w.size;
                s.tracker.seen(w.seq);
                let key = w
                    .event
                    .extension("partitionkey")
                    .map(|v| Arc::from(v.to_string()));
                records.push(Record {
                    id: RecordId {
                        partition: PartitionId(0),
                        offset: w.seq,
                        handle: 0,
                    },
                    event: w.event,
                    key,
                    retry: None,
                });
            }
            return Some(Some(Polled::Records(records)));
        }
        if s.closed && s.queue.is_empty() {
            return Some(None);
        }
        None
    }
}

impl Consumer for MemoryConsumer {
    fn poll(&self, max: usize) -> BoxFuture<'_, Option<Polled>> {
        Box::pin(async move {
            loop {
                let notified = self.group.readable.notified();
                if let Some(out) = self.take(max) {
                    return out;
                }
                notified.await;
            }
        })
    }

    /// `Ack` and `DeadLettered` finish the record; a `Retry` is declined (`Kept`): the memory
    /// log never re-delivers by itself, the dispatcher retries in memory.
    fn settle<'a>(&'a self, record: &Record, how: Settle) -> Settling<'a> {
        match how {
            Settle::Ack | Settle::DeadLettered => {
                self.group.state.lock().tracker.finish(record.id.offset);
                Settling::done()
            }
            Settle::Retry(_) => Settling::kept(),
        }
    }

    fn commit(&self) -> BoxFuture<'_, Result<(), LogError>> {
        // Nothing survives the process, so there is nowhere to commit to; the tracker alone
        // tells how far the group got.
        Box::pin(std::future::ready(Ok(())))
    }

    fn pause(&self) {
        self.group.state.lock().paused = true;
    }

    fn resume(&self) {
        let was = std::mem::replace(&mut self.group.state.lock().paused, false);
        if was {
            self.group.readable.notify_one();
        }
    }

    fn stats(&self) -> GroupStats {
        let s = self.group.state.lock();
        GroupStats {
            lag: Some((s.queue.len() + s.tracker.outstanding()) as u64),
            shed: s.shed,
        }
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests;
