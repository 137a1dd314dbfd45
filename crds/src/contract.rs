//! The Contract: everything the data plane needs to know, as one plain serde value.
//!
//! The control plane computes it from resources (a pure function) and hands it to the data
//! plane, which applies the difference. In one process it travels through a channel; in a
//! cluster it is published as a ConfigMap. Nothing here refers to Knative kinds except by name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::duck::DeliveryFormat;
use crate::api::eventing::{SubscriptionsApiFilter, TriggerFilter};

pub mod serving;
mod source;

pub use source::{
    Adapter, ApiServerAdapter, ApiServerMode, ContainerAdapter, GitHubAdapter, PingAdapter,
    Process, PubSubAdapter, Source, WatchedResource,
};

/// The whole data-plane configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// Increases with every change.
    pub generation: u64,
    /// Every ingress (a Broker or a channel) and what consumes its log.
    pub ingresses: Vec<Ingress>,
    /// Every event source with a resolved sink.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Revisions and routes (serving).
    #[serde(default)]
    pub serving: serving::Serving,
    /// Which ingress listeners answer: plain HTTP, HTTPS or both.
    #[serde(default, skip_serializing_if = "TransportEncryption::is_disabled")]
    pub transport_encryption: TransportEncryption,
    /// `authentication-oidc` is enabled: deliveries carry tokens, ingresses check them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oidc: bool,
}

/// Knative's `default-authorization-mode` (ConfigMap `knative-eventing/config-features`): who
/// may send to a target no EventPolicy applies to, when OIDC is on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum AuthorizationMode {
    /// Any authenticated sender.
    AllowAll,
    /// Senders whose subject is a ServiceAccount of the target's namespace (Knative's default).
    #[default]
    AllowSameNamespace,
    /// Nobody.
    DenyAll,
}

impl AuthorizationMode {
    /// The mode a `config-features` value names (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "allow-all" => Some(Self::AllowAll),
            "allow-same-namespace" => Some(Self::AllowSameNamespace),
            "deny-all" => Some(Self::DenyAll),
            _ => None,
        }
    }

    /// Knative's spelling in status messages (`Allow-Same-Namespace`).
    pub fn shown(self) -> &'static str {
        match self {
            Self::AllowAll => "Allow-All",
            Self::AllowSameNamespace => "Allow-Same-Namespace",
            Self::DenyAll => "Deny-All",
        }
    }
}

/// Who may send to an ingress when OIDC is on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressAuth {
    /// The audience tokens must carry (`status.address.audience`).
    pub audience: String,
    /// The Ready EventPolicies that apply (by name); empty: `default_mode` decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyRule>,
    /// `default-authorization-mode`.
    #[serde(default)]
    pub default_mode: AuthorizationMode,
}

/// One EventPolicy as an ingress applies it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// The EventPolicy's name.
    pub name: String,
    /// Subjects allowed (`status.from`): exact, or a prefix ending in `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Filters the event must pass (Subscriptions API dialects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
}

/// The identity an egress sends with, and the audiences of its destinations (OIDC on).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EgressAuth {
    /// The JWT `sub`: `system:serviceaccount:<ns>:<name>-oidc-<group>-<kind>`.
    pub subject: String,
    /// The subscriber's audience; `None` sends no token to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    /// The reply target's audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_audience: Option<String>,
    /// The dead-letter sink's audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
}

/// Knative's `transport-encryption` (ConfigMap `knative-eventing/config-features`): which of
/// the ingress's listeners answer; the other answers 404, as Knative's do (a 404 is retried
/// by senders that see the flag change later than the ingress).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum TransportEncryption {
    /// Plain HTTP only: the HTTPS listener answers 404; addresses are `http://`.
    #[default]
    Disabled,
    /// Both: `status.address` stays `http://`, `status.addresses` lists `https` first.
    Permissive,
    /// HTTPS only: the plain listener answers 404; addresses are `https://`.
    Strict,
}

