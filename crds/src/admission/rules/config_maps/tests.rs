//! Every ConfigMap Knit reads, with valid values and with hostile ones: each hostile value is
//! refused with its `data.<key>` path (or accepted where Knative accepts it), never a panic.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::admission::{FieldError, Hooks, Outcome, admit_file, admit_value};
use crate::configmap::autoscaler::{AutoscalerConfig, CONFIG_KEYS};

/// A ConfigMap's data as (key, value) pairs.
type Data<'a> = &'a [(&'a str, &'a str)];

fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    })
}

/// The paths of every admission error of the ConfigMap (empty when admitted).
fn errors(ns: &str, name: &str, data: &[(&str, &str)]) -> Vec<FieldError> {
    match admit_value(config_map(ns, name, data), &Hooks::default()).result {
        Ok(Outcome::Admitted(_)) => Vec::new(),
        Ok(Outcome::Ignored(why)) => panic!("ignored: {why}"),
        Err(e) => e,
    }
}

fn paths(ns: &str, name: &str, data: &[(&str, &str)]) -> Vec<String> {
    errors(ns, name, data).into_iter().map(|e| e.path).collect()
}

/// Every key of every ConfigMap Knit reads, as (namespace, name, key).
fn every_key() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut keys: Vec<_> = CONFIG_KEYS
        .iter()
        .map(|k| ("knative-serving", "config-autoscaler", *k))
        .collect();
    keys.extend([
        (
            "knative-serving",
            "config-features",
            "tag-header-based-routing",
        ),
        (
            "knative-eventing",
            "config-features",
            "transport-encryption",
        ),
        ("knative-eventing", "config-features", "authentication-oidc"),
        (
            "knative-eventing",
            "config-features",
            "cross-namespace-event-links",
        ),
        (
            "knative-eventing",
            "config-features",
            "default-authorization-mode",
        ),
        (
            "knative-eventing",
            "kafka-broker-config",
            "bootstrap.servers",
        ),
        (
            "knative-eventing",
            "kafka-broker-config",
            "default.topic.partitions",
        ),
        (
            "knative-eventing",
            "kafka-broker-config",
            "default.topic.replication.factor",
        ),
        (
            "knative-eventing",
            "kafka-channel-config",
            "bootstrap.servers",
        ),
        (
            "knative-eventing",
            "default-ch-webhook",
            "default-ch-config",
        ),
    ]);
    keys
}

/// Values a hostile or careless manifest carries.
fn hostile_values() -> Vec<String> {
    [
        "inf",
        "-inf",
        "NaN",
        "-1",
        "1e400",
        "9223372036854775808s",
        "9223372036854775808",
        "",
        "{",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "x".repeat(64 * 1024),
        "9".repeat(64 * 1024),
        "1s".repeat(32 * 1024),
    ])
    .collect()
}

/// Where Knative (and Knit) accept a value of the hostile list: free text, `-1` as an
/// unlimited burst capacity, huge finite numbers where there is no upper bound, empty YAML,
/// and words that are host names.
fn accepted(key: &str, value: &str) -> bool {
    let unbounded = [
        "max-scale-up-rate",
        "max-scale-down-rate",
        "container-concurrency-target-default",
        "requests-per-second-target-default",
        "target-burst-capacity",
        "activator-capacity",
        "panic-threshold-percentage",
    ];
    match key {
        "pod-autoscaler-class" => true,
        "target-burst-capacity" if value == "-1" => true,
        k if unbounded.contains(&k) => value == "9223372036854775808",
        "default-ch-config" => value.is_empty(),
        "bootstrap.servers" => !value.is_empty() && value.len() <= 253 && value != "{",
        _ => false,
    }
}

/// Where the error of `key` is reported: Knative reports a concurrency target default that
/// makes the target too small on the percentage's key.
fn reported_at(key: &str, value: &str) -> &'static [&'static str] {
    match (key, value) {
        ("container-concurrency-target-default", "-1") => {
            &["data.container-concurrency-target-percentage"]
        }
        _ => &[],
    }
}

#[test]
fn every_hostile_value_of_every_key_is_refused_at_its_path() {
    for value in hostile_values() {
        for (ns, name, key) in every_key() {
            let found = errors(ns, name, &[(key, value.as_str())]);
            let at_key = found.iter().any(|e| {
                e.path == format!("data.{key}")
                    || reported_at(key, &value).contains(&e.path.as_str())
            });
            let short = value.chars().take(20).collect::<String>();
            if accepted(key, &value) {
                assert!(!at_key, "{name} {key}={short:?}: {found:?}");
            } else {
                assert!(at_key, "{name} {key}={short:?} admitted: {found:?}");
            }
            for e in &found {
                assert!(
                    e.message.len() < 1024,
                    "{key}: a long message: {}",
                    e.message.len()
                );
            }
        }
    }
}

#[test]
fn the_issue_example_is_refused_with_both_keys() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler, namespace: knative-serving}\ndata: {stable-window: \"inf\", scale-to-zero-grace-period: \"1e400\"}\n";
    let v = admit_file("config.yaml", text, &Hooks::default());
    let lines: Vec<String> = v.errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("config.yaml:0: ConfigMap/config-autoscaler: data.stable-window: "),
        "{lines:?}"
    );
    assert!(lines[0].contains("\"inf\""), "{lines:?}");
    assert!(
        lines[1].starts_with(
            "config.yaml:0: ConfigMap/config-autoscaler: data.scale-to-zero-grace-period: "
        ),
        "{lines:?}"
    );
}

