//! NATS JetStream objects end to end, with a private `nats-server -js` per test: a
//! `NatsJetStreamBroker` delivering to a Trigger (a poison event reaching the dead-letter sink
//! after exactly `retry + 1` attempts), and a `NatsJetStreamChannel` delivering to a
//! Subscription; both name their stream in status, and their Triggers and Subscriptions name
//! the stream and the durable consumer that JetStream holds once they are Ready.

mod common;

use common::nats::NatsServer;
use common::sink::{Reply, Sink};
use common::{Knit, cli_env, send, trigger};
use serde_json::Value;

#[tokio::test]
async fn a_jetstream_broker_delivers_and_dead_letters_after_exactly_retry_plus_one() {
    let nats = NatsServer::start();
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.respond_with(|r| {
        if r.id() == "poison" {
            Reply::status(500)
        } else {
            Reply::status(202)
        }
    });
    let broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  namespace: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStreamBroker\n";
    let delivery = format!(
        "delivery:\n  retry: 2\n  backoffPolicy: linear\n  backoffDelay: PT0.2S\n  deadLetterSink:\n    uri: {}\n",
        dls.url
    );
    let knit = Knit::start_with(
        &[
            ("b.yaml", broker),
            ("t.yaml", &trigger("t", "nb", &sink.url, &delivery)),
        ],
        &["--nats", &nats.url],
    );
    let b = knit.ready("brokers", "nb").await;
    assert_eq!(
        b["status"]["annotations"]["stream"],
        "KN_BROKER_DEFAULT__NB"
    );
    knit.ready("triggers", "t").await;
    let url = format!("{}/default/nb", knit.ingress);
    for i in 0..20 {
        assert_eq!(send(&url, "t", &format!("e-{i}")).await.status(), 202);
    }
    assert_eq!(send(&url, "t", "poison").await.status(), 202);
    let dead = dls.wait_for(1).await;
    assert_eq!(dead[0].id(), "poison");
    let got = sink.wait_for(23).await;
    let poison_attempts = got.iter().filter(|r| r.id() == "poison").count();
    assert_eq!(poison_attempts, 3, "retry + 1 attempts");
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.id())
        .filter(|i| i != "poison")
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn a_jetstream_channel_delivers_to_its_subscription() {
    let nats = NatsServer::start();
    let sink = Sink::start().await;
    let channel = "apiVersion: messaging.knative.dev/v1alpha1\nkind: NatsJetStreamChannel\nmetadata:\n  name: ch\n  namespace: default\nspec:\n  stream:\n    config:\n      maxAge: 1h\n";
    let sub = format!(
        "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: s\n  namespace: default\nspec:\n  channel:\n    apiVersion: messaging.knative.dev/v1alpha1\n    kind: NatsJetStreamChannel\n    name: ch\n  subscriber:\n    uri: {}\n",
        sink.url
    );
    let knit = Knit::start_with(
        &[("c.yaml", channel), ("s.yaml", &sub)],
        &["--nats", &nats.url],
    );
    let c = knit.ready("natsjetstreamchannels", "ch").await;
    assert_eq!(c["status"]["annotations"]["stream"], "KN_DEFAULT__CH");
    knit.ready("subscriptions", "s").await;
    let url = knit.address("natsjetstreamchannels", "ch").await;
    for i in 0..5 {
        assert_eq!(send(&url, "t", &format!("c-{i}")).await.status(), 202);
    }
    let got = sink.wait_for(5).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, vec!["c-0", "c-1", "c-2", "c-3", "c-4"]);
}

/// `knit replay trigger` on a JetStream Broker: the range by stream sequence goes to that
/// Trigger again, marked `knitreplay`.
#[tokio::test]
async fn a_jetstream_broker_replays_a_range_to_one_trigger() {
    let nats = NatsServer::start();
    let sink = Sink::start().await;
    let broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  namespace: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStreamBroker\n";
    let knit = Knit::start_with(
        &[
            ("b.yaml", broker),
            ("t.yaml", &trigger("t", "nb", &sink.url, "")),
        ],
        &["--nats", &nats.url],
    );
    knit.ready("triggers", "t").await;
    let url = format!("{}/default/nb", knit.ingress);
    for i in 0..5 {
        assert_eq!(send(&url, "t", &format!("r-{i}")).await.status(), 202);
    }
    sink.wait_for(5).await;
    let admin = knit.admin.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli_env(
            &["replay", "trigger", "t", "--from", "2", "--to", "4"],
            &[("KNIT_SERVER", admin.as_str())],
        )
    })
    .await
    .expect("the CLI ran");
    assert_eq!(code, 0, "{out}{err}");
    let got = sink.wait_for(7).await;
    let mut replayed: Vec<String> = got
        .iter()
        .filter(|r| r.ext("knitreplay").is_some())
        .map(|r| r.id())
        .collect();
    replayed.sort();
    assert_eq!(replayed, vec!["r-1", "r-2"], "sequences 2 and 3");
}

/// Status of a Ready Trigger or Subscription on JetStream names its `stream` and durable
/// `consumer` (a group name with a `.` mapped to one without, see `channels/src/nats`), and
/// both exist on the server by the time the object is Ready.
#[tokio::test]
async fn triggers_and_subscriptions_name_their_stream_and_consumer_once_ready() {
    let sink = Sink::start().await;
    let broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: nb\n  namespace: default\n  annotations:\n    eventing.knative.dev/broker.class: NatsJetStreamBroker\n";
    let channel = "apiVersion: messaging.knative.dev/v1alpha1\nkind: NatsJetStreamChannel\nmetadata:\n  name: ch\n  namespace: default\n";
    let sub = format!(
        "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: s\n  namespace: default\nspec:\n  channel:\n    apiVersion: messaging.knative.dev/v1alpha1\n    kind: NatsJetStreamChannel\n    name: ch\n  subscriber:\n    uri: {}\n",
        sink.url
    );
    let knit = Knit::start_with_nats(
        &[
            ("b.yaml", broker),
            ("t.yaml", &trigger("t", "nb", &sink.url, "")),
            ("d.yaml", &trigger("t.v1", "nb", &sink.url, "")),
            ("c.yaml", channel),
            ("s.yaml", &sub),
        ],
        &[],
    );
    let nats = knit.nats.as_ref().expect("a NATS server");
    let expect = [
        (
            "triggers",
            "t",
            "KN_BROKER_DEFAULT__NB",
            Some("KN_TRIGGER_default_t"),
        ),
        ("triggers", "t.v1", "KN_BROKER_DEFAULT__NB", None),
        (
            "subscriptions",
            "s",
            "KN_DEFAULT__CH",
            Some("KN_SUB_default_s"),
        ),
    ];
    for (kind, name, stream, consumer) in expect {
        let o = knit.ready(kind, name).await;
        let a = &o["status"]["annotations"];
        assert_eq!(a["stream"], stream, "{kind}/{name}: {a}");
        let durable = a["consumer"].as_str().expect("status.annotations.consumer");
        if let Some(c) = consumer {
            assert_eq!(durable, c, "{kind}/{name}");
        }
        assert!(
            !durable.contains('.') && durable.starts_with("KN_"),
            "{kind}/{name}: {durable}"
        );
        let held: Option<Value> = nats.consumer(stream, durable).await;
        assert!(
            held.is_some(),
            "{kind}/{name} is Ready but JetStream has no consumer {durable} on {stream}"
        );
    }
    let b = knit.ready("brokers", "nb").await;
    assert_eq!(
        b["status"]["annotations"]["subject"],
        "default.nb._knative_broker.events"
    );
}
