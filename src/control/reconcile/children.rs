//! Objects Knit derives from others, exactly as Knative's controllers create them: a Channel's
//! backing channel, a Sequence's and a Parallel's channels and subscriptions, a Knative
//! Service's Configuration and Route (a Configuration's Revisions carry history and are stamped in
//! `serving::revisions`).

use knit_crds::api::duck::{DeliverySpec, Destination, KReference};
use knit_crds::api::messaging::ChannelTemplateSpec;
use knit_crds::api::serving::TrafficTarget;
use knit_crds::{Kind, Object};
use serde_json::{Value, json};

use super::resolve::channel_kind;

/// Every derived object of `input`.
pub(crate) fn derive(input: &[Object]) -> Vec<Object> {
    let mut out = Vec::new();
    for o in input {
        match o {
            Object::Channel(c) => {
                if let Some(ch) = channel(
                    o,
                    c.spec.channel_template.as_ref(),
                    o.name(),
                    c.spec.channelable.delivery.as_ref(),
                ) {
                    out.push(ch);
                }
            }
            Object::Sequence(s) => {
                let t = s.spec.channel_template.as_ref();
                let n = s.spec.steps.len();
                for (i, step) in s.spec.steps.iter().enumerate() {
                    let ch_name = format!("{}-kn-sequence-{i}", o.name());
                    out.extend(channel(o, t, &ch_name, None));
                    let reply = if i + 1 < n {
                        Some(channel_destination(
                            t,
                            &format!("{}-kn-sequence-{}", o.name(), i + 1),
                        ))
                    } else {
                        s.spec.reply.clone()
                    };
                    out.extend(subscription(
                        o,
                        &ch_name,
                        t,
                        &ch_name,
                        Some(step.destination.clone()),
                        reply,
                        step.delivery.clone(),
                    ));
                }
            }
            Object::Parallel(p) => {
                let t = p.spec.channel_template.as_ref();
                let ingress = format!("{}-kn-parallel", o.name());
                out.extend(channel(o, t, &ingress, None));
                for (i, b) in p.spec.branches.iter().enumerate() {
                    let branch = format!("{}-kn-parallel-{i}", o.name());
                    out.extend(channel(o, t, &branch, None));
                    out.extend(subscription(
                        o,
                        &format!("{}-kn-parallel-filter-{i}", o.name()),
                        t,
                        &ingress,
                        b.filter.clone(),
                        Some(channel_destination(t, &branch)),
                        b.delivery.clone(),
                    ));
                    out.extend(subscription(
                        o,
                        &branch,
                        t,
                        &branch,
                        b.subscriber.clone(),
                        b.reply.clone().or_else(|| p.spec.reply.clone()),
                        b.delivery.clone(),
                    ));
                }
            }
            Object::Service(s) => out.extend(service_children(o, s)),
            _ => {}
        }
    }
    out
}

/// A Service's Configuration and Route, both named after it (Knative's service reconciler): the
/// Service's labels and annotations plus `serving.knative.dev/service{,UID}`; the Route's
/// traffic is the Service's with `configurationName` implied (100% to the latest ready Revision
/// when none is given).
fn service_children(owner: &Object, s: &knit_crds::api::serving::Service) -> Vec<Object> {
    let name = owner.name();
    let mut out = Vec::new();
    let with_labels = |kind: Kind| {
        let mut meta = metadata(owner, kind, name);
        let m = owner.meta();
        let mut labels: serde_json::Map<String, Value> = m
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        labels.insert(
            names_serving::SERVICE_LABEL.into(),
            Value::String(name.into()),
        );
        labels.insert(
            names_serving::SERVICE_UID_LABEL.into(),
            Value::String(m.uid.clone().unwrap_or_default()),
        );
        let annotations: serde_json::Map<String, Value> = m
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if let Some(map) = meta.as_object_mut() {
            map.insert("labels".into(), Value::Object(labels));
            map.insert("annotations".into(), Value::Object(annotations));
        }
        meta
    };
    let config = json!({
        "metadata": with_labels(Kind::Configuration),
        "spec": {"template": s.spec.template.clone()},
    });
    out.extend(Kind::Configuration.parse(config).ok());
    let mut traffic: Vec<TrafficTarget> = s.spec.traffic.clone();
    if traffic.is_empty() {
        traffic.push(TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            ..Default::default()
        });
    }
    for t in &mut traffic {
        if t.revision_name.is_none() {
            t.configuration_name = Some(name.to_string());
            t.latest_revision.get_or_insert(true);
        } else {
            t.latest_revision.get_or_insert(false);
        }
        t.percent.get_or_insert(0);
    }
    let route = json!({
        "metadata": with_labels(Kind::Route),
        "spec": {"traffic": traffic},
    });
    out.extend(Kind::Route.parse(route).ok());
    out
}

