//! Tests of the KPA maths: reference §1.10's vectors and the examples of §1.3–§1.9.

mod bounds;
mod buckets;
mod config;
mod decider;
mod props;
mod step;

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// `n` seconds.
fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Annotations from `(short key, value)` pairs (`min-scale` → `autoscaling.knative.dev/min-scale`).
fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
        .collect()
}

/// The spec for these annotations under the default ConfigMap.
fn spec(pairs: &[(&str, &str)], cc: u32) -> RevisionSpec {
    match RevisionSpec::resolve(&AutoscalerConfig::default(), &ann(pairs), cc) {
        Ok(s) => s,
        Err(e) => panic!("invalid test spec: {e:?}"),
    }
}

/// A concurrency stat.
fn conc(c: f64) -> Stat {
    Stat {
        concurrency: c,
        ..Stat::default()
    }
}

/// Record concurrency `c` every second in `[from, to)`.
fn feed(a: &mut Autoscaler, from: u64, to: u64, c: f64) {
    for t in from..to {
        a.record(s(t), conc(c));
    }
}

/// Decide, failing on "no data".
fn decide(a: &mut Autoscaler, now: u64, ready: u32) -> Decision {
    match a.decide(s(now), ready) {
        Some(d) => d,
        None => panic!("no data at {now}s"),
    }
}
