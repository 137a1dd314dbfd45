//! The PodAutoscaler reconciler of reference §1.7: min/max/initial-scale bounds, the
//! scale-to-zero gates (stable window while active, grace period and pod retention while
//! inactive, activation timeout), whether the activator stays in the path (Knative's SKS
//! Proxy/Serve mode), how many activators a revision needs, and the PA's Active condition.
//!
//! Knit's activator is in-process: once the mode is [`SksMode::Proxy`] it is in the path,
//! so Knative's activator probe is taken as passed.

use std::time::Duration;

use super::target::RevisionSpec;

/// Knative's `applyBounds`: clamp `x` into [min, max], max 0 meaning unbounded.
pub fn apply_bounds(min: u32, max: u32, x: i32) -> i32 {
    let min = i32::try_from(min).unwrap_or(i32::MAX);
    let max = i32::try_from(max).unwrap_or(i32::MAX);
    if x < min {
        min
    } else if max != 0 && x > max {
        max
    } else {
        x
    }
}

/// (min, max) scale: min is ignored (0) for an unreachable revision; max 0 is unbounded.
pub fn scale_bounds(spec: &RevisionSpec) -> (u32, u32) {
    (
        if spec.reachable { spec.min_scale } else { 0 },
        spec.max_scale,
    )
}

/// The replica count a new revision starts with (its Deployment's `replicas`).
pub fn initial_replicas(spec: &RevisionSpec) -> u32 {
    spec.initial_scale
}

/// Extra time past the progress deadline before an activation is given up.
pub const ACTIVATION_TIMEOUT_BUFFER: Duration = Duration::from_secs(30);
/// Knative's `config-deployment` `progress-deadline` default.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// Fewest activators per revision.
pub const MIN_ACTIVATORS: u32 = 2;

/// The PA's Active condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// Active=Unknown: replicas are being brought up ("Queued").
    Activating,
    /// Active=True.
    Active,
    /// Active=False: no traffic ("NoTraffic"), or activation given up ("TimedOut").
    Inactive,
}

/// Whether the activator is in the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SksMode {
    /// Requests go to replicas directly.
    Serve,
    /// Requests go through the activator.
    Proxy,
}

/// What one reconcile decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconciled {
    /// `Some(n)`: set the replica count to `n`; `None`: leave it as it is.
    pub replicas: Option<u32>,
    /// What the PA wants (-1: unknown), after bounds and gates.
    pub want: i32,
    /// Whether the activator is in the path.
    pub mode: SksMode,
    /// Activators the revision needs (Knit runs one; informational).
    pub activators: u32,
    /// Reconcile again after this long at the latest (a gate is waiting).
    pub requeue_after: Option<Duration>,
    /// The Active condition after this reconcile.
    pub activity: Activity,
    /// Its reason: `Queued`, `NoTraffic`, `TimedOut`, or empty when active.
    pub reason: &'static str,
}

/// The state of one revision's PodAutoscaler.
#[derive(Clone, Debug)]
pub struct PodAutoscaler {
    activity: Activity,
    reason: &'static str,
    /// When `activity` last changed.
    since: Duration,
    initialized: bool,
    mode: SksMode,
    proxy_since: Option<Duration>,
    /// The revision's progress deadline (`serving.knative.dev/progress-deadline` or
    /// `config-deployment`), 600 s by default.
    pub progress_deadline: Duration,
}

impl PodAutoscaler {
    /// A new PA: activating, the activator in the path, scale target not yet initialised.
    pub fn new(now: Duration) -> Self {
        Self {
            activity: Activity::Activating,
            reason: "Queued",
            since: now,
            initialized: false,
            mode: SksMode::Proxy,
            proxy_since: Some(now),
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
        }
    }

    /// The Active condition.
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Whether the scale target reached its initial scale once.
    pub fn initialized(&self) -> bool {
        self.initialized
    }

    /// The current mode.
    pub fn mode(&self) -> SksMode {
        self.mode
    }

    fn set_activity(&mut self, now: Duration, a: Activity, reason: &'static str) {
        if a != self.activity {
            self.since = now;
        }
        self.activity = a;
        self.reason = reason;
    }

