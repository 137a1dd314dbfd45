//! Three replicas on one engine are one Broker and one KafkaSource (issue #22 §1), with real
//! processes: three `knit run` with the same manifests on one nisshi (and, for the Broker, one
//! private nats-server).
//!
//! - A Broker with filtered Triggers, events posted to each replica's own ingress: binary and
//!   structured events arrive once in the whole system with their attributes and data intact,
//!   whichever replica delivers them; an event no filter wants is delivered by none and counted
//!   as filtered once in all; a bad event is refused with 400 by each ingress; a reply event
//!   from a subscriber re-enters the Broker and is delivered once. The replicas' counters sum to
//!   exactly one fate per event and Trigger.
//! - A KafkaSource (`sources.knative.dev/v1beta1`) on a six-partition topic the test fills,
//!   half before the replicas start and half once all three run: every record is delivered,
//!   more than one replica delivers (the group is shared), none of the second half twice, and
//!   at most 1% of the backlog twice (read while the replicas join, each join a rebalance that
//!   hands a record in flight to its partition's new owner).
//!
//! The single-process conformance suites (`ingress.rs`, `broker_delivery.rs`) each start their
//! own knit, so they are not run through replicas; this file checks the items that matter when
//! the accepting and the delivering process differ.
//!
//! These tests start several knit processes: nextest runs them one at a time (test group
//! `multi-process` in .config/nextest.toml).
#![cfg(any(feature = "kafka", feature = "nats"))]

mod common;

use std::collections::BTreeMap;

use cloudevents::AttributesReader;
use common::replicas::{Engine, PATIENCE, counter, members};
use common::sink::{Reply, Sink};
use common::{Knit, eventually_for, http, post_binary, trigger};
use serde_json::json;

const REPLICAS: usize = 3;
const IDS: [&str; REPLICAS] = ["r0", "r1", "r2"];

/// The sinks of the conformance Broker: `events` behind Trigger `t` (type `conf.event`),
/// `asked` behind `ask` (type `conf.ask`; it answers with a `conf.answer` event), `answers`
/// behind `answers` (type `conf.answer`).
struct Sinks {
    events: Sink,
    asked: Sink,
    answers: Sink,
}

impl Sinks {
    async fn start() -> Sinks {
        let asked = Sink::start().await;
        asked.respond_with(|r| {
            Reply::event_with(
                "conf.answer",
                &format!("answer-{}", r.id()),
                &json!({"to": r.id()}),
            )
        });
        Sinks {
            events: Sink::start().await,
            asked,
            answers: Sink::start().await,
        }
    }

    fn manifests(&self, engine: &Engine) -> Vec<(&'static str, String)> {
        let filter = |ty: &str| format!("filter: {{attributes: {{type: {ty}}}}}");
        vec![
            ("b.yaml", engine.backend().broker("b", "")),
            (
                "t.yaml",
                trigger("t", "b", &self.events.url, &filter("conf.event")),
            ),
            (
                "ask.yaml",
                trigger("ask", "b", &self.asked.url, &filter("conf.ask")),
            ),
            (
                "answers.yaml",
                trigger("answers", "b", &self.answers.url, &filter("conf.answer")),
            ),
        ]
    }
}

/// How many times each id arrived at `sink`.
fn counts(sink: &Sink) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for r in sink.received() {
        *n.entry(r.id()).or_default() += 1;
    }
    n
}

