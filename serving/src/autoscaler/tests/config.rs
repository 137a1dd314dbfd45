//! `config-autoscaler` (§1.8), the annotations (§1.9), target resolution (§1.5), and the
//! agreement of `validate_annotations` with `knit-crds` admission.

use super::*;
use crate::autoscaler::annotations::{self as keys, ALL};

fn cm(pairs: &[(&str, &str)]) -> Result<AutoscalerConfig, Vec<FieldError>> {
    let m = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AutoscalerConfig::from_map(&m)
}

fn bad_keys(pairs: &[(&str, &str)]) -> Vec<String> {
    match cm(pairs) {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.key).collect(),
    }
}

#[test]
fn config_defaults_are_knatives() {
    let c = cm(&[]).unwrap_or_default();
    assert_eq!(c, AutoscalerConfig::default());
    assert_eq!(c.container_concurrency_target_fraction, 0.7);
    assert_eq!(c.container_concurrency_target_default, 100.0);
    assert_eq!(c.rps_target_default, 200.0);
    assert_eq!(c.target_burst_capacity, 211.0);
    assert_eq!(c.stable_window, s(60));
    assert_eq!(c.panic_window_percentage, 10.0);
    assert_eq!(c.panic_threshold(), 2.0);
    assert_eq!((c.max_scale_up_rate, c.max_scale_down_rate), (1000.0, 2.0));
    assert!(c.enable_scale_to_zero);
    assert_eq!(c.scale_to_zero_grace_period, s(30));
    assert_eq!(c.scale_to_zero_pod_retention_period, s(0));
    assert_eq!(c.pod_autoscaler_class, "kpa.autoscaling.knative.dev");
    assert_eq!(c.activator_capacity, 100.0);
    assert_eq!((c.initial_scale, c.min_scale, c.max_scale), (1, 0, 0));
    assert!(!c.allow_zero_initial_scale);
    assert_eq!((c.scale_down_delay, c.max_scale_limit), (s(0), 0));
    assert_eq!(crate::autoscaler::config::CONFIG_KEYS.len(), 20);
}

#[test]
fn config_reads_every_key() {
    let c = cm(&[
        ("container-concurrency-target-percentage", "80"),
        ("container-concurrency-target-default", "10"),
        ("requests-per-second-target-default", "50"),
        ("target-burst-capacity", "-1"),
        ("stable-window", "2m"),
        ("panic-window-percentage", "20"),
        ("panic-threshold-percentage", "300"),
        ("max-scale-up-rate", "3"),
        ("max-scale-down-rate", "4"),
        ("enable-scale-to-zero", "false"),
        ("scale-to-zero-grace-period", "10s"),
        ("scale-to-zero-pod-retention-period", "1m30s"),
        ("pod-autoscaler-class", "hpa.autoscaling.knative.dev"),
        ("activator-capacity", "50"),
        ("initial-scale", "0"),
        ("allow-zero-initial-scale", "true"),
        ("min-scale", "1"),
        ("max-scale", "5"),
        ("scale-down-delay", "15s"),
        ("max-scale-limit", "10"),
    ]);
    let c = match c {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    };
    assert!((c.container_concurrency_target_fraction - 0.8).abs() < 1e-12);
    assert_eq!(c.stable_window, s(120));
    assert_eq!(c.target_burst_capacity, -1.0);
    assert_eq!(c.panic_threshold(), 3.0);
    assert!(!c.enable_scale_to_zero && c.allow_zero_initial_scale);
    assert_eq!(c.scale_to_zero_pod_retention_period, s(90));
    assert_eq!(
        (c.initial_scale, c.min_scale, c.max_scale, c.max_scale_limit),
        (0, 1, 5, 10)
    );
    // Fractions are accepted as such (legacy).
    let c = cm(&[("container-concurrency-target-percentage", "0.5")]).unwrap_or_default();
    assert_eq!(c.container_concurrency_target_fraction, 0.5);
}

