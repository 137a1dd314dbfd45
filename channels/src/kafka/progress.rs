//! What a consumer group finished past its committed offsets (issue #22 §2): a committed offset
//! is the end of the finished prefix, so after a kill or a rebalance everything finished
//! behind one slow delivery would be delivered again. Each member therefore also writes, per
//! partition, the offsets finished past the commit point, and a partition's next owner skips
//! exactly those.
//!
//! Where it is kept: Confluent's parallel consumer puts this in the commit metadata, but a
//! broker may not keep that (nisshi answers it empty), so it goes to a one-partition topic of
//! the group's own, `<group>.progress`: key `<topic>:<partition>`, value
//! `k1:<base>:<run lengths>` ([`crate::Tracker::runs`]), at most [`MAX_VALUE`] bytes (a longer
//! description is cut to a prefix, which only means fewer offsets skipped).
//!
//! When it is used: a new owner reads the last [`TAIL`] records at assignment and keeps the
//! latest one per partition and `base`; it applies the one whose `base` equals the first offset
//! it reads (the committed offset), so a stale entry, a failed commit or a lost write can cost
//! duplicates, never a skipped record that was not finished. (Keeping one per `base`, not only
//! the latest: a process killed between its commit and its progress record leaves a latest
//! entry one commit ahead of the committed offset, and the one before it still applies.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::cluster::Cluster;
use super::log::group_topic;

/// The longest value written.
pub(crate) const MAX_VALUE: usize = 3_800;
/// How many of the topic's last records a new owner reads.
const TAIL: i64 = 4_096;
/// How long reading them may take (a rebalance waits for it).
const READ_LIMIT: Duration = Duration::from_secs(3);

/// The progress topic of a consumer group: `<group>.progress`.
pub(crate) fn progress_topic(group: &str) -> String {
    group_topic(group, "progress")
}

/// One partition's progress: every offset below `base` is finished, and past it the offsets
/// `runs` describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) base: i64,
    pub(crate) runs: Vec<u32>,
}

/// A partition's entries by their commit point.
pub(crate) type ByBase = HashMap<i64, Entry>;

/// The key of partition `partition` of `topic`.
pub(crate) fn key(topic: &str, partition: i32) -> String {
    format!("{topic}:{partition}")
}

/// `k1:<base>:<runs>`, cut to whole pairs of runs within [`MAX_VALUE`] bytes.
pub(crate) fn encode(entry: &Entry) -> String {
    let mut out = format!("k1:{}:", entry.base);
    let mut pair = String::new();
    for (i, r) in entry.runs.iter().enumerate() {
        if i % 2 == 0 {
            pair.clear();
            pair.push_str(&format!("{r},"));
            continue;
        }
        pair.push_str(&format!("{r},"));
        if out.len() + pair.len() > MAX_VALUE {
            break;
        }
        out.push_str(&pair);
    }
    if out.ends_with(',') {
        out.pop();
    }
    out
}

/// The entry `value` holds, or `None` when it is not one this version writes.
pub(crate) fn decode(value: &[u8]) -> Option<Entry> {
    let text = std::str::from_utf8(value).ok()?;
    let rest = text.strip_prefix("k1:")?;
    let (base, runs) = rest.split_once(':')?;
    let base = base.parse().ok()?;
    let runs: Vec<u32> = if runs.is_empty() {
        Vec::new()
    } else {
        runs.split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?
    };
    runs.len().is_multiple_of(2).then_some(Entry { base, runs })
}

/// A group's progress topic.
pub(crate) struct Progress {
    cluster: Arc<Cluster>,
    topic: String,
}

impl Progress {
    pub(crate) fn new(cluster: Arc<Cluster>, group: &str) -> Self {
        Self {
            cluster,
            topic: progress_topic(group),
        }
    }

