//! Knit's end-to-end benchmark. Every figure is printed next to a baseline measured in the same
//! run on the same machine, driven by the same load generator (keep-alive HTTP/1.1 connections
//! posting binary-mode CloudEvents, each stamped with its send time so the sink measures end-to-end
//! latency). Nothing here asserts timings; it prints them.
//!
//! Scenarios:
//! - (a) the baseline: a bare hyper server answering 202.
//! - (b) load → broker ingress → trigger → sink, in memory; (b½) the same at half of (b)'s rate,
//!   for latency.
//! - (c) a broker with 1,000 triggers of which one matches.
//! - (d) channel → subscription → sink.
//! - (e) a sink that never answers: the trigger's queue sheds its oldest events past
//!   `--log-capacity` (the `shed` count of `/api/v1/stats`) while the ingress keeps accepting;
//!   RSS over time stays flat. (e2) the same with the trigger annotated
//!   `knit.dev/overflow: block`: the ingress answers 429 once the trigger is that far behind.
//! - With a Kafka cluster only: (f) load → Kafka broker (`knit run --kafka`, broker class
//!   `Kafka`) → trigger → sink, as (b); (g) its baseline on the same cluster: a raw rdkafka
//!   produce → consume loop with no HTTP (10 partitions, an idempotent producer with `acks=all`
//!   and `linger.ms=1` like Knit's, as many deliveries outstanding as the load has connections,
//!   a consumer in its own group), and the ratio (f)/(g).
//! - With a NATS server only (`nats.rs`): (n) load → JetStream broker (`knit run --nats`,
//!   broker class `NatsJetStreamBroker`, file storage) → trigger → sink, as (b); (o) its
//!   baseline on the same server: a raw async-nats publish → consume loop, and the ratio
//!   (n)/(o); (o′), (p), (p′): what file storage costs next to memory storage, raw and through
//!   a NatsJetStreamChannel.
//! - Serving (not with `--only-broker`; `serving.rs`): Knit's serving data plane runs in this
//!   process with a revision running this binary as `knit-bench app` (a keep-alive hyper app on
//!   `PORT`), pinned at one replica. (h) the load straight at the replica, (i) the same load at
//!   the gateway with the route's Host header (gateway → activator → replica proxy → app), both
//!   at 16 connections answering 200, rounds alternating: as fast as they can (the throughput
//!   ratio (i)/(h), the median of each round's own ratio), then at a fixed 1,000 requests/s
//!   over the same 16 connections (the added p50/p99: latency overhead is measured at a load
//!   both paths carry, as Knative's own dataplane-probe does at 1,000 rps; at saturation on a
//!   small machine the added latency is just the throughput loss again, by Little's law, and is
//!   printed too). For scale, the saturated load through a raw TCP relay (bytes copied both
//!   ways, no HTTP): what one more loopback hop costs on this machine before any HTTP work.
//!   (j) cold start: the app's own start time (spawned by hand, spawn → first 200) against the
//!   first request through the gateway to a fresh revision at zero (`initial-scale: 0`),
//!   request → response, alternating, medians of 5 (`--quick`) or 15.
//! - TLS (`tls.rs`, with `--only-broker` too): one knit with `--tls-cert` in permissive mode,
//!   (t0) plain HTTP → broker → trigger → plain sink next to (t1) HTTPS ingress → plain sink
//!   and (t2) HTTPS ingress → HTTPS sink, alternating; what TLS adds to knit's CPU per event.
//!
//! - Scale (`scale.rs`, not with `--only-broker` nor `--only-serving`): 1,000 (`--quick`) or
//!   1,000 to 10,000 Triggers on one Broker, 10,000 Subscriptions on one channel and 1,000
//!   Brokers × 10 Triggers: time until all Ready, RSS, idle CPU, one edit's way to the data
//!   plane, throughput against a 1-Trigger Broker.
//!
//! Measured scenarios run side by side and their rounds alternate (a, b, c, d, g, f, a, ...), so
//! machine noise hits them alike; each figure is the median round by rate.
//!
//! Usage: `knit-bench [--quick] [--concurrency N] [--seconds S] [--rounds R] [--only-broker]
//! [--only-serving] [--only-scale] [--scale SHAPES] [--kafka BOOTSTRAP] [--nats URL]` (defaults: 32
//! connections, 3 s per measurement, 3 rounds; `--quick` is 1 s and one round; `--only-broker`
//! runs (a), (b) and the Kafka and NATS scenarios; `--only-serving` (h), (i) and (j), which need no knit
//! binary; `--only-scale` the scale scenario; `--scale 1000,s10000,b1000x10` measures just
//! those shapes: N Triggers on a Broker, N Subscriptions on a channel, B Brokers × T
//! Triggers). The Kafka scenarios run when `--kafka` or `KNIT_BENCH_KAFKA` gives bootstrap
//! servers, and are skipped with a note otherwise; they are built with the cargo feature `kafka` (on by
//! default: librdkafka). The NATS scenarios run when `--nats` or `KNIT_BENCH_NATS` gives a
//! server URL (cargo feature `nats`, on by default). Needs the release `knit` binary beside it (`cargo build --release -p knit`) or
//! `KNIT_BIN`; `BENCH_KNIT_FLAGS` adds flags to every knit, `BENCH_KNIT_THREADS` sets its worker
//! threads. `knit-bench app` is the serving scenario's app, not a benchmark.

