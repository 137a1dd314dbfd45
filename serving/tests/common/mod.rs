//! Helpers of the serving runtime tests: a Contract built around `tests/app.py`, a report sink
//! that keeps the last state per UID, a raw HTTP/1.1 client, and polling with a deadline.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use knit_crds::contract::ObjectReport;
use knit_crds::contract::serving::{Container, Revision, Route, Serving as Spec, Target};
use knit_serving::runtime::{Config, ReportSink, Serving};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The last report per UID.
#[derive(Default)]
pub struct Sink {
    pub states: Mutex<HashMap<String, ObjectReport>>,
}

impl ReportSink for Sink {
    fn set(&self, uid: &str, state: ObjectReport) {
        self.states.lock().insert(uid.to_string(), state);
    }
    fn forget(&self, uid: &str) {
        self.states.lock().remove(uid);
    }
}

impl Sink {
    pub fn get(&self, uid: &str) -> Option<ObjectReport> {
        self.states.lock().get(uid).cloned()
    }
}

/// A running data plane with its gateway.
pub struct Harness {
    pub serving: Serving,
    pub sink: Arc<Sink>,
    pub gateway: SocketAddr,
}

impl Harness {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let sink = Arc::new(Sink::default());
        let serving = Serving::new(config, sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let gateway = listener.local_addr()?;
        let s = serving.clone();
        tokio::spawn(async move { s.serve_gateway(listener).await });
        Ok(Self {
            serving,
            sink,
            gateway,
        })
    }

    /// A data plane running the service `svc` with its one revision `name` (all traffic),
    /// ready within `within`.
    pub async fn one_revision(svc: &str, name: &str, within: Duration) -> anyhow::Result<Self> {
        let h = Self::start(Config::default()).await?;
        h.serving.apply(&spec(
            vec![revision(svc, name, &[])],
            vec![route(svc, &[(name, 100)])],
        ));
        h.wait_report(&format!("uid-{name}"), within, |r| r.ready)
            .await?;
        Ok(h)
    }

    /// Poll until the report of `uid` satisfies `ok`.
    pub async fn wait_report(
        &self,
        uid: &str,
        within: Duration,
        ok: impl Fn(&ObjectReport) -> bool,
    ) -> anyhow::Result<ObjectReport> {
        let deadline = Instant::now() + within;
        loop {
            let r = self.sink.get(uid);
            if let Some(r) = &r
                && ok(r)
            {
                return Ok(r.clone());
            }
            if Instant::now() > deadline {
                bail!("report of {uid} never matched; last: {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, host: &str, path: &str) -> anyhow::Result<(u16, String)> {
        get(self.gateway, host, path, &[]).await
    }
}

/// The revision `name` of service `svc` running `tests/app.py`.
pub fn revision(svc: &str, name: &str, env: &[(&str, &str)]) -> Revision {
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/app.py");
    Revision {
        uid: format!("uid-{name}"),
        namespace: "default".into(),
        name: name.into(),
        configuration: svc.into(),
        service: Some(svc.into()),
        // Built from JSON so fields the Contract gains later keep their defaults.
        container: container(&["python3", "-u", app, "--port=$(PORT)"], env),
        container_concurrency: 0,
        timeout_seconds: 30,
        response_start_timeout_seconds: None,
        idle_timeout_seconds: None,
        autoscaling: BTreeMap::new(),
        routed: true,
    }
}

/// A container running `argv` with `env`.
pub fn container(argv: &[&str], env: &[(&str, &str)]) -> Container {
    let value = serde_json::json!({
        "name": "user-container",
        "image": "example.com/app",
        "argv": argv,
        "env": env,
    });
    match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => panic!("container JSON: {e}"),
    }
}

/// A route `svc.default.localhost` over `traffic`.
pub fn route(svc: &str, traffic: &[(&str, u32)]) -> Route {
    Route {
        uid: format!("route-{svc}"),
        namespace: "default".into(),
        name: svc.into(),
        hosts: vec![format!("{svc}.default.localhost")],
        traffic: traffic
            .iter()
            .map(|(r, p)| Target {
                revision: r.to_string(),
                percent: *p,
            })
            .collect(),
        tags: Vec::new(),
    }
}

pub fn spec(revisions: Vec<Revision>, routes: Vec<Route>) -> Spec {
    Spec {
        revisions,
        routes,
        ..Default::default()
    }
}

/// One request on a fresh connection: status and body.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(Duration::from_secs(40), async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("no status in {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    })
    .await
    .context("request timed out")?
}
