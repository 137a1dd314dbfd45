//! A real NATS server for a test: `nats-server -js` (from the PATH) on a free loopback port,
//! with a storage directory of its own and its monitoring endpoint on another free port, killed
//! (SIGKILL) when dropped. One per test, so tests never share streams or consumers; it can be
//! killed and started again on the same port and storage, as a crash of the server.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{PATIENCE, free_port, http};

/// A private nats-server with JetStream (file storage in a temp dir).
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    monitor: u16,
    /// Its client URL, `nats://127.0.0.1:<port>`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Start a server on free ports and wait until it accepts connections. A free port may be
    /// taken by another test's process before the server binds it: the server then exits at
    /// once, and it is started again on other ports.
    pub fn start() -> NatsServer {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut s = NatsServer {
                child: None,
                port,
                monitor: free_port(),
                url: format!("nats://127.0.0.1:{port}"),
                dir: tempfile::tempdir().expect("temp dir"),
            };
            match s.try_run() {
                Ok(()) => return s,
                Err(why) => last = why,
            }
        }
        panic!("nats-server did not start on five pairs of free ports: {last}");
    }

    /// Start (again) on the same ports and storage directory; wait until it accepts
    /// connections.
    pub fn run(&mut self) {
        if let Err(why) = self.try_run() {
            panic!("{why}");
        }
    }

    fn try_run(&mut self) -> Result<(), String> {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string(), "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (with JetStream) on the PATH");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!("nats-server exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// JetStream's account of a stream from the monitoring endpoint (`/jsz`): its `state`
    /// (`messages`, `first_seq`, `last_seq`, ...) and `consumer_detail` (each consumer's
    /// `num_ack_pending`, `num_pending`, `num_redelivered`, ...); `None` when it has no such
    /// stream (yet).
    pub async fn stream(&self, name: &str) -> Option<Value> {
        let url = format!(
            "http://127.0.0.1:{}/jsz?streams=true&consumers=true",
            self.monitor
        );
        let jsz: Value = http().get(url).send().await.ok()?.json().await.ok()?;
        jsz["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
            .find(|s| s["name"] == name)
            .cloned()
    }

    /// The `consumer_detail` entry of `consumer` on stream `stream`, if both exist.
    pub async fn consumer(&self, stream: &str, consumer: &str) -> Option<Value> {
        let s = self.stream(stream).await?;
        s["consumer_detail"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == consumer)
            .cloned()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
