//! Admission of the Kafka kinds and the Kafka/Knit annotations, end to end from YAML.

use super::{FieldError, Hooks, admit_file, validate_update};
use crate::Object;
use crate::api::eventing::KafkaContentMode;

/// Admit one YAML document: the object, or every error as `path: message`.
fn admit(yaml: &str) -> Result<Object, Vec<String>> {
    let mut out = admit_file("t.yaml", yaml, &Hooks::default());
    if out.errors.is_empty() {
        out.objects
            .pop()
            .map(|(_, o)| o)
            .ok_or_else(|| vec!["nothing admitted".to_string()])
    } else {
        Err(out.errors.iter().map(|i| i.error.to_string()).collect())
    }
}

fn errors(yaml: &str) -> Vec<String> {
    match admit(yaml) {
        Ok(o) => panic!("admitted: {o:?}"),
        Err(e) => e,
    }
}

fn has(errs: &[String], fragment: &str) -> bool {
    errs.iter().any(|e| e.contains(fragment))
}

const SINK: &str = "apiVersion: eventing.knative.dev/v1alpha1
kind: KafkaSink
metadata: {name: my-sink, namespace: ns}
spec:
  topic: orders
  bootstrapServers: [my-cluster-kafka-bootstrap.kafka:9092]
";

#[test]
fn kafka_sink_is_admitted_and_defaults_to_binary() {
    let Ok(Object::KafkaSink(k)) = admit(SINK) else {
        panic!("not a KafkaSink")
    };
    assert_eq!(k.spec.content_mode, Some(KafkaContentMode::Binary));
    assert_eq!(k.spec.topic, "orders");
    let structured = format!(
        "{SINK}  contentMode: structured\n  numPartitions: 3\n  replicationFactor: 1\n  auth: {{secret: {{ref: {{name: creds}}}}}}\n"
    );
    let Ok(Object::KafkaSink(k)) = admit(&structured) else {
        panic!("not admitted")
    };
    assert_eq!(k.spec.content_mode, Some(KafkaContentMode::Structured));
    assert_eq!(k.spec.num_partitions, Some(3));
    assert_eq!(
        k.to_json_value()["spec"]["auth"]["secret"]["ref"]["name"],
        "creds"
    );
}

trait ToJson {
    fn to_json_value(&self) -> serde_json::Value;
}

impl<T: serde::Serialize> ToJson for T {
    fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[test]
fn kafka_sink_rules() {
    let errs = errors(
        "apiVersion: eventing.knative.dev/v1alpha1\nkind: KafkaSink\nmetadata: {name: s}\nspec: {}\n",
    );
    assert!(has(&errs, "spec.topic: Required value"), "{errs:?}");
    assert!(
        has(&errs, "spec.bootstrapServers: Required value"),
        "{errs:?}"
    );

    let errs = errors(
        "apiVersion: eventing.knative.dev/v1alpha1\nkind: KafkaSink\nmetadata: {name: s}\nspec:\n  topic: 'a b'\n  bootstrapServers: []\n  numPartitions: 0\n  replicationFactor: -1\n  auth: {secret: {ref: {name: ''}}}\n",
    );
    assert!(has(&errs, "spec.topic: invalid value \"a b\""), "{errs:?}");
    assert!(
        has(&errs, "spec.bootstrapServers: Required value"),
        "{errs:?}"
    );
    assert!(
        has(&errs, "spec.numPartitions: invalid value 0"),
        "{errs:?}"
    );
    assert!(
        has(&errs, "spec.replicationFactor: invalid value -1"),
        "{errs:?}"
    );
    assert!(
        has(&errs, "spec.auth.secret.ref.name: Required value"),
        "{errs:?}"
    );

    let errs = errors(&format!("{SINK}  replicationFactor: 40000\n"));
    assert!(
        has(
            &errs,
            "spec.replicationFactor: invalid value 40000: must be from 1 to 32767"
        ),
        "{errs:?}"
    );

    let errs = errors(&format!("{SINK}  contentMode: avro\n"));
    assert!(
        errs.iter().any(|e| e.starts_with("spec.contentMode:")),
        "{errs:?}"
    );
}

const SOURCE: &str = "apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: kafka-source, namespace: ns}
spec:
  bootstrapServers: [my-cluster-kafka-bootstrap.kafka:9092]
  topics: [knative-demo-topic]
  net:
    sasl:
      enable: true
      user: {secretKeyRef: {name: kafka-sasl, key: user}}
      password: {secretKeyRef: {name: kafka-sasl, key: password}}
      type: {secretKeyRef: {name: kafka-sasl, key: saslType}}
    tls:
      enable: true
      caCert: {secretKeyRef: {name: kafka-tls, key: ca.crt}}
  sink:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: event-display}