    /// Ready replicas needed to count as active.
    fn min_ready(&self, spec: &RevisionSpec) -> u32 {
        let (min, _) = scale_bounds(spec);
        if self.initialized {
            min.max(1)
        } else {
            min.max(spec.initial_scale)
        }
    }

    /// Reconcile at `now`: the decider's `desired` (-1: unknown) and excess burst capacity,
    /// and the `ready` replica count. Call it on every decider tick and when
    /// `requeue_after` elapses.
    pub fn reconcile(
        &mut self,
        now: Duration,
        spec: &RevisionSpec,
        desired: i32,
        ebc: i32,
        ready: u32,
    ) -> Reconciled {
        let mut requeue = None;
        let (want, replicas) = if desired < 0 && self.activity != Activity::Activating {
            (desired, None)
        } else {
            let (mut min, max) = scale_bounds(spec);
            if spec.initial_scale > 1 && !self.initialized && spec.reachable {
                min = min.max(spec.initial_scale);
            }
            let bounded = apply_bounds(min, max, desired);
            let (want, apply) = self.scale_to_zero(now, spec, bounded, &mut requeue);
            (want, apply.then(|| u32::try_from(want).unwrap_or(0)))
        };

        let mode = if want > 0 && ebc >= 0 {
            SksMode::Serve
        } else {
            SksMode::Proxy
        };
        if mode != self.mode {
            self.proxy_since = (mode == SksMode::Proxy).then_some(now);
        }
        self.mode = mode;

        let activators = if spec.target_burst_capacity == 0.0 {
            MIN_ACTIVATORS
        } else {
            let cover = f64::from(ready) * spec.total_value + spec.target_burst_capacity.max(0.0);
            ((cover / spec.activator_capacity).ceil() as u32).max(MIN_ACTIVATORS)
        };

        // The Active condition.
        let min_ready = self.min_ready(spec);
        if ready >= min_ready {
            self.initialized = true;
        }
        let inactive = self.activity == Activity::Inactive;
        if want == 0 || min_ready == 0 {
            let reason = if self.activity == Activity::Activating && min_ready > 0 {
                "TimedOut"
            } else {
                "NoTraffic"
            };
            self.set_activity(now, Activity::Inactive, reason);
        } else if ready < min_ready {
            if want > 0 || !inactive {
                self.set_activity(now, Activity::Activating, "Queued");
            } else {
                self.set_activity(now, Activity::Inactive, "NoTraffic");
            }
        } else if want > 0 || !inactive {
            self.set_activity(now, Activity::Active, "");
        }

        Reconciled {
            replicas,
            want,
            mode,
            activators,
            requeue_after: requeue,
            activity: self.activity,
            reason: self.reason,
        }
    }

    /// The scale-to-zero gate: (scale, whether to apply it).
    fn scale_to_zero(
        &self,
        now: Duration,
        spec: &RevisionSpec,
        desired: i32,
        requeue: &mut Option<Duration>,
    ) -> (i32, bool) {
        if desired != 0 {
            return (desired, true);
        }
        if !spec.enable_scale_to_zero {
            return (1, true);
        }
        let in_state = now.saturating_sub(self.since);
        match self.activity {
            Activity::Activating => {
                let timeout = self.progress_deadline + ACTIVATION_TIMEOUT_BUFFER;
                if in_state > timeout {
                    (desired, true)
                } else {
                    *requeue = Some(timeout - in_state);
                    (-1, false)
                }
            }
            Activity::Active => {
                if in_state >= spec.stable_window {
                    (desired, false)
                } else {
                    *requeue = Some(spec.stable_window - in_state);
                    (1, true)
                }
            }
            Activity::Inactive => {
                let retention = if spec.reachable {
                    spec.scale_to_zero_pod_retention
                } else {
                    Duration::ZERO
                };
                let grace = spec.scale_to_zero_grace_period;
                if in_state >= grace.max(retention) {
                    return (desired, true);
                }
                if !retention.is_zero() && in_state < retention {
                    *requeue = Some(retention - in_state);
                    return (desired, false);
                }
                let proxy_for = self
                    .proxy_since
                    .filter(|_| self.mode == SksMode::Proxy)
                    .map_or(Duration::ZERO, |t| now.saturating_sub(t));
                if proxy_for >= grace {
                    (desired, true)
                } else {
                    *requeue = Some(grace - proxy_for);
                    (desired, false)
                }
            }
        }
    }
}