#[cfg(feature = "kafka")]
mod kafka;
mod knit;
mod load;
#[cfg(feature = "nats")]
mod nats;
#[cfg(any(feature = "kafka", feature = "nats"))]
mod raw;
mod scale;
mod servers;
mod serving;
mod tls;

use std::fmt::Write as _;
use std::net::SocketAddr;
#[cfg(any(feature = "kafka", feature = "nats"))]
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
    /// Only (h), (i) and (j): no knit binary needed.
    only_serving: bool,
    /// Only the scale scenario.
    only_scale: bool,
    /// `--scale 1000,s10000,b1000x10`: the shapes the scale scenario measures.
    scale: Option<String>,
    /// Bootstrap servers of the Kafka cluster for (f) and (g).
    kafka: Option<String>,
    /// URL of the NATS server for (n) to (p′).
    nats: Option<String>,
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
        only_serving: args.iter().any(|a| a == "--only-serving"),
        only_scale: args.iter().any(|a| a == "--only-scale"),
        scale: value("--scale"),
        kafka: value("--kafka")
            .or_else(|| std::env::var("KNIT_BENCH_KAFKA").ok())
            .filter(|b| !b.trim().is_empty()),
        nats: value("--nats")
            .or_else(|| std::env::var("KNIT_BENCH_NATS").ok())
            .filter(|u| !u.trim().is_empty()),
    }
}

/// A broker with one trigger that takes every `bench.event`.
#[derive(Clone, Copy)]
struct BrokerSpec<'a> {
    name: &'a str,
    /// The matching trigger's name.
    trigger: &'a str,
    /// The `eventing.knative.dev/broker.class` annotation, if not the default class.
    class: Option<&'a str>,
    /// The `knit.dev/overflow` annotation of the matching trigger.
    overflow: Option<&'a str>,
    /// Triggers besides `match` that match nothing the load sends.
    extra_triggers: usize,
}

const BROKER: BrokerSpec<'static> = BrokerSpec {
    name: "bench",
    trigger: "match",
    class: None,
    overflow: None,
    extra_triggers: 0,
};

/// `, annotations: {KEY: VALUE}` for a flow-style `metadata`, or nothing.
fn annotation(key: &str, value: Option<&str>) -> String {
    value.map_or_else(String::new, |v| format!(", annotations: {{{key}: {v}}}"))
}

