//! `eventing.knative.dev`: Broker, Trigger, EventType, KafkaSink.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duck::{Addressable, DeliverySpec, Destination, KReference, Status};
use super::schema_helpers::{preserve_object, preserve_object_list};

/// A Broker: an addressable event mesh that Triggers subscribe to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Broker",
    namespaced,
    derive = "PartialEq",
    status = "BrokerStatus",
    doc = "Broker collects a pool of events that are consumable using Triggers.",
    category = "all",
    category = "knative",
    category = "eventing",
    label("duck.knative.dev/addressable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BrokerSpec {
    /// Implementation-specific configuration (immutable), usually a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<KReference>,
    /// Delivery defaults for every Trigger of this Broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Broker status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Where to send events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Every address the Broker answers on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
    /// The resolved dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// The Ready EventPolicies that apply (OIDC on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AppliedEventPolicy>,
}

/// A Trigger: a filter on a Broker's events and where matching events go.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Trigger",
    namespaced,
    derive = "PartialEq",
    status = "TriggerStatus",
    doc = "Trigger represents a request to have events delivered to a subscriber from a Broker's event pool.",
    category = "all",
    category = "knative",
    category = "eventing",
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Broker", "type": "string", "jsonPath": ".spec.broker"}"#,
    printcolumn = r#"{"name": "Subscriber_URI", "type": "string", "jsonPath": ".status.subscriberUri"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSpec {
    /// Name of the Broker in the Trigger's namespace (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// Reference to a Broker, possibly in another namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_ref: Option<KReference>,
    /// Legacy attribute filter: every listed attribute must equal its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<TriggerFilter>,
    /// Subscriptions API filters (ANDed); when set they replace `filter`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
    /// Where matching events are delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<Destination>,
    /// Delivery options; when set they replace the Broker's as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Legacy Trigger filter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct TriggerFilter {
    /// Attribute name to exact value; `""` matches any non-empty value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One CloudEvents Subscriptions API filter expression. Exactly one dialect must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsApiFilter {
    /// True when every sub-filter is true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_object_list")]
    pub all: Vec<SubscriptionsApiFilter>,
    /// True when at least one sub-filter is true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_object_list")]
    pub any: Vec<SubscriptionsApiFilter>,
    /// Negation of a filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_object")]
    pub not: Option<Box<SubscriptionsApiFilter>>,
    /// Attributes that must equal these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exact: BTreeMap<String, String>,
    /// Attributes that must start with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prefix: BTreeMap<String, String>,
    /// Attributes that must end with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub suffix: BTreeMap<String, String>,
    /// A CloudEvents SQL expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cesql: Option<String>,
}

/// Trigger status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    #[serde(flatten)]
    pub status: Status,
    /// The resolved subscriber URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// The resolved dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
}

/// An EventType: a registry entry describing events a Broker, Channel or source carries.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1beta3",
    kind = "EventType",
    namespaced,
    derive = "PartialEq",
    status = "EventTypeStatus",
    doc = "EventType represents a type of event that can be consumed from a Broker or Channel.",
    category = "all",
    category = "knative",
    category = "eventing",
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeSpec {
    /// The Broker, Channel or source this type is available from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The CloudEvent attributes of this type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<EventAttributeDefinition>,
}

/// One attribute of an EventType.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct EventAttributeDefinition {
    /// Attribute name.
    pub name: String,
    /// Whether events must carry it.
    #[serde(default)]
    pub required: bool,
    /// The value, possibly a template with `{placeholders}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// EventType status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct EventTypeStatus {
    #[serde(flatten)]
    pub status: Status,
}

/// How a KafkaSink writes events into Kafka records.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KafkaContentMode {
    /// Binary mode: attributes as `ce_` headers, data as the value (Knative's default).
    #[default]
    Binary,
    /// Structured mode: the whole event as a JSON value.
    Structured,
}

/// A KafkaSink: an Addressable that writes every event it receives to a Kafka topic.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1alpha1",
    kind = "KafkaSink",
    namespaced,
    derive = "PartialEq",
    status = "KafkaSinkStatus",
    doc = "KafkaSink is an Addressable that writes every event it receives to a Kafka topic.",
    category = "all",
    category = "knative",
    category = "eventing",
    label("duck.knative.dev/addressable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSinkSpec {
    /// Topic events are written to (immutable).
    pub topic: String,
    /// Partitions of the topic when Knit creates it (immutable); without it and
    /// `replicationFactor` the topic must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_partitions: Option<i32>,
    /// Replication factor of the topic when Knit creates it (immutable; 1 to 32767, a Kafka
    /// int16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// Kafka bootstrap servers (`host:port`), at least one.
    pub bootstrap_servers: Vec<String>,
    /// `binary` (default) or `structured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_mode: Option<KafkaContentMode>,
    /// The Secret with SASL/TLS settings (stored; not used yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<KafkaSinkAuth>,
}

/// `auth` of a KafkaSink.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct KafkaSinkAuth {
    /// The Secret holding the settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<KafkaSinkSecret>,
}

/// `auth.secret` of a KafkaSink.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct KafkaSinkSecret {
    /// Reference to the Secret in the KafkaSink's namespace.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<KafkaSinkSecretRef>,
}

/// `auth.secret.ref` of a KafkaSink.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct KafkaSinkSecretRef {
    /// Secret name.
    pub name: String,
}

/// KafkaSink status: Addressable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSinkStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Where to send events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Every address the KafkaSink answers on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
    /// The Ready EventPolicies that apply (OIDC on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AppliedEventPolicy>,
}

/// An EventPolicy: who may send events to which targets, when OIDC is on (Knative's
/// `eventing.knative.dev/v1alpha1` EventPolicy).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1alpha1",
    kind = "EventPolicy",
    namespaced,
    derive = "PartialEq",
    status = "EventPolicyStatus",
    doc = "EventPolicy represents a policy for addressable resources (Broker, Channel, sinks).",
    category = "all",
    category = "knative",
    category = "eventing",
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EventPolicySpec {
    /// The targets (in the policy's namespace); empty: every target in the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<EventPolicyToReference>,
    /// The senders allowed; empty: nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<EventPolicyFromReference>,
    /// Filters (Subscriptions API dialects) an event must pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
}

/// One `to` entry: a reference or a selector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventPolicyToReference {
    /// A target in the policy's namespace.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<EventPolicyReference>,
    /// Targets of a kind whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<EventPolicySelector>,
}

/// A reference to a target or a sender.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventPolicyReference {
    /// API version, e.g. `eventing.knative.dev/v1`.
    #[serde(default)]
    pub api_version: String,
    /// Kind, e.g. `Broker`.
    #[serde(default)]
    pub kind: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (senders only; defaults to the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Targets of a kind selected by labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventPolicySelector {
    /// API version of the kind.
    #[serde(default)]
    pub api_version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Labels that must all be equal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Label expressions (`In`, `NotIn`, `Exists`, `DoesNotExist`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelExpression>,
}

/// One label selector expression.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct LabelExpression {
    /// The label.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// One `from` entry: a sending object, or a subject pattern.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventPolicyFromReference {
    /// A sending object (its OIDC identity).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<EventPolicyReference>,
    /// A JWT subject; `*` only as the last character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

/// EventPolicy status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventPolicyStatus {
    #[serde(flatten)]
    pub status: Status,
    /// The subjects `from` resolves to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
}

/// One policy in a target's `status.policies`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppliedEventPolicy {
    /// `eventing.knative.dev/v1alpha1`.
    pub api_version: String,
    /// The policy's name.
    pub name: String,
}
