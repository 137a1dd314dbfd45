//! Shared helpers of the end-to-end tests: start the `knit` binary on ephemeral ports, run
//! its CLI, a scriptable recording sink, and polling with a deadline (no sleeps).
#![allow(dead_code, unreachable_pub)]

pub mod certs;
pub mod crash;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(any(feature = "kafka", feature = "nats"))]
pub mod replicas;
pub mod route;
pub mod sink;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any condition may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Path to the `knit` binary under test.
pub fn knit_bin() -> &'static str {
    env!("CARGO_BIN_EXE_knit")
}

/// The `shared/` folder beside the checkout (or `KNIT_SHARED`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("KNIT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Poll `check` until it returns `Some`, or panic with `what` after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_for(what, PATIENCE, check).await
}

/// Poll `check` until it returns `Some`, or panic with `what` after `patience` (for waits the
/// system under test sets, such as an autoscaler's windows).
pub async fn eventually_for<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `knit run`, killed on drop.
pub struct Knit {
    child: Child,
    /// Admin API URL.
    pub admin: String,
    /// Ingress base URL.
    pub ingress: String,
    /// Gateway URL.
    pub gateway: String,
    /// Manifests folder (a temp dir the test can write into).
    pub dir: tempfile::TempDir,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// What the processes killed by [`Knit::kill_and_restart`] wrote to stderr.
    earlier: String,
    /// The Kafka broker this knit uses, if any (stopped after knit).
    #[cfg(feature = "kafka")]
    pub kafka: Option<kafka::Kafka>,
    /// The NATS server this knit uses, if any (stopped after knit).
    #[cfg(feature = "nats")]
    pub nats: Option<nats::NatsServer>,
    args: Vec<String>,
    /// Its `RUST_LOG` when not `KNIT_TEST_LOG` (or `warn`).
    log: Option<String>,
    /// The CA the admin API's certificate is checked against (`knit run --tls-cert`).
    pub ca: Option<PathBuf>,
}

