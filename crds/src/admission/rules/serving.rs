//! Service, Configuration, Revision, Route: traffic, revision templates, autoscaling
//! annotations and the runtime contract's reserved names.

use std::collections::{BTreeMap, BTreeSet};

use super::common::Errors;
use crate::admission::meta::{dns1035_label, dns1123_subdomain};
use crate::api::serving::{RevisionSpec, RevisionTemplateSpec, TrafficTarget};
use crate::duration;

const RESERVED_ENV: &[&str] = &["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];
const RESERVED_PORTS: &[i32] = &[8012, 8013, 8022, 8112, 9090, 9091];
const MAX_TIMEOUT_SECONDS: i64 = 600;
const MAX_CONTAINER_CONCURRENCY: i64 = 1000;

/// Traffic targets of a Service (`in_service`) or a Route.
pub(crate) fn traffic(targets: &[TrafficTarget], path: &str, in_service: bool, errs: &mut Errors) {
    let mut sum = 0i64;
    let mut tags = BTreeSet::new();
    for (i, t) in targets.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(tag) = &t.tag {
            if let Some(problem) = dns1035_label(tag) {
                errs.add(
                    format!("{p}.tag"),
                    format!("invalid value {tag:?}: {problem}"),
                );
            }
            if !tags.insert(tag) {
                errs.add(format!("{p}.tag"), format!("duplicate tag {tag:?}"));
            }
        }
        if in_service && t.configuration_name.is_some() {
            errs.add(
                format!("{p}.configurationName"),
                "must not be set inside a Service (its configuration is implied)",
            );
        }
        match (&t.revision_name, &t.configuration_name) {
            (Some(_), Some(_)) => errs.add(
                &p,
                "expected exactly one, got both: revisionName, configurationName",
            ),
            (None, None) if !in_service => errs.add(
                &p,
                "expected exactly one, got neither: revisionName, configurationName",
            ),
            _ => {}
        }
        if let Some(r) = &t.revision_name {
            if let Some(problem) = dns1123_subdomain(r) {
                errs.add(
                    format!("{p}.revisionName"),
                    format!("invalid value {r:?}: {problem}"),
                );
            }
            if t.latest_revision == Some(true) {
                errs.add(
                    format!("{p}.latestRevision"),
                    "may not be true when revisionName is set",
                );
            }
        } else if t.latest_revision == Some(false) {
            errs.add(
                format!("{p}.latestRevision"),
                "may not be false when revisionName is not set",
            );
        }
        match t.percent {
            Some(pc) if !(0..=100).contains(&pc) => errs.add(
                format!("{p}.percent"),
                format!("invalid value {pc}: must be between 0 and 100"),
            ),
            Some(pc) => sum += pc,
            None => {}
        }
        if t.url.is_some() {
            errs.add(format!("{p}.url"), "must not be set (it is status only)");
        }
    }
    if !targets.is_empty() && sum != 100 {
        errs.add(path, format!("traffic targets sum to {sum}, want 100"));
    }
}

/// A Service's or Configuration's template; `owner` is the Service/Configuration name.
pub(crate) fn template(
    t: Option<&RevisionTemplateSpec>,
    owner: &str,
    path: &str,
    errs: &mut Errors,
) {
    let Some(t) = t else {
        errs.missing(format!("{path}.spec.containers"));
        return;
    };
    if let Some(meta) = &t.metadata {
        if let Some(name) = &meta.name {
            if !name.starts_with(&format!("{owner}-")) {
                errs.add(
                    format!("{path}.metadata.name"),
                    format!("{name:?} must have prefix \"{owner}-\""),
                );
            }
            if let Some(problem) = dns1123_subdomain(name) {
                errs.add(
                    format!("{path}.metadata.name"),
                    format!("invalid value {name:?}: {problem}"),
                );
            }
        }
        if let Some(a) = &meta.annotations {
            autoscaling(a, &format!("{path}.metadata.annotations"), errs);
        }
    }
    match &t.spec {
        Some(spec) => revision(spec, &format!("{path}.spec"), errs),
        None => errs.missing(format!("{path}.spec.containers")),
    }
}

