//! A step load makes the replica count follow the KPA formulas (issue 10, "Targets"): a
//! revision of `tests/app.py` with `target: 10` and a 6-s stable window gets a constant
//! concurrency of [`CLIENTS`] requests that each hold the app [`HOLD_MS`] ms; the replica count
//! the runtime reports (`desiredReplicas`, `actualReplicas`) must settle on the count the
//! KPA's maths gives for that load (`steady_state_pods`: ceil(30 ÷ (10 × 70 %)) = 5), stay
//! there while the load lasts, and go back to zero once it stops.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use common::{Harness, get, revision, route, spec};
use knit_serving::autoscaler::{AutoscalerConfig, RevisionSpec, steady_state_pods};
use knit_serving::runtime::Config;

/// Concurrent clients, each looping one request at a time.
const CLIENTS: usize = 30;
/// How long the app holds each request.
const HOLD_MS: u64 = 250;
/// How long the load keeps going once the count settled, every observation checked.
const HOLD_AFTER_SETTLING: Duration = Duration::from_secs(2);

/// `desiredReplicas` and `actualReplicas` of a report.
fn counts(h: &Harness, uid: &str) -> Option<(u32, u32)> {
    let r = h.sink.get(uid)?;
    let n = |k: &str| r.annotations.get(k)?.parse::<u32>().ok();
    Some((n("desiredReplicas")?, n("actualReplicas")?))
}

/// Poll (every 50 ms) until `ok` holds for the counts, recording every change; fails past
/// `within`.
async fn wait_counts(
    h: &Harness,
    uid: &str,
    within: Duration,
    seen: &mut Vec<(u32, u32)>,
    ok: impl Fn(u32, u32) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let c = counts(h, uid);
        if let Some(c) = c {
            if seen.last() != Some(&c) {
                seen.push(c);
            }
            if ok(c.0, c.1) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("(desired, actual) never matched; seen {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_load_follows_the_kpa_and_scales_back_to_zero() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let mut rev = revision("step", "step-00001", &[]);
    rev.autoscaling
        .insert("autoscaling.knative.dev/target".into(), "10".into());
    rev.autoscaling
        .insert("autoscaling.knative.dev/window".into(), "6s".into());
    let mut s = spec(
        vec![rev.clone()],
        vec![route("step", &[("step-00001", 100)])],
    );
    s.autoscaler_config
        .insert("scale-to-zero-grace-period".into(), "1s".into());
    let uid = "uid-step-00001";

    // What the KPA's maths says for this revision under the step's load.
    let config = AutoscalerConfig::from_map(&s.autoscaler_config)
        .map_err(|e| anyhow!("config-autoscaler refused: {e:?}"))?;
    let kpa = RevisionSpec::for_revision(&config, &rev)
        .map_err(|e| anyhow!("annotations refused: {e:?}"))?;
    let expected = steady_state_pods(&kpa, CLIENTS as f64);
    // Target 10 at the default 70 % utilisation is 7 per replica: ceil(30 ÷ 7) = 5, and
    // anywhere from 28.01 to 35 requests in flight on average gives the same count.
    assert_eq!(expected, 5, "{kpa:?}");

    h.serving.apply(&s);
    h.wait_report(uid, Duration::from_secs(20), |r| r.ready)
        .await?;

    // The step: CLIENTS clients, each one request after the other.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_failure = Arc::new(parking_lot::Mutex::new(None::<String>));
    let path = format!("/slow?ms={HOLD_MS}");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, ok, failed, path) = (stop.clone(), ok.clone(), failed.clone(), path.clone());
            let first_failure = first_failure.clone();
            let gateway = h.gateway;
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match get(gateway, "step.default.localhost", &path, &[]).await {
                        Ok((200, _)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            first_failure
                                .lock()
                                .get_or_insert_with(|| format!("{other:?}"));
                        }
                    }
                }
            })
        })
        .collect();

    let mut up = Vec::new();
    let settled = wait_counts(&h, uid, Duration::from_secs(20), &mut up, |d, a| {
        d == expected && a == expected
    })
    .await;
    // Once settled, the count stays on the formula while the load lasts.
    let mut held = Vec::new();
    if settled.is_ok() {
        let until = Instant::now() + HOLD_AFTER_SETTLING;
        while Instant::now() < until {
            if let Some(c) = counts(&h, uid)
                && held.last() != Some(&c)
            {
                held.push(c);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await?;
    }
    settled?;
    // The load is constant only up to the machine's noise (2 cores shared with the app and the
    // clients): the count may move by one around the formula, never further.
    assert!(
        held.iter()
            .all(|&(d, a)| d.abs_diff(expected) <= 1 && a.abs_diff(expected) <= 1),
        "(desired, actual) left {expected} ± 1 under constant load: {held:?} (on the way up: {up:?})"
    );
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed, the first with {:?}",
        failed + ok.load(Ordering::Relaxed),
        first_failure.lock().take()
    );

    // The load stops: after the stable window and the grace period, back to zero.
    let mut down = Vec::new();
    wait_counts(&h, uid, Duration::from_secs(25), &mut down, |d, a| {
        d == 0 && a == 0
    })
    .await?;
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
