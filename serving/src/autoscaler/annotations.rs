//! The `autoscaling.knative.dev/*` revision annotations of reference §1.9: their keys (with
//! Knative's legacy camelCase aliases) and Knative's validation
//! (`pkg/apis/autoscaling/annotation_validation.go`). Admission in `knit-crds` keeps its own
//! copy of these rules (it must not depend on this crate); `tests` cross-checks the two.

use std::collections::BTreeMap;
use std::time::Duration;

use super::FieldError;
use super::config::{AutoscalerConfig, parse_float};

/// The annotation group.
pub const GROUP: &str = "autoscaling.knative.dev";
/// The HPA class (admitted; Knit does not run it).
pub const HPA_CLASS: &str = "hpa.autoscaling.knative.dev";
/// The KPA class, the smallest per-pod target and the stable window's range, shared with
/// the `config-autoscaler` parser.
pub use knit_crds::configmap::autoscaler::{KPA_CLASS, TARGET_MIN, WINDOW_MAX, WINDOW_MIN};

/// An annotation: its canonical key and, for some, a legacy alias read when the canonical
/// key is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// `autoscaling.knative.dev/min-scale`.
    pub canonical: &'static str,
    /// `autoscaling.knative.dev/minScale`.
    pub legacy: Option<&'static str>,
}

