//! The log seam: what every backend (memory, Kafka, NATS JetStream) offers the ingress, the
//! dispatcher and the data plane. Nothing above this crate names a backend's types: the data
//! plane opens logs through [`crate::backends::Backends`] and then only sees these traits.
//!
//! ```text
//! trait Log {                          // one per Broker, channel, sink or source
//!     append(&[Arc<Event>]) -> BoxFuture<Result<(), AppendError>>   // resolves once accepted
//!     open(GroupSpec) -> BoxFuture<Result<Arc<dyn Consumer>, LogError>>
//!     delete_group(&str) -> BoxFuture<Result<(), LogError>>
//!     select(Option<Arc<dyn Selector>>)  // memory: index of the groups' filters
//!     close()                            // no more appends; consumers drain, then end
//!     durable() -> bool
//!     annotations() -> Vec<(String, String)>   // status: the backend's resources
//!     replay(&Bound, Option<&Bound>, name) -> BoxFuture<Result<Box<dyn Replay>, LogError>>
//!     destroy() -> BoxFuture<Result<(), LogError>>   // delete what the log owns
//! }
//! trait Consumer {                     // one per egress (consumer group)
//!     poll(max) -> BoxFuture<Option<Polled>>   // Records(Vec<Record>) | Revoked(Vec<PartitionId>)
//!     settle(&Record, Settle) -> Settling       // Ack | Retry(RetryState) | DeadLettered
//!     commit() -> BoxFuture<Result<(), LogError>>
//!     pause(); resume(); stats() -> GroupStats; close() -> BoxFuture<()>
//! }
//! struct GroupSpec { name, start: StartAt, overflow: Overflow, durable_retries: bool,
//!                    max_in_flight: u32, order: Order, ack_deadline: Duration }
//! struct RecordId { partition: PartitionId, offset: i64, handle: u64 }   // Copy
//! struct Record { id: RecordId, event: Arc<Event>, key: Option<Arc<str>>,
//!                 retry: Option<RetryState> }
//! trait Replay { ranges() -> &[PartitionRange]; span() -> u64;
//!                next(max) -> BoxFuture<Result<Option<Vec<ReplayRecord>>, LogError>> }
//! enum Bound { Earliest, Latest, Offset(i64), Partitions(BTreeMap<i32, i64>), Time(Timestamp) }
//! ```
//!
//! # Settling a record
//!
//! Every record a consumer hands out is settled once, with [`Consumer::settle`] (a record
//! left unsettled when its partition is revoked or its consumer closes is read again by the
//! group, from the last commit or, on JetStream, once its deadline passes):
//!
//! - [`Settle::Ack`]: finished — delivered, filtered out, or dropped as the delivery spec
//!   allows. Kafka and memory mark it finished (commits carry the finished prefix);
//!   JetStream acks it.
//! - [`Settle::DeadLettered`]: given up on — the dead-letter sink took it, or there was none
//!   (or it refused for good) and the event was dropped. Finished like `Ack` on Kafka and
//!   memory; JetStream terminates it (`+TERM`).
//! - [`Settle::Retry`]: an attempt failed and retries are left; the next one is due no earlier
//!   than `state.not_before_ms`. The backend either takes the record back on its own retry
//!   path and answers [`Settled::Done`] — Kafka stores it on the group's retry topic
//!   (`<group>.retry`, with the attempt count and due time in `knit-*` headers) and then
//!   finishes the original; JetStream would nak it with a delay — or declines with
//!   [`Settled::Kept`]: the record is then *not* settled, stays the caller's, and the caller
//!   waits until the due time, attempts again in memory, and settles it later. Memory always
//!   declines (it never re-delivers by itself: an in-memory retry keeps the record, its
//!   worker and, in ordered modes, its lane, exactly as before the seam); Kafka declines for
//!   groups without durable retries (ordered groups retry in place) and while draining. An
//!   `Err` means the backend could not take it back: the record is not settled either, and the
//!   caller retries in memory.
//!
//! `Ack` and `DeadLettered` act when `settle` is called and their [`Settling`] is always
//! ready: the caller may drop it unawaited (a backend that acknowledges over the network sends
//! in the background). Settling a record of an earlier assignment generation (after a
//! revocation) is ignored. A record read back from a retry path carries its [`RetryState`] in
//! [`Record::retry`], so the attempt count survives a restart.
//!
//! # Records held for a long time
//!
//! A record stays the caller's until it is settled, however long that takes: an ordered
//! group's in-memory backoff, or a dead-letter sink that is down (durable logs hold the record
//! until the sink takes it). Kafka and memory never hand an unsettled record to anyone else
//! while the consumer is open (only a revocation, a restart or a rebalance does; then
//! [`Polled::Revoked`] says so). A backend whose unsettled records return to the group after a
//! deadline (JetStream `ack_wait`, set from [`GroupSpec::ack_deadline`], capped) keeps the
//! records it handed out alive itself while they are unsettled and its consumer open — a
//! progress signal (`+WPI`) for records held longer than half the deadline, from one timer per
//! consumer — so nothing is redelivered behind the dispatcher's back; after a crash they come
//! back once the deadline passes. The dispatcher therefore sends no heartbeat of its own.
//!
//! The traits are object safe (futures are boxed) so the data plane can hold any backend behind
//! one type; the per-call cost is one allocation, small next to an HTTP exchange. `settle`
//! allocates nothing unless a backend stores a retry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::event::Event;
use crate::replay::{Bound, Replay};

