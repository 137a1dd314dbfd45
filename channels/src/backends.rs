//! Opening logs: the one factory the data plane goes through. It takes the Contract's
//! description of a log ([`knit_crds::contract::Backend`], which may carry a backend's own
//! configuration such as Kafka bootstrap servers and topics), keeps the clients each backend
//! shares between logs (one Kafka producer and admin client per cluster), and hands back an
//! `Arc<dyn Log>`. Which backends a build carries is decided by cargo features (`kafka`, on by
//! default; memory is always there); asking for one that is not built in fails with
//! [`NotBuilt`], which names the feature.
//!
//! A new backend is a sibling module of [`crate::memory`] behind its own feature, a variant of
//! the Contract's `Backend`, a [`BackendKind`], and one arm in each function here.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use knit_crds::contract::Backend;

use crate::log::{Log, LogError};
use crate::memory::{MemoryConfig, MemoryLog};

/// A backend a log can live on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// In memory (always built in).
    Memory,
    /// Kafka (cargo feature `kafka`).
    Kafka,
    /// NATS JetStream (cargo feature `nats`).
    Nats,
}

impl BackendKind {
    /// The backend `backend` names.
    pub fn of(backend: &Backend) -> Self {
        match backend {
            Backend::Memory => BackendKind::Memory,
            Backend::Kafka(_) => BackendKind::Kafka,
            Backend::Nats(_) => BackendKind::Nats,
        }
    }

    /// Its name, as messages give it.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Kafka => "Kafka",
            BackendKind::Nats => "NATS JetStream",
        }
    }

    /// The cargo feature that builds it in (`None`: always there).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            BackendKind::Memory => None,
            BackendKind::Kafka => Some("kafka"),
            BackendKind::Nats => Some("nats"),
        }
    }

    /// Whether this build carries it.
    pub fn built_in(self) -> bool {
        match self {
            BackendKind::Memory => true,
            BackendKind::Kafka => cfg!(feature = "kafka"),
            BackendKind::Nats => cfg!(feature = "nats"),
        }
    }
}

/// A backend the Contract names is not compiled into this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {} backend is not built into this knit (it needs the cargo feature `{}`)",
    .0.name(),
    .0.feature().unwrap_or_default()
)]
pub struct NotBuilt(pub BackendKind);

impl NotBuilt {
    /// `Err(NotBuilt)` unless `kind` is built in.
    pub fn check(kind: BackendKind) -> Result<(), NotBuilt> {
        if kind.built_in() {
            Ok(())
        } else {
            Err(NotBuilt(kind))
        }
    }
}

/// How its ingress uses a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Appends and owns the log's resources: creates them and, with [`Log::destroy`], deletes
    /// them (a Broker's or a channel's topic).
    Owner,
    /// Appends to resources that are someone else's: created when the configuration asks, never
    /// deleted (a KafkaSink's topic).
    Writer,
    /// Only reads resources that must exist already (a KafkaSource's topics).
    Reader,
}

/// A log to open.
#[derive(Clone, Copy, Debug)]
pub struct LogSpec<'a> {
    /// The backend and its configuration, from the Contract.
    pub backend: &'a Backend,
    /// UID of the owning object: a memory log belongs to one object, so a recreated object
    /// gets a fresh one.
    pub owner: &'a str,
    /// How the ingress uses it.
    pub role: Role,
}

/// Whether `a` and `b` describe the same log: the same memory log (same owner) or the same
/// durable resources (a recreated Broker hands its topic, and what it holds, over to its
/// successor).
pub fn same_log(a: &LogSpec<'_>, b: &LogSpec<'_>) -> bool {
    match (a.backend, b.backend) {
        (Backend::Memory, Backend::Memory) => a.owner == b.owner,
        (Backend::Kafka(x), Backend::Kafka(y)) => {
            x.bootstrap_servers == y.bootstrap_servers
                && x.topics == y.topics
                && x.external == y.external
                && x.content_mode == y.content_mode
        }
        (Backend::Nats(x), Backend::Nats(y)) => {
            x.url == y.url && x.stream == y.stream && x.subject == y.subject
        }
        _ => false,
    }
}

/// The log `backend` describes, for messages (`memory log`, `topic T on B`).
pub fn describe(backend: &Backend) -> String {
    match backend {
        Backend::Memory => "memory log".into(),
        Backend::Kafka(k) => format!("topic {} on {}", k.topics.join(","), k.bootstrap_servers),
        Backend::Nats(n) => format!("stream {} on {}", n.stream, redact_url(&n.url)),
    }
}