impl TransportEncryption {
    /// The mode a `config-features` value names (case-insensitive, as Knative compares them).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(Self::Disabled),
            "permissive" => Some(Self::Permissive),
            "strict" => Some(Self::Strict),
            _ => None,
        }
    }

    /// Whether the plain HTTP listener answers.
    pub fn serves_plain(self) -> bool {
        self != Self::Strict
    }

    /// Whether the HTTPS listener answers.
    pub fn serves_tls(self) -> bool {
        self != Self::Disabled
    }

    fn is_disabled(&self) -> bool {
        *self == Self::Disabled
    }
}

/// What kind of object an ingress belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum IngressKind {
    /// A Broker: events are matched against Trigger filters.
    Broker,
    /// A channel: every subscription gets every event.
    Channel,
    /// A KafkaSink: what is posted is written to its topic; nothing consumes it here.
    Sink,
    /// A KafkaSource: no HTTP address; its egress reads existing topics.
    Source,
}

/// Where an ingress keeps its events.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Backend {
    /// In memory: fast, lost on restart.
    Memory,
    /// A Kafka topic (or, for a source, topics).
    Kafka(KafkaLog),
    /// A NATS JetStream stream.
    Nats(NatsLog),
}

/// A log kept in a NATS JetStream stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct NatsLog {
    /// Server URL(s), comma-separated (`nats://host:4222`); a user and password or a token may
    /// be given in the URL.
    pub url: String,
    /// The stream (`KN_BROKER_<NS>__<NAME>`, `KN_<NS>__<NAME>`).
    pub stream: String,
    /// The subject events are published to; the stream's only subject.
    pub subject: String,
    /// Storage of a stream Knit creates.
    #[serde(default)]
    pub storage: NatsStorage,
    /// Replicas of a stream Knit creates (1 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `max_age` of a stream Knit creates, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<i64>,
    /// `max_msgs` of a stream Knit creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msgs: Option<i64>,
    /// `max_bytes` of a stream Knit creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// `duplicate_window` of a stream Knit creates, in milliseconds (the server's 2 min when
    /// unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window_ms: Option<i64>,
    /// How events are written.
    #[serde(default)]
    pub content_mode: ContentMode,
    /// A credentials file (JWT and NKey seed) to connect with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_file: Option<String>,
    /// A CA file (PEM) to verify the servers' TLS certificates with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Where a JetStream stream keeps its messages.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum NatsStorage {
    /// On disk (eventing-natss's default).
    #[default]
    File,
    /// In the server's memory.
    Memory,
}

/// A log kept in Kafka.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct KafkaLog {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// The topics: one for brokers, channels and sinks; a source's list.
    pub topics: Vec<String>,
    /// Partitions of a topic Knit creates.
    pub partitions: i32,
    /// Replication factor of a topic Knit creates.
    pub replication_factor: i32,
    /// `retention.ms` of a topic Knit creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    /// The topic exists already and belongs to someone else: never created or deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// How events are written.
    #[serde(default)]
    pub content_mode: ContentMode,
    /// The `source` given to records that are not CloudEvents (`<object path>#<topic>`
    /// appends the topic).
    pub foreign_source: String,
}

/// How an event is written to a Kafka record.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum ContentMode {
    /// Attributes in `ce_` headers, data as the value.
    #[default]
    Binary,
    /// The whole event as JSON in the value.
    Structured,
}

/// In what order an egress delivers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Ordering {
    /// Concurrently, up to the in-flight limit.
    #[default]
    Unordered,
    /// One delivery in flight per partition (retries included).
    Ordered,
    /// One delivery in flight per key (`partitionkey`), keys in parallel.
    OrderedByKey,
}

/// What a bounded log does when this egress falls behind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Overflow {
    /// Shed the egress's oldest waiting events (counted and shown in its status).
    #[default]
    Shed,
    /// Push back on the ingress (429) until the egress catches up.
    Block,
}

/// Where a new consumer group starts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum StartAt {
    /// Events appended after the egress turned Ready.
    #[default]
    Latest,
    /// Everything the log retains.
    Earliest,
}

