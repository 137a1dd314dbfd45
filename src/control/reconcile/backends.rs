//! Which log each Broker and channel gets, and the names Knative gives Kafka topics and
//! consumer groups (eventing-kafka-broker `config-kafka-features`):
//!
//! - Broker class `Kafka` (or `KafkaNamespaced`): topic `knative-broker-<ns>-<name>`, or the
//!   topic named by `kafka.eventing.knative.dev/external.topic` (never created nor deleted);
//!   `bootstrap.servers`, `default.topic.partitions` (default 10) and
//!   `default.topic.replication.factor` (default 1 here: one local broker) from the ConfigMap
//!   in `spec.config` (default `knative-eventing/kafka-broker-config`); `--kafka` supplies the
//!   bootstrap servers when the ConfigMap has none.
//! - `MTChannelBasedBroker`: in memory, unless its channel template is a KafkaChannel or
//!   `knit run --kafka` made Kafka the default (then as a Kafka broker with that bootstrap).
//! - KafkaChannel: topic `knative-messaging-kafka.<ns>.<name>`, `numPartitions` (1),
//!   `replicationFactor` (1), `retentionDuration` (PT168H) as `retention.ms`; bootstrap from
//!   `knative-eventing/kafka-channel-config` or `--kafka`.
//! - Groups: Triggers `knative-trigger-<ns>-<name>`; channel Subscriptions
//!   `kafka.<ns>.<channel>.<subscription UID>`.

use std::collections::BTreeMap;

use knit_channels::{BackendKind, NotBuilt};
use knit_crds::api::duck::KReference;
use knit_crds::api::messaging::KafkaChannelSpec;
use knit_crds::contract::{Backend, ContentMode, KafkaLog};
use knit_crds::{Kind, Object, ObjectKey, duration, names};

use super::World;
use super::conditions::Conditions;

/// Default partitions of a Kafka broker's topic (Knative's `kafka-broker-config`).
const DEFAULT_BROKER_PARTITIONS: i32 = 10;
/// The ConfigMap with a KafkaChannel's bootstrap servers.
const CHANNEL_CONFIG: &str = "kafka-channel-config";
/// Default KafkaChannel retention (Knative's `PT168H`).
const DEFAULT_RETENTION_MS: i64 = 168 * 3600 * 1000;

/// Why an object has no log.
pub(crate) struct NoBackend {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

fn no_backend(reason: &'static str, message: impl Into<String>) -> NoBackend {
    NoBackend {
        reason,
        message: message.into(),
    }
}

fn config_map<'a>(
    world: &'a World<'_>,
    ns: &str,
    name: &str,
) -> Option<&'a std::collections::BTreeMap<String, String>> {
    match world
        .objects
        .get(&ObjectKey::new(Kind::ConfigMap, ns, name))
    {
        Some(Object::ConfigMap(cm)) => cm.data.as_ref(),
        _ => None,
    }
}

/// `Err` (reason `BackendNotBuilt`, the message naming the cargo feature) when this knit was
/// built without the backend `kind`.
pub(crate) fn not_built(kind: BackendKind) -> Result<(), NoBackend> {
    NotBuilt::check(kind).map_err(|e| no_backend("BackendNotBuilt", e.to_string()))
}

/// The `source` of events made from records that are not CloudEvents.
fn foreign_source(kind: Kind, ns: &str, name: &str) -> String {
    format!("/apis/v1/namespaces/{ns}/{}/{name}", kind.plural())
}

/// Whether Brokers of `class` are Knative's Kafka brokers.
pub(crate) fn is_kafka_class(class: &str) -> bool {
    class == names::KAFKA_BROKER_CLASS || class == names::KAFKA_NAMESPACED_BROKER_CLASS
}

/// The ConfigMap a Kafka Broker reads: its `spec.config` (namespace defaulting to the Broker's)
/// for the Kafka classes, else the system-wide `kafka-broker-config`.
fn broker_config_map(
    key: &ObjectKey,
    kafka_class: bool,
    config: Option<&KReference>,
) -> (String, String) {
    match (kafka_class, config) {
        (true, Some(r)) => (
            r.namespace.clone().unwrap_or_else(|| key.namespace.clone()),
            r.name.clone().unwrap_or_default(),
        ),
        _ => (
            names::SYSTEM_NAMESPACE.to_string(),
            names::KAFKA_BROKER_CONFIG.to_string(),
        ),
    }
}

