//! Properties of the decider and the bounds.

use proptest::prelude::*;

use super::*;

proptest! {
    #[test]
    fn bounds_hold_when_routed(min in 0u32..20, span in 0u32..20, unbounded in any::<bool>(),
                               desired in -1i32..200, ready in 0u32..50, ebc in -300i32..300) {
        let max = if unbounded { 0 } else { min.max(1) + span };
        let pairs = [("min-scale", min.to_string()), ("max-scale", max.to_string())];
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sp = spec(&pairs, 0);
        let mut pa = PodAutoscaler::new(s(0));
        for (i, d) in [-1, desired, 0, desired].into_iter().enumerate() {
            let r = pa.reconcile(s(100 * i as u64), &sp, d, ebc, ready);
            if let Some(n) = r.replicas {
                prop_assert!(n >= min, "{n} < min {min}");
                prop_assert!(max == 0 || n <= max, "{n} > max {max}");
            }
        }
    }

    #[test]
    fn panic_mode_never_scales_down(loads in prop::collection::vec(0f64..2000.0, 1..60)) {
        let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
        let mut t = 0;
        let mut last: Option<i32> = None;
        for load in loads {
            a.record(s(t), conc(load));
            a.record(s(t + 1), conc(load));
            t += 2;
            let ready = a.desired_scale().max(0) as u32;
            let was_panicking = a.panicking();
            let d = decide(&mut a, t - 1, ready);
            if was_panicking && d.panicking && let Some(prev) = last {
                prop_assert!(d.desired_pods >= prev, "{} after {prev} in panic", d.desired_pods);
            }
            last = Some(d.desired_pods);
        }
    }

    #[test]
    fn desired_stays_within_the_rate_limits(stable in 0f64..5000.0, ready in 0u32..100) {
        let mut a = Autoscaler::new(spec(&[], 0), s(0), 0);
        feed(&mut a, 0, 60, stable);
        let d = decide(&mut a, 59, ready);
        let r = f64::from(ready.max(1));
        prop_assert!(f64::from(d.desired_pods) <= (1000.0 * r).ceil());
        prop_assert!(f64::from(d.desired_pods) >= (r / 2.0).floor());
        prop_assert!(d.desired_pods >= 0);
    }

    #[test]
    fn linear_average_of_a_constant_is_the_constant(c in 0f64..10000.0, window in 6u64..120,
                                                    start in 0u64..1000, n in 1u64..200) {
        let mut b = bucket::Buckets::new(s(window), Algorithm::Linear);
        for t in start..start + n {
            b.record(s(t), c);
        }
        let avg = b.window_average(s(start + n - 1));
        prop_assert!((avg - c).abs() < 1e-6 * c.max(1.0), "{avg} vs {c}");
    }

    #[test]
    fn annotations_validate_the_same_in_admission(min in -2i64..12, max in -2i64..12,
                                                  act in -1i64..12, init in -1i64..4) {
        let a = ann(&[
            ("min-scale", &min.to_string()),
            ("max-scale", &max.to_string()),
            ("activation-scale", &act.to_string()),
            ("initial-scale", &init.to_string()),
        ]);
        let ours = validate_annotations(&AutoscalerConfig::default(), &a).len();
        let resolved = RevisionSpec::resolve(&AutoscalerConfig::default(), &a, 0);
        prop_assert_eq!(ours == 0, resolved.is_ok());
        if let Ok(sp) = resolved {
            prop_assert!(sp.max_scale == 0 || sp.min_scale <= sp.max_scale);
        }
    }
}