/// A boxed future, as the traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend's own error, kept as the cause of a [`LogError`] or an [`AppendError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The log (or a consumer that asked for push-back) holds all it may; retry later (429).
    #[error("the log is full")]
    Full,
    /// The log was closed (its broker or channel was deleted or recreated).
    #[error("the log is closed")]
    Closed,
    /// The backend did not accept the events (503: unreachable, timed out, refused).
    #[error("the backend did not accept the event: {0}")]
    Unavailable(#[source] BoxError),
    /// The backend refuses events this large (413).
    #[error("the event is too large for the backend: {0}")]
    TooLarge(#[source] BoxError),
}

/// Errors of opening, committing and managing consumer groups (and of reading a range again).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
    /// The backend failed while doing something.
    #[error("{doing}: {source}")]
    Backend {
        /// What the log was doing (`creating topics`, `commit`, ...).
        doing: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A topic the log needs does not exist (and is not the log's to create).
    #[error("topic {0} does not exist")]
    NoTopic(String),
    /// A partition asked for is not one of the topic's.
    #[error("topic {topic} has no partition {partition} (it has {partitions})")]
    NoPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: usize,
    },
    /// A reader received nothing for too long while records were still due.
    #[error("no record of topic {topic} arrived for {} s", .after.as_secs())]
    Stalled {
        /// The topic.
        topic: String,
        /// How long it waited.
        after: std::time::Duration,
    },
    /// The log keeps nothing once delivered, so there is nothing to read again (memory).
    #[error("the log keeps nothing to read again")]
    NotDurable,
    /// The backend the Contract names is not compiled into this build.
    #[error(transparent)]
    NotBuilt(#[from] crate::backends::NotBuilt),
}

impl LogError {
    /// The backend failed while `doing` something, with `source` as the cause.
    pub fn backend(doing: impl Into<String>, source: impl Into<BoxError>) -> Self {
        LogError::Backend {
            doing: doing.into(),
            source: source.into(),
        }
    }
}

/// A partition of what one consumer group reads: records of one partition are handed out in
/// their order, and ordered delivery keeps one lane per partition. The backend numbers them
/// (Kafka: one per partition of each topic the group reads, its retry topic included; memory:
/// one; JetStream: one per subject partition); callers only compare them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PartitionId(pub u64);

/// A record as handed to one consumer. Small and `Copy`: what a backend needs beyond these
/// three numbers to settle the record (a JetStream ack subject) it keeps itself, under
/// `handle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordId {
    /// The partition it was read from.
    pub partition: PartitionId,
    /// Its position within the partition (Kafka offset, memory sequence, JetStream stream
    /// sequence).
    pub offset: i64,
    /// The backend's handle of this delivery: Kafka the assignment generation it was read in
    /// (settling a record of an earlier generation is ignored); memory 0; JetStream the
    /// consumer sequence, which names the ack handle the consumer keeps.
    pub handle: u64,
}

/// One record read by a consumer.
#[derive(Clone, Debug)]
pub struct Record {
    /// Its identity.
    pub id: RecordId,
    /// The event.
    pub event: Arc<Event>,
    /// The ordering key (the record key, or the `partitionkey` extension), if any.
    pub key: Option<Arc<str>>,
    /// Set on a record read back from the group's retry path: how far delivery got.
    pub retry: Option<RetryState>,
}

/// Where a retried delivery stands: kept with the record on the backend's retry path so a
/// restart resumes the count instead of starting over (Knative's eventing-kafka-broker#3746).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryState {
    /// Attempts made so far.
    pub attempts: u32,
    /// The next attempt is not made before this time (unix milliseconds).
    pub not_before_ms: i64,
    /// The destination of the last failed attempt.
    pub last_dest: String,
    /// Its HTTP status, when it answered.
    pub last_status: Option<u16>,
}