";

#[test]
fn kafka_source_is_admitted_with_knative_defaults() {
    let Ok(Object::KafkaSource(k)) = admit(SOURCE) else {
        panic!("not a KafkaSource")
    };
    let s = &k.spec;
    assert_eq!(
        s.consumer_group.as_deref(),
        Some("knative-kafka-source-ns-kafka-source")
    );
    assert_eq!(s.consumers, Some(1));
    assert_eq!(s.initial_offset.as_deref(), Some("latest"));
    assert_eq!(s.ordering.as_deref(), Some("ordered"));
    let sink_ns = s
        .sink
        .as_ref()
        .and_then(|d| d.reference.as_ref()?.namespace.clone());
    assert_eq!(sink_ns.as_deref(), Some("ns"));
    let net = s.net.as_ref().expect("net");
    assert!(net.sasl.as_ref().is_some_and(|x| x.enable));
    assert!(net.tls.as_ref().is_some_and(|x| x.enable));
}

#[test]
fn kafka_source_keeps_given_values_and_uses_the_uid_for_its_group() {
    let yaml = SOURCE.replace(
        "metadata: {name: kafka-source, namespace: ns}",
        "metadata: {name: kafka-source, namespace: ns, uid: 0b7e-42}",
    );
    let Ok(Object::KafkaSource(k)) = admit(&yaml) else {
        panic!("not admitted")
    };
    assert_eq!(
        k.spec.consumer_group.as_deref(),
        Some("knative-kafka-source-0b7e-42")
    );
    let yaml = format!(
        "{SOURCE}  consumerGroup: mine\n  initialOffset: earliest\n  ordering: unordered\n  consumers: 3\n"
    );
    let Ok(Object::KafkaSource(k)) = admit(&yaml) else {
        panic!("not admitted")
    };
    assert_eq!(k.spec.consumer_group.as_deref(), Some("mine"));
    assert_eq!(k.spec.initial_offset.as_deref(), Some("earliest"));
    assert_eq!(k.spec.ordering.as_deref(), Some("unordered"));
    assert_eq!(k.spec.consumers, Some(3));
}

