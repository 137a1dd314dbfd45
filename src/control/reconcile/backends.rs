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
//!   `kafka.<ns>.<channel>.<subscription name>` (Knative ends it with the Subscription's UID,
//!   which outlives a restart on Kubernetes; Knit gives objects loaded from files a new UID
//!   at every start, and a group named by it would be a new group after a restart, which
//!   starts at the end of the topic and never delivers what the old one had not).
//!
//! NATS JetStream (eventing-natss's names, kafka-nats.md §4.2, §5.1):
//!
//! - Broker class `NatsJetStreamBroker`, or `MTChannelBasedBroker` when `knit run --nats` made
//!   JetStream the default (and its channel template is not a KafkaChannel): stream
//!   `KN_BROKER_<NS>__<NAME>` (upper case, `-` and `.` as `_`), file storage, subject
//!   `<ns>.<name>._knative_broker.events`, on the `--nats` server (with `--nats-creds` and
//!   `--nats-ca`).
//! - Trigger groups on a JetStream Broker: the durable consumer `KN_TRIGGER_<ns>_<name>`
//!   (eventing-natss ends it with the Trigger's UID; Knit names it by the Trigger, as for
//!   KafkaChannel Subscriptions above, so that it is the same consumer after a restart).
//! - NatsJetStreamChannel: stream `KN_<NS>__<NAME>` (or `spec.stream.overrideName`), subject
//!   `<ns>.<name>._knative`; of `spec.stream.config` Knit honours `maxMsgs`, `maxBytes`,
//!   `maxAge`, `duplicateWindow` (Go durations), `storage` (`File`, `Memory`) and `replicas`,
//!   and refuses every other field (Ready=False `StreamConfigNotSupported`, naming it) rather
//!   than ignore it; a `consumerConfigTemplate` is refused the same way
//!   (`ConsumerConfigNotSupported`): Knit derives the consumers from the Subscriptions'
//!   delivery specs. Subscription groups: `KN_SUB_<ns>_<name>`. A generic Channel (and
//!   a default-class Broker) is a NatsJetStreamChannel under `knit run --nats`.

use std::collections::BTreeMap;

use knit_channels::{BackendKind, NotBuilt};
use knit_crds::api::duck::KReference;
use knit_crds::api::messaging::{KafkaChannelSpec, NatsJetStreamChannelSpec};
use knit_crds::contract::{Backend, ContentMode, KafkaLog, NatsLog, NatsStorage};
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

/// Whether Brokers of `class` are JetStream brokers.
pub(crate) fn is_nats_class(class: &str) -> bool {
    class == names::NATS_JETSTREAM_BROKER_CLASS
}

/// Whether Knit runs Brokers of `class`.
pub(crate) fn is_runnable_class(class: &str) -> bool {
    class == names::DEFAULT_BROKER_CLASS || is_kafka_class(class) || is_nats_class(class)
}

/// A JetStream stream name: `<prefix><NS>__<NAME>`, upper case, `-` and `.` as `_`.
pub(crate) fn nats_stream(prefix: &str, ns: &str, name: &str) -> String {
    let up = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect()
    };
    format!("{prefix}{}__{}", up(ns), up(name))
}

/// The backend of a JetStream Broker.
fn nats_broker(world: &World<'_>, key: &ObjectKey) -> Result<Backend, NoBackend> {
    not_built(BackendKind::Nats)?;
    let Some(nats) = &world.env.nats else {
        return Err(no_backend(
            "NatsNotConfigured",
            "no NATS server: run knit with --nats URL (or KNIT_NATS)",
        ));
    };
    Ok(Backend::Nats(NatsLog {
        url: nats.url.clone(),
        stream: nats_stream("KN_BROKER_", &key.namespace, &key.name),
        subject: format!("{}.{}._knative_broker.events", key.namespace, key.name),
        storage: NatsStorage::File,
        replicas: None,
        max_age_ms: None,
        max_msgs: None,
        max_bytes: None,
        duplicate_window_ms: None,
        content_mode: ContentMode::Binary,
        creds_file: nats.creds_file.clone(),
        ca_file: nats.ca_file.clone(),
    }))
}

