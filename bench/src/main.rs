//! Knit's end-to-end benchmark. Every figure is printed next to a baseline measured in the same
//! run on the same machine: a bare hyper server answering 202, driven by the same load
//! generator. Nothing here asserts timings; it prints them.
//!
//! Scenarios: (a) baseline; (b) load → broker ingress → trigger → sink; (b½) the same at half of
//! (b)'s rate, for latency; (c) 1,000 triggers of which one matches; (d) channel →
//! subscription → sink; (e) a sink that never answers, to show 429 and bounded memory.
//!
//! Usage: `knit-bench [--quick] [--concurrency N] [--seconds S]`; needs the release `knit`
//! binary beside it (`cargo build --release -p knit`) or `KNIT_BIN`.

mod knit;
mod load;
mod servers;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use knit::Knit;
use load::{Load, Outcome, percentile_ms};
use servers::Mode;

struct Options {
    concurrency: usize,
    seconds: f64,
    quick: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    Options {
        concurrency: value("--concurrency")
            .and_then(|v| v.parse().ok())
            .unwrap_or(32),
        seconds: value("--seconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 1.0 } else { 5.0 }),
        quick,
    }
}

fn broker_manifests(sink: std::net::SocketAddr, extra_triggers: usize) -> String {
    let mut m = String::from(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: bench, namespace: default}\n---\n",
    );
    let _ = write!(
        m,
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: match, namespace: default}}\nspec:\n  broker: bench\n  filter: {{attributes: {{type: bench.event}}}}\n  subscriber: {{uri: 'http://{sink}/'}}\n---\n"
    );
    for i in 0..extra_triggers {
        let _ = write!(
            m,
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: other-{i}, namespace: default}}\nspec:\n  broker: bench\n  filter: {{attributes: {{type: other.event.{i}}}}}\n  subscriber: {{uri: 'http://{sink}/other'}}\n---\n"
        );
    }
    m
}

fn channel_manifests(sink: std::net::SocketAddr) -> String {
    format!(
        "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {{name: bench, namespace: default}}\n---\napiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {{name: bench, namespace: default}}\nspec:\n  channel: {{apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: bench}}\n  subscriber: {{uri: 'http://{sink}/'}}\n"
    )
}

struct Measured {
    rate: f64,
    p50: f64,
    p99: f64,
    accepted: u64,
}

