//! The completion tracker of one partition: records are handed out in offset order and finish
//! in any order; the commit point is the offset after the longest finished prefix (the next
//! offset to read after a restart). Offsets the log skipped (gaps) count as finished.

use std::collections::VecDeque;

/// Tracks finished offsets of one partition.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Every offset below `base` is finished.
    base: i64,
    /// Offsets `base..base+len` seen so far: finished or not.
    flags: VecDeque<bool>,
}

impl Tracker {
    /// A tracker whose first record will be at `start` (or later).
    pub fn new(start: i64) -> Self {
        Self {
            base: start,
            flags: VecDeque::new(),
        }
    }

    /// A record at `offset` was handed out. Offsets between the last one seen and this one
    /// were skipped by the log and count as finished; an offset already seen is ignored.
    pub fn seen(&mut self, offset: i64) {
        let next = self.base.saturating_add(self.flags.len() as i64);
        if offset < next {
            return;
        }
        for _ in next..offset {
            self.flags.push_back(true);
        }
        self.flags.push_back(false);
        self.advance();
    }

    /// The record at `offset` finished; true when the commit point moved.
    pub fn finish(&mut self, offset: i64) -> bool {
        let Some(i) = offset
            .checked_sub(self.base)
            .and_then(|d| usize::try_from(d).ok())
        else {
            return false;
        };
        match self.flags.get_mut(i) {
            Some(f) => *f = true,
            None => return false,
        }
        self.advance()
    }

    fn advance(&mut self) -> bool {
        let before = self.base;
        while self.flags.front() == Some(&true) {
            self.flags.pop_front();
            self.base += 1;
        }
        self.base != before
    }

    /// The offset to commit: every record before it is finished.
    pub fn commit_point(&self) -> i64 {
        self.base
    }

    /// Records seen and not finished.
    pub fn outstanding(&self) -> usize {
        self.flags.iter().filter(|f| !**f).count()
    }

    /// Records seen, finished or not, past the commit point.
    pub fn window(&self) -> usize {
        self.flags.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_finished_prefix() {
        let mut t = Tracker::new(10);
        for o in 10..15 {
            t.seen(o);
        }
        assert!(!t.finish(12));
        assert!(!t.finish(11));
        assert_eq!(t.commit_point(), 10);
        assert!(t.finish(10));
        assert_eq!(t.commit_point(), 13);
        assert_eq!(t.outstanding(), 2);
    }

    #[test]
    fn gaps_and_stale_offsets() {
        let mut t = Tracker::new(0);
        t.seen(0);
        t.seen(5); // 1..5 were skipped by the log
        assert!(t.finish(0));
        assert_eq!(t.commit_point(), 5);
        assert!(!t.finish(3), "a skipped offset is already finished");
        assert!(!t.finish(-1));
        assert!(!t.finish(99), "an offset not handed out is ignored");
        t.seen(5); // seen again (a replay) changes nothing
        assert_eq!(t.window(), 1);
        assert!(t.finish(5));
        assert_eq!(t.commit_point(), 6);
    }

    #[test]
    fn a_first_record_past_the_start_moves_the_start() {
        let mut t = Tracker::new(0);
        t.seen(7);
        assert_eq!(t.commit_point(), 7);
        assert!(t.finish(7));
        assert_eq!(t.commit_point(), 8);
    }

    /// Any completion order: the commit point is always the lowest unfinished offset.
    #[test]
    fn any_completion_order() {
        // A small deterministic generator (no external crates): many permutations of 0..n.
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut rand = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let n = (rand() % 40 + 1) as i64;
            let mut order: Vec<i64> = (0..n).collect();
            for i in (1..order.len()).rev() {
                let j = (rand() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let mut t = Tracker::new(0);
            for o in 0..n {
                t.seen(o);
            }
            let mut finished = std::collections::BTreeSet::new();
            for o in order {
                t.finish(o);
                finished.insert(o);
                let lowest_unfinished = (0..n).find(|x| !finished.contains(x)).unwrap_or(n);
                assert_eq!(t.commit_point(), lowest_unfinished);
            }
        }
    }
}