/// The backend of a Broker of `class` with `spec.config` `config`.
pub(crate) fn broker(
    world: &World<'_>,
    key: &ObjectKey,
    class: &str,
    config: Option<&KReference>,
    channel_template_kind: Option<&str>,
) -> Result<Backend, NoBackend> {
    let kafka_class = is_kafka_class(class);
    let wants_kafka = kafka_class
        || channel_template_kind == Some("KafkaChannel")
        || (class == names::DEFAULT_BROKER_CLASS && world.env.kafka.is_some());
    if !wants_kafka {
        return Ok(Backend::Memory);
    }
    not_built(BackendKind::Kafka)?;
    let (cm_ns, cm_name) = broker_config_map(key, kafka_class, config);
    let data = config_map(world, &cm_ns, &cm_name);
    if kafka_class && config.is_some() && data.is_none() && world.env.kafka.is_none() {
        return Err(no_backend(
            "ConfigMapNotFound",
            format!("ConfigMap {cm_ns}/{cm_name} does not exist (and knit runs without --kafka)"),
        ));
    }
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|v| v.trim().to_string());
    let Some(bootstrap) = get(names::KAFKA_BOOTSTRAP_SERVERS_KEY)
        .filter(|s| !s.is_empty())
        .or_else(|| world.env.kafka.clone())
    else {
        return Err(no_backend(
            "BootstrapServersNotConfigured",
            format!(
                "no bootstrap servers: set bootstrap.servers in ConfigMap {cm_ns}/{cm_name} or run knit with --kafka"
            ),
        ));
    };
    let int = |k: &str, default: i32| -> Result<i32, NoBackend> {
        match get(k) {
            None => Ok(default),
            Some(v) => v.parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                no_backend(
                    "ConfigInvalid",
                    format!(
                        "ConfigMap {cm_ns}/{cm_name}: {k} must be a positive integer, not {v:?}"
                    ),
                )
            }),
        }
    };
    let external = world
        .objects
        .get(key)
        .and_then(|o| o.meta().annotations.as_ref())
        .and_then(|a| a.get(names::EXTERNAL_TOPIC_ANNOTATION))
        .cloned();
    Ok(Backend::Kafka(KafkaLog {
        bootstrap_servers: bootstrap,
        topics: vec![
            external
                .clone()
                .unwrap_or_else(|| format!("knative-broker-{}-{}", key.namespace, key.name)),
        ],
        partitions: int(
            names::KAFKA_DEFAULT_TOPIC_PARTITIONS_KEY,
            DEFAULT_BROKER_PARTITIONS,
        )?,
        replication_factor: int(names::KAFKA_DEFAULT_TOPIC_REPLICATION_FACTOR_KEY, 1)?,
        retention_ms: None,
        external: external.is_some(),
        content_mode: ContentMode::Binary,
        foreign_source: foreign_source(Kind::Broker, &key.namespace, &key.name),
    }))
}

/// The backend of a KafkaChannel.
pub(crate) fn kafka_channel(
    world: &World<'_>,
    key: &ObjectKey,
    spec: &KafkaChannelSpec,
) -> Result<Backend, NoBackend> {
    not_built(BackendKind::Kafka)?;
    let bootstrap = config_map(world, names::SYSTEM_NAMESPACE, CHANNEL_CONFIG)
        .and_then(|d| d.get(names::KAFKA_BOOTSTRAP_SERVERS_KEY))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| world.env.kafka.clone())
        .ok_or_else(|| {
            no_backend(
                "BootstrapServersNotConfigured",
                format!(
                    "no bootstrap servers: set bootstrap.servers in ConfigMap {}/{CHANNEL_CONFIG} or run knit with --kafka",
                    names::SYSTEM_NAMESPACE
                ),
            )
        })?;
    let retention_ms = match spec.retention_duration.as_deref() {
        None => DEFAULT_RETENTION_MS,
        Some(d) => duration::parse_iso8601(d)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(DEFAULT_RETENTION_MS),
    };
    Ok(Backend::Kafka(KafkaLog {
        bootstrap_servers: bootstrap,
        topics: vec![format!(
            "knative-messaging-kafka.{}.{}",
            key.namespace, key.name
        )],
        partitions: spec.num_partitions.unwrap_or(1).max(1),
        replication_factor: spec.replication_factor.unwrap_or(1).max(1),
        retention_ms: Some(retention_ms),
        external: false,
        content_mode: ContentMode::Binary,
        foreign_source: foreign_source(Kind::KafkaChannel, &key.namespace, &key.name),
    }))
}

/// A Trigger's consumer group.
pub(crate) fn trigger_group(ns: &str, name: &str) -> String {
    format!("knative-trigger-{ns}-{name}")
}

/// A channel Subscription's consumer group.
pub(crate) fn subscription_group(ns: &str, channel: &str, uid: &str) -> String {
    format!("kafka.{ns}.{channel}.{uid}")
}

/// Set `type_` from what the data plane reported for the object `uid`: True once it runs,
/// False with the data plane's reason, Unknown (`waiting`) before any report. Returns the
/// report's status annotations.
pub(crate) fn data_plane(
    world: &World<'_>,
    uid: Option<&str>,
    type_: &str,
    waiting: &str,
    c: &mut Conditions,
) -> BTreeMap<String, String> {
    match uid.and_then(|u| world.report.objects.get(u)) {
        Some(r) if r.ready => {
            c.ok(type_);
            r.annotations.clone()
        }
        Some(r) => {
            c.fail(type_, &r.reason, r.message.clone());
            BTreeMap::new()
        }
        None => {
            c.unknown(type_, waiting, "waiting for the data plane");
            BTreeMap::new()
        }
    }
}

/// The `KeepingUp` condition of an egress on a bounded (memory) log: False once events were
/// shed because its subscriber fell too far behind. It does not affect `Ready`.
pub(crate) fn keeping_up(world: &World<'_>, uid: Option<&str>, c: &mut Conditions) {
    let Some(r) = uid.and_then(|u| world.report.objects.get(u)) else {
        return;
    };
    if r.shed == 0 {
        c.warning("KeepingUp", true, "", "");
    } else {
        c.warning(
            "KeepingUp",
            false,
            "EventsShed",
            format!(
                "{} event(s) shed: the subscriber fell more than the log's capacity behind; they are counted in /api/v1/stats (annotation knit.dev/overflow: block makes the broker push back with 429 instead)",
                r.shed
            ),
        );
    }
}
