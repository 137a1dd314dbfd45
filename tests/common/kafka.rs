//! A real Kafka-protocol broker for a test: nisshi (`memory://` storage) started on a free
//! loopback port, killed when dropped. One per test, so tests never share topics or groups.
//!
//! The binary comes from `KNIT_NISSHI`, or `~/.cache/knit/bin/nisshi` where `scripts/test`
//! builds it once.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
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
    child: Child,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    port: u16,
}

impl Kafka {
    /// Start a broker on a free port and wait until it accepts connections.
    pub fn start() -> Kafka {
        Self::start_on(free_port())
    }

    /// Start a broker on `port` and wait until it accepts connections.
    pub fn start_on(port: u16) -> Kafka {
        let bin = nisshi_bin();
        assert!(
            bin.exists(),
            "nisshi not found at {} (scripts/test builds it; or set KNIT_NISSHI)",
            bin.display()
        );
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(&bin)
            .args(["broker", "--storage-engine", "memory://nisshi/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--group-initial-rebalance-delay", "0s"])
            .args(["--group-poll-interval", "50ms"])
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
        Kafka {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            port,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
