//! A Kafka-protocol broker may show a record before the one below it can be read: nisshi
//! allocates a batch's offsets (moving the high watermark), then writes the batch, so a fetch
//! in between, with a later batch already written, skips the earlier one, and a client reading
//! that partition moves past it (Kafka's own logs never do this). A consumer taking such a hole
//! for one the log really has would lose an event the broker acknowledged (the likely cause of
//! the one accepted event that, in about one run in ten of `tests/replica_kills/`, never
//! arrived, with nothing logged; passing a hole is now a warning). Knit's consumer
//! reads a hole again before it passes it (at least 8 times, and for at least 1 s on a topic
//! only Knit writes; a hole still there is one the log has, as compaction and transaction
//! markers leave).
//!
//! Here three idempotent producers write 12,000 CloudEvents into one partition of a Kafka
//! Broker's topic at once, and the Trigger's sink must get every one, with no hole passed by.
//! How often nisshi shows a hole depends on timing: a plain client reading along saw one in
//! each of three runs; Knit's consumer met one in 2 of 14 runs (each read again, none lost).
//! The figures are printed (`--nocapture`).

#![cfg(feature = "kafka")]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use common::crash::RECOVERY;
use common::kafka::{Kafka, binary_event_headers};
use common::route::Backend;
use common::sink::Sink;
use common::{Knit, trigger};

const TOPIC: &str = "knative-broker-default-b";
const PRODUCERS: usize = 3;
const EACH: usize = 4_000;

/// Write `EACH` binary-mode CloudEvents `p<producer>-<n>` into partition 0 of the Broker's
/// topic, a few at a time, with an idempotent producer of its own.
async fn produce(bootstrap: String, producer: usize) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let mut acks = Vec::with_capacity(EACH);
    for n in 0..EACH {
        let id = format!("p{producer}-{n:05}");
        let headers = binary_event_headers(&id, "/holes", "holes.test");
        let body = format!("{{\"id\":\"{id}\"}}");
        let record = FutureRecord::<str, str>::to(TOPIC)
            .partition(0)
            .payload(&body)
            .headers(headers);
        acks.push(p.send_result(record).expect("queued"));
        if n % 4 == 3 {
            // Batches of a few records from each producer, interleaved.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for a in acks {
        a.await.expect("delivery").expect("acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_the_broker_shows_for_a_moment_loses_no_event() {
    let sink = Sink::start().await;
    let kafka = Kafka::start();
    let b = Backend::Kafka.broker("b", "");
    let t = trigger("t", "b", &sink.url, "");
    let bootstrap = kafka.bootstrap.clone();
    let mut knit = Knit::start_logging(
        &[("b.yaml", &b), ("t.yaml", &t)],
        &["--kafka", &bootstrap],
        "warn,knit_channels::kafka=debug",
    );
    knit.kafka = Some(kafka);
    knit.address("brokers", "b").await;
    knit.ready_within("triggers", "t", common::PATIENCE).await;

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(bootstrap.clone(), p)))
        .collect();
    for p in producers {
        p.await.expect("producer task");
    }
    let wanted: BTreeSet<String> = (0..PRODUCERS)
        .flat_map(|p| (0..EACH).map(move |n| format!("p{p}-{n:05}")))
        .collect();
    let deadline = Instant::now() + RECOVERY;
    let missing = loop {
        let arrived: BTreeSet<String> = sink.arrivals_since(0).into_iter().map(|a| a.0).collect();
        let missing: Vec<String> = wanted.difference(&arrived).cloned().collect();
        if missing.is_empty() || Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let logs = knit.logs();
    let reread = logs
        .lines()
        .filter(|l| l.contains("a hole in the log: reading it again"))
        .count();
    let passed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("the log has no records at offsets"))
        .collect();
    eprintln!(
        "{} events through one partition written by {PRODUCERS} producers at once: holes read again {reread}, passed {}",
        wanted.len(),
        passed.len()
    );
    assert!(
        missing.is_empty(),
        "{} of the events written never arrived (the first: {:?}); holes passed by: {passed:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(passed.is_empty(), "holes passed by: {passed:?}");
}
