//! The `config-autoscaler` ConfigMap (namespace `knative-serving`): every key of reference
//! §1.8, Knative's defaults, and Knative's validation (`pkg/autoscaler/config/config.go`).
//! This is the one parser: admission validates the ConfigMap with it and the serving crate's
//! KPA reads it with it.
//!
//! Knit is stricter than Knative in one way: a number must be finite (`inf`, `1e400` and NaN
//! are refused for every numeric key), so no infinity reaches the autoscaler's arithmetic.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use super::{KeyError as FieldError, shown};

/// The KPA class (the default).
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
/// Smallest per-pod target.
pub const TARGET_MIN: f64 = 0.01;
/// Shortest stable window.
pub const WINDOW_MIN: Duration = Duration::from_secs(6);
/// Longest stable window (also the longest scale-down delay and pod retention).
pub const WINDOW_MAX: Duration = Duration::from_secs(3600);

/// The parsed `config-autoscaler` data. Percentages are kept as Knative keeps them: the
/// concurrency target percentage is stored as a fraction, the panic percentages as percents.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerConfig {
    /// `enable-scale-to-zero` (true).
    pub enable_scale_to_zero: bool,
    /// `container-concurrency-target-percentage` as a fraction (0.7); values above 1 are
    /// percents and are divided by 100, values in (0, 1] are already fractions.
    pub container_concurrency_target_fraction: f64,
    /// `container-concurrency-target-default` (100): the soft target when
    /// `containerConcurrency` is 0.
    pub container_concurrency_target_default: f64,
    /// Target utilisation of the `rps` metric: 0.7, a constant (not a key).
    pub rps_target_utilization: f64,
    /// `requests-per-second-target-default` (200).
    pub rps_target_default: f64,
    /// `target-burst-capacity` (211; -1: unlimited, the activator always in the path).
    pub target_burst_capacity: f64,
    /// `stable-window` (60 s).
    pub stable_window: Duration,
    /// `panic-window-percentage` (10).
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage` (200).
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate` (1000).
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate` (2).
    pub max_scale_down_rate: f64,
    /// `scale-to-zero-grace-period` (30 s).
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period` (0 s).
    pub scale_to_zero_pod_retention_period: Duration,
    /// `pod-autoscaler-class` (`kpa.autoscaling.knative.dev`).
    pub pod_autoscaler_class: String,
    /// `activator-capacity` (100).
    pub activator_capacity: f64,
    /// `initial-scale` (1).
    pub initial_scale: u32,
    /// `allow-zero-initial-scale` (false).
    pub allow_zero_initial_scale: bool,
    /// `min-scale` (0).
    pub min_scale: u32,
    /// `max-scale` (0: unbounded).
    pub max_scale: u32,
    /// `scale-down-delay` (0 s).
    pub scale_down_delay: Duration,
    /// `max-scale-limit` (0: none).
    pub max_scale_limit: u32,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self {
            enable_scale_to_zero: true,
            container_concurrency_target_fraction: 0.7,
            container_concurrency_target_default: 100.0,
            rps_target_utilization: 0.7,
            rps_target_default: 200.0,
            target_burst_capacity: 211.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            pod_autoscaler_class: KPA_CLASS.to_string(),
            activator_capacity: 100.0,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            scale_down_delay: Duration::ZERO,
            max_scale_limit: 0,
        }
    }
}

/// Every key of `config-autoscaler` this module reads.
pub const CONFIG_KEYS: &[&str] = &[
    "container-concurrency-target-percentage",
    "container-concurrency-target-default",
    "requests-per-second-target-default",
    "target-burst-capacity",
    "stable-window",
    "panic-window-percentage",
    "panic-threshold-percentage",
    "max-scale-up-rate",
    "max-scale-down-rate",
    "enable-scale-to-zero",
    "scale-to-zero-grace-period",
    "scale-to-zero-pod-retention-period",
    "pod-autoscaler-class",
    "activator-capacity",
    "initial-scale",
    "allow-zero-initial-scale",
    "min-scale",
    "max-scale",
    "scale-down-delay",
    "max-scale-limit",
];

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A float as Go's `strconv.ParseFloat` reads it, NaN refused (no range check passes NaN).
/// Infinities are read (annotations refuse them by their ranges); the ConfigMap's keys go
/// through [`parse_finite`].
pub fn parse_float(s: &str) -> Option<f64> {
    f64::from_str(s.trim()).ok().filter(|f| !f.is_nan())
}

