//! The log seam: what every backend (memory, Kafka, later NATS JetStream) offers the ingress and
//! the dispatcher. The ingress appends batches; each egress (a Trigger or a Subscription) opens
//! its own consumer group with its own position, reads records, marks each one done once its
//! fate is decided, and commits the contiguous done prefix.
//!
//! The traits are object safe (futures are boxed) so the data plane can hold any backend behind
//! one type; the per-call cost is one allocation, small next to an HTTP exchange.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::event::Event;

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

/// Where a record sits: the stream (0 the log itself, 1 its retry stream), the partition, and
/// the offset within it. Memory logs have one partition and number the records each group
/// receives; Kafka uses the record's partition and offset; a JetStream stream sequence is an
/// offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// 0: the log; 1: the group's retry stream.
    pub stream: u8,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A record as handed to one consumer: its position and the assignment generation it was read
/// in (completions from an earlier generation, after a revocation, are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordId {
    /// Where it sits.
    pub position: Position,
    /// The consumer's assignment generation when it was read.
    pub generation: u64,
}

/// One record read by a consumer.
#[derive(Clone, Debug)]
pub struct Record {
    /// Its identity, for [`Consumer::done`].
    pub id: RecordId,
    /// The event.
    pub event: Arc<Event>,
    /// The ordering key (the record key, or the `partitionkey` extension), if any.
    pub key: Option<Arc<str>>,
    /// Set on a record read back from the group's retry stream: how far delivery got.
    pub retry: Option<RetryState>,
}

/// Where a deferred delivery stands: stored with the record on the retry stream so a restart
/// resumes the count instead of starting over (Knative's eventing-kafka-broker#3746).
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

/// What a poll returns.
#[derive(Debug)]
pub enum Polled {
    /// Records, in log order per partition.
    Records(Vec<Record>),
    /// These `(stream, partition)`s were taken away (a rebalance): work not yet started on them
    /// is dropped, since their new owner reads them again from the last commit.
    Revoked(Vec<(u8, i32)>),
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

/// A consumer group to open.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// The group's name (Kafka `group.id`).
    pub name: String,
    /// Where it starts when it has no position yet.
    pub start: StartAt,
    /// Overflow policy (bounded logs).
    pub overflow: Overflow,
    /// Whether failed deliveries are retried through a durable retry stream.
    pub durable_retries: bool,
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
    /// the broker's acknowledgement). Memory appends all or nothing.
    fn append<'a>(&'a self, events: &'a [Arc<Event>]) -> BoxFuture<'a, Result<(), AppendError>>;

    /// Open (creating if needed) a consumer group.
    fn open(&self, spec: GroupSpec) -> BoxFuture<'_, Result<Arc<dyn Consumer>, LogError>>;

    /// Forget a group and its position (its consumer must be closed first).
    fn delete_group(&self, name: &str) -> BoxFuture<'_, Result<(), LogError>>;

    /// Install an index of the groups' filters (see [`Selector`]); backends that do not fan out
    /// at append time ignore it.
    fn select(&self, _selector: Option<Arc<dyn Selector>>) {}

    /// Stop accepting appends. Consumers keep reading what was accepted, then end.
    fn close(&self);

    /// Whether accepted events survive a restart of the process.
    fn durable(&self) -> bool;
}

/// The consumer of one group.
pub trait Consumer: Send + Sync {
    /// Wait for up to `max` records (or a revocation). `None` once the log is closed and the
    /// group has read everything it holds.
    fn poll(&self, max: usize) -> BoxFuture<'_, Option<Polled>>;

    /// Mark a record finished: delivered, filtered out, dead-lettered, shed, or deferred.
    fn done(&self, id: RecordId);

    /// Commit, per partition, the position after the longest finished prefix.
    fn commit(&self) -> BoxFuture<'_, Result<(), LogError>>;

    /// Stop handing out records (backpressure); the backend keeps its session alive.
    fn pause(&self);

    /// Hand out records again.
    fn resume(&self);

    /// Store `record` on the group's durable retry stream with `state` (attempts made, when to
    /// try next, the last failure). `Ok(false)`: the backend keeps no retry stream and the
    /// caller retries in memory. After `Ok(true)` the caller marks the record itself done.
    fn defer(&self, record: &Record, state: RetryState) -> BoxFuture<'_, Result<bool, LogError>>;

    /// Counters for status.
    fn stats(&self) -> GroupStats;

    /// Commit what is finished and leave the group.
    fn close(&self) -> BoxFuture<'_, ()>;
}
