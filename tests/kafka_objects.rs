//! Kafka objects as users meet them, with a real Kafka-protocol broker (nisshi): what status
//! says while Kafka cannot be reached or a topic is missing, consumer groups named and deleted
//! as Knative does, and a KafkaSink feeding a topic that a KafkaSource delivers to a sink
//! (including a record that is not a CloudEvent).

mod common;

use std::time::Duration;

use common::kafka::{Kafka, free_port, offsets};
use common::route::Backend;
use common::sink::Sink;
use common::{Knit, condition, eventually, http, send, trigger};

/// A Kafka Broker whose cluster cannot be reached is Ready=False with the reason, its ingress
/// answers 503 with Retry-After; once the cluster is there, it turns Ready and delivers.
#[tokio::test]
async fn an_unreachable_cluster_shows_in_status_until_it_is_there() {
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let sink = Sink::start().await;
    let b = Backend::Kafka;
    let knit = Knit::start_with(
        &[
            ("b.yaml", &b.broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &["--kafka", &bootstrap],
    );
    let broker = eventually("TopicReady=False with the reason", || async {
        let o = knit.object("brokers", "b").await?;
        let c = condition(&o, "TopicReady")?;
        (c["status"] == "False").then_some(o)
    })
    .await;
    let c = condition(&broker, "TopicReady").expect("condition");
    assert_eq!(c["reason"], "TopicNotReady");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&bootstrap),
        "{c}"
    );
    assert_eq!(
        condition(&broker, "Ready").expect("ready")["status"],
        "False"
    );
    let url = format!("{}/default/b", knit.ingress);
    let r = send(&url, "t", "early").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");

    // The cluster comes up on that address: the topic is created, the trigger positioned.
    let _kafka = Kafka::start_on(port);
    knit.ready("brokers", "b").await;
    let t = knit.ready("triggers", "t").await;
    assert_eq!(
        t["status"]["annotations"]["group.id"],
        "knative-trigger-default-t"
    );
    assert_eq!(send(&url, "t", "later").await.status(), 202);
    assert_eq!(sink.wait_for(1).await[0].id(), "later");
}

/// A Broker bound to an external topic that does not exist says so, and never creates it.
#[tokio::test]
async fn a_missing_external_topic_shows_in_status() {
    let b = Backend::Kafka;
    let broker = b.broker("b", "").replacen(
        "annotations:\n",
        "annotations:\n    kafka.eventing.knative.dev/external.topic: not-there\n",
        1,
    );
    let knit = b.start(&[("b.yaml", &broker)], &[]);
    let o = eventually("TopicReady=False", || async {
        let o = knit.object("brokers", "b").await?;
        (condition(&o, "TopicReady")?["status"] == "False").then_some(o)
    })
    .await;
    let c = condition(&o, "TopicReady").expect("condition");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not-there"),
        "{c}"
    );
}

/// Deleting a Trigger deletes its consumer group (a Trigger recreated under the same name does
/// not silently resume from old offsets).
#[tokio::test]
async fn deleting_a_trigger_deletes_its_group() {
    let sink = Sink::start().await;
    let b = Backend::Kafka;
    let knit = b.start(
        &[
            ("b.yaml", &b.broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    assert_eq!(send(&url, "t", "one").await.status(), 202);
    sink.wait_for(1).await;
    let bootstrap = knit.kafka.as_ref().expect("kafka").bootstrap.clone();
    let (group, topic) = ("knative-trigger-default-t", "knative-broker-default-b");
    eventually("the group's offsets to be committed", || async {
        let o = offsets(&bootstrap, group, topic).await;
        o.iter().any(|(c, _)| *c > 0).then_some(())
    })
    .await;
    knit.remove("t.yaml");
    eventually("the group to be gone", || async {
        let o = offsets(&bootstrap, group, topic).await;
        o.iter().all(|(c, _)| *c < 0).then_some(())
    })
    .await;
}

/// KafkaSink → topic → KafkaSource → sink: events posted to the sink's address come out of the
/// source unchanged; a record written straight to the topic that is not a CloudEvent arrives as
/// Knative's `dev.knative.kafka.event`.
#[tokio::test]
async fn a_kafka_sink_feeds_a_kafka_source() {
    let kafka = Kafka::start();
    let bootstrap = kafka.bootstrap.clone();
    let sink = Sink::start().await;
    let manifests = format!(
        "apiVersion: eventing.knative.dev/v1alpha1
kind: KafkaSink
metadata: {{name: orders, namespace: default}}
spec:
  topic: orders
  numPartitions: 1
  bootstrapServers: ['{bootstrap}']
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {{name: src, namespace: default}}
spec:
  bootstrapServers: ['{bootstrap}']
  topics: [orders]
  consumerGroup: orders-reader
  sink: {{uri: '{}'}}
",
        sink.url
    );
    let mut knit = Knit::start_with(&[("k.yaml", &manifests)], &[]);
    knit.kafka = Some(kafka);
    let url = knit.address("kafkasinks", "orders").await;
    assert!(url.ends_with("/sinks/default/orders"), "{url}");
    let src = knit.ready("kafkasources", "src").await;
    assert_eq!(src["status"]["sinkUri"], sink.url);
    assert_eq!(
        condition(&src, "InitialOffsetsCommitted").expect("c")["status"],
        "True"
    );
    let r = http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "o1")
        .header("ce-source", "/shop")
        .header("ce-type", "order.placed")
        .header("ce-partitionkey", "customer-7")
        .header("content-type", "application/json")
        .body(r#"{"total": 12.5}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].id(), "o1");
    assert_eq!(got[0].header("ce-type").as_deref(), Some("order.placed"));
    assert_eq!(&got[0].body[..], br#"{"total": 12.5}"#);
    assert_eq!(got[0].ext("partitionkey").as_deref(), Some("customer-7"));

    // A plain record from another producer.
    produce_plain(&bootstrap, "orders", "k9", b"hello").await;
    let got = sink.wait_for(2).await;
    let foreign = &got[1];
    assert_eq!(
        foreign.header("ce-type").as_deref(),
        Some("dev.knative.kafka.event")
    );
    assert_eq!(
        foreign.header("ce-source").as_deref(),
        Some("/apis/v1/namespaces/default/kafkasources/src#orders")
    );
    assert_eq!(foreign.ext("key").as_deref(), Some("k9"));
    assert_eq!(&foreign.body[..], b"hello");
}

async fn produce_plain(bootstrap: &str, topic: &str, key: &str, value: &[u8]) {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    p.send(
        FutureRecord::to(topic).key(key).payload(value),
        Duration::from_secs(10),
    )
    .await
    .expect("produced");
}
