//! A real Kafka-protocol broker for a test: nisshi (`memory://` storage, or `sqlite://` in a
//! directory of its own) started on a free loopback port, killed when dropped. One per test, so
//! tests never share topics or groups. On SQLite it can be killed and started again on the same
//! port and database file, as a crash of the broker.
//!
//! The binary comes from `KNIT_NISSHI`, or `~/.cache/knit/bin/nisshi` where `scripts/test`
//! builds it once.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;
pub use super::free_port;

/// Path to the nisshi binary.
pub fn nisshi_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KNIT_NISSHI") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/knit/bin/nisshi")
}

/// A running nisshi broker.
pub struct Kafka {
    child: Option<Child>,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    port: u16,
    storage: &'static str,
    /// The working directory of a `sqlite://` broker (its database file is in it).
    dir: Option<tempfile::TempDir>,
}

impl Kafka {
    /// Start a broker on a free port and wait until it accepts connections.
    pub fn start() -> Kafka {
        Self::start_on(free_port())
    }

    /// Start a broker on `port` and wait until it accepts connections.
    pub fn start_on(port: u16) -> Kafka {
        Self::with_storage(port, "memory://nisshi/", None)
    }

    /// Start a broker on a free port keeping its topics, records and groups in a SQLite
    /// database file (`--storage-engine sqlite://nisshi.db`, nisshi's `libsql` engine) in a
    /// temporary directory of its own; wait until it accepts connections.
    pub fn start_on_sqlite() -> Kafka {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::with_storage(free_port(), "sqlite://nisshi.db", Some(dir))
    }

    fn with_storage(port: u16, storage: &'static str, dir: Option<tempfile::TempDir>) -> Kafka {
        let mut k = Kafka {
            child: None,
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            storage,
            dir,
        };
        k.run();
        k
    }

    /// Start (again) on the same port and storage; wait until it accepts connections.
    pub fn run(&mut self) {
        let bin = nisshi_bin();
        assert!(
            bin.exists(),
            "nisshi not found at {} (scripts/test builds it; or set KNIT_NISSHI)",
            bin.display()
        );
        let port = self.port;
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(&bin)
            .args(["broker", "--storage-engine", self.storage])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--group-initial-rebalance-delay", "0s"])
            .args(["--group-poll-interval", "50ms"])
            .current_dir(self.dir.as_ref().map_or(Path::new("."), |d| d.path()))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nisshi");
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if std::env::var_os("KNIT_TEST_LOG").is_some() {
                        eprintln!("[nisshi] {line}");
                    }
                }
            });
        }
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nisshi did not start on {port}");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nisshi exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Kafka headers of a binary-mode CloudEvent (`ce_*`, JSON data) with these attributes.
pub fn binary_event_headers(id: &str, source: &str, ty: &str) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    [
        ("ce_specversion", "1.0"),
        ("ce_id", id),
        ("ce_source", source),
        ("ce_type", ty),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// Offsets of `topic` as Kafka has them, read with a plain rdkafka client: for each partition,
/// (the group's committed offset, or -1 when it has none; the end offset).
pub async fn offsets(bootstrap: &str, group: &str, topic: &str) -> Vec<(i64, i64)> {
    let (bootstrap, group, topic) = (bootstrap.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{ClientConfig, Offset, TopicPartitionList};
        let timeout = Duration::from_secs(10);
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let md = c.fetch_metadata(Some(&topic), timeout).expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition(&topic, p.id());
            }
        }
        let committed = c
            .committed_offsets(tpl, timeout)
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .map(|e| {
                let (_, high) = c
                    .fetch_watermarks(&topic, e.partition(), timeout)
                    .expect("watermarks");
                let at = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                };
                (at, high)
            })
            .collect()
    })
    .await
    .expect("offsets")
}

/// For a failure message: where each of `ids` (CloudEvent ids, binary mode) is in `topic`
/// (partition and offset), or that it is not there, read from the beginning with a plain
/// rdkafka client.
pub async fn find_events(bootstrap: &str, topic: &str, ids: &[String]) -> String {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    let wanted: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Headers, Message};
        use rdkafka::{ClientConfig, Offset, TopicPartitionList};
        let timeout = Duration::from_secs(10);
        let Ok(c) = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "knit-test-find-events")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create::<BaseConsumer>()
        else {
            return "cannot create a consumer".to_string();
        };
        let Ok(md) = c.fetch_metadata(Some(&topic), timeout) else {
            return "cannot read the metadata".to_string();
        };
        let mut tpl = TopicPartitionList::new();
        let mut left = 0;
        for t in md.topics() {
            for p in t.partitions() {
                let _ = tpl.add_partition_offset(&topic, p.id(), Offset::Beginning);
                if let Ok((low, high)) = c.fetch_watermarks(&topic, p.id(), timeout) {
                    left += high - low;
                }
            }
        }
        if c.assign(&tpl).is_err() {
            return "cannot assign".to_string();
        }
        let mut found = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while left > 0 && Instant::now() < deadline {
            let Some(Ok(m)) = c.poll(Duration::from_millis(500)) else {
                continue;
            };
            left -= 1;
            let id = m.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == "ce_id")
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).to_string())
            });
            if let Some(id) = id.filter(|id| wanted.contains(id)) {
                found.push(format!("{id} at {}/{}", m.partition(), m.offset()));
            }
        }
        format!(
            "in {topic}: {} of {} found ({}); {left} records not read",
            found.len(),
            wanted.len(),
            found.join(", ")
        )
    })
    .await
    .unwrap_or_else(|e| format!("the search failed: {e}"))
}
