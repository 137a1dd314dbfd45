//! The per-revision autoscaler (reference §1.4 and §1.6): stats recorded into 1-second
//! buckets, and the decider step that turns the stable and panic averages into a desired pod
//! count and an excess burst capacity.

use std::time::Duration;

use super::bucket::Buckets;
use super::delay::MaxWindow;
use super::target::{Metric, RevisionSpec};

/// One report of a revision's load: revision totals (not per-replica averages) for one
/// second. The data plane records one per replica report (or their sum) every second while
/// replicas exist, and the activator records its own (with the proxied fields 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    /// Average concurrent requests over the second.
    pub concurrency: f64,
    /// Of which proxied by the activator (already reported by it; subtracted).
    pub proxied_concurrency: f64,
    /// Requests per second.
    pub rps: f64,
    /// Of which proxied by the activator (subtracted).
    pub proxied_rps: f64,
}

/// The outcome of one decider step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Desired pod count, before the bounds of §1.7 ([`super::bounds`]).
    pub desired_pods: i32,
    /// Excess burst capacity: ≥ 0 lets the activator leave the path; -1 with TBC = -1.
    pub excess_burst_capacity: i32,
    /// Whether the decider is in panic mode.
    pub panicking: bool,
    /// The observed stable-window value of the metric.
    pub stable_value: f64,
    /// The observed panic-window value of the metric.
    pub panic_value: f64,
    /// Whether this changes what the PA reconciler was told: desired changed or the sign of
    /// the excess burst capacity flipped.
    pub changed: bool,
}

/// The decision tick.
pub const TICK: Duration = Duration::from_secs(2);

/// The autoscaler of one revision. Every call takes `now`, a `Duration` since an epoch the
/// caller fixes (e.g. `tokio::time::Instant::now() - start`); only whole seconds matter.
#[derive(Clone, Debug)]
pub struct Autoscaler {
    spec: RevisionSpec,
    stable_concurrency: Buckets,
    panic_concurrency: Buckets,
    stable_rps: Buckets,
    panic_rps: Buckets,
    panic_time: Option<Duration>,
    max_panic_pods: i32,
    delay: Option<MaxWindow>,
    desired: i32,
    ebc: i32,
}

impl Autoscaler {
    /// A fresh autoscaler. With more than one ready pod it starts in panic mode holding
    /// that count (metric history is lost on restart; no scale-down until it is rebuilt).
    /// Its status is desired = -1 ("unknown") and the initial excess burst capacity.
    pub fn new(spec: RevisionSpec, now: Duration, ready_pods: u32) -> Self {
        let ready = i32::try_from(ready_pods).unwrap_or(i32::MAX);
        let b = |w| Buckets::new(w, spec.algorithm);
        let tbc = spec.target_burst_capacity;
        let ebc = if tbc == -1.0 || tbc == 0.0 {
            tbc as i32
        } else {
            (f64::from(spec.initial_scale) * spec.total_value - tbc) as i32
        };
        Self {
            stable_concurrency: b(spec.stable_window),
            panic_concurrency: b(spec.panic_window),
            stable_rps: b(spec.stable_window),
            panic_rps: b(spec.panic_window),
            panic_time: (ready > 1).then_some(now),
            max_panic_pods: ready,
            delay: (!spec.scale_down_delay.is_zero())
                .then(|| MaxWindow::new(spec.scale_down_delay)),
            desired: -1,
            ebc,
            spec,
        }
    }

    /// The spec in force.
    pub fn spec(&self) -> &RevisionSpec {
        &self.spec
    }

    /// Replace the spec (annotations or ConfigMap changed). Windows are resized keeping
    /// recent history; a new algorithm or scale-down delay starts afresh.
    pub fn update(&mut self, now: Duration, spec: RevisionSpec) {
        if spec.algorithm != self.spec.algorithm {
            let b = |w| Buckets::new(w, spec.algorithm);
            self.stable_concurrency = b(spec.stable_window);
            self.panic_concurrency = b(spec.panic_window);
            self.stable_rps = b(spec.stable_window);
            self.panic_rps = b(spec.panic_window);
        } else {
            self.stable_concurrency.resize(now, spec.stable_window);
            self.stable_rps.resize(now, spec.stable_window);
            self.panic_concurrency.resize(now, spec.panic_window);
            self.panic_rps.resize(now, spec.panic_window);
        }
        if spec.scale_down_delay != self.spec.scale_down_delay {
            self.delay =
                (!spec.scale_down_delay.is_zero()).then(|| MaxWindow::new(spec.scale_down_delay));
        }
        self.spec = spec;
    }

