//! Sources: `sources.knative.dev` PingSource, ApiServerSource, SinkBinding, ContainerSource,
//! GitHubSource, KafkaSource, and `events.cloud.google.com` CloudPubSubSource.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duck::{
    CloudEventOverrides, DeliverySpec, Destination, SecretKeySelector, SecretValueFromSource,
    SourceStatus,
};
use super::eventing::SubscriptionsApiFilter;

/// A source that sends an event on a cron schedule.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "PingSource",
    namespaced,
    derive = "PartialEq",
    status = "SourceStatus",
    doc = "PingSource sends a fixed event to a sink on a cron schedule.",
    category = "all",
    category = "knative",
    category = "sources",
    label("duck.knative.dev/source", "true"),
    label("knative.dev/crd-install", "true"),
    annotation(
        "registry.knative.dev/eventTypes",
        r#"[{ "type": "dev.knative.sources.ping" }]"#
    ),
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PingSourceSpec {
    /// Cron schedule (5 fields, optionally prefixed with `CRON_TZ=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Media type of `data` / `dataBase64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Event data as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Event data as base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Destination>,
    /// Extensions added to every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// A Kubernetes resource an ApiServerSource watches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiVersionKindSelector {
    /// API version of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// An owner kind filter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiVersionKind {
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A source of Kubernetes API events.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "ApiServerSource",
    namespaced,
    derive = "PartialEq",
    status = "ApiServerSourceStatus",
    doc = "ApiServerSource is an event source that brings Kubernetes API server events into Knative.",
    category = "all",
    category = "knative",
    category = "sources",
    label("duck.knative.dev/source", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiServerSourceSpec {
    /// Resources to watch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ApiVersionKindSelector>,
    /// Only objects owned by this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ApiVersionKind>,
    /// `Reference` (default) or `Resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Service account used to watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Namespaces to watch; defaults to the source's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Subscriptions API filters on outgoing events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
    /// Skip the permission check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_permissions: Option<bool>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Destination>,
    /// Extensions added to every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// ApiServerSource status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiServerSourceStatus {
    #[serde(flatten)]
    pub source: SourceStatus,
    /// Namespaces being watched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// The object a SinkBinding injects `K_SINK` into.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BindingSubject {
    /// API version of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the subject (or use `selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Label selector of the subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A binding that injects a sink URL into workloads.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "SinkBinding",
    namespaced,
    derive = "PartialEq",
    status = "SourceStatus",
    doc = "SinkBinding describes a Binding that is also a Source: it injects K_SINK into its subject.",
    category = "all",
    category = "knative",
    category = "sources",
    category = "bindings",
    label("duck.knative.dev/source", "true"),
    label("duck.knative.dev/binding", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SinkBindingSpec {
    /// The workloads to bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<BindingSubject>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Destination>,
    /// Extensions added to every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// A source that runs a container which sends events to `K_SINK`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "ContainerSource",
    namespaced,
    derive = "PartialEq",
    status = "SourceStatus",
    doc = "ContainerSource runs a container that sends events to the sink given in K_SINK.",
    category = "all",
    category = "knative",
    category = "sources",
    label("duck.knative.dev/source", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSourceSpec {
    /// The pod template to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Destination>,
    /// Extensions added to every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// A source of GitHub webhook events.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1alpha1",
    kind = "GitHubSource",
    namespaced,
    derive = "PartialEq",
    status = "GitHubSourceStatus",
    doc = "GitHubSource receives GitHub webhook deliveries and sends them on as CloudEvents.",
    category = "all",
    category = "knative",
    category = "sources",
    label("duck.knative.dev/source", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitHubSourceSpec {
    /// `owner/repository`, or just `owner` for an organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_and_repository: Option<String>,
    /// Webhook event names to receive, e.g. `pull_request`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// Secret holding the GitHub access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<SecretValueFromSource>,
    /// Secret holding the webhook secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_token: Option<SecretValueFromSource>,
    /// GitHub API URL (GitHub Enterprise).
    #[serde(
        rename = "githubAPIURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub github_api_url: Option<String>,
    /// Whether the webhook URL uses https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// Service account of the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Destination>,
    /// Extensions added to every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// GitHubSource status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GitHubSourceStatus {
    #[serde(flatten)]
    pub source: SourceStatus,
    /// ID of the webhook registered with GitHub.
    #[serde(
        rename = "webhookIDKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub webhook_id_key: Option<String>,
    /// Where GitHub posts deliveries (Knit's receiver on the ingress listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<super::duck::Addressable>,
    /// The EventPolicies that apply to the receiver (OIDC on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<super::eventing::AppliedEventPolicy>,
}

/// A source of Google Cloud Pub/Sub messages.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "events.cloud.google.com",
    version = "v1",
    kind = "CloudPubSubSource",
    namespaced,
    derive = "PartialEq",
    status = "CloudPubSubSourceStatus",
    doc = "CloudPubSubSource pulls messages from a Pub/Sub topic and sends them as CloudEvents.",
    category = "all",
    category = "knative",
    category = "sources",
    label("duck.knative.dev/source", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CloudPubSubSourceSpec {
    /// Topic ID to subscribe to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Google Cloud project; discovered when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Secret holding credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeySelector>,
    /// Kubernetes service account (workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// ISO-8601 or Go duration of the ack deadline (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_deadline: Option<String>,
    /// Keep acknowledged messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_acked_messages: Option<bool>,
    /// How long to keep messages (default 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_duration: Option<String>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Destination>,
    /// Extensions added to every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// A source of Kafka records, sent on as CloudEvents.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "KafkaSource",
    namespaced,
    derive = "PartialEq",
    status = "KafkaSourceStatus",
    doc = "KafkaSource reads records from Kafka topics and sends them to a sink as CloudEvents.",
    category = "all",
    category = "knative",
    category = "eventing",
    category = "sources",
    label("duck.knative.dev/source", "true"),
    label("eventing.knative.dev/source", "true"),
    label("knative.dev/crd-install", "true"),
    annotation(
        "registry.knative.dev/eventTypes",
        r#"[{ "type": "dev.knative.kafka.event" }]"#
    ),
    printcolumn = r#"{"name": "Topics", "type": "string", "jsonPath": ".spec.topics"}"#,
    printcolumn = r#"{"name": "BootstrapServers", "type": "string", "jsonPath": ".spec.bootstrapServers"}"#,
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSourceSpec {
    /// Consumers to run in the consumer group (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i32>,
    /// Kafka bootstrap servers (`host:port`), at least one.
    pub bootstrap_servers: Vec<String>,
    /// SASL and TLS settings of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<KafkaNetSpec>,
    /// Topics to read, at least one.
    pub topics: Vec<String>,
    /// Consumer group (immutable); defaulted to `knative-kafka-source-...` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Where a new consumer group starts: `earliest` or `latest` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_offset: Option<String>,
    /// Retries, backoff and dead-letter sink of deliveries to the sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    /// `ordered` (default: one event in flight per partition) or `unordered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<String>,
    /// Where events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Destination>,
    /// Extensions added to every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `net` of a KafkaSource: how to reach Kafka securely.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct KafkaNetSpec {
    /// SASL authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSaslSpec>,
    /// TLS encryption and client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTlsSpec>,
}

/// `net.sasl` of a KafkaSource; every value comes from a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSaslSpec {
    /// Whether SASL is used.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable: bool,
    /// The user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<SecretValueFromSource>,
    /// The password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretValueFromSource>,
    /// The mechanism: `PLAIN` (default), `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<SecretValueFromSource>,
    /// ARN of the IAM role to assume (`OAUTHBEARER` with an MSK token provider).
    #[serde(rename = "roleARN", default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<SecretValueFromSource>,
    /// The `OAUTHBEARER` token provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_provider: Option<SecretValueFromSource>,
}

/// `net.tls` of a KafkaSource; every value comes from a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTlsSpec {
    /// Whether TLS is used.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable: bool,
    /// The client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<SecretValueFromSource>,
    /// The client key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretValueFromSource>,
    /// The CA certificate of the servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<SecretValueFromSource>,
}

/// KafkaSource status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSourceStatus {
    #[serde(flatten)]
    pub source: SourceStatus,
    /// Consumers actually running in the consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i32>,
}

/// The status of a CloudPubSubSource: the common source status plus its pull subscription.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CloudPubSubSourceStatus {
    #[serde(flatten)]
    pub source: SourceStatus,
    /// The project of the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The pull subscription Knit created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
}
