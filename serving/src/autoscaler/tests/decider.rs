//! The decider step (§1.6) and §1.10's test vectors.

use super::*;

/// A default-spec autoscaler whose stable average is `stable` and panic average `panic` at
/// second 59 (54 s of `base`, then 6 s of `panic`, with `base` chosen so the 60-s average
/// is `stable`).
fn windows(spec: RevisionSpec, stable: f64, panic: f64) -> Autoscaler {
    let mut a = Autoscaler::new(spec, s(0), 0);
    let base = (stable * 60.0 - panic * 6.0) / 54.0;
    feed(&mut a, 0, 54, base);
    feed(&mut a, 54, 60, panic);
    a
}

#[test]
fn vector_1_no_panic_below_twice_the_target() {
    // CC = 0, target 70, ready = 3, S = Pn = 350: dspc = dppc = 5; 5/3 < 2; result 5.
    let sp = spec(&[], 0);
    assert_eq!(sp.target_value, 70.0);
    let mut a = windows(sp, 350.0, 350.0);
    assert_eq!(a.observed(s(59)), Some((350.0, 350.0)));
    let d = decide(&mut a, 59, 3);
    assert_eq!(d.desired_pods, 5);
    assert!(!d.panicking);
}

#[test]
fn vector_2_panic_at_twice_and_hold_for_a_stable_window() {
    // ready = 2, Pn = 420 → dppc = 6, 6/2 = 3 ≥ 2: panic, result max(stable, 6) = 6.
    let mut a = windows(spec(&[], 0), 42.0, 420.0);
    let d = decide(&mut a, 59, 2);
    assert!(d.panicking);
    assert_eq!(d.desired_pods, 6);
    // Load stops: no scale-down while panicking; exit once panicTime + 60 s < now.
    let mut t = 61;
    while t <= 119 {
        a.record(s(t - 1), conc(0.0));
        a.record(s(t), conc(0.0));
        let d = decide(&mut a, t, 6);
        assert!(d.panicking, "still panicking at {t}");
        assert_eq!(d.desired_pods, 6, "held at {t}");
        t += 2;
    }
    a.record(s(120), conc(0.0));
    a.record(s(121), conc(0.0));
    // 59 + 60 = 119 < 121: panic exits and the stable count (rate-limited) takes over.
    let d = decide(&mut a, 121, 6);
    assert!(!d.panicking);
    assert_eq!(d.desired_pods, 3, "floor(6 / 2): the scale-down rate limit");
}

#[test]
fn panic_is_extended_by_each_tick_over_the_threshold() {
    let mut a = windows(spec(&[], 0), 42.0, 420.0);
    assert!(decide(&mut a, 59, 2).panicking);
    // Still over at 100 s: panicTime moves to 100, so at 121 it still panics.
    feed(&mut a, 60, 101, 420.0);
    assert!(decide(&mut a, 100, 2).panicking);
    feed(&mut a, 101, 161, 0.0);
    assert!(decide(&mut a, 121, 6).panicking);
    assert!(decide(&mut a, 160, 6).panicking);
    assert!(!decide(&mut a, 161, 6).panicking);
}

#[test]
fn vector_3_scale_down_halves_per_tick_and_unreachable_goes_to_zero() {
    let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
    feed(&mut a, 0, 60, 0.0);
    assert_eq!(decide(&mut a, 59, 10).desired_pods, 5);
    assert_eq!(decide(&mut a, 59, 5).desired_pods, 2);
    assert_eq!(decide(&mut a, 59, 2).desired_pods, 1);
    assert_eq!(decide(&mut a, 59, 1).desired_pods, 0);

    let mut unreachable = spec(&[], 0);
    unreachable.reachable = false;
    let mut a = Autoscaler::new(unreachable, s(0), 0);
    feed(&mut a, 0, 60, 0.0);
    assert_eq!(decide(&mut a, 59, 10).desired_pods, 0);
}

#[test]
fn vector_4_scale_up_rate_grows_by_at_least_one() {
    // MaxScaleUpRate 1.1, ready 2, target 1: maxUp = ceil(2.2) = 3.
    let mut sp = spec(&[], 0);
    sp.max_scale_up_rate = 1.1;
    sp.target_value = 1.0;
    let mut a = Autoscaler::new(sp.clone(), s(0), 0);
    feed(&mut a, 0, 60, 3.0);
    assert_eq!(decide(&mut a, 59, 2).desired_pods, 3);
    let mut a = Autoscaler::new(sp, s(0), 0);
    feed(&mut a, 0, 60, 2.5);
    assert_eq!(decide(&mut a, 59, 2).desired_pods, 3);
    let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
    feed(&mut a, 0, 60, 70.0 * 9.0);
    let d = decide(&mut a, 59, 2);
    assert_eq!(d.desired_pods, 9, "the default rate (1000) does not bind");
}

