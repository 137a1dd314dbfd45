//! The sources section of the Contract: every event source the data plane runs, with its
//! resolved sink, its `ceOverrides`, and its adapter's own configuration.
//!
//! Secret values a source needs (a GitHub token) travel here resolved: the Contract stays in
//! process in standalone mode; a cluster data plane would read them from the Secret instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DeliveryPolicy;
use crate::api::eventing::SubscriptionsApiFilter;

/// One source the data plane runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// UID of the source object: the data plane reports under it.
    pub uid: String,
    /// `Kind/namespace/name`, for logs, metrics and fates.
    pub reference: String,
    /// Namespace of the source.
    pub namespace: String,
    /// Name of the source.
    pub name: String,
    /// The resolved sink URL.
    pub sink: String,
    /// Where events the sink keeps refusing go, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<String>,
    /// Retries, backoff, timeout of each send.
    pub delivery: DeliveryPolicy,
    /// `spec.ceOverrides.extensions`: set on every event the source emits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
    /// What the adapter does.
    pub adapter: Adapter,
    /// OIDC on: the identity its deliveries carry tokens for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::EgressAuth>,
}

/// The adapter of one source, by kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Adapter {
    /// PingSource.
    Ping(PingAdapter),
    /// GitHubSource.
    GitHub(GitHubAdapter),
    /// ApiServerSource.
    ApiServer(ApiServerAdapter),
    /// CloudPubSubSource.
    PubSub(PubSubAdapter),
    /// ContainerSource (with the SinkBindings that name it applied).
    Container(ContainerAdapter),
}

/// A PingSource's schedule and payload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PingAdapter {
    /// Cron expression without any `CRON_TZ=`/`TZ=` prefix: five fields, or six with seconds
    /// in front.
    pub schedule: String,
    /// IANA time zone the schedule is read in (`UTC` when none is given).
    pub timezone: String,
    /// `datacontenttype` of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Data as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Data as base64 (decoded by the adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

/// A GitHubSource's webhook receiver and registration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GitHubAdapter {
    /// Path of the receiver on the ingress listener, e.g. `/github/default/my-source`.
    pub path: String,
    /// The receiver's full URL (`status.address.url`), registered with GitHub.
    pub url: String,
    /// `owner/repository`, or `owner` alone for an organisation's hooks.
    pub owner_and_repository: String,
    /// GitHub event types to forward (`X-GitHub-Event` values); empty forwards every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// The webhook secret (HMAC key), resolved from `spec.secretToken`.
    pub secret_token: String,
    /// The API token, resolved from `spec.accessToken`.
    pub access_token: String,
    /// Base URL of the GitHub REST API (`https://api.github.com` unless `githubAPIURL` is set).
    pub api_url: String,
    /// Whether GitHub must verify TLS when calling the receiver (`spec.secure`).
    pub secure: bool,
    /// Who may post to the receiver (OIDC on): a bearer token for the source's audience and a
    /// sender its EventPolicies (or the default mode) allow, besides GitHub's signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::IngressAuth>,
}

/// One resource kind an ApiServerSource watches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WatchedResource {
    /// `apiVersion`, e.g. `v1` or `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `Event`.
    pub kind: String,
    /// A label selector in the API's string form (`app=x,tier in (a,b)`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

/// What an ApiServerSource sends per change.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApiServerMode {
    /// A reference to the object (`dev.knative.apiserver.ref.*`).
    #[default]
    Reference,
    /// The whole object (`dev.knative.apiserver.resource.*`).
    Resource,
}

/// An ApiServerSource's watches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiServerAdapter {
    /// What to watch.
    pub resources: Vec<WatchedResource>,
    /// Only objects whose controller (the ownerReference with `controller: true`) is of this
    /// `apiVersion`/`kind`, as Knative filters them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<(String, String)>,
    /// Reference or Resource.
    pub mode: ApiServerMode,
    /// Namespaces to watch; empty with `namespace_selector` set means "those the selector picks".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// A label selector over Namespaces (string form); set: watch every matching namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Subscriptions API filters over the emitted events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
}

/// A CloudPubSubSource's pull subscription.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PubSubAdapter {
    /// The Google Cloud project.
    pub project: String,
    /// The topic (created when absent).
    pub topic: String,
    /// The subscription Knit creates and pulls from.
    pub subscription: String,
    /// Ack deadline in seconds.
    pub ack_deadline_seconds: u32,
    /// Keep acknowledged messages (`retainAckedMessages`).
    #[serde(default)]
    pub retain_acked_messages: bool,
    /// `messageRetentionDuration` in seconds, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u64>,
}

/// A ContainerSource's processes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerAdapter {
    /// One supervised process per container of the template.
    pub processes: Vec<Process>,
}

/// One local process.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// The container's name.
    pub name: String,
    /// `command` then `args`; empty when the container gives no command (the image's
    /// entrypoint cannot run locally).
    pub argv: Vec<String>,
    /// The container's `env` (values given literally), then `K_SINK`, `K_CE_OVERRIDES` and
    /// any SinkBinding's, in that order.
    pub env: Vec<(String, String)>,
    /// `workingDir`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}
