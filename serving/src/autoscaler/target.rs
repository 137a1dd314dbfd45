//! A revision's resolved autoscaling spec (reference §1.4–§1.5 and the decider spec of §1.6):
//! its annotations layered over `config-autoscaler`, the per-pod target (`TargetValue`) and
//! capacity (`TotalValue`), and the stable and panic windows.

use std::collections::BTreeMap;
use std::time::Duration;

use super::FieldError;
use super::annotations::{self as ann, HPA_CLASS, KPA_CLASS, TARGET_MIN, validate_annotations};
use super::config::{AutoscalerConfig, parse_float};

/// The metric a revision scales on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Average concurrent requests (the KPA default).
    Concurrency,
    /// Requests per second.
    Rps,
    /// Another class's metric (the HPA's `cpu`, `memory` or a custom name): not run by Knit.
    Other(String),
}

/// How the 1-second buckets are averaged over a window (§1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Plain average over the window (the default).
    Linear,
    /// Weighted exponential smoothing (`weighted-exponential`).
    WeightedExponential,
}

/// Everything the decider and the bounds need about one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionSpec {
    /// The PodAutoscaler class (annotation, else `pod-autoscaler-class`).
    pub class: String,
    /// The scaling metric.
    pub metric: Metric,
    /// The bucket averaging algorithm.
    pub algorithm: Algorithm,
    /// `TargetValue`: the per-pod target, max(0.01, total × utilisation).
    pub target_value: f64,
    /// `TotalValue`: the per-pod capacity used for burst-capacity maths.
    pub total_value: f64,
    /// Target burst capacity (-1: unlimited, 0: activator only at zero).
    pub target_burst_capacity: f64,
    /// Panic threshold as a ratio of desired to ready pods (2.0).
    pub panic_threshold: f64,
    /// The stable window W.
    pub stable_window: Duration,
    /// The panic window: round(W × percentage ÷ 100) to whole seconds, at least 1 s.
    pub panic_window: Duration,
    /// `max-scale-up-rate`.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`.
    pub max_scale_down_rate: f64,
    /// `activator-capacity`.
    pub activator_capacity: f64,
    /// Scale-down delay (0: none).
    pub scale_down_delay: Duration,
    /// Initial scale (annotation when valid, else the ConfigMap's).
    pub initial_scale: u32,
    /// Activation scale: the minimum non-zero scale; applied only when ≥ 2 (0: unset).
    pub activation_scale: u32,
    /// Lower bound (annotation, else ConfigMap); ignored when the revision is unreachable.
    pub min_scale: u32,
    /// Upper bound (0: unbounded).
    pub max_scale: u32,
    /// `scale-to-zero-pod-retention-period` (annotation, else ConfigMap).
    pub scale_to_zero_pod_retention: Duration,
    /// `scale-to-zero-grace-period` (ConfigMap only).
    pub scale_to_zero_grace_period: Duration,
    /// `enable-scale-to-zero` (ConfigMap only).
    pub enable_scale_to_zero: bool,
    /// Whether any route sends the revision traffic (false: Knative's `reserve` state). The
    /// caller sets it (e.g. from the Contract's `Revision::routed`); `resolve` says true.
    pub reachable: bool,
}

impl RevisionSpec {
    /// Resolve a revision's spec: its `autoscaling.knative.dev/*` annotations over the
    /// ConfigMap, and its `containerConcurrency` (0: none). Invalid annotations are refused
    /// with Knative's messages, keyed by annotation.
    pub fn resolve(
        config: &AutoscalerConfig,
        annotations: &BTreeMap<String, String>,
        container_concurrency: u32,
    ) -> Result<Self, Vec<FieldError>> {
        let errs = validate_annotations(config, annotations);
        if !errs.is_empty() {
            return Err(errs);
        }
        let a = Annotations(annotations);
        let class = a
            .text(ann::CLASS)
            .unwrap_or(&config.pod_autoscaler_class)
            .to_string();
        let metric = a.metric(&class);
        let (target_value, total_value) = a.targets(config, &metric, container_concurrency);
        let stable_window = a.duration(ann::WINDOW).unwrap_or(config.stable_window);
        let panic_window_percentage = a
            .float(ann::PANIC_WINDOW_PERCENTAGE)
            .unwrap_or(config.panic_window_percentage);
        let panic_threshold_percentage = a
            .float(ann::PANIC_THRESHOLD_PERCENTAGE)
            .unwrap_or(config.panic_threshold_percentage);
        Ok(Self {
            class,
            metric,
            algorithm: a.algorithm(),
            target_value,
            total_value,
            target_burst_capacity: a
                .float(ann::TARGET_BURST_CAPACITY)
                .unwrap_or(config.target_burst_capacity),
            panic_threshold: panic_threshold_percentage / 100.0,
            stable_window,
            panic_window: panic_window(stable_window, panic_window_percentage),
            max_scale_up_rate: config.max_scale_up_rate,
            max_scale_down_rate: config.max_scale_down_rate,
            activator_capacity: config.activator_capacity,
            scale_down_delay: a
                .duration(ann::SCALE_DOWN_DELAY)
                .unwrap_or(config.scale_down_delay),
            initial_scale: a.initial_scale(config),
            activation_scale: a.uint(ann::ACTIVATION_SCALE).unwrap_or(0),
            min_scale: a.uint(ann::MIN_SCALE).unwrap_or(config.min_scale),
            max_scale: a.uint(ann::MAX_SCALE).unwrap_or(config.max_scale),
            scale_to_zero_pod_retention: a
                .duration(ann::SCALE_TO_ZERO_POD_RETENTION_PERIOD)
                .unwrap_or(config.scale_to_zero_pod_retention_period),
            scale_to_zero_grace_period: config.scale_to_zero_grace_period,
            enable_scale_to_zero: config.enable_scale_to_zero,
            reachable: true,
        })
    }