#[test]
fn vector_4_rate_limit_binds_above_max_up() {
    let mut sp = spec(&[], 0);
    sp.max_scale_up_rate = 1.1;
    sp.target_value = 1.0;
    sp.panic_threshold = 100.0; // keep panic out of the way
    let mut a = Autoscaler::new(sp, s(0), 0);
    feed(&mut a, 0, 60, 10.0);
    assert_eq!(
        decide(&mut a, 59, 2).desired_pods,
        3,
        "10 wanted, ceil(1.1 × 2) allowed"
    );
}

#[test]
fn vector_5_excess_burst_capacity() {
    // TBC 211, TotalValue 100, ready 3, Pn = 50: floor(300 − 211 − 50) = 39.
    let mut a = windows(spec(&[], 0), 50.0, 50.0);
    let d = decide(&mut a, 59, 3);
    assert_eq!(d.excess_burst_capacity, 39);
    let d = decide(&mut a, 59, 2);
    assert_eq!(d.excess_burst_capacity, -61);
    assert!(d.changed, "the EBC sign flipped");
    // TBC 0 → 0; TBC -1 → -1.
    let mut a = windows(spec(&[("target-burst-capacity", "0")], 0), 50.0, 50.0);
    assert_eq!(decide(&mut a, 59, 3).excess_burst_capacity, 0);
    let mut a = windows(spec(&[("target-burst-capacity", "-1")], 0), 50.0, 50.0);
    assert_eq!(decide(&mut a, 59, 3).excess_burst_capacity, -1);
}

#[test]
fn initial_status_and_changed() {
    let a = Autoscaler::new(spec(&[], 0), s(0), 0);
    assert_eq!(a.desired_scale(), -1);
    assert_eq!(a.excess_burst_capacity(), -111);
    let a = Autoscaler::new(spec(&[("target-burst-capacity", "-1")], 0), s(0), 0);
    assert_eq!(a.excess_burst_capacity(), -1);
    let a = Autoscaler::new(spec(&[("target-burst-capacity", "0")], 0), s(0), 0);
    assert_eq!(a.excess_burst_capacity(), 0);
    let a = Autoscaler::new(spec(&[("initial-scale", "3")], 10), s(0), 0);
    assert_eq!(a.excess_burst_capacity(), 3 * 10 - 211);

    let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
    feed(&mut a, 0, 60, 70.0);
    assert!(decide(&mut a, 59, 1).changed, "-1 → 1");
    assert!(
        !decide(&mut a, 59, 1).changed,
        "same desired, same EBC sign"
    );
}

#[test]
fn no_data_keeps_the_previous_decision() {
    let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
    assert_eq!(a.decide(s(10), 0), None);
    a.record(s(10), conc(7.0));
    assert!(a.decide(s(12), 1).is_some());
    // More than a window of silence: empty again.
    assert!(
        a.decide(s(70), 1).is_some(),
        "exactly a window later: not empty yet"
    );
    assert_eq!(a.decide(s(71), 1), None);
    assert_eq!(a.desired_scale(), 0, "the last valid decision stands");
    // TBC -1: no scrape target, so silence reads as 0, not "no data".
    let mut a = Autoscaler::new(spec(&[("target-burst-capacity", "-1")], 0), s(0), 0);
    assert_eq!(decide(&mut a, 10, 0).desired_pods, 0);
}

#[test]
fn poke_when_at_zero_and_a_stat_shows_load() {
    let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
    assert!(!a.should_poke(&conc(1.0)), "desired is unknown (-1), not 0");
    feed(&mut a, 0, 60, 0.0);
    assert_eq!(decide(&mut a, 59, 0).desired_pods, 0);
    assert!(!a.should_poke(&conc(0.0)));
    assert!(a.should_poke(&conc(1.0)));
    // The activator's first stat (concurrency 1) scales from zero at once.
    a.record(s(60), conc(1.0));
    let d = decide(&mut a, 60, 0);
    assert_eq!(d.desired_pods, 1);
    assert!(!a.should_poke(&conc(1.0)));
}