fn broker_manifests(sink: SocketAddr, b: &BrokerSpec<'_>) -> String {
    let (name, trigger) = (b.name, b.trigger);
    let mut m = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {{name: {name}, namespace: default{}}}\n---\n",
        annotation("eventing.knative.dev/broker.class", b.class)
    );
    let _ = write!(
        m,
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: {trigger}, namespace: default{}}}\nspec:\n  broker: {name}\n  filter: {{attributes: {{type: bench.event}}}}\n  subscriber: {{uri: 'http://{sink}/'}}\n---\n",
        annotation("knit.dev/overflow", b.overflow)
    );
    for i in 0..b.extra_triggers {
        let _ = write!(
            m,
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: other-{i}, namespace: default}}\nspec:\n  broker: {name}\n  filter: {{attributes: {{type: other.event.{i}}}}}\n  subscriber: {{uri: 'http://{sink}/other'}}\n---\n"
        );
    }
    m
}

fn channel_manifests(sink: SocketAddr) -> String {
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
    /// Events accepted (202) per second at the ingress (printed for the Kafka and NATS
    /// brokers).
    #[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
    accepted_rate: f64,
    /// Answers other than 202 (for the raw Kafka loop: unacknowledged sends).
    rejected: u64,
}

fn warmup(o: &Options) -> Duration {
    Duration::from_millis(if o.quick { 300 } else { 1000 })
}

/// Responses whose status is not 202.
fn not_accepted(out: &Outcome) -> u64 {
    not_accepted_as(out, 202)
}

/// Responses whose status is not `ok`.
fn not_accepted_as(out: &Outcome, ok: u16) -> u64 {
    out.statuses
        .iter()
        .filter(|(s, _)| **s != ok)
        .map(|(_, n)| n)
        .sum()
}

/// Wait (up to 5 s) until the sink has seen nothing for 200 ms: whatever a scenario still had
/// queued is delivered before the next one is measured.
async fn settle(sink: &servers::Counters) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = sink.requests.load(Ordering::Relaxed);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = sink.requests.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Warm up, then measure: events/s arriving at the sink and end-to-end latency there.
async fn through_knit(
    knit: &Knit,
    path: &str,
    o: &Options,
    rate: Option<f64>,
    sink: &servers::Counters,
) -> Result<Measured> {
    let via = Via {
        addr: knit.ingress,
        tls: None,
        authorization: None,
    };
    through(knit, via, path, o, rate, sink).await
}

/// How the load reaches an ingress.
struct Via<'a> {
    /// The ingress address.
    addr: SocketAddr,
    /// Over TLS connections made by this.
    tls: Option<&'a tokio_rustls::TlsConnector>,
    /// With this `Authorization` header.
    authorization: Option<&'a str>,
}

/// [`through_knit`] with the load sent `via`.
async fn through(
    knit: &Knit,
    via: Via<'_>,
    path: &str,
    o: &Options,
    rate: Option<f64>,
    sink: &servers::Counters,
) -> Result<Measured> {
    let mut load = Load {
        addr: via.addr,
        host: None,
        path: path.to_string(),
        ty: "bench.event".into(),
        concurrency: o.concurrency,
        duration: warmup(o),
        rate,
        authorization: via.authorization.map(str::to_string),
    };
    load::run_over(&load, via.tls).await?;
    sink.latencies_us.lock().clear();
    let before = sink.requests.load(Ordering::Relaxed);
    let cpu_before = knit.cpu_seconds();
    sink.recording.store(true, Ordering::Relaxed);
    load.duration = Duration::from_secs_f64(o.seconds);
    let out = load::run_over(&load, via.tls).await?;
    sink.recording.store(false, Ordering::Relaxed);
    let after = sink.requests.load(Ordering::Relaxed);
    let cpu = knit.cpu_seconds() - cpu_before;
    let mut lat = std::mem::take(&mut *sink.latencies_us.lock());
    settle(sink).await;
    Ok(Measured {
        rate: (after - before) as f64 / out.elapsed.as_secs_f64(),
        cpu_us: cpu * 1e6 / (after - before).max(1) as f64,
        p50: percentile_ms(&mut lat, 50.0),
        p99: percentile_ms(&mut lat, 99.0),
        accepted: out.count(202),
        accepted_rate: out.count(202) as f64 / out.elapsed.as_secs_f64(),
        rejected: not_accepted(&out),
    })
}

