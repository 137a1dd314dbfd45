//! `serving.knative.dev`: Service, Configuration, Revision, Route, DomainMapping.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duck::{Addressable, KReference, Status};

/// A Revision's spec: a pod spec plus Knative's request limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    #[serde(flatten)]
    pub pod: PodSpec,
    /// Most requests in flight per replica (0 = no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,
    /// Most seconds a request may take (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Most seconds until the response starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start_timeout_seconds: Option<i64>,
    /// Most idle seconds of a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i64>,
}

/// The template every new Revision is stamped from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
pub struct RevisionTemplateSpec {
    /// Revision metadata: name, labels, annotations (autoscaling settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// Revision spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<RevisionSpec>,
}

/// A traffic target of a Route or Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// Tag giving the target its own URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A fixed Revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// A Configuration's latest ready Revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_name: Option<String>,
    /// Follow the latest ready Revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// Share of traffic, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// The tag's URL (status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A Knative Service: a Configuration plus a Route to its Revisions.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Service",
    namespaced,
    derive = "PartialEq",
    status = "ServiceStatus",
    shortname = "kservice",
    shortname = "ksvc",
    doc = "Service manages the whole lifecycle of an application: a Configuration and a Route.",
    category = "all",
    category = "knative",
    category = "serving",
    label("duck.knative.dev/addressable", "true"),
    label("duck.knative.dev/podspecable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "LatestCreated", "type": "string", "jsonPath": ".status.latestCreatedRevisionName"}"#,
    printcolumn = r#"{"name": "LatestReady", "type": "string", "jsonPath": ".status.latestReadyRevisionName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The Revision template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<RevisionTemplateSpec>,
    /// How traffic is split; defaults to 100% to the latest ready Revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// Service status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Public URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Cluster-local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Traffic as resolved to Revisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    /// Newest Revision that is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
    /// Newest Revision created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
}

/// A Configuration: stamps a new Revision on every template change.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Configuration",
    namespaced,
    derive = "PartialEq",
    status = "ConfigurationStatus",
    shortname = "config",
    shortname = "cfg",
    doc = "Configuration represents the desired state of the latest Revision.",
    category = "all",
    category = "knative",
    category = "serving",
    label("duck.knative.dev/podspecable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "LatestCreated", "type": "string", "jsonPath": ".status.latestCreatedRevisionName"}"#,
    printcolumn = r#"{"name": "LatestReady", "type": "string", "jsonPath": ".status.latestReadyRevisionName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSpec {
    /// The Revision template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<RevisionTemplateSpec>,
}

/// Configuration status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Newest Revision that is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
    /// Newest Revision created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
}

/// A Revision: an immutable snapshot of code and configuration.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Revision",
    namespaced,
    derive = "PartialEq",
    status = "RevisionStatus",
    shortname = "rev",
    doc = "Revision is an immutable snapshot of code and configuration.",
    category = "all",
    category = "knative",
    category = "serving",
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "Config Name", "type": "string", "jsonPath": ".metadata.labels['serving\\.knative\\.dev/configuration']"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpecRoot {
    #[serde(flatten)]
    pub revision: RevisionSpec,
}

/// Revision status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Where logs are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// Replicas running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<i32>,
    /// Replicas wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}

/// A Route: names a URL and splits its traffic over Revisions.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Route",
    namespaced,
    derive = "PartialEq",
    status = "RouteStatus",
    shortname = "rt",
    doc = "Route is responsible for configuring ingress over a collection of Revisions.",
    category = "all",
    category = "knative",
    category = "serving",
    label("duck.knative.dev/addressable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// Traffic targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// Route status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Public URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Cluster-local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Traffic as resolved to Revisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// A DomainMapping: serves a custom host name (its own name) from a Knative Service or Route.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1beta1",
    kind = "DomainMapping",
    namespaced,
    derive = "PartialEq",
    status = "DomainMappingStatus",
    doc = "DomainMapping maps a custom domain name to a Knative Service or Route.",
    category = "all",
    category = "knative",
    category = "serving",
    label("duck.knative.dev/addressable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DomainMappingSpec {
    /// The Service or Route to serve, in the DomainMapping's namespace.
    #[serde(rename = "ref")]
    pub reference: KReference,
    /// TLS (accepted; Knit serves plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SecretTls>,
}

/// A DomainMapping's TLS secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretTls {
    /// Name of the Secret holding the certificate.
    pub secret_name: String,
}

/// DomainMapping status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DomainMappingStatus {
    #[serde(flatten)]
    pub status: Status,
    /// `http://{name}` with the gateway's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The same, as an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
}