#[test]
fn proxied_traffic_is_not_counted_twice() {
    let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
    a.record(
        s(0),
        Stat {
            concurrency: 100.0,
            proxied_concurrency: 30.0,
            rps: 50.0,
            proxied_rps: 20.0,
        },
    );
    a.record(s(0), conc(30.0)); // the activator's own report
    assert_eq!(a.observed(s(0)), Some((100.0, 100.0)));
    let mut r = Autoscaler::new(spec(&[("metric", "rps")], 0), s(0), 0);
    r.record(
        s(0),
        Stat {
            rps: 50.0,
            proxied_rps: 20.0,
            ..Stat::default()
        },
    );
    assert_eq!(r.observed(s(0)), Some((30.0, 30.0)));
    assert_eq!(r.spec().target_value, 140.0);
    assert_eq!(decide(&mut r, 0, 1).desired_pods, 1);
}

#[test]
fn activation_scale_is_the_minimum_non_zero_scale() {
    let mut a = Autoscaler::new(spec(&[("activation-scale", "3")], 0), s(0), 0);
    feed(&mut a, 0, 60, 1.0);
    assert_eq!(decide(&mut a, 59, 1).desired_pods, 3);
    let mut a = Autoscaler::new(spec(&[("activation-scale", "3")], 0), s(0), 0);
    feed(&mut a, 0, 60, 0.0);
    assert_eq!(decide(&mut a, 59, 1).desired_pods, 0, "zero stays zero");
    let mut a = Autoscaler::new(spec(&[("activation-scale", "3")], 0), s(0), 0);
    feed(&mut a, 0, 60, 700.0);
    assert_eq!(
        decide(&mut a, 59, 10).desired_pods,
        10,
        "above it, the formula"
    );
}

#[test]
fn scale_down_delay_holds_the_window_maximum() {
    let sp = spec(&[("scale-down-delay", "10s")], 0);
    let mut a = Autoscaler::new(sp, s(0), 0);
    feed(&mut a, 0, 60, 700.0);
    assert_eq!(decide(&mut a, 59, 10).desired_pods, 10);
    // Load drops to 0 but the stable average decays slowly; compare with a delay-free twin.
    let mut twin = Autoscaler::new(spec(&[], 0), s(0), 0);
    feed(&mut twin, 0, 60, 700.0);
    decide(&mut twin, 59, 10);
    let mut held = Vec::new();
    for t in (61..=131).step_by(2) {
        for x in [&mut a, &mut twin] {
            x.record(s(t - 1), conc(0.0));
            x.record(s(t), conc(0.0));
        }
        let ready = a.desired_scale().max(1) as u32;
        let undelayed = decide(&mut twin, t, ready).desired_pods;
        let delayed = decide(&mut a, t, ready).desired_pods;
        assert!(delayed >= undelayed);
        held.push((t, delayed, undelayed));
    }
    // Every delayed value is the max of the undelayed ones over the last 5 two-second slots.
    assert!(held.iter().any(|(_, d, u)| d > u), "{held:?}");
}

#[test]
fn scale_down_delay_window_is_a_sliding_maximum() {
    let mut w = delay::MaxWindow::new(s(10)); // 5 slots of 2 s
    w.record(s(0), 10);
    w.record(s(2), 4);
    assert_eq!(w.current(), 10);
    w.record(s(8), 3);
    assert_eq!(w.current(), 10, "slot 0 still inside (slots 0..=4)");
    w.record(s(10), 2);
    assert_eq!(w.current(), 4, "slot 0 left; slot 1 (4) is the max");
    w.record(s(12), 1);
    assert_eq!(w.current(), 3);
    w.record(s(13), 5);
    assert_eq!(w.current(), 5, "same slot as 12: the max of both");
}

#[test]
fn restart_with_ready_pods_starts_in_panic() {
    let mut a = Autoscaler::new(spec(&[], 0), s(0), 5);
    assert!(a.panicking());
    feed(&mut a, 0, 60, 0.0);
    assert_eq!(
        decide(&mut a, 2, 5).desired_pods,
        5,
        "no downscale on lost history"
    );
    assert_eq!(decide(&mut a, 60, 5).desired_pods, 5);
    let d = decide(&mut a, 61, 5);
    assert!(!d.panicking);
    assert_eq!(d.desired_pods, 2);
    assert!(!Autoscaler::new(spec(&[], 0), s(0), 1).panicking());
}

#[test]
fn panic_mode_takes_the_larger_of_stable_and_panic() {
    // Stable higher than panic (load just fell) while panicking: stable wins.
    let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
    feed(&mut a, 0, 54, 1400.0);
    feed(&mut a, 54, 60, 140.0);
    let d = decide(&mut a, 59, 1);
    assert!(d.panicking, "dppc 2 over 1 ready pod");
    assert_eq!((d.stable_value, d.panic_value), (1274.0, 140.0));
    assert_eq!(d.desired_pods, 19, "ceil(1274 / 70) beats ceil(140 / 70)");
}
