//! KafkaSink status and log: its address on the ingress listener, and `Ready` once it has one
//! and the data plane reports its topic (`TopicReady`, as Knative's Kafka sink). The topic must
//! exist unless `numPartitions` or `replicationFactor` is set, in which case Knit creates it
//! where missing; Knit never deletes a sink's topic.

use knit_crds::Object;
use knit_crds::api::eventing::{KafkaContentMode, KafkaSinkStatus};
use knit_crds::contract::{Backend, ContentMode, KafkaLog};

use super::World;
use super::backends;
use super::conditions::Conditions;

/// The conditions a KafkaSink's `Ready` rolls up.
const KAFKA_SINK_CONDITIONS: &[&str] = &["Addressable", "TopicReady"];

/// Set the status of every KafkaSink.
pub(crate) fn kafka_sinks(world: &mut World<'_>) {
    for key in world.keys_of(knit_crds::Kind::KafkaSink) {
        let Some(Object::KafkaSink(mut sink)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let mut c = Conditions::new();
        let mut status = KafkaSinkStatus::default();
        if let Some(addr) =
            world.addressable(&key, &mut c, "NoAddress", "the KafkaSink has no address")
        {
            status.address = Some(addr);
            status.addresses = world.address_list(&key);
        }
        if let Err(nb) = backends::not_built(knit_channels::BackendKind::Kafka) {
            c.fail("TopicReady", nb.reason, nb.message);
            status.status.conditions = c.roll_up(KAFKA_SINK_CONDITIONS);
            sink.status = Some(status);
            world.objects.insert(key, Object::KafkaSink(sink));
            continue;
        }
        let spec = &sink.spec;
        let creates = spec.num_partitions.is_some() || spec.replication_factor.is_some();
        world.backends.insert(
            key.clone(),
            Backend::Kafka(KafkaLog {
                bootstrap_servers: spec.bootstrap_servers.join(","),
                topics: vec![spec.topic.clone()],
                partitions: spec.num_partitions.unwrap_or(1).max(1),
                replication_factor: spec.replication_factor.unwrap_or(1).max(1),
                retention_ms: None,
                external: !creates,
                content_mode: match spec.content_mode.unwrap_or_default() {
                    KafkaContentMode::Binary => ContentMode::Binary,
                    KafkaContentMode::Structured => ContentMode::Structured,
                },
                foreign_source: String::new(),
            }),
        );
        status.status.annotations = backends::data_plane(
            world,
            sink.metadata.uid.as_deref(),
            "TopicReady",
            "TopicNotReady",
            &mut c,
        );
        status.status.conditions = c.roll_up(KAFKA_SINK_CONDITIONS);
        sink.status = Some(status);
        world.objects.insert(key, Object::KafkaSink(sink));
    }
}

#[cfg(test)]
mod tests {
    use knit_crds::admission::{Hooks, admit_file};
    use knit_crds::contract::Report;
    use knit_crds::{Kind, ObjectKey};
    use serde_json::Value;

    use super::super::{Env, PreviousConditions, reconcile};
    use super::*;

    const YAML: &str = "
apiVersion: eventing.knative.dev/v1alpha1
kind: KafkaSink
metadata: {name: orders, namespace: shop}
spec:
  topic: orders
  bootstrapServers: ['127.0.0.1:9092']
---
apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata: {name: src, namespace: shop}
spec:
  bootstrapServers: ['127.0.0.1:9092']
  topics: [in-a, in-b]
  sink:
    ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: KafkaSink, name: orders}
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: lost, namespace: shop}
spec:
  bootstrapServers: ['127.0.0.1:9092']
  topics: [in-a]
  sink:
    ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: KafkaSink, name: missing}
