//! Crash tests of the Kafka backend with real processes: a real Kafka-protocol broker (nisshi),
//! the `knit` binary killed with SIGKILL mid-stream and restarted, and plain HTTP sinks. What
//! must hold (kafka-nats.md §5.5): every event that got a 202 arrives at least once; a poison
//! event reaches the dead-letter sink after exactly the configured attempts, even when knit
//! dies during its backoff; a dead-letter sink that is down holds the group's position;
//! ordered triggers keep each key's first deliveries in order across kills; and the broker
//! itself (nisshi on SQLite storage) killed mid-stream and restarted loses nothing that got a
//! 202.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::crash::{
    dead_letter_sink_down, dead_lettered_after, kill_9_three_times, log_server_killed_mid_stream,
    post_until_accepted, the_dead_letter_sink_back_after_a_kill, within_recovery,
};
use common::kafka::{Kafka, offsets};
use common::route::{Backend, Via};
use common::sink::{Reply, Sink};
use common::{Knit, http, indent, trigger};

fn kafka_broker_and_trigger(sink: &str, trigger_extra: &str, annotations: &str) -> Knit {
    let b = Backend::Kafka;
    let mut t = trigger("t", "b", sink, trigger_extra);
    if !annotations.is_empty() {
        t = t.replacen(
            "metadata:\n",
            &format!("metadata:\n  annotations:\n{}\n", indent(annotations, 4)),
            1,
        );
    }
    b.start(&[("b.yaml", &b.broker("b", "")), ("t.yaml", &t)], &[])
}

/// 20,000 numbered events through a Kafka broker to a trigger while knit is killed (SIGKILL)
/// and restarted three times: nothing that got a 202 is lost, and each kill replays at most
/// 1% of the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_while_20000_events_flow_loses_nothing() {
    kill_9_three_times(Via::Trigger(Backend::Kafka), "").await;
}

/// A poison event (its subscriber always answers 500) with `retry: 3` reaches the dead-letter
/// sink after exactly 4 attempts although knit is killed during the backoff before the third:
/// the attempt count travels with the event on the group's retry topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_reaches_the_dead_letter_sink_after_exactly_the_configured_attempts() {
    let subscriber = Sink::start().await;
    subscriber.default_reply(Reply::status(500));
    let dls = Sink::start().await;
    let mut knit = kafka_broker_and_trigger(
        &subscriber.url,
        &format!(
            "delivery: {{retry: 3, backoffPolicy: linear, backoffDelay: PT2S, deadLetterSink: {{uri: '{}'}}}}",
            dls.url
        ),
        "",
    );
    let url = knit.address("brokers", "b").await;
    let t = knit.ready("triggers", "t").await;
    let group = t["status"]["annotations"]["group.id"]
        .as_str()
        .expect("group.id in the trigger's status")
        .to_string();
    assert_eq!(group, "knative-trigger-default-t");
    post_until_accepted(&http(), &url, "poison", None).await;
    // Attempt 2 failed and was stored for attempt 3 (4 s later): the retry topic holds it, and
    // the record it came from is committed.
    let bootstrap = knit.kafka.as_ref().expect("kafka").bootstrap.clone();
    let retry_topic = format!("{group}.retry");
    within_recovery(
        "attempt 2 stored on the retry topic and committed past",
        || async {
            if subscriber.received().len() < 2 {
                return None;
            }
            let o = offsets(&bootstrap, &group, &retry_topic).await;
            let stored: i64 = o.iter().map(|(_, end)| end).sum();
            let committed: i64 = o.iter().map(|(c, _)| (*c).max(0)).sum();
            // Two retry records written (after attempts 1 and 2), the first one finished.
            (stored == 2 && committed == 1).then_some(())
        },
    )
    .await;
    assert_eq!(subscriber.received().len(), 2);
    knit.kill_and_restart();
    dead_lettered_after(&dls, &subscriber, 4).await;
}

