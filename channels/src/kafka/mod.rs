//! The Kafka backend (rdkafka with the bundled librdkafka): topics as logs, a consumer group
//! per egress with commit-after-done, a durable retry topic per group, and the CloudEvents
//! Kafka protocol binding; [`replay`] reads a range of a topic again.

pub mod binding;
mod cluster;
mod consumer;
mod log;
pub mod replay;

pub use binding::ContentMode;
pub use cluster::{Cluster, Clusters, TopicSpec};
pub use log::KafkaLog;