/// Events posted to replica `i`'s ingress at `url`: binary, structured, one no Trigger wants,
/// one asking for a reply; two bad ones refused with 400.
async fn post_through(i: usize, url: &str) {
    let (bin, src, subject, ext) = (
        format!("bin-{i}"),
        format!("/replica/{i}"),
        format!("subject-{i}"),
        format!("v{i}"),
    );
    let body = format!(r#"{{"through": {i}}}"#);
    let attrs = [
        ("specversion", "1.0"),
        ("id", bin.as_str()),
        ("source", src.as_str()),
        ("type", "conf.event"),
        ("subject", subject.as_str()),
        ("myext", ext.as_str()),
    ];
    let r = post_binary(url, &attrs, Some("application/json"), body.as_bytes()).await;
    assert_eq!(r.status(), 202, "binary event through r{i}");

    let structured = json!({
        "specversion": "1.0", "id": format!("str-{i}"), "source": &src, "type": "conf.event",
        "subject": &subject, "myext": &ext, "datacontenttype": "application/json",
        "data": {"through": i, "mode": "structured"},
    });
    let r = http()
        .post(url)
        .header("content-type", "application/cloudevents+json")
        .body(structured.to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202, "structured event through r{i}");

    for (id, ty) in [
        (format!("other-{i}"), "conf.other"),
        (format!("ask-{i}"), "conf.ask"),
    ] {
        let attrs = [
            ("specversion", "1.0"),
            ("id", id.as_str()),
            ("source", src.as_str()),
            ("type", ty),
        ];
        let r = post_binary(url, &attrs, Some("application/json"), b"{}").await;
        assert_eq!(r.status(), 202, "{id} through r{i}");
    }

    let no_source = [
        ("specversion", "1.0"),
        ("id", "bad-binary"),
        ("type", "conf.event"),
    ];
    let r = post_binary(url, &no_source, Some("application/json"), b"{}").await;
    assert_eq!(r.status(), 400, "an event without source through r{i}");
    let r = http()
        .post(url)
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","id":"bad-structured","type":"conf.event"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        r.status(),
        400,
        "a structured event without source through r{i}"
    );
}

/// The deliveries of replica `i`'s binary and structured events carry what was posted.
fn attributes_intact(events: &Sink, i: usize) {
    let got = events.received();
    let find = |id: &str| {
        got.iter()
            .find(|r| r.id() == id)
            .unwrap_or_else(|| panic!("{id} delivered"))
    };
    for id in [format!("bin-{i}"), format!("str-{i}")] {
        let r = find(&id);
        let ev = r.event.as_ref().expect("a CloudEvent");
        assert_eq!(
            (ev.source().as_str(), ev.ty(), ev.subject()),
            (
                format!("/replica/{i}").as_str(),
                "conf.event",
                Some(format!("subject-{i}").as_str())
            ),
            "{id}"
        );
        assert_eq!(r.ext("myext"), Some(format!("v{i}")), "{id}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json"),
            "{id}"
        );
        assert!(
            r.ext("knativebrokerttl").is_none(),
            "{id}: hop counter left in"
        );
        let data: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON data");
        let want = if id.starts_with("bin") {
            json!({"through": i})
        } else {
            json!({"through": i, "mode": "structured"})
        };
        assert_eq!(data, want, "{id}");
    }
}