#[test]
fn valid_config_maps_are_admitted() {
    let cases: &[(&str, &str, Data<'_>)] = &[
        (
            "knative-serving",
            "config-autoscaler",
            &[
                ("stable-window", "6s"),
                ("scale-to-zero-grace-period", "1s"),
                ("target-burst-capacity", "-1"),
                ("max-scale-up-rate", "1e300"),
                ("enable-scale-to-zero", "False"),
                ("some-future-key", "inf"),
            ],
        ),
        (
            "knative-serving",
            "config-domain",
            &[
                ("example.com", ""),
                ("Svc.Cluster.Local", "selector:\n  app: private\n"),
                ("_example", "anything { at all"),
            ],
        ),
        (
            "knative-serving",
            "config-features",
            &[("tag-header-based-routing", "Enabled"), ("other", "x")],
        ),
        (
            "knative-eventing",
            "config-features",
            &[
                ("transport-encryption", "STRICT"),
                ("authentication-oidc", "disabled"),
                ("default-authorization-mode", "deny-all"),
                ("_note", "ignored"),
                ("unknown-flag", "whatever"),
            ],
        ),
        (
            "knative-eventing",
            "kafka-broker-config",
            &[
                ("bootstrap.servers", "a:9092, b:9092"),
                ("default.topic.partitions", " 3 "),
                ("default.topic.replication.factor", "1"),
            ],
        ),
        (
            "knative-eventing",
            "default-ch-webhook",
            &[(
                "default-ch-config",
                "clusterDefault:\n  apiVersion: messaging.knative.dev/v1\n  kind: InMemoryChannel\nnamespaceDefaults:\n  ns:\n    apiVersion: messaging.knative.dev/v1beta1\n    kind: KafkaChannel\n",
            )],
        ),
        // Not a ConfigMap Knit reads: anything goes.
        ("default", "config-autoscaler", &[("stable-window", "inf")]),
        (
            "knative-eventing",
            "config-autoscaler",
            &[("stable-window", "inf")],
        ),
    ];
    for (ns, name, data) in cases {
        assert_eq!(paths(ns, name, data), Vec::<String>::new(), "{ns}/{name}");
    }
}

#[test]
fn invalid_domains_and_templates_are_refused() {
    let bad = |ns, name, data: &[(&str, &str)]| paths(ns, name, data);
    assert_eq!(
        bad("knative-serving", "config-domain", &[("-bad.com", "")]),
        ["data.-bad.com"]
    );
    assert_eq!(
        bad("knative-serving", "config-domain", &[("a..b", "")]),
        ["data.a..b"]
    );
    assert_eq!(
        bad("knative-serving", "config-domain", &[("ok.com", "[1, 2]")]),
        ["data.ok.com"]
    );
    assert_eq!(
        bad(
            "knative-serving",
            "config-domain",
            &[("ok.com", "selector: {app: [1]}")]
        ),
        ["data.ok.com"]
    );
    let long = "a".repeat(300);
    let found = bad("knative-serving", "config-domain", &[(&long, "")]);
    assert_eq!(found.len(), 1);
    assert!(found[0].len() < 100, "{}", found[0]);
    assert_eq!(
        bad(
            "knative-eventing",
            "default-ch-webhook",
            &[(
                "default-ch-config",
                "clusterDefault: {kind: InMemoryChannel}"
            )]
        ),
        ["data.default-ch-config.clusterDefault.apiVersion"]
    );
    assert_eq!(
        bad(
            "knative-eventing",
            "default-ch-webhook",
            &[(
                "default-ch-config",
                "namespaceDefaults: {ns: {apiVersion: v1, kind: FooChannel}}"
            )]
        ),
        ["data.default-ch-config.namespaceDefaults.ns"]
    );
    assert_eq!(
        bad(
            "knative-eventing",
            "kafka-broker-config",
            &[("bootstrap.servers", "a:9092,,b:9092")]
        ),
        ["data.bootstrap.servers"]
    );
    assert_eq!(
        bad(
            "knative-eventing",
            "kafka-broker-config",
            &[("default.topic.partitions", "0")]
        ),
        ["data.default.topic.partitions"]
    );
}

/// Admission and the KPA read `config-autoscaler` with one parser: whatever admission
/// accepts, the KPA's config reads, and whatever it refuses, the KPA refuses with the same
/// keys.
#[test]
fn admission_agrees_with_the_autoscaler_config() {
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("stable-window", "6s")],
        &[("stable-window", "5s")],
        &[
            ("stable-window", "inf"),
            ("scale-to-zero-grace-period", "1e400"),
        ],
        &[("max-scale-up-rate", "inf")],
        &[("min-scale", "3"), ("max-scale", "2")],
        &[("initial-scale", "0"), ("allow-zero-initial-scale", "true")],
        &[("container-concurrency-target-percentage", "1e-300")],
    ];
    for data in cases {
        let map: BTreeMap<String, String> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let parser: Vec<String> = match AutoscalerConfig::from_map(&map) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| format!("data.{}", e.key)).collect(),
        };
        assert_eq!(
            paths("knative-serving", "config-autoscaler", data),
            parser,
            "{data:?}"
        );
    }
}
