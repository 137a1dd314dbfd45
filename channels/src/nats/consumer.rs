//! The consumer of one group on JetStream: a durable pull consumer read by a task of its own.
//!
//! - Every message read is *held* (by its consumer sequence, [`RecordId::handle`]) from the
//!   moment it arrives until it is settled, queued records included; one timer per consumer
//!   sends `+WPI` (in progress) for held records whose last signal is older than half of
//!   `ack_wait`, so nothing is redelivered behind the dispatcher's back however long a record
//!   is held (a long backoff in an ordered group, a dead-letter sink that is down).
//! - `Ack` sends `+ACK`, `DeadLettered` `+TERM` (after the dead-letter sink took the event, or
//!   when it is dropped). Both go out in order from one task per consumer, never awaited by
//!   the caller.
//! - `Retry` (groups with durable retries, not while draining; others answer
//!   [`Settled::Kept`]): the [`RetryState`] is stored in the log's retry stream
//!   ([`super::retries`]) under `<durable>.<stream sequence>` and then the message is nak'd with the delay until
//!   `not_before_ms`. When the server delivers it again, the state is read back into
//!   [`Record::retry`], so the attempt count survives restarts and kills: the event reaches
//!   the dead-letter sink after exactly `retry + 1` attempts (a delivery cut short by a kill
//!   before its attempt failed is not counted, as on Kafka). Settling a record that had a
//!   stored state removes it. The state is read for a message the server reports as
//!   redelivered and for every sequence with a stored state when the consumer opened (listed
//!   then: nats-server 2.9 was seen to report a nak'd message as delivered once after the
//!   consumer's previous client went away).
//! - The server's own delivery count is not used for the limit (`max_deliver` is unlimited):
//!   it also counts redeliveries after a kill of records never attempted, which would send
//!   events to the dead-letter sink early.
//! - A message that is not a CloudEvent (published to the subject by someone else) is
//!   terminated with a warning.
//! - The pull stream has an idle heartbeat; when it fails (server restart, missed heartbeats,
//!   consumer gone) the task re-creates the durable consumer (same config; its position is the
//!   server's) and pulls again, backing off up to 2 s between tries.
//! - `close` naks the records still held so another member (or the next consumer of the
//!   group) gets them at once instead of after `ack_wait`; a killed process's records come
//!   back once `ack_wait` passes. `ack_wait` is the group's ack deadline capped at 6 s (plus
//!   a second): a delivery may take longer (Knative's default timeout is 10 minutes), the
//!   heartbeat covers it, and a kill keeps its records away no longer than a killed Kafka
//!   member's session keeps its partitions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::Subject;
use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::StreamExt;
use knit_crds::contract::NatsLog as Config;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::connection::Conn;
use super::log::backend;
use super::retries::RetryStore;
use crate::log::{
    BoxFuture, Consumer, GroupSpec, GroupStats, LogError, PartitionId, Polled, Record, RecordId,
    RetryState, Settle, Settled, Settling, StartAt,
};

/// What the acker task sends, in order.
enum Out {
    /// Publish this acknowledgement to the message's reply subject.
    Reply(Subject, Bytes),
    /// Remove a stored retry state.
    Forget(String),
    /// Answer once everything before has been sent.
    Flush(oneshot::Sender<()>),
}

/// A record handed out (or queued) and not settled yet.
struct Held {
    reply: Subject,
    signalled: Instant,
}

#[derive(Default)]
struct State {
    held: HashMap<u64, Held>,
    /// Stream sequences with a stored retry count (this consumer's, and those listed when it
    /// opened).
    retried: HashSet<u64>,
    paused: bool,
}

/// What the consumer shares with its tasks and its log.
pub(crate) struct ConsumerShared {
    group: String,
    durable: String,
    state: Mutex<State>,
    wake: Notify,
    draining: AtomicBool,
}