    /// Record a stat at `now` (proxied traffic subtracted: the activator reports it).
    pub fn record(&mut self, now: Duration, stat: Stat) {
        let c = stat.concurrency - stat.proxied_concurrency;
        self.stable_concurrency.record(now, c);
        self.panic_concurrency.record(now, c);
        let r = stat.rps - stat.proxied_rps;
        self.stable_rps.record(now, r);
        self.panic_rps.record(now, r);
    }

    /// Whether a decision is due at once: the current desired scale is 0 and `stat` shows
    /// load (the activator's first request of a revision at zero).
    pub fn should_poke(&self, stat: &Stat) -> bool {
        self.desired == 0 && stat.concurrency != 0.0
    }

    /// The last desired scale reported (-1 before the first valid decision).
    pub fn desired_scale(&self) -> i32 {
        self.desired
    }

    /// The last excess burst capacity reported.
    pub fn excess_burst_capacity(&self) -> i32 {
        self.ebc
    }

    /// Whether the decider is in panic mode.
    pub fn panicking(&self) -> bool {
        self.panic_time.is_some()
    }

    /// The (stable, panic) values of the scaling metric at `now`; `None`: no data (the
    /// stable window is empty and replica stats are expected, i.e. TBC ≠ -1).
    pub fn observed(&self, now: Duration) -> Option<(f64, f64)> {
        let (stable, panic) = match self.spec.metric {
            Metric::Rps => (&self.stable_rps, &self.panic_rps),
            _ => (&self.stable_concurrency, &self.panic_concurrency),
        };
        if stable.is_empty(now) && self.spec.has_scrape_target() {
            return None;
        }
        Some((stable.window_average(now), panic.window_average(now)))
    }

    /// One decider step at `now` with `ready_pods` ready replicas. `None`: no data, no
    /// decision (the previous one stands).
    pub fn decide(&mut self, now: Duration, ready_pods: u32) -> Option<Decision> {
        let (stable, panic) = self.observed(now)?;
        let spec = &self.spec;
        let ready = f64::from(ready_pods).max(1.0);
        let max_up = (spec.max_scale_up_rate * ready).ceil();
        let max_down = if spec.reachable {
            (ready / spec.max_scale_down_rate).floor()
        } else {
            0.0
        };
        let dspc = (stable / spec.target_value).ceil();
        let dppc = (panic / spec.target_value).ceil();
        let mut desired_stable = dspc.max(max_down).min(max_up) as i32;
        let mut desired_panic = dppc.max(max_down).min(max_up) as i32;
        let activation = i32::try_from(spec.activation_scale).unwrap_or(i32::MAX);
        if activation > 1 {
            if dspc > 0.0 && activation > desired_stable {
                desired_stable = activation;
            }
            if dppc > 0.0 && activation > desired_panic {
                desired_panic = activation;
            }
        }

        let over = dppc / ready >= spec.panic_threshold;
        match self.panic_time {
            _ if over => self.panic_time = Some(now),
            Some(t) if t + spec.stable_window < now => {
                self.panic_time = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }

        let mut desired = desired_stable;
        if self.panic_time.is_some() {
            desired = desired.max(desired_panic);
            self.max_panic_pods = self.max_panic_pods.max(desired);
            desired = self.max_panic_pods;
        }

        if spec.reachable
            && let Some(delay) = &mut self.delay
        {
            delay.record(now, desired);
            desired = delay.current();
        }

        let tbc = spec.target_burst_capacity;
        let ebc = if tbc == 0.0 {
            0.0
        } else if tbc > 0.0 {
            (f64::from(ready_pods) * spec.total_value - tbc - panic).floor()
        } else {
            -1.0
        } as i32;

        let changed = desired != self.desired || (ebc < 0) != (self.ebc < 0);
        self.desired = desired;
        self.ebc = ebc;
        Some(Decision {
            desired_pods: desired,
            excess_burst_capacity: ebc,
            panicking: self.panic_time.is_some(),
            stable_value: stable,
            panic_value: panic,
            changed,
        })
    }
}
