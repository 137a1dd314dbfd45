//! The consumer of one group on Kafka (kafka-nats.md §5.3–§5.4):
//!
//! - positioned before it runs: partitions where the group has no committed offset get one —
//!   the end for `StartAt::Latest` (so every event sent after the egress turned Ready is
//!   delivered, as Knative's InitOffsets), the beginning for `Earliest` and for the retry topic;
//! - a [`Tracker`] per partition, started at the committed offset read at assignment; a
//!   record past the next expected offset (a hole) makes the consumer seek back and read the
//!   hole again (at least 8 times; for at least 1 s on a topic only Knit writes) before it
//!   counts the missing offsets as finished (a broker may show a record before the one below
//!   it is readable: see [`super::holes`]);
//! - commits carry the finished prefix (the next offset to read), asynchronously while
//!   running and synchronously on revocation and close, and what finished past it goes to the
//!   group's progress topic ([`super::progress`]); a partition's next owner skips the records
//!   listed there, so after a kill or a rebalance only what was unfinished is delivered again;
//! - on revocation (a rebalance, see [`rebalance`]) deliveries in flight on the revoked
//!   partitions get a moment to finish, then their commit points and progress are written,
//!   their trackers dropped and the assignment generation bumped, so completions of records
//!   read before are ignored (their new owner reads them again);
//! - closing commits, writes the progress and leaves the group (within [`CLOSE_LIMIT`]), so
//!   a replica stopped with SIGTERM hands its partitions back at once;
//! - `pause` pauses the assigned partitions while the caller keeps polling, so the consumer
//!   stays in its group (librdkafka discards the prefetched records and refetches them);
//! - a record settled with `Settle::Retry` is produced to `<group>.retry` with Knit's
//!   `knit-*` headers before the original is finished, and the consumer reads that topic too
//!   (groups without durable retries, and a draining consumer, decline: `Settled::Kept`);
//! - `Ack` and `DeadLettered` both finish the record; settling a record of an earlier
//!   generation is ignored;
//! - once its log is closed, the consumer reads to the end offsets of that moment and then
//!   ends, so a deleted broker's accepted events are still delivered.
//!
//! `GroupSpec::max_in_flight`, `order` and `ack_deadline` ask nothing of Kafka: the dispatcher
//! bounds what it reads ahead, librdkafka's prefetch is bounded, and an unsettled record goes
//! to another member only after a rebalance, never on a timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::{Condvar, Mutex};
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;

mod position;
mod rebalance;
mod state;

use super::holes::{Holes, OWN_TOPIC_PATIENCE, seek_back};
use super::progress::{Entry, Progress};
use position::{position, retry_state};
use rdkafka::producer::DeliveryFuture;
use rebalance::{ACK_LIMIT, Ctx, wait_acks};
use state::{Drain, State};

use super::binding::{self, ContentMode, InRecord};
use super::cluster::{ADMIN_TIMEOUT, Cluster, TopicSpec, backend};
use super::log::{acked, produce, retry_topic};
use crate::log::{
    BoxFuture, Consumer, GroupSpec, GroupStats, LogError, PartitionId, Polled, Record, RecordId,
    RetryState, Settle, Settled, Settling, StartAt,
};
use crate::tracker::Tracker;

const ATTEMPTS: &str = "knit-attempts";
/// How long closing (the final commit, its progress, leaving the group) may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);
const NOT_BEFORE: &str = "knit-not-before";
const LAST_DEST: &str = "knit-last-dest";
const LAST_STATUS: &str = "knit-last-status";

/// The neutral id of partition `partition` of stream `stream` (the index of its topic among
/// the group's, the retry topic last).
fn partition_id(stream: u8, partition: i32) -> PartitionId {
    PartitionId((u64::from(stream) << 32) | u64::from(partition as u32))
}

