//! The scaler: every tick (1 s) each revision's proxies and activator queue are sampled into
//! one revision-wide stat, a [`Decide`] turns the stats into a wanted replica count, and the
//! revision starts or drains replicas to match.
//!
//! [`Decide`] is the seam for the KPA of `crate::autoscaler` (`super::kpa`); [`Simple`] stands
//! in when the KPA refuses a revision's inputs: the stable-window average of concurrency (or rps) over the target, min/max/initial
//! scale, and zero only after a stable window without traffic plus the grace period.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use knit_crds::contract::serving::Revision;
use knit_crds::duration::parse_go;

use super::Inner;
use super::proxy::Sample;

/// A per-revision autoscaler.
pub(crate) trait Decide: Send {
    /// Record one tick's revision-wide sample; answer the replica count wanted, bounds and the
    /// scale-to-zero gates applied. `ready`: replicas ready now; `initialized`: a replica has
    /// been ready once.
    fn tick(
        &mut self,
        now: Instant,
        sample: Sample,
        ready: u32,
        routed: bool,
        initialized: bool,
    ) -> u32;
    /// A request waits at zero: scale up at once.
    fn poke(&mut self, now: Instant);
    /// Replicas to start with.
    fn initial(&self) -> u32;
}

/// The autoscaler of a revision: the KPA, or [`Simple`] when the KPA refuses the inputs
/// (admission validates them, so only a hand-made Contract gets there).
pub(crate) fn decider(
    rev: &Revision,
    config: &BTreeMap<String, String>,
    progress_deadline: Duration,
) -> Box<dyn Decide> {
    match super::kpa::Kpa::new(rev, config, progress_deadline) {
        Ok(kpa) => Box::new(kpa),
        Err(why) => {
            tracing::warn!(revision = %rev.name, namespace = %rev.namespace, reason = %why, "autoscaling inputs refused by the KPA; using the simple scaler");
            Box::new(Simple::new(Params::of(rev, config), Instant::now()))
        }
    }
}

/// The inputs [`Simple`] reads from annotations and `config-autoscaler`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params {
    window: Duration,
    grace: Duration,
    retention: Duration,
    enable_zero: bool,
    rps: bool,
    target: f64,
    min: u32,
    max: u32,
    initial: u32,
}

impl Params {
    pub(crate) fn of(rev: &Revision, config: &BTreeMap<String, String>) -> Self {
        let ann = |k: &str| {
            rev.autoscaling
                .get(&format!("autoscaling.knative.dev/{k}"))
                .or_else(|| rev.autoscaling.get(k))
                .map(|s| s.trim().to_string())
        };
        let cfg = |k: &str| config.get(k).map(|s| s.trim().to_string());
        // The annotation, else the ConfigMap key, with the name of the one that was set.
        let either = |a: &str, c: &str| {
            ann(a)
                .map(|v| (format!("autoscaling.knative.dev/{a}"), v))
                .or_else(|| cfg(c).map(|v| (c.to_string(), v)))
        };
        let dur = |set, default| duration_or(rev, set, default);
        // Finite numbers only: `inf`, `1e400` and NaN are ignored, as if unset.
        let num =
            |v: Option<String>| v.and_then(|s| s.parse::<f64>().ok().filter(|f| f.is_finite()));
        let int = |v: Option<String>| v.and_then(|s| s.parse::<u32>().ok());
        let rps = ann("metric").as_deref() == Some("rps");
        let cc = f64::from(rev.container_concurrency);
        let base = num(ann("target")).unwrap_or(if rps {
            num(cfg("requests-per-second-target-default")).unwrap_or(200.0)
        } else if cc > 0.0 {
            cc
        } else {
            num(cfg("container-concurrency-target-default")).unwrap_or(100.0)
        });
        let util = num(ann("target-utilization-percentage"))
            .or_else(|| num(cfg("container-concurrency-target-percentage")))
            .unwrap_or(70.0);
        // Two huge finite factors may still overflow: then Knative's default target.
        let target = Some(base * util / 100.0)
            .filter(|t| t.is_finite())
            .map_or(70.0, |t| t.max(0.01));
        let allow_zero_initial = cfg("allow-zero-initial-scale").as_deref() == Some("true");
        let initial = int(ann("initial-scale").or_else(|| ann("initialScale")))
            .filter(|&n| n > 0 || allow_zero_initial)
            .or_else(|| int(cfg("initial-scale")))
            .unwrap_or(1);
        Self {
            window: dur(either("window", "stable-window"), Duration::from_secs(60)),
            grace: dur(
                cfg("scale-to-zero-grace-period")
                    .map(|v| ("scale-to-zero-grace-period".to_string(), v)),
                Duration::from_secs(30),
            ),
            retention: dur(
                either(
                    "scale-to-zero-pod-retention-period",
                    "scale-to-zero-pod-retention-period",
                ),
                Duration::ZERO,
            ),
            enable_zero: cfg("enable-scale-to-zero").as_deref() != Some("false"),
            rps,
            target,
            min: int(ann("min-scale").or_else(|| ann("minScale")))
                .or_else(|| int(cfg("min-scale")))
                .unwrap_or(0),
            max: int(ann("max-scale").or_else(|| ann("maxScale")))
                .or_else(|| int(cfg("max-scale")))
                .unwrap_or(0),
            initial,
        }
    }
}

