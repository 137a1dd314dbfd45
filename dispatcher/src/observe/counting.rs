//! The counting half of the fate record: attempt latencies per response status (per egress)
//! and ingress requests per response status and event type (per Broker or channel). Lock-free
//! on the hot path apart from a read lock to find a series; bounded: at most
//! [`MAX_STATUSES`] statuses per egress and [`MAX_TYPES`] event types per ingress (the rest
//! are counted as `other`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

/// Upper bounds (seconds) of the latency buckets; the last bucket is `+Inf`.
pub const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Distinct event types counted per ingress; later ones count as [`OTHER`].
pub const MAX_TYPES: usize = 100;
/// Distinct response statuses kept per egress; later ones are counted under status 0.
pub(crate) const MAX_STATUSES: usize = 32;
/// The label of event types past [`MAX_TYPES`].
pub const OTHER: &str = "other";

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram's numbers at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations in that bucket)`, not cumulative, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum: f64,
}

impl Histogram {
    /// Record one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The numbers now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Attempt latencies of one egress by response status (0: no answer).
#[derive(Debug, Default)]
pub struct Latencies {
    by_status: RwLock<Vec<(u16, Arc<Histogram>)>>,
}

impl Latencies {
    /// Record an attempt answered with `status` (`None`: no answer) after `d`.
    pub fn observe(&self, status: Option<u16>, d: Duration) {
        let code = status.unwrap_or(0);
        if let Some((_, h)) = self.by_status.read().iter().find(|(s, _)| *s == code) {
            h.observe(d);
            return;
        }
        let h = {
            let mut all = self.by_status.write();
            let code = if all.len() >= MAX_STATUSES { 0 } else { code };
            match all.iter().find(|(s, _)| *s == code) {
                Some((_, h)) => h.clone(),
                None => {
                    let h = Arc::new(Histogram::default());
                    all.push((code, h.clone()));
                    h
                }
            }
        };
        h.observe(d);
    }

    /// Every status with its histogram, by status.
    pub fn snapshot(&self) -> Vec<(u16, HistogramSnapshot)> {
        let mut v: Vec<(u16, HistogramSnapshot)> = self
            .by_status
            .read()
            .iter()
            .map(|(s, h)| (*s, h.snapshot()))
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v
    }
}

/// Counts of one event type by response status.
type ByStatus = Vec<(u16, Arc<AtomicU64>)>;

/// Requests of one ingress by response status and event type.
#[derive(Debug, Default)]
pub struct IngressCounters {
    /// type → counts; at most [`MAX_TYPES`] types plus [`OTHER`].
    by_type: RwLock<HashMap<Arc<str>, ByStatus>>,
}

impl IngressCounters {
    /// Count `n` events of type `ty` (`""`: not decoded) answered with `status`.
    pub fn add(&self, status: u16, ty: &str, n: u64) {
        if let Some(c) = self
            .by_type
            .read()
            .get(ty)
            .and_then(|v| v.iter().find(|(s, _)| *s == status))
        {
            c.1.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let mut by = self.by_type.write();
        let ty = if by.contains_key(ty) || by.len() < MAX_TYPES {
            ty
        } else {
            OTHER
        };
        let statuses = by.entry(Arc::from(ty)).or_default();
        match statuses.iter().find(|(s, _)| *s == status) {
            Some((_, c)) => c.fetch_add(n, Ordering::Relaxed),
            None => {
                statuses.push((status, Arc::new(AtomicU64::new(n))));
                0
            }
        };
    }

    /// `(status, type, count)`, sorted.
    pub fn snapshot(&self) -> Vec<(u16, String, u64)> {
        let mut v: Vec<(u16, String, u64)> = self
            .by_type
            .read()
            .iter()
            .flat_map(|(t, statuses)| {
                statuses
                    .iter()
                    .map(|(s, c)| (*s, t.to_string(), c.load(Ordering::Relaxed)))
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_sum() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(100));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets.first(), Some(&(0.001, 1)));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum - 100.0205).abs() < 1e-6, "{}", s.sum);
    }

    #[test]
    fn ingress_types_are_bounded() {
        let c = IngressCounters::default();
        for i in 0..(MAX_TYPES + 10) {
            c.add(202, &format!("t{i}"), 1);
        }
        c.add(202, "t0", 1);
        let s = c.snapshot();
        assert_eq!(s.len(), MAX_TYPES + 1);
        assert!(s.contains(&(202, OTHER.to_string(), 10)));
        assert!(s.contains(&(202, "t0".to_string(), 2)));
    }

    #[test]
    fn statuses_are_bounded() {
        let l = Latencies::default();
        for s in 0..(MAX_STATUSES as u16 + 5) {
            l.observe(Some(200 + s), Duration::from_millis(1));
        }
        assert_eq!(l.snapshot().len(), MAX_STATUSES + 1, "the rest under 0");
    }
}
