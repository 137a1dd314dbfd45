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
        let dur = |v: Option<String>, d: Duration| v.and_then(|s| parse_duration(&s)).unwrap_or(d);
        let num = |v: Option<String>| v.and_then(|s| s.parse::<f64>().ok());
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
        let target = (base * util / 100.0).max(0.01);
        let allow_zero_initial = cfg("allow-zero-initial-scale").as_deref() == Some("true");
        let initial = int(ann("initial-scale").or_else(|| ann("initialScale")))
            .filter(|&n| n > 0 || allow_zero_initial)
            .or_else(|| int(cfg("initial-scale")))
            .unwrap_or(1);
        Self {
            window: dur(
                ann("window").or_else(|| cfg("stable-window")),
                Duration::from_secs(60),
            ),
            grace: dur(cfg("scale-to-zero-grace-period"), Duration::from_secs(30)),
            retention: dur(
                ann("scale-to-zero-pod-retention-period")
                    .or_else(|| cfg("scale-to-zero-pod-retention-period")),
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

/// Parse a Go duration (`6s`, `1m30s`, `500ms`, `1h`); a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(n) = s.parse::<f64>() {
        return (n >= 0.0).then(|| Duration::from_secs_f64(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("6s"), Some(Duration::from_secs(6)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
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