/// How a record is settled (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Finished: delivered, filtered out, or dropped as the delivery spec allows.
    Ack,
    /// Not delivered yet: try again no earlier than `not_before_ms`, resuming from the state.
    Retry(RetryState),
    /// Given up on: dead-lettered, or dropped after the last attempt.
    DeadLettered,
}

/// What settling did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The record is settled: finished, or taken back by the backend for a later attempt.
    Done,
    /// A `Retry` was declined: the record is not settled and stays the caller's, who retries
    /// it in memory and settles it later.
    Kept,
}

/// The answer of [`Consumer::settle`]: ready at once (no allocation: always for `Ack` and
/// `DeadLettered`, and for a `Retry` a backend declines), or a backend's future (storing a
/// retry).
pub enum Settling<'a> {
    /// Settled (or declined) already.
    Ready(Result<Settled, LogError>),
    /// Resolves once the backend has taken the record back.
    Pending(BoxFuture<'a, Result<Settled, LogError>>),
}

impl Settling<'_> {
    /// Settled.
    pub fn done() -> Self {
        Settling::Ready(Ok(Settled::Done))
    }

    /// Declined: the caller keeps the record.
    pub fn kept() -> Self {
        Settling::Ready(Ok(Settled::Kept))
    }

    /// What settling did, once it is known.
    pub async fn outcome(self) -> Result<Settled, LogError> {
        match self {
            Settling::Ready(r) => r,
            Settling::Pending(f) => f.await,
        }
    }
}

/// What a poll returns.
#[derive(Debug)]
pub enum Polled {
    /// Records, in log order per partition.
    Records(Vec<Record>),
    /// These partitions were taken away (a rebalance): work not yet started on them is
    /// dropped, since their new owner reads them again from the last commit.
    Revoked(Vec<PartitionId>),
}

/// Where a new group starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartAt {
    /// At the end: only events appended after the group was created (triggers, subscriptions).
    #[default]
    Latest,
    /// At the beginning of what the log retains (`initialOffset: earliest`).
    Earliest,
}

/// What a bounded log does when one group falls too far behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Shed the group's oldest waiting events (counted and reported); others are unaffected.
    #[default]
    Shed,
    /// Push back: appends fail with [`AppendError::Full`] until the group catches up.
    Block,
}

/// In what order the group's egress delivers (a backend may use it to bound what it hands
/// out: JetStream `max_ack_pending` 1 per ordered partition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Concurrently, up to the in-flight limit.
    #[default]
    Unordered,
    /// One delivery in flight per partition, retries included.
    Ordered,
    /// One delivery in flight per key (`partitionkey`) within a partition.
    OrderedByKey,
}

/// A consumer group to open: what its egress needs of the backend.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// The group's name (Kafka `group.id`, JetStream durable consumer).
    pub name: String,
    /// Where it starts when it has no position yet.
    pub start: StartAt,
    /// Overflow policy (bounded logs).
    pub overflow: Overflow,
    /// Whether failed deliveries may be taken back on the backend's durable retry path
    /// ([`Settle::Retry`]); without it every retry happens in memory.
    pub durable_retries: bool,
    /// Deliveries the egress runs at once. It reads up to twice as many ahead, so a backend
    /// that caps unsettled records (JetStream `max_ack_pending`) allows at least that many.
    pub max_in_flight: u32,
    /// The egress's ordering.
    pub order: Order,
    /// How long one delivery attempt may take (the subscriber and the reply, each within the
    /// egress's timeout). A backend whose unsettled records return to the group after a
    /// deadline takes it from here (see "Records held for a long time" above).
    pub ack_deadline: Duration,
}

