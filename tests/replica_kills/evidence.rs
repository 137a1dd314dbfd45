//! What a failure message says to explain a loss.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::TRIGGER;
use crate::arrivals::{Arrivals, since};
use crate::common::Knit;
use crate::common::replicas::{Engine, counter};

/// What a failure message needs to explain a loss: where each event was accepted, what
/// arrived, and the engine the replicas run on.
pub(crate) struct Evidence<'a> {
    pub(crate) arrivals: &'a Arrivals<'a>,
    /// [`Stream::via`]: which ingress accepted each event, and when.
    pub(crate) via: Arc<parking_lot::Mutex<HashMap<String, (String, Instant)>>>,
    pub(crate) engine: &'a Engine,
    pub(crate) began: Instant,
}

impl Evidence<'_> {
    /// Fail when `missing` (what [`until_none_missing`] left of `wanted`) is not 0, saying
    /// which of `wanted` never arrived — `what` names them — and what explains it: where each
    /// was accepted, each replica's other fates and warnings and, on Kafka, whether they are in
    /// the Broker's topic.
    pub(crate) async fn none_missing(
        &self,
        missing: usize,
        what: &str,
        wanted: &BTreeSet<String>,
        replicas: &[Knit],
    ) {
        if missing == 0 {
            return;
        }
        let fates = fates(replicas).await;
        let log = in_the_log(self.engine, self.arrivals.missing_ids(wanted)).await;
        assert_eq!(
            missing,
            0,
            "{what} that never arrived: {}\n{fates}\n{log}",
            self.describe_missing(wanted)
        );
    }

    /// The first ten of `wanted` that have not arrived: which ingress accepted each, and when
    /// (since `began`).
    pub(crate) fn describe_missing(&self, wanted: &BTreeSet<String>) -> String {
        let s = self.arrivals.now();
        let via = self.via.lock();
        wanted
            .iter()
            .filter(|id| !s.first.contains_key(*id))
            .take(10)
            .map(|id| match via.get(id) {
                Some((url, at)) => {
                    format!("{id} (accepted by {url} at {})", since(self.began, *at))
                }
                None => id.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// For a failure message on Kafka: where the first missing events are in the Broker's topic
/// (not there: the broker lost what it acknowledged; there: a consumer passed them by), and the
/// Trigger's committed and end offsets.
pub(crate) async fn in_the_log(engine: &Engine, missing: Vec<String>) -> String {
    #[cfg(feature = "kafka")]
    if let Engine::Kafka(k) = engine {
        const TOPIC: &str = "knative-broker-default-b";
        let found = crate::common::kafka::find_events(&k.bootstrap, TOPIC, &missing).await;
        let offsets =
            crate::common::kafka::offsets(&k.bootstrap, "knative-trigger-default-t", TOPIC).await;
        return format!("{found}\ncommitted and end offsets: {offsets:?}");
    }
    let _ = (engine, missing);
    String::new()
}

/// For a failure message: each replica's counts of the Trigger's deliveries that ended
/// otherwise than delivered, the warnings it logged and what its consumer did with its
/// partitions (the processes a kill replaced included).
pub(crate) async fn fates(replicas: &[Knit]) -> String {
    let live: Vec<&Knit> = replicas.iter().collect();
    let mut out = String::new();
    for name in ["dropped", "deadLettered", "retries", "shed"] {
        out.push_str(&format!(
            "{name} {:?}; ",
            counter(&live, TRIGGER, name).await
        ));
    }
    for (i, k) in replicas.iter().enumerate() {
        let logs = k.all_logs();
        let warnings: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        out.push_str(&format!("\nr{i} logged {} warnings", warnings.len()));
        for w in warnings.iter().rev().take(10) {
            out.push_str(&format!("\n  {w}"));
        }
        let story: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(" INFO ") || l.contains(" DEBUG ") || l.starts_with("--"))
            .collect();
        out.push_str(&format!(
            "\nr{i}'s partitions, last 40 of {} lines:",
            story.len()
        ));
        for l in &story[story.len().saturating_sub(40)..] {
            out.push_str(&format!("\n  {l}"));
        }
    }
    out
}
