//! The PA reconciler (§1.7): bounds, scale-to-zero gates, SKS mode, activators.

use super::*;

#[test]
fn bounds_clamp_with_zero_as_unbounded() {
    assert_eq!(apply_bounds(0, 0, 7), 7);
    assert_eq!(apply_bounds(2, 0, 1), 2);
    assert_eq!(apply_bounds(2, 5, 9), 5);
    assert_eq!(apply_bounds(0, 5, -1), 0);
    assert_eq!(apply_bounds(3, 5, -1), 3);
    let sp = spec(&[("min-scale", "2"), ("max-scale", "4")], 0);
    assert_eq!(scale_bounds(&sp), (2, 4));
    let mut reserve = sp.clone();
    reserve.reachable = false;
    assert_eq!(scale_bounds(&reserve), (0, 4));
}

/// A default PA brought to Active with one ready replica at `t0 + 2`.
fn active(sp: &RevisionSpec) -> PodAutoscaler {
    let mut pa = PodAutoscaler::new(s(0));
    let r = pa.reconcile(s(0), sp, -1, -111, 0);
    assert_eq!(
        (r.want, r.replicas, r.activity),
        (-1, None, Activity::Activating)
    );
    assert_eq!(r.mode, SksMode::Proxy);
    let r = pa.reconcile(s(2), sp, -1, -111, 1);
    assert_eq!(r.activity, Activity::Active);
    assert!(pa.initialized());
    pa
}

#[test]
fn scale_to_zero_after_a_stable_window_then_the_grace_period() {
    // EBC ≥ 0 (the activator out of the path while serving).
    let sp = spec(&[], 0);
    let mut pa = active(&sp);
    // Desired 0 while active for less than a stable window: keep 1.
    let r = pa.reconcile(s(4), &sp, 0, 0, 1);
    assert_eq!((r.want, r.replicas, r.mode), (1, Some(1), SksMode::Serve));
    assert_eq!(r.requeue_after, Some(s(58)));
    assert_eq!(r.activity, Activity::Active);
    // Active for 60 s: want 0, not applied yet; the PA goes Inactive and the activator in.
    let r = pa.reconcile(s(62), &sp, 0, 0, 1);
    assert_eq!((r.want, r.replicas), (0, None));
    assert_eq!(
        (r.activity, r.reason, r.mode),
        (Activity::Inactive, "NoTraffic", SksMode::Proxy)
    );
    // Inactive: wait for the grace period (30 s) in proxy mode.
    let r = pa.reconcile(s(64), &sp, 0, 0, 1);
    assert_eq!((r.replicas, r.requeue_after), (None, Some(s(28))));
    let r = pa.reconcile(s(91), &sp, 0, 0, 1);
    assert_eq!(r.replicas, None);
    let r = pa.reconcile(s(92), &sp, 0, 0, 1);
    assert_eq!(
        r.replicas,
        Some(0),
        "stable window + grace after the last load"
    );
}

#[test]
fn grace_period_is_skipped_when_the_activator_was_already_in_the_path() {
    // Default TBC 211 with one replica: EBC < 0, the activator never left the path.
    let sp = spec(&[], 0);
    let mut pa = active(&sp);
    assert_eq!(pa.reconcile(s(4), &sp, 0, -111, 1).mode, SksMode::Proxy);
    assert_eq!(pa.reconcile(s(62), &sp, 0, -111, 1).replicas, None);
    assert_eq!(pa.reconcile(s(64), &sp, 0, -111, 1).replicas, Some(0));
}

#[test]
fn pod_retention_keeps_the_last_replica_longer() {
    let sp = spec(&[("scale-to-zero-pod-retention-period", "90s")], 0);
    let mut pa = active(&sp);
    pa.reconcile(s(4), &sp, 0, 0, 1);
    pa.reconcile(s(62), &sp, 0, 0, 1);
    let r = pa.reconcile(s(92), &sp, 0, 0, 1);
    assert_eq!((r.replicas, r.requeue_after), (None, Some(s(60))));
    assert_eq!(pa.reconcile(s(151), &sp, 0, 0, 1).replicas, None);
    assert_eq!(pa.reconcile(s(152), &sp, 0, 0, 1).replicas, Some(0));
    // An unreachable revision ignores retention.
    let mut reserve = sp.clone();
    reserve.reachable = false;
    let mut pa = active(&reserve);
    pa.reconcile(s(4), &reserve, 0, 0, 1);
    pa.reconcile(s(62), &reserve, 0, 0, 1);
    assert_eq!(pa.reconcile(s(91), &reserve, 0, 0, 1).replicas, None);
    assert_eq!(pa.reconcile(s(92), &reserve, 0, 0, 1).replicas, Some(0));
}

#[test]
fn scale_to_zero_can_be_disabled() {
    let mut sp = spec(&[], 0);
    sp.enable_scale_to_zero = false;
    let mut pa = PodAutoscaler::new(s(0));
    let r = pa.reconcile(s(0), &sp, -1, -111, 0);
    assert_eq!(
        (r.want, r.replicas),
        (1, Some(1)),
        "even before any decision"
    );
    let r = pa.reconcile(s(500), &sp, 0, -111, 1);
    assert_eq!((r.want, r.replicas), (1, Some(1)));
}

