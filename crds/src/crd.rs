//! The CustomResourceDefinitions of every Knit kind, generated from the Rust types.
//!
//! `crds/manifests/` holds the rendered YAML; a test fails when it drifts from the types.

use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::eventing::{Broker, EventPolicy, EventType, KafkaSink, Trigger};
use crate::api::flows::{Parallel, Sequence};
use crate::api::messaging::{
    Channel, InMemoryChannel, KafkaChannel, NatsJetStreamChannel, Subscription,
};
use crate::api::serving::{Configuration, DomainMapping, Revision, Route, Service};
use crate::api::sources::{
    ApiServerSource, CloudPubSubSource, ContainerSource, GitHubSource, KafkaSource, PingSource,
    SinkBinding,
};
use crate::object::Kind;

/// The CRD of `kind` as JSON, or `None` for core kinds (ConfigMap, Secret) that have none.
pub fn crd(kind: Kind) -> Option<Value> {
    let crd = match kind {
        Kind::Broker => Broker::crd(),
        Kind::Trigger => Trigger::crd(),
        Kind::EventType => EventType::crd(),
        Kind::KafkaSink => KafkaSink::crd(),
        Kind::EventPolicy => EventPolicy::crd(),
        Kind::Channel => Channel::crd(),
        Kind::InMemoryChannel => InMemoryChannel::crd(),
        Kind::Subscription => Subscription::crd(),
        Kind::KafkaChannel => KafkaChannel::crd(),
        Kind::NatsJetStreamChannel => NatsJetStreamChannel::crd(),
        Kind::Sequence => Sequence::crd(),
        Kind::Parallel => Parallel::crd(),
        Kind::PingSource => PingSource::crd(),
        Kind::ApiServerSource => ApiServerSource::crd(),
        Kind::SinkBinding => SinkBinding::crd(),
        Kind::ContainerSource => ContainerSource::crd(),
        Kind::GitHubSource => GitHubSource::crd(),
        Kind::KafkaSource => KafkaSource::crd(),
        Kind::CloudPubSubSource => CloudPubSubSource::crd(),
        Kind::Service => Service::crd(),
        Kind::Configuration => Configuration::crd(),
        Kind::Revision => Revision::crd(),
        Kind::Route => Route::crd(),
        Kind::DomainMapping => DomainMapping::crd(),
        Kind::ConfigMap | Kind::Secret => return None,
    };
    let mut v = serde_json::to_value(crd).ok()?;
    if let Some(versions) = v
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for version in versions {
            if let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") {
                finish_schema(schema);
            }
        }
    }
    Some(v)
}

/// The `openAPIV3Schema` of `kind`'s CRD.
pub fn schema(kind: Kind) -> Option<Value> {
    let crd = crd(kind)?;
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
}

/// Knative fills in container names and probe ports, so the schema must not require them.
fn relax_pod_requirements(node: &mut Value) {
    match node {
        Value::Object(map) => {
            let props = map.get("properties").and_then(Value::as_object);
            let is_container =
                props.is_some_and(|p| p.contains_key("image") && p.contains_key("name"));
            let is_probe_handler = props.is_some_and(|p| {
                p.contains_key("port") && (p.contains_key("path") || p.len() <= 3)
            });
            if is_container || is_probe_handler {
                let drop = if is_container { "name" } else { "port" };
                if let Some(Value::Array(req)) = map.get_mut("required") {
                    req.retain(|r| r != drop);
                    if req.is_empty() {
                        map.remove("required");
                    }
                }
            }
            map.values_mut().for_each(relax_pod_requirements);
        }
        Value::Array(items) => items.iter_mut().for_each(relax_pod_requirements),
        _ => {}
    }
}

/// Knative objects may omit `spec` (a Broker or Channel with only metadata is valid), and
/// status is written by the system, so neither is required at the top level.
fn finish_schema(schema: &mut Value) {
    relax_pod_requirements(schema);
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("required");
        if let Some(status) = obj.get_mut("properties").and_then(|p| p.get_mut("status"))
            && let Some(s) = status.as_object_mut()
        {
            s.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
    }
}

/// The file name of `kind`'s CRD under `crds/manifests/`.
pub fn manifest_file_name(kind: Kind) -> String {
    format!("{}.{}.yaml", kind.plural(), kind.group())
}

/// `kind`'s CRD rendered as YAML.
pub fn crd_yaml(kind: Kind) -> Option<String> {
    let crd = crd(kind)?;
    serde_saphyr::to_string(&crd).ok()
}

/// Every CRD as one multi-document YAML stream, as `knit crds` prints it.
pub fn all_crds_yaml() -> String {
    Kind::ALL
        .iter()
        .filter_map(|k| crd_yaml(*k))
        .map(|y| format!("---\n{}", y.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crd_kind_has_a_schema_and_names() {
        for kind in Kind::ALL
            .iter()
            .copied()
            .filter(|k| !matches!(k, Kind::ConfigMap | Kind::Secret))
        {
            let crd = crd(kind).expect("crd");
            assert_eq!(crd["spec"]["names"]["kind"], kind.name());
            assert_eq!(crd["spec"]["names"]["plural"], kind.plural());
            assert!(schema(kind).is_some(), "{kind}");
        }
    }

    /// The manifests in `crds/manifests/` must be exactly what the types generate.
    /// Regenerate them with `knit crds --write crds/manifests`.
    #[test]
    fn manifests_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        for kind in Kind::ALL.iter().copied() {
            let Some(yaml) = crd_yaml(kind) else { continue };
            let path = dir.join(manifest_file_name(kind));
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == yaml,
                "{} is out of date; run `cargo run -- crds --write crds/manifests`",
                path.display()
            );
        }
    }
}
