//! The EventPolicies Knative's Sequence and Parallel reconcilers make while OIDC is on
//! (security.md §3.5): without them `deny-all` or `allow-same-namespace` would block a flow's
//! own hops.
//!
//! - The ingress channel (a Sequence's first, a Parallel's `-kn-parallel`) gets a copy of each
//!   policy that names the flow in its `to` (by reference or selector), with the same `from`
//!   and, unlike Knative, the same `filters` (a copy without them would let through what the
//!   user's policy refuses).
//! - Every other channel of the flow admits the Subscription that feeds it: a Sequence's
//!   channel `i` the step `i - 1`'s Subscription, a Parallel's branch channel `i` the branch's
//!   filter Subscription.
//!
//! Names follow Knative's `<flow>-ep-<channel>`; the copies of several user policies onto one
//! ingress channel add `-<policy>` (Knative would give them all one name). The policies carry
//! the flow's owner reference and Knative's `flows.knative.dev/<kind>-*` labels, and go when
//! OIDC is turned off or the flow is deleted.

use knit_crds::api::eventing::{
    EventPolicy, EventPolicyFromReference, EventPolicyReference, EventPolicyToReference,
    SubscriptionsApiFilter,
};
use knit_crds::{Kind, Object, ObjectKey};
use serde_json::json;

use super::World;
use super::children::metadata;
use super::oidc::applying;
use super::resolve::{parallel_ingress_channel, sequence_channel};

/// Add the flows' EventPolicies to `world` (OIDC on). A user's own object of the same name
/// wins.
pub(super) fn derive(world: &mut World<'_>) {
    if world.oidc.is_none() {
        return;
    }
    let mut out = Vec::new();
    for (key, o) in &world.objects {
        match o {
            Object::Sequence(s) => {
                let t = s.spec.channel_template.as_ref();
                let channels: Vec<ObjectKey> = (0..s.spec.steps.len())
                    .filter_map(|i| sequence_channel(t, &key.namespace, &key.name, i))
                    .collect();
                let feeders = (0..channels.len()).map(|i| format!("{}-kn-sequence-{i}", key.name));
                out.extend(for_flow(world, o, &channels, feeders));
            }
            Object::Parallel(p) => {
                let t = p.spec.channel_template.as_ref();
                let Some(ingress) = parallel_ingress_channel(t, &key.namespace, &key.name) else {
                    continue;
                };
                let mut channels = vec![ingress.clone()];
                channels.extend((0..p.spec.branches.len()).map(|i| {
                    ObjectKey::new(
                        ingress.kind,
                        &key.namespace,
                        format!("{}-{i}", ingress.name),
                    )
                }));
                let feeders = (0..p.spec.branches.len())
                    .map(|i| format!("{}-kn-parallel-filter-{i}", key.name));
                out.extend(for_flow(world, o, &channels, feeders));
            }
            _ => {}
        }
    }
    for p in out {
        world.objects.entry(p.key()).or_insert(p);
    }
}

/// The policies of one flow whose channels are `channels` (the ingress channel first);
/// `feeders[i]` is the Subscription that sends to `channels[i + 1]`.
fn for_flow(
    world: &World<'_>,
    flow: &Object,
    channels: &[ObjectKey],
    feeders: impl Iterator<Item = String>,
) -> Vec<Object> {
    let Some(ingress) = channels.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let flow_key = flow.key();
    let mirrored: Vec<(String, &EventPolicy)> = applying(world, &flow_key)
        .into_iter()
        .filter(|(_, p)| !p.spec.to.is_empty())
        .collect();
    let several = mirrored.len() > 1;
    for (name, p) in &mirrored {
        let mut policy_name = format!("{}-ep-{}", flow.name(), ingress.name);
        if several {
            policy_name = format!("{policy_name}-{name}");
        }
        out.extend(policy(
            flow,
            &policy_name,
            ingress,
            p.spec.from.clone(),
            &p.spec.filters,
        ));
    }
    for (channel, feeder) in channels.iter().skip(1).zip(feeders) {
        let from = EventPolicyFromReference {
            reference: Some(EventPolicyReference {
                api_version: Kind::Subscription.api_version(),
                kind: Kind::Subscription.name().into(),
                name: feeder,
                namespace: Some(channel.namespace.clone()),
            }),
            sub: None,
        };
        let name = format!("{}-ep-{}", flow.name(), channel.name);
        out.extend(policy(flow, &name, channel, vec![from], &[]));
    }
    out
}

/// An EventPolicy owned by `flow`, to `channel`.
fn policy(
    flow: &Object,
    name: &str,
    channel: &ObjectKey,
    from: Vec<EventPolicyFromReference>,
    filters: &[SubscriptionsApiFilter],
) -> Option<Object> {
    let mut meta = metadata(flow, Kind::EventPolicy, name);
    let kind = flow.kind();
    let prefix = format!("flows.knative.dev/{}", kind.name().to_ascii_lowercase());
    if let Some(labels) = meta.get_mut("labels").and_then(|l| l.as_object_mut()) {
        let api = kind.api_version();
        let (group, version) = api.split_once('/').unwrap_or(("", api.as_str()));
        labels.insert(format!("{prefix}-group"), json!(group));
        labels.insert(format!("{prefix}-version"), json!(version));
        labels.insert(format!("{prefix}-kind"), json!(kind.name()));
        labels.insert(format!("{prefix}-name"), json!(flow.name()));
    }
    let to = EventPolicyToReference {
        reference: Some(EventPolicyReference {
            api_version: channel.kind.api_version(),
            kind: channel.kind.name().into(),
            name: channel.name.clone(),
            namespace: None,
        }),
        selector: None,
    };
    let doc = json!({
        "metadata": meta,
        "spec": {"to": [to], "from": from, "filters": filters},
    });
    Kind::EventPolicy.parse(doc).ok()
}
