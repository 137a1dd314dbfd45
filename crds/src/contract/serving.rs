//! The serving sections of the Contract: every Revision the data plane runs (its processes'
//! configuration and autoscaling inputs) and every Route the gateway serves (hosts and the
//! weighted split over revisions). Computed by the control plane from Services,
//! Configurations, Revisions, Routes and the `config-*` ConfigMaps; the serving crate runs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One Revision to run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// UID of the Revision: the data plane reports under it.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Revision name (`hello-00001`).
    pub name: String,
    /// The Configuration it belongs to (`K_CONFIGURATION`).
    pub configuration: String,
    /// The Service that created it, if any (`K_SERVICE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The serving container (Knit runs one container per replica).
    pub container: Container,
    /// `containerConcurrency`: most requests one replica handles at once (0: no limit).
    pub container_concurrency: u32,
    /// `timeoutSeconds`: longest a request may take, waiting for a replica included.
    pub timeout_seconds: u64,
    /// `responseStartTimeoutSeconds`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start_timeout_seconds: Option<u64>,
    /// `idleTimeoutSeconds`, if set (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// The Revision's `autoscaling.knative.dev/*` annotations (resolved against
    /// [`Serving::autoscaler_config`] by the autoscaler).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub autoscaling: BTreeMap<String, String>,
    /// Whether any Route sends it traffic (a `reserve` revision ignores min/initial scale).
    pub routed: bool,
}

/// The container a replica runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container name (`user-container` by default).
    pub name: String,
    /// The image, for messages.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// `command` then `args`, `$(VAR)` not yet expanded; empty when only an image is given.
    pub argv: Vec<String>,
    /// The container's `env` (literal values), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// `workingDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// The declared `containerPort`, if any. Informational: each replica's `PORT` is a free
    /// port the data plane picks (an app that ignores `PORT` can only run one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `readinessProbe`; `None`: TCP on `PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    /// `startupProbe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Probe>,
}

/// A probe of a replica, on its `PORT`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// HTTP GET of this path (a 2xx/3xx passes); `None`: a TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// Extra request headers of an HTTP probe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<(String, String)>,
    /// `initialDelaySeconds`.
    #[serde(default)]
    pub initial_delay_seconds: u64,
    /// `periodSeconds` (0: Knative's aggressive probing until ready).
    #[serde(default)]
    pub period_seconds: u64,
    /// `timeoutSeconds` of one probe.
    #[serde(default)]
    pub timeout_seconds: u64,
    /// `failureThreshold`.
    #[serde(default)]
    pub failure_threshold: u32,
}

/// One Route the gateway serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// UID of the Route.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name (the Service's name when a Service owns it).
    pub name: String,
    /// Host names (lower case, no port) that select the whole split: `name.ns.domain` unless
    /// cluster-local, `name.ns.svc.cluster.local`, `name.ns.svc`, and DomainMappings' hosts.
    pub hosts: Vec<String>,
    /// The split: each target's revision and percent (percents sum to 100).
    pub traffic: Vec<Target>,
    /// Tagged targets: each tag's own hosts (`tag-name.ns.domain`, ...) and revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// A weighted target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The revision (always concrete: configuration targets are resolved).
    pub revision: String,
    /// Percent of requests, 0–100.
    pub percent: u32,
}

/// A tag's own address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// The tag (also matched by the `Knative-Serving-Tag` header when enabled).
    pub tag: String,
    /// Its hosts.
    pub hosts: Vec<String>,
    /// Its revision.
    pub revision: String,
}

/// Everything serving runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    /// Revisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<Revision>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// The `config-autoscaler` ConfigMap's data (namespace `knative-serving`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub autoscaler_config: BTreeMap<String, String>,
    /// `tag-header-based-routing` of `config-features` is `enabled`.
    #[serde(default)]
    pub tag_header_routing: bool,
}
