//! Opening the log an ingress's Contract entry names: memory, or a Kafka topic.

use std::sync::Arc;

use knit_channels::kafka::{self, Clusters};
use knit_channels::{Log, LogError, MemoryLog};
use knit_crds::contract::{Backend, ContentMode, Ingress, IngressKind};

use super::Config;

/// A log ready for an ingress.
pub(crate) struct Opened {
    pub(crate) log: Arc<dyn Log>,
    /// Status annotations (the topic).
    pub(crate) annotations: Vec<(String, String)>,
    /// Kafka topics to delete once the ingress is gone and drained.
    pub(crate) owned_topics: Option<(Arc<kafka::Cluster>, Vec<String>)>,
}

/// Open (creating its topic if needed) the log of `ingress`.
pub(crate) async fn open(
    ingress: &Ingress,
    config: &Config,
    clusters: &Clusters,
    unrouted: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<Opened, LogError> {
    match &ingress.backend {
        Backend::Memory => Ok(Opened {
            log: MemoryLog::counting_unrouted(config.memory, unrouted.clone()),
            annotations: Vec::new(),
            owned_topics: None,
        }),
        Backend::Kafka(k) => {
            let cluster = clusters.cluster(&k.bootstrap_servers)?;
            let spec = kafka::TopicSpec {
                topics: k.topics.clone(),
                partitions: k.partitions,
                replication_factor: k.replication_factor,
                retention_ms: k.retention_ms,
                external: k.external || ingress.kind == IngressKind::Source,
                content_mode: match k.content_mode {
                    ContentMode::Binary => kafka::ContentMode::Binary,
                    ContentMode::Structured => kafka::ContentMode::Structured,
                },
                foreign_source: k.foreign_source.clone(),
                writable: ingress.kind != IngressKind::Source,
            };
            let log = cluster.open_log(spec).await?;
            // Brokers and channels own their topics; a sink's topic is for others to read.
            let owned = (!k.external
                && matches!(ingress.kind, IngressKind::Broker | IngressKind::Channel))
            .then(|| (cluster.clone(), k.topics.clone()));
            Ok(Opened {
                log,
                annotations: vec![("topic".to_string(), k.topics.join(","))],
                owned_topics: owned,
            })
        }
    }
}

/// Whether two Contract entries for the same address keep the same log: the same memory log
/// (same owner UID) or the same Kafka topics on the same cluster (a recreated Broker hands its
/// topic, and what it holds, over to its successor).
pub(crate) fn same_log(a: &Ingress, b: &Ingress) -> bool {
    match (&a.backend, &b.backend) {
        (Backend::Memory, Backend::Memory) => a.uid == b.uid,
        (Backend::Kafka(x), Backend::Kafka(y)) => {
            x.bootstrap_servers == y.bootstrap_servers
                && x.topics == y.topics
                && x.external == y.external
                && x.content_mode == y.content_mode
        }
        _ => false,
    }
}