";

    /// Reconcile the manifests (UIDs `uid-<name>`), with the data plane reporting `running`.
    fn run_with(running: &[&str]) -> Vec<Value> {
        let admitted = admit_file("test.yaml", YAML, &Hooks::default());
        assert!(admitted.errors.is_empty(), "{:?}", admitted.errors);
        let objects: Vec<Object> = admitted
            .objects
            .into_iter()
            .map(|(_, mut o)| {
                let m = o.meta_mut();
                m.uid = Some(format!("uid-{}", m.name.clone().unwrap_or_default()));
                o
            })
            .collect();
        let env = Env {
            ingress_url: "http://127.0.0.1:8080/".into(),
            gateway_url: "http://127.0.0.1:8081".into(),
            kafka: None,
            nats: None,
            tls: None,
        };
        let mut report = Report::default();
        for uid in running {
            report.objects.insert(
                uid.to_string(),
                knit_crds::contract::ObjectReport {
                    ready: true,
                    ..Default::default()
                },
            );
        }
        let prev = PreviousConditions::default();
        reconcile(&objects, &prev, &env, &report, "2026-01-01T00:00:00Z")
            .objects
            .iter()
            .map(Object::to_json)
            .collect()
    }

    fn find<'a>(objects: &'a [Value], kind: Kind, name: &str) -> &'a Value {
        let key = ObjectKey::new(kind, "shop", name);
        objects
            .iter()
            .find(|o| o["kind"] == kind.name() && o["metadata"]["name"] == key.name.as_str())
            .unwrap_or_else(|| panic!("{key} missing"))
    }

    fn ready(o: &Value) -> (&str, &str) {
        let c = o["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .unwrap_or(&Value::Null);
        (
            c["status"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default(),
        )
    }

    fn run() -> Vec<Value> {
        run_with(&["uid-orders", "uid-src", "uid-src/topics"])
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_sinks_and_sources_wait_for_the_data_plane() {
        let objects = run_with(&[]);
        let sink = find(&objects, Kind::KafkaSink, "orders");
        assert_eq!(ready(sink), ("Unknown", "TopicNotReady"));
        let src = find(&objects, Kind::KafkaSource, "src");
        assert_eq!(ready(src), ("Unknown", "ConsumerGroupNotReady"));
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_sinks_are_addressable_and_sources_resolve_them() {
        let objects = run();
        let sink = find(&objects, Kind::KafkaSink, "orders");
        let url = "http://127.0.0.1:8080/sinks/shop/orders";
        assert_eq!(sink["status"]["address"]["url"], url);
        assert_eq!(sink["status"]["addresses"][0]["url"], url);
        assert_eq!(ready(sink), ("True", ""));

        let src = find(&objects, Kind::KafkaSource, "src");
        assert_eq!(src["status"]["sinkUri"], url);
        assert_eq!(ready(src), ("True", ""));
        assert_eq!(
            src["status"]["ceAttributes"][1],
            serde_json::json!({
                "type": "dev.knative.kafka.event",
                "source": "/apis/v1/namespaces/shop/kafkasources/src#in-b"
            })
        );
        assert_eq!(
            src["spec"]["consumerGroup"],
            "knative-kafka-source-shop-src"
        );

        let lost = find(&objects, Kind::KafkaSource, "lost");
        assert_eq!(ready(lost), ("False", "NotFound"));
        assert!(lost["status"]["sinkUri"].is_null());
    }

    /// Built without the Kafka backend, Kafka objects say so and nothing reaches the data plane.
    #[cfg(not(feature = "kafka"))]
    #[test]
    fn without_the_kafka_feature_sinks_and_sources_say_the_backend_is_not_built() {
        let objects = run();
        let sink = find(&objects, Kind::KafkaSink, "orders");
        assert_eq!(ready(sink), ("False", "BackendNotBuilt"));
        let src = find(&objects, Kind::KafkaSource, "src");
        assert_eq!(ready(src), ("False", "BackendNotBuilt"));
        let message = src["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default();
        assert!(message.contains("cargo feature `kafka`"), "{message}");
    }
}