/// A dead-letter sink that is down holds the group's position: nothing is committed past the
/// event (even across a kill), and once the sink is back the event arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_sink_that_is_down_holds_the_position() {
    let (mut knit, _subscriber, dls) =
        dead_letter_sink_down(Via::Trigger(Backend::Kafka), "").await;
    let bootstrap = knit.kafka.as_ref().expect("kafka").bootstrap.clone();
    let retry_topic = "knative-trigger-default-t.retry";
    let o = offsets(&bootstrap, "knative-trigger-default-t", retry_topic).await;
    let behind: i64 = o.iter().map(|(c, end)| end - (*c).max(0)).sum();
    assert_eq!(behind, 1, "the held record is not committed: {o:?}");
    the_dead_letter_sink_back_after_a_kill(&mut knit, &dls).await;
    within_recovery("the position to move past it", || async {
        let o = offsets(&bootstrap, "knative-trigger-default-t", retry_topic).await;
        o.iter().all(|(c, end)| c == end).then_some(())
    })
    .await;
}

/// `ordered` and `ordered-by-key` triggers under kills: for every key, the first delivery of
/// each event comes in the order the events were accepted.
async fn ordering_survives_kills(order: &str) {
    const KEYS: usize = 8;
    const PER_KEY: usize = 150;
    let sink = Sink::start().await;
    let mut knit = kafka_broker_and_trigger(
        &sink.url,
        "",
        &format!("kafka.eventing.knative.dev/delivery.order: {order}"),
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    let mut senders = Vec::new();
    for k in 0..KEYS {
        let url = url.clone();
        senders.push(tokio::spawn(async move {
            let client = http();
            for n in 0..PER_KEY {
                let key = format!("k{k}");
                post_until_accepted(&client, &url, &format!("{key}-{n:04}"), Some(&key)).await;
            }
        }));
    }
    for k in 1..=2 {
        let at = KEYS * PER_KEY * k / 3;
        within_recovery(&format!("{at} deliveries before kill {k}"), || async {
            (sink.received().len() >= at).then_some(())
        })
        .await;
        knit.kill_and_restart();
    }
    for s in senders {
        s.await.expect("sender");
    }
    within_recovery("every event", || async {
        let got: BTreeSet<String> = sink.received().iter().map(|r| r.id()).collect();
        (got.len() == KEYS * PER_KEY).then_some(())
    })
    .await;
    let mut firsts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for r in sink.received() {
        let id = r.id();
        if seen.insert(id.clone()) {
            let (key, n) = id.split_once('-').expect("key-n");
            firsts
                .entry(key.to_string())
                .or_default()
                .push(n.parse().expect("n"));
        }
    }
    for (key, ns) in firsts {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "{order}: key {key} first deliveries out of order: {ns:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_keeps_each_keys_first_deliveries_in_order_across_kills() {
    ordering_survives_kills("ordered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_by_key_keeps_each_keys_first_deliveries_in_order_across_kills() {
    ordering_survives_kills("ordered-by-key").await;
}

/// The Kafka broker itself killed (-9) mid-stream and restarted on its storage: nisshi keeps
/// no state in the process, and on `--storage-engine sqlite://` (its `libsql` engine, in the
/// default features `scripts/nisshi` builds; `memory://` dies with the process) the restarted
/// broker finds the topic, the records and the group's offsets in the database file. As for the
/// NATS server: knit reconnects by itself, every 202 is delivered, and what was answered while
/// the broker was down got 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_broker_killed_mid_stream_on_sqlite_loses_nothing_that_was_accepted() {
    let kafka = Kafka::start_on_sqlite();
    let sink = Sink::start().await;
    let b = Backend::Kafka;
    let mut knit = Knit::start_with(
        &[
            ("b.yaml", &b.broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &["--kafka", &kafka.bootstrap],
    );
    knit.kafka = Some(kafka);
    let url = Via::Trigger(b).ready(&knit).await;
    log_server_killed_mid_stream(
        "Kafka broker (nisshi, SQLite storage)",
        &mut knit,
        &url,
        &sink,
        |k: &mut Knit| k.kafka.as_mut().expect("Kafka").kill(),
        |k: &mut Knit| k.kafka.as_mut().expect("Kafka").run(),
    )
    .await;
}