/// The log was closed: finish what the stream holds for the group, then end.
impl crate::lifecycle::Drains for ConsumerShared {
    fn drain_to_end(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// The retry state as stored in the bucket.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    attempts: u32,
    not_before_ms: i64,
    last_dest: String,
    last_status: Option<u16>,
}

/// The consumer of one group.
pub(crate) struct NatsConsumer {
    shared: Arc<ConsumerShared>,
    stream: stream::Stream,
    rx: tokio::sync::Mutex<mpsc::Receiver<Record>>,
    out: mpsc::UnboundedSender<Out>,
    retries: Option<RetryStore>,
    tasks: Vec<JoinHandle<()>>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The durable consumer's configuration for `spec`.
fn consumer_config(durable: &str, spec: &GroupSpec) -> pull::Config {
    pull::Config {
        durable_name: Some(durable.to_string()),
        description: Some(format!("knit group {}", spec.name)),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ack_wait(spec),
        max_deliver: -1,
        max_ack_pending: i64::from(spec.max_in_flight.max(1)).saturating_mul(2),
        deliver_policy: match spec.start {
            StartAt::Latest => DeliverPolicy::New,
            StartAt::Earliest => DeliverPolicy::All,
        },
        ..Default::default()
    }
}

/// The longest `ack_wait`. The heartbeat keeps a longer delivery alive, so this bounds only
/// how long a killed process's records stay away from the group: 6 s, as a killed Kafka
/// member's session (JetStream's default, 30 s, kept them away for half a minute).
const MAX_ACK_WAIT: Duration = Duration::from_secs(6);

/// `ack_wait`: the group's ack deadline (at most [`MAX_ACK_WAIT`]) and a second of margin.
fn ack_wait(spec: &GroupSpec) -> Duration {
    spec.ack_deadline
        .clamp(Duration::from_secs(1), MAX_ACK_WAIT)
        .saturating_add(Duration::from_secs(1))
}

/// Create the durable consumer (or update it); when the server refuses the change (a field
/// that cannot be edited), use it as it is.
async fn ensure_consumer(
    stream: &stream::Stream,
    config: &pull::Config,
) -> Result<PullConsumer, LogError> {
    let name = config.durable_name.clone().unwrap_or_default();
    match stream.create_consumer(config.clone()).await {
        Ok(c) => Ok(c),
        Err(create) => match stream.get_consumer::<pull::Config>(&name).await {
            Ok(c) => {
                tracing::warn!(consumer = %name, error = %create, "cannot update the consumer; using it as it is");
                Ok(c)
            }
            Err(_) => Err(backend(format!("creating the consumer {name}"), create)),
        },
    }
}

impl NatsConsumer {
    /// Create (or update) the durable consumer and start reading.
    pub(crate) async fn open(
        conn: Arc<Conn>,
        config: &Config,
        spec: GroupSpec,
        retries: Option<RetryStore>,
    ) -> Result<Self, LogError> {
        let durable = super::durable_name(&spec.name);
        let stream = conn
            .js
            .get_stream(&config.stream)
            .await
            .map_err(|e| backend(format!("opening the stream {}", config.stream), e))?;
        let cfg = consumer_config(&durable, &spec);
        let consumer = ensure_consumer(&stream, &cfg).await?;
        // nats-server 2.9 may report a redelivery as delivered once (seen after a consumer's
        // client went away), so the records with a stored count are listed, not guessed.
        let retried = match retries.as_ref().filter(|_| spec.durable_retries) {
            Some(store) => store.sequences(&durable).await?,
            None => HashSet::new(),
        };
        let shared = Arc::new(ConsumerShared {
            group: spec.name.clone(),
            durable,
            state: Mutex::new(State {
                retried,
                ..State::default()
            }),
            wake: Notify::new(),
            draining: AtomicBool::new(false),
        });
        let batch = usize::try_from(spec.max_in_flight.max(1))
            .unwrap_or(1)
            .min(256);
        let (tx, rx) = mpsc::channel(batch);
        let (out, out_rx) = mpsc::unbounded_channel();
        let reader = Reader {
            shared: shared.clone(),
            stream: stream.clone(),
            config: cfg,
            retries: if spec.durable_retries {
                retries.clone()
            } else {
                None
            },
            out: out.clone(),
            batch,
        };
        let tasks = vec![
            tokio::spawn(reader.run(consumer, tx)),
            tokio::spawn(heartbeat(
                shared.clone(),
                conn.client.clone(),
                ack_wait(&spec),
            )),
        ];
        tokio::spawn(acker(conn.client.clone(), retries.clone(), out_rx));
        Ok(Self {
            shared,
            stream,
            rx: tokio::sync::Mutex::new(rx),
            out,
            retries: retries.filter(|_| spec.durable_retries),
            tasks,
        })
    }

    pub(crate) fn shared(&self) -> Arc<ConsumerShared> {
        self.shared.clone()
    }

    fn retry_key(&self, record: &Record) -> String {
        format!("{}.{}", self.shared.durable, record.id.offset)
    }

    /// Whether a draining consumer has finished: nothing waits in the stream for the group,
    /// nothing is unacknowledged, nothing is queued here.
    async fn drained(&self, queued: usize) -> bool {
        if queued > 0 || !self.shared.state.lock().held.is_empty() {
            return false;
        }
        match self.stream.consumer_info(&self.shared.durable).await {
            Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
            Err(e) => {
                tracing::debug!(group = %self.shared.group, error = %e, "cannot read the consumer's state while draining");
                false
            }
        }
    }