/// Warm up, then measure: events/s arriving at the sink and end-to-end latency there.
async fn through_knit(
    knit: &Knit,
    path: &str,
    o: &Options,
    rate: Option<f64>,
    sink: &servers::Counters,
) -> Result<Measured> {
    let mut load = Load {
        addr: knit.ingress,
        path: path.to_string(),
        ty: "bench.event".into(),
        concurrency: o.concurrency,
        duration: Duration::from_millis(if o.quick { 300 } else { 1000 }),
        rate,
    };
    load::run(&load).await?;
    sink.latencies_us.lock().clear();
    let before = sink.requests.load(Ordering::Relaxed);
    sink.recording.store(true, Ordering::Relaxed);
    load.duration = Duration::from_secs_f64(o.seconds);
    let out = load::run(&load).await?;
    sink.recording.store(false, Ordering::Relaxed);
    let after = sink.requests.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *sink.latencies_us.lock());
    Ok(Measured {
        rate: (after - before) as f64 / out.elapsed.as_secs_f64(),
        p50: percentile_ms(&mut lat, 50.0),
        p99: percentile_ms(&mut lat, 99.0),
        accepted: out.count(202),
    })
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options();
    println!(
        "Knit benchmark on {} (concurrency {}, {} s per measurement)",
        machine(),
        o.concurrency,
        o.seconds
    );

    // (a) Baseline: the same generator against a bare hyper server answering 202.
    let (bare, _) = servers::start(Mode::Accept).await?;
    let base_load = Load {
        addr: bare,
        path: "/".into(),
        ty: "bench.event".into(),
        concurrency: o.concurrency,
        duration: Duration::from_secs_f64(o.seconds),
        rate: None,
    };
    load::run(&Load {
        duration: Duration::from_millis(300),
        ..base_load.clone()
    })
    .await?;
    let mut base: Outcome = load::run(&base_load).await?;
    let base_rate = base.count(202) as f64 / base.elapsed.as_secs_f64();
    println!(
        "(a) baseline, bare hyper 202 server:        {base_rate:>9.0} req/s   p50 {:.2} ms  p99 {:.2} ms",
        percentile_ms(&mut base.latencies_us, 50.0),
        percentile_ms(&mut base.latencies_us, 99.0)
    );

    // (b) Broker with one trigger.
    let (sink, counters) = servers::start(Mode::Accept).await?;
    let knit = Knit::start(&broker_manifests(sink, 0), &[])?;
    knit.wait_ready("triggers", &["match"]).await?;
    let b = through_knit(&knit, "/default/bench", &o, None, &counters).await?;
    println!(
        "(b) broker → trigger → sink:                {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end   ratio (b)/(a) {:.2}",
        b.rate,
        b.p50,
        b.p99,
        b.rate / base_rate
    );
    let half = through_knit(&knit, "/default/bench", &o, Some(b.rate / 2.0), &counters).await?;
    println!(
        "(b½) broker at half that rate ({:>6.0} ev/s): {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end",
        b.rate / 2.0,
        half.rate,
        half.p50,
        half.p99
    );
    let peak_b = knit.peak_rss();
    if std::env::args().any(|a| a == "--only-broker") {
        return Ok(());
    }
    drop(knit);

    // (c) 1,000 non-matching triggers beside the matching one.
    let knit = Knit::start(&broker_manifests(sink, 1000), &[])?;
    knit.wait_ready("triggers", &["match", "other-999"]).await?;
    let c = through_knit(&knit, "/default/bench", &o, None, &counters).await?;
    println!(
        "(c) broker, 1,000 triggers, 1 matches:      {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms   ratio (c)/(b) {:.2}",
        c.rate,
        c.p50,
        c.p99,
        c.rate / b.rate
    );
    let peak_c = knit.peak_rss();
    drop(knit);

    // (d) Channel → subscription.
    let knit = Knit::start(&channel_manifests(sink), &[])?;
    knit.wait_ready("subscriptions", &["bench"]).await?;
    let d = through_knit(&knit, "/channels/default/bench", &o, None, &counters).await?;
    println!(
        "(d) channel → subscription → sink:          {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms   ratio (d)/(a) {:.2}",
        d.rate,
        d.p50,
        d.p99,
        d.rate / base_rate
    );
    drop(knit);

    // (e) A sink that never answers: the log fills, ingress answers 429, memory levels off.
    let (hang, _) = servers::start(Mode::Hang).await?;
    let knit = Knit::start(&broker_manifests(hang, 0), &[])?;
    knit.wait_ready("triggers", &["match"]).await?;
    let mut rss = vec![knit.rss()];
    let mut accepted = 0;
    let mut rejected = 0;
    let rounds = if o.quick { 2 } else { 4 };
    for _ in 0..rounds {
        let out = load::run(&Load {
            addr: knit.ingress,
            path: "/default/bench".into(),
            ty: "bench.event".into(),
            concurrency: o.concurrency,
            duration: Duration::from_secs_f64(o.seconds / 2.0),
            rate: None,
        })
        .await?;
        accepted += out.count(202);
        rejected += out.count(429);
        rss.push(knit.rss());
    }
    println!(
        "(e) never-answering sink: {accepted} accepted, then {rejected} answered 429; RSS {}",
        rss.iter().map(|r| mib(*r)).collect::<Vec<_>>().join(" → ")
    );
    println!(
        "peak RSS of knit: {} with 1 trigger, {} with 1,001 triggers",
        mib(peak_b),
        mib(peak_c)
    );
    anyhow::ensure!(b.accepted > 0 && accepted > 0, "nothing was accepted");
    Ok(())
}
