//! The in-memory log: a bounded queue of events with positions, read by one consumer that
//! commits positions once their deliveries are done. Not durable: it is lost on restart.
//!
//! The bound is the backpressure: an append to a full log fails (the ingress answers 429), so
//! memory stays bounded however slow the subscribers are.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::event::Event;

/// One event in a log with its position.
#[derive(Clone, Debug)]
pub struct Record {
    /// Position in the log, from 0.
    pub position: u64,
    /// The event.
    pub event: Arc<Event>,
}

/// Why an append failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The log holds as many events (or bytes) as it may; retry later.
    #[error("the log is full")]
    Full,
    /// The log was closed (its broker or channel was deleted).
    #[error("the log is closed")]
    Closed,
}

#[derive(Default)]
struct Inner {
    /// Position of `entries[0]`.
    first: u64,
    entries: VecDeque<(Arc<Event>, usize)>,
    /// Next position the consumer reads.
    next_read: u64,
    bytes: usize,
    closed: bool,
}

/// A bounded in-memory log.
pub struct MemoryLog {
    inner: Mutex<Inner>,
    readable: Notify,
    max_events: usize,
    max_bytes: usize,
}

impl MemoryLog {
    /// A log holding at most `max_events` uncommitted events and `max_bytes` of them.
    pub fn new(max_events: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            readable: Notify::new(),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
        })
    }

    /// Append an event; fails when full.
    pub fn append(&self, event: Arc<Event>) -> Result<u64, AppendError> {
        let size = event.size();
        let position = {
            let mut g = self.inner.lock();
            if g.closed {
                return Err(AppendError::Closed);
            }
            if g.entries.len() >= self.max_events
                || (g.bytes + size > self.max_bytes && !g.entries.is_empty())
            {
                return Err(AppendError::Full);
            }
            g.entries.push_back((event, size));
            g.bytes += size;
            g.first + g.entries.len() as u64 - 1
        };
        self.readable.notify_one();
        Ok(position)
    }

    /// Append every event or none (a batch is all-or-nothing); returns the first position.
    pub fn append_all(&self, events: Vec<Arc<Event>>) -> Result<u64, AppendError> {
        let sizes: Vec<usize> = events.iter().map(|e| e.size()).collect();
        let total: usize = sizes.iter().sum();
        let first = {
            let mut g = self.inner.lock();
            if g.closed {
                return Err(AppendError::Closed);
            }
            let room = g.entries.len() + events.len() <= self.max_events;
            let bytes_ok = g.bytes + total <= self.max_bytes || g.entries.is_empty();
            if !room || !bytes_ok {
                return Err(AppendError::Full);
            }
            let first = g.first + g.entries.len() as u64;
            for (e, size) in events.into_iter().zip(sizes) {
                g.entries.push_back((e, size));
            }
            g.bytes += total;
            first
        };
        self.readable.notify_one();
        Ok(first)
    }

    fn try_next(&self) -> Result<Option<Record>, ()> {
        let mut g = self.inner.lock();
        if g.closed {
            return Err(());
        }
        let offset = g.next_read - g.first;
        let Some((event, _)) = g.entries.get(usize::try_from(offset).unwrap_or(usize::MAX)) else {
            return Ok(None);
        };
        let record = Record {
            position: g.next_read,
            event: event.clone(),
        };
        g.next_read += 1;
        Ok(Some(record))
    }

    /// The next record for the consumer; waits for one. `None` once the log is closed.
    pub async fn next(&self) -> Option<Record> {
        loop {
            let notified = self.readable.notified();
            match self.try_next() {
                Ok(Some(r)) => return Some(r),
                Ok(None) => notified.await,
                Err(()) => return None,
            }
        }
    }

    /// Forget every record before `position` (they are done).
    pub fn commit(&self, position: u64) {
        let mut g = self.inner.lock();
        while g.first < position.min(g.next_read) {
            match g.entries.pop_front() {
                Some((_, size)) => {
                    g.bytes -= size;
                    g.first += 1;
                }
                None => break,
            }
        }
    }

    /// Close the log: appends fail and the consumer stops.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.readable.notify_waiters();
        self.readable.notify_one();
    }

    /// Events held (read or not, not yet committed).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether the log holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> Arc<Event> {
        Arc::new(Event::new(id, "s", "t"))
    }

    #[tokio::test]
    async fn append_read_commit() {
        let log = MemoryLog::new(2, 1 << 20);
        assert_eq!(log.append(ev("a")), Ok(0));
        assert_eq!(log.append(ev("b")), Ok(1));
        assert_eq!(log.append(ev("c")), Err(AppendError::Full));
        let r = log.next().await.expect("record");
        assert_eq!((r.position, r.event.id.as_str()), (0, "a"));
        log.commit(1);
        assert_eq!(log.append(ev("c")), Ok(2));
        assert_eq!(log.next().await.map(|r| r.position), Some(1));
        assert_eq!(log.next().await.map(|r| r.position), Some(2));
    }

    #[tokio::test]
    async fn commit_never_drops_unread_records() {
        let log = MemoryLog::new(10, 1 << 20);
        log.append(ev("a")).expect("room");
        log.commit(5);
        assert_eq!(log.len(), 1);
        assert_eq!(log.next().await.map(|r| r.position), Some(0));
    }

    #[tokio::test]
    async fn close_wakes_the_consumer() {
        let log = MemoryLog::new(10, 1 << 20);
        let l2 = log.clone();
        let waiter = tokio::spawn(async move { l2.next().await.is_none() });
        tokio::task::yield_now().await;
        log.close();
        assert!(waiter.await.expect("joined"));
        assert_eq!(log.append(ev("a")), Err(AppendError::Closed));
    }
}