/// The backend of a NatsJetStreamChannel.
pub(crate) fn nats_channel(
    world: &World<'_>,
    key: &ObjectKey,
    spec: &NatsJetStreamChannelSpec,
) -> Result<Backend, NoBackend> {
    let Backend::Nats(mut log) = nats_broker(world, key)? else {
        return Err(no_backend("NatsNotConfigured", "no NATS server"));
    };
    log.stream = nats_stream("KN_", &key.namespace, &key.name);
    log.subject = format!("{}.{}._knative", key.namespace, key.name);
    if let Some(t) = spec
        .consumer_config_template
        .as_ref()
        .filter(|t| !is_empty_json(t))
    {
        return Err(no_backend(
            "ConsumerConfigNotSupported",
            format!(
                "spec.consumerConfigTemplate ({t}) is not supported: Knit derives each Subscription's consumer from its delivery spec"
            ),
        ));
    }
    let Some(stream) = spec.stream.as_ref().and_then(|s| s.as_object()) else {
        return Ok(Backend::Nats(log));
    };
    for (field, value) in stream {
        match field.as_str() {
            "overrideName" => match value.as_str().filter(|s| valid_stream_name(s)) {
                Some(name) => log.stream = name.to_string(),
                None => {
                    return Err(stream_config(
                        field,
                        value,
                        "a stream name without . * > or spaces",
                    ));
                }
            },
            "config" => stream_settings(&mut log, value)?,
            _ => return Err(stream_config(field, value, "not supported")),
        }
    }
    Ok(Backend::Nats(log))
}

fn is_empty_json(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

fn valid_stream_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
}

fn stream_config(field: &str, value: &serde_json::Value, want: &str) -> NoBackend {
    no_backend(
        "StreamConfigNotSupported",
        format!("spec.stream.{field} ({value}): {want}"),
    )
}

/// Apply `spec.stream.config` (see the module documentation).
fn stream_settings(log: &mut NatsLog, config: &serde_json::Value) -> Result<(), NoBackend> {
    let Some(config) = config.as_object() else {
        return Err(stream_config("config", config, "an object"));
    };
    for (field, v) in config {
        let path = format!("config.{field}");
        let int = || {
            v.as_i64()
                .ok_or_else(|| stream_config(&path, v, "an integer"))
        };
        let millis = || {
            v.as_str()
                .and_then(|d| duration::parse_go(d).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok())
                .ok_or_else(|| stream_config(&path, v, "a duration such as 24h"))
        };
        match field.as_str() {
            "maxMsgs" => log.max_msgs = Some(int()?),
            "maxBytes" => log.max_bytes = Some(int()?),
            "maxAge" => log.max_age_ms = Some(millis()?),
            "duplicateWindow" => log.duplicate_window_ms = Some(millis()?),
            "replicas" => {
                log.replicas = Some(
                    int()
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| stream_config(&path, v, "a positive integer"))?,
                );
            }
            "storage" => {
                log.storage = match v.as_str() {
                    Some("File" | "file") => NatsStorage::File,
                    Some("Memory" | "memory") => NatsStorage::Memory,
                    _ => return Err(stream_config(&path, v, "File or Memory")),
                };
            }
            _ => return Err(stream_config(&path, v, "not supported by Knit")),
        }
    }
    Ok(())
}

/// A channel Subscription's consumer group on a NatsJetStreamChannel (`_` cannot be in a
/// Kubernetes name, so it separates the two unambiguously).
pub(crate) fn nats_subscription_group(ns: &str, name: &str) -> String {
    format!("KN_SUB_{ns}_{name}")
}

/// A Trigger's consumer group on a JetStream Broker.
pub(crate) fn nats_trigger_group(ns: &str, name: &str) -> String {
    format!("KN_TRIGGER_{ns}_{name}")
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
    let kafka_template = channel_template_kind == Some("KafkaChannel");
    let nats_default = world.env.nats.is_some() && !kafka_template;
    if is_nats_class(class)
        || channel_template_kind == Some("NatsJetStreamChannel")
        || (class == names::DEFAULT_BROKER_CLASS && nats_default)
    {
        return nats_broker(world, key);
    }
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

/// A channel Subscription's consumer group (named by the Subscription, not its UID: see the
/// module documentation).
pub(crate) fn subscription_group(ns: &str, channel: &str, subscription: &str) -> String {
    format!("kafka.{ns}.{channel}.{subscription}")
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
