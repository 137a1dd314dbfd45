//! Reconciling without I/O: statuses, derived objects and the Contract from manifests.

use knit_crds::contract::Report;
use knit_crds::{Kind, Object, ObjectKey};
use serde_json::Value;

use super::{Env, Output, PreviousConditions, reconcile};

fn load(yaml: &str) -> Vec<Object> {
    crate::control::testing::stored(yaml, 1)
}

fn run(yaml: &str) -> Output {
    let env = Env {
        ingress_url: "http://127.0.0.1:8080".into(),
        gateway_url: "http://127.0.0.1:8081".into(),
        kafka: None,
        nats: None,
        tls: None,
    };
    reconcile(
        &load(yaml),
        &PreviousConditions::default(),
        &env,
        &Report::default(),
        "2026-01-01T00:00:00Z",
    )
}

fn get(out: &Output, kind: Kind, name: &str) -> Value {
    out.objects
        .iter()
        .find(|o| o.key() == ObjectKey::new(kind, "default", name))
        .map(Object::to_json)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

fn ready(v: &Value) -> (String, String) {
    let c = v["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready");
    (
        c["status"].as_str().unwrap_or("").into(),
        c["reason"].as_str().unwrap_or("").into(),
    )
}

const BROKER_AND_TRIGGER: &str = "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t1}
spec:
  broker: default
  filter: {attributes: {type: a}}
  subscriber: {uri: http://127.0.0.1:9999/sink}
";

#[test]
fn broker_and_trigger_are_ready_and_in_the_contract() {
    let out = run(BROKER_AND_TRIGGER);
    let b = get(&out, Kind::Broker, "default");
    assert_eq!(ready(&b).0, "True");
    assert_eq!(
        b["status"]["address"]["url"],
        "http://127.0.0.1:8080/default/default"
    );
    assert_eq!(b["status"]["observedGeneration"], 1);
    let t = get(&out, Kind::Trigger, "t1");
    assert_eq!(ready(&t).0, "True");
    assert_eq!(t["status"]["subscriberUri"], "http://127.0.0.1:9999/sink");
    assert_eq!(out.contract.ingresses.len(), 1);
    let ingress = &out.contract.ingresses[0];
    assert_eq!(ingress.path, "/default/default");
    assert_eq!(ingress.egresses.len(), 1);
    // Broker delivery defaults (config-br-defaults) apply to a trigger without its own.
    assert_eq!(ingress.egresses[0].delivery.retry, 10);
    assert_eq!(
        ingress.egresses[0].reply.as_ref().map(|r| r.url.as_str()),
        Some("http://127.0.0.1:8080/default/default")
    );
}

#[test]
fn trigger_without_broker_uses_knatives_reason() {
    let out = run("
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t1}
spec:
  broker: missing
  subscriber: {uri: http://x.example/}
");
    let t = get(&out, Kind::Trigger, "t1");
    assert_eq!(ready(&t), ("False".into(), "BrokerDoesNotExist".into()));
    assert!(out.contract.ingresses.is_empty());
}

#[test]
fn unresolvable_subscriber_clears_the_uri() {
    let out = run("
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t1}
spec:
  broker: default
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: nope}}
");
    let t = get(&out, Kind::Trigger, "t1");
    assert_eq!(
        ready(&t),
        ("False".into(), "Unable to get the Subscriber's URI".into())
    );
    assert!(t["status"].get("subscriberUri").is_none());
    assert!(out.contract.ingresses[0].egresses.is_empty());
}

#[test]
fn ref_plus_relative_uri_resolves_against_the_address() {
    let out = run("
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t1}
spec:
  broker: default
  subscriber:
    ref: {apiVersion: v1, kind: Service, name: svc}
    uri: /path
");
    assert_eq!(
        get(&out, Kind::Trigger, "t1")["status"]["subscriberUri"],
        "http://svc.default.svc.cluster.local/path"
    );
}

#[test]
fn dead_letter_sink_resolution() {
    let out = run("
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
spec:
  delivery:
    deadLetterSink: {uri: http://dls.example/}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: bad}
spec:
  delivery:
    deadLetterSink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: nope}}
");
    let b = get(&out, Kind::Broker, "default");
    assert_eq!(b["status"]["deadLetterSinkUri"], "http://dls.example/");
    assert_eq!(ready(&get(&out, Kind::Broker, "bad")).0, "False");
}

#[test]
fn sequence_builds_channels_and_subscriptions() {
    let out = run("
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: seq}
spec:
  steps:
  - uri: http://a.example/
  - uri: http://b.example/
  reply: {uri: http://r.example/}
");
    let s = get(&out, Kind::Sequence, "seq");
    assert_eq!(ready(&s).0, "True", "{s}");
    assert_eq!(
        s["status"]["address"]["url"],
        "http://127.0.0.1:8080/channels/default/seq-kn-sequence-0"
    );
    let sub0 = get(&out, Kind::Subscription, "seq-kn-sequence-0");
    assert_eq!(
        sub0["status"]["physicalSubscription"]["replyUri"],
        "http://127.0.0.1:8080/channels/default/seq-kn-sequence-1"
    );
    let sub1 = get(&out, Kind::Subscription, "seq-kn-sequence-1");
    assert_eq!(
        sub1["status"]["physicalSubscription"]["replyUri"],
        "http://r.example/"
    );
    assert_eq!(out.contract.ingresses.len(), 2);
}

#[test]
fn last_transition_time_is_kept_while_unchanged() {
    let env = Env {
        ingress_url: "http://127.0.0.1:8080".into(),
        gateway_url: "http://127.0.0.1:8081".into(),
        kafka: None,
        nats: None,
        tls: None,
    };
    let objects = load(BROKER_AND_TRIGGER);
    let report = Report::default();
    let first = reconcile(
        &objects,
        &PreviousConditions::default(),
        &env,
        &report,
        "T1",
    );
    let prev: PreviousConditions = first
        .objects
        .iter()
        .map(|o| (o.key(), super::conditions_of_owned(o)))
        .collect();
    let second = reconcile(&objects, &prev, &env, &report, "T2");
    let b = get(&second, Kind::Broker, "default");
    assert_eq!(b["status"]["conditions"][0]["lastTransitionTime"], "T1");
}

/// Built without the Kafka backend: a Kafka Broker and a KafkaChannel are Ready=False with
/// `BackendNotBuilt` (naming the cargo feature) and get no ingress.
#[cfg(not(feature = "kafka"))]
#[test]
fn kafka_objects_say_the_backend_is_not_built() {
    let out = run("
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: kb
  annotations: {eventing.knative.dev/broker.class: Kafka}
---
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: kc}
");
    for (kind, name) in [(Kind::Broker, "kb"), (Kind::KafkaChannel, "kc")] {
        let o = get(&out, kind, name);
        assert_eq!(ready(&o), ("False".into(), "BackendNotBuilt".into()), "{o}");
        assert!(o.to_string().contains("cargo feature `kafka`"), "{o}");
    }
    assert!(out.contract.ingresses.is_empty());
}

fn run_with_nats(yaml: &str) -> Output {
    let env = Env {
        ingress_url: "http://127.0.0.1:8080".into(),
        gateway_url: "http://127.0.0.1:8081".into(),
        kafka: None,
        nats: Some(super::NatsEnv {
            url: "nats://127.0.0.1:4222".into(),
            creds_file: None,
            ca_file: None,
        }),
        tls: None,
    };
    reconcile(
        &load(yaml),
        &PreviousConditions::default(),
        &env,
        &Report::default(),
        "2026-01-01T00:00:00Z",
    )
}

#[cfg(feature = "nats")]
const NATS_OBJECTS: &str = "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: nb
  annotations: {eventing.knative.dev/broker.class: NatsJetStreamBroker}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t1}
spec:
  broker: nb
  subscriber: {uri: http://127.0.0.1:9999/sink}
---
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: my-ch}
spec:
  stream:
    config: {maxAge: 24h, storage: Memory, replicas: 1, maxMsgs: 1000}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s1}