impl Key {
    /// The key found in `a` (canonical first) and its value.
    pub fn get<'a>(&self, a: &'a BTreeMap<String, String>) -> Option<(&'a str, &'a str)> {
        std::iter::once(self.canonical)
            .chain(self.legacy)
            .find_map(|k| a.get_key_value(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

const fn key(canonical: &'static str) -> Key {
    Key {
        canonical,
        legacy: None,
    }
}

const fn aliased(canonical: &'static str, legacy: &'static str) -> Key {
    Key {
        canonical,
        legacy: Some(legacy),
    }
}

/// `class`.
pub const CLASS: Key = key("autoscaling.knative.dev/class");
/// `metric`.
pub const METRIC: Key = key("autoscaling.knative.dev/metric");
/// `target`.
pub const TARGET: Key = key("autoscaling.knative.dev/target");
/// `target-utilization-percentage`.
pub const TARGET_UTILIZATION: Key = aliased(
    "autoscaling.knative.dev/target-utilization-percentage",
    "autoscaling.knative.dev/targetUtilizationPercentage",
);
/// `target-burst-capacity`.
pub const TARGET_BURST_CAPACITY: Key = aliased(
    "autoscaling.knative.dev/target-burst-capacity",
    "autoscaling.knative.dev/targetBurstCapacity",
);
/// `min-scale`.
pub const MIN_SCALE: Key = aliased(
    "autoscaling.knative.dev/min-scale",
    "autoscaling.knative.dev/minScale",
);
/// `max-scale`.
pub const MAX_SCALE: Key = aliased(
    "autoscaling.knative.dev/max-scale",
    "autoscaling.knative.dev/maxScale",
);
/// `initial-scale`.
pub const INITIAL_SCALE: Key = aliased(
    "autoscaling.knative.dev/initial-scale",
    "autoscaling.knative.dev/initialScale",
);
/// `activation-scale`.
pub const ACTIVATION_SCALE: Key = key("autoscaling.knative.dev/activation-scale");
/// `window`.
pub const WINDOW: Key = key("autoscaling.knative.dev/window");
/// `panic-window-percentage`.
pub const PANIC_WINDOW_PERCENTAGE: Key = aliased(
    "autoscaling.knative.dev/panic-window-percentage",
    "autoscaling.knative.dev/panicWindowPercentage",
);
/// `panic-threshold-percentage`.
pub const PANIC_THRESHOLD_PERCENTAGE: Key = aliased(
    "autoscaling.knative.dev/panic-threshold-percentage",
    "autoscaling.knative.dev/panicThresholdPercentage",
);
/// `scale-down-delay`.
pub const SCALE_DOWN_DELAY: Key = aliased(
    "autoscaling.knative.dev/scale-down-delay",
    "autoscaling.knative.dev/scaleDownDelay",
);
/// `scale-to-zero-pod-retention-period`.
pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD: Key = aliased(
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
    "autoscaling.knative.dev/scaleToZeroPodRetentionPeriod",
);
/// `metric-aggregation-algorithm`.
pub const METRIC_AGGREGATION_ALGORITHM: Key = aliased(
    "autoscaling.knative.dev/metric-aggregation-algorithm",
    "autoscaling.knative.dev/metricAggregationAlgorithm",
);

/// Every annotation the autoscaler reads.
pub const ALL: &[Key] = &[
    CLASS,
    METRIC,
    TARGET,
    TARGET_UTILIZATION,
    TARGET_BURST_CAPACITY,
    MIN_SCALE,
    MAX_SCALE,
    INITIAL_SCALE,
    ACTIVATION_SCALE,
    WINDOW,
    PANIC_WINDOW_PERCENTAGE,
    PANIC_THRESHOLD_PERCENTAGE,
    SCALE_DOWN_DELAY,
    SCALE_TO_ZERO_POD_RETENTION_PERIOD,
    METRIC_AGGREGATION_ALGORITHM,
];

/// The class a revision's annotations select (the annotation alone, as Knative's
/// validation reads it; absent means KPA).
pub fn class_of(a: &BTreeMap<String, String>) -> &str {
    CLASS.get(a).map_or(KPA_CLASS, |(_, v)| v)
}

/// Validate the annotations against the cluster's `config-autoscaler` (only
/// `max-scale-limit` and `allow-zero-initial-scale` matter). Returns every problem, keyed
/// by the annotation key as written. The messages are Knative's, and so is their order: the
/// families are checked one after the other as Knative does.
pub fn validate_annotations(
    config: &AutoscalerConfig,
    a: &BTreeMap<String, String>,
) -> Vec<FieldError> {
    let mut c = Check {
        a,
        errs: Vec::new(),
    };
    c.class();
    c.scale_bounds(config.max_scale_limit);
    c.numbers();
    c.windows();
    c.metric();
    c.initial_scale(config.allow_zero_initial_scale);
    c.errs
}

/// The annotations being checked and the problems found so far.
struct Check<'a> {
    a: &'a BTreeMap<String, String>,
    errs: Vec<FieldError>,
}

impl<'a> Check<'a> {
    fn get(&self, key: Key) -> Option<(&'a str, &'a str)> {
        key.get(self.a)
    }

    fn err(&mut self, key: &str, message: String) {
        self.errs.push(FieldError::new(key, message));
    }

    /// `class`: any class outside Knative's group, or one of Knative's two.
    fn class(&mut self) {
        if let Some((k, v)) = self.get(CLASS)
            && v.ends_with(".knative.dev")
            && v != KPA_CLASS
            && v != HPA_CLASS
        {
            self.err(k, format!("invalid value: {v}"));
        }
    }

    /// `min-scale`, `max-scale` (within `max-scale-limit` when the cluster sets one) and
    /// `activation-scale`: each in range, and in order.
    fn scale_bounds(&mut self, max_scale_limit: u32) {
        let min = self.scale(MIN_SCALE);
        let max = self.scale(MAX_SCALE);
        if max != 0
            && max < min
            && let Some((k, _)) = self.get(MAX_SCALE)
        {
            self.err(k, format!("max-scale={max} is less than min-scale={min}"));
        }
        let limit = i64::from(max_scale_limit);
        if let Some((k, _)) = self.get(MAX_SCALE)
            && limit > 0
        {
            if max > limit {
                self.err(k, format!("expected 1 <= {max} <= {limit}"));
            }
            if max == 0 {
                self.err(
                    k,
                    format!("max-scale=0 (unlimited), must be less than {limit}"),
                );
            }
        }
        if let Some((k, v)) = self.get(ACTIVATION_SCALE) {
            match v.parse::<i32>().map(i64::from) {
                Err(_) => self.err(k, format!("invalid value: {v}")),
                Ok(n) if min > n => self.err(
                    k,
                    format!("min-scale={min} is greater than activation-scale={n}"),
                ),
                Ok(n) if max < n && max != 0 => self.err(
                    k,
                    format!("max-scale={max} is less than activation-scale={n}"),
                ),
                Ok(n) if n < 2 => {
                    self.err(k, format!("activation-scale={n} must be greater than 1"))
                }
                Ok(_) => {}
            }
        }
    }

    /// A scale bound's value (0 when absent or invalid, the error recorded).
    fn scale(&mut self, key: Key) -> i64 {
        let Some((k, v)) = self.get(key) else {
            return 0;
        };
        match v.parse::<i64>() {
            Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => n,
            Ok(_) => {
                self.err(k, format!("expected 0 <= {v} <= {}", i32::MAX));
                0
            }
            Err(_) => {
                self.err(k, format!("invalid value: {v}"));
                0
            }
        }
    }

    /// The numeric annotations: panic percentages, target, utilisation, burst capacity.
    fn numbers(&mut self) {
        self.number(PANIC_WINDOW_PERCENTAGE, &|v, f| {
            (!(1.0..=100.0).contains(&f)).then(|| format!("expected 1 <= {v} <= 100"))
        });
        self.number(PANIC_THRESHOLD_PERCENTAGE, &|v, f| {
            (!(110.0..=1000.0).contains(&f)).then(|| format!("expected 110 <= {v} <= 1000"))
        });
        self.number(TARGET, &|v, f| {
            (f < TARGET_MIN).then(|| format!("target {v} should be at least {TARGET_MIN}"))
        });
        self.number(TARGET_UTILIZATION, &|v, f| {
            (!(1.0..=100.0).contains(&f)).then(|| format!("expected 1 <= {v} <= 100"))
        });
        self.number(TARGET_BURST_CAPACITY, &|v, f| {
            (f < 0.0 && f != -1.0).then(|| format!("invalid value: {v}"))
        });
    }

    /// One numeric annotation: a number, and `check` says what is wrong with its value.
    fn number(&mut self, key: Key, check: &dyn Fn(&str, f64) -> Option<String>) {
        if let Some((k, v)) = self.get(key) {
            match parse_float(v) {
                None => self.err(k, format!("invalid value: {v}")),
                Some(f) => {
                    if let Some(m) = check(v, f) {
                        self.err(k, m)
                    }
                }
            }
        }
    }

    /// The duration annotations: stable window, pod retention, scale-down delay.
    fn windows(&mut self) {
        self.window(WINDOW, WINDOW_MIN, "6s <= {} <= 1h0m0s", true);
        self.window(
            SCALE_TO_ZERO_POD_RETENTION_PERIOD,
            Duration::ZERO,
            "0s <= {} <= 1h0m0s",
            false,
        );
        self.window(SCALE_DOWN_DELAY, Duration::ZERO, "0s <= {} <= 1h0m0s", true);
    }

    /// One duration annotation: a Go duration from `lo` to [`WINDOW_MAX`], in whole seconds
    /// when `whole`; `bounds` words the range, `{}` standing for the value.
    fn window(&mut self, key: Key, lo: Duration, bounds: &str, whole: bool) {
        if let Some((k, v)) = self.get(key) {
            match knit_crds::duration::parse_go(v) {
                Err(_) => self.err(k, format!("invalid value: {v}")),
                Ok(d) if d < lo || d > WINDOW_MAX => self.err(
                    k,
                    format!("expected {bounds}", bounds = bounds.replace("{}", v)),
                ),
                Ok(d) if whole && d.subsec_nanos() != 0 => {
                    self.err(k, "must be specified with at most second precision".into())
                }
                Ok(_) => {}
            }
        }
    }

    /// `metric` (what the class runs) and `metric-aggregation-algorithm`. Knative checks the
    /// algorithm only when the class annotation says KPA; Knit also checks it when the class
    /// is absent, which means KPA.
    fn metric(&mut self) {
        let class = class_of(self.a);
        if let Some((k, m)) = self.get(METRIC) {
            let ok = match class {
                KPA_CLASS => matches!(m, "concurrency" | "rps"),
                HPA_CLASS => !m.is_empty(),
                _ => true,
            };
            if !ok {
                self.err(k, format!("invalid value: {m}"));
            }
        }
        if class == KPA_CLASS
            && let Some((k, v)) = self.get(METRIC_AGGREGATION_ALGORITHM)
            && !v.is_empty()
            && !matches!(v, "linear" | "weighted-exponential" | "weightedExponential")
        {
            self.err(k, format!("invalid value: {v}"));
        }
    }

    /// `initial-scale`: a count, 0 only when the cluster allows it.
    fn initial_scale(&mut self, allow_zero: bool) {
        if let Some((k, v)) = self.get(INITIAL_SCALE) {
            match v.parse::<i64>() {
                Err(_) => self.err(k, format!("invalid value: {v}")),
                Ok(n) if n < 0 => {
                    self.err(k, format!("invalid value: {v}: must be greater than 0"))
                }
                Ok(0) if !allow_zero => {
                    self.err(k, "invalid value: 0: 0 not allowed by cluster".into())
                }
                Ok(_) => {}
            }
        }
    }
}
