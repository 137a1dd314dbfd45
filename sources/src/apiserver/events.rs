//! The CloudEvents an ApiServerSource emits, as Knative builds them: `type`
//! `dev.knative.apiserver.{ref,resource}.{add,update,delete}`, `source` the API server URL,
//! `subject` the object's self link (`/apis/<apiVersion>/namespaces/<ns>/<kind>s/<name>`),
//! the `kind`/`apiversion`/`name`/`namespace` extensions, and as data either an
//! ObjectReference (Reference mode) or the whole object (Resource mode).

use bytes::Bytes;
use jiff::Timestamp;
use knit_channels::{Event, ExtValue};
use knit_crds::contract::ApiServerMode;
use kube::api::DynamicObject;
use serde::Serialize;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It appeared.
    Add,
    /// It changed.
    Update,
    /// It went away.
    Delete,
}

/// `type` of the event for `change` in `mode`.
pub fn event_type(mode: ApiServerMode, change: Change) -> &'static str {
    match (mode, change) {
        (ApiServerMode::Reference, Change::Add) => "dev.knative.apiserver.ref.add",
        (ApiServerMode::Reference, Change::Update) => "dev.knative.apiserver.ref.update",
        (ApiServerMode::Reference, Change::Delete) => "dev.knative.apiserver.ref.delete",
        (ApiServerMode::Resource, Change::Add) => "dev.knative.apiserver.resource.add",
        (ApiServerMode::Resource, Change::Update) => "dev.knative.apiserver.resource.update",
        (ApiServerMode::Resource, Change::Delete) => "dev.knative.apiserver.resource.delete",
    }
}

/// Knative's self link: the plural is the lower-cased kind plus `s`, core objects get
/// `/apis/v1/...`, a group without a version gets `/versionUnknown`, and a cluster-scoped
/// object gives `namespaces//`.
pub fn subject(api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    let version = if api_version.contains('.') && !api_version.contains('/') {
        format!("{api_version}/versionUnknown")
    } else {
        api_version.to_string()
    };
    format!("/apis/{version}/namespaces/{namespace}/{plural}/{name}")
}

/// A `corev1.ObjectReference` as Go marshals it: fields in declaration order, empty ones left
/// out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectReference<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_version: &'a str,
}

/// Reference-mode data: `{"kind":…,"namespace":…,"name":…,"apiVersion":…}`.
pub fn reference_data(api_version: &str, kind: &str, namespace: &str, name: &str) -> Vec<u8> {
    let r = ObjectReference {
        kind,
        namespace,
        name,
        api_version,
    };
    // Serialising borrowed strings into a Vec cannot fail.
    serde_json::to_vec(&r).unwrap_or_default()
}

