//! The serving scenarios: Knit's serving data plane (`knit_serving::runtime::Serving`) runs
//! in this process, and its revisions run this very binary re-executed as `knit-bench app`
//! (a keep-alive hyper server on `PORT`, see [`crate::servers::app`]).
//!
//! - Overhead: the same load (keep-alive connections, as many as [`CONCURRENCY`]) straight at
//!   the replica's own port, and at the gateway with the route's Host header, through the
//!   gateway, the activator's pick and the replica's proxy; as fast as it goes (throughput),
//!   then at [`LATENCY_RATE`] (latency). One revision, pinned at one
//!   replica (`min-scale` = `max-scale` = 1), so both hit the same process.
//! - Cold start: the app's own start time (spawn by hand → first 200, polled on fresh
//!   connections) against the first request through the gateway to a fresh revision at zero
//!   (`initial-scale: 0`, allowed by `allow-zero-initial-scale`), request → response; the two
//!   alternate, and each is the median of several.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use knit_crds::contract::ObjectReport;
use knit_crds::contract::serving::{Revision, Route, Serving as Spec, Target};
use knit_serving::runtime::{Config, ReportSink, Serving};
use parking_lot::Mutex;

use crate::load::{self, Load};
use crate::{Measured, Options, median, not_accepted_as, warmup};

/// Connections of the overhead measurement.
pub(crate) const CONCURRENCY: usize = 16;
/// Requests per second of the latency measurement (Knative's dataplane-probe rate).
pub(crate) const LATENCY_RATE: f64 = 1000.0;
const NAMESPACE: &str = "default";
/// The overhead scenario's service, revision and host.
const HOT: &str = "bench";
const HOT_REVISION: &str = "bench-00001";
/// The cold-start scenario's service.
const COLD: &str = "cold";

/// The last report per Revision UID.
#[derive(Default)]
struct Reports(Mutex<HashMap<String, ObjectReport>>);

impl ReportSink for Reports {
    fn set(&self, uid: &str, state: ObjectReport) {
        self.0.lock().insert(uid.to_string(), state);
    }
    fn forget(&self, uid: &str) {
        self.0.lock().remove(uid);
    }
}

impl Reports {
    fn get(&self, uid: &str) -> Option<ObjectReport> {
        self.0.lock().get(uid).cloned()
    }
}

/// The serving data plane with its gateway and the hot revision's replica.
pub(crate) struct Rig {
    serving: Serving,
    reports: Arc<Reports>,
    gateway: SocketAddr,
    /// The hot revision's replica, straight.
    app: SocketAddr,
    /// A raw TCP relay to the replica (no HTTP), started with the rig's first measurement.
    relay: Option<SocketAddr>,
    exe: String,
}

fn host(service: &str) -> String {
    format!("{service}.{NAMESPACE}.localhost")
}

fn revision(
    exe: &str,
    service: &str,
    name: &str,
    autoscaling: &[(&str, &str)],
) -> Result<Revision> {
    let value = serde_json::json!({
        "uid": format!("uid-{name}"),
        "namespace": NAMESPACE,
        "name": name,
        "configuration": service,
        "service": service,
        // Built from JSON so fields the Contract gains later keep their defaults.
        "container": {"name": "user-container", "image": "example.com/bench-app", "argv": [exe, "app"]},
        "containerConcurrency": 0,
        "timeoutSeconds": 30,
        "routed": true,
        "autoscaling": autoscaling
            .iter()
            .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    });
    serde_json::from_value(value).context("revision JSON")
}

fn route(service: &str, revision: &str) -> Route {
    Route {
        uid: format!("route-{service}"),
        namespace: NAMESPACE.into(),
        name: service.into(),
        hosts: vec![host(service)],
        traffic: vec![Target {
            revision: revision.into(),
            percent: 100,
        }],
        tags: Vec::new(),
    }
}

