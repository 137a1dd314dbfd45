//! The scale scenario (issue 20, "ten thousand triggers"): how Knit's control plane and data
//! plane cope with many objects, each figure next to a baseline measured in the same run.
//!
//! For N Triggers (one type filter each) on one memory Broker, for N Subscriptions on one
//! InMemoryChannel, and for Brokers × Triggers, all in one watched manifest file:
//! - **all Ready after**: from spawning `knit run` until the admin API lists every object Ready
//!   and `/api/v1/stats` lists a running consumer for each (polled every 100 ms);
//! - **RSS** once idle, and per object: (RSS − RSS of the same knit with no Triggers) ÷ N;
//! - **idle CPU**: CPU time over 5 s with no traffic, as a share of one core;
//! - **edit → data plane**: one object's filter (a Subscription's subscriber) is edited in the
//!   watched file to send a new event type to a second sink; events of that type are posted
//!   every 20 ms until the second sink has one; the time from the file's rename to that first
//!   arrival. A channel gets one event, once the edit shows in the Subscription's status (each
//!   event reaches every Subscription: probing every 20 ms would flood it);
//! - **throughput** ÷ a 1-Trigger Broker (Triggers: the load's events match one Trigger; the
//!   rounds alternate with the 1-Trigger Broker). For the channel, deliveries per second of a
//!   burst (20 events) fanned out to every Subscription ÷ deliveries per second of a
//!   1-Subscription channel under the usual load.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::knit::Knit;
use crate::servers::{self, Counters, Mode};
use crate::{BROKER, Options, broker_manifests, channel_manifests, median, mib, through_knit};

/// How long a scale knit may take to get every object Ready before the figure reads "timeout".
const READY_TIMEOUT: Duration = Duration::from_secs(900);
/// How long an edit may take to reach the data plane.
const EDIT_TIMEOUT: Duration = Duration::from_secs(120);
/// The CPU sample of an idle knit.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// The shapes measured.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// N Triggers on one Broker.
    Triggers(usize),
    /// N Subscriptions on one InMemoryChannel.
    Subscriptions(usize),
    /// Brokers × Triggers each.
    Brokers(usize, usize),
}

impl Shape {
    fn objects(self) -> usize {
        match self {
            Shape::Triggers(n) | Shape::Subscriptions(n) => n,
            Shape::Brokers(b, t) => b * t,
        }
    }

    fn label(self) -> String {
        match self {
            Shape::Triggers(n) => format!("{} Triggers, 1 Broker", thousands(n)),
            Shape::Subscriptions(n) => format!("{} Subscriptions, 1 channel", thousands(n)),
            Shape::Brokers(b, t) => format!("{} Brokers × {t} Triggers", thousands(b)),
        }
    }