/// One address events are posted to, its log, and the egresses reading that log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    /// UID of the owning object; a recreated object gets a fresh log.
    pub uid: String,
    /// Broker or channel.
    pub kind: IngressKind,
    /// Namespace of the owning object.
    pub namespace: String,
    /// Name of the owning object.
    pub name: String,
    /// URL path the ingress answers on, e.g. `/default/my-broker` (empty: no HTTP address).
    pub path: String,
    /// Host names (without port) that also select this ingress when the path is `/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The log behind it.
    pub backend: Backend,
    /// Triggers or subscriptions, each shared: the control plane, the data plane and each
    /// egress task hold the same one, so a Contract with 10,000 of them is not kept 3 times.
    pub egresses: Vec<std::sync::Arc<Egress>>,
    /// OIDC on: the audience and who may send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<IngressAuth>,
}

/// One consumer of an ingress's log: a Trigger or a Subscription.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    /// UID of the Trigger or Subscription.
    pub uid: String,
    /// The consumer group (Kafka `group.id`, as Knative names it).
    pub group: String,
    /// `Kind/namespace/name`, for logs and metrics.
    pub reference: String,
    /// Namespace of the Trigger or Subscription (sent as `Kn-Namespace`).
    pub namespace: String,
    /// Which events this egress takes (brokers only; channels take every event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<EgressFilter>,
    /// Where events go; `None` forwards each event straight to `reply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<String>,
    /// PEM CA certificates an `https://` subscriber is verified against, besides the system's
    /// and `knit run --ca-file`'s (the Destination's `CACerts`).
    #[serde(
        rename = "subscriberCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    /// Where replies go; `None` discards them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// Where undeliverable events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<String>,
    /// PEM CA certificates for an `https://` dead-letter sink (its Destination's `CACerts`).
    #[serde(
        rename = "deadLetterSinkCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_letter_sink_ca_certs: Option<String>,
    /// Retries, backoff, timeouts.
    pub delivery: DeliveryPolicy,
    /// Most deliveries in flight at once.
    pub max_in_flight: u32,
    /// Most deliveries started per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// Delivery order.
    #[serde(default)]
    pub ordering: Ordering,
    /// Bounded logs: what happens when this egress falls behind.
    #[serde(default)]
    pub overflow: Overflow,
    /// Where a new group starts.
    #[serde(default)]
    pub start: StartAt,
    /// OIDC on: the identity deliveries carry tokens for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<EgressAuth>,
}

/// A Trigger's filter, as written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EgressFilter {
    /// Legacy exact-match attributes (`""` = any non-empty value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<TriggerFilter>,
    /// Subscriptions API filters; when non-empty they replace `attributes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
}

/// Where an egress's replies go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// The URL replies are posted to.
    pub url: String,
    /// PEM CA certificates for an `https://` reply target (its Destination's `CACerts`).
    #[serde(rename = "CACerts", default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// Extension attributes of the original event copied onto the reply (a Broker carries its
    /// hop counter `knativebrokerttl` so reply loops end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carry: Vec<String>,
}

/// Backoff policy between retries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Backoff {
    /// Wait before retry k = delay × k.
    Linear,
    /// Wait before retry k = delay × 2^(k−1).
    Exponential,
}

/// Resolved delivery options of one egress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPolicy {
    /// Retries after the first attempt.
    pub retry: u32,
    /// Backoff policy; `None` retries without waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Base delay in milliseconds.
    pub backoff_delay_ms: u64,
    /// Cap of each wait in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_ms: Option<u64>,
    /// Per-attempt timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Longest `Retry-After` honoured in milliseconds; `None` ignores the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max_ms: Option<u64>,
    /// Force the egress format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DeliveryFormat>,
}

/// What the data plane made of a Contract, per object UID (ingresses and egresses): the
/// control plane reads it back into status, so an object is Ready only once the data plane is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// By UID.
    pub objects: BTreeMap<String, ObjectReport>,
}

/// The data plane's state of one object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    /// Running: the topic exists, the consumer group is positioned.
    pub ready: bool,
    /// Why not (CamelCase), when not ready.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What the data plane saw.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Status annotations to show (e.g. `group.id`, the topic).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Events shed because the egress fell behind (bounded logs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Contract {
    /// The ingress answering on `path`, if any.
    pub fn ingress(&self, path: &str) -> Option<&Ingress> {
        self.ingresses.iter().find(|i| i.path == path)
    }
}