    /// Resolve the spec of a Contract revision (annotations, `containerConcurrency`,
    /// `routed`).
    pub fn for_revision(
        config: &AutoscalerConfig,
        rev: &knit_crds::contract::serving::Revision,
    ) -> Result<Self, Vec<FieldError>> {
        let mut spec = Self::resolve(config, &rev.autoscaling, rev.container_concurrency)?;
        spec.reachable = rev.routed;
        Ok(spec)
    }

    /// The defaults: no annotations, `containerConcurrency` 0, reachable.
    pub fn defaults() -> Self {
        // The empty annotation map always validates.
        Self::resolve(&AutoscalerConfig::default(), &BTreeMap::new(), 0)
            .unwrap_or_else(|_| unreachable!("empty annotations are valid"))
    }

    /// Whether Knit's KPA runs this revision (class KPA and metric concurrency or rps).
    pub fn is_kpa(&self) -> bool {
        self.class == KPA_CLASS && matches!(self.metric, Metric::Concurrency | Metric::Rps)
    }

    /// Why Knit's KPA does not run this revision, as a (reason, message) for its Ready
    /// condition; `None` when it does.
    pub fn unsupported(&self) -> Option<(&'static str, String)> {
        if self.class != KPA_CLASS {
            return Some((
                "UnsupportedAutoscalerClass",
                format!(
                    "autoscaler class {:?} is not run by Knit (only {KPA_CLASS})",
                    self.class
                ),
            ));
        }
        match &self.metric {
            Metric::Other(m) => Some((
                "UnsupportedMetric",
                format!("metric {m:?} is not supported by the KPA (concurrency or rps)"),
            )),
            _ => None,
        }
    }

    /// Whether the decider needs replica stats ("a scrape target"): false when TBC = -1,
    /// where only the activator reports.
    pub fn has_scrape_target(&self) -> bool {
        self.target_burst_capacity != -1.0
    }
}

/// A revision's annotations, already validated: each value reads as its type.
struct Annotations<'a>(&'a BTreeMap<String, String>);

impl<'a> Annotations<'a> {
    fn text(&self, k: ann::Key) -> Option<&'a str> {
        k.get(self.0).map(|(_, v)| v)
    }

    fn float(&self, k: ann::Key) -> Option<f64> {
        self.text(k).and_then(parse_float)
    }

    fn uint(&self, k: ann::Key) -> Option<u32> {
        self.text(k).and_then(|v| v.parse::<u32>().ok())
    }

    fn duration(&self, k: ann::Key) -> Option<Duration> {
        self.text(k)
            .and_then(|v| knit_crds::duration::parse_go(v).ok())
    }

    /// The metric: the annotation, else the class's default (`cpu` for the HPA).
    fn metric(&self, class: &str) -> Metric {
        match self.text(ann::METRIC) {
            Some("concurrency") => Metric::Concurrency,
            Some("rps") => Metric::Rps,
            Some(other) => Metric::Other(other.to_string()),
            None if class == HPA_CLASS => Metric::Other("cpu".into()),
            None => Metric::Concurrency,
        }
    }

    /// The bucket averaging algorithm (linear unless weighted-exponential is asked for).
    fn algorithm(&self) -> Algorithm {
        match self.text(ann::METRIC_AGGREGATION_ALGORITHM) {
            Some("weighted-exponential" | "weightedExponential") => Algorithm::WeightedExponential,
            _ => Algorithm::Linear,
        }
    }

    /// (`TargetValue`, `TotalValue`) of §1.5: the total is the `target` annotation (capped by
    /// `containerConcurrency` for concurrency), else `containerConcurrency`, else the
    /// ConfigMap's default for the metric; the target is the total times the utilisation, at
    /// least [`TARGET_MIN`].
    fn targets(
        &self,
        config: &AutoscalerConfig,
        metric: &Metric,
        container_concurrency: u32,
    ) -> (f64, f64) {
        let cc = f64::from(container_concurrency);
        let (mut total, mut tu) = match metric {
            Metric::Rps => (config.rps_target_default, config.rps_target_utilization),
            _ => (
                if container_concurrency > 0 {
                    cc
                } else {
                    config.container_concurrency_target_default
                },
                config.container_concurrency_target_fraction,
            ),
        };
        if let Some(t) = self.float(ann::TARGET) {
            total = if *metric == Metric::Concurrency && container_concurrency > 0 {
                t.min(cc)
            } else {
                t
            };
        }
        if let Some(p) = self.float(ann::TARGET_UTILIZATION) {
            tu = p / 100.0;
        }
        ((total * tu).max(TARGET_MIN), total)
    }

    /// The initial scale: the annotation (0 only when the cluster allows it), else the
    /// ConfigMap's.
    fn initial_scale(&self, config: &AutoscalerConfig) -> u32 {
        match self.uint(ann::INITIAL_SCALE) {
            Some(0) if !config.allow_zero_initial_scale => config.initial_scale,
            Some(n) => n,
            None => config.initial_scale,
        }
    }
}

/// Panic window: round(W × percentage ÷ 100) to whole seconds (halves away from zero), at
/// least 1 s.
pub fn panic_window(stable_window: Duration, percentage: f64) -> Duration {
    let nanos = (stable_window.as_nanos() as f64 * percentage / 100.0) as u64;
    let secs = nanos.saturating_add(500_000_000) / 1_000_000_000;
    Duration::from_secs(secs.max(1))
}
