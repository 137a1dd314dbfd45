//! `messaging.knative.dev`: Channel, InMemoryChannel, Subscription, KafkaChannel,
//! NatsJetStreamChannel.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duck::{Addressable, DeliverySpec, Destination, KReference, Status};
use super::schema_helpers::preserve_object;

/// The spec every channel implementation shares (the Channelable duck type).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelableSpec {
    /// Subscribers, filled in from Subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<SubscriberSpec>,
    /// Delivery defaults for every subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// One subscriber of a channel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberSpec {
    /// UID of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Generation of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// Where replies go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
    /// Delivery options of this subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// The status every channel implementation shares.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelableStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Where to send events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Every address of the channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
    /// Readiness of each subscriber.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<SubscriberStatus>,
    /// The resolved dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// The Ready EventPolicies that apply (OIDC on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<super::eventing::AppliedEventPolicy>,
}

/// Readiness of one subscriber in a channel's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberStatus {
    /// UID of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Generation of the Subscription this describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `True`, `False` or `Unknown`.
    pub ready: String,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The backing channel a generic Channel, Sequence or Parallel creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelTemplateSpec {
    /// API version of the channel implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the channel implementation, e.g. `InMemoryChannel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Spec passed to the implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_object")]
    pub spec: Option<serde_json::Value>,
}

/// A generic Channel whose implementation comes from `channelTemplate`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1",
    kind = "Channel",
    namespaced,
    derive = "PartialEq",
    status = "ChannelStatus",
    shortname = "ch",
    doc = "Channel represents a generic Channel backed by a channel implementation.",
    category = "all",
    category = "knative",
    category = "messaging",
    category = "channel",
    label("duck.knative.dev/addressable", "true"),
    label("messaging.knative.dev/subscribable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSpec {
    /// The implementation to create (immutable); defaults to the configured default channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    #[serde(flatten)]
    pub channelable: ChannelableSpec,
}

/// Channel status: the backing channel's address and subscribers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    #[serde(flatten)]
    pub channelable: ChannelableStatus,
    /// The backing channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<KReference>,
}

/// The in-memory channel: fast, not durable.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1",
    kind = "InMemoryChannel",
    namespaced,
    derive = "PartialEq",
    status = "ChannelableStatus",
    shortname = "imc",
    doc = "InMemoryChannel is a best-effort, non-durable Channel.",
    category = "all",
    category = "knative",
    category = "messaging",
    category = "channel",
    label("duck.knative.dev/addressable", "true"),
    label("messaging.knative.dev/subscribable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryChannelSpec {
    #[serde(flatten)]
    pub channelable: ChannelableSpec,
}

/// A Subscription: delivers a channel's events to a subscriber, and its replies onwards.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1",
    kind = "Subscription",
    namespaced,
    derive = "PartialEq",
    status = "SubscriptionStatus",
    shortname = "sub",
    doc = "Subscription routes events received on a Channel to a subscriber and its replies to a reply destination.",
    category = "all",
    category = "knative",
    category = "messaging",
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// The channel to subscribe to (immutable, same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<KReference>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<Destination>,
    /// Where the subscriber's replies go; replies are discarded without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
    /// Delivery options; when set they replace the channel's as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Subscription status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    #[serde(flatten)]
    pub status: Status,
    /// The resolved URLs the channel uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_subscription: Option<PhysicalSubscription>,
}

/// The resolved URLs of a Subscription.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalSubscription {
    /// Resolved subscriber URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// Resolved reply URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
    /// Resolved dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
}

/// A Kafka-backed channel.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1beta1",
    kind = "KafkaChannel",
    namespaced,
    derive = "PartialEq",
    status = "ChannelableStatus",
    shortname = "kc",
    doc = "KafkaChannel is a durable Channel backed by a Kafka topic.",
    category = "all",
    category = "knative",
    category = "messaging",
    category = "channel",
    label("duck.knative.dev/addressable", "true"),
    label("messaging.knative.dev/subscribable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaChannelSpec {
    /// Partitions of the topic (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_partitions: Option<i32>,
    /// Replication factor of the topic (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// ISO-8601 retention of the topic (default `PT168H`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_duration: Option<String>,
    #[serde(flatten)]
    pub channelable: ChannelableSpec,
}

/// A NATS JetStream-backed channel.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1alpha1",
    kind = "NatsJetStreamChannel",
    namespaced,
    derive = "PartialEq",
    status = "ChannelableStatus",
    shortname = "njsc",
    doc = "NatsJetStreamChannel is a durable Channel backed by a JetStream stream.",
    category = "all",
    category = "knative",
    category = "messaging",
    category = "channel",
    label("duck.knative.dev/addressable", "true"),
    label("messaging.knative.dev/subscribable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NatsJetStreamChannelSpec {
    /// Stream settings (`config`, `overrideName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_object")]
    pub stream: Option<serde_json::Value>,
    /// Consumer settings applied to every subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_object")]
    pub consumer_config_template: Option<serde_json::Value>,
    #[serde(flatten)]
    pub channelable: ChannelableSpec,
}
