//! Which kind a document is: current versions, older versions converted to the current one,
//! older versions refused with the version to use, and kinds Knit does not run.

use serde_json::{Value, json};

use super::FieldError;
use crate::object::Kind;

pub(crate) enum Resolution {
    /// A current version of a kind Knit runs.
    Current(Kind, Value),
    /// An older version, converted.
    Converted {
        kind: Kind,
        value: Value,
        note: String,
    },
    /// A kind Knit does not run: skipped with this warning.
    Ignored(String),
    /// A version or kind Knit refuses.
    Rejected(FieldError),
}

/// Groups whose kinds are all known to Knit: an unknown kind there is an error.
const CLOSED_GROUPS: &[&str] = &[
    "eventing.knative.dev",
    "messaging.knative.dev",
    "flows.knative.dev",
    "serving.knative.dev",
];

/// Kinds of Knative groups that Knit knows of but does not run.
const NOT_RUN: &[(&str, &str)] = &[
    ("eventing.knative.dev", "EventPolicy"),
    ("eventing.knative.dev", "EventTransform"),
    ("eventing.knative.dev", "RequestReply"),
    ("messaging.knative.dev", "RabbitmqChannel"),
];

pub(crate) fn resolve(api_version: &str, kind_name: &str, value: Value) -> Resolution {
    if let Some(kind) = Kind::from_type(api_version, kind_name) {
        return Resolution::Current(kind, value);
    }
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    if let Some(kind) = Kind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == kind_name && k.group() == group)
    {
        return convert(kind, version, value);
    }
    if NOT_RUN.contains(&(group, kind_name)) || !CLOSED_GROUPS.contains(&group) {
        return Resolution::Ignored(format!(
            "ignored: Knit does not run {kind_name} ({api_version})"
        ));
    }
    let hint = Kind::ALL
        .iter()
        .filter(|k| k.group() == group)
        .find(|k| close(k.name(), kind_name))
        .map(|k| format!(" (did you mean {}?)", k.name()))
        .unwrap_or_default();
    Resolution::Rejected(FieldError::new(
        "kind",
        format!("unknown kind {kind_name:?} in {api_version}{hint}"),
    ))
}

/// Names within one edit (or differing only in case) of each other.
fn close(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 1
}

fn converted(kind: Kind, from: &str, mut value: Value) -> Resolution {
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(kind.api_version()));
    }
    Resolution::Converted {
        kind,
        value,
        note: format!("converted from {from} to {}", kind.api_version()),
    }
}

fn rejected(kind: Kind, from: &str, why: &str) -> Resolution {
    Resolution::Rejected(FieldError::new(
        "apiVersion",
        format!(
            "{} {} is not supported{why}; use apiVersion: {}",
            kind.name(),
            from,
            kind.api_version()
        ),
    ))
}

fn convert(kind: Kind, version: &str, mut value: Value) -> Resolution {
    let from = format!("{}/{version}", kind.group());
    let same_shape = |v: &[&str]| v.contains(&version);
    match kind {
        Kind::InMemoryChannel | Kind::Channel | Kind::Subscription
            if same_shape(&["v1alpha1", "v1beta1"]) =>
        {
            converted(kind, &from, value)
        }
        Kind::KafkaChannel if same_shape(&["v1alpha1"]) => converted(kind, &from, value),
        Kind::Broker | Kind::Trigger if same_shape(&["v1beta1"]) => converted(kind, &from, value),
        Kind::Broker | Kind::Trigger if same_shape(&["v1alpha1"]) => {
            rejected(kind, &from, " (its spec differs from v1)")
        }
        Kind::Sequence | Kind::Parallel if same_shape(&["v1alpha1", "v1beta1"]) => {
            converted(kind, &from, value)
        }
        Kind::PingSource if same_shape(&["v1beta2"]) => converted(kind, &from, value),
        Kind::PingSource if same_shape(&["v1alpha2", "v1beta1"]) => {
            // `jsonData` became `data` with an explicit JSON content type.
            if let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut)
                && let Some(data) = spec.remove("jsonData")
            {
                spec.insert("data".into(), data);
                spec.entry("contentType")
                    .or_insert(json!("application/json"));
            }
            converted(kind, &from, value)
        }
        Kind::ApiServerSource | Kind::SinkBinding | Kind::ContainerSource
            if same_shape(&["v1alpha2", "v1beta1"]) =>
        {
            converted(kind, &from, value)
        }
        Kind::CloudPubSubSource if same_shape(&["v1alpha1", "v1beta1"]) => {
            converted(kind, &from, value)
        }
        // v1beta1 is v1 without `net.sasl.roleARN` and `net.sasl.tokenProvider`.
        Kind::KafkaSource if same_shape(&["v1beta1"]) => converted(kind, &from, value),
        Kind::Service | Kind::Configuration | Kind::Revision | Kind::Route
            if same_shape(&["v1beta1"]) =>
        {
            converted(kind, &from, value)
        }
        Kind::Service | Kind::Configuration if same_shape(&["v1alpha1"]) => {
            serving_v1alpha1(kind, &from, value)
        }
        Kind::Route | Kind::Revision if same_shape(&["v1alpha1"]) => converted(kind, &from, value),
        _ => rejected(kind, &from, ""),
    }
}

