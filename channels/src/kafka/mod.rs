//! The Kafka backend (rdkafka with the bundled librdkafka; cargo feature `kafka`): topics as
//! logs, a consumer group per egress with commit-after-done, a durable retry topic per group,
//! reading a range again for a replay, and the CloudEvents Kafka protocol binding. The data
//! plane reaches it only through [`crate::backends::Backends`] and the [`crate::log`] traits.

pub mod binding;
pub(crate) mod cluster;
mod consumer;
mod holes;
mod log;
mod progress;
mod replay;

use std::sync::Arc;

use knit_crds::contract::{self, KafkaLog as Config};

pub use binding::ContentMode;
pub(crate) use cluster::Clusters;
use cluster::TopicSpec;

use crate::backends::Role;
use crate::log::{Log, LogError};

/// Open the log `config` describes on its cluster (clients shared through `clusters`).
pub(crate) async fn open(
    clusters: &Clusters,
    config: &Config,
    role: Role,
) -> Result<Arc<dyn Log>, LogError> {
    let cluster = clusters.cluster(&config.bootstrap_servers)?;
    let spec = TopicSpec {
        topics: config.topics.clone(),
        partitions: config.partitions,
        replication_factor: config.replication_factor,
        retention_ms: config.retention_ms,
        external: config.external || role == Role::Reader,
        content_mode: match config.content_mode {
            contract::ContentMode::Binary => ContentMode::Binary,
            contract::ContentMode::Structured => ContentMode::Structured,
        },
        foreign_source: config.foreign_source.clone(),
        writable: role != Role::Reader,
        // Brokers and channels own their topics; a sink's topic is for others to read.
        owned: !config.external && role == Role::Owner,
    };
    cluster.open_log(spec).await
}
