//! Reading a range of a topic again, for a replay ([`crate::replay`]): a consumer of its own
//! with partitions assigned by hand (no group membership, nothing ever committed, so no
//! consumer group moves), positioned at the range's start and stopping at its end. A time
//! bound is Kafka's `ListOffsets` by record timestamp. A hole in a partition's offsets is read
//! again before it is believed ([`super::holes`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::time::Instant;

use super::binding::{self, InRecord};
use super::cluster::{ADMIN_TIMEOUT, Cluster, backend};
use super::holes::{Holes, OWN_TOPIC_PATIENCE, seek_back};
use crate::log::{BoxFuture, LogError};
use crate::replay::{Bound, PartitionRange, Replay, ReplayRecord};

/// How long `next` waits for a record before checking the consumer's positions.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// A replay that receives nothing for this long while records are still due fails.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// Reads a topic's records in a range, then ends.
pub(crate) struct ReplayReader {
    consumer: StreamConsumer,
    ranges: Vec<PartitionRange>,
    state: ReadState,
}

/// What a reader tracks besides its consumer.
struct ReadState {
    topic: String,
    foreign_source: String,
    /// Partitions not read to their end yet → the end.
    open: HashMap<i32, i64>,
    /// The next offset expected from each partition (a record past it is after a hole).
    next: HashMap<i32, i64>,
    holes: Holes<i32>,
    last_progress: Instant,
}

/// Where `bound` puts each of `parts` (partition → (low, high) watermarks); `None` for a
/// partition the bound does not name.
fn resolve(
    c: &BaseConsumer,
    topic: &str,
    bound: &Bound,
    parts: &BTreeMap<i32, (i64, i64)>,
) -> Result<BTreeMap<i32, Option<i64>>, LogError> {
    let clamp = |p: i32, o: i64| parts.get(&p).map(|&(low, high)| o.clamp(low, high));
    let mut out = BTreeMap::new();
    match bound {
        Bound::Earliest => out.extend(parts.iter().map(|(&p, &(low, _))| (p, Some(low)))),
        Bound::Latest => out.extend(parts.iter().map(|(&p, &(_, high))| (p, Some(high)))),
        Bound::Offset(o) => out.extend(parts.keys().map(|&p| (p, clamp(p, *o)))),
        Bound::Partitions(m) => {
            if let Some(p) = m.keys().find(|p| !parts.contains_key(p)) {
                return Err(LogError::NoPartition {
                    topic: topic.to_string(),
                    partition: *p,
                    partitions: parts.len(),
                });
            }
            out.extend(
                parts
                    .keys()
                    .map(|&p| (p, m.get(&p).and_then(|&o| clamp(p, o)))),
            );
        }
        Bound::Time(t) => {
            let mut tpl = TopicPartitionList::new();
            for &p in parts.keys() {
                tpl.add_partition_offset(topic, p, Offset::Offset(t.as_millisecond()))
                    .map_err(|e| backend("looking up offsets by time", e))?;
            }
            let found = c
                .offsets_for_times(tpl, ADMIN_TIMEOUT)
                .map_err(|e| backend("looking up offsets by time", e))?;
            for e in found.elements() {
                if let Err(err) = e.error() {
                    return Err(backend("looking up offsets by time", err));
                }
                let at = match e.offset() {
                    Offset::Offset(o) => clamp(e.partition(), o),
                    // No record at or after that time: the end.
                    _ => parts.get(&e.partition()).map(|&(_, high)| high),
                };
                out.insert(e.partition(), at);
            }
        }
    }
    Ok(out)
}