    /// Store `state` for `record`, then nak it with the delay until its due time.
    fn store_retry<'a>(&'a self, record: &Record, held: Held, state: RetryState) -> Settling<'a> {
        let draining = self.shared.draining.load(Ordering::Relaxed);
        let Some(store) = self.retries.clone().filter(|_| !draining) else {
            self.shared.state.lock().held.insert(record.id.handle, held);
            return Settling::kept();
        };
        let key = self.retry_key(record);
        let handle = record.id.handle;
        let seq = u64::try_from(record.id.offset).unwrap_or_default();
        Settling::Pending(Box::pin(async move {
            let stored = Stored {
                attempts: state.attempts,
                not_before_ms: state.not_before_ms,
                last_dest: state.last_dest,
                last_status: state.last_status,
            };
            let value = serde_json::to_vec(&stored).unwrap_or_default();
            if let Err(e) = store.put(&key, value.into()).await {
                self.shared.state.lock().held.insert(handle, held);
                return Err(e);
            }
            self.shared.state.lock().retried.insert(seq);
            let delay_ms = stored.not_before_ms.saturating_sub(now_ms()).max(0);
            let delay = Duration::from_millis(delay_ms.unsigned_abs());
            let nak = format!("-NAK {{\"delay\":{}}}", delay.as_nanos());
            let _ = self.out.send(Out::Reply(held.reply, Bytes::from(nak)));
            Ok(Settled::Done)
        }))
    }
}

impl Drop for NatsConsumer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Reads the pull stream into the consumer's queue, re-creating the consumer when the
/// stream fails.
struct Reader {
    shared: Arc<ConsumerShared>,
    stream: stream::Stream,
    config: pull::Config,
    retries: Option<RetryStore>,
    out: mpsc::UnboundedSender<Out>,
    batch: usize,
}

impl Reader {
    async fn run(self, mut consumer: PullConsumer, tx: mpsc::Sender<Record>) {
        let mut failures: u32 = 0;
        loop {
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            match messages {
                Ok(mut messages) => {
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(m) => {
                                failures = 0;
                                let Some(record) = self.take(m).await else {
                                    continue;
                                };
                                if tx.send(record).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) if matches!(e.kind(), MessagesErrorKind::Other) => {
                                tracing::debug!(group = %self.shared.group, error = %e, "pull stream");
                            }
                            Err(e) => {
                                tracing::warn!(group = %self.shared.group, error = %e, "pull stream failed; pulling again");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %self.shared.group, error = %e, "cannot pull; trying again");
                }
            }
            if tx.is_closed() {
                return;
            }
            failures = failures.saturating_add(1);
            let wait = Duration::from_millis(200u64.saturating_mul(u64::from(failures)).min(2000));
            tokio::time::sleep(wait).await;
            match ensure_consumer(&self.stream, &self.config).await {
                Ok(c) => consumer = c,
                Err(e) => {
                    tracing::warn!(group = %self.shared.group, error = %e, "cannot re-create the consumer");
                }
            }
        }
    }

    /// The record of a delivered message, held from now on; `None` (terminated) for a message
    /// that is not a CloudEvent.
    async fn take(&self, m: jetstream::Message) -> Option<Record> {
        let (stream_seq, consumer_seq, delivered) = match m.info() {
            Ok(i) => (i.stream_sequence, i.consumer_sequence, i.delivered),
            Err(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "a message without delivery information");
                return None;
            }
        };
        let reply = m.reply.clone()?;
        let event = match super::decode_message(&m) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(group = %self.shared.group, sequence = stream_seq, error = %e, "not a CloudEvent: terminated");
                let _ = self
                    .out
                    .send(Out::Reply(reply, Bytes::from_static(b"+TERM")));
                return None;
            }
        };
        let known = self.shared.state.lock().retried.contains(&stream_seq);
        let retry = if delivered > 1 || known {
            self.stored_retry(stream_seq).await
        } else {
            None
        };
        self.shared.state.lock().held.insert(
            consumer_seq,
            Held {
                reply,
                signalled: Instant::now(),
            },
        );
        let key = event
            .extension("partitionkey")
            .map(|v| Arc::from(v.to_string()));
        Some(Record {
            id: RecordId {
                partition: PartitionId(0),
                offset: i64::try_from(stream_seq).unwrap_or(i64::MAX),
                handle: consumer_seq,
            },
            event: Arc::new(event),
            key,
            retry,
        })
    }

    async fn stored_retry(&self, stream_seq: u64) -> Option<RetryState> {
        let store = self.retries.as_ref()?;
        let key = format!("{}.{stream_seq}", self.shared.durable);
        let mut tries: u64 = 0;
        let value = loop {
            match store.get(&key).await {
                Ok(v) => break v?,
                Err(e) if tries < 3 => {
                    tries += 1;
                    tracing::debug!(group = %self.shared.group, key, error = %e, "cannot read a retry count; trying again");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => {
                    tracing::warn!(group = %self.shared.group, key, error = %e, "cannot read a retry count; counting from zero");
                    return None;
                }
            }
        };
        let s: Stored = serde_json::from_slice(&value).ok()?;
        Some(RetryState {
            attempts: s.attempts,
            not_before_ms: s.not_before_ms,
            last_dest: s.last_dest,
            last_status: s.last_status,
        })
    }
}

