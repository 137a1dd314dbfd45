//! knit-channels: the event log and the event itself. A log takes appends, hands records to a
//! consumer from a position, and forgets them once committed; backends: memory (Kafka and NATS
//! JetStream join as modules here), plus the CloudEvents Kafka/NATS bindings they need.
//!
//! This crate must not know about triggers, subscriptions or HTTP.

pub mod event;
pub mod memory;

pub use event::{Data, DataKind, Event, EventError, ExtValue, SpecVersion};
pub use memory::{AppendError, MemoryLog, Record};
