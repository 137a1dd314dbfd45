//! The completion tracker of one partition: records are handed out in offset order and finish
//! in any order; the commit point is the offset after the longest finished prefix (the next
//! offset to read after a restart). Offsets the log skipped (gaps) count as finished.
//!
//! Beyond the prefix, the finished offsets are kept too: [`Tracker::runs`] describes them and
//! [`Tracker::resumed`] starts a tracker from such a description, so that a partition's next
//! owner does not deliver again what was finished behind an unfinished record.

use std::collections::VecDeque;

/// Tracks finished offsets of one partition.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Every offset below `base` is finished.
    base: i64,
    /// Offsets `base..base+len` seen so far (or known finished): finished or not.
    flags: VecDeque<bool>,
    /// The next offset expected from the log: offsets below it were read or skipped.
    read_to: i64,
}

impl Tracker {
    /// A tracker whose first record will be at `start` (or later).
    pub fn new(start: i64) -> Self {
        Self {
            base: start,
            flags: VecDeque::new(),
            read_to: start,
        }
    }

    /// A tracker whose first record is at `base`, where a previous owner had finished the
    /// offsets [`Tracker::runs`] described as `runs`: those are finished already, the others
    /// are expected from the log (one the log skips counts as finished, as always).
    pub fn resumed(base: i64, runs: &[u32]) -> Self {
        let mut flags = VecDeque::new();
        for (i, &n) in runs.iter().enumerate() {
            let finished = i % 2 == 1;
            flags.extend(std::iter::repeat_n(finished, n as usize));
        }
        while flags.back() == Some(&false) {
            flags.pop_back();
        }
        let mut t = Self {
            base,
            flags,
            read_to: base,
        };
        t.advance();
        t
    }

    /// The finished offsets past the commit point, as lengths of alternating runs starting
    /// with an unfinished one: `[2, 3, 1, 4]` is 2 unfinished, 3 finished, 1 unfinished, 4
    /// finished. At most `max` runs are given (a prefix: fewer offsets known finished). Empty
    /// when nothing past the commit point is finished.
    pub fn runs(&self, max: usize) -> Vec<u32> {
        let mut runs: Vec<u32> = Vec::new();
        let mut current = false;
        let mut len = 0u32;
        for &f in &self.flags {
            if f != current {
                runs.push(len);
                if runs.len() >= max {
                    break;
                }
                current = f;
                len = 0;
            }
            len = len.saturating_add(1);
        }
        if current && runs.len() < max {
            runs.push(len);
        }
        // Only whole pairs (an unfinished run, then a finished one) say anything.
        if runs.len() % 2 == 1 {
            runs.pop();
        }
        runs
    }

    /// The next offset expected from the log (a record past it means the log skipped some).
    pub fn next_expected(&self) -> i64 {
        self.read_to
    }

    /// Whether the record at `offset` is finished already (below the commit point, or known
    /// finished past it): delivering it again would be a duplicate.
    pub fn is_finished(&self, offset: i64) -> bool {
        match offset.checked_sub(self.base).map(usize::try_from) {
            Some(Ok(i)) => self.flags.get(i).copied().unwrap_or(false),
            Some(Err(_)) => true,
            None => false,
        }
    }

    /// A record at `offset` was handed out. Offsets between the last one seen and this one
    /// were skipped by the log and count as finished; an offset already seen is ignored. How
    /// many offsets were skipped (0 when the log gave the next one).
    pub fn seen(&mut self, offset: i64) -> i64 {
        if offset < self.read_to {
            return 0;
        }
        let skipped = offset - self.read_to;
        // Offsets a resumed tracker expected and the log skipped are finished.
        let known = self.base.saturating_add(self.flags.len() as i64);
        for o in self.read_to.max(self.base)..offset.min(known) {
            if let Some(f) = usize::try_from(o - self.base)
                .ok()
                .and_then(|i| self.flags.get_mut(i))
            {
                *f = true;
            }
        }
        self.read_to = offset.saturating_add(1);
        let next = self.base.saturating_add(self.flags.len() as i64);
        if offset < next {
            self.advance();
            return skipped;
        }
        for _ in next..offset {
            self.flags.push_back(true);
        }
        self.flags.push_back(false);
        self.advance();
        skipped
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
        assert_eq!(t.seen(0), 0);
        assert_eq!(t.seen(5), 4, "1..5 were skipped by the log");
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

    #[test]
    fn runs_describe_what_finished_past_the_commit_point() {
        let mut t = Tracker::new(100);
        for o in 100..110 {
            t.seen(o);
        }
        assert!(t.runs(64).is_empty(), "nothing finished yet");
        for o in [102, 103, 104, 106, 109] {
            t.finish(o);
        }
        assert_eq!(t.runs(64), vec![2, 3, 1, 1, 2, 1]);
        assert_eq!(t.runs(4), vec![2, 3, 1, 1], "a prefix of whole pairs");
        assert_eq!(t.runs(3), vec![2, 3]);
        // The next owner starts at the same commit point and skips what finished.
        let mut r = Tracker::resumed(t.commit_point(), &t.runs(64));
        assert_eq!(r.commit_point(), 100);
        for o in 100..110 {
            r.seen(o);
            let finished = [102, 103, 104, 106, 109].contains(&o);
            assert_eq!(r.is_finished(o), finished, "offset {o}");
        }
        assert_eq!(r.outstanding(), 5);
        for o in [100, 101, 105, 107, 108] {
            r.finish(o);
        }
        assert_eq!(r.commit_point(), 110);
        assert!(r.is_finished(50), "below the commit point");
        assert!(!r.is_finished(110));
    }

    #[test]
    fn a_resumed_tracker_counts_offsets_the_log_skipped_as_finished() {
        // 0 and 2 unfinished, 1 finished; the log no longer has 2.
        let mut t = Tracker::resumed(0, &[1, 1, 1, 1]);
        t.seen(0);
        t.seen(3);
        assert!(t.is_finished(3), "3 was known finished");
        t.finish(0);
        assert_eq!(t.commit_point(), 4, "2 was skipped by the log");
        t.seen(4);
        assert!(!t.is_finished(4));
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
