//! Knit's end-to-end benchmark. Every figure is printed next to a baseline measured in the same
//! run on the same machine: a bare hyper server answering 202, driven by the same load
//! generator. Nothing here asserts timings; it prints them.
//!
//! Scenarios: (a) baseline; (b) load → broker ingress → trigger → sink; (b½) the same at half of
//! (b)'s rate, for latency; (c) 1,000 triggers of which one matches; (d) channel →
//! subscription → sink; (e) a sink that never answers, to show 429 and bounded memory.
//!
//! Usage: `knit-bench [--quick] [--concurrency N] [--seconds S] [--rounds R] [--only-broker]`;
//! needs the release `knit`
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
    rounds: usize,
    quick: bool,
    only_broker: bool,
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
            .unwrap_or(if quick { 1.0 } else { 3.0 }),
        rounds: value("--rounds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1),
        quick,
        only_broker: args.iter().any(|a| a == "--only-broker"),
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
    /// Knit's CPU time per event, in microseconds.
    cpu_us: f64,
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
    let cpu_before = knit.cpu_seconds();
    sink.recording.store(true, Ordering::Relaxed);
    load.duration = Duration::from_secs_f64(o.seconds);
    let out = load::run(&load).await?;
    sink.recording.store(false, Ordering::Relaxed);
    let after = sink.requests.load(Ordering::Relaxed);
    let cpu = knit.cpu_seconds() - cpu_before;
    let mut lat = std::mem::take(&mut *sink.latencies_us.lock());
    Ok(Measured {
        rate: (after - before) as f64 / out.elapsed.as_secs_f64(),
        cpu_us: cpu * 1e6 / (after - before).max(1) as f64,
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

/// One measurement of the baseline: requests per second and latency.
async fn baseline(o: &Options, bare: std::net::SocketAddr) -> Result<Measured> {
    let load = Load {
        addr: bare,
        path: "/".into(),
        ty: "bench.event".into(),
        concurrency: o.concurrency,
        duration: Duration::from_millis(if o.quick { 300 } else { 1000 }),
        rate: None,
    };
    load::run(&load).await?;
    let mut out: Outcome = load::run(&Load {
        duration: Duration::from_secs_f64(o.seconds),
        ..load
    })
    .await?;
    Ok(Measured {
        rate: out.count(202) as f64 / out.elapsed.as_secs_f64(),
        cpu_us: f64::NAN,
        p50: percentile_ms(&mut out.latencies_us, 50.0),
        p99: percentile_ms(&mut out.latencies_us, 99.0),
        accepted: out.count(202),
    })
}

/// The median measurement (by rate) of several rounds.
fn median(mut rounds: Vec<Measured>) -> Measured {
    rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    rounds.swap_remove(rounds.len() / 2)
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options();
    let rounds = if o.quick { 1 } else { o.rounds };
    println!(
        "Knit benchmark on {} (concurrency {}, {} s per measurement, median of {rounds} alternating rounds)",
        machine(),
        o.concurrency,
        o.seconds
    );

    // Everything under test runs at once, idle until measured; the rounds alternate between
    // the baseline and each Knit scenario so machine noise hits them alike.
    let (bare, _) = servers::start(Mode::Accept).await?;
    let (sink, counters) = servers::start(Mode::Accept).await?;
    let broker = Knit::start(&broker_manifests(sink, 0), &[])?;
    broker.wait_ready("triggers", &["match"]).await?;
    let many = if o.only_broker {
        None
    } else {
        Some(Knit::start(&broker_manifests(sink, 1000), &[])?)
    };
    let channel = if o.only_broker {
        None
    } else {
        Some(Knit::start(&channel_manifests(sink), &[])?)
    };
    if let Some(k) = &many {
        k.wait_ready("triggers", &["match", "other-999"]).await?;
    }
    if let Some(k) = &channel {
        k.wait_ready("subscriptions", &["bench"]).await?;
    }
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(baseline(&o, bare).await?);
        b.push(through_knit(&broker, "/default/bench", &o, None, &counters).await?);
        if let Some(k) = &many {
            c.push(through_knit(k, "/default/bench", &o, None, &counters).await?);
        }
        if let Some(k) = &channel {
            d.push(through_knit(k, "/channels/default/bench", &o, None, &counters).await?);
        }
    }
    let a = median(a);
    println!(
        "(a) baseline, bare hyper 202 server:        {:>9.0} req/s   p50 {:.2} ms  p99 {:.2} ms",
        a.rate, a.p50, a.p99
    );
    let b = median(b);
    println!(
        "(b) broker → trigger → sink:                {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end   ratio (b)/(a) {:.2}   knit CPU {:.1} µs/event",
        b.rate,
        b.p50,
        b.p99,
        b.rate / a.rate,
        b.cpu_us
    );
    let half = through_knit(&broker, "/default/bench", &o, Some(b.rate / 2.0), &counters).await?;
    println!(
        "(b½) broker at half that rate ({:>6.0} ev/s): {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end",
        b.rate / 2.0,
        half.rate,
        half.p50,
        half.p99
    );
    let peak_b = broker.peak_rss();
    drop(broker);
    if let Some(k) = many {
        let c = median(c);
        println!(
            "(c) broker, 1,000 triggers, 1 matches:      {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms   ratio (c)/(b) {:.2}",
            c.rate,
            c.p50,
            c.p99,
            c.rate / b.rate
        );
        println!(
            "peak RSS of knit: {} with 1 trigger, {} with 1,001 triggers",
            mib(peak_b),
            mib(k.peak_rss())
        );
    }
    if channel.is_some() {
        let d = median(d);
        println!(
            "(d) channel → subscription → sink:          {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms   ratio (d)/(a) {:.2}",
            d.rate,
            d.p50,
            d.p99,
            d.rate / a.rate
        );
    }
    drop(channel);
    if o.only_broker {
        return Ok(());
    }

    // (e) A sink that never answers: the log fills, ingress answers 429, memory levels off.
    let (hang, _) = servers::start(Mode::Hang).await?;
    let knit = Knit::start(&broker_manifests(hang, 0), &[])?;
    knit.wait_ready("triggers", &["match"]).await?;
    let mut rss = vec![knit.rss()];
    let mut accepted = 0;
    let mut rejected = 0;
    for _ in 0..if o.quick { 2 } else { 4 } {
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
    anyhow::ensure!(b.accepted > 0 && accepted > 0, "nothing was accepted");
    Ok(())
}