impl Rig {
    /// Start the data plane and the hot revision; wait until its replica is ready.
    pub(crate) async fn start() -> Result<Rig> {
        let exe = std::env::current_exe()?
            .to_str()
            .context("the bench binary's path is not UTF-8")?
            .to_string();
        let reports = Arc::new(Reports::default());
        let serving = Serving::new(Config::default(), reports.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let gateway = listener.local_addr()?;
        let s = serving.clone();
        tokio::spawn(async move { s.serve_gateway(listener).await });
        let mut rig = Rig {
            serving,
            reports,
            gateway,
            app: gateway,
            relay: None,
            exe,
        };
        rig.apply(None)?;
        let uid = format!("uid-{HOT_REVISION}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = rig.reports.get(&uid).is_some_and(|r| r.ready);
            let port = rig
                .serving
                .logs(NAMESPACE, HOT_REVISION, 0)
                .iter()
                .find_map(|l| {
                    l.text
                        .strip_prefix("listening on ")?
                        .trim()
                        .parse::<u16>()
                        .ok()
                });
            if let (true, Some(port)) = (ready, port) {
                rig.app = SocketAddr::from(([127, 0, 0, 1], port));
                rig.relay = Some(relay(rig.app).await?);
                return Ok(rig);
            }
            if Instant::now() > deadline {
                bail!(
                    "the bench revision never became ready: {:?}; output: {:?}",
                    rig.reports.get(&uid),
                    rig.serving.logs(NAMESPACE, HOT, 0)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Run the hot revision, and the cold revision `cold` if any (a fresh one starts at zero).
    fn apply(&self, cold: Option<&str>) -> Result<()> {
        let mut revisions = vec![revision(
            &self.exe,
            HOT,
            HOT_REVISION,
            &[("min-scale", "1"), ("max-scale", "1")],
        )?];
        let mut routes = vec![route(HOT, HOT_REVISION)];
        if let Some(name) = cold {
            revisions.push(revision(&self.exe, COLD, name, &[("initial-scale", "0")])?);
            routes.push(route(COLD, name));
        }
        self.serving.apply(&Spec {
            revisions,
            routes,
            autoscaler_config: [("allow-zero-initial-scale".to_string(), "true".to_string())]
                .into(),
            ..Spec::default()
        });
        Ok(())
    }

    /// One measurement of the load at `addr` with the `Host` header `host`, and the app's CPU
    /// per request during it (microseconds).
    async fn measure(
        &self,
        o: &Options,
        addr: SocketAddr,
        host: Option<String>,
        rate: Option<f64>,
    ) -> Result<(Measured, f64)> {
        let load = Load {
            addr,
            host,
            path: "/".into(),
            ty: "bench.event".into(),
            concurrency: CONCURRENCY,
            duration: warmup(o),
            rate,
            authorization: None,
        };
        load::run(&load).await?;
        let cpu = || [crate::knit::cpu_seconds("self"), children_cpu_seconds()];
        let before = cpu();
        let mut out = load::run(&Load {
            duration: Duration::from_secs_f64(o.seconds),
            ..load
        })
        .await?;
        let after = cpu();
        let n = out.count(200).max(1) as f64;
        let rate = out.count(200) as f64 / out.elapsed.as_secs_f64();
        let measured = Measured {
            rate,
            cpu_us: (after[0] - before[0]) * 1e6 / n,
            p50: load::percentile_ms(&mut out.latencies_us, 50.0),
            p99: load::percentile_ms(&mut out.latencies_us, 99.0),
            accepted: out.count(200),
            accepted_rate: rate,
            rejected: not_accepted_as(&out, 200),
        };
        Ok((measured, (after[1] - before[1]) * 1e6 / n))
    }

    /// The overhead rounds, alternating: (direct, through the gateway), each the median round;
    /// as fast as the connections go, or at `rate` requests per second in all.
    pub(crate) async fn overhead(
        &self,
        o: &Options,
        rounds: usize,
        rate: Option<f64>,
    ) -> Result<(Measured, Measured)> {
        let (mut direct, mut gateway) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            direct.push(self.measure(o, self.app, None, rate).await?.0);
            gateway.push(
                self.measure(o, self.gateway, Some(host(HOT)), rate)
                    .await?
                    .0,
            );
        }
        if rate.is_some() {
            // At a fixed rate the rounds differ in latency, not rate: the median by p50.
            let by_p50 = |mut v: Vec<Measured>| {
                v.sort_by(|a, b| a.p50.total_cmp(&b.p50));
                v.swap_remove(v.len() / 2)
            };
            return Ok((by_p50(direct), by_p50(gateway)));
        }
        Ok((median(direct), median(gateway)))
    }

    /// The saturated rounds: in each, the load straight at the replica, through the gateway and
    /// through the relay, one after the other. The ratios are the medians of each round's own
    /// ratios (measurements taken seconds apart share the machine's mood; a median of rates
    /// from different rounds does not).
    pub(crate) async fn throughput(&self, o: &Options, rounds: usize) -> Result<Throughput> {
        let relay = self.relay.context("the relay did not start")?;
        let (mut direct, mut gateway, mut relayed) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ratios, mut relay_ratios) = (Vec::new(), Vec::new());
        let mut app: [Vec<f64>; 3] = Default::default();
        for _ in 0..rounds {
            let (h, app_h) = self.measure(o, self.app, None, None).await?;
            let (i, app_i) = self.measure(o, self.gateway, Some(host(HOT)), None).await?;
            let (r, app_r) = self.measure(o, relay, Some(host(HOT)), None).await?;
            for (v, cpu) in app.iter_mut().zip([app_h, app_i, app_r]) {
                v.push(cpu);
            }
            ratios.push(i.rate / h.rate);
            relay_ratios.push(r.rate / h.rate);
            direct.push(h);
            gateway.push(i);
            relayed.push(r);
        }
        let cpu = |v: &[Measured]| median_of(&v.iter().map(|m| m.cpu_us).collect::<Vec<_>>());
        Ok(Throughput {
            cpu_us: [cpu(&direct), cpu(&gateway), cpu(&relayed)],
            app_cpu_us: app.map(|v| median_of(&v)),
            direct: median(direct),
            gateway: median(gateway),
            relay: median(relayed),
            ratio: median_of(&ratios),
            rounds,
            relay_ratio: median_of(&relay_ratios),
        })
    }

    /// `runs` cold starts, alternating with starts of the app by hand.
    pub(crate) async fn cold_starts(&self, runs: usize) -> Result<ColdStarts> {
        let mut c = ColdStarts::default();
        for i in 1..=runs {
            c.app_ms.push(app_start(&self.exe).await?);
            let name = format!("{COLD}-{i:05}");
            self.apply(Some(&name))?;
            let t = Instant::now();
            let status = get(self.gateway, &host(COLD)).await?;
            c.gateway_ms.push(t.elapsed().as_secs_f64() * 1e3);
            if status != 200 {
                bail!("the first request to {name} at zero answered {status}");
            }
            if let Some(ms) = self
                .reports
                .get(&format!("uid-{name}"))
                .and_then(|r| r.annotations.get("lastColdStartMs")?.parse::<f64>().ok())
            {
                c.reported_ms.push(ms);
            }
            // Drop the cold revision (its replica drains and stops) before the next run.
            self.apply(None)?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(c)
    }

    pub(crate) async fn shutdown(self) {
        self.serving.shutdown(Duration::from_secs(5)).await;
    }
}

/// Runs and prints (h), (i) and (j).
pub(crate) async fn scenarios(o: &Options, rounds: usize) -> Result<(Measured, Measured)> {
    let rig = Rig::start().await?;
    // The throughput ratio is the figure most moved by the machine's mood: even a quick run
    // takes the median of three paired rounds.
    let t = rig.throughput(o, rounds.max(3)).await?;
    let (hr, ir) = rig.overhead(o, rounds, Some(LATENCY_RATE)).await?;
    let cold = rig.cold_starts(if o.quick { 5 } else { 15 }).await?;
    rig.shutdown().await;
    print_serving(&t, &hr, &ir, &cold);
    Ok((t.direct, t.gateway))
}

/// Prints (h), (i) and (j): saturated `t`, at the fixed rate `hr`/`ir`.
fn print_serving(t: &Throughput, hr: &Measured, ir: &Measured, cold: &ColdStarts) {
    let failed = |m: &Measured| {
        if m.rejected > 0 {
            format!("   {} answers not 200", m.rejected)
        } else {
            String::new()
        }
    };
    let (h, i, relay) = (&t.direct, &t.gateway, &t.relay);
    println!(
        "(h) app direct (knit-bench app, {} conns):   {:>9.0} req/s   p50 {:.2} ms  p99 {:.2} ms{}",
        CONCURRENCY,
        h.rate,
        h.p50,
        h.p99,
        failed(h)
    );
    println!(
        "(i) gateway → proxy → app (Host routing):  {:>9.0} req/s   p50 {:.2} ms  p99 {:.2} ms   ratio (i)/(h) {:.2} (target ≥ 0.50; median of {} rounds' own ratios)   (added at saturation: p50 {:.3} ms, p99 {:.3} ms){}",
        i.rate,
        i.p50,
        i.p99,
        t.ratio,
        t.rounds,
        i.p50 - h.p50,
        i.p99 - h.p99,
        failed(i)
    );
    println!(
        "    for scale: a raw TCP relay (bytes copied both ways, no HTTP) {:>9.0} req/s   ratio {:.2} of (h){}",
        relay.rate,
        t.relay_ratio,
        failed(relay)
    );
    let ([hc, ic, rc], [ha, ia, ra]) = (t.cpu_us, t.app_cpu_us);
    println!(
        "    CPU per request: this process (load generator + gateway or relay) direct {hc:.1} µs, gateway {ic:.1} µs (+{:.1}), relay {rc:.1} µs (+{:.1}); the app direct {ha:.1} µs, via gateway {ia:.1} µs, via relay {ra:.1} µs",
        ic - hc,
        rc - hc
    );
    println!(
        "(i) latency at {:.0} req/s over {} conns: direct p50 {:.3} ms p99 {:.3} ms, gateway p50 {:.3} ms p99 {:.3} ms   added p50 {:.3} ms (target ≤ 0.2)  p99 {:.3} ms (target ≤ 1){}{}",
        LATENCY_RATE,
        CONCURRENCY,
        hr.p50,
        hr.p99,
        ir.p50,
        ir.p99,
        ir.p50 - hr.p50,
        ir.p99 - hr.p99,
        failed(hr),
        failed(ir)
    );
    let app = median_of(&cold.app_ms);
    let gateway = median_of(&cold.gateway_ms);
    println!(
        "(j) cold start, median of {}: app alone {:.1} ms (spawn → first response), through the gateway at zero {:.1} ms (request → response), difference {:.1} ms (target ≤ 20)   runtime's lastColdStartMs {:.0} ms",
        cold.gateway_ms.len(),
        app,
        gateway,
        gateway - app,
        median_of(&cold.reported_ms)
    );
}

/// The saturated measurements.
pub(crate) struct Throughput {
    /// (h): straight at the replica.
    pub(crate) direct: Measured,
    /// (i): through the gateway.
    pub(crate) gateway: Measured,
    /// Through the raw TCP relay.
    pub(crate) relay: Measured,
    /// Median of the rounds' (i)/(h).
    pub(crate) ratio: f64,
    /// How many rounds.
    pub(crate) rounds: usize,
    /// Median of the rounds' relay/(h).
    pub(crate) relay_ratio: f64,
    /// Medians of this process's CPU per request (load generator included): direct, gateway,
    /// relay, in microseconds.
    pub(crate) cpu_us: [f64; 3],
    /// The same for the app (the replica process).
    pub(crate) app_cpu_us: [f64; 3],
}

/// Cold-start samples in milliseconds.
#[derive(Default)]
pub(crate) struct ColdStarts {
    /// The app started by hand: spawn → first 200.
    pub(crate) app_ms: Vec<f64>,
    /// The first request through the gateway to a revision at zero: request → response.
    pub(crate) gateway_ms: Vec<f64>,
    /// What the runtime reported as `lastColdStartMs` (replica start → ready).
    pub(crate) reported_ms: Vec<f64>,
}

/// The median of `v` (NaN when empty).
pub(crate) fn median_of(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A TCP relay to `app`: each connection gets its own connection to `app` and the bytes are
/// copied both ways in one task, no HTTP parsing: what one more loopback hop costs on this
/// machine (two more sends and receives per request through the kernel) before any HTTP work.
async fn relay(app: SocketAddr) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(app).await else {
                    return;
                };
                let _ = (down.set_nodelay(true), up.set_nodelay(true));
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    Ok(addr)
}

/// CPU time of this process's children (the replicas), in seconds.
fn children_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .map(|c| {
            c.split_whitespace()
                .map(crate::knit::cpu_seconds)
                .sum::<f64>()
        })
        .sum()
}

/// A free loopback port.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Start the app by hand and poll it (fresh connections, 500 µs apart) until it answers 200:
/// spawn → first response, in milliseconds.
async fn app_start(exe: &str) -> Result<f64> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .arg("app")
        .env("PORT", port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = t + Duration::from_secs(10);
    let ms = loop {
        if let Ok(200) = get(addr, &addr.to_string()).await {
            break t.elapsed().as_secs_f64() * 1e3;
        }
        if Instant::now() > deadline {
            bail!("the app started by hand never answered");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    drop(child.stdin.take());
    let _ = child.kill().await;
    Ok(ms)
}

/// One GET on a fresh connection; its status.
async fn get(addr: SocketAddr, host: &str) -> Result<u16> {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::get("/")
            .header("host", host)
            .body(Empty::<Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Ok(status)
    })
    .await
    .context("request timed out")?
}