/// Decides which of a log's groups want an event: an index over their filters that backends
/// which fan out at append time (memory) use to skip groups that would filter the event out.
/// `groups()` names the groups the indices returned by `select` refer to; groups it does not
/// name receive every event.
pub trait Selector: Send + Sync {
    /// The groups this selector decides for.
    fn groups(&self) -> &[String];
    /// Push the indices (into `groups()`) of the groups that want `event`.
    fn select(&self, event: &Event, out: &mut Vec<usize>);
}

/// Counters a consumer group reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Events the group has not finished (waiting plus in flight), where the backend knows.
    pub lag: Option<u64>,
    /// Events shed because the group fell too far behind (bounded logs).
    pub shed: u64,
}

/// An event log.
pub trait Log: Send + Sync + 'static {
    /// Append `events`; resolves once the backend accepted every one (memory at once, Kafka on
    /// the broker's acknowledgement, JetStream on the PubAck). Memory appends all or nothing.
    fn append<'a>(&'a self, events: &'a [Arc<Event>]) -> BoxFuture<'a, Result<(), AppendError>>;

    /// Open (creating if needed) a consumer group.
    fn open(&self, spec: GroupSpec) -> BoxFuture<'_, Result<Arc<dyn Consumer>, LogError>>;

    /// Forget a group and its position (its consumer must be closed first), with whatever the
    /// backend keeps for it (Kafka: its retry topic).
    fn delete_group(&self, name: &str) -> BoxFuture<'_, Result<(), LogError>>;

    /// Install an index of the groups' filters (see [`Selector`]); backends that do not fan out
    /// at append time ignore it.
    fn select(&self, _selector: Option<Arc<dyn Selector>>) {}

    /// Stop accepting appends. Consumers keep reading what was accepted, then end.
    fn close(&self);

    /// Whether accepted events survive a restart of the process.
    fn durable(&self) -> bool;

    /// Status annotations naming the backend's resources (Kafka: `topic`).
    fn annotations(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Status annotations naming what backs the consumer group `group` of a Trigger or
    /// Subscription: `group.id` (as Knative's Kafka Triggers show it), and whatever else the
    /// backend names it by (NATS: the `stream` and the durable `consumer`).
    fn group_annotations(&self, group: &str) -> Vec<(String, String)> {
        vec![("group.id".to_string(), group.to_string())]
    }

    /// Read the records between `from` (inclusive) and `to` (exclusive; `None`: the end now)
    /// again, with a reader of its own that joins no group and moves no position. `name`
    /// identifies the reader to the backend. Logs that keep nothing answer
    /// [`LogError::NotDurable`].
    fn replay<'a>(
        &'a self,
        _from: &'a Bound,
        _to: Option<&'a Bound>,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Replay>, LogError>> {
        Box::pin(std::future::ready(Err(LogError::NotDurable)))
    }

    /// Delete the resources the log owns (Kafka: the topic of a Broker or channel), once it is
    /// closed and its consumers have drained. Logs that own nothing (memory, a sink's or a
    /// source's topics) do nothing.
    fn destroy(&self) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The consumer of one group.
pub trait Consumer: Send + Sync {
    /// Wait for up to `max` records (or a revocation). `None` once the log is closed and the
    /// group has read everything it holds.
    fn poll(&self, max: usize) -> BoxFuture<'_, Option<Polled>>;

    /// Settle `record` (see the module documentation): once, unless a `Retry` is answered
    /// [`Settled::Kept`] or fails.
    fn settle<'a>(&'a self, record: &Record, how: Settle) -> Settling<'a>;

    /// Commit, per partition, the position after the longest settled prefix.
    fn commit(&self) -> BoxFuture<'_, Result<(), LogError>>;

    /// Stop handing out records (backpressure); the backend keeps its session alive.
    fn pause(&self);

    /// Hand out records again.
    fn resume(&self);

    /// Counters for status.
    fn stats(&self) -> GroupStats;

    /// Commit what is settled and leave the group.
    fn close(&self) -> BoxFuture<'_, ()>;
}
