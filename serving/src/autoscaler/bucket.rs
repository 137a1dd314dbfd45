//! One-second buckets over a window (reference §1.4): a ring of ceil(W ÷ 1 s) sums, read as a
//! linear average over the data's real age (stale seconds excluded, gaps inside the data
//! counted as 0) or as a weighted-exponential sum. Times are whole seconds since the
//! autoscaler's epoch (`now.as_secs()`).

use std::time::Duration;

use super::target::Algorithm;

/// Weighted-exponential: the weights of one window sum to at least this.
const WEIGHT_PRECISION: f64 = 0.9999;
/// Weighted-exponential: the smallest smoothing factor.
const MIN_ALPHA: f64 = 0.2;

/// The smoothing factor α for a window of `n` buckets: max(1 − (1 − 0.9999)^(1/n), 0.2).
pub fn smoothing_coefficient(n: usize) -> f64 {
    (1.0 - (1.0 - WEIGHT_PRECISION).powf(1.0 / n as f64)).max(MIN_ALPHA)
}

/// Round to 6 decimals, as the linear average is.
fn round6(f: f64) -> f64 {
    (f * 1e6).round() / 1e6
}

/// Whole seconds of `d`, as a bucket time.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Buckets of one metric over one window.
#[derive(Clone, Debug)]
pub struct Buckets {
    buckets: Vec<f64>,
    /// The window in whole seconds (= the number of buckets).
    window: i64,
    first_write: Option<i64>,
    last_write: Option<i64>,
    /// Sum of every bucket.
    total: f64,
    /// `Some(α)`: weighted-exponential.
    alpha: Option<f64>,
}

impl Buckets {
    /// Buckets over `window` (rounded up to whole seconds, at least 1).
    pub fn new(window: Duration, algorithm: Algorithm) -> Self {
        let n = window.as_secs_f64().ceil().max(1.0) as usize;
        Self {
            buckets: vec![0.0; n],
            window: n as i64,
            first_write: None,
            last_write: None,
            total: 0.0,
            alpha: (algorithm == Algorithm::WeightedExponential).then(|| smoothing_coefficient(n)),
        }
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window.unsigned_abs())
    }

    fn idx(&self, t: i64) -> usize {
        t.rem_euclid(self.window) as usize
    }

    /// Add `value` into the bucket of second `now`. A write a window or more after the last
    /// one resets the ring; skipped seconds are zeroed; a value older than the window is
    /// dropped.
    pub fn record(&mut self, now: Duration, value: f64) {
        let t = secs(now);
        if self.last_write != Some(t) {
            match self.last_write {
                None => {
                    self.first_write = Some(t);
                    self.last_write = Some(t);
                }
                Some(lw) if t + self.window > lw => {
                    if self.first_write.is_none_or(|fw| fw > t) {
                        self.first_write = Some(t);
                    }
                    if t > lw {
                        if t - lw >= self.window {
                            self.first_write = Some(t);
                            self.buckets.fill(0.0);
                            self.total = 0.0;
                        } else {
                            for i in lw + 1..=t {
                                let idx = self.idx(i);
                                self.total -= self.buckets[idx];
                                self.buckets[idx] = 0.0;
                            }
                        }
                        self.last_write = Some(t);
                    }
                }
                Some(_) => return,
            }
        }
        let idx = self.idx(t);
        self.buckets[idx] += value;
        self.total += value;
    }

    /// No write for more than a window before `now`.
    pub fn is_empty(&self, now: Duration) -> bool {
        self.last_write
            .is_none_or(|lw| secs(now) - lw > self.window)
    }

    /// The window's value at `now`: linear average or weighted-exponential sum.
    pub fn window_average(&self, now: Duration) -> f64 {
        match self.alpha {
            None => self.linear(now),
            Some(alpha) => self.weighted(now, alpha),
        }
    }

    /// Seconds of data: lastWrite − firstWrite + 1 (the full window when unknown).
    fn age(&self, lw: i64) -> i64 {
        self.first_write.map_or(self.window, |fw| lw - fw + 1)
    }

    fn linear(&self, now: Duration) -> f64 {
        let Some(lw) = self.last_write else {
            return 0.0;
        };
        let now = secs(now);
        let d = now - lw;
        if d <= 0 {
            let n = self.age(lw).min(self.window);
            round6(self.total / n as f64)
        } else if d < self.window {
            let stale: f64 = (lw + 1..=now).map(|i| self.buckets[self.idx(i)]).sum();
            let n = self.age(lw).min(self.window - d);
            round6((self.total - stale) / n as f64)
        } else {
            0.0
        }
    }

    fn weighted(&self, now: Duration, alpha: f64) -> f64 {
        let Some(lw) = self.last_write else {
            return 0.0;
        };
        if self.is_empty(now) {
            return 0.0;
        }
        let now = secs(now);
        let mut n = self.window;
        let mut multiplier = alpha;
        if now > lw {
            let zeros = now - lw;
            multiplier *= (1.0 - alpha).powi(i32::try_from(zeros).unwrap_or(i32::MAX));
            n -= zeros;
        }
        let mut ret = 0.0;
        for i in 0..n.max(0) {
            ret += self.buckets[self.idx(lw - i)] * multiplier;
            multiplier *= 1.0 - alpha;
        }
        ret
    }

    /// Change the window, keeping the newest buckets when the data is not older than the
    /// old window (Knative's `ResizeWindow`).
    pub fn resize(&mut self, now: Duration, window: Duration) {
        let n = window.as_secs_f64().ceil().max(1.0) as usize;
        if n as i64 == self.window {
            return;
        }
        let mut buckets = vec![0.0; n];
        let mut total = 0.0;
        match self.last_write {
            Some(lw) if secs(now) - lw <= self.window => {
                let mut t = lw;
                for _ in 0..n.min(self.buckets.len()) {
                    let v = self.buckets[self.idx(t)];
                    buckets[t.rem_euclid(n as i64) as usize] = v;
                    total += v;
                    t -= 1;
                }
                self.first_write = Some(lw - (self.window - 1));
            }
            _ => self.first_write = None,
        }
        self.window = n as i64;
        self.buckets = buckets;
        self.total = total;
        if self.alpha.is_some() {
            self.alpha = Some(smoothing_coefficient(n));
        }
    }
}