/// serving v1alpha1: `runLatest` / `pinned` Services and `revisionTemplate` Configurations,
/// with a single `container`.
fn serving_v1alpha1(kind: Kind, from: &str, mut value: Value) -> Resolution {
    let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) else {
        return converted(kind, from, value);
    };
    let (config, traffic) = if kind == Kind::Service {
        if let Some(rl) = spec.remove("runLatest") {
            (rl.get("configuration").cloned(), None)
        } else if let Some(p) = spec.remove("pinned") {
            let rev = p.get("revisionName").cloned().unwrap_or(Value::Null);
            (
                p.get("configuration").cloned(),
                Some(json!([{"revisionName": rev, "percent": 100}])),
            )
        } else if spec.contains_key("release") || spec.contains_key("manual") {
            return rejected(
                kind,
                from,
                " (release and manual modes have no v1 equivalent)",
            );
        } else {
            (None, None)
        }
    } else {
        (Some(Value::Object(spec.clone())), None)
    };
    if let Some(mut config) = config {
        if let Some(rt) = config.get_mut("revisionTemplate").map(Value::take) {
            let mut template = rt;
            if let Some(tspec) = template.get_mut("spec").and_then(Value::as_object_mut)
                && let Some(c) = tspec.remove("container")
            {
                tspec.insert("containers".into(), json!([c]));
            }
            spec.remove("revisionTemplate");
            spec.insert("template".into(), template);
        } else if let Some(t) = config.get("template") {
            spec.insert("template".into(), t.clone());
        }
    }
    if let Some(t) = traffic {
        spec.insert("traffic".into(), t);
    }
    converted(kind, from, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_imc_converts() {
        let r = resolve(
            "messaging.knative.dev/v1alpha1",
            "InMemoryChannel",
            json!({"metadata": {"name": "c"}}),
        );
        assert!(matches!(
            r,
            Resolution::Converted {
                kind: Kind::InMemoryChannel,
                ..
            }
        ));
    }

    #[test]
    fn run_latest_converts() {
        let v = json!({"spec": {"runLatest": {"configuration": {"revisionTemplate": {"spec": {"container": {"image": "x"}}}}}}});
        let Resolution::Converted { value, .. } =
            resolve("serving.knative.dev/v1alpha1", "Service", v)
        else {
            panic!("not converted")
        };
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"][0]["image"],
            "x"
        );
        assert_eq!(value["apiVersion"], "serving.knative.dev/v1");
    }

    #[test]
    fn unknown_versions_name_the_version_to_use() {
        let Resolution::Rejected(e) = resolve("eventing.knative.dev/v1alpha1", "Broker", json!({}))
        else {
            panic!("not rejected")
        };
        assert!(e.message.contains("eventing.knative.dev/v1"), "{e}");
    }

    #[test]
    fn typos_in_knative_groups_are_errors() {
        let Resolution::Rejected(e) = resolve("eventing.knative.dev/v1", "Triger", json!({}))
        else {
            panic!("not rejected")
        };
        assert!(e.message.contains("did you mean Trigger"), "{e}");
    }

    #[test]
    fn foreign_kinds_are_ignored() {
        assert!(matches!(
            resolve("apps/v1", "Deployment", json!({})),
            Resolution::Ignored(_)
        ));
        assert!(matches!(
            resolve("bindings.knative.dev/v1", "KafkaBinding", json!({})),
            Resolution::Ignored(_)
        ));
    }

    #[test]
    fn kafka_kinds_are_run() {
        assert!(matches!(
            resolve("sources.knative.dev/v1", "KafkaSource", json!({})),
            Resolution::Current(Kind::KafkaSource, _)
        ));
        assert!(matches!(
            resolve("eventing.knative.dev/v1alpha1", "KafkaSink", json!({})),
            Resolution::Current(Kind::KafkaSink, _)
        ));
        let Resolution::Converted { kind, value, .. } =
            resolve("sources.knative.dev/v1beta1", "KafkaSource", json!({}))
        else {
            panic!("not converted")
        };
        assert_eq!(kind, Kind::KafkaSource);
        assert_eq!(value["apiVersion"], "sources.knative.dev/v1");
        assert!(matches!(
            resolve("sources.knative.dev/v1alpha1", "KafkaSource", json!({})),
            Resolution::Rejected(_)
        ));
    }
}
