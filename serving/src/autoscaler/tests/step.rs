//! Step loads: the replica count follows the KPA formulas tick by tick (issue 10's target).
//! The expected counts come from a closed-form model of §1.4–§1.6 (window averages of the
//! load function, the rate limits and the panic rules), independent of the bucket ring.

use super::*;

/// Target 10 concurrent requests per pod (TargetValue 10).
fn target_10() -> RevisionSpec {
    spec(
        &[("target", "10"), ("target-utilization-percentage", "100")],
        0,
    )
}

/// Average of `load` over the `w` seconds ending at `t` (over the data's age while younger).
fn window_avg(load: &dyn Fn(u64) -> f64, t: u64, w: u64) -> f64 {
    let from = (t + 1).saturating_sub(w);
    let sum: f64 = (from..=t).map(load).sum();
    ((sum / (t + 1 - from) as f64) * 1e6).round() / 1e6
}

/// The model: desired pods at each tick (every 2 s, at odd seconds after that second's
/// stat), with ready = the previous desired (replicas become ready by the next tick).
fn model(sp: &RevisionSpec, load: &dyn Fn(u64) -> f64, until: u64) -> Vec<(u64, i32)> {
    let (w, p) = (sp.stable_window.as_secs(), sp.panic_window.as_secs());
    let mut out = Vec::new();
    let mut desired = 0i32;
    let mut panic_since: Option<u64> = None;
    let mut max_panic = 0i32;
    for t in (1..until).step_by(2) {
        let r = f64::from(desired.max(1));
        let up = (sp.max_scale_up_rate * r).ceil();
        let down = (r / sp.max_scale_down_rate).floor();
        let dspc = (window_avg(load, t, w) / sp.target_value).ceil();
        let dppc = (window_avg(load, t, p) / sp.target_value).ceil();
        let stable = dspc.max(down).min(up) as i32;
        let panic = dppc.max(down).min(up) as i32;
        if dppc / r >= sp.panic_threshold {
            panic_since = Some(t);
        } else if panic_since.is_some_and(|p| p + w < t) {
            panic_since = None;
            max_panic = 0;
        }
        desired = if panic_since.is_some() {
            max_panic = max_panic.max(stable.max(panic));
            max_panic
        } else {
            stable
        };
        out.push((t, desired));
    }
    out
}

/// Run the autoscaler on `load`, ready = the previous desired, and compare with the model.
fn follow(load: &dyn Fn(u64) -> f64, until: u64) -> Vec<(u64, i32)> {
    let sp = target_10();
    let mut a = Autoscaler::new(sp.clone(), s(0), 0);
    let mut got = Vec::new();
    for t in 0..until {
        a.record(s(t), conc(load(t)));
        if t % 2 == 1 {
            let ready = a.desired_scale().max(0) as u32;
            got.push((t, decide(&mut a, t, ready).desired_pods));
        }
    }
    assert_eq!(got, model(&sp, load, until));
    got
}

#[test]
fn constant_load_is_ceil_of_load_over_target_at_every_tick() {
    for c in [0.0, 5.0, 10.0, 10.5, 35.0, 100.0, 1000.0] {
        let got = follow(&|_| c, 60);
        let want = steady_state_pods(&target_10(), c);
        assert_eq!(want, (c / 10.0_f64).ceil() as u32);
        for (t, d) in got {
            assert_eq!(d as u32, want, "C = {c} at {t}s");
        }
    }
}

#[test]
fn step_up_panics_then_follows_the_stable_window() {
    let got = follow(&|t| if t < 60 { 20.0 } else { 200.0 }, 180);
    // Before the step: 2 pods. Right after: the panic window reacts within a tick.
    assert!(got.iter().filter(|(t, _)| *t < 60).all(|(_, d)| *d == 2));
    let first = got.iter().find(|(t, _)| *t >= 61).map(|(_, d)| *d);
    assert_eq!(
        first,
        Some(8),
        "panic window 56..=61 averages 80: ceil(80 / 10)"
    );
    assert_eq!(got.last().map(|(_, d)| *d), Some(20));
}

#[test]
fn step_down_is_rate_limited_and_held_while_panicking() {
    let got = follow(&|t| if t < 60 { 300.0 } else { 10.0 }, 240);
    assert_eq!(got.last().map(|(_, d)| *d), Some(1));
    // Never below half the previous count in one tick.
    for w in got.windows(2) {
        assert!(w[1].1 >= w[0].1 / 2, "{w:?}");
    }
}