/// Server URLs (comma-separated) without the user, password or token they may carry, for
/// messages and status.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            if scheme.is_empty() {
                host.to_string()
            } else {
                format!("{scheme}://{host}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Opens logs, and keeps the clients their backends share.
pub struct Backends {
    memory: MemoryConfig,
    unrouted: Arc<AtomicU64>,
    #[cfg(feature = "kafka")]
    kafka: crate::kafka::Clusters,
    #[cfg(feature = "nats")]
    nats: crate::nats::Connections,
}

impl Backends {
    /// No clients yet. Memory logs get `memory` as bounds and add events no group wanted to
    /// `unrouted`; clients of remote backends identify as `client_id`.
    pub fn new(client_id: &str, memory: MemoryConfig, unrouted: Arc<AtomicU64>) -> Self {
        #[cfg(not(any(feature = "kafka", feature = "nats")))]
        let _ = client_id;
        Self {
            memory,
            unrouted,
            #[cfg(feature = "kafka")]
            kafka: crate::kafka::Clusters::new(client_id.to_string()),
            #[cfg(feature = "nats")]
            nats: crate::nats::Connections::new(client_id.to_string()),
        }
    }

    /// Open the log `spec` describes, creating what an owner or a writer needs (a topic)
    /// where missing, and checking that what a reader needs exists.
    pub async fn open(&self, spec: &LogSpec<'_>) -> Result<Arc<dyn Log>, LogError> {
        match spec.backend {
            Backend::Memory => Ok(
                MemoryLog::counting_unrouted(self.memory, self.unrouted.clone()) as Arc<dyn Log>,
            ),
            #[cfg(feature = "kafka")]
            Backend::Kafka(k) => crate::kafka::open(&self.kafka, k, spec.role).await,
            #[cfg(not(feature = "kafka"))]
            Backend::Kafka(_) => Err(NotBuilt(BackendKind::Kafka).into()),
            #[cfg(feature = "nats")]
            Backend::Nats(n) => crate::nats::open(&self.nats, n, spec.role).await,
            #[cfg(not(feature = "nats"))]
            Backend::Nats(_) => Err(NotBuilt(BackendKind::Nats).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knit_crds::contract::{ContentMode, KafkaLog};

    fn kafka(topic: &str) -> Backend {
        Backend::Kafka(KafkaLog {
            bootstrap_servers: "k:9092".into(),
            topics: vec![topic.into()],
            partitions: 1,
            replication_factor: 1,
            retention_ms: None,
            external: false,
            content_mode: ContentMode::Binary,
            foreign_source: String::new(),
        })
    }

    fn spec<'a>(backend: &'a Backend, owner: &'a str) -> LogSpec<'a> {
        LogSpec {
            backend,
            owner,
            role: Role::Owner,
        }
    }

    #[test]
    fn memory_logs_belong_to_their_owner_durable_ones_to_their_resources() {
        let (m, a, b) = (Backend::Memory, kafka("a"), kafka("b"));
        assert!(same_log(&spec(&m, "u1"), &spec(&m, "u1")));
        assert!(!same_log(&spec(&m, "u1"), &spec(&m, "u2")));
        assert!(
            same_log(&spec(&a, "u1"), &spec(&a, "u2")),
            "a topic outlives its owner"
        );
        assert!(!same_log(&spec(&a, "u1"), &spec(&b, "u1")));
        assert!(!same_log(&spec(&m, "u1"), &spec(&a, "u1")));
        assert_eq!(describe(&a), "topic a on k:9092");
        assert_eq!(
            redact_url("nats://u:p@h:4222, tls://tok@h2:4222,h3"),
            "nats://h:4222,tls://h2:4222,h3"
        );
    }

    #[tokio::test]
    async fn a_backend_not_built_in_is_refused_with_its_feature() {
        let backends = Backends::new("t", MemoryConfig::default(), Arc::default());
        let m = Backend::Memory;
        let log = backends.open(&spec(&m, "u")).await;
        assert!(log.is_ok_and(|l| !l.durable()));
        assert_eq!(
            NotBuilt(BackendKind::Kafka).to_string(),
            "the Kafka backend is not built into this knit (it needs the cargo feature `kafka`)"
        );
        if !BackendKind::Kafka.built_in() {
            let k = kafka("a");
            let err = backends.open(&spec(&k, "u")).await.err();
            assert!(
                matches!(err, Some(LogError::NotBuilt(NotBuilt(BackendKind::Kafka)))),
                "{err:?}"
            );
        }
    }
}