/// Three replicas of a Broker on `engine`: everything posted to any replica's ingress is
/// delivered once by the system, attributes intact; filtered events by none; replies re-enter.
async fn a_broker_through_each_replica(engine: Engine) {
    let sinks = Sinks::start().await;
    let manifests = sinks.manifests(&engine);
    let files: Vec<(&str, &str)> = manifests.iter().map(|(f, y)| (*f, y.as_str())).collect();
    let replicas = engine.replicas(REPLICAS, &files);
    let live: Vec<&Knit> = replicas.iter().collect();
    members(&live, &IDS).await;
    let mut urls = Vec::new();
    for k in &replicas {
        for t in ["t", "ask", "answers"] {
            k.ready_within("triggers", t, PATIENCE).await;
        }
        let o = k.ready_within("brokers", "b", PATIENCE).await;
        let url = o["status"]["address"]["url"].as_str().expect("address");
        assert!(url.starts_with(&k.ingress), "{url} is r's own ingress");
        urls.push(url.to_string());
    }
    for (i, url) in urls.iter().enumerate() {
        post_through(i, url).await;
    }

    let want_events: Vec<String> = (0..REPLICAS)
        .flat_map(|i| [format!("bin-{i}"), format!("str-{i}")])
        .collect();
    let want_asked: Vec<String> = (0..REPLICAS).map(|i| format!("ask-{i}")).collect();
    let want_answers: Vec<String> = want_asked.iter().map(|a| format!("answer-{a}")).collect();
    let every = |sink: &Sink, ids: &[String]| {
        let n = counts(sink);
        ids.iter().all(|id| n.contains_key(id))
    };
    eventually_for("every event at its sink", PATIENCE, || async {
        (every(&sinks.events, &want_events)
            && every(&sinks.asked, &want_asked)
            && every(&sinks.answers, &want_answers))
        .then_some(())
    })
    .await;

    // Each event's fate is counted once by the replica that read it: once all are counted
    // (6 delivered by `t`, which filtered the other 9 events: 3 others, 3 asks, 3 answers),
    // a second delivery anywhere would have shown.
    let sums = eventually_for("the replicas' counters to add up", PATIENCE, || async {
        let mut sums = BTreeMap::new();
        for (t, delivered, filtered) in [("t", 6, 9), ("ask", 3, 12), ("answers", 3, 12)] {
            let key = format!("Trigger/default/{t}");
            let d = counter(&live, &key, "delivered").await;
            let f = counter(&live, &key, "filtered").await;
            if d.iter().sum::<u64>() < delivered || f.iter().sum::<u64>() < filtered {
                return None;
            }
            sums.insert(t, (d, f));
        }
        Some(sums)
    })
    .await;
    eprintln!(
        "{}: per Trigger, (delivered, filtered) by r0, r1, r2: {sums:?}",
        engine.name()
    );
    for (t, (d, f), delivered, filtered) in [
        ("t", &sums["t"], 6, 9),
        ("ask", &sums["ask"], 3, 12),
        ("answers", &sums["answers"], 3, 12),
    ] {
        assert_eq!(
            (d.iter().sum::<u64>(), f.iter().sum::<u64>()),
            (delivered, filtered),
            "Trigger {t}: each event's fate counted once in all (delivered, filtered)"
        );
    }
    for (sink, ids) in [
        (&sinks.events, &want_events),
        (&sinks.asked, &want_asked),
        (&sinks.answers, &want_answers),
    ] {
        let n = counts(sink);
        let want: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
        assert_eq!(n, want, "each event once, nothing else (at {})", sink.url);
    }
    for i in 0..REPLICAS {
        attributes_intact(&sinks.events, i);
    }
    for r in sinks.answers.received() {
        let ev = r.event.as_ref().expect("a CloudEvent");
        assert_eq!((ev.ty(), ev.source().as_str()), ("conf.answer", "/reply"));
    }
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_kafka_are_one_broker_through_each_ingress() {
    a_broker_through_each_replica(Engine::kafka()).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_nats_are_one_broker_through_each_ingress() {
    a_broker_through_each_replica(Engine::nats()).await;
}

#[cfg(feature = "kafka")]
mod kafka_source {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    use super::*;

    const TOPIC: &str = "orders";
    const PARTITIONS: i32 = 6;
    /// Records written before the replicas start, and as many once all three run.
    const HALF: usize = 1_500;

    /// Create the topic with [`PARTITIONS`] partitions.
    async fn create_topic(bootstrap: &str) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("an admin client");
        let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &opts)
            .await
            .expect("create topics");
        for r in results {
            r.expect("topic created");
        }
    }

    /// Write records `from..to` as binary-mode CloudEvents (id `rec-N`), keyed so that they
    /// spread over the partitions; every write acknowledged.
    async fn produce(bootstrap: &str, from: usize, to: usize) {
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .create()
            .expect("a producer");
        let ids: Vec<(String, String)> = (from..to)
            .map(|n| (format!("rec-{n:05}"), format!("key-{n}")))
            .collect();
        let sends = ids.iter().map(|(id, key)| {
            let headers = common::kafka::binary_event_headers(id, "/producer", "order.placed");
            let record = FutureRecord::to(TOPIC)
                .key(key.as_str())
                .payload(id.as_str())
                .headers(headers);
            p.send(record, Duration::from_secs(30))
        });
        for r in futures::future::join_all(sends).await {
            r.unwrap_or_else(|(e, _)| panic!("a record not written: {e}"));
        }
    }

    fn manifest(bootstrap: &str, sink: &Sink) -> String {
        format!(
            "apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata: {{name: src, namespace: default}}
spec:
  bootstrapServers: ['{bootstrap}']
  topics: [{TOPIC}]
  consumerGroup: orders-readers
  initialOffset: earliest
  sink: {{uri: '{}'}}
",
            sink.url
        )
    }

    /// A KafkaSource run by three replicas reads each record once: the group is shared.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_replicas_read_a_kafka_source_once() {
        let engine = Engine::kafka();
        let Engine::Kafka(kafka) = &engine else {
            unreachable!("a Kafka engine")
        };
        let bootstrap = kafka.bootstrap.clone();
        let sink = Sink::start().await;
        create_topic(&bootstrap).await;
        produce(&bootstrap, 0, HALF).await;
        let source = manifest(&bootstrap, &sink);
        let replicas = engine.replicas(REPLICAS, &[("src.yaml", source.as_str())]);
        let live: Vec<&Knit> = replicas.iter().collect();
        members(&live, &IDS).await;
        for k in &replicas {
            k.ready_within("kafkasources", "src", PATIENCE).await;
        }
        // The backlog first: read while the replicas join the group one by one.
        let record = |n: usize| format!("rec-{n:05}");
        let backlog: BTreeSet<String> = (0..HALF).map(record).collect();
        eventually_for("the backlog at the sink", PATIENCE, || async {
            let n = counts(&sink);
            backlog.iter().all(|id| n.contains_key(id)).then_some(())
        })
        .await;
        produce(&bootstrap, HALF, 2 * HALF).await;

        let want: BTreeSet<String> = (0..2 * HALF).map(record).collect();
        eventually_for("every record at the sink", PATIENCE, || async {
            let n = counts(&sink);
            want.iter().all(|id| n.contains_key(id)).then_some(())
        })
        .await;
        let key = "KafkaSource/default/src";
        let each = eventually_for("the replicas to count every delivery", PATIENCE, || async {
            let each = counter(&live, key, "delivered").await;
            (each.iter().sum::<u64>() >= want.len() as u64).then_some(each)
        })
        .await;
        let n = counts(&sink);
        let twice: Vec<(&String, &usize)> = n.iter().filter(|(_, c)| **c > 1).collect();
        let dups = |of: &dyn Fn(&str) -> bool| -> usize {
            twice
                .iter()
                .filter(|(id, _)| of(id))
                .map(|(_, c)| **c - 1)
                .sum()
        };
        let in_backlog = dups(&|id: &str| backlog.contains(id));
        let after = dups(&|id: &str| !backlog.contains(id));
        let foreign: Vec<&String> = n.keys().filter(|id| !want.contains(*id)).collect();
        eprintln!(
            "KafkaSource, {} records, {REPLICAS} replicas: delivered by r0, r1, r2: {each:?}; \
             {in_backlog} duplicates in the backlog read while the group formed, {after} after \
             {twice:?}",
            want.len()
        );
        assert!(foreign.is_empty(), "unknown events delivered: {foreign:?}");
        // While the replicas join, each join revokes partitions: a record in flight on the
        // replica losing its partition is read again by the new owner (the revoked trackers
        // are dropped, kafka/consumer.rs), so the backlog may see a few doubles.
        assert!(
            in_backlog <= HALF / 100,
            "more than 1% of the backlog twice: {twice:?}"
        );
        assert_eq!(
            after, 0,
            "records delivered twice once the group formed: {twice:?}"
        );
        assert_eq!(
            each.iter().sum::<u64>(),
            (want.len() + in_backlog) as u64,
            "each delivery counted once"
        );
        assert!(
            each.iter().filter(|d| **d > 0).count() > 1,
            "one replica delivered everything: {each:?}"
        );
    }
}