/// One measurement of a raw client loop: (g) on Kafka, (o) and (o′) on NATS.
#[cfg(any(feature = "kafka", feature = "nats"))]
async fn raw_loop<R: raw::RawLoop>(o: &Options, r: &Arc<R>) -> Result<Measured> {
    let mut m = raw::measure(
        r,
        o.concurrency,
        warmup(o),
        Duration::from_secs_f64(o.seconds),
    )
    .await?;
    Ok(Measured {
        rate: m.rate,
        cpu_us: f64::NAN,
        p50: percentile_ms(&mut m.latencies_us, 50.0),
        p99: percentile_ms(&mut m.latencies_us, 99.0),
        accepted: 0,
        accepted_rate: f64::NAN,
        rejected: m.failed,
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
async fn baseline(o: &Options, bare: SocketAddr) -> Result<Measured> {
    let load = Load {
        addr: bare,
        host: None,
        path: "/".into(),
        ty: "bench.event".into(),
        concurrency: o.concurrency,
        duration: warmup(o),
        rate: None,
        authorization: None,
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
        accepted_rate: out.count(202) as f64 / out.elapsed.as_secs_f64(),
        rejected: not_accepted(&out),
    })
}

/// The median measurement (by rate) of several rounds.
fn median(mut rounds: Vec<Measured>) -> Measured {
    rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    rounds.swap_remove(rounds.len() / 2)
}

/// The trigger queue's bound in (e) and (e2).
const LOG_CAPACITY: u64 = 10_000;

/// What a broker did under load towards a sink that never answers.
struct Overload {
    accepted: u64,
    throttled: u64,
    /// Answers other than 202 and 429.
    other: u64,
    /// `shed` of the matching trigger, and in total, from `/api/v1/stats`.
    shed: u64,
    shed_total: u64,
    rss: Vec<u64>,
}

/// (e) and (e2): full-speed load at a broker whose one trigger's sink never answers, in steps,
/// sampling knit's RSS before and after each; then the shed counts.
async fn overload(o: &Options, hang: SocketAddr, overflow: Option<&str>) -> Result<Overload> {
    let capacity = LOG_CAPACITY.to_string();
    let knit = Knit::start(
        &broker_manifests(hang, &BrokerSpec { overflow, ..BROKER }),
        &["--log-capacity", &capacity],
    )?;
    knit.wait_ready("triggers", &["match"]).await?;
    let mut r = Overload {
        accepted: 0,
        throttled: 0,
        other: 0,
        shed: 0,
        shed_total: 0,
        rss: vec![knit.rss()],
    };
    for _ in 0..if o.quick { 2 } else { 4 } {
        let out = load::run(&Load {
            addr: knit.ingress,
            host: None,
            path: "/default/bench".into(),
            ty: "bench.event".into(),
            concurrency: o.concurrency,
            duration: Duration::from_secs_f64(o.seconds / 2.0),
            rate: None,
            authorization: None,
        })
        .await?;
        r.accepted += out.count(202);
        r.throttled += out.count(429);
        r.other += not_accepted(&out) - out.count(429);
        r.rss.push(knit.rss());
    }
    // Shed counts reach the stats once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = knit.stats().await?;
    r.shed = stats["egresses"]["Trigger/default/match"]["shed"]
        .as_u64()
        .unwrap_or(0);
    r.shed_total = stats["shed"].as_u64().unwrap_or(0);
    Ok(r)
}

fn print_overload(label: &str, r: &Overload) {
    let other = if r.other > 0 {
        format!(", {} other answers", r.other)
    } else {
        String::new()
    };
    println!(
        "{label} {} accepted, {} answered 429{other}; shed {} (trigger), {} (total); RSS {}",
        r.accepted,
        r.throttled,
        r.shed,
        r.shed_total,
        r.rss
            .iter()
            .map(|b| mib(*b))
            .collect::<Vec<_>>()
            .join(" → ")
    );
}

/// Everything (f) and (g) need: Knit with a Kafka broker, its path and its own sink (so events
/// it still delivers late never reach the other scenarios' sink), and the raw loop.
#[cfg(feature = "kafka")]
struct KafkaRig {
    knit: Knit,
    path: String,
    sink: Arc<servers::Counters>,
    raw: Arc<kafka::Raw>,
}

#[cfg(feature = "kafka")]
async fn kafka_rig(bootstrap: &str) -> Result<KafkaRig> {
    // Fresh names each run: a cluster reused across runs holds no old records, offsets or
    // group members for these topics and groups (Knit names a trigger's group after it).
    let tag = format!("{:x}", servers::now_nanos());
    let name = format!("bench-{tag}");
    let trigger = format!("match-{tag}");
    let (sink, counters) = servers::start(Mode::Accept).await?;
    let knit = Knit::start(
        &broker_manifests(
            sink,
            &BrokerSpec {
                name: &name,
                trigger: &trigger,
                class: Some("Kafka"),
                ..BROKER
            },
        ),
        &["--kafka", bootstrap],
    )?;
    knit.wait_ready("brokers", &[&name]).await?;
    knit.wait_ready("triggers", &[&trigger]).await?;
    let raw = Arc::new(kafka::Raw::start(bootstrap, &tag).await?);
    Ok(KafkaRig {
        knit,
        path: format!("/default/{name}"),
        sink: counters,
        raw,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("app") {
        return servers::app().await;
    }
    let o = options();
    let rounds = if o.quick { 1 } else { o.rounds };
    println!(
        "Knit benchmark on {} (concurrency {}, {} s per measurement, median of {rounds} alternating rounds)",
        machine(),
        o.concurrency,
        o.seconds
    );
    if o.only_scale {
        return scale::run(&o).await;
    }
    if o.only_serving {
        let (h, i) = serving::scenarios(&o, rounds).await?;
        anyhow::ensure!(h.accepted > 0 && i.accepted > 0, "nothing was answered");
        return Ok(());
    }
    let rigs = Rigs::start(&o).await?;
    let measured = Rounds::measure(&o, &rigs, rounds).await?;
    let b = report(&o, rigs, measured).await?;
    tls::scenarios(&o, rounds).await?;
    if o.only_broker {
        anyhow::ensure!(b.accepted > 0, "nothing was accepted");
        return Ok(());
    }
    let (h, i) = serving::scenarios(&o, rounds).await?;
    scale::run(&o).await?;
    let (e, e2) = overload_scenarios(&o).await?;
    anyhow::ensure!(
        b.accepted > 0 && e.accepted > 0 && e2.accepted > 0 && h.accepted > 0 && i.accepted > 0,
        "nothing was accepted"
    );
    Ok(())
}

/// Everything under test in (a) to (d), (f) and (g), started at once and idle until measured;
/// the rounds alternate between the baseline and each Knit scenario so machine noise hits them
/// alike.
struct Rigs {
    /// (a): a bare hyper server answering 202.
    bare: SocketAddr,
    /// The sink of (b) to (d) and what it counted.
    counters: std::sync::Arc<servers::Counters>,
    /// (b): a broker with one trigger.
    broker: Knit,
    /// (c): a broker with 1,001 triggers, one matching (not with --only-broker).
    many: Option<Knit>,
    /// (d): an in-memory channel with one subscription (not with --only-broker).
    channel: Option<Knit>,
    /// (f) and (g), when --kafka names a bootstrap server.
    #[cfg(feature = "kafka")]
    kafka: Option<KafkaRig>,
    /// (n) to (p′), when --nats names a server.
    #[cfg(feature = "nats")]
    nats: Option<nats::Rig>,
}

impl Rigs {
    async fn start(o: &Options) -> Result<Self> {
        let (bare, _) = servers::start(Mode::Accept).await?;
        let (sink, counters) = servers::start(Mode::Accept).await?;
        let broker = Knit::start(&broker_manifests(sink, &BROKER), &[])?;
        broker.wait_ready("triggers", &["match"]).await?;
        let (many, channel) = if o.only_broker {
            (None, None)
        } else {
            let many = BrokerSpec {
                extra_triggers: 1000,
                ..BROKER
            };
            let many = Knit::start(&broker_manifests(sink, &many), &[])?;
            let channel = Knit::start(&channel_manifests(sink), &[])?;
            many.wait_ready("triggers", &["match", "other-999"]).await?;
            channel.wait_ready("subscriptions", &["bench"]).await?;
            (Some(many), Some(channel))
        };
        #[cfg(feature = "kafka")]
        let kafka = match &o.kafka {
            Some(bootstrap) => Some(kafka_rig(bootstrap).await?),
            None => None,
        };
        #[cfg(not(feature = "kafka"))]
        anyhow::ensure!(
            o.kafka.is_none(),
            "knit-bench was built without the cargo feature `kafka`: the Kafka scenarios cannot run"
        );
        #[cfg(feature = "nats")]
        let nats = match &o.nats {
            Some(url) => Some(nats::Rig::start(url).await?),
            None => None,
        };
        #[cfg(not(feature = "nats"))]
        anyhow::ensure!(
            o.nats.is_none(),
            "knit-bench was built without the cargo feature `nats`: the NATS scenarios cannot run"
        );
        Ok(Self {
            bare,
            counters,
            broker,
            many,
            channel,
            #[cfg(feature = "kafka")]
            kafka,
            #[cfg(feature = "nats")]
            nats,
        })
    }
}

/// Each round's measurement of (a) to (d), (f) and (g).
#[derive(Default)]
struct Rounds {
    a: Vec<Measured>,
    b: Vec<Measured>,
    c: Vec<Measured>,
    d: Vec<Measured>,
    #[cfg(feature = "kafka")]
    f: Vec<Measured>,
    #[cfg(feature = "kafka")]
    g: Vec<Measured>,
    #[cfg(feature = "nats")]
    nats: nats::Rounds,
}

impl Rounds {
    async fn measure(o: &Options, rigs: &Rigs, rounds: usize) -> Result<Self> {
        let mut m = Self::default();
        let counters = &rigs.counters;
        for _ in 0..rounds {
            m.a.push(baseline(o, rigs.bare).await?);
            m.b.push(through_knit(&rigs.broker, "/default/bench", o, None, counters).await?);
            if let Some(k) = &rigs.many {
                m.c.push(through_knit(k, "/default/bench", o, None, counters).await?);
            }
            if let Some(k) = &rigs.channel {
                let path = "/channels/default/bench";
                m.d.push(through_knit(k, path, o, None, counters).await?);
            }
            #[cfg(feature = "kafka")]
            if let Some(r) = &rigs.kafka {
                m.g.push(raw_loop(o, &r.raw).await?);
                m.f.push(through_knit(&r.knit, &r.path, o, None, &r.sink).await?);
            }
            #[cfg(feature = "nats")]
            if let Some(r) = &rigs.nats {
                m.nats.round(o, r).await?;
            }
        }
        Ok(m)
    }
}

/// Print (a) to (d), (b½) (measured here, at half (b)'s rate), (f) and (g); (b) is returned.
async fn report(o: &Options, rigs: Rigs, m: Rounds) -> Result<Measured> {
    let a = median(m.a);
    println!(
        "(a) baseline, bare hyper 202 server:        {:>9.0} req/s   p50 {:.2} ms  p99 {:.2} ms",
        a.rate, a.p50, a.p99
    );
    let b = median(m.b);
    println!(
        "(b) broker → trigger → sink:                {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end   ratio (b)/(a) {:.2}   knit CPU {:.1} µs/event",
        b.rate,
        b.p50,
        b.p99,
        b.rate / a.rate,
        b.cpu_us
    );
    let half_rate = Some(b.rate / 2.0);
    let half = through_knit(&rigs.broker, "/default/bench", o, half_rate, &rigs.counters).await?;
    println!(
        "(b½) broker at half that rate ({:>6.0} ev/s): {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end",
        b.rate / 2.0,
        half.rate,
        half.p50,
        half.p99
    );
    let peak_b = rigs.broker.peak_rss();
    drop(rigs.broker);
    if let Some(k) = rigs.many {
        let c = median(m.c);
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
    if rigs.channel.is_some() {
        let d = median(m.d);
        println!(
            "(d) channel → subscription → sink:          {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms   ratio (d)/(a) {:.2}",
            d.rate,
            d.p50,
            d.p99,
            d.rate / a.rate
        );
    }
    drop(rigs.channel);
    #[cfg(feature = "kafka")]
    report_kafka(o, rigs.kafka, m.f, m.g)?;
    #[cfg(not(feature = "kafka"))]
    println!(
        "(f)/(g) Kafka broker vs raw rdkafka: skipped (knit-bench built without the cargo feature `kafka`)"
    );
    #[cfg(feature = "nats")]
    match rigs.nats {
        Some(r) => nats::report(o, r, m.nats)?,
        None => println!(
            "(n)/(o) JetStream broker vs raw async-nats: skipped (give --nats URL or KNIT_BENCH_NATS)"
        ),
    }
    #[cfg(not(feature = "nats"))]
    println!(
        "(n)/(o) JetStream broker vs raw async-nats: skipped (knit-bench built without the cargo feature `nats`)"
    );
    Ok(b)
}

/// (e) A sink that never answers: the trigger's queue sheds its oldest events past the log
/// capacity, the ingress keeps accepting, memory stays flat. (e2) With overflow `block`, the
/// ingress pushes back with 429 once the trigger is the capacity behind.
async fn overload_scenarios(o: &Options) -> Result<(Overload, Overload)> {
    let (hang, _) = servers::start(Mode::Hang).await?;
    let e = overload(o, hang, None).await?;
    print_overload(
        &format!("(e) never-answering sink, log capacity {LOG_CAPACITY}, overflow shed (default):"),
        &e,
    );
    let e2 = overload(o, hang, Some("block")).await?;
    print_overload(
        "(e2) the same, trigger annotated knit.dev/overflow: block:",
        &e2,
    );
    Ok((e, e2))
}

/// Print (f) and (g), or why they were skipped.
#[cfg(feature = "kafka")]
fn report_kafka(
    o: &Options,
    rig: Option<KafkaRig>,
    f: Vec<Measured>,
    g: Vec<Measured>,
) -> Result<()> {
    match rig {
        Some(r) => {
            let (f, g) = (median(f), median(g));
            let refused = if f.rejected > 0 {
                format!("   {} not accepted", f.rejected)
            } else {
                String::new()
            };
            println!(
                "(f) Kafka broker → trigger → sink:          {:>9.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end   ratio (f)/(g) {:.2}   knit CPU {:.1} µs/event   (ingress accepted {:.0} ev/s){refused}",
                f.rate,
                f.p50,
                f.p99,
                f.rate / g.rate,
                f.cpu_us,
                f.accepted_rate
            );
            let failed = if g.rejected > 0 {
                format!("   {} sends failed", g.rejected)
            } else {
                String::new()
            };
            println!(
                "(g) raw rdkafka produce → consume, {} in flight: {:>5.0} msg/s   p50 {:.2} ms  p99 {:.2} ms end to end{failed}",
                o.concurrency, g.rate, g.p50, g.p99
            );
            println!(
                "peak RSS of knit with the Kafka broker: {}",
                mib(r.knit.peak_rss())
            );
            anyhow::ensure!(f.accepted > 0, "the Kafka broker accepted nothing");
        }
        None => println!(
            "(f)/(g) Kafka broker vs raw rdkafka: skipped (give --kafka BOOTSTRAP or KNIT_BENCH_KAFKA)"
        ),
    }
    Ok(())
}