    /// Its topic's name.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Write `entry` for partition `partition` of `topic`; `None` when it cannot even be queued
    /// (the next owner then delivers those records again).
    pub(crate) fn write(
        &self,
        topic: &str,
        partition: i32,
        entry: &Entry,
    ) -> Option<DeliveryFuture> {
        let key = key(topic, partition);
        let value = encode(entry);
        let record: FutureRecord<'_, str, str> = FutureRecord::to(&self.topic)
            .key(key.as_str())
            .payload(value.as_str());
        match self.cluster.producer.send_result(record) {
            Ok(f) => Some(f),
            Err((e, _)) => {
                tracing::debug!(topic = %self.topic, error = %e, "cannot queue a progress record");
                None
            }
        }
    }

    /// The latest entry for each commit point of each of `wanted` (keys, see [`key`]) among the
    /// topic's last records. Blocking; gives what it read so far after [`READ_LIMIT`], nothing
    /// when the topic cannot be read.
    pub(crate) fn read(&self, wanted: &HashSet<String>) -> HashMap<String, ByBase> {
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return found;
        }
        let deadline = Instant::now() + READ_LIMIT;
        let mut cfg = self.cluster.base_config();
        // librdkafka assigns only in a consumer with a group; this one never joins it.
        cfg.set("group.id", format!("{}.reader", self.topic))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let reader: BaseConsumer = match cfg.create() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "cannot read the progress topic; finished records may be delivered again");
                return found;
            }
        };
        let (low, high) = match reader.fetch_watermarks(&self.topic, 0, READ_LIMIT) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "cannot read the progress topic's offsets; finished records may be delivered again");
                return found;
            }
        };
        tracing::debug!(topic = %self.topic, low, high, wanted = wanted.len(), "reading the progress topic");
        if high <= low {
            return found;
        }
        let mut tpl = TopicPartitionList::new();
        let start = low.max(high - TAIL);
        if let Err(e) = tpl
            .add_partition_offset(&self.topic, 0, Offset::Offset(start))
            .and_then(|()| reader.assign(&tpl))
        {
            tracing::warn!(topic = %self.topic, error = %e, "cannot read the progress topic; finished records may be delivered again");
            return found;
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(topic = %self.topic, "reading the progress topic took too long; using what was read");
                break;
            }
            match reader.poll(deadline - now) {
                Some(Ok(m)) => {
                    let offset = m.offset();
                    if let Some(k) = m.key().and_then(|k| std::str::from_utf8(k).ok())
                        && wanted.contains(k)
                        && let Some(e) = m.payload().and_then(decode)
                    {
                        found.entry(k.to_string()).or_default().insert(e.base, e);
                    }
                    if offset + 1 >= high {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(topic = %self.topic, error = %e, "reading the progress topic");
                }
                None => {}
            }
        }
        tracing::debug!(topic = %self.topic, found = found.len(), "progress read");
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for e in [
            Entry {
                base: 0,
                runs: vec![],
            },
            Entry {
                base: 1_234_567,
                runs: vec![2, 3, 1, 1],
            },
            Entry {
                base: -1,
                runs: vec![1, 4_000_000_000],
            },
        ] {
            assert_eq!(decode(encode(&e).as_bytes()), Some(e));
        }
    }

    #[test]
    fn a_long_description_is_cut_to_whole_pairs() {
        let runs: Vec<u32> = (0..5_000).map(|i| 1_000 + i).collect();
        let text = encode(&Entry { base: 7, runs });
        assert!(text.len() <= MAX_VALUE);
        let back = decode(text.as_bytes()).expect("decodes");
        assert_eq!(back.base, 7);
        assert_eq!(back.runs.len() % 2, 0);
        assert_eq!(back.runs[..4], [1_000, 1_001, 1_002, 1_003]);
    }

    #[test]
    fn foreign_values_are_not_entries() {
        for v in [
            &b"k2:1:1,1"[..],
            b"k1:x:1,1",
            b"k1:1:1",
            b"k1:1:1,-1",
            b"\xff",
            b"",
        ] {
            assert_eq!(decode(v), None, "{v:?}");
        }
    }
}
