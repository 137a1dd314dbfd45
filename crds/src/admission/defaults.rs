//! Knative's defaults, applied at admission as its defaulting webhooks do (visible in `get`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

use crate::api::ObjectMeta;
use crate::api::duck::{BackoffPolicy, DeliverySpec, Destination, KReference};
use crate::api::eventing::{Broker, KafkaContentMode, Trigger, TriggerFilter};
use crate::api::flows::{ParallelSpec, SequenceSpec};
use crate::api::messaging::{
    ChannelTemplateSpec, ChannelableSpec, KafkaChannelSpec, SubscriptionSpec,
};
use crate::api::serving::{RevisionSpec, RevisionTemplateSpec, ServiceSpec, TrafficTarget};
use crate::api::sources::KafkaSource;
use crate::names;
use crate::object::{Kind, Object};
use serde_json::Value;

/// Defaults that must be in place before the document is parsed into its type: Kubernetes
/// types require fields (container names, probe ports) that Knative fills in.
pub(crate) fn apply_raw(kind: Kind, doc: &mut Value) {
    let Some(map) = doc.as_object_mut() else {
        return;
    };
    if kind.group().ends_with("knative.dev") || kind.group().ends_with("google.com") {
        // A missing or null spec is an empty one (Brokers and Channels need nothing else).
        if map.get("spec").is_none_or(Value::is_null) {
            map.insert("spec".into(), Value::Object(Default::default()));
        }
    }
    let pointer = match kind {
        Kind::Service | Kind::Configuration | Kind::ContainerSource => {
            "/spec/template/spec/containers"
        }
        Kind::Revision => "/spec/containers",
        _ => return,
    };
    let Some(containers) = doc.pointer_mut(pointer).and_then(Value::as_array_mut) else {
        return;
    };
    let many = containers.len() > 1;
    for (i, c) in containers.iter_mut().enumerate() {
        let Some(c) = c.as_object_mut() else { continue };
        if c.get("name")
            .is_none_or(|n| n.as_str().is_none_or(str::is_empty))
        {
            let name = if many {
                format!("user-container-{i}")
            } else {
                "user-container".into()
            };
            c.insert("name".into(), Value::String(name));
        }
        let port = c
            .get("ports")
            .and_then(|p| p.get(0))
            .and_then(|p| p.get("containerPort"))
            .cloned()
            .unwrap_or(Value::from(8080));
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            for handler in ["httpGet", "tcpSocket", "grpc"] {
                if let Some(h) = c
                    .get_mut(probe)
                    .and_then(|p| p.get_mut(handler))
                    .and_then(Value::as_object_mut)
                {
                    h.entry("port").or_insert_with(|| port.clone());
                }
            }
        }
    }
}

/// Apply every default to `object`: the namespace, then the defaults of its kind.
pub(crate) fn apply(object: &mut Object) {
    let ns = object.namespace().to_string();
    object.meta_mut().namespace = Some(ns.clone());
    let ns = ns.as_str();
    match object {
        Object::Broker(b) => broker(b, ns),
        Object::Trigger(t) => trigger(t, ns),
        // The channel template default comes from the `default-ch-webhook` ConfigMap, which
        // the reconciler reads (admission sees one document at a time).
        Object::Channel(c) => channelable(&mut c.spec.channelable, ns),
        Object::InMemoryChannel(c) => channelable(&mut c.spec.channelable, ns),
        Object::NatsJetStreamChannel(c) => channelable(&mut c.spec.channelable, ns),
        Object::KafkaChannel(c) => kafka_channel(&mut c.spec, ns),
        Object::KafkaSink(k) => {
            k.spec
                .content_mode
                .get_or_insert(KafkaContentMode::default());
        }
        Object::KafkaSource(k) => kafka_source(k, ns),
        Object::Subscription(s) => subscription(&mut s.spec, ns),
        Object::Sequence(s) => sequence(&mut s.spec, ns),
        Object::Parallel(p) => parallel(&mut p.spec, ns),
        Object::PingSource(s) => dest_ns(s.spec.sink.as_mut(), ns),
        Object::ApiServerSource(s) => {
            s.spec.mode.get_or_insert_with(|| "Reference".into());
            dest_ns(s.spec.sink.as_mut(), ns);
        }
        Object::SinkBinding(s) => dest_ns(s.spec.sink.as_mut(), ns),
        Object::ContainerSource(s) => dest_ns(s.spec.sink.as_mut(), ns),
        Object::GitHubSource(s) => dest_ns(s.spec.sink.as_mut(), ns),
        Object::CloudPubSubSource(s) => dest_ns(s.spec.sink.as_mut(), ns),
        Object::Service(s) => service(&mut s.spec),
        Object::Configuration(c) => {
            if let Some(t) = &mut c.spec.template {
                revision_template(t);
            }
        }
        Object::Revision(r) => revision_spec(&mut r.spec.revision),
        Object::Route(r) => r.spec.traffic.iter_mut().for_each(traffic_target),
        // Knative defaults the reference's namespace to the mapping's.
        Object::DomainMapping(d) => {
            d.spec.reference.namespace.get_or_insert_with(|| ns.into());
        }
        Object::EventType(_)
        | Object::EventPolicy(_)
        | Object::ConfigMap(_)
        | Object::Secret(_) => {}
    }
}