/// Label names of serving's derived objects.
pub(crate) mod names_serving {
    /// The Service that owns a Configuration, Route or Revision.
    pub(crate) const SERVICE_LABEL: &str = "serving.knative.dev/service";
    /// Its UID.
    pub(crate) const SERVICE_UID_LABEL: &str = "serving.knative.dev/serviceUID";
}

pub(crate) fn uid_for(owner: &Object, kind: Kind, name: &str) -> String {
    let owner_uid = owner.meta().uid.clone().unwrap_or_default();
    let ns = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, owner_uid.as_bytes());
    uuid::Uuid::new_v5(&ns, format!("{}/{name}", kind.name()).as_bytes()).to_string()
}

pub(super) fn metadata(owner: &Object, kind: Kind, name: &str) -> Value {
    let m = owner.meta();
    let owner_kind = owner.kind();
    let label = match owner_kind {
        Kind::Sequence => Some("flows.knative.dev/sequence"),
        Kind::Parallel => Some("flows.knative.dev/parallel"),
        _ => None,
    };
    let mut labels = serde_json::Map::new();
    if let Some(l) = label {
        labels.insert(l.into(), Value::String(owner.name().into()));
    }
    json!({
        "name": name,
        "namespace": owner.namespace(),
        "uid": uid_for(owner, kind, name),
        "generation": m.generation.unwrap_or(1),
        "creationTimestamp": m.creation_timestamp,
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": owner_kind.api_version(),
            "kind": owner_kind.name(),
            "name": owner.name(),
            "uid": m.uid.clone().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    })
}

fn channel(
    owner: &Object,
    template: Option<&ChannelTemplateSpec>,
    name: &str,
    delivery: Option<&DeliverySpec>,
) -> Option<Object> {
    let t = template?;
    let kind = channel_kind(t.api_version.as_deref(), t.kind.as_deref())?;
    let mut spec = t
        .spec
        .clone()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let (Some(d), Some(map)) = (delivery, spec.as_object_mut()) {
        map.insert("delivery".into(), serde_json::to_value(d).ok()?);
    }
    let doc = json!({"metadata": metadata(owner, kind, name), "spec": spec});
    kind.parse(doc).ok()
}

fn channel_destination(template: Option<&ChannelTemplateSpec>, name: &str) -> Destination {
    Destination {
        reference: Some(KReference {
            api_version: template.and_then(|t| t.api_version.clone()),
            kind: template.and_then(|t| t.kind.clone()),
            name: Some(name.to_string()),
            namespace: None,
        }),
        ..Default::default()
    }
}

fn subscription(
    owner: &Object,
    name: &str,
    template: Option<&ChannelTemplateSpec>,
    channel_name: &str,
    subscriber: Option<Destination>,
    reply: Option<Destination>,
    delivery: Option<DeliverySpec>,
) -> Option<Object> {
    let mut doc = json!({
        "metadata": metadata(owner, Kind::Subscription, name),
        "spec": {
            "channel": {
                "apiVersion": template.and_then(|t| t.api_version.clone()),
                "kind": template.and_then(|t| t.kind.clone()),
                "name": channel_name,
            },
        },
    });
    let spec = doc.get_mut("spec")?.as_object_mut()?;
    let ns = owner.namespace();
    let with_ns = |mut d: Destination| {
        if let Some(r) = &mut d.reference {
            r.namespace.get_or_insert_with(|| ns.to_string());
        }
        d
    };
    if let Some(s) = subscriber {
        spec.insert("subscriber".into(), serde_json::to_value(with_ns(s)).ok()?);
    }
    if let Some(r) = reply {
        spec.insert("reply".into(), serde_json::to_value(with_ns(r)).ok()?);
    }
    if let Some(d) = delivery {
        spec.insert("delivery".into(), serde_json::to_value(d).ok()?);
    }
    Kind::Subscription.parse(doc).ok()
}