/// The duration `set` gives as `(key, text)`, else `default`. The KPA refused these inputs,
/// so the text may well be invalid (`inf`, `1e400`, a bare number): such a value is refused
/// with a warning and the default kept.
fn duration_or(rev: &Revision, set: Option<(String, String)>, default: Duration) -> Duration {
    let Some((key, text)) = set else {
        return default;
    };
    parse_go(&text).unwrap_or_else(|e| {
        tracing::warn!(
            revision = %rev.name,
            namespace = %rev.namespace,
            %key,
            error = %e,
            ?default,
            "invalid duration refused; the default is kept"
        );
        default
    })
}

/// The stand-in autoscaler.
pub(crate) struct Simple {
    p: Params,
    samples: VecDeque<(Instant, f64)>,
    last_active: Instant,
}

impl Simple {
    pub(crate) fn new(p: Params, now: Instant) -> Self {
        Self {
            p,
            samples: VecDeque::new(),
            last_active: now,
        }
    }
}

impl Decide for Simple {
    fn tick(
        &mut self,
        now: Instant,
        sample: Sample,
        _ready: u32,
        routed: bool,
        initialized: bool,
    ) -> u32 {
        let value = if self.p.rps {
            sample.rps
        } else {
            sample.concurrency
        };
        self.samples.push_back((now, value));
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) >= self.p.window)
        {
            self.samples.pop_front();
        }
        let avg = self.samples.iter().map(|(_, v)| v).sum::<f64>() / self.samples.len() as f64;
        if value > 0.0 {
            self.last_active = now;
        }
        let mut want = (avg / self.p.target).ceil() as u32;
        if avg > 0.0 {
            want = want.max(1);
        }
        if routed {
            want = want.max(self.p.min);
        }
        if !initialized {
            want = want.max(self.p.initial);
        }
        if self.p.max > 0 {
            want = want.min(self.p.max);
        }
        if want == 0 {
            if !self.p.enable_zero {
                return 1;
            }
            if !routed && initialized {
                return 0;
            }
            let idle = now.duration_since(self.last_active);
            if idle < self.p.window + self.p.grace || idle < self.p.retention {
                return 1;
            }
        }
        want
    }

    fn poke(&mut self, now: Instant) {
        self.last_active = now;
    }

    fn initial(&self) -> u32 {
        let n = self.p.initial;
        if self.p.max > 0 { n.min(self.p.max) } else { n }
    }
}

