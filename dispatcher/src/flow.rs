//! Flow control per egress: a queue of pending deliveries drained by at most `max-in-flight`
//! workers, and an optional rate. Pending work is a position and a shared event, so the queue
//! costs a few bytes per event; its length is bounded by the log it comes from.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use knit_channels::Event;
use parking_lot::Mutex;
use tokio::time::Instant;

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

/// One pending delivery.
#[derive(Debug, Clone)]
pub struct Work {
    /// Position of the event in its log.
    pub position: u64,
    /// The event.
    pub event: Arc<Event>,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Work>,
    workers: u32,
}

/// The limits and pending work of one egress.
#[derive(Debug, Clone)]
pub struct FlowControl {
    state: Arc<Mutex<State>>,
    max_in_flight: u32,
    rate: Option<Arc<RateLimiter>>,
}

impl FlowControl {
    /// Limits: `max_in_flight` deliveries at once, `rate` starts per second.
    pub fn new(max_in_flight: u32, rate: Option<f64>) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            max_in_flight: max_in_flight.max(1),
            rate: rate.map(|r| Arc::new(RateLimiter::new(r))),
        }
    }

    /// Queue a delivery. Returns true when the caller must start a worker (fewer than
    /// `max_in_flight` are running).
    pub fn push(&self, work: Work) -> bool {
        let mut s = self.state.lock();
        s.queue.push_back(work);
        if s.workers < self.max_in_flight {
            s.workers += 1;
            true
        } else {
            false
        }
    }

    /// The next delivery for a worker; `None` retires the worker.
    pub fn pop(&self) -> Option<Work> {
        let mut s = self.state.lock();
        let next = s.queue.pop_front();
        if next.is_none() {
            s.workers -= 1;
        }
        next
    }

    /// Wait until the rate allows the next start.
    pub async fn pace(&self) {
        if let Some(r) = &self.rate {
            r.acquire().await;
        }
    }

    /// Deliveries waiting for a worker.
    pub fn pending(&self) -> usize {
        self.state.lock().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(position: u64) -> Work {
        Work {
            position,
            event: Arc::new(Event::new("1", "s", "t")),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_spaces_starts() {
        let fc = FlowControl::new(10, Some(10.0));
        let start = Instant::now();
        for _ in 0..5 {
            fc.pace().await;
        }
        // 5 starts at 10/s: the fifth starts 400 ms after the first.
        assert_eq!(Instant::now() - start, Duration::from_millis(400));
    }

    #[test]
    fn workers_are_capped_and_retire_when_idle() {
        let fc = FlowControl::new(2, None);
        assert!(fc.push(work(0)));
        assert!(fc.push(work(1)));
        assert!(
            !fc.push(work(2)),
            "a third worker would exceed max-in-flight"
        );
        assert_eq!(fc.pending(), 3);
        assert_eq!(fc.pop().map(|w| w.position), Some(0));
        assert_eq!(fc.pop().map(|w| w.position), Some(1));
        assert_eq!(fc.pop().map(|w| w.position), Some(2));
        assert!(fc.pop().is_none(), "one worker retires");
        assert!(fc.pop().is_none(), "the other retires");
        assert!(fc.push(work(3)), "a new worker starts");
    }
}