/// The stream and partition of `id` (see [`partition_id`]).
fn stream_partition(id: PartitionId) -> (u8, i32) {
    let stream = u8::try_from(id.0 >> 32).unwrap_or(u8::MAX);
    (stream, (id.0 & 0xffff_ffff) as u32 as i32)
}

/// `topic:partition@offset` for each of `tpl` (`@` alone where it names no offset), for logs.
fn offsets(tpl: &TopicPartitionList) -> String {
    let each: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}:{}@{o}", e.topic(), e.partition()),
            _ => format!("{}:{}@", e.topic(), e.partition()),
        })
        .collect();
    each.join(" ")
}

/// What the consumer shares with its rdkafka context.
pub(crate) struct ConsumerShared {
    state: Mutex<State>,
    /// Signalled whenever a record finishes (a revocation waits on it).
    finished: Condvar,
    wake: Notify,
    progress: Progress,
    /// Topic of each stream index; the last one is the retry topic when there is one.
    streams: Vec<String>,
    group: String,
}

impl ConsumerShared {
    /// Queue the progress of `list` for writing.
    fn write_progress(&self, list: &[(state::Key, Entry)]) -> Vec<DeliveryFuture> {
        list.iter()
            .filter_map(|((s, p), entry)| {
                let topic = self.streams.get(usize::from(*s))?;
                self.progress.write(topic, *p, entry)
            })
            .collect()
    }

    fn stream_of(&self, topic: &str) -> Option<u8> {
        self.streams
            .iter()
            .position(|t| t == topic)
            .and_then(|i| u8::try_from(i).ok())
    }
}

/// The log was closed: finish what it holds, then end.
impl crate::lifecycle::Drains for ConsumerShared {
    fn drain_to_end(&self) {
        let mut st = self.state.lock();
        if st.drain.is_none() {
            st.drain = Some(Drain::default());
        }
        drop(st);
        self.wake.notify_one();
    }
}

/// The consumer of one group.
pub(crate) struct KafkaConsumer {
    consumer: Arc<StreamConsumer<Ctx>>,
    shared: Arc<ConsumerShared>,
    cluster: Arc<Cluster>,
    retry: Option<String>,
    foreign_source: String,
}