/// A finite float: [`parse_float`] without the infinities (`inf`, `1e400`).
pub fn parse_finite(s: &str) -> Option<f64> {
    parse_float(s).filter(|f| f.is_finite())
}

/// Reads typed values out of the map, collecting parse errors.
struct Reader<'a> {
    data: &'a BTreeMap<String, String>,
    errs: Vec<FieldError>,
}

impl Reader<'_> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(|v| v.trim())
    }

    fn bad(&mut self, key: &str, v: &str, what: &str) {
        self.errs.push(FieldError::new(
            key,
            format!("failed to parse data: {} is not {what}", shown(v)),
        ));
    }

    fn float(&mut self, key: &str, into: &mut f64) {
        if let Some(v) = self.raw(key).map(str::to_string) {
            match parse_finite(&v) {
                Some(f) => *into = f,
                None => self.bad(key, &v, "a finite number"),
            }
        }
    }

    fn int(&mut self, key: &str, into: &mut i64) {
        if let Some(v) = self.raw(key).map(str::to_string) {
            match v.parse::<i32>() {
                Ok(n) => *into = i64::from(n),
                Err(_) => self.bad(key, &v, "a 32-bit integer"),
            }
        }
    }

    fn boolean(&mut self, key: &str, into: &mut bool) {
        if let Some(v) = self.raw(key).map(str::to_string) {
            match parse_go_bool(&v) {
                Some(b) => *into = b,
                None => self.bad(key, &v, "a boolean"),
            }
        }
    }

    fn duration(&mut self, key: &str, into: &mut Duration) {
        if let Some(v) = self.raw(key).map(str::to_string) {
            match crate::duration::parse_go(&v) {
                Ok(d) => *into = d,
                Err(_) => self.bad(key, &v, "a duration (e.g. 30s, 1m)"),
            }
        }
    }
}

fn whole_seconds(d: Duration) -> bool {
    d.subsec_nanos() == 0
}

/// The scale bounds as read, wider than the config's `u32`s so that negative values can be
/// refused with Knative's messages.
struct Scales {
    initial: i64,
    min: i64,
    max: i64,
    limit: i64,
}

impl Scales {
    /// `initial-scale`, `min-scale`, `max-scale` and `max-scale-limit`.
    fn read(r: &mut Reader<'_>) -> Self {
        let mut s = Scales {
            initial: 1,
            min: 0,
            max: 0,
            limit: 0,
        };
        r.int("initial-scale", &mut s.initial);
        r.int("min-scale", &mut s.min);
        r.int("max-scale", &mut s.max);
        r.int("max-scale-limit", &mut s.limit);
        s
    }

    /// Knative's rules: initial scale at least 1 (0 when allowed), min at least 0, max within
    /// `[0 or 1, max-scale-limit]`, the limit at least 0, min below max.
    fn check(&self, allow_zero_initial_scale: bool, errs: &mut Vec<FieldError>) {
        let Scales {
            initial,
            min,
            max,
            limit,
        } = *self;
        if initial < 0 || (initial == 0 && !allow_zero_initial_scale) {
            errs.push(FieldError::new(
                "initial-scale",
                format!(
                    "initial-scale = {initial}, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)"
                ),
            ));
        }
        if min < 0 {
            errs.push(FieldError::new(
                "min-scale",
                format!("min-scale = {min}, must be at least 0"),
            ));
        }
        let min_max = if limit > 0 { 1 } else { 0 };
        if max < min_max || (limit > 0 && max > limit) {
            errs.push(FieldError::new(
                "max-scale",
                format!(
                    "max-scale = {max}, must be in [{min_max}, max-scale-limit({limit})] range"
                ),
            ));
        }
        if limit < 0 {
            errs.push(FieldError::new(
                "max-scale-limit",
                format!("max-scale-limit = {limit}, must be at least 0"),
            ));
        }
        if min > max && max > 0 {
            errs.push(FieldError::new(
                "min-scale",
                format!("min-scale ({min}) must be less than max-scale ({max})"),
            ));
        }
    }