impl Cluster {
    /// Open a reader of `topic` from `from` to `to` (`None`: the end at this moment). Records
    /// that are not CloudEvents get `foreign_source` (`#<topic>` appended) as the Kafka source
    /// gives them. `name` identifies the reader's client (it joins no group).
    pub(crate) async fn replay(
        self: &Arc<Self>,
        topic: &str,
        foreign_source: &str,
        from: &Bound,
        to: Option<&Bound>,
        name: &str,
    ) -> Result<ReplayReader, LogError> {
        let cfg = self.reader_config(name);
        let probe_cfg = cfg.clone();
        let (topic_owned, from, to) = (topic.to_string(), from.clone(), to.cloned());
        let ranges = tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = probe_cfg
                .create()
                .map_err(|e| backend("cannot create a consumer", e))?;
            ranges(&c, &topic_owned, &from, to.as_ref())
        })
        .await
        .map_err(|e| backend("resolving the replay's range", e))??;
        let consumer: StreamConsumer = cfg
            .create()
            .map_err(|e| backend("cannot create a consumer", e))?;
        let open = assign(&consumer, topic, &ranges)?;
        let next = ranges.iter().map(|r| (r.partition, r.from)).collect();
        Ok(ReplayReader {
            consumer,
            ranges,
            state: ReadState {
                topic: topic.to_string(),
                foreign_source: foreign_source.to_string(),
                open,
                next,
                // A replay is not in a hurry.
                holes: Holes::new(OWN_TOPIC_PATIENCE),
                last_progress: Instant::now(),
            },
        })
    }

    /// A reader's client: partitions assigned by hand, nothing committed.
    fn reader_config(&self, name: &str) -> ClientConfig {
        let mut cfg = self.base_config();
        // A group id librdkafka wants for a consumer; with manual assignment and no commits it
        // never joins nor creates that group.
        cfg.set("group.id", format!("knit-replay-{name}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "8192");
        cfg
    }
}

/// The range of each partition of `topic` from `from` to `to` (`None`: its end now), read
/// with `c` (blocking).
fn ranges(
    c: &BaseConsumer,
    topic: &str,
    from: &Bound,
    to: Option<&Bound>,
) -> Result<Vec<PartitionRange>, LogError> {
    let md = c
        .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        .map_err(|e| backend(format!("reading the metadata of {topic}"), e))?;
    let mut parts = BTreeMap::new();
    for t in md.topics() {
        if let Some(err) = t.error() {
            return Err(backend(
                format!("topic {topic}"),
                RDKafkaErrorCode::from(err),
            ));
        }
        for p in t.partitions() {
            let marks = c
                .fetch_watermarks(topic, p.id(), ADMIN_TIMEOUT)
                .map_err(|e| backend(format!("reading the offsets of {topic}"), e))?;
            parts.insert(p.id(), marks);
        }
    }
    let starts = resolve(c, topic, from, &parts)?;
    let ends = match to {
        Some(b) => resolve(c, topic, b, &parts)?,
        None => BTreeMap::new(),
    };
    let ranges = starts
        .into_iter()
        .filter_map(|(p, start)| {
            let (_, high) = *parts.get(&p)?;
            let end = ends.get(&p).copied().flatten().unwrap_or(high).min(high);
            Some(PartitionRange {
                partition: p,
                from: start?,
                to: end,
            })
        })
        .collect();
    Ok(ranges)
}

/// Assign `consumer` the non-empty `ranges` of `topic`, at their starts; their ends by
/// partition.
fn assign(
    consumer: &StreamConsumer,
    topic: &str,
    ranges: &[PartitionRange],
) -> Result<HashMap<i32, i64>, LogError> {
    let mut tpl = TopicPartitionList::new();
    let mut open = HashMap::new();
    for r in ranges.iter().filter(|r| r.from < r.to) {
        tpl.add_partition_offset(topic, r.partition, Offset::Offset(r.from))
            .map_err(|e| backend("assigning partitions", e))?;
        open.insert(r.partition, r.to);
    }
    if tpl.count() > 0 {
        consumer
            .assign(&tpl)
            .map_err(|e| backend("assigning partitions", e))?;
    }
    Ok(open)
}

impl Replay for ReplayReader {
    fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }

    fn next(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Vec<ReplayRecord>>, LogError>> {
        Box::pin(self.read(max))
    }
}

impl ReplayReader {
    /// Up to `max` records (at least one); `Ok(None)` once every partition was read to its
    /// end. Fails when no record arrives for 30 s while some are due.
    async fn read(&mut self, max: usize) -> Result<Option<Vec<ReplayRecord>>, LogError> {
        let mut out = Vec::new();
        loop {
            let st = &mut self.state;
            if st.open.is_empty() {
                return Ok((!out.is_empty()).then_some(out));
            }
            if st.last_progress.elapsed() > STALL_LIMIT {
                return Err(LogError::Stalled {
                    topic: st.topic.clone(),
                    after: STALL_LIMIT,
                });
            }
            let consumer = &self.consumer;
            match tokio::time::timeout(IDLE_CHECK, consumer.recv()).await {
                Err(_) => st.check_positions(consumer),
                Ok(Err(e)) => {
                    tracing::debug!(topic = %st.topic, error = %e, "replay consumer error");
                    tokio::time::sleep(IDLE_CHECK / 5).await;
                }
                Ok(Ok(m)) => {
                    st.take(consumer, &m, &mut out);
                    drop(m);
                    while out.len() < max.max(1) && !st.open.is_empty() {
                        match consumer.recv().now_or_never() {
                            Some(Ok(m)) => st.take(consumer, &m, &mut out),
                            _ => break,
                        }
                    }
                }
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }
}

impl ReadState {
    fn close_partition(&mut self, consumer: &StreamConsumer, partition: i32) {
        self.holes.forget(&partition);
        if self.open.remove(&partition).is_some() {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.topic, partition);
            let _ = consumer.pause(&tpl);
        }
    }

    /// Close the partitions whose position reached their end (records at the end of a range
    /// may be missing: compacted away, or transaction markers).
    fn check_positions(&mut self, consumer: &StreamConsumer) {
        let Ok(positions) = consumer.position() else {
            return;
        };
        for e in positions.elements() {
            if let (Offset::Offset(at), Some(&end)) = (e.offset(), self.open.get(&e.partition()))
                && at >= end
            {
                self.close_partition(consumer, e.partition());
            }
        }
    }

    fn take(
        &mut self,
        consumer: &StreamConsumer,
        m: &rdkafka::message::BorrowedMessage<'_>,
        out: &mut Vec<ReplayRecord>,
    ) {
        let (partition, offset) = (m.partition(), m.offset());
        let Some(&end) = self.open.get(&partition) else {
            return;
        };
        self.last_progress = Instant::now();
        let expected = self.next.get(&partition).copied().unwrap_or(offset);
        if offset < expected {
            // Read again after a seek back.
            return;
        }
        if offset > expected
            && self.holes.reread(partition, expected)
            && seek_back(consumer, &self.topic, partition, expected, offset)
        {
            return;
        }
        self.next.insert(partition, offset.saturating_add(1));
        if offset < end {
            let headers: Vec<(&str, &[u8])> = m
                .headers()
                .map(|h| h.iter().map(|x| (x.key, x.value.unwrap_or(&[]))).collect())
                .unwrap_or_default();
            let input = InRecord {
                topic: &self.topic,
                partition,
                offset,
                timestamp_ms: m.timestamp().to_millis(),
                key: m.key(),
                headers,
                value: m.payload(),
            };
            let event = binding::decode(&input).unwrap_or_else(|e| {
                tracing::debug!(topic = %self.topic, partition, offset, error = %e, "not a CloudEvent: wrapped");
                binding::wrap_foreign(&input, &format!("{}#{}", self.foreign_source, self.topic))
            });
            out.push(ReplayRecord {
                partition,
                offset,
                event,
            });
        }
        if offset.saturating_add(1) >= end {
            self.close_partition(consumer, partition);
        }
    }
}