    /// The kind counted for readiness, and the list path.
    fn kind(self) -> &'static str {
        match self {
            Shape::Subscriptions(_) => "subscriptions",
            _ => "triggers",
        }
    }

    /// The ingress path the load and the edit probe post to.
    fn path(self) -> &'static str {
        match self {
            Shape::Triggers(_) => "/default/bench",
            Shape::Subscriptions(_) => "/channels/default/bench",
            Shape::Brokers(..) => "/default/broker-0",
        }
    }

    /// Where the edit probe posts (the edited object's Broker or channel).
    fn edit_path(self) -> String {
        match self {
            Shape::Brokers(b, _) => format!("/default/broker-{}", b / 2),
            _ => self.path().to_string(),
        }
    }

    /// The manifests; `edited` moves one object to the second sink (`sink2`) and, for
    /// Triggers, to the event type `scale.edited`.
    fn manifests(self, sink: SocketAddr, sink2: SocketAddr, edited: bool) -> String {
        match self {
            Shape::Triggers(n) => triggers(n, sink, edited.then_some(sink2)),
            Shape::Subscriptions(n) => subscriptions(n, sink, edited.then_some(sink2)),
            Shape::Brokers(b, t) => brokers(b, t, sink, edited.then_some(sink2)),
        }
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn trigger(m: &mut String, name: &str, broker: &str, ty: &str, sink: SocketAddr, path: &str) {
    let _ = write!(
        m,
        "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  broker: {broker}\n  filter: {{attributes: {{type: {ty}}}}}\n  subscriber: {{uri: 'http://{sink}/{path}'}}\n"
    );
}

fn broker(m: &mut String, name: &str) {
    let _ = write!(
        m,
        "---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {{name: {name}, namespace: default}}\n"
    );
}

/// Broker `bench`: Trigger `t-0` takes the load's `bench.event`, the others `scale.type.I`;
/// with `edited`, Trigger `t-N/2` takes `scale.edited` to `edited`.
fn triggers(n: usize, sink: SocketAddr, edited: Option<SocketAddr>) -> String {
    let mut m = String::with_capacity(n * 240);
    broker(&mut m, "bench");
    for i in 0..n {
        let name = format!("t-{i}");
        match edited {
            Some(e) if i == n / 2 => trigger(&mut m, &name, "bench", "scale.edited", e, "edited"),
            _ if i == 0 => trigger(&mut m, &name, "bench", "bench.event", sink, ""),
            _ => trigger(
                &mut m,
                &name,
                "bench",
                &format!("scale.type.{i}"),
                sink,
                "other",
            ),
        }
    }
    m
}

/// InMemoryChannel `bench` with `n` Subscriptions, each at most one delivery in flight (one
/// connection each: 10,000 of them stay under the file limit); with `edited`, Subscription
/// `s-N/2` delivers to `edited`.
fn subscriptions(n: usize, sink: SocketAddr, edited: Option<SocketAddr>) -> String {
    let mut m = String::with_capacity(n * 300);
    m.push_str("---\napiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: bench, namespace: default}\n");
    for i in 0..n {
        let to = match edited {
            Some(e) if i == n / 2 => format!("http://{e}/edited"),
            _ => format!("http://{sink}/s"),
        };
        let _ = write!(
            m,
            "---\napiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {{name: s-{i}, namespace: default, annotations: {{knit.dev/max-in-flight: '1'}}}}\nspec:\n  channel: {{apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: bench}}\n  subscriber: {{uri: '{to}'}}\n"
        );
    }
    m
}

/// Brokers `broker-B`, each with Triggers `t-B-J` on `scale.type.J` (`broker-0`'s `t-0-0` on
/// the load's `bench.event`); with `edited`, `t-B/2-T/2` takes `scale.edited` to `edited`.
fn brokers(b: usize, t: usize, sink: SocketAddr, edited: Option<SocketAddr>) -> String {
    let mut m = String::with_capacity(b * (t + 1) * 240);
    for i in 0..b {
        let name = format!("broker-{i}");
        broker(&mut m, &name);
        for j in 0..t {
            let tname = format!("t-{i}-{j}");
            match edited {
                Some(e) if i == b / 2 && j == t / 2 => {
                    trigger(&mut m, &tname, &name, "scale.edited", e, "edited");
                }
                _ if i == 0 && j == 0 => trigger(&mut m, &tname, &name, "bench.event", sink, ""),
                _ => trigger(
                    &mut m,
                    &tname,
                    &name,
                    &format!("scale.type.{j}"),
                    sink,
                    "other",
                ),
            }
        }
    }
    m
}

/// What one shape measured.
struct Figures {
    ready: Option<Duration>,
    rss: u64,
    idle_cpu: f64,
    edit: Option<Duration>,
    /// Throughput ÷ its baseline.
    ratio: f64,
    /// The throughput itself and its unit.
    rate: String,
}

/// Wait until every one of `n` objects of `kind` is Ready and the data plane runs a consumer
/// for each (it is listed in `/api/v1/stats` once its consumer group is open: on memory logs
/// Ready does not wait for that); `None` past [`READY_TIMEOUT`].
async fn all_ready(knit: &Knit, kind: &str, n: usize, since: Instant) -> Option<Duration> {
    let mut ready = false;
    while since.elapsed() < READY_TIMEOUT {
        if !ready {
            ready = knit.count_ready(kind).await.is_ok_and(|r| r >= n);
        }
        if ready
            && let Ok(stats) = knit.stats().await
            && stats["egresses"].as_object().is_some_and(|e| e.len() >= n)
        {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// CPU share of one core over [`IDLE_WINDOW`].
async fn idle_cpu(knit: &Knit) -> f64 {
    let before = knit.cpu_seconds();
    tokio::time::sleep(IDLE_WINDOW).await;
    (knit.cpu_seconds() - before) / IDLE_WINDOW.as_secs_f64() * 100.0
}

/// Post one binary event of type `ty` to `path`, on a fresh connection; errors are ignored
/// (the probe just tries again).
async fn post(addr: SocketAddr, path: &str, ty: &str, n: u64) {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return;
    };
    tokio::spawn(conn);
    let Ok(req) = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("ce-specversion", "1.0")
        .header("ce-id", format!("probe-{n}"))
        .header("ce-source", "/bench/scale")
        .header("ce-type", ty)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
    else {
        return;
    };
    if let Ok(resp) = sender.send_request(req).await {
        let _ = resp.into_body().collect().await;
    }
}

/// Rewrite the manifests with one object edited and probe until the edit shows at `sink2`.
async fn edit(
    knit: &Knit,
    shape: Shape,
    sink: SocketAddr,
    sink2: (SocketAddr, &Counters),
) -> Result<Option<Duration>> {
    let before = sink2.1.requests.load(Ordering::Relaxed);
    let every = match shape {
        Shape::Subscriptions(_) => EDIT_TIMEOUT,
        _ => Duration::from_millis(20),
    };
    let ty = match shape {
        Shape::Subscriptions(_) => "bench.event",
        _ => "scale.edited",
    };
    let path = shape.edit_path();
    let start = knit.rewrite(&shape.manifests(sink, sink2.0, true))?;
    if let Shape::Subscriptions(n) = shape {
        // Every event posted to the channel goes to all its Subscriptions: probing as for a
        // Broker would flood it. Wait for the edit in the Subscription's status (published once
        // the data plane has its Contract), then post one event.
        let name = format!("s-{}", n / 2);
        let edited = format!("http://{}/edited", sink2.0);
        while start.elapsed() < EDIT_TIMEOUT {
            let o = knit
                .object("subscriptions", &name)
                .await
                .unwrap_or_default();
            if o["status"]["physicalSubscription"]["subscriberUri"] == edited.as_str() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut n = 0;
    while start.elapsed() < EDIT_TIMEOUT {
        n += 1;
        post(knit.ingress, &path, ty, n).await;
        let deadline = Instant::now() + every;
        while Instant::now() < deadline {
            if sink2.1.requests.load(Ordering::Relaxed) > before {
                return Ok(Some(start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(None)
}

/// Deliveries per second of `events` posted to a channel with `subscribers` Subscriptions:
/// from the first post until the sinks (the edited Subscription's is the second) have them
/// all (up to a minute).
async fn fan_out(
    knit: &Knit,
    sinks: [&Counters; 2],
    events: u64,
    subscribers: usize,
) -> (f64, u64) {
    crate::settle(sinks[0]).await;
    let count = || -> u64 {
        sinks
            .iter()
            .map(|s| s.requests.load(Ordering::Relaxed))
            .sum()
    };
    let before = count();
    let want = events * subscribers as u64;
    let start = Instant::now();
    for n in 0..events {
        post(knit.ingress, "/channels/default/bench", "bench.event", n).await;
    }
    let deadline = start + Duration::from_secs(60);
    while count() - before < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = count() - before;
    (got as f64 / start.elapsed().as_secs_f64(), got)
}

/// The baselines every shape is compared with: a 1-Trigger Broker and a 1-Subscription
/// channel, idle between measurements, and the RSS of knits with nothing but a Broker or a
/// channel.
pub(crate) struct Baselines {
    broker: Knit,
    channel: Knit,
    sink: SocketAddr,
    counters: Arc<Counters>,
    sink2: (SocketAddr, Arc<Counters>),
    /// RSS of an idle knit with one Broker and no Triggers.
    empty_broker_rss: u64,
    /// RSS of an idle knit with one channel and no Subscriptions.
    empty_channel_rss: u64,
}

impl Baselines {
    pub(crate) async fn start() -> Result<Baselines> {
        let (sink, counters) = servers::start(Mode::Accept).await?;
        let (sink2, counters2) = servers::start(Mode::Accept).await?;
        let broker = Knit::start(&broker_manifests(sink, &BROKER), &[])?;
        let channel = Knit::start(&channel_manifests(sink), &[])?;
        broker.wait_ready("triggers", &["match"]).await?;
        channel.wait_ready("subscriptions", &["bench"]).await?;
        let empty_broker = Knit::start(&triggers(0, sink, None), &[])?;
        let empty_channel = Knit::start(&subscriptions(0, sink, None), &[])?;
        empty_broker.wait_ready("brokers", &["bench"]).await?;
        empty_channel
            .wait_ready("inmemorychannels", &["bench"])
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Baselines {
            broker,
            channel,
            sink,
            counters,
            sink2: (sink2, counters2),
            empty_broker_rss: empty_broker.rss(),
            empty_channel_rss: empty_channel.rss(),
        })
    }
}

/// Measure one shape.
async fn measure(o: &Options, base: &Baselines, shape: Shape) -> Result<Figures> {
    let manifests = shape.manifests(base.sink, base.sink2.0, false);
    let since = Instant::now();
    let knit = Knit::start(&manifests, &[])?;
    let ready = all_ready(&knit, shape.kind(), shape.objects(), since).await;
    // Whatever the start left to do (reports, snapshots) settles before the idle sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_cpu = idle_cpu(&knit).await;
    let rss = knit.rss();
    let edit = if ready.is_some() {
        edit(
            &knit,
            shape,
            base.sink,
            (base.sink2.0, base.sink2.1.as_ref()),
        )
        .await?
    } else {
        None
    };
    let (ratio, rate) = match shape {
        Shape::Subscriptions(n) => {
            let events = 20;
            let sinks = [base.counters.as_ref(), base.sink2.1.as_ref()];
            let (many, got) = fan_out(&knit, sinks, events, n).await;
            let one = through_knit(
                &base.channel,
                "/channels/default/bench",
                o,
                None,
                &base.counters,
            )
            .await?
            .rate;
            let short = if got < events * n as u64 {
                format!(", only {got} of {} arrived", events * n as u64)
            } else {
                String::new()
            };
            (
                many / one,
                format!("{many:.0} deliveries/s vs {one:.0}{short}"),
            )
        }
        _ => {
            let (mut scaled, mut single) = (Vec::new(), Vec::new());
            for _ in 0..o.rounds.min(if o.quick { 1 } else { 3 }) {
                single.push(
                    through_knit(&base.broker, "/default/bench", o, None, &base.counters).await?,
                );
                scaled.push(through_knit(&knit, shape.path(), o, None, &base.counters).await?);
            }
            let (scaled, single) = (median(scaled), median(single));
            (
                scaled.rate / single.rate,
                format!("{:.0} ev/s vs {:.0}", scaled.rate, single.rate),
            )
        }
    };
    Ok(Figures {
        ready,
        rss,
        idle_cpu,
        edit,
        ratio,
        rate,
    })
}

fn secs(d: Option<Duration>, timeout: Duration) -> String {
    d.map_or_else(
        || format!("> {} s", timeout.as_secs()),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}

/// One shape of `--scale`: `N` Triggers, `sN` Subscriptions, `bBxT` Brokers × Triggers.
fn shape(word: &str) -> Option<Shape> {
    let word = word.trim();
    if let Some(n) = word.strip_prefix('s') {
        return n.parse().ok().map(Shape::Subscriptions);
    }
    if let Some(bt) = word.strip_prefix('b') {
        let (b, t) = bt.split_once('x')?;
        return Some(Shape::Brokers(b.parse().ok()?, t.parse().ok()?));
    }
    word.parse().ok().map(Shape::Triggers)
}

/// The shapes a run measures: `--scale` (comma-separated, see [`shape`]), else 1,000 Triggers
/// with `--quick` and 1,000 to 10,000 plus the channel and many-Broker shapes without.
fn shapes(o: &Options) -> Vec<Shape> {
    if let Some(words) = &o.scale {
        return words.split(',').filter_map(shape).collect();
    }
    if o.quick {
        return vec![Shape::Triggers(1000)];
    }
    vec![
        Shape::Triggers(1000),
        Shape::Triggers(2000),
        Shape::Triggers(4000),
        Shape::Triggers(10_000),
        Shape::Subscriptions(10_000),
        Shape::Brokers(1000, 10),
    ]
}

/// Run the scale scenario and print one line per shape.
pub(crate) async fn run(o: &Options) -> Result<()> {
    let base = Baselines::start().await?;
    println!(
        "scale (one memory log each, all in one watched file; empty knit: {} with a Broker, {} with a channel):",
        mib(base.empty_broker_rss),
        mib(base.empty_channel_rss)
    );
    for shape in shapes(o) {
        let f = measure(o, &base, shape).await?;
        let empty = match shape {
            Shape::Subscriptions(_) => base.empty_channel_rss,
            _ => base.empty_broker_rss,
        };
        let per = f.rss.saturating_sub(empty) as f64 / shape.objects() as f64 / 1024.0;
        println!(
            "  {:<30} all Ready {:>9}   RSS {:>10} ({per:.1} KiB each)   idle CPU {:>5.1} %   edit → data plane {:>8}   throughput {:.2} ({})",
            shape.label(),
            secs(f.ready, READY_TIMEOUT),
            mib(f.rss),
            f.idle_cpu,
            secs(f.edit, EDIT_TIMEOUT),
            f.ratio,
            f.rate,
        );
    }
    Ok(())
}