    /// Into the config, once checked.
    fn apply(&self, c: &mut AutoscalerConfig) {
        let to_u32 = |n: i64| u32::try_from(n).unwrap_or(0);
        c.initial_scale = to_u32(self.initial);
        c.min_scale = to_u32(self.min);
        c.max_scale = to_u32(self.max);
        c.max_scale_limit = to_u32(self.limit);
    }
}

impl AutoscalerConfig {
    /// Parse and validate the ConfigMap's data; missing keys take Knative's defaults. Every
    /// problem is returned, each with its key, in Knative's order: what does not parse, then
    /// the delays, the targets, the rates, the windows and the scale bounds.
    pub fn from_map(data: &BTreeMap<String, String>) -> Result<Self, Vec<FieldError>> {
        let mut c = Self::default();
        let mut r = Reader {
            data,
            errs: Vec::new(),
        };
        c.read_switches(&mut r);
        c.read_numbers(&mut r);
        let scales = Scales::read(&mut r);
        c.read_durations(&mut r);
        let mut errs = r.errs;
        // Legacy: values in (0, 1] are fractions already.
        if c.container_concurrency_target_fraction > 1.0 {
            c.container_concurrency_target_fraction /= 100.0;
        }
        c.check_delays(&mut errs);
        c.check_targets(&mut errs);
        c.check_rates(&mut errs);
        c.check_windows(&mut errs);
        scales.check(c.allow_zero_initial_scale, &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        scales.apply(&mut c);
        Ok(c)
    }

    /// The class and the boolean keys.
    fn read_switches(&mut self, r: &mut Reader<'_>) {
        if let Some(v) = r.raw("pod-autoscaler-class") {
            self.pod_autoscaler_class = v.to_string();
        }
        r.boolean("enable-scale-to-zero", &mut self.enable_scale_to_zero);
        r.boolean(
            "allow-zero-initial-scale",
            &mut self.allow_zero_initial_scale,
        );
    }

    /// The float keys: rates, targets, burst and activator capacity, panic percentages.
    fn read_numbers(&mut self, r: &mut Reader<'_>) {
        r.float("max-scale-up-rate", &mut self.max_scale_up_rate);
        r.float("max-scale-down-rate", &mut self.max_scale_down_rate);
        r.float(
            "container-concurrency-target-percentage",
            &mut self.container_concurrency_target_fraction,
        );
        r.float(
            "container-concurrency-target-default",
            &mut self.container_concurrency_target_default,
        );
        r.float(
            "requests-per-second-target-default",
            &mut self.rps_target_default,
        );
        r.float("target-burst-capacity", &mut self.target_burst_capacity);
        r.float("panic-window-percentage", &mut self.panic_window_percentage);
        r.float("activator-capacity", &mut self.activator_capacity);
        r.float(
            "panic-threshold-percentage",
            &mut self.panic_threshold_percentage,
        );
    }

    /// The duration keys (Go durations).
    fn read_durations(&mut self, r: &mut Reader<'_>) {
        r.duration("stable-window", &mut self.stable_window);
        r.duration("scale-down-delay", &mut self.scale_down_delay);
        r.duration(
            "scale-to-zero-grace-period",
            &mut self.scale_to_zero_grace_period,
        );
        r.duration(
            "scale-to-zero-pod-retention-period",
            &mut self.scale_to_zero_pod_retention_period,
        );
    }

    /// The scale-to-zero grace period (positive) and the scale-down delay (whole seconds).
    fn check_delays(&self, errs: &mut Vec<FieldError>) {
        if self.scale_to_zero_grace_period.is_zero() {
            errs.push(FieldError::new(
                "scale-to-zero-grace-period",
                "scale-to-zero-grace-period must be positive, was: 0s",
            ));
        }
        if !whole_seconds(self.scale_down_delay) {
            errs.push(FieldError::new(
                "scale-down-delay",
                format!(
                    "scale-down-delay = {:?}, must be specified with at most second precision",
                    self.scale_down_delay
                ),
            ));
        }
    }

    /// Burst capacity, the concurrency and rps targets, and the activator's capacity.
    fn check_targets(&self, errs: &mut Vec<FieldError>) {
        let mut err = |key: &str, msg: String| errs.push(FieldError::new(key, msg));
        if self.target_burst_capacity < 0.0 && self.target_burst_capacity != -1.0 {
            err(
                "target-burst-capacity",
                format!(
                    "target-burst-capacity must be either non-negative or -1 (for unlimited), was: {}",
                    self.target_burst_capacity
                ),
            );
        }
        let fraction = self.container_concurrency_target_fraction;
        if fraction <= 0.0 || fraction > 1.0 {
            err(
                "container-concurrency-target-percentage",
                format!(
                    "container-concurrency-target-percentage = {fraction} is outside of valid range of (0, 100]"
                ),
            );
        } else if fraction * self.container_concurrency_target_default < TARGET_MIN {
            err(
                "container-concurrency-target-percentage",
                format!(
                    "container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of {}, can't be less than {TARGET_MIN}",
                    fraction * self.container_concurrency_target_default
                ),
            );
        }
        if self.rps_target_default < TARGET_MIN {
            err(
                "requests-per-second-target-default",
                format!(
                    "requests-per-second-target-default must be at least {TARGET_MIN}, was: {}",
                    self.rps_target_default
                ),
            );
        }
        if self.activator_capacity < 1.0 {
            err(
                "activator-capacity",
                format!(
                    "activator-capacity = {}, must be at least 1",
                    self.activator_capacity
                ),
            );
        }
    }

    /// The scale-up and scale-down rates: both above 1.
    fn check_rates(&self, errs: &mut Vec<FieldError>) {
        for (key, rate) in [
            ("max-scale-up-rate", self.max_scale_up_rate),
            ("max-scale-down-rate", self.max_scale_down_rate),
        ] {
            if rate <= 1.0 {
                errs.push(FieldError::new(
                    key,
                    format!("{key} = {rate}, must be greater than 1.0"),
                ));
            }
        }
    }

    /// The stable window (6 s to 1 h, whole seconds), the panic window's share of it, and
    /// the panic threshold.
    fn check_windows(&self, errs: &mut Vec<FieldError>) {
        let mut err = |key: &str, msg: String| errs.push(FieldError::new(key, msg));
        if self.stable_window < WINDOW_MIN || self.stable_window > WINDOW_MAX {
            err(
                "stable-window",
                format!(
                    "stable-window = {:?}, must be in [6s; 1h0m0s] range",
                    self.stable_window
                ),
            );
        } else if !whole_seconds(self.stable_window) {
            err(
                "stable-window",
                format!(
                    "stable-window = {:?}, must be specified with at most second precision",
                    self.stable_window
                ),
            );
        }
        if !(1.0..=100.0).contains(&self.panic_window_percentage) {
            err(
                "panic-window-percentage",
                format!(
                    "panic-window-percentage = {}, must be in [1, 100] interval",
                    self.panic_window_percentage
                ),
            );
        }
        // Knit only: Knative does not check this key; a non-positive or infinite threshold
        // would make panic mode meaningless.
        if !(self.panic_threshold_percentage > 0.0 && self.panic_threshold_percentage.is_finite()) {
            err(
                "panic-threshold-percentage",
                format!(
                    "panic-threshold-percentage = {}, must be a positive number",
                    self.panic_threshold_percentage
                ),
            );
        }
    }

    /// The panic threshold as a ratio (2.0 by default).
    pub fn panic_threshold(&self) -> f64 {
        self.panic_threshold_percentage / 100.0
    }
}