impl KafkaConsumer {
    /// Create the retry topic if wanted, position the group, join it.
    pub(crate) async fn open(
        cluster: Arc<Cluster>,
        topics: &TopicSpec,
        spec: GroupSpec,
    ) -> Result<Self, LogError> {
        let mut streams = topics.topics.clone();
        let retry = spec.durable_retries.then(|| retry_topic(&spec.name));
        if let Some(r) = &retry {
            cluster
                .create_topics(
                    std::slice::from_ref(r),
                    topics.partitions,
                    topics.replication_factor,
                    &[],
                )
                .await?;
            streams.push(r.clone());
        }
        let progress = Progress::new(cluster.clone(), &spec.name);
        cluster
            .create_topics(
                &[progress.topic().to_string()],
                1,
                topics.replication_factor,
                &[],
            )
            .await?;
        position(&cluster, &spec, &streams, retry.as_deref()).await?;
        // Holes in topics only Knit writes are read again with patience (see `holes`).
        let patience = if topics.external {
            Duration::ZERO
        } else {
            OWN_TOPIC_PATIENCE
        };
        let shared = Arc::new(ConsumerShared {
            state: Mutex::new(State {
                holes: Holes::new(patience),
                ..State::default()
            }),
            finished: Condvar::new(),
            wake: Notify::new(),
            progress,
            streams: streams.clone(),
            group: spec.name.clone(),
        });
        let mut cfg = cluster.base_config();
        cfg.set("group.id", &spec.name)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match spec.start {
                    StartAt::Latest => "latest",
                    StartAt::Earliest => "earliest",
                },
            )
            // A killed process's membership expires quickly, so its successor starts soon.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.poll.interval.ms", "300000")
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "16384")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer<Ctx> = cfg
            .create_with_context(Ctx {
                shared: shared.clone(),
            })
            .map_err(|e| backend("cannot create the consumer", e))?;
        let names: Vec<&str> = streams.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| backend("cannot subscribe", e))?;
        Ok(Self {
            consumer: Arc::new(consumer),
            shared,
            cluster,
            retry,
            foreign_source: topics.foreign_source.clone(),
        })
    }

    pub(crate) fn shared(&self) -> Arc<ConsumerShared> {
        self.shared.clone()
    }

    /// The record `m` holds, or `None` when it is not one of the group's, was finished
    /// already (by a previous owner of its partition, see [`super::progress`]) or comes after
    /// a hole that is read again first (see [`super::holes`]).
    fn record(&self, m: &BorrowedMessage<'_>) -> Option<Record> {
        let topic = m.topic();
        let stream = self.shared.stream_of(topic)?;
        let key = (stream, m.partition());
        let offset = m.offset();
        let generation = {
            let mut st = self.shared.state.lock();
            if !st.trackers.contains_key(&key) {
                // Where the partition starts: its committed offset (a first record past it
                // is a hole), or this record.
                let start = st.starts.remove(&key).map_or(offset, |s| s.min(offset));
                let entry = st.resume.remove(&key).and_then(|mut b| b.remove(&start));
                // One line per partition and assignment (debug: thousands of groups have
                // many partitions): a failure's story (which owner started where).
                tracing::debug!(group = %self.shared.group, topic, partition = m.partition(), start, offset, generation = st.generation, resumed = entry.is_some(), "first record of an assigned partition");
                let tracker = match entry {
                    Some(entry) => Tracker::resumed(entry.base, &entry.runs),
                    None => Tracker::new(start),
                };
                st.trackers.insert(key, tracker);
            }
            let expected = st.trackers.get(&key)?.next_expected();
            if offset > expected && st.holes.reread(key, expected) {
                drop(st);
                if seek_back(
                    self.consumer.as_ref(),
                    topic,
                    m.partition(),
                    expected,
                    offset,
                ) {
                    return None;
                }
                st = self.shared.state.lock();
            }
            let tracker = st.trackers.get_mut(&key)?;
            let skipped = tracker.seen(offset);
            if skipped > 0 {
                tracing::warn!(group = %self.shared.group, topic, partition = m.partition(), offset, skipped, "the log has no records at offsets before this one: they count as finished");
            }
            if tracker.is_finished(offset) {
                tracing::trace!(group = %self.shared.group, topic, offset, "finished already: skipped");
                return None;
            }
            st.generation
        };
        let headers: Vec<(&str, &[u8])> = m
            .headers()
            .map(|h| h.iter().map(|x| (x.key, x.value.unwrap_or(&[]))).collect())
            .unwrap_or_default();
        let retry = self
            .retry
            .as_deref()
            .filter(|r| *r == topic)
            .map(|_| retry_state(&headers));
        let input = InRecord {
            topic,
            partition: m.partition(),
            offset,
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key(),
            headers,
            value: m.payload(),
        };
        let event = match binding::decode(&input) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(group = %self.shared.group, topic, offset, error = %e, "not a CloudEvent: wrapped");
                binding::wrap_foreign(&input, &format!("{}#{topic}", self.foreign_source))
            }
        };
        let key: Option<Arc<str>> = match m.key() {
            Some(k) => Some(Arc::from(String::from_utf8_lossy(k).as_ref())),
            None => event
                .extension("partitionkey")
                .map(|v| Arc::from(v.to_string())),
        };
        Some(Record {
            id: RecordId {
                partition: partition_id(stream, m.partition()),
                offset,
                handle: generation,
            },
            event: Arc::new(event),
            key,
            retry,
        })
    }

    async fn read_drain_ends(&self) {
        let consumer = self.consumer.clone();
        let streams = self.shared.streams.clone();
        let read = tokio::task::spawn_blocking(move || -> KafkaResult<_> {
            let mut ends = HashMap::new();
            let mut all = TopicPartitionList::new();
            for (s, topic) in streams.iter().enumerate() {
                let Ok(s) = u8::try_from(s) else { continue };
                let md = consumer.fetch_metadata(Some(topic), ADMIN_TIMEOUT)?;
                for t in md.topics() {
                    for p in t.partitions() {
                        let (_, high) = consumer.fetch_watermarks(topic, p.id(), ADMIN_TIMEOUT)?;
                        ends.insert((s, p.id()), high);
                        all.add_partition(topic, p.id());
                    }
                }
            }
            let committed = consumer.committed_offsets(all, ADMIN_TIMEOUT)?;
            let mut start = HashMap::new();
            for e in committed.elements() {
                if let (Some(s), Offset::Offset(o)) =
                    (streams.iter().position(|t| t == e.topic()), e.offset())
                    && let Ok(s) = u8::try_from(s)
                {
                    start.insert((s, e.partition()), o);
                }
            }
            Ok((ends, start))
        })
        .await;
        let mut st = self.shared.state.lock();
        match read {
            Ok(Ok((ends, start))) => {
                if let Some(d) = st.drain.as_mut() {
                    d.ends = Some(ends);
                    d.start = start;
                }
            }
            other => {
                tracing::warn!(group = %self.shared.group, result = ?other.err(), "cannot read the end offsets to drain to; stopping now (the rest stays in the topic)");
                if let Some(d) = st.drain.as_mut() {
                    d.ends = Some(HashMap::new());
                }
            }
        }
    }

    fn assignment(&self) -> Option<TopicPartitionList> {
        self.consumer.assignment().ok()
    }

    /// The record `id` is finished (ignored when read in an earlier generation).
    fn finish(&self, id: RecordId) {
        let key = stream_partition(id.partition);
        let moved_to_end = {
            let mut st = self.shared.state.lock();
            if id.handle != st.generation {
                return;
            }
            if let Some(t) = st.trackers.get_mut(&key) {
                t.finish(id.offset);
            }
            st.finishes += 1;
            st.drain.is_some() && st.drained()
        };
        self.shared.finished.notify_all();
        if moved_to_end {
            self.shared.wake.notify_one();
        }
    }

    /// Produce `record` to the group's retry topic with `state` in `knit-*` headers, then
    /// finish the original; declined (`Kept`) without a retry topic or while draining.
    fn store_retry<'a>(&'a self, record: &Record, state: RetryState) -> Settling<'a> {
        let draining = self.shared.state.lock().drain.is_some();
        let Some(topic) = self.retry.as_deref().filter(|_| !draining) else {
            return Settling::kept();
        };
        let out = binding::encode(&record.event, ContentMode::Binary);
        let mut extra = vec![
            (
                ATTEMPTS.to_string(),
                state.attempts.to_string().into_bytes(),
            ),
            (
                NOT_BEFORE.to_string(),
                state.not_before_ms.to_string().into_bytes(),
            ),
            (LAST_DEST.to_string(), state.last_dest.into_bytes()),
        ];
        if let Some(s) = state.last_status {
            extra.push((LAST_STATUS.to_string(), s.to_string().into_bytes()));
        }
        let sent = produce(&self.cluster, topic, &out, &extra);
        let id = record.id;
        Settling::Pending(Box::pin(async move {
            let f = sent.map_err(|e| backend("storing a retry", e))?;
            acked(f).await.map_err(|e| backend("storing a retry", e))?;
            self.finish(id);
            Ok(Settled::Done)
        }))
    }
}

