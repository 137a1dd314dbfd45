//! Running the `knit` binary for a scenario: manifests in a temp folder, ephemeral ports,
//! readiness from the admin API, and its resident memory from /proc.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// A running knit, killed on drop.
pub(crate) struct Knit {
    child: Child,
    admin: SocketAddr,
    /// The ingress address.
    pub(crate) ingress: SocketAddr,
    /// The HTTPS ingress address (`--tls-cert`).
    pub(crate) ingress_tls: Option<SocketAddr>,
    /// How to reach its admin API once it speaks HTTPS.
    admin_tls: Option<tokio_rustls::TlsConnector>,
    /// The watched folder holding `bench.yaml`.
    dir: tempfile::TempDir,
}

/// The knit binary: `KNIT_BIN`, or next to this bench binary.
fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KNIT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let p = me
        .parent()
        .context("bench binary has no folder")?
        .join("knit");
    if !p.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p knit) or set KNIT_BIN",
            p.display()
        );
    }
    Ok(p)
}

fn addr_of(line: &str, key: &str) -> Result<SocketAddr> {
    let url = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .with_context(|| format!("knit did not report {key}: {line:?}"))?;
    Ok(url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .parse()?)
}

impl Knit {
    /// Start knit on `manifests` with extra flags.
    pub(crate) fn start(manifests: &str, flags: &[&str]) -> Result<Knit> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("bench.yaml"), manifests)?;
        let mut child = Command::new(binary()?)
            .args(["run", "-f"])
            .arg(dir.path())
            .args([
                "--admin",
                "127.0.0.1:0",
                "--ingress",
                "127.0.0.1:0",
                "--gateway",
                "127.0.0.1:0",
            ])
            .args(flags)
            .args(
                std::env::var("BENCH_KNIT_FLAGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("RUST_LOG", "error")
            .envs(
                std::env::var("BENCH_KNIT_THREADS")
                    .ok()
                    .map(|t| ("TOKIO_WORKER_THREADS", t)),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Ok(Knit {
            admin: addr_of(&first, "admin")?,
            ingress: addr_of(&first, "ingress")?,
            ingress_tls: addr_of(&first, "ingress-tls").ok(),
            admin_tls: None,
            child,
            dir,
        })
    }

    /// Start knit with TLS flags: its admin API is then reached through `admin_tls`.
    pub(crate) fn start_tls(
        manifests: &str,
        flags: &[&str],
        admin_tls: tokio_rustls::TlsConnector,
    ) -> Result<Knit> {
        let mut knit = Self::start(manifests, flags)?;
        knit.admin_tls = Some(admin_tls);
        Ok(knit)
    }

    /// Replace the manifests as an editor does (a new file renamed over the old one); returns
    /// when the rename happened.
    pub(crate) fn rewrite(&self, manifests: &str) -> Result<Instant> {
        let tmp = self.dir.path().join(".bench.yaml.new");
        std::fs::write(&tmp, manifests)?;
        std::fs::rename(&tmp, self.dir.path().join("bench.yaml"))?;
        Ok(Instant::now())
    }

    /// One object of `kind` (plural) in namespace `default`, with its status.
    pub(crate) async fn object(&self, kind: &str, name: &str) -> Result<serde_json::Value> {
        self.get(&format!("/api/v1/{kind}/default/{name}")).await
    }

    /// How many objects of `kind` (plural, namespace `default`) are Ready.
    pub(crate) async fn count_ready(&self, kind: &str) -> Result<usize> {
        let list = self
            .get(&format!("/api/v1/{kind}?namespace=default"))
            .await?;
        Ok(list["items"]
            .as_array()
            .map_or(0, |items| items.iter().filter(|o| is_ready(o)).count()))
    }

    async fn get(&self, path: &str) -> Result<serde_json::Value> {
        self.call(hyper::Method::GET, path, None).await
    }

    /// A token for `subject` and `audience` from the admin API's OIDC issuer.
    pub(crate) async fn oidc_token(&self, subject: &str, audience: &str) -> Result<String> {
        let body = serde_json::json!({"subject": subject, "audience": audience});
        let v = self
            .call(hyper::Method::POST, "/api/v1/oidc/token", Some(body))
            .await?;
        v["token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no token minted: {v}"))
    }

    /// `method` on the admin API's `path`, with a JSON `body`; the JSON answer.
    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let stream = tokio::net::TcpStream::connect(self.admin).await?;
        let mut sender = match &self.admin_tls {
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
            Some(tls) => {
                let name = rustls::pki_types::ServerName::IpAddress(self.admin.ip().into());
                let stream = tls.connect(name, stream).await?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.admin.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let body = sender
            .send_request(req)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        Ok(serde_json::from_slice(&body)?)
    }

    /// The fate counters of `GET /api/v1/stats`: totals, and per egress under `egresses`.
    pub(crate) async fn stats(&self) -> Result<serde_json::Value> {
        self.get("/api/v1/stats").await
    }

    /// Wait until every object of `kind` in `names` is Ready.
    pub(crate) async fn wait_ready(&self, kind: &str, names: &[&str]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for name in names {
            loop {
                let o = self
                    .get(&format!("/api/v1/{kind}/default/{name}"))
                    .await
                    .unwrap_or_default();
                if is_ready(&o) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{kind}/{name} did not become Ready");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// CPU time used so far (user + system), in seconds.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }

    /// Resident memory in bytes.
    pub(crate) fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Peak resident memory in bytes (VmHWM).
    pub(crate) fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

/// Whether an object's `Ready` condition is True.
fn is_ready(o: &serde_json::Value) -> bool {
    o["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

impl Drop for Knit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) the process `pid` (or `self`) used so far, in seconds.
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)` part; utime and stime are fields 14 and 15 (1-based).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
