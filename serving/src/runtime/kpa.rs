//! The KPA of [`crate::autoscaler`] behind the scaler's [`Decide`] seam: every scaler tick
//! records the revision-wide stat; the decider steps every [`TICK`] (at once when a stat pokes
//! it at zero, or when a gate asked to be requeued), and the PodAutoscaler applies the bounds
//! and scale-to-zero gates. Its clock is `Instant - epoch`, the epoch fixed at creation.

use std::time::{Duration, Instant};

use knit_crds::contract::serving::Revision;

use super::proxy::Sample;
use super::scaler::Decide;
use crate::autoscaler::{
    Autoscaler, AutoscalerConfig, PodAutoscaler, RevisionSpec, Stat, TICK, initial_replicas,
};

/// The KPA for one revision.
pub(crate) struct Kpa {
    epoch: Instant,
    spec: RevisionSpec,
    scaler: Autoscaler,
    pa: PodAutoscaler,
    next_decision: Duration,
    requeue_at: Option<Duration>,
    replicas: u32,
    poked: bool,
}

impl Kpa {
    /// The KPA of `rev`, or why its annotations or the ConfigMap are refused.
    pub(crate) fn new(
        rev: &Revision,
        config: &std::collections::BTreeMap<String, String>,
        progress_deadline: Duration,
    ) -> crate::Result<Self> {
        let refused = |errors| crate::Error::AutoscalingRefused { errors };
        let config = AutoscalerConfig::from_map(config).map_err(refused)?;
        let spec = RevisionSpec::for_revision(&config, rev).map_err(refused)?;
        if !spec.is_kpa() {
            return Err(crate::Error::UnsupportedClass { class: spec.class });
        }
        let epoch = Instant::now();
        let mut pa = PodAutoscaler::new(Duration::ZERO);
        pa.progress_deadline = progress_deadline;
        Ok(Self {
            epoch,
            replicas: initial_replicas(&spec),
            scaler: Autoscaler::new(spec.clone(), Duration::ZERO, 0),
            spec,
            pa,
            next_decision: Duration::ZERO,
            requeue_at: None,
            poked: false,
        })
    }

    fn at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }
}

impl Decide for Kpa {
    fn tick(
        &mut self,
        now: Instant,
        sample: Sample,
        ready: u32,
        routed: bool,
        _initialized: bool,
    ) -> u32 {
        let t = self.at(now);
        if self.spec.reachable != routed {
            self.spec.reachable = routed;
            self.scaler.update(t, self.spec.clone());
        }
        let stat = Stat {
            concurrency: sample.concurrency,
            rps: sample.rps,
            ..Stat::default()
        };
        let poke = self.poked || self.scaler.should_poke(&stat);
        self.poked = false;
        self.scaler.record(t, stat);
        let requeue = self.requeue_at.is_some_and(|r| t >= r);
        if poke || requeue || t >= self.next_decision {
            if t >= self.next_decision {
                self.next_decision = t + TICK;
            }
            let decision = self.scaler.decide(t, ready);
            let (desired, ebc) = match decision {
                Some(d) => (d.desired_pods, d.excess_burst_capacity),
                None => (
                    self.scaler.desired_scale(),
                    self.scaler.excess_burst_capacity(),
                ),
            };
            let r = self.pa.reconcile(t, &self.spec, desired, ebc, ready);
            if let Some(n) = r.replicas {
                self.replicas = n;
            }
            self.requeue_at = r.requeue_after.map(|d| t + d);
        }
        self.replicas
    }

    fn poke(&mut self, _now: Instant) {
        // The activator's first request: decide at the next tick, however recent the last
        // decision (the replica itself is already starting).
        self.poked = true;
        self.replicas = self.replicas.max(1);
    }

    fn initial(&self) -> u32 {
        initial_replicas(&self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::runtime::fixtures::revision as rev;

    #[test]
    fn short_windows_run_the_kpa_and_invalid_ones_are_refused() {
        let config: BTreeMap<String, String> =
            [("scale-to-zero-grace-period".to_string(), "1s".to_string())].into();
        let ok = rev(&[("autoscaling.knative.dev/window", "6s")]);
        assert!(Kpa::new(&ok, &config, Duration::from_secs(600)).is_ok());
        let bad = rev(&[("autoscaling.knative.dev/window", "2s")]);
        assert!(Kpa::new(&bad, &config, Duration::from_secs(600)).is_err());
    }
}
