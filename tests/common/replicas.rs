//! Several `knit run` processes on one engine (issue #22): the engine they share (a nisshi or
//! a nats-server started for the test), replicas `r0`, `r1`, ... started on it with the same
//! manifests, waiting until they list each other, and the sum of their `/api/v1/stats`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::route::Backend;
use super::{Knit, eventually_for};

/// How long a step with several processes may take on a busy 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The engine the replicas share, stopped when dropped.
pub enum Engine {
    /// A nisshi broker (`--kafka`).
    #[cfg(feature = "kafka")]
    Kafka(super::kafka::Kafka),
    /// A nats-server with JetStream (`--nats`).
    #[cfg(feature = "nats")]
    Nats(super::nats::NatsServer),
}

impl Engine {
    /// A nisshi broker for this test.
    #[cfg(feature = "kafka")]
    pub fn kafka() -> Engine {
        Engine::Kafka(super::kafka::Kafka::start())
    }

    /// A nats-server for this test.
    #[cfg(feature = "nats")]
    pub fn nats() -> Engine {
        Engine::Nats(super::nats::NatsServer::start())
    }

    /// Its name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "kafka")]
            Engine::Kafka(_) => "kafka",
            #[cfg(feature = "nats")]
            Engine::Nats(_) => "nats",
        }
    }

    /// The backend of its Brokers and channels.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "kafka")]
            Engine::Kafka(_) => Backend::Kafka,
            #[cfg(feature = "nats")]
            Engine::Nats(_) => Backend::Nats,
        }
    }

    /// The `knit run` flags that point at it.
    pub fn flags(&self) -> [&str; 2] {
        match self {
            #[cfg(feature = "kafka")]
            Engine::Kafka(k) => ["--kafka", k.bootstrap.as_str()],
            #[cfg(feature = "nats")]
            Engine::Nats(n) => ["--nats", n.url.as_str()],
        }
    }

    /// Replica `id` on this engine with `files`.
    pub fn replica(&self, id: &str, files: &[(&str, &str)]) -> Knit {
        let mut flags = self.flags().to_vec();
        flags.extend(["--replica-id", id]);
        Knit::start_with(files, &flags)
    }

    /// Like [`Engine::replicas`], logging with `RUST_LOG=filter`.
    pub fn replicas_logging(&self, n: usize, files: &[(&str, &str)], filter: &str) -> Vec<Knit> {
        (0..n)
            .map(|i| {
                let id = format!("r{i}");
                let mut flags = self.flags().to_vec();
                flags.extend(["--replica-id", id.as_str()]);
                Knit::start_logging(files, &flags, filter)
            })
            .collect()
    }

    /// Replicas `r0`..`r{n-1}` on this engine, each with `files`.
    pub fn replicas(&self, n: usize, files: &[(&str, &str)]) -> Vec<Knit> {
        (0..n)
            .map(|i| self.replica(&format!("r{i}"), files))
            .collect()
    }
}

/// Wait until each of `live` lists exactly `ids` as members.
pub async fn members(live: &[&Knit], ids: &[&str]) {
    let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    for k in live {
        eventually_for(&format!("the members {want:?}"), PATIENCE, || async {
            let v = k.api("/api/v1/cluster").await;
            let have: BTreeSet<String> = v["members"]
                .as_array()?
                .iter()
                .filter_map(|m| m["id"].as_str().map(String::from))
                .collect();
            (have == want).then_some(())
        })
        .await;
    }
}

/// One counter (`delivered`, `filtered`, ...) of egress `key` (`Kind/ns/name`) on each of
/// `live`.
pub async fn counter(live: &[&Knit], key: &str, name: &str) -> Vec<u64> {
    let mut each = Vec::new();
    for k in live {
        let stats: Value = k.api("/api/v1/stats").await;
        each.push(stats["egresses"][key][name].as_u64().unwrap_or(0));
    }
    each
}