/// A Broker's class annotation, its config (the class's ConfigMap) and its delivery.
fn broker(b: &mut Broker, ns: &str) {
    let annotations = b.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let class = annotations
        .entry(names::BROKER_CLASS_ANNOTATION.into())
        .or_insert_with(|| names::DEFAULT_BROKER_CLASS.into());
    // A Kafka-class Broker's defaults are Knative's Kafka broker ConfigMap (topic
    // partitions, replication, bootstrap servers), not the channel-based one's.
    let config =
        if class == names::KAFKA_BROKER_CLASS || class == names::KAFKA_NAMESPACED_BROKER_CLASS {
            names::KAFKA_BROKER_CONFIG
        } else {
            names::DEFAULT_BROKER_CONFIG
        };
    b.spec.config.get_or_insert_with(|| KReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some(config.into()),
        namespace: Some(names::SYSTEM_NAMESPACE.into()),
    });
    let delivery = b.spec.delivery.get_or_insert_with(|| DeliverySpec {
        retry: Some(10),
        backoff_policy: Some(BackoffPolicy::Exponential),
        backoff_delay: Some("PT0.2S".into()),
        ..Default::default()
    });
    delivery_ns(delivery, ns);
}

/// A Trigger's broker label, its match-all filter, and the namespaces of its references.
fn trigger(t: &mut Trigger, ns: &str) {
    if let Some(broker) = &t.spec.broker {
        t.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(names::BROKER_LABEL.into(), broker.clone());
    }
    if t.spec.filters.is_empty() && t.spec.filter.is_none() {
        t.spec.filter = Some(TriggerFilter::default());
    }
    if let Some(r) = &mut t.spec.broker_ref {
        r.namespace.get_or_insert_with(|| ns.into());
    }
    dest_ns(t.spec.subscriber.as_mut(), ns);
    if let Some(d) = &mut t.spec.delivery {
        delivery_ns(d, ns);
    }
}

/// The Channelable part every channel kind shares: its delivery's namespace.
fn channelable(c: &mut ChannelableSpec, ns: &str) {
    if let Some(d) = &mut c.delivery {
        delivery_ns(d, ns);
    }
}

/// Knative's KafkaChannel fields are plain values, so 0 and "" mean "not set".
fn kafka_channel(s: &mut KafkaChannelSpec, ns: &str) {
    if s.num_partitions.is_none_or(|n| n == 0) {
        s.num_partitions = Some(KAFKA_CHANNEL_PARTITIONS);
    }
    if s.replication_factor.is_none_or(|n| n == 0) {
        s.replication_factor = Some(KAFKA_CHANNEL_REPLICATION_FACTOR);
    }
    if s.retention_duration.as_deref().is_none_or(str::is_empty) {
        s.retention_duration = Some(KAFKA_CHANNEL_RETENTION.into());
    }
    channelable(&mut s.channelable, ns);
}

/// A KafkaSource's consumer group, consumers, initial offset, ordering and references.
fn kafka_source(k: &mut KafkaSource, ns: &str) {
    let group = kafka_source_consumer_group(&k.metadata, ns);
    let s = &mut k.spec;
    if s.consumer_group.as_deref().is_none_or(str::is_empty) {
        s.consumer_group = Some(group);
    }
    s.consumers.get_or_insert(1);
    if s.initial_offset.as_deref().is_none_or(str::is_empty) {
        s.initial_offset = Some(KAFKA_OFFSET_LATEST.into());
    }
    s.ordering
        .get_or_insert_with(|| KAFKA_ORDERING_ORDERED.into());
    dest_ns(s.sink.as_mut(), ns);
    if let Some(d) = &mut s.delivery {
        delivery_ns(d, ns);
    }
}

/// A Subscription's channel, subscriber, reply and dead-letter sink namespaces.
fn subscription(s: &mut SubscriptionSpec, ns: &str) {
    if let Some(c) = &mut s.channel {
        c.namespace.get_or_insert_with(|| ns.into());
    }
    dest_ns(s.subscriber.as_mut(), ns);
    dest_ns(s.reply.as_mut(), ns);
    if let Some(d) = &mut s.delivery {
        delivery_ns(d, ns);
    }
}

