//! One Kafka cluster as Knit uses it: a shared idempotent producer (one per cluster, as
//! Knative shares one per cluster and credentials) and an admin client, created on first use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureProducer;

use super::binding::ContentMode;
use super::log::KafkaLog;
use crate::log::{BoxError, Log, LogError};

/// How long admin requests and metadata look-ups may take.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a produced event may take to be acknowledged before the ingress answers 503.
pub(crate) const DELIVERY_TIMEOUT_MS: &str = "10000";
/// Events the producer queues locally before the ingress answers 429.
const PRODUCE_QUEUE_EVENTS: &str = "20000";

/// What a log needs of its topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicSpec {
    /// The topics (one, except for a source).
    pub(crate) topics: Vec<String>,
    /// Partitions of a topic Knit creates.
    pub(crate) partitions: i32,
    /// Replication factor of a topic Knit creates.
    pub(crate) replication_factor: i32,
    /// `retention.ms` of a topic Knit creates.
    pub(crate) retention_ms: Option<i64>,
    /// The topics must exist already: never created (nor deleted).
    pub(crate) external: bool,
    /// How events are written.
    pub(crate) content_mode: ContentMode,
    /// `source` of events made from records that are not CloudEvents (`#<topic>` appended).
    pub(crate) foreign_source: String,
    /// Whether the ingress appends (false for sources, which only read).
    pub(crate) writable: bool,
    /// The topics are the log's: deleted by [`Log::destroy`].
    pub(crate) owned: bool,
}

/// The clusters this process talks to, by `bootstrap.servers`.
pub(crate) struct Clusters {
    client_id: String,
    by_bootstrap: Mutex<HashMap<String, Arc<Cluster>>>,
}

impl Clusters {
    /// No clusters yet; clients identify as `client_id`.
    pub(crate) fn new(client_id: String) -> Self {
        Self {
            client_id,
            by_bootstrap: Mutex::new(HashMap::new()),
        }
    }

    /// The cluster at `bootstrap` (clients are created once and shared).
    pub(crate) fn cluster(&self, bootstrap: &str) -> Result<Arc<Cluster>, LogError> {
        let mut map = self.by_bootstrap.lock();
        if let Some(c) = map.get(bootstrap) {
            return Ok(c.clone());
        }
        let c = Arc::new(Cluster::new(bootstrap, &self.client_id)?);
        map.insert(bootstrap.to_string(), c.clone());
        Ok(c)
    }
}

/// Clients of one cluster.
pub(crate) struct Cluster {
    bootstrap: String,
    client_id: String,
    pub(crate) producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
}

pub(crate) fn backend(doing: impl Into<String>, e: impl Into<BoxError>) -> LogError {
    LogError::backend(doing, e)
}

impl Cluster {
    fn new(bootstrap: &str, client_id: &str) -> Result<Self, LogError> {
        let base = base_config(bootstrap, client_id);
        let mut producer = base.clone();
        producer
            // Idempotence implies acks=all and at most 5 requests in flight, and keeps a
            // partition's order across retries (Knative turns it off).
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", DELIVERY_TIMEOUT_MS)
            .set("queue.buffering.max.messages", PRODUCE_QUEUE_EVENTS)
            .set("message.max.bytes", "16777216");
        let producer: FutureProducer = producer
            .create()
            .map_err(|e| backend("cannot create the Kafka producer", e))?;
        let admin: AdminClient<DefaultClientContext> = base
            .create()
            .map_err(|e| backend("cannot create the Kafka admin client", e))?;
        Ok(Self {
            bootstrap: bootstrap.to_string(),
            client_id: client_id.to_string(),
            producer,
            admin,
        })
    }

    /// Settings every client of this cluster starts from.
    pub(crate) fn base_config(&self) -> ClientConfig {
        base_config(&self.bootstrap, &self.client_id)
    }

    /// Create `topics` with `partitions` and `replication` (and `config`) where missing.
    pub(crate) async fn create_topics(
        &self,
        topics: &[String],
        partitions: i32,
        replication: i32,
        config: &[(&str, &str)],
    ) -> Result<(), LogError> {
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic {
                name: t,
                num_partitions: partitions.max(1),
                replication: TopicReplication::Fixed(replication.max(1)),
                config: config.to_vec(),
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = tokio::time::timeout(ADMIN_TIMEOUT, self.admin.create_topics(&new, &opts))
            .await
            .map_err(|_| backend("creating topics", "timed out (is the cluster reachable?)"))?
            .map_err(|e| backend("creating topics", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(backend(format!("creating topic {topic}"), code));
                }
            }
        }
        Ok(())
    }

    /// Whether every topic exists (for topics Knit must not create). The metadata of all
    /// topics is read: asking for one by name lets brokers with auto-creation create it.
    async fn check_topics(self: &Arc<Self>, topics: &[String]) -> Result<(), LogError> {
        let me = self.clone();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            let md = me
                .producer
                .client()
                .fetch_metadata(None, ADMIN_TIMEOUT)
                .map_err(|e| backend("reading the cluster's metadata", e))?;
            for t in &topics {
                let ok = md
                    .topics()
                    .iter()
                    .any(|m| m.name() == t && m.error().is_none() && !m.partitions().is_empty());
                if !ok {
                    return Err(LogError::NoTopic(t.clone()));
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| backend("checking topics", e))?
    }

    /// Open the log over `spec`'s topics, creating them unless they are external.
    pub(crate) async fn open_log(
        self: &Arc<Self>,
        spec: TopicSpec,
    ) -> Result<Arc<dyn Log>, LogError> {
        if spec.external {
            self.check_topics(&spec.topics).await?;
        } else {
            let retention = spec.retention_ms.map(|ms| ms.to_string());
            let mut config: Vec<(&str, &str)> = Vec::new();
            if let Some(r) = &retention {
                config.push(("retention.ms", r.as_str()));
            }
            self.create_topics(
                &spec.topics,
                spec.partitions,
                spec.replication_factor,
                &config,
            )
            .await?;
        }
        Ok(Arc::new(KafkaLog::new(self.clone(), spec)))
    }

    /// Delete `topics` (missing ones are fine).
    pub(crate) async fn delete_topics(&self, topics: &[String]) -> Result<(), LogError> {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = tokio::time::timeout(ADMIN_TIMEOUT, self.admin.delete_topics(&names, &opts))
            .await
            .map_err(|_| backend("deleting topics", "timed out"))?
            .map_err(|e| backend("deleting topics", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(backend(format!("deleting topic {topic}"), code));
                }
            }
        }
        Ok(())
    }

    /// Delete a consumer group (missing is fine).
    pub(crate) async fn delete_group(&self, group: &str) -> Result<(), LogError> {
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results =
            tokio::time::timeout(ADMIN_TIMEOUT, self.admin.delete_groups(&[group], &opts))
                .await
                .map_err(|_| backend("deleting a consumer group", "timed out"))?
                .map_err(|e| backend("deleting a consumer group", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((g, code)) => return Err(backend(format!("deleting group {g}"), code)),
            }
        }
        Ok(())
    }
}

fn base_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("socket.nagle.disable", "true")
        // Local single-node clusters (and CI) come and go: keep reconnects quick.
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "10000");
    c
}
