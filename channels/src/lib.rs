//! knit-channels: the event log and the event itself. The [`log`] module is the seam every
//! backend implements: append a batch (resolved once the backend accepted it), and one consumer
//! per group reading from its own position, marking records done and committing the contiguous
//! done prefix. Backends: [`memory`] (bounded, not durable) and [`kafka`] (NATS JetStream joins
//! as a sibling module), with the CloudEvents Kafka binding.
//!
//! This crate must not know about triggers, subscriptions or HTTP.

pub mod event;
pub mod kafka;
pub mod log;
pub mod memory;
pub mod tracker;

pub use event::{Data, DataKind, Event, EventError, ExtValue, SpecVersion};
pub use log::{
    AppendError, BoxError, BoxFuture, Consumer, GroupSpec, GroupStats, Log, LogError, Overflow,
    Polled, Position, Record, RecordId, RetryState, Selector, StartAt,
};
pub use memory::{MemoryConfig, MemoryLog};
pub use tracker::Tracker;
