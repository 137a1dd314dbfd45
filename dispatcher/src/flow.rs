//! Flow control per egress: a cap on deliveries in flight and an optional rate.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// The limits of one egress.
#[derive(Debug, Clone)]
pub struct FlowControl {
    in_flight: Arc<Semaphore>,
    max_in_flight: u32,
    rate: Option<Arc<RateLimiter>>,
    rate_per_second: Option<f64>,
}

impl FlowControl {
    /// Limits: `max_in_flight` deliveries at once, `rate` starts per second.
    pub fn new(max_in_flight: u32, rate: Option<f64>) -> Self {
        let max = max_in_flight.max(1);
        Self {
            in_flight: Arc::new(Semaphore::new(max as usize)),
            max_in_flight: max,
            rate: rate.map(|r| Arc::new(RateLimiter::new(r))),
            rate_per_second: rate,
        }
    }

    /// Whether these limits equal `max_in_flight` and `rate` (then they can be kept as they are).
    pub fn same_limits(&self, max_in_flight: u32, rate: Option<f64>) -> bool {
        self.max_in_flight == max_in_flight.max(1) && self.rate_per_second == rate
    }

    /// Wait until a delivery may start; hold the permit while it runs.
    pub async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.in_flight.clone().acquire_owned().await.ok()?;
        if let Some(r) = &self.rate {
            r.acquire().await;
        }
        Some(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_spaces_starts() {
        let fc = FlowControl::new(10, Some(10.0));
        let start = Instant::now();
        for _ in 0..5 {
            let _p = fc.admit().await;
        }
        // 5 starts at 10/s: the fifth starts 400 ms after the first.
        assert_eq!(Instant::now() - start, Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_is_capped() {
        let fc = FlowControl::new(2, None);
        let a = fc.admit().await;
        let _b = fc.admit().await;
        let blocked = tokio::time::timeout(Duration::from_secs(1), fc.admit()).await;
        assert!(blocked.is_err());
        drop(a);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), fc.admit())
                .await
                .is_ok()
        );
    }
}