#[test]
fn config_validation() {
    let one = |k: &str, v: &str| bad_keys(&[(k, v)]);
    assert_eq!(one("stable-window", "5s"), ["stable-window"]);
    assert_eq!(one("stable-window", "61m"), ["stable-window"]);
    assert_eq!(one("stable-window", "6500ms"), ["stable-window"]);
    assert!(one("stable-window", "6s").is_empty());
    assert_eq!(
        one("scale-to-zero-grace-period", "0s"),
        ["scale-to-zero-grace-period"]
    );
    assert_eq!(one("scale-down-delay", "1500ms"), ["scale-down-delay"]);
    assert_eq!(
        one("target-burst-capacity", "-2"),
        ["target-burst-capacity"]
    );
    assert!(one("target-burst-capacity", "0").is_empty());
    assert_eq!(
        one("container-concurrency-target-percentage", "101"),
        ["container-concurrency-target-percentage"]
    );
    assert_eq!(
        one("container-concurrency-target-percentage", "0"),
        ["container-concurrency-target-percentage"]
    );
    assert_eq!(
        bad_keys(&[
            ("container-concurrency-target-percentage", "1"),
            ("container-concurrency-target-default", "0.005")
        ]),
        ["container-concurrency-target-percentage"]
    );
    assert_eq!(
        one("requests-per-second-target-default", "0.001"),
        ["requests-per-second-target-default"]
    );
    assert_eq!(one("activator-capacity", "0.5"), ["activator-capacity"]);
    assert_eq!(one("max-scale-up-rate", "1"), ["max-scale-up-rate"]);
    assert_eq!(one("max-scale-down-rate", "1.0"), ["max-scale-down-rate"]);
    assert_eq!(
        one("panic-window-percentage", "0.5"),
        ["panic-window-percentage"]
    );
    assert_eq!(
        one("panic-window-percentage", "101"),
        ["panic-window-percentage"]
    );
    assert_eq!(one("initial-scale", "0"), ["initial-scale"]);
    assert_eq!(one("initial-scale", "-1"), ["initial-scale"]);
    assert_eq!(one("min-scale", "-1"), ["min-scale"]);
    assert_eq!(
        bad_keys(&[("min-scale", "3"), ("max-scale", "2")]),
        ["min-scale"]
    );
    assert_eq!(
        bad_keys(&[("max-scale-limit", "5")]),
        ["max-scale"],
        "0 is unlimited"
    );
    assert_eq!(
        bad_keys(&[("max-scale-limit", "5"), ("max-scale", "6")]),
        ["max-scale"]
    );
    assert!(bad_keys(&[("max-scale-limit", "5"), ("max-scale", "5")]).is_empty());
    assert_eq!(one("max-scale-limit", "-1"), ["max-scale-limit"]);
    assert_eq!(one("enable-scale-to-zero", "yes"), ["enable-scale-to-zero"]);
    assert!(one("enable-scale-to-zero", "F").is_empty());
    assert_eq!(one("max-scale", "1.5"), ["max-scale"]);
    assert_eq!(
        one("stable-window", "60"),
        ["stable-window"],
        "Go durations need a unit"
    );
    assert_eq!(
        one("panic-threshold-percentage", "NaN"),
        ["panic-threshold-percentage"]
    );
    let all = cm(&[("stable-window", "1s"), ("max-scale-up-rate", "0")]);
    assert_eq!(
        all.map_err(|e| e.len()),
        Err(2),
        "every problem is reported"
    );
}

#[test]
fn target_resolution() {
    // Concurrency: CC, else the default; target annotation capped by CC; utilisation.
    assert_eq!(spec(&[], 0).target_value, 70.0);
    assert_eq!(spec(&[], 0).total_value, 100.0);
    assert_eq!(spec(&[], 10).target_value, 7.0);
    assert_eq!(spec(&[("target", "50")], 10).total_value, 10.0);
    assert_eq!(spec(&[("target", "5")], 10).total_value, 5.0);
    assert_eq!(spec(&[("target", "50")], 0).target_value, 35.0);
    let sp = spec(
        &[("target", "10"), ("target-utilization-percentage", "100")],
        0,
    );
    assert_eq!(sp.target_value, 10.0);
    assert_eq!(
        spec(&[("target", "0.01")], 0).target_value,
        0.01,
        "max(0.01, …)"
    );
    // RPS: the default 200 × 0.7, the annotation not capped by CC.
    let rps = spec(&[("metric", "rps")], 10);
    assert_eq!((rps.metric.clone(), rps.target_value), (Metric::Rps, 140.0));
    assert_eq!(
        spec(&[("metric", "rps"), ("target", "100")], 10).total_value,
        100.0
    );
    assert_eq!(spec(&[], 0).panic_threshold, 2.0);
    assert_eq!(
        spec(&[("panic-threshold-percentage", "150")], 0).panic_threshold,
        1.5
    );
    // Legacy aliases are read when the canonical key is absent.
    assert_eq!(spec(&[("minScale", "2")], 0).min_scale, 2);
    assert_eq!(
        spec(&[("minScale", "2"), ("min-scale", "3")], 0).min_scale,
        3
    );
    // Initial scale: the annotation when valid.
    assert_eq!(spec(&[("initial-scale", "4")], 0).initial_scale, 4);
    let allow = cm(&[("allow-zero-initial-scale", "true")]).unwrap_or_default();
    let zero = RevisionSpec::resolve(&allow, &ann(&[("initial-scale", "0")]), 0);
    assert_eq!(zero.map(|s| s.initial_scale), Ok(0));
    // Config-only values pass through; classes.
    let d = spec(&[], 0);
    assert!(d.is_kpa() && d.has_scrape_target() && d.reachable);
    assert_eq!(d.scale_to_zero_grace_period, s(30));
    let hpa = spec(&[("class", "hpa.autoscaling.knative.dev")], 0);
    assert!(!hpa.is_kpa());
    assert_eq!(
        hpa.unsupported().map(|(r, _)| r),
        Some("UnsupportedAutoscalerClass")
    );
    assert_eq!(d.unsupported(), None);
    assert_eq!(hpa.metric, Metric::Other("cpu".into()));
}

