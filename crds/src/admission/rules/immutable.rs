//! Rules that compare an update with the object it replaces: the fields Knative makes
//! immutable, per kind.

use super::FieldError;
use super::common::Errors;
use crate::api::eventing::{Broker, KafkaSinkSpec, Trigger};
use crate::api::messaging::KafkaChannelSpec;
use crate::names;
use crate::object::Object;

/// Every immutable field that `new` changes from `old`.
pub fn validate_update(old: &Object, new: &Object) -> Vec<FieldError> {
    let mut errs = Errors::new();
    match (old, new) {
        (Object::Broker(o), Object::Broker(n)) => broker(o, n, &mut errs),
        (Object::Trigger(o), Object::Trigger(n)) => trigger(o, n, &mut errs),
        (Object::Subscription(o), Object::Subscription(n)) => {
            immutable(&mut errs, "spec.channel", o.spec.channel != n.spec.channel);
        }
        (Object::Channel(o), Object::Channel(n)) => {
            immutable(
                &mut errs,
                "spec.channelTemplate",
                o.spec.channel_template != n.spec.channel_template,
            );
        }
        (Object::KafkaChannel(o), Object::KafkaChannel(n)) => {
            kafka_channel(&o.spec, &n.spec, &mut errs);
        }
        (Object::KafkaSink(o), Object::KafkaSink(n)) => kafka_sink(&o.spec, &n.spec, &mut errs),
        (Object::KafkaSource(o), Object::KafkaSource(n)) => {
            immutable(
                &mut errs,
                "spec.consumerGroup",
                o.spec.consumer_group != n.spec.consumer_group,
            );
        }
        _ => {}
    }
    errs.0
}

fn immutable(errs: &mut Errors, path: &str, changed: bool) {
    if changed {
        errs.add(
            path,
            "field is immutable (delete and re-create the object to change it)",
        );
    }
}

/// A Broker's class annotation and config.
fn broker(o: &Broker, n: &Broker, errs: &mut Errors) {
    let class = |b: &Broker| {
        b.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::BROKER_CLASS_ANNOTATION))
            .cloned()
    };
    immutable(
        errs,
        &format!("metadata.annotations.{}", names::BROKER_CLASS_ANNOTATION),
        class(o) != class(n),
    );
    immutable(errs, "spec.config", o.spec.config != n.spec.config);
}

/// A Trigger's broker, by name or by reference.
fn trigger(o: &Trigger, n: &Trigger, errs: &mut Errors) {
    immutable(errs, "spec.broker", o.spec.broker != n.spec.broker);
    immutable(
        errs,
        "spec.brokerRef",
        o.spec.broker_ref != n.spec.broker_ref,
    );
}

/// Knative's KafkaChannel: everything but the Channelable part.
fn kafka_channel(o: &KafkaChannelSpec, n: &KafkaChannelSpec, errs: &mut Errors) {
    immutable(
        errs,
        "spec.numPartitions",
        o.num_partitions != n.num_partitions,
    );
    immutable(
        errs,
        "spec.replicationFactor",
        o.replication_factor != n.replication_factor,
    );
    immutable(
        errs,
        "spec.retentionDuration",
        o.retention_duration != n.retention_duration,
    );
}

/// A KafkaSink's topic and its shape.
fn kafka_sink(o: &KafkaSinkSpec, n: &KafkaSinkSpec, errs: &mut Errors) {
    immutable(errs, "spec.topic", o.topic != n.topic);
    immutable(
        errs,
        "spec.numPartitions",
        o.num_partitions != n.num_partitions,
    );
    immutable(
        errs,
        "spec.replicationFactor",
        o.replication_factor != n.replication_factor,
    );
}