impl Consumer for KafkaConsumer {
    fn poll(&self, max: usize) -> BoxFuture<'_, Option<Polled>> {
        Box::pin(async move {
            loop {
                let woken = self.shared.wake.notified();
                let need_ends = {
                    let mut st = self.shared.state.lock();
                    if !st.revoked.is_empty() {
                        let revoked = std::mem::take(&mut st.revoked);
                        let ids = revoked.into_iter().map(|(s, p)| partition_id(s, p));
                        return Some(Polled::Revoked(ids.collect()));
                    }
                    if st.drained() {
                        return None;
                    }
                    st.drain.as_ref().is_some_and(|d| d.ends.is_none())
                };
                if need_ends {
                    self.read_drain_ends().await;
                    continue;
                }
                tokio::select! {
                    biased;
                    () = woken => continue,
                    m = self.consumer.recv() => match m {
                        Ok(m) => {
                            let mut out = Vec::new();
                            out.extend(self.record(&m));
                            drop(m);
                            while out.len() < max {
                                match self.consumer.recv().now_or_never() {
                                    Some(Ok(m)) => out.extend(self.record(&m)),
                                    Some(Err(e)) => {
                                        tracing::warn!(group = %self.shared.group, error = %e, "consumer error");
                                        break;
                                    }
                                    None => break,
                                }
                            }
                            if !out.is_empty() {
                                return Some(Polled::Records(out));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(group = %self.shared.group, error = %e, "consumer error");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                }
            }
        })
    }

    fn settle<'a>(&'a self, record: &Record, how: Settle) -> Settling<'a> {
        match how {
            Settle::Ack | Settle::DeadLettered => {
                self.finish(record.id);
                Settling::done()
            }
            Settle::Retry(state) => self.store_retry(record, state),
        }
    }

