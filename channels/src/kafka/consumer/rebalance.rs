//! The rdkafka context of a group's consumer: what happens when partitions are revoked or
//! assigned.
//!
//! - **Revoked:** deliveries in flight on those partitions get up to [`SETTLE_LIMIT`] to
//!   finish (the wait ends as soon as none finished for [`QUIET`]), then their commit points
//!   are committed and what finished past them is written to the progress topic (waiting up
//!   to [`ACK_LIMIT`] for it), so their next owner repeats only what was unfinished. The
//!   generation is bumped: completions of records read before are ignored from then on.
//! - **Assigned:** the committed offsets of the new partitions (where each starts, so that a
//!   hole at its start shows) and their progress are read, for [`super::KafkaConsumer`] to
//!   skip what a previous owner finished.
//!
//! rdkafka calls these from inside `recv`, on a runtime worker: the waits run in
//! `block_in_place` where the runtime allows it and are skipped where it does not (and while
//! the consumer closes).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::producer::DeliveryFuture;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::super::progress::key;
use super::state::Key;
use super::{ConsumerShared, offsets};

/// How long deliveries in flight on revoked partitions may take to finish.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);
/// The wait for them ends when none finished for this long.
const QUIET: Duration = Duration::from_millis(300);
/// How long reading the committed offsets of assigned partitions may take.
const COMMITTED_LIMIT: Duration = Duration::from_secs(3);
/// How long a revocation or a close waits for its progress records to be acknowledged.
pub(super) const ACK_LIMIT: Duration = Duration::from_secs(2);

/// The rdkafka context: rebalance and commit callbacks.
pub(super) struct Ctx {
    pub(super) shared: std::sync::Arc<ConsumerShared>,
}

/// Run `f`, which blocks, where the runtime allows blocking: `None` (and `f` not run) on a
/// current-thread runtime's thread.
fn blocking<R>(f: impl FnOnce() -> R) -> Option<R> {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() != RuntimeFlavor::MultiThread => None,
        Ok(_) => Some(tokio::task::block_in_place(f)),
        Err(_) => Some(f()),
    }
}

/// Wait up to `limit` for `acks`; false when they did not all come (or waiting is not
/// possible here).
pub(super) fn wait_acks(acks: Vec<DeliveryFuture>, limit: Duration) -> bool {
    if acks.is_empty() {
        return true;
    }
    let Ok(h) = Handle::try_current() else {
        return false;
    };
    blocking(|| {
        h.block_on(tokio::time::timeout(limit, join_all(acks)))
            .is_ok_and(|all| all.iter().all(|r| matches!(r, Ok(Ok(_)))))
    })
    .unwrap_or(false)
}

impl Ctx {
    /// Wait (bounded) for the deliveries in flight on `keys` to finish.
    fn let_deliveries_finish(&self, keys: &[Key]) {
        let started = Instant::now();
        let deadline = started + SETTLE_LIMIT;
        let waited = blocking(|| {
            let mut st = self.shared.state.lock();
            loop {
                let outstanding = st.outstanding(keys);
                let now = Instant::now();
                if outstanding == 0 || now >= deadline {
                    return outstanding;
                }
                let before = st.finishes;
                let timed_out = self
                    .shared
                    .finished
                    .wait_for(&mut st, (deadline - now).min(QUIET))
                    .timed_out();
                if timed_out && st.finishes == before {
                    return st.outstanding(keys);
                }
            }
        });
        if let Some(left) = waited {
            tracing::debug!(group = %self.shared.group, left, waited_ms = started.elapsed().as_millis() as u64, "revocation: deliveries in flight settled");
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let keys: Vec<Key> = tpl
            .elements()
            .iter()
            .filter_map(|e| Some((self.shared.stream_of(e.topic())?, e.partition())))
            .collect();
        let closing = self.shared.state.lock().closing;
        if !closing {
            self.let_deliveries_finish(&keys);
        }
        let (commit, progress) = {
            let mut st = self.shared.state.lock();
            // Everything again, waited for: an earlier asynchronous commit or progress record
            // may not have landed yet, and the next owner starts from what did. (Closing has
            // done so already.)
            if !closing {
                for key in &keys {
                    st.written.remove(key);
                }
            }
            let commit = st.commit_list(&self.shared.streams, !closing, Some(&keys));
            let progress = st.progress_list(Some(&keys));
            st.forget(&keys);
            st.generation += 1;
            st.revoked.extend(keys.iter().copied());
            (commit, progress)
        };
        tracing::debug!(group = %self.shared.group, committed = %offsets(&commit), progress = progress.len(), closing, "partitions revoked");
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            tracing::warn!(group = %self.shared.group, error = %e, "commit on revocation failed; those records are read again");
        }
        let acks = self.shared.write_progress(&progress);
        if !closing && !wait_acks(acks, ACK_LIMIT) {
            tracing::debug!(group = %self.shared.group, "progress on revocation not acknowledged in time; finished records may be delivered again");
        }
        self.shared.wake.notify_one();
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let mut keys: HashMap<String, Key> = HashMap::new();
        for e in tpl.elements() {
            if let Some(s) = self.shared.stream_of(e.topic()) {
                keys.insert(key(e.topic(), e.partition()), (s, e.partition()));
            }
        }
        let wanted: HashSet<String> = keys.keys().cloned().collect();
        let Some((committed, found)) = blocking(|| {
            // Where each partition starts, so that a hole at its very start is seen too.
            let committed = consumer.committed_offsets(tpl.clone(), COMMITTED_LIMIT);
            (committed, self.shared.progress.read(&wanted))
        }) else {
            return;
        };
        let mut st = self.shared.state.lock();
        match committed {
            Ok(c) => {
                tracing::debug!(group = %self.shared.group, partitions = %offsets(&c), "partitions assigned, at their committed offsets");
                for e in c.elements() {
                    if let (Some(s), rdkafka::Offset::Offset(o)) =
                        (self.shared.stream_of(e.topic()), e.offset())
                        && o >= 0
                    {
                        st.starts.insert((s, e.partition()), o);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "cannot read the committed offsets of assigned partitions");
            }
        }
        tracing::debug!(group = %self.shared.group, partitions = found.len(), "progress of assigned partitions read");
        for (k, entries) in found {
            if let Some(&key) = keys.get(&k) {
                st.resume.insert(key, entries);
            }
        }
    }
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.revoke(consumer, tpl);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if self.shared.state.lock().paused {
                let _ = consumer.pause(tpl);
            }
            if !self.shared.state.lock().closing {
                self.assign(consumer, tpl);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(group = %self.shared.group, error = %e, "commit failed");
        }
    }
}