/// The loop: tick every revision every `config.tick` until shutdown.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut every = tokio::time::interval(inner.config.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = inner.cancel.cancelled() => return,
        }
        let now = Instant::now();
        let revs: Vec<_> = inner.revisions.read().values().cloned().collect();
        for rev in revs {
            rev.tick(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runtime::fixtures::revision as rev;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn invalid_durations_keep_the_defaults() {
        let defaults = Params::of(&rev(&[]), &BTreeMap::new());
        for hostile in ["inf", "1e400", "NaN", "-1", "9223372036854775808s", "60"] {
            let config = config(&[
                ("stable-window", hostile),
                ("scale-to-zero-grace-period", hostile),
                ("scale-to-zero-pod-retention-period", hostile),
            ]);
            assert_eq!(Params::of(&rev(&[]), &config), defaults, "{hostile}");
            let annotated = rev(&[
                ("autoscaling.knative.dev/window", hostile),
                (
                    "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
                    hostile,
                ),
            ]);
            assert_eq!(Params::of(&annotated, &config), defaults, "{hostile}");
            // The KPA refuses these, and the stand-in takes over without panicking.
            let _ = decider(&annotated, &config, Duration::from_secs(600));
        }
        let valid = Params::of(
            &rev(&[("autoscaling.knative.dev/window", "6s")]),
            &config(&[("scale-to-zero-grace-period", "1m30s")]),
        );
        assert_eq!(
            (valid.window, valid.grace),
            (Duration::from_secs(6), Duration::from_secs(90))
        );
    }

    /// Every key the stand-in reads, with values no parser should let through: the defaults
    /// stay, and the scaler ticks without panicking.
    #[test]
    fn hostile_numbers_keep_the_defaults_and_never_panic() {
        let defaults = Params::of(&rev(&[]), &BTreeMap::new());
        let long = "9".repeat(64 * 1024);
        for hostile in [
            "inf",
            "-inf",
            "NaN",
            "1e400",
            "-1e400",
            "9223372036854775808s",
            long.as_str(),
        ] {
            let keys = [
                "requests-per-second-target-default",
                "container-concurrency-target-default",
                "container-concurrency-target-percentage",
                "initial-scale",
                "min-scale",
                "max-scale",
                "stable-window",
                "scale-to-zero-grace-period",
            ];
            let config: BTreeMap<String, String> = keys
                .iter()
                .map(|k| (k.to_string(), hostile.to_string()))
                .collect();
            let p = Params::of(&rev(&[]), &config);
            assert_eq!(p, defaults, "{hostile}");
            let mut s = Simple::new(p, Instant::now());
            let busy = Sample {
                concurrency: 1e300,
                rps: f64::INFINITY,
            };
            let n = s.tick(Instant::now(), busy, 1, true, true);
            assert!(n >= 1, "{hostile}: {n}");
        }
        // Finite, but the product overflows: the default target.
        let huge = config(&[
            ("container-concurrency-target-default", "1e308"),
            ("container-concurrency-target-percentage", "1e308"),
        ]);
        assert_eq!(Params::of(&rev(&[]), &huge).target, 70.0);
        // Negative targets are raised to the smallest one.
        let negative = config(&[("container-concurrency-target-default", "-1")]);
        assert_eq!(Params::of(&rev(&[]), &negative).target, 0.01);
    }

    #[test]
    fn idle_goes_to_zero_after_window_plus_grace() {
        let p = Params {
            window: Duration::from_secs(6),
            grace: Duration::from_secs(2),
            retention: Duration::ZERO,
            enable_zero: true,
            rps: false,
            target: 70.0,
            min: 0,
            max: 0,
            initial: 1,
        };
        let t0 = Instant::now();
        let mut s = Simple::new(p, t0);
        let busy = Sample {
            concurrency: 1.0,
            rps: 1.0,
        };
        assert_eq!(s.tick(t0, busy, 1, true, true), 1);
        let idle = Sample::default();
        for i in 1..8 {
            let n = s.tick(t0 + Duration::from_secs(i), idle, 1, true, true);
            assert_eq!(n, 1, "second {i}");
        }
        assert_eq!(s.tick(t0 + Duration::from_secs(9), idle, 1, true, true), 0);
        s.poke(t0 + Duration::from_secs(10));
        assert_eq!(s.tick(t0 + Duration::from_secs(10), idle, 1, true, true), 1);
    }
}