#[test]
fn kafka_source_v1beta1_converts_to_v1() {
    let yaml = SOURCE
        .replace("sources.knative.dev/v1\n", "sources.knative.dev/v1beta1\n")
        .replace("  net:\n", "  netx:\n");
    // Only the version changes: `netx` is still an unknown field after conversion.
    let errs = errors(&yaml);
    assert!(has(&errs, "spec.netx: unknown field"), "{errs:?}");
    let out = admit_file(
        "t.yaml",
        &SOURCE.replace("sources.knative.dev/v1\n", "sources.knative.dev/v1beta1\n"),
        &Hooks::default(),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(matches!(out.objects[0].1, Object::KafkaSource(_)));
    assert!(
        out.warnings.iter().any(|w| w
            .error
            .message
            .contains("converted from sources.knative.dev/v1beta1")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn kafka_source_rules() {
    let errs = errors(
        "apiVersion: sources.knative.dev/v1\nkind: KafkaSource\nmetadata: {name: k}\nspec:\n  bootstrapServers: ['']\n  topics: []\n  initialOffset: newest\n  ordering: fifo\n  consumers: -1\n  net: {sasl: {user: {secretKeyRef: {key: user}}}}\n  delivery: {retry: -1}\n",
    );
    for fragment in [
        "spec.bootstrapServers[0]: Required value",
        "spec.topics: Required value",
        "spec.initialOffset: invalid value \"newest\": must be earliest or latest",
        "spec.ordering: invalid value \"fifo\": must be ordered or unordered",
        "spec.consumers: invalid value -1",
        "spec.net.sasl.user.secretKeyRef.name: Required value",
        "spec.delivery.retry: invalid value -1",
        "spec.sink: Required value",
    ] {
        assert!(has(&errs, fragment), "{fragment}: {errs:?}");
    }
    let errs = errors(
        "apiVersion: sources.knative.dev/v1\nkind: KafkaSource\nmetadata: {name: k}\nspec: {sink: {uri: 'http://x'}}\n",
    );
    assert!(
        has(&errs, "spec.bootstrapServers: Required value"),
        "{errs:?}"
    );
    assert!(has(&errs, "spec.topics: Required value"), "{errs:?}");
}

#[test]
fn kafka_source_placeholders_are_rejected() {
    let yaml = SOURCE
        .replace("enable: true", "enable: KAFKA_SASL_ENABLE")
        .replace(
            "  topics:",
            "  initialOffset: KAFKA_INITIAL_OFFSET\n  topics:",
        );
    let errs = errors(&yaml);
    assert!(
        has(
            &errs,
            "spec.net.sasl.enable: \"KAFKA_SASL_ENABLE\" is not of type \"boolean\""
        ),
        "{errs:?}"
    );
    // With `enable` fixed, the offset placeholder is reported by the rules.
    let errs = errors(&SOURCE.replace(
        "  topics:",
        "  initialOffset: KAFKA_INITIAL_OFFSET\n  topics:",
    ));
    assert!(
        has(
            &errs,
            "spec.initialOffset: invalid value \"KAFKA_INITIAL_OFFSET\""
        ),
        "{errs:?}"
    );
}

fn trigger(annotations: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n  annotations: {annotations}\nspec:\n  broker: b\n  subscriber: {{uri: 'http://x'}}\n"
    )
}

#[test]
fn trigger_delivery_order_and_overflow_annotations() {
    for ok in ["ordered", "unordered", "ordered-by-key", "Ordered"] {
        let yaml = trigger(&format!(
            "{{kafka.eventing.knative.dev/delivery.order: {ok}, knit.dev/overflow: shed}}"
        ));
        assert!(admit(&yaml).is_ok(), "{ok}: {:?}", admit(&yaml).err());
    }
    let errs = errors(&trigger(
        "{kafka.eventing.knative.dev/delivery.order: fifo, knit.dev/overflow: drop}",
    ));
    assert!(
        has(
            &errs,
            "metadata.annotations.kafka.eventing.knative.dev/delivery.order: invalid value \"fifo\": must be one of ordered, unordered, ordered-by-key"
        ),
        "{errs:?}"
    );
    assert!(
        has(
            &errs,
            "metadata.annotations.knit.dev/overflow: invalid value \"drop\": must be one of shed, block"
        ),
        "{errs:?}"
    );
}

#[test]
fn subscription_overflow_annotation() {
    let sub = |v: &str| {
        format!(
            "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: s\n  annotations: {{knit.dev/overflow: {v}}}\nspec:\n  channel: {{apiVersion: messaging.knative.dev/v1, kind: Channel, name: c}}\n  subscriber: {{uri: 'http://x'}}\n"
        )
    };
    assert!(admit(&sub("block")).is_ok());
    let errs = errors(&sub("Block"));
    assert!(
        has(
            &errs,
            "metadata.annotations.knit.dev/overflow: invalid value \"Block\""
        ),
        "{errs:?}"
    );
}

#[test]
fn broker_external_topic_annotation() {
    let broker = |v: &str| {
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n  annotations: {{eventing.knative.dev/broker.class: Kafka, kafka.eventing.knative.dev/external.topic: '{v}'}}\n"
        )
    };
    assert!(admit(&broker("my.topic_1-a")).is_ok());
    let errs = errors(&broker(""));
    assert!(
        has(
            &errs,
            "metadata.annotations.kafka.eventing.knative.dev/external.topic: invalid value \"\": must not be empty"
        ),
        "{errs:?}"
    );
    let errs = errors(&broker("a/b"));
    assert!(
        has(
            &errs,
            "metadata.annotations.kafka.eventing.knative.dev/external.topic: invalid value \"a/b\""
        ),
        "{errs:?}"
    );
}

#[test]
fn a_broker_without_config_gets_its_class_config_map() {
    let config = |class: &str| {
        let yaml = format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n  annotations: {{eventing.knative.dev/broker.class: {class}}}\n"
        );
        match admit(&yaml) {
            Ok(Object::Broker(b)) => b.spec.config.and_then(|c| Some((c.namespace?, c.name?))),
            other => panic!("{other:?}"),
        }
    };
    let ns = "knative-eventing".to_string();
    assert_eq!(
        config("Kafka"),
        Some((ns.clone(), "kafka-broker-config".into()))
    );
    assert_eq!(
        config("KafkaNamespaced"),
        Some((ns.clone(), "kafka-broker-config".into()))
    );
    assert_eq!(
        config("MTChannelBasedBroker"),
        Some((ns, "config-br-default-channel".into()))
    );
}

#[test]
fn kafka_channel_defaults_follow_knative() {
    let kc = |spec: &str| {
        format!(
            "apiVersion: messaging.knative.dev/v1beta1\nkind: KafkaChannel\nmetadata: {{name: c}}\nspec: {spec}\n"
        )
    };
    let Ok(Object::KafkaChannel(c)) = admit(&kc("{numPartitions: 0, retentionDuration: ''}"))
    else {
        panic!("not admitted")
    };
    assert_eq!(c.spec.num_partitions, Some(1));
    assert_eq!(c.spec.replication_factor, Some(1));
    assert_eq!(c.spec.retention_duration.as_deref(), Some("PT168H"));
    let Ok(Object::KafkaChannel(c)) = admit(&kc("{numPartitions: 3, retentionDuration: P1D}"))
    else {
        panic!("not admitted")
    };
    assert_eq!(c.spec.num_partitions, Some(3));
    assert_eq!(c.spec.retention_duration.as_deref(), Some("P1D"));
    let errs = errors(&kc("{replicationFactor: -1, retentionDuration: 7 days}"));
    assert!(
        has(&errs, "spec.replicationFactor: must be more than 0"),
        "{errs:?}"
    );
    assert!(
        has(&errs, "spec.retentionDuration: invalid value"),
        "{errs:?}"
    );
}

fn update_errors(old: &str, new: &str) -> Vec<FieldError> {
    let (Ok(old), Ok(new)) = (admit(old), admit(new)) else {
        panic!("not admitted")
    };
    validate_update(&old, &new)
}

#[test]
fn kafka_immutable_fields() {
    let errs = update_errors(SINK, &SINK.replace("topic: orders", "topic: invoices"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "spec.topic");
    assert!(update_errors(SINK, &format!("{SINK}  contentMode: structured\n")).is_empty());

    let errs = update_errors(SOURCE, &format!("{SOURCE}  consumerGroup: other\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "spec.consumerGroup");
    // The defaulted group is stable, so re-admitting the same manifest is not a change.
    assert!(update_errors(SOURCE, SOURCE).is_empty());

    let kc = |n: u32| {
        format!(
            "apiVersion: messaging.knative.dev/v1beta1\nkind: KafkaChannel\nmetadata: {{name: c}}\nspec: {{numPartitions: {n}}}\n"
        )
    };
    let errs = update_errors(&kc(1), &kc(2));
    assert_eq!(errs[0].path, "spec.numPartitions", "{errs:?}");
}
