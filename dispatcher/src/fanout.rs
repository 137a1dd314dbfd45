//! The consumer of one log: routes each record to the egresses that want it, runs their
//! deliveries under flow control, and commits a position once every delivery of it and of all
//! earlier positions is done (commit-after-done: an event leaves the log only when its fate is
//! decided).

use std::collections::VecDeque;
use std::sync::Arc;

use knit_channels::event::Event;
use knit_channels::memory::MemoryLog;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::deliver::deliver;
use crate::egress::EgressRuntime;
use crate::flow::Work;
use crate::observe::Stats;
use crate::sender::{Deadline, Sender};

/// Decides which egresses take an event (a Broker's trigger filters; every subscription of a
/// channel).
pub trait Router: Send + Sync {
    /// Push the indices (into [`Routing::egresses`]) of the egresses that take `event`.
    fn route(&self, event: &Event, out: &mut Vec<usize>);
}

/// Every egress takes every event (channels).
pub struct AllRouter(pub usize);

impl Router for AllRouter {
    fn route(&self, _: &Event, out: &mut Vec<usize>) {
        out.extend(0..self.0);
    }
}

/// The egresses of one log and how events are routed to them.
pub struct Routing {
    /// The egresses.
    pub egresses: Vec<Arc<EgressRuntime>>,
    /// The router.
    pub router: Box<dyn Router>,
}

/// Tracks unfinished deliveries per position; yields the commit watermark.
struct Tracker {
    base: u64,
    pending: VecDeque<u32>,
}

impl Tracker {
    fn start(&mut self, position: u64, deliveries: u32) {
        if self.pending.is_empty() && position > self.base {
            self.base = position;
        }
        while self.base + (self.pending.len() as u64) < position {
            self.pending.push_back(0);
        }
        self.pending.push_back(deliveries);
    }

    /// Mark one delivery of `position` done; returns the new watermark if it moved.
    fn finish(&mut self, position: u64) -> Option<u64> {
        let i = usize::try_from(position.checked_sub(self.base)?).ok()?;
        let slot = self.pending.get_mut(i)?;
        *slot = slot.saturating_sub(1);
        let before = self.base;
        while self.pending.front() == Some(&0) {
            self.pending.pop_front();
            self.base += 1;
        }
        (self.base != before).then_some(self.base)
    }
}

/// What every worker of one consumer shares.
struct Context {
    log: Arc<MemoryLog>,
    tracker: Mutex<Tracker>,
    sender: Sender,
    stats: Arc<Stats>,
}

impl Context {
    fn done(&self, position: u64) {
        let watermark = self.tracker.lock().finish(position);
        if let Some(w) = watermark {
            self.log.commit(w);
        }
    }
}

/// Deliver an egress's queued work until its queue is empty.
async fn worker(egress: Arc<EgressRuntime>, ctx: Arc<Context>) {
    let mut deadline = Deadline::new();
    while let Some(work) = egress.flow.pop() {
        egress.flow.pace().await;
        let fate = deliver(&ctx.sender, &egress, &work.event, &mut deadline).await;
        ctx.stats
            .record(&egress.config.reference, &work.event.id, &fate);
        ctx.done(work.position);
    }
}

/// Run the consumer of `log` until the log is closed.
pub async fn run(
    log: Arc<MemoryLog>,
    routing: watch::Receiver<Arc<Routing>>,
    sender: Sender,
    stats: Arc<Stats>,
) {
    let ctx = Arc::new(Context {
        log: log.clone(),
        tracker: Mutex::new(Tracker {
            base: 0,
            pending: VecDeque::new(),
        }),
        sender,
        stats,
    });
    let mut matched = Vec::new();
    while let Some(record) = log.next().await {
        let routing = routing.borrow().clone();
        matched.clear();
        routing.router.route(&record.event, &mut matched);
        if matched.is_empty() {
            ctx.stats
                .unmatched
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx.tracker.lock().start(record.position, 1);
            ctx.done(record.position);
            continue;
        }
        ctx.tracker.lock().start(
            record.position,
            u32::try_from(matched.len()).unwrap_or(u32::MAX),
        );
        for &i in &matched {
            let Some(egress) = routing.egresses.get(i) else {
                ctx.done(record.position);
                continue;
            };
            let work = Work {
                position: record.position,
                event: record.event.clone(),
            };
            if egress.flow.push(work) {
                tokio::spawn(worker(egress.clone(), ctx.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_the_slowest_earlier_position() {
        let mut t = Tracker {
            base: 0,
            pending: VecDeque::new(),
        };
        t.start(0, 2);
        t.start(1, 1);
        assert_eq!(t.finish(1), None);
        assert_eq!(t.finish(0), None);
        assert_eq!(t.finish(0), Some(2));
    }
}