/// Sends `+WPI` for held records whose last signal is older than half of `ack_wait`.
async fn heartbeat(shared: Arc<ConsumerShared>, client: async_nats::Client, ack_wait: Duration) {
    let half = ack_wait / 2;
    let mut tick = tokio::time::interval((ack_wait / 4).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let due: Vec<Subject> = {
            let mut st = shared.state.lock();
            st.held
                .values_mut()
                .filter(|h| now.duration_since(h.signalled) >= half)
                .map(|h| {
                    h.signalled = now;
                    h.reply.clone()
                })
                .collect()
        };
        for reply in due {
            if let Err(e) = client.publish(reply, Bytes::from_static(b"+WPI")).await {
                tracing::debug!(group = %shared.group, error = %e, "in-progress signal not sent");
            }
        }
    }
}

/// Sends acknowledgements and removes stored retry states, in order.
async fn acker(
    client: async_nats::Client,
    retries: Option<RetryStore>,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    while let Some(out) = rx.recv().await {
        match out {
            Out::Reply(subject, body) => {
                if let Err(e) = client.publish(subject, body).await {
                    tracing::debug!(error = %e, "acknowledgement not sent; the message comes back");
                }
            }
            Out::Forget(key) => {
                if let Some(store) = &retries
                    && let Err(e) = store.forget(&key).await
                {
                    tracing::debug!(key, error = %e, "a retry count was not removed (it expires)");
                }
            }
            Out::Flush(done) => {
                let _ = client.flush().await;
                let _ = done.send(());
            }
        }
    }
}

impl Consumer for NatsConsumer {
    fn poll(&self, max: usize) -> BoxFuture<'_, Option<Polled>> {
        Box::pin(async move {
            let mut rx = self.rx.lock().await;
            loop {
                let woken = self.shared.wake.notified();
                let draining = self.shared.draining.load(Ordering::Relaxed);
                if self.shared.state.lock().paused {
                    woken.await;
                    continue;
                }
                if draining && self.drained(rx.len()).await {
                    return None;
                }
                tokio::select! {
                    biased;
                    () = woken => {}
                    r = rx.recv() => {
                        let first = r?;
                        let mut out = vec![first];
                        while out.len() < max.max(1) {
                            match rx.try_recv() {
                                Ok(r) => out.push(r),
                                Err(_) => break,
                            }
                        }
                        return Some(Polled::Records(out));
                    }
                    () = tokio::time::sleep(Duration::from_millis(250)), if draining => {}
                }
            }
        })
    }

    fn settle<'a>(&'a self, record: &Record, how: Settle) -> Settling<'a> {
        let seq = u64::try_from(record.id.offset).unwrap_or_default();
        let (held, had_count) = {
            let mut st = self.shared.state.lock();
            let Some(held) = st.held.remove(&record.id.handle) else {
                return Settling::done();
            };
            let had_count = !matches!(how, Settle::Retry(_)) && st.retried.remove(&seq);
            (held, had_count)
        };
        let verb: &'static [u8] = match how {
            Settle::Ack => b"+ACK",
            Settle::DeadLettered => b"+TERM",
            Settle::Retry(state) => return self.store_retry(record, held, state),
        };
        let _ = self
            .out
            .send(Out::Reply(held.reply, Bytes::from_static(verb)));
        if (had_count || record.retry.is_some()) && self.retries.is_some() {
            let _ = self.out.send(Out::Forget(self.retry_key(record)));
        }
        Settling::done()
    }

    fn commit(&self) -> BoxFuture<'_, Result<(), LogError>> {
        // Every settle acknowledges its own message; there is no position to commit.
        Box::pin(std::future::ready(Ok(())))
    }

    fn pause(&self) {
        self.shared.state.lock().paused = true;
    }

    fn resume(&self) {
        self.shared.state.lock().paused = false;
        self.shared.wake.notify_one();
    }

    fn stats(&self) -> GroupStats {
        GroupStats {
            lag: Some(self.shared.state.lock().held.len() as u64),
            shed: 0,
        }
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for t in &self.tasks {
                t.abort();
            }
            let held: Vec<Held> = self
                .shared
                .state
                .lock()
                .held
                .drain()
                .map(|(_, h)| h)
                .collect();
            for h in held {
                let _ = self
                    .out
                    .send(Out::Reply(h.reply, Bytes::from_static(b"-NAK")));
            }
            let (done, flushed) = oneshot::channel();
            if self.out.send(Out::Flush(done)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
            }
        })
    }
}