spec:
  channel: {apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: my-ch}
  subscriber: {uri: http://127.0.0.1:9999/sink}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: plain}
";

/// Under `--nats`: JetStream Brokers and channels get eventing-natss's stream, subject and
/// consumer names, and a default-class Broker is on JetStream too.
#[cfg(feature = "nats")]
#[test]
fn nats_objects_get_eventing_natss_names() {
    use knit_crds::contract::{Backend, NatsStorage};
    let out = run_with_nats(NATS_OBJECTS);
    let nats = |path: &str| {
        out.contract
            .ingresses
            .iter()
            .find(|i| i.path == path)
            .map(|i| {
                (
                    i.backend.clone(),
                    i.egresses
                        .iter()
                        .map(|e| e.group.clone())
                        .collect::<Vec<_>>(),
                )
            })
    };
    let Some((Backend::Nats(b), groups)) = nats("/default/nb") else {
        panic!("no JetStream broker: {:?}", out.contract.ingresses);
    };
    assert_eq!(b.stream, "KN_BROKER_DEFAULT__NB");
    assert_eq!(b.subject, "default.nb._knative_broker.events");
    assert_eq!(b.url, "nats://127.0.0.1:4222");
    assert_eq!(groups, vec!["KN_TRIGGER_default_t1".to_string()]);
    let Some((Backend::Nats(c), groups)) = nats("/channels/default/my-ch") else {
        panic!("no JetStream channel: {:?}", out.contract.ingresses);
    };
    assert_eq!(c.stream, "KN_DEFAULT__MY_CH");
    assert_eq!(c.subject, "default.my-ch._knative");
    assert_eq!(c.storage, NatsStorage::Memory);
    assert_eq!(c.max_age_ms, Some(24 * 3600 * 1000));
    assert_eq!(c.max_msgs, Some(1000));
    assert_eq!(groups, vec!["KN_SUB_default_s1".to_string()]);
    assert!(matches!(
        nats("/default/plain"),
        Some((Backend::Nats(_), _))
    ));
    let broker = get(&out, Kind::Broker, "nb");
    assert_eq!(
        ready(&broker),
        ("Unknown".into(), "StreamNotReady".into()),
        "{broker}"
    );
}

/// Stream settings Knit does not honour are refused with a reason, never ignored; without
/// `--nats` a JetStream Broker says so.
#[test]
fn nats_settings_knit_does_not_honour_are_refused() {
    let out = run_with_nats(
        "
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: a}
spec:
  stream:
    config: {retention: Interest}
---
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: b}
spec:
  consumerConfigTemplate: {maxDeliver: 3}
",
    );
    let (reason_a, reason_b) = if cfg!(feature = "nats") {
        ("StreamConfigNotSupported", "ConsumerConfigNotSupported")
    } else {
        ("BackendNotBuilt", "BackendNotBuilt")
    };
    let a = get(&out, Kind::NatsJetStreamChannel, "a");
    assert_eq!(ready(&a), ("False".into(), reason_a.into()), "{a}");
    let b = get(&out, Kind::NatsJetStreamChannel, "b");
    assert_eq!(ready(&b), ("False".into(), reason_b.into()), "{b}");
    let out = run("
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: nb
  annotations: {eventing.knative.dev/broker.class: NatsJetStreamBroker}
");
    let want = if cfg!(feature = "nats") {
        "NatsNotConfigured"
    } else {
        "BackendNotBuilt"
    };
    let nb = get(&out, Kind::Broker, "nb");
    assert_eq!(ready(&nb), ("False".into(), want.into()), "{nb}");
    assert!(out.contract.ingresses.is_empty());
}