#[test]
fn contract_revision_carries_routing() {
    let rev: knit_crds::contract::serving::Revision =
        match serde_json::from_value(serde_json::json!({
            "uid": "u", "namespace": "default", "name": "hello-00001",
            "configuration": "hello",
            "container": {"name": "user-container", "argv": ["x"]},
            "containerConcurrency": 4, "timeoutSeconds": 300,
            "autoscaling": {"autoscaling.knative.dev/min-scale": "2"},
            "routed": false
        })) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
    let sp = RevisionSpec::for_revision(&AutoscalerConfig::default(), &rev);
    let sp = sp.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!sp.reachable);
    assert_eq!((sp.min_scale, sp.total_value), (2, 4.0));
    assert_eq!(scale_bounds(&sp), (0, 0), "min ignored when unreachable");
}

/// Annotation cases: each with the keys that must be refused (by key as written).
/// Annotations (short keys) and the short keys refused.
type Case = (Vec<(&'static str, &'static str)>, Vec<&'static str>);

fn cases() -> Vec<Case> {
    vec![
        (vec![], vec![]),
        (vec![("class", "kpa.autoscaling.knative.dev")], vec![]),
        (
            vec![("class", "hpa.autoscaling.knative.dev"), ("metric", "cpu")],
            vec![],
        ),
        (vec![("class", "foo.knative.dev")], vec!["class"]),
        (
            vec![("class", "example.com/custom"), ("metric", "anything")],
            vec![],
        ),
        (vec![("metric", "cpu")], vec!["metric"]),
        (vec![("metric", "rps")], vec![]),
        (
            vec![("class", "hpa.autoscaling.knative.dev"), ("metric", "")],
            vec!["metric"],
        ),
        (vec![("target", "0.001")], vec!["target"]),
        (vec![("target", "x")], vec!["target"]),
        (
            vec![("target-utilization-percentage", "101")],
            vec!["target-utilization-percentage"],
        ),
        (
            vec![("targetUtilizationPercentage", "0")],
            vec!["targetUtilizationPercentage"],
        ),
        (vec![("target-burst-capacity", "-1")], vec![]),
        (
            vec![("target-burst-capacity", "-2")],
            vec!["target-burst-capacity"],
        ),
        (vec![("min-scale", "-1")], vec!["min-scale"]),
        (vec![("min-scale", "x")], vec!["min-scale"]),
        (vec![("max-scale", "99999999999")], vec!["max-scale"]),
        (
            vec![("min-scale", "3"), ("max-scale", "2")],
            vec!["max-scale"],
        ),
        (vec![("minScale", "3"), ("maxScale", "2")], vec!["maxScale"]),
        (vec![("min-scale", "3"), ("max-scale", "0")], vec![]),
        (vec![("activation-scale", "1")], vec!["activation-scale"]),
        (vec![("activation-scale", "2")], vec![]),
        (vec![("activation-scale", "x")], vec!["activation-scale"]),
        (
            vec![("min-scale", "3"), ("activation-scale", "2")],
            vec!["activation-scale"],
        ),
        (
            vec![("max-scale", "3"), ("activation-scale", "4")],
            vec!["activation-scale"],
        ),
        (vec![("initial-scale", "0")], vec!["initial-scale"]),
        (vec![("initialScale", "-1")], vec!["initialScale"]),
        (vec![("initial-scale", "x")], vec!["initial-scale"]),
        (vec![("initial-scale", "5")], vec![]),
        (vec![("window", "5s")], vec!["window"]),
        (vec![("window", "6s")], vec![]),
        (vec![("window", "1h1s")], vec!["window"]),
        (vec![("window", "6500ms")], vec!["window"]),
        (vec![("window", "soon")], vec!["window"]),
        (
            vec![("panic-window-percentage", "0.5")],
            vec!["panic-window-percentage"],
        ),
        (vec![("panicWindowPercentage", "100")], vec![]),
        (
            vec![("panic-threshold-percentage", "100")],
            vec!["panic-threshold-percentage"],
        ),
        (vec![("panic-threshold-percentage", "1000")], vec![]),
        (vec![("scale-down-delay", "1h")], vec![]),
        (vec![("scale-down-delay", "2h")], vec!["scale-down-delay"]),
        (vec![("scaleDownDelay", "1500ms")], vec!["scaleDownDelay"]),
        (
            vec![("scale-to-zero-pod-retention-period", "1500ms")],
            vec![],
        ),
        (
            vec![("scale-to-zero-pod-retention-period", "61m")],
            vec!["scale-to-zero-pod-retention-period"],
        ),
        (
            vec![("metric-aggregation-algorithm", "weightedExponential")],
            vec![],
        ),
        (
            vec![("metric-aggregation-algorithm", "median")],
            vec!["metric-aggregation-algorithm"],
        ),
        (
            vec![
                ("class", "hpa.autoscaling.knative.dev"),
                ("metric-aggregation-algorithm", "median"),
            ],
            vec![],
        ),
    ]
}

#[test]
fn annotation_validation_cases() {
    let cfg = AutoscalerConfig::default();
    for (pairs, want) in cases() {
        let got: Vec<String> = validate_annotations(&cfg, &ann(&pairs))
            .into_iter()
            .map(|e| {
                e.key
                    .trim_start_matches("autoscaling.knative.dev/")
                    .to_string()
            })
            .collect();
        assert_eq!(got, want, "{pairs:?}");
    }
    // Config-dependent rules.
    let limited = cm(&[("max-scale-limit", "10"), ("max-scale", "5")]).unwrap_or_default();
    let keys_of = |c: &AutoscalerConfig, p: &[(&str, &str)]| validate_annotations(c, &ann(p)).len();
    assert_eq!(keys_of(&limited, &[("max-scale", "11")]), 1);
    assert_eq!(keys_of(&limited, &[("max-scale", "0")]), 1);
    assert_eq!(keys_of(&limited, &[("max-scale", "10")]), 0);
    let allow = cm(&[("allow-zero-initial-scale", "true")]).unwrap_or_default();
    assert_eq!(keys_of(&allow, &[("initial-scale", "0")]), 0);
    // Knative's messages.
    let msgs = |p: &[(&str, &str)]| -> Vec<String> {
        validate_annotations(&cfg, &ann(p))
            .into_iter()
            .map(|e| e.message)
            .collect()
    };
    assert_eq!(
        msgs(&[("min-scale", "3"), ("max-scale", "2")]),
        ["max-scale=2 is less than min-scale=3"]
    );
    assert_eq!(
        msgs(&[("target", "0.001")]),
        ["target 0.001 should be at least 0.01"]
    );
    assert_eq!(msgs(&[("window", "5s")]), ["expected 6s <= 5s <= 1h0m0s"]);
    assert_eq!(
        msgs(&[("window", "6500ms")]),
        ["must be specified with at most second precision"]
    );
    // Every key the autoscaler reads is known.
    assert_eq!(ALL.len(), 15);
    assert!(ALL.contains(&keys::WINDOW));
}

#[test]
fn resolve_refuses_invalid_annotations() {
    let e = RevisionSpec::resolve(&AutoscalerConfig::default(), &ann(&[("window", "1s")]), 0);
    assert_eq!(
        e.map_err(|e| e.into_iter().map(|e| e.key).collect::<Vec<_>>()),
        Err(vec!["autoscaling.knative.dev/window".to_string()])
    );
}

/// The admission copy of the rules (in `knit-crds`) agrees with this one, message for message,
/// under the default ConfigMap.
#[test]
fn admission_agrees_with_validate_annotations() {
    let cfg = AutoscalerConfig::default();
    for (pairs, _) in cases() {
        let a = ann(&pairs);
        let mut ours: Vec<(String, String)> = validate_annotations(&cfg, &a)
            .into_iter()
            .map(|e| (e.key, e.message))
            .collect();
        let doc = serde_json::json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": {"name": "hello-00001", "namespace": "default", "annotations": a},
            "spec": {"containers": [{"image": "example.com/hello", "command": ["hello"]}]}
        });
        let verdict =
            knit_crds::admission::admit_value(doc, &knit_crds::admission::Hooks::default());
        let mut theirs: Vec<(String, String)> = match verdict.result {
            Ok(_) => Vec::new(),
            Err(errs) => errs
                .into_iter()
                .filter_map(|e| {
                    e.path
                        .strip_prefix("metadata.annotations.")
                        .map(|k| (k.to_string(), e.message))
                })
                .collect(),
        };
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{pairs:?}");
    }
}