/// A Revision spec.
pub(crate) fn revision(spec: &RevisionSpec, path: &str, errs: &mut Errors) {
    let containers = &spec.pod.containers;
    if containers.is_empty() {
        errs.missing(format!("{path}.containers"));
    }
    let mut with_port = 0;
    for (i, c) in containers.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        if c.image.as_deref().is_none_or(str::is_empty)
            && c.command.as_ref().is_none_or(Vec::is_empty)
        {
            errs.missing(format!("{p}.image"));
        }
        for (j, e) in c.env.iter().flatten().enumerate() {
            if RESERVED_ENV.contains(&e.name.as_str()) {
                errs.add(
                    format!("{p}.env[{j}].name"),
                    format!("{:?} is a reserved environment variable", e.name),
                );
            }
        }
        let ports = c.ports.as_deref().unwrap_or_default();
        if ports.len() > 1 {
            errs.add(
                format!("{p}.ports"),
                "more than one container port is not allowed",
            );
        }
        if !ports.is_empty() {
            with_port += 1;
        }
        for (j, port) in ports.iter().enumerate() {
            if RESERVED_PORTS.contains(&port.container_port) {
                errs.add(
                    format!("{p}.ports[{j}].containerPort"),
                    format!("port {} is reserved", port.container_port),
                );
            }
        }
    }
    if containers.len() > 1 && with_port != 1 {
        errs.add(
            format!("{path}.containers"),
            "with more than one container, exactly one must declare a port (the serving container)",
        );
    }
    if let Some(cc) = spec.container_concurrency
        && !(0..=MAX_CONTAINER_CONCURRENCY).contains(&cc)
    {
        errs.add(
            format!("{path}.containerConcurrency"),
            format!("invalid value {cc}: must be between 0 and {MAX_CONTAINER_CONCURRENCY}"),
        );
    }
    for (field, v) in [
        ("timeoutSeconds", spec.timeout_seconds),
        (
            "responseStartTimeoutSeconds",
            spec.response_start_timeout_seconds,
        ),
        ("idleTimeoutSeconds", spec.idle_timeout_seconds),
    ] {
        if let Some(v) = v
            && !(0..=MAX_TIMEOUT_SECONDS).contains(&v)
        {
            errs.add(
                format!("{path}.{field}"),
                format!("invalid value {v}: must be between 0 and {MAX_TIMEOUT_SECONDS}"),
            );
        }
    }
}

/// An `autoscaling.knative.dev/*` annotation: its canonical key and Knative's legacy alias
/// (read when the canonical key is absent).
type AnnotationKey = (&'static str, Option<&'static str>);

const CLASS: AnnotationKey = ("class", None);
const METRIC: AnnotationKey = ("metric", None);
const TARGET: AnnotationKey = ("target", None);
const TARGET_UTILIZATION: AnnotationKey = (
    "target-utilization-percentage",
    Some("targetUtilizationPercentage"),
);
const TARGET_BURST_CAPACITY: AnnotationKey = ("target-burst-capacity", Some("targetBurstCapacity"));
const MIN_SCALE: AnnotationKey = ("min-scale", Some("minScale"));
const MAX_SCALE: AnnotationKey = ("max-scale", Some("maxScale"));
const INITIAL_SCALE: AnnotationKey = ("initial-scale", Some("initialScale"));
const ACTIVATION_SCALE: AnnotationKey = ("activation-scale", None);
const WINDOW: AnnotationKey = ("window", None);
const PANIC_WINDOW_PERCENTAGE: AnnotationKey =
    ("panic-window-percentage", Some("panicWindowPercentage"));
const PANIC_THRESHOLD_PERCENTAGE: AnnotationKey = (
    "panic-threshold-percentage",
    Some("panicThresholdPercentage"),
);
const SCALE_DOWN_DELAY: AnnotationKey = ("scale-down-delay", Some("scaleDownDelay"));
const SCALE_TO_ZERO_POD_RETENTION: AnnotationKey = (
    "scale-to-zero-pod-retention-period",
    Some("scaleToZeroPodRetentionPeriod"),
);
const METRIC_AGGREGATION_ALGORITHM: AnnotationKey = (
    "metric-aggregation-algorithm",
    Some("metricAggregationAlgorithm"),
);
const KPA: &str = "kpa.autoscaling.knative.dev";
const HPA: &str = "hpa.autoscaling.knative.dev";

/// The annotation's key as written and its value.
fn annotation(a: &BTreeMap<String, String>, (key, legacy): AnnotationKey) -> Option<(&str, &str)> {
    std::iter::once(key)
        .chain(legacy)
        .find_map(|k| a.get_key_value(&format!("autoscaling.knative.dev/{k}")))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// A number as Go's `strconv.ParseFloat` reads it; NaN refused.
fn float(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|f| !f.is_nan())
}