#[test]
fn activation_gives_up_after_the_progress_deadline() {
    let sp = spec(&[], 0);
    let mut pa = PodAutoscaler::new(s(0));
    let r = pa.reconcile(s(2), &sp, 0, -111, 0);
    assert_eq!(
        (r.want, r.replicas, r.activity),
        (-1, None, Activity::Activating)
    );
    assert_eq!(r.requeue_after, Some(s(628)));
    assert_eq!(pa.reconcile(s(630), &sp, 0, -111, 0).replicas, None);
    let r = pa.reconcile(s(631), &sp, 0, -111, 0);
    assert_eq!(r.replicas, Some(0));
    assert_eq!((r.activity, r.reason), (Activity::Inactive, "TimedOut"));
}

#[test]
fn initial_and_min_scale() {
    // Initial scale 3 holds until the target reaches it once.
    let sp = spec(&[("initial-scale", "3")], 0);
    assert_eq!(initial_replicas(&sp), 3);
    let mut pa = PodAutoscaler::new(s(0));
    assert_eq!(pa.reconcile(s(0), &sp, -1, 0, 0).replicas, Some(3));
    assert_eq!(pa.reconcile(s(2), &sp, 0, 0, 2).replicas, Some(3));
    assert_eq!(
        pa.reconcile(s(2), &sp, 0, 0, 2).activity,
        Activity::Activating
    );
    let r = pa.reconcile(s(4), &sp, 1, 0, 3);
    assert_eq!((r.replicas, r.activity), (Some(3), Activity::Active));
    assert!(pa.initialized());
    assert_eq!(
        pa.reconcile(s(6), &sp, 1, 0, 3).replicas,
        Some(1),
        "then the decider rules"
    );
    // Min scale holds a floor; max scale a ceiling; reserve revisions drop the floor.
    let sp = spec(&[("min-scale", "2"), ("max-scale", "4")], 0);
    let mut pa = PodAutoscaler::new(s(0));
    assert_eq!(pa.reconcile(s(0), &sp, -1, 0, 0).replicas, Some(2));
    assert_eq!(pa.reconcile(s(2), &sp, 0, 0, 2).replicas, Some(2));
    assert_eq!(pa.reconcile(s(4), &sp, 9, 0, 2).replicas, Some(4));
    let mut reserve = sp.clone();
    reserve.reachable = false;
    let mut pa = active(&reserve);
    assert_eq!(pa.reconcile(s(100), &reserve, 0, 0, 1).want, 0);
}

#[test]
fn sks_mode_follows_excess_burst_capacity() {
    // Vector 5: EBC 39 → Serve; EBC -61 → Proxy.
    let sp = spec(&[], 0);
    let mut pa = active(&sp);
    assert_eq!(pa.reconcile(s(4), &sp, 3, 39, 3).mode, SksMode::Serve);
    assert_eq!(pa.mode(), SksMode::Serve);
    assert_eq!(pa.reconcile(s(6), &sp, 3, -61, 2).mode, SksMode::Proxy);
    // Unknown desired while inactive: Proxy.
    let mut pa = active(&sp);
    pa.reconcile(s(62), &sp, 0, 0, 1);
    let r = pa.reconcile(s(64), &sp, -1, 0, 1);
    assert_eq!(
        (r.mode, r.replicas, r.activity),
        (SksMode::Proxy, None, Activity::Inactive)
    );
}

#[test]
fn activator_count() {
    let sp = spec(&[], 0);
    let mut pa = active(&sp);
    // ceil((3 × 100 + 211) ÷ 100) = 6.
    assert_eq!(pa.reconcile(s(4), &sp, 3, 39, 3).activators, 6);
    assert_eq!(pa.reconcile(s(4), &sp, 1, 0, 0).activators, 3);
    let zero = spec(&[("target-burst-capacity", "0")], 0);
    assert_eq!(pa.reconcile(s(4), &zero, 3, 0, 30).activators, 2);
    let unlimited = spec(&[("target-burst-capacity", "-1")], 0);
    assert_eq!(pa.reconcile(s(4), &unlimited, 1, -1, 1).activators, 2);
}

#[test]
fn traffic_while_inactive_reactivates() {
    let sp = spec(&[], 0);
    let mut pa = active(&sp);
    pa.reconcile(s(62), &sp, 0, -111, 1);
    assert_eq!(pa.reconcile(s(92), &sp, 0, -111, 1).replicas, Some(0));
    // A request arrives: the decider says 1; the PA activates until a replica is ready.
    let r = pa.reconcile(s(100), &sp, 1, -111, 0);
    assert_eq!(
        (r.replicas, r.activity, r.reason),
        (Some(1), Activity::Activating, "Queued")
    );
    let r = pa.reconcile(s(101), &sp, 1, -111, 1);
    assert_eq!((r.replicas, r.activity), (Some(1), Activity::Active));
}
