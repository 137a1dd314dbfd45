//! The KPA autoscaler's maths (reference `serving.md` §1), free of I/O, clocks and tasks:
//! every call takes `now` as a [`Duration`](std::time::Duration) since an epoch the caller fixes (with tokio:
//! `Instant::now() - start`, so a paused test clock drives it), so it is deterministic.
//!
//! # Use (data plane)
//! 1. [`AutoscalerConfig::from_map`] on the Contract's `Serving::autoscaler_config`, then
//!    [`RevisionSpec::for_revision`] per revision (or [`RevisionSpec::resolve`]).
//! 2. Start [`initial_replicas`] replicas; create an [`Autoscaler`] and a [`PodAutoscaler`].
//! 3. Every second, [`Autoscaler::record`] a [`Stat`] per replica report (revision totals add
//!    up within a second; record zeros too while replicas exist), and one per activator
//!    report (proxied fields 0). If [`Autoscaler::should_poke`] says so, decide at once.
//! 4. Every [`TICK`] (2 s): [`Autoscaler::decide`] with the ready count, then
//!    [`PodAutoscaler::reconcile`] with the decider's desired scale and excess burst
//!    capacity; apply [`Reconciled::replicas`] and put the activator in the path while
//!    [`Reconciled::mode`] is [`SksMode::Proxy`].
//!
//! # What is implemented
//! - §1.4 windows and buckets: 1-s buckets, linear (partial windows averaged over their
//!   real age, stale seconds excluded, gaps inside counted as 0, reset after a window of
//!   silence, 6-decimal rounding) and weighted-exponential; panic window
//!   round(W × pct ÷ 100) ≥ 1 s; "no data" when the stable window is empty and TBC ≠ -1.
//! - §1.5 target resolution (concurrency and rps, `containerConcurrency`, `target`,
//!   utilisation, TargetValue ≥ 0.01, TotalValue).
//! - §1.6 the decider step in full: scale-up/down rate limits (no down-limit when
//!   unreachable), activation scale, panic entry/extension/exit after a stable window with
//!   no tick over the threshold, no scale-down while panicking, scale-down delay (sliding
//!   maximum in 2-s slots), excess burst capacity, initial status (-1 and initial EBC), the
//!   change test (desired changed or EBC sign flipped), restart in panic with > 1 ready.
//! - §1.7 bounds (min ignored when unreachable, initial scale until initialised), the
//!   scale-to-zero gates (disabled, activating timeout = progress deadline + 30 s, active
//!   for a stable window, inactive: grace period / pod retention / time in proxy mode), SKS
//!   mode, activator count, the Active condition.
//! - §1.8 every `config-autoscaler` key and §1.9 every annotation, with Knative's
//!   validation ([`validate_annotations`]; admission in `knit-crds` mirrors it).
//! - §1.1 poke: a decision is due at once when desired is 0 and a stat shows load.
//!
//! # Deliberate differences
//! - §1.3 sampling is the identity: Knit reads every replica (n = N), so no extrapolation;
//!   [`sample_size`] is kept for reference only.
//! - Knative's activator probe (§1.7, inactive PA) is taken as passed: Knit's activator is
//!   in-process and in the path as soon as the mode is Proxy.
//! - The HPA class and non-KPA metrics are resolved and validated but not run
//!   ([`RevisionSpec::is_kpa`] is false).
//! - `metric-aggregation-algorithm` is validated when the class annotation is absent
//!   (meaning KPA), not only when it says KPA; `panic-threshold-percentage` in the
//!   ConfigMap must be positive (Knative does not check it); NaN is never a valid number.

pub mod annotations;
pub mod bounds;
pub mod bucket;
pub mod config;
pub mod decider;
pub mod delay;
pub mod target;

#[cfg(test)]
mod tests;

pub use annotations::validate_annotations;
pub use bounds::{
    Activity, PodAutoscaler, Reconciled, SksMode, apply_bounds, initial_replicas, scale_bounds,
};
pub use config::AutoscalerConfig;
pub use decider::{Autoscaler, Decision, Stat, TICK};
pub use target::{Algorithm, Metric, RevisionSpec};

/// One invalid ConfigMap key or annotation (the type the shared `config-autoscaler` parser
/// reports with).
pub use knit_crds::configmap::KeyError as FieldError;

/// Knative's scrape sample size for `n` pods (§1.3): all of them up to 3, else
/// ceil(N·X ÷ (N + X − 1)) with X = 1.96² × 100 ÷ 5². Knit reads every replica instead.
pub fn sample_size(pods: u32) -> u32 {
    if pods <= 3 {
        return pods;
    }
    let x = 1.96f64 * 1.96 * 100.0 / 25.0;
    let n = f64::from(pods);
    (n * x / (n + x - 1.0)).ceil() as u32
}

/// The pod count the KPA settles on under a constant revision-wide load `load` of its metric
/// (concurrency or rps) once the windows are full and outside panic: ceil(load ÷
/// TargetValue), raised to the activation scale when non-zero, clamped into the bounds.
/// This is the formula a step load's replica count follows.
pub fn steady_state_pods(spec: &RevisionSpec, load: f64) -> u32 {
    let mut pods = (load / spec.target_value).ceil() as i32;
    let activation = i32::try_from(spec.activation_scale).unwrap_or(i32::MAX);
    if pods > 0 && activation > 1 {
        pods = pods.max(activation);
    }
    let (min, max) = scale_bounds(spec);
    u32::try_from(apply_bounds(min, max, pods)).unwrap_or(0)
}
