//! The scale-down delay (reference §1.6 step 9): a sliding maximum over the last `delay` of
//! decisions, in 2-second slots, so a lower count takes effect only once every decision in
//! the window agrees.

use std::collections::VecDeque;
use std::time::Duration;

use super::bucket::secs;

/// Width of one slot.
const SLOT_SECS: i64 = 2;

/// A sliding maximum over ceil(delay ÷ 2 s) slots.
#[derive(Clone, Debug)]
pub struct MaxWindow {
    slots: i64,
    /// Decreasing values, oldest first, each with its slot.
    maxima: VecDeque<(i64, i32)>,
}

impl MaxWindow {
    /// A window of `delay`.
    pub fn new(delay: Duration) -> Self {
        let slots = (delay.as_secs_f64() / SLOT_SECS as f64).ceil().max(1.0) as i64;
        Self {
            slots,
            maxima: VecDeque::new(),
        }
    }

    /// Record `value` at `now`.
    pub fn record(&mut self, now: Duration, value: i32) {
        let slot = secs(now) / SLOT_SECS;
        let mut value = value;
        while self.maxima.back().is_some_and(|&(_, v)| value >= v) {
            self.maxima.pop_back();
        }
        while self
            .maxima
            .front()
            .is_some_and(|&(s, _)| slot - s >= self.slots)
        {
            self.maxima.pop_front();
        }
        if let Some(&(s, v)) = self.maxima.back()
            && s == slot
        {
            value = value.max(v);
            self.maxima.pop_back();
        }
        self.maxima.push_back((slot, value));
    }

    /// The maximum over the window (0 before any record).
    pub fn current(&self) -> i32 {
        self.maxima.front().map_or(0, |&(_, v)| v)
    }
}
