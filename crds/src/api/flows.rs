//! `flows.knative.dev`: Sequence and Parallel, built from channels and subscriptions.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duck::{Addressable, Condition, DeliverySpec, Destination, ObjectReference, Status};
use super::messaging::ChannelTemplateSpec;

/// A Sequence: events pass through each step in order; each step's reply feeds the next.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "flows.knative.dev",
    version = "v1",
    kind = "Sequence",
    namespaced,
    derive = "PartialEq",
    status = "SequenceStatus",
    doc = "Sequence defines a sequence of subscribers that will be wired in series through Channels and Subscriptions.",
    category = "all",
    category = "knative",
    category = "flows",
    label("duck.knative.dev/addressable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SequenceSpec {
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<SequenceStep>,
    /// The channel implementation between steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    /// Where the last step's reply goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

/// One step of a Sequence.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SequenceStep {
    #[serde(flatten)]
    pub destination: Destination,
    /// Delivery options of this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Sequence status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SequenceStatus {
    #[serde(flatten)]
    pub status: Status,
    /// Status of each step's Subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscription_statuses: Vec<SequenceSubscriptionStatus>,
    /// Status of each step's Channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channel_statuses: Vec<SequenceChannelStatus>,
    /// Where to send events (the first channel's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// The EventPolicies that apply to the Sequence (OIDC on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<super::eventing::AppliedEventPolicy>,
}

/// A Subscription created by a Sequence or Parallel, with its Ready condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct SequenceSubscriptionStatus {
    /// The Subscription.
    pub subscription: ObjectReference,
    /// Its Ready condition.
    pub ready: Condition,
}

/// A Channel created by a Sequence or Parallel, with its Ready condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct SequenceChannelStatus {
    /// The Channel.
    pub channel: ObjectReference,
    /// Its Ready condition.
    pub ready: Condition,
}

/// A Parallel: every branch gets each event; a branch's filter decides whether its subscriber
/// runs.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "flows.knative.dev",
    version = "v1",
    kind = "Parallel",
    namespaced,
    derive = "PartialEq",
    status = "ParallelStatus",
    doc = "Parallel defines conditional branches that will be wired in series through Channels and Subscriptions.",
    category = "all",
    category = "knative",
    category = "flows",
    label("duck.knative.dev/addressable", "true"),
    label("knative.dev/crd-install", "true"),
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ParallelSpec {
    /// The branches.
    #[serde(default)]
    pub branches: Vec<ParallelBranch>,
    /// The channel implementation used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    /// Where branch replies go unless the branch has its own `reply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

/// One branch of a Parallel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParallelBranch {
    /// Optional filter subscriber: the event continues when it replies with an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Destination>,
    /// The branch's subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<Destination>,
    /// Where this branch's replies go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
    /// Delivery options of this branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Parallel status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParallelStatus {
    #[serde(flatten)]
    pub status: Status,
    /// The ingress channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_channel_status: Option<SequenceChannelStatus>,
    /// Status of each branch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branch_statuses: Vec<ParallelBranchStatus>,
    /// Where to send events (the ingress channel's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// The EventPolicies that apply to the Parallel (OIDC on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<super::eventing::AppliedEventPolicy>,
}

/// Status of one Parallel branch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParallelBranchStatus {
    /// The Subscription from the ingress channel to the filter.
    pub filter_subscription_status: SequenceSubscriptionStatus,
    /// The branch channel between filter and subscriber.
    pub filter_channel_status: SequenceChannelStatus,
    /// The Subscription from the branch channel to the subscriber.
    pub subscription_status: SequenceSubscriptionStatus,
}