/// `autoscaling.knative.dev/*` annotations, with Knative's rules and messages
/// (`annotation_validation.go`) under the default `config-autoscaler` (no `max-scale-limit`,
/// `allow-zero-initial-scale` false). The serving crate's `autoscaler::validate_annotations`
/// holds the same rules (and applies the cluster's ConfigMap); a serving test cross-checks
/// the two.
pub(crate) fn autoscaling(a: &BTreeMap<String, String>, path: &str, errs: &mut Errors) {
    let mut err = |k: &str, m: String| errs.add(format!("{path}.{k}"), m);

    if let Some((k, v)) = annotation(a, CLASS)
        && v.ends_with(".knative.dev")
        && v != KPA
        && v != HPA
    {
        err(k, format!("invalid value: {v}"));
    }

    let mut scale = |key: AnnotationKey| -> i64 {
        let Some((k, v)) = annotation(a, key) else {
            return 0;
        };
        match v.parse::<i64>() {
            Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => n,
            Ok(_) => {
                err(k, format!("expected 0 <= {v} <= {}", i32::MAX));
                0
            }
            Err(_) => {
                err(k, format!("invalid value: {v}"));
                0
            }
        }
    };
    let min = scale(MIN_SCALE);
    let max = scale(MAX_SCALE);
    if max != 0
        && max < min
        && let Some((k, _)) = annotation(a, MAX_SCALE)
    {
        err(k, format!("max-scale={max} is less than min-scale={min}"));
    }
    if let Some((k, v)) = annotation(a, ACTIVATION_SCALE) {
        match v.parse::<i32>().map(i64::from) {
            Err(_) => err(k, format!("invalid value: {v}")),
            Ok(n) if min > n => err(
                k,
                format!("min-scale={min} is greater than activation-scale={n}"),
            ),
            Ok(n) if max < n && max != 0 => err(
                k,
                format!("max-scale={max} is less than activation-scale={n}"),
            ),
            Ok(n) if n < 2 => err(k, format!("activation-scale={n} must be greater than 1")),
            Ok(_) => {}
        }
    }

    let mut number = |key: AnnotationKey, bad: &dyn Fn(&str, f64) -> Option<String>| {
        if let Some((k, v)) = annotation(a, key) {
            match float(v) {
                None => err(k, format!("invalid value: {v}")),
                Some(f) => {
                    if let Some(m) = bad(v, f) {
                        err(k, m);
                    }
                }
            }
        }
    };
    number(PANIC_WINDOW_PERCENTAGE, &|v, f| {
        (!(1.0..=100.0).contains(&f)).then(|| format!("expected 1 <= {v} <= 100"))
    });
    number(PANIC_THRESHOLD_PERCENTAGE, &|v, f| {
        (!(110.0..=1000.0).contains(&f)).then(|| format!("expected 110 <= {v} <= 1000"))
    });
    number(TARGET, &|v, f| {
        (f < 0.01).then(|| format!("target {v} should be at least 0.01"))
    });
    number(TARGET_UTILIZATION, &|v, f| {
        (!(1.0..=100.0).contains(&f)).then(|| format!("expected 1 <= {v} <= 100"))
    });
    number(TARGET_BURST_CAPACITY, &|v, f| {
        (f < 0.0 && f != -1.0).then(|| format!("invalid value: {v}"))
    });

    let mut secs = |key: AnnotationKey, lo: u64, whole: bool| {
        if let Some((k, v)) = annotation(a, key) {
            match duration::parse_go(v) {
                Err(_) => err(k, format!("invalid value: {v}")),
                Ok(d) if d.as_secs() < lo || d > std::time::Duration::from_secs(3600) => {
                    err(k, format!("expected {lo}s <= {v} <= 1h0m0s"))
                }
                Ok(d) if whole && d.subsec_nanos() != 0 => {
                    err(k, "must be specified with at most second precision".into())
                }
                Ok(_) => {}
            }
        }
    };
    secs(WINDOW, 6, true);
    secs(SCALE_TO_ZERO_POD_RETENTION, 0, false);
    secs(SCALE_DOWN_DELAY, 0, true);

    let class = annotation(a, CLASS).map_or(KPA, |(_, v)| v);
    if let Some((k, m)) = annotation(a, METRIC) {
        let ok = match class {
            KPA => matches!(m, "concurrency" | "rps"),
            HPA => !m.is_empty(),
            _ => true,
        };
        if !ok {
            err(k, format!("invalid value: {m}"));
        }
    }
    if class == KPA
        && let Some((k, v)) = annotation(a, METRIC_AGGREGATION_ALGORITHM)
        && !v.is_empty()
        && !matches!(v, "linear" | "weighted-exponential" | "weightedExponential")
    {
        err(k, format!("invalid value: {v}"));
    }

    if let Some((k, v)) = annotation(a, INITIAL_SCALE) {
        match v.parse::<i64>() {
            Err(_) => err(k, format!("invalid value: {v}")),
            Ok(n) if n < 0 => err(k, format!("invalid value: {v}: must be greater than 0")),
            Ok(0) => err(k, "invalid value: 0: 0 not allowed by cluster".into()),
            Ok(_) => {}
        }
    }
}

/// `serving.knative.dev/rollout-duration` on a Service or Route.
pub(crate) fn rollout(a: Option<&BTreeMap<String, String>>, errs: &mut Errors) {
    if let Some(v) = a.and_then(|a| a.get("serving.knative.dev/rollout-duration"))
        && let Err(e) = duration::parse_go(v)
    {
        errs.add(
            "metadata.annotations.serving.knative.dev/rollout-duration",
            e,
        );
    }
}