    fn commit(&self) -> BoxFuture<'_, Result<(), LogError>> {
        let (tpl, progress) = {
            let mut st = self.shared.state.lock();
            let tpl = st.commit_list(&self.shared.streams, false, None);
            (tpl, st.progress_list(None))
        };
        let result = if tpl.count() == 0 {
            Ok(())
        } else {
            self.consumer
                .commit(&tpl, CommitMode::Async)
                .map_err(|e| backend("commit", e))
        };
        // Not waited for: a record lost on the way costs duplicates after a kill, nothing more.
        drop(self.shared.write_progress(&progress));
        Box::pin(std::future::ready(result))
    }

    fn pause(&self) {
        self.shared.state.lock().paused = true;
        if let Some(a) = self.assignment() {
            let _ = self.consumer.pause(&a);
        }
    }

    fn resume(&self) {
        self.shared.state.lock().paused = false;
        if let Some(a) = self.assignment() {
            let _ = self.consumer.resume(&a);
        }
    }

    fn stats(&self) -> GroupStats {
        // What this consumer holds unfinished; what waits in the topic is not counted.
        let st = self.shared.state.lock();
        let outstanding: usize = st.trackers.values().map(Tracker::outstanding).sum();
        GroupStats {
            lag: Some(outstanding as u64),
            shed: 0,
        }
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let (tpl, progress) = {
            let mut st = self.shared.state.lock();
            st.closing = true;
            st.written.clear();
            let tpl = st.commit_list(&self.shared.streams, true, None);
            (tpl, st.progress_list(None))
        };
        let acks = self.shared.write_progress(&progress);
        let consumer = self.consumer.clone();
        let group = self.shared.group.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let done = tokio::task::spawn_blocking(move || {
                if tpl.count() > 0
                    && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
                {
                    tracing::warn!(group = %group, error = %e, "final commit failed; the last records are read again");
                }
                if !wait_acks(acks, ACK_LIMIT) {
                    tracing::debug!(group = %group, "final progress not acknowledged in time; finished records may be delivered again");
                }
                consumer.unsubscribe();
            });
            if tokio::time::timeout(CLOSE_LIMIT, done).await.is_err() {
                tracing::warn!(group = %self.shared.group, elapsed_ms = started.elapsed().as_millis() as u64, "closing the consumer took too long; going on without it");
            }
        })
    }
}
