//! knit-channels: the event log and the event itself. The [`log`] module is the seam every
//! backend implements: append a batch (resolved once the backend accepted it), one consumer
//! per group reading from its own position and settling each record once, commits of the
//! settled prefix, and [`replay`] of a range. [`backends`] opens logs from the Contract's
//! description. Backends are sibling modules behind cargo features: [`memory`] (always; bounded,
//! not durable), `kafka` (feature `kafka`, on by default, with the CloudEvents Kafka
//! binding) and `nats` (feature `nats`, on by default: NATS JetStream, with the CloudEvents
//! NATS binding).
//!
//! [`coordination`] lets several Knit processes on one Kafka or NATS be one system: who the
//! replicas are, and leadership of work that must run once, held through the engine.
//!
//! This crate must not know about triggers, subscriptions or HTTP. Nothing above it names a
//! backend's types: the data plane goes through [`Backends`] and the [`Log`] and [`Consumer`]
//! traits.

pub mod backends;
pub mod coordination;
pub mod event;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(any(feature = "kafka", feature = "nats"))]
mod lifecycle;
pub mod log;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
pub mod replay;
pub mod tracker;

pub use backends::{BackendKind, Backends, LogSpec, NotBuilt, Role, redact_url};
pub use event::{Data, DataKind, Event, EventError, ExtValue, SpecVersion};
pub use log::{
    AppendError, BoxError, BoxFuture, Consumer, GroupSpec, GroupStats, Log, LogError, Order,
    Overflow, PartitionId, Polled, Record, RecordId, RetryState, Selector, Settle, Settled,
    Settling, StartAt,
};
pub use memory::{MemoryConfig, MemoryLog};
pub use replay::{Bound, BoundError, PartitionRange, Replay, ReplayRecord};
pub use tracker::Tracker;
