//! `autoscaling.knative.dev/*` annotations of a Revision (or a revision template), with
//! Knative's rules and messages (`annotation_validation.go`) under the default
//! `config-autoscaler` (no `max-scale-limit`, `allow-zero-initial-scale` false). The serving
//! crate's `autoscaler::validate_annotations` holds the same rules (and applies the cluster's
//! ConfigMap); a serving test cross-checks the two.

use std::collections::BTreeMap;
use std::time::Duration;

use super::common::Errors;
use crate::duration;

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

/// The annotations being checked and where their errors go.
struct Check<'a> {
    a: &'a BTreeMap<String, String>,
    path: &'a str,
    errs: &'a mut Errors,
}

impl<'a> Check<'a> {
    fn get(&self, key: AnnotationKey) -> Option<(&'a str, &'a str)> {
        annotation(self.a, key)
    }

    fn err(&mut self, key: &str, message: String) {
        self.errs.add(format!("{}.{key}", self.path), message);
    }

    /// The class annotation (absent means KPA).
    fn class(&self) -> &'a str {
        self.get(CLASS).map_or(KPA, |(_, v)| v)
    }
}

/// Every problem with the annotations `a`, reported under `path` (the annotations' field).
/// The families are checked in Knative's order, so the errors come in its order too.
pub(crate) fn annotations(a: &BTreeMap<String, String>, path: &str, errs: &mut Errors) {
    let mut c = Check { a, path, errs };
    class(&mut c);
    scale_bounds(&mut c);
    numbers(&mut c);
    windows(&mut c);
    metric(&mut c);
    initial_scale(&mut c);
}

/// `class`: any class outside Knative's group, or one of Knative's two.
fn class(c: &mut Check<'_>) {
    if let Some((k, v)) = c.get(CLASS)
        && v.ends_with(".knative.dev")
        && v != KPA
        && v != HPA
    {
        c.err(k, format!("invalid value: {v}"));
    }
}

/// `min-scale`, `max-scale` and `activation-scale`: each in range, and in order.
fn scale_bounds(c: &mut Check<'_>) {
    let min = scale(c, MIN_SCALE);
    let max = scale(c, MAX_SCALE);
    if max != 0
        && max < min
        && let Some((k, _)) = c.get(MAX_SCALE)
    {
        c.err(k, format!("max-scale={max} is less than min-scale={min}"));
    }
    if let Some((k, v)) = c.get(ACTIVATION_SCALE) {
        match v.parse::<i32>().map(i64::from) {
            Err(_) => c.err(k, format!("invalid value: {v}")),
            Ok(n) if min > n => c.err(
                k,
                format!("min-scale={min} is greater than activation-scale={n}"),
            ),
            Ok(n) if max < n && max != 0 => c.err(
                k,
                format!("max-scale={max} is less than activation-scale={n}"),
            ),
            Ok(n) if n < 2 => c.err(k, format!("activation-scale={n} must be greater than 1")),
            Ok(_) => {}
        }
    }
}

/// A scale bound's value (0 when absent or invalid, the error reported).
fn scale(c: &mut Check<'_>, key: AnnotationKey) -> i64 {
    let Some((k, v)) = c.get(key) else {
        return 0;
    };
    match v.parse::<i64>() {
        Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => n,
        Ok(_) => {
            c.err(k, format!("expected 0 <= {v} <= {}", i32::MAX));
            0
        }
        Err(_) => {
            c.err(k, format!("invalid value: {v}"));
            0
        }
    }
}

/// The numeric annotations: panic percentages, target, utilisation, burst capacity.
fn numbers(c: &mut Check<'_>) {
    number(c, PANIC_WINDOW_PERCENTAGE, &|v, f| {
        (!(1.0..=100.0).contains(&f)).then(|| format!("expected 1 <= {v} <= 100"))
    });
    number(c, PANIC_THRESHOLD_PERCENTAGE, &|v, f| {
        (!(110.0..=1000.0).contains(&f)).then(|| format!("expected 110 <= {v} <= 1000"))
    });
    number(c, TARGET, &|v, f| {
        (f < 0.01).then(|| format!("target {v} should be at least 0.01"))
    });
    number(c, TARGET_UTILIZATION, &|v, f| {
        (!(1.0..=100.0).contains(&f)).then(|| format!("expected 1 <= {v} <= 100"))
    });
    number(c, TARGET_BURST_CAPACITY, &|v, f| {
        (f < 0.0 && f != -1.0).then(|| format!("invalid value: {v}"))
    });
}

/// One numeric annotation: a number, and `bad` says what is wrong with its value.
fn number(c: &mut Check<'_>, key: AnnotationKey, bad: &dyn Fn(&str, f64) -> Option<String>) {
    if let Some((k, v)) = c.get(key) {
        match float(v) {
            None => c.err(k, format!("invalid value: {v}")),
            Some(f) => {
                if let Some(m) = bad(v, f) {
                    c.err(k, m);
                }
            }
        }
    }
}

/// The duration annotations: stable window, pod retention, scale-down delay.
fn windows(c: &mut Check<'_>) {
    window(c, WINDOW, 6, true);
    window(c, SCALE_TO_ZERO_POD_RETENTION, 0, false);
    window(c, SCALE_DOWN_DELAY, 0, true);
}

/// One duration annotation: a Go duration from `lo` seconds to an hour, in whole seconds
/// when `whole`.
fn window(c: &mut Check<'_>, key: AnnotationKey, lo: u64, whole: bool) {
    if let Some((k, v)) = c.get(key) {
        match duration::parse_go(v) {
            Err(_) => c.err(k, format!("invalid value: {v}")),
            Ok(d) if d.as_secs() < lo || d > Duration::from_secs(3600) => {
                c.err(k, format!("expected {lo}s <= {v} <= 1h0m0s"))
            }
            Ok(d) if whole && d.subsec_nanos() != 0 => {
                c.err(k, "must be specified with at most second precision".into())
            }
            Ok(_) => {}
        }
    }
}

/// `metric` (what the class runs) and `metric-aggregation-algorithm` (KPA only).
fn metric(c: &mut Check<'_>) {
    let class = c.class();
    if let Some((k, m)) = c.get(METRIC) {
        let ok = match class {
            KPA => matches!(m, "concurrency" | "rps"),
            HPA => !m.is_empty(),
            _ => true,
        };
        if !ok {
            c.err(k, format!("invalid value: {m}"));
        }
    }
    if class == KPA
        && let Some((k, v)) = c.get(METRIC_AGGREGATION_ALGORITHM)
        && !v.is_empty()
        && !matches!(v, "linear" | "weighted-exponential" | "weightedExponential")
    {
        c.err(k, format!("invalid value: {v}"));
    }
}

/// `initial-scale`: a count, and not 0 (the default ConfigMap does not allow it).
fn initial_scale(c: &mut Check<'_>) {
    if let Some((k, v)) = c.get(INITIAL_SCALE) {
        match v.parse::<i64>() {
            Err(_) => c.err(k, format!("invalid value: {v}")),
            Ok(n) if n < 0 => c.err(k, format!("invalid value: {v}: must be greater than 0")),
            Ok(0) => c.err(k, "invalid value: 0: 0 not allowed by cluster".into()),
            Ok(_) => {}
        }
    }
}