struct Started {
    child: Child,
    admin: String,
    ingress: String,
    gateway: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Knit {
    /// Start `knit run` on a fresh temp folder holding `files` (name, YAML).
    pub fn start(files: &[(&str, &str)]) -> Knit {
        Self::start_with(files, &[])
    }

    /// Like [`Knit::start_with`], logging with `RUST_LOG=filter` (for a test that waits for a
    /// line below the usual `warn`).
    pub fn start_logging(files: &[(&str, &str)], extra: &[&str], filter: &str) -> Knit {
        let (dir, args) = Self::prepare(files, extra);
        let log = Some(filter.to_string());
        let started =
            Self::try_spawn(dir.path(), &args, log.as_deref()).unwrap_or_else(|e| panic!("{e}"));
        let mut knit = Self::from_started(dir, args, started);
        knit.log = log;
        knit
    }

    /// Like [`Knit::start`] with extra flags for `knit run`.
    pub fn start_with(files: &[(&str, &str)], extra: &[&str]) -> Knit {
        let (dir, args) = Self::prepare(files, extra);
        Self::spawn(dir, args)
    }

    /// A temp folder holding `files`, and `knit run`'s flags: ephemeral ports, then `extra`.
    fn prepare(files: &[(&str, &str)], extra: &[&str]) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write manifest");
        }
        let args = ["--admin", "127.0.0.1:0", "--ingress", "127.0.0.1:0"]
            .into_iter()
            .chain(["--gateway", "127.0.0.1:0"])
            .chain(extra.iter().copied())
            .map(String::from)
            .collect();
        (dir, args)
    }

    /// Start `knit run -f DIR ARGS...` on a folder it then owns.
    fn spawn(dir: tempfile::TempDir, args: Vec<String>) -> Knit {
        let started = Self::try_spawn(dir.path(), &args, None).unwrap_or_else(|e| panic!("{e}"));
        Self::from_started(dir, args, started)
    }

    fn from_started(dir: tempfile::TempDir, args: Vec<String>, started: Started) -> Knit {
        Knit {
            child: started.child,
            admin: started.admin,
            ingress: started.ingress,
            gateway: started.gateway,
            dir,
            stderr: started.stderr,
            earlier: String::new(),
            #[cfg(feature = "kafka")]
            kafka: None,
            #[cfg(feature = "nats")]
            nats: None,
            args,
            log: None,
            ca: None,
        }
    }

    /// Talk to its admin API (HTTPS) trusting `ca`, in the CLI too.
    pub fn trusting(mut self, ca: &Path) -> Knit {
        self.ca = Some(ca.to_path_buf());
        self
    }

    /// A client of its admin API.
    fn client(&self) -> reqwest::Client {
        match &self.ca {
            Some(ca) => https(ca),
            None => http(),
        }
    }

    fn try_spawn(dir: &Path, args: &[String], log: Option<&str>) -> Result<Started, String> {
        let mut child = Command::new(knit_bin())
            .args(["run", "-f"])
            .arg(dir)
            .args(args)
            .env(
                "RUST_LOG",
                log.map(String::from).unwrap_or_else(|| {
                    std::env::var("KNIT_TEST_LOG").unwrap_or_else(|_| "warn".into())
                }),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start knit: {e}"))?;
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if std::env::var_os("KNIT_TEST_LOG").is_some() {
                        eprintln!("[knit] {line}");
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let field = |key: &str| {
            first
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        match (field("admin"), field("ingress"), field("gateway")) {
            (Some(admin), Some(ingress), Some(gateway)) => Ok(Started {
                child,
                admin,
                ingress,
                gateway,
                stderr,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "knit did not start: {first:?} / {}",
                    stderr.lock().map(|s| s.clone()).unwrap_or_default()
                ))
            }
        }
    }

    /// Like [`Knit::start_with`], using a Kafka broker started for this test (`--kafka`).
    #[cfg(feature = "kafka")]
    pub fn start_with_kafka(files: &[(&str, &str)], extra: &[&str]) -> Knit {
        let k = kafka::Kafka::start();
        let mut flags = vec!["--kafka", k.bootstrap.as_str()];
        flags.extend(extra);
        let mut knit = Self::start_with(files, &flags);
        knit.kafka = Some(k);
        knit
    }

    /// Like [`Knit::start_with`], using a NATS server started for this test (`--nats`).
    #[cfg(feature = "nats")]
    pub fn start_with_nats(files: &[(&str, &str)], extra: &[&str]) -> Knit {
        let n = nats::NatsServer::start();
        let mut flags = vec!["--nats", n.url.as_str()];
        flags.extend(extra);
        let mut knit = Self::start_with(files, &flags);
        knit.nats = Some(n);
        knit
    }

    /// Kill the process with SIGKILL: it gets no chance to finish or hand anything back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop the process with SIGTERM (it finishes the deliveries in flight, commits and leaves
    /// its groups) and wait up to `patience` for it to exit; its exit status.
    pub async fn terminate(&mut self, patience: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for knit") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "knit did not exit within {patience:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kill the process with SIGKILL (it gets no chance to finish or commit anything), then
    /// start it again on the same manifests, ports and flags.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        let logs = self.logs();
        self.earlier.push_str(&logs);
        self.earlier.push_str("-- killed; restarted --\n");
        let port = |url: &str| url.rsplit(':').next().unwrap_or("0").to_string();
        let mut fixed = Vec::new();
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            let value = match a.as_str() {
                "--admin" => Some(port(&self.admin)),
                "--ingress" => Some(port(&self.ingress)),
                "--gateway" => Some(port(&self.gateway)),
                _ => None,
            };
            fixed.push(a.clone());
            if let Some(v) = value {
                it.next();
                fixed.push(format!("127.0.0.1:{v}"));
            }
        }
        // The ports were just released; a bind may race with the kernel for a moment.
        let deadline = Instant::now() + PATIENCE;
        let started = loop {
            match Self::try_spawn(self.dir.path(), &fixed, self.log.as_deref()) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("{e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.child = started.child;
        self.stderr = started.stderr;
        self.args = fixed;
    }

    /// What knit wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What knit wrote to stderr so far, with what the processes it replaced after a kill
    /// ([`Knit::kill_and_restart`]) wrote before.
    pub fn all_logs(&self) -> String {
        format!("{}{}", self.earlier, self.logs())
    }

    /// Write (or overwrite) a manifest in the watched folder.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("rename");
    }

    /// Remove a manifest from the watched folder.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove");
    }

    /// Run a `knit` CLI command against this server: (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        match &self.ca {
            Some(ca) => cli_env(
                args,
                &[
                    ("KNIT_SERVER", &self.admin),
                    ("KNIT_CA_FILE", &ca.to_string_lossy()),
                ],
            ),
            None => cli_env(args, &[("KNIT_SERVER", &self.admin)]),
        }
    }

    /// GET an admin API path as JSON.
    pub async fn api(&self, path: &str) -> Value {
        let r = self
            .client()
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .expect("admin API");
        r.json().await.expect("json")
    }

    /// One object with its status, or `None`.
    pub async fn object(&self, kind: &str, name: &str) -> Option<Value> {
        let r = self
            .client()
            .get(format!("{}/api/v1/{kind}/default/{name}", self.admin))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// Wait until `kind/name` is Ready=True; returns it.
    pub async fn ready(&self, kind: &str, name: &str) -> Value {
        self.ready_within(kind, name, PATIENCE).await
    }

    /// [`Knit::ready`] with a longer wait (for manifests that take long to admit, such as a
    /// thousand Triggers on a busy machine).
    pub async fn ready_within(&self, kind: &str, name: &str, patience: Duration) -> Value {
        eventually_for(&format!("{kind}/{name} to be Ready"), patience, || async {
            let o = self.object(kind, name).await?;
            (condition(&o, "Ready")?["status"] == "True").then_some(o)
        })
        .await
    }

    /// The address of a Ready broker or channel.
    pub async fn address(&self, kind: &str, name: &str) -> String {
        let o = self.ready(kind, name).await;
        o["status"]["address"]["url"]
            .as_str()
            .expect("address")
            .to_string()
    }

    /// A token for `subject` and `audience` from Knit's own OIDC issuer (the admin API).
    pub async fn oidc_token(&self, subject: &str, audience: &str) -> String {
        let r = http()
            .post(format!("{}/api/v1/oidc/token", self.admin))
            .json(&serde_json::json!({"subject": subject, "audience": audience}))
            .send()
            .await
            .expect("admin API");
        assert_eq!(r.status(), 200, "minting a token");
        let v: Value = r.json().await.expect("json");
        v["token"].as_str().expect("token").to_string()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        http()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for Knit {
    /// Stop knit; fail the test (unless it already fails) when knit panicked.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let logs = self.logs();
        if !std::thread::panicking() {
            assert_no_panic(&logs);
        }
    }
}

/// Fail when a knit process printed a panic: no input may crash it.
pub fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked at"), "knit panicked:\n{stderr}");
}

