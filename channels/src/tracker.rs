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

/// Property tests: whatever the start offset, the gaps the log leaves and the order in which
/// records finish, the commit point is the lowest unfinished offset seen (or the end).
#[cfg(test)]
mod props {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::Tracker;

    /// Offsets the log hands out: from `start` (or later), increasing, with gaps.
    fn offsets() -> impl Strategy<Value = (i64, Vec<i64>)> {
        let start = prop_oneof![
            -3i64..3,
            0i64..1_000_000,
            any::<i64>().prop_map(|s| s.clamp(i64::MIN, i64::MAX - 1_000)),
            Just(i64::MAX - 1_000),
        ];
        (start, 0i64..4, prop::collection::vec(0i64..4, 0..48)).prop_map(|(start, first, gaps)| {
            let mut next = start + first;
            let offsets = gaps
                .into_iter()
                .map(|g| {
                    let o = next;
                    next = o + 1 + g;
                    o
                })
                .collect();
            (start, offsets)
        })
    }

    /// What the commit point must be: the lowest seen offset not finished, else one past the
    /// last seen offset, else the start.
    fn expected(start: i64, seen: &[i64], finished: &BTreeSet<i64>) -> i64 {
        seen.iter()
            .find(|o| !finished.contains(o))
            .copied()
            .or_else(|| seen.last().map(|o| o + 1))
            .unwrap_or(start)
    }

    proptest! {
        /// Everything handed out first, then finished in any order.
        #[test]
        fn any_finishing_order(
            (start, order, seen) in offsets().prop_flat_map(|(start, seen)| {
                (Just(start), Just(seen.clone()).prop_shuffle(), Just(seen))
            })
        ) {
            let mut t = Tracker::new(start);
            for &o in &seen {
                t.seen(o);
            }
            prop_assert_eq!(t.commit_point(), expected(start, &seen[..seen.len().min(1)], &BTreeSet::new()));
            let mut finished = BTreeSet::new();
            for o in order {
                let before = t.commit_point();
                let moved = t.finish(o);
                finished.insert(o);
                let now = t.commit_point();
                prop_assert_eq!(now, expected(start, &seen, &finished));
                prop_assert_eq!(moved, now != before);
                prop_assert!(now >= before, "the commit point went back");
                prop_assert!(
                    seen.iter().filter(|s| **s < now).all(|s| finished.contains(s)),
                    "the commit point covers an unfinished offset"
                );
            }
            prop_assert_eq!(t.commit_point(), seen.last().map_or(start, |o| o + 1));
            prop_assert_eq!(t.outstanding(), 0);
            prop_assert_eq!(t.window(), 0);
        }

        /// Handing out and finishing interleaved, with replays and stray finishes.
        #[test]
        fn interleaved_with_replays(
            (start, seen) in offsets(),
            steps in prop::collection::vec((0u8..4, any::<prop::sample::Index>()), 0..160),
        ) {
            let mut t = Tracker::new(start);
            let mut handed = 0;
            let mut finished = BTreeSet::new();
            for (what, pick) in steps {
                let before = t.commit_point();
                match what {
                    0 | 1 if handed < seen.len() => {
                        t.seen(seen[handed]);
                        handed += 1;
                    }
                    2 if handed > 0 => {
                        // A replay of a record already handed out changes nothing.
                        t.seen(seen[pick.index(handed)]);
                    }
                    _ => {
                        // Finish any offset: handed out or not, finished already or not.
                        let o = if handed > 0 {
                            seen[pick.index(handed)]
                        } else {
                            start.saturating_add(pick.index(8) as i64)
                        };
                        let moved = t.finish(o);
                        if seen[..handed].contains(&o) {
                            finished.insert(o);
                        }
                        prop_assert_eq!(moved, t.commit_point() != before);
                    }
                }
                let now = t.commit_point();
                prop_assert!(now >= before, "the commit point went back");
                let first_seen = seen.first().copied().filter(|_| handed > 0);
                let base = first_seen.unwrap_or(start);
                prop_assert_eq!(now, expected(base, &seen[..handed], &finished));
            }
            for &o in &seen[..handed] {
                t.finish(o);
            }
            prop_assert_eq!(t.commit_point(), seen[..handed].last().map_or(start, |o| o + 1));
            prop_assert_eq!(t.outstanding(), 0);
        }
    }
}