/// Sort every object's keys, as Go's `encoding/json` writes maps (independent of whether
/// serde_json keeps insertion order in this build).
fn sort_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.sort_keys();
            for (_, x) in m.iter_mut() {
                sort_keys(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// Resource-mode data: the whole object, keys sorted as Knative (Go) writes it.
pub fn resource_data(obj: &DynamicObject) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_value(obj)?;
    sort_keys(&mut v);
    serde_json::to_vec(&v)
}

/// The event for `change` to `obj`, sent from the API server at `server`.
pub fn event(
    server: &str,
    mode: ApiServerMode,
    change: Change,
    obj: &DynamicObject,
) -> Result<Event, serde_json::Error> {
    let (api_version, kind) = obj
        .types
        .as_ref()
        .map(|t| (t.api_version.as_str(), t.kind.as_str()))
        .unwrap_or(("", ""));
    let namespace = obj.metadata.namespace.as_deref().unwrap_or("");
    let name = obj.metadata.name.as_deref().unwrap_or("");
    let mut ev = Event::new(
        uuid::Uuid::new_v4().to_string(),
        server,
        event_type(mode, change),
    );
    ev.subject = Some(subject(api_version, kind, namespace, name));
    ev.time = Some(Timestamp::now().to_string());
    ev.datacontenttype = Some("application/json".into());
    for (k, v) in [
        ("kind", kind),
        ("apiversion", api_version),
        ("name", name),
        ("namespace", namespace),
    ] {
        if !v.is_empty() {
            ev.set_extension(k, ExtValue::String(v.to_string()));
        }
    }
    let data = match mode {
        ApiServerMode::Reference => reference_data(api_version, kind, namespace, name),
        ApiServerMode::Resource => resource_data(obj)?,
    };
    ev.set_data_from_body(Bytes::from(data));
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "unit", "namespace": "test"}
        }))
        .expect("a pod")
    }

    fn data(ev: &Event) -> String {
        ev.data
            .as_ref()
            .map(|d| String::from_utf8_lossy(&d.bytes).into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn subjects_follow_knative_self_links() {
        assert_eq!(
            subject("v1", "Pod", "test", "unit"),
            "/apis/v1/namespaces/test/pods/unit"
        );
        assert_eq!(
            subject("apps/v1", "Deployment", "ns", "d"),
            "/apis/apps/v1/namespaces/ns/deployments/d"
        );
        assert_eq!(
            subject("serving.knative.dev", "Revision", "ns", "r"),
            "/apis/serving.knative.dev/versionUnknown/namespaces/ns/revisions/r"
        );
        // Cluster-scoped: an empty namespace segment; the plural is a plain `+s`.
        assert_eq!(
            subject("v1", "Namespace", "", "default"),
            "/apis/v1/namespaces//namespaces/default"
        );
    }

    #[test]
    fn types_per_mode_and_change() {
        use ApiServerMode::*;
        use Change::*;
        assert_eq!(event_type(Reference, Add), "dev.knative.apiserver.ref.add");
        assert_eq!(
            event_type(Reference, Update),
            "dev.knative.apiserver.ref.update"
        );
        assert_eq!(
            event_type(Reference, Delete),
            "dev.knative.apiserver.ref.delete"
        );
        assert_eq!(
            event_type(Resource, Add),
            "dev.knative.apiserver.resource.add"
        );
        assert_eq!(
            event_type(Resource, Update),
            "dev.knative.apiserver.resource.update"
        );
        assert_eq!(
            event_type(Resource, Delete),
            "dev.knative.apiserver.resource.delete"
        );
    }

    #[test]
    fn reference_mode_data_has_knative_key_order() {
        let ev = event(
            "https://10.96.0.1:443",
            ApiServerMode::Reference,
            Change::Add,
            &pod(),
        )
        .expect("event");
        assert_eq!(
            data(&ev),
            r#"{"kind":"Pod","namespace":"test","name":"unit","apiVersion":"v1"}"#
        );
        assert_eq!(ev.ty, "dev.knative.apiserver.ref.add");
        assert_eq!(ev.source, "https://10.96.0.1:443");
        assert_eq!(
            ev.subject.as_deref(),
            Some("/apis/v1/namespaces/test/pods/unit")
        );
        assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
        for (k, v) in [
            ("kind", "Pod"),
            ("apiversion", "v1"),
            ("name", "unit"),
            ("namespace", "test"),
        ] {
            assert_eq!(ev.attribute(k).as_deref(), Some(v), "{k}");
        }
        assert!(ev.validate().is_ok());
        assert!(ev.time.is_some());
    }

    #[test]
    fn resource_mode_data_is_the_object() {
        let ev = event("s", ApiServerMode::Resource, Change::Delete, &pod()).expect("event");
        assert_eq!(
            data(&ev),
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"unit","namespace":"test"}}"#
        );
        assert_eq!(ev.ty, "dev.knative.apiserver.resource.delete");
    }

    #[test]
    fn ids_are_fresh() {
        let a = event("s", ApiServerMode::Reference, Change::Update, &pod()).expect("event");
        let b = event("s", ApiServerMode::Reference, Change::Update, &pod()).expect("event");
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace_extension() {
        let ns: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}
        }))
        .expect("ns");
        let ev = event("s", ApiServerMode::Reference, Change::Add, &ns).expect("event");
        assert!(ev.extension("namespace").is_none());
        assert_eq!(
            data(&ev),
            r#"{"kind":"Namespace","name":"x","apiVersion":"v1"}"#
        );
    }
}
