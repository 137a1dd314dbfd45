//! Windows and bucket aggregation (§1.3, §1.4).

use super::*;
use crate::autoscaler::bucket::{Buckets, smoothing_coefficient};
use crate::autoscaler::target::panic_window;

#[test]
fn sample_size_examples() {
    assert_eq!(sample_size(0), 0);
    assert_eq!(sample_size(3), 3);
    assert_eq!(sample_size(10), 7);
    assert_eq!(sample_size(100), 14);
}

#[test]
fn panic_window_is_a_rounded_percentage_of_at_least_one_second() {
    assert_eq!(spec(&[], 0).panic_window, s(6));
    assert_eq!(spec(&[], 0).stable_window, s(60));
    assert_eq!(panic_window(s(60), 10.0), s(6));
    assert_eq!(
        panic_window(s(6), 1.0),
        s(1),
        "0.06 s rounds to 0, raised to 1 s"
    );
    assert_eq!(
        panic_window(s(25), 10.0),
        s(3),
        "2.5 s rounds half away from zero"
    );
    assert_eq!(panic_window(s(24), 10.0), s(2));
    assert_eq!(panic_window(s(3600), 100.0), s(3600));
    let sp = spec(&[("window", "20s"), ("panic-window-percentage", "50")], 0);
    assert_eq!((sp.stable_window, sp.panic_window), (s(20), s(10)));
}

#[test]
fn smoothing_factor_examples() {
    assert_eq!(smoothing_coefficient(60), 0.2);
    let six = smoothing_coefficient(6);
    assert!((six - 0.785).abs() < 0.001, "{six}");
}

#[test]
fn linear_partial_window_is_averaged_over_its_real_age() {
    let mut b = Buckets::new(s(60), Algorithm::Linear);
    for t in 0..3 {
        b.record(s(t), 10.0);
    }
    assert_eq!(b.window_average(s(2)), 10.0);
    // Several records in one second add up (a revision total).
    b.record(s(2), 5.0);
    assert_eq!(b.window_average(s(2)), 11.666667, "35 / 3, rounded");
}

#[test]
fn linear_rounds_to_six_decimals() {
    let mut b = Buckets::new(s(60), Algorithm::Linear);
    b.record(s(0), 1.0);
    b.record(s(2), 0.0);
    assert_eq!(b.window_average(s(2)), 0.333333);
}

#[test]
fn linear_gaps_inside_count_as_zero_and_stale_seconds_are_excluded() {
    let mut b = Buckets::new(s(60), Algorithm::Linear);
    b.record(s(0), 10.0);
    b.record(s(4), 10.0);
    assert_eq!(b.window_average(s(4)), 4.0, "20 over 5 s: the gap counts");
    // No writes for 10 s: those seconds are excluded, not averaged in as zeros.
    let mut b = Buckets::new(s(60), Algorithm::Linear);
    for t in 0..10 {
        b.record(s(t), 10.0);
    }
    assert_eq!(b.window_average(s(14)), 10.0);
    // Once the window is full, the divisor shrinks with the stale part: N − (now − lw).
    let mut b = Buckets::new(s(6), Algorithm::Linear);
    for t in 0..20 {
        b.record(s(t), 6.0);
    }
    assert_eq!(b.window_average(s(19)), 6.0);
    assert_eq!(b.window_average(s(21)), 6.0, "4 fresh buckets over 4");
    assert_eq!(b.window_average(s(25)), 0.0, "a window later: 0");
}

#[test]
fn linear_reset_after_a_window_of_silence_and_old_values_dropped() {
    let mut b = Buckets::new(s(60), Algorithm::Linear);
    b.record(s(0), 100.0);
    b.record(s(60), 4.0);
    assert_eq!(b.window_average(s(60)), 4.0, "reset: firstWrite = 60");
    b.record(s(0), 1000.0); // older than a window before lastWrite: dropped
    assert_eq!(b.window_average(s(60)), 4.0);
    b.record(s(59), 2.0); // late but inside the window: kept, and the age grows
    assert_eq!(b.window_average(s(60)), 3.0);
}

#[test]
fn linear_emptiness() {
    let mut b = Buckets::new(s(60), Algorithm::Linear);
    assert!(b.is_empty(s(0)));
    assert_eq!(b.window_average(s(0)), 0.0);
    b.record(s(100), 5.0);
    assert!(!b.is_empty(s(160)));
    assert_eq!(b.window_average(s(160)), 0.0, "now − lastWrite ≥ W: 0");
    assert!(b.is_empty(s(161)), "empty means now − lastWrite > W");
}

#[test]
fn weighted_exponential_sum() {
    let mut b = Buckets::new(s(6), Algorithm::WeightedExponential);
    let a = smoothing_coefficient(6);
    for (t, v) in [(0, 1.0), (1, 2.0), (2, 4.0)] {
        b.record(s(t), v);
    }
    let want = 4.0 * a + 2.0 * a * (1.0 - a) + 1.0 * a * (1.0 - a).powi(2);
    assert!((b.window_average(s(2)) - want).abs() < 1e-12);
    // Data 2 s old: weights start at α(1−α)², and only N − 2 buckets are read.
    let want = a * (1.0 - a).powi(2) * (4.0 + 2.0 * (1.0 - a) + 1.0 * (1.0 - a).powi(2));
    assert!((b.window_average(s(4)) - want).abs() < 1e-12);
    assert_eq!(b.window_average(s(9)), 0.0);
    // A long constant series converges to the value (not renormalised, but close).
    let mut b = Buckets::new(s(60), Algorithm::WeightedExponential);
    for t in 0..60 {
        b.record(s(t), 10.0);
    }
    let v = b.window_average(s(59));
    assert!((v - 10.0).abs() < 1e-4, "{v}");
}

#[test]
fn resize_keeps_recent_history() {
    let mut b = Buckets::new(s(10), Algorithm::Linear);
    for t in 0..10 {
        b.record(s(t), t as f64);
    }
    b.resize(s(9), s(4));
    assert_eq!(b.window(), s(4));
    assert_eq!(b.window_average(s(9)), (6.0 + 7.0 + 8.0 + 9.0) / 4.0);
    b.resize(s(9), s(8));
    assert_eq!(
        b.window_average(s(9)),
        30.0 / 4.0,
        "grown: 4 seconds survived"
    );
}

#[test]
fn decider_reads_the_weighted_algorithm_when_annotated() {
    let sp = spec(
        &[("metric-aggregation-algorithm", "weighted-exponential")],
        0,
    );
    assert_eq!(sp.algorithm, Algorithm::WeightedExponential);
    let mut a = Autoscaler::new(sp, s(0), 0);
    a.record(s(0), conc(100.0));
    let (stable, panic) = a.observed(s(0)).unwrap_or_default();
    assert!((stable - 20.0).abs() < 1e-9, "α = 0.2 over 60 s: {stable}");
    assert!((panic - 100.0 * smoothing_coefficient(6)).abs() < 1e-9);
}