/// A condition of an object.
pub fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Run `knit` with arguments and environment: (exit code, stdout, stderr).
pub fn cli_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(knit_bin());
    cmd.args(args)
        .env_remove("KNIT_SERVER")
        .env_remove("KNIT_TOKEN")
        .env_remove("KNIT_CA_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run knit");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_no_panic(&stderr);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// Run `knit` with arguments: (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    cli_env(args, &[])
}

/// A manifest of a Broker.
pub fn broker(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{}\n",
        indent(extra_spec, 2)
    )
}

/// A manifest of a Trigger on `broker` to `uri`, with `extra` lines under `spec`.
pub fn trigger(name: &str, broker: &str, uri: &str, extra: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  broker: {broker}\n  subscriber:\n    uri: {uri}\n{}\n",
        indent(extra, 2)
    )
}

/// Indent every line of `text` by `n` spaces.
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A plain HTTP client.
pub fn http() -> reqwest::Client {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// An HTTP client trusting the PEM CA in `ca` (and the system's roots).
pub fn https(ca: &Path) -> reqwest::Client {
    let _ = http();
    let pem = std::fs::read(ca).expect("CA file");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).expect("PEM CA"))
        .build()
        .expect("client")
}

/// POST a binary-mode event: `ce-` headers from `attrs`, `body` as data.
pub async fn post_binary(
    url: &str,
    attrs: &[(&str, &str)],
    content_type: Option<&str>,
    body: &[u8],
) -> reqwest::Response {
    let mut req = http().post(url).body(body.to_vec());
    for (k, v) in attrs {
        req = req.header(format!("ce-{k}"), *v);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.expect("POST")
}

/// POST a minimal valid binary event with this `type` and `id`.
pub async fn send(url: &str, ty: &str, id: &str) -> reqwest::Response {
    post_binary(
        url,
        &[
            ("specversion", "1.0"),
            ("id", id),
            ("source", "/test"),
            ("type", ty),
        ],
        Some("application/json"),
        br#"{"n":1}"#,
    )
    .await
}

/// Path helper: a file under this repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Start knit with a Broker `b` and a Trigger `t` (extra spec lines `extra`) to `sink`; returns
/// it with the broker's address once both are Ready.
pub async fn broker_with_trigger(sink: &sink::Sink, extra: &str) -> (Knit, String) {
    broker_with_trigger_flags(sink, extra, &[]).await
}

/// Like [`broker_with_trigger`], with extra flags for `knit run`.
pub async fn broker_with_trigger_flags(
    sink: &sink::Sink,
    extra: &str,
    flags: &[&str],
) -> (Knit, String) {
    let knit = Knit::start_with(
        &[
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, extra)),
        ],
        flags,
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    (knit, url)
}