/// The namespaces of a Sequence's steps and reply.
fn sequence(s: &mut SequenceSpec, ns: &str) {
    for step in &mut s.steps {
        dest_ns(Some(&mut step.destination), ns);
        if let Some(d) = &mut step.delivery {
            delivery_ns(d, ns);
        }
    }
    dest_ns(s.reply.as_mut(), ns);
}

/// The namespaces of a Parallel's branches and reply.
fn parallel(p: &mut ParallelSpec, ns: &str) {
    for b in &mut p.branches {
        dest_ns(b.filter.as_mut(), ns);
        dest_ns(b.subscriber.as_mut(), ns);
        dest_ns(b.reply.as_mut(), ns);
        if let Some(d) = &mut b.delivery {
            delivery_ns(d, ns);
        }
    }
    dest_ns(p.reply.as_mut(), ns);
}

/// A Service's revision template, and all traffic to its latest revision when none is given.
fn service(s: &mut ServiceSpec) {
    if let Some(t) = &mut s.template {
        revision_template(t);
    }
    if s.traffic.is_empty() {
        s.traffic.push(TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            ..Default::default()
        });
    }
    s.traffic.iter_mut().for_each(traffic_target);
}

/// KafkaChannel `numPartitions` default (Knative's `DefaultNumPartitions`).
const KAFKA_CHANNEL_PARTITIONS: i32 = 1;
/// KafkaChannel `replicationFactor` default (Knative's `DefaultReplicationFactor`).
const KAFKA_CHANNEL_REPLICATION_FACTOR: i32 = 1;
/// KafkaChannel `retentionDuration` default: 7 days (Knative's `DefaultRetentionISO8601Duration`).
const KAFKA_CHANNEL_RETENTION: &str = "PT168H";
/// KafkaSource `initialOffset` default.
const KAFKA_OFFSET_LATEST: &str = "latest";
/// KafkaSource `ordering` default.
const KAFKA_ORDERING_ORDERED: &str = "ordered";

/// The consumer group of a KafkaSource whose `spec.consumerGroup` is empty.
///
/// Knative's webhook appends a random UUID to `knative-kafka-source-`. Knit admits the same
/// manifest again on every edit and restart, and a fresh group each time would restart
/// consumption at `initialOffset`, so the suffix is stable instead: the object's `uid` when the
/// manifest carries one, otherwise `<namespace>-<name>` (unique among KafkaSources).
fn kafka_source_consumer_group(meta: &ObjectMeta, ns: &str) -> String {
    let suffix = match meta.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => format!("{ns}-{}", meta.name.as_deref().unwrap_or_default()),
    };
    format!("{}{suffix}", names::KAFKA_SOURCE_CONSUMER_GROUP_PREFIX)
}

/// The channel implementation used when neither the object nor the `default-ch-webhook`
/// ConfigMap names one.
pub fn default_channel_template() -> ChannelTemplateSpec {
    ChannelTemplateSpec {
        api_version: Some("messaging.knative.dev/v1".into()),
        kind: Some("InMemoryChannel".into()),
        spec: None,
    }
}

fn dest_ns(d: Option<&mut Destination>, ns: &str) {
    if let Some(r) = d.and_then(|d| d.reference.as_mut()) {
        r.namespace.get_or_insert_with(|| ns.to_string());
    }
}

fn delivery_ns(d: &mut DeliverySpec, ns: &str) {
    dest_ns(d.dead_letter_sink.as_mut(), ns);
}

fn traffic_target(t: &mut TrafficTarget) {
    // `latestRevision` defaults to true exactly when no revision is pinned.
    t.latest_revision.get_or_insert(t.revision_name.is_none());
    t.percent.get_or_insert(0);
}

fn revision_template(t: &mut RevisionTemplateSpec) {
    if let Some(spec) = &mut t.spec {
        revision_spec(spec);
    }
}

fn revision_spec(spec: &mut RevisionSpec) {
    spec.timeout_seconds.get_or_insert(300);
    spec.container_concurrency.get_or_insert(0);
    let many = spec.pod.containers.len() > 1;
    for (i, c) in spec.pod.containers.iter_mut().enumerate() {
        container(c, many.then_some(i));
    }
}

fn container(c: &mut Container, index: Option<usize>) {
    if c.name.is_empty() {
        c.name = match index {
            None => "user-container".into(),
            Some(i) => format!("user-container-{i}"),
        };
    }
}
