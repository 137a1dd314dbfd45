//! Knative's semantic validation rules, per kind, on typed (defaulted) objects.

mod common;
mod domain_mapping;
mod eventing;
mod messaging;
mod serving;
pub(super) mod sources;

use common::Errors;

use super::{FieldError, Hooks};
use crate::names;
use crate::object::Object;

/// Every rule violation of `object`.
pub(crate) fn validate(object: &Object, hooks: &Hooks) -> Vec<FieldError> {
    let mut errs = Errors::new();
    match object {
        Object::Broker(b) => eventing::broker(b, &mut errs),
        Object::Trigger(t) => eventing::trigger(t, hooks, &mut errs),
        Object::EventType(e) => eventing::event_type(e, &mut errs),
        Object::KafkaSink(k) => eventing::kafka_sink(k, &mut errs),
        Object::Channel(c) => {
            messaging::channel_template(
                c.spec.channel_template.as_ref(),
                "spec.channelTemplate",
                &mut errs,
            );
            messaging::channelable(&c.spec.channelable, &mut errs);
        }
        Object::InMemoryChannel(c) => messaging::channelable(&c.spec.channelable, &mut errs),
        Object::NatsJetStreamChannel(c) => messaging::channelable(&c.spec.channelable, &mut errs),
        Object::KafkaChannel(c) => messaging::kafka_channel(&c.spec, &mut errs),
        Object::Subscription(s) => messaging::subscription(s, &mut errs),
        Object::Sequence(s) => messaging::sequence(s, &mut errs),
        Object::Parallel(p) => messaging::parallel(p, &mut errs),
        Object::PingSource(p) => sources::ping(p, &mut errs),
        Object::ApiServerSource(a) => sources::api_server(a, hooks, &mut errs),
        Object::SinkBinding(b) => sources::sink_binding(b, &mut errs),
        Object::ContainerSource(c) => sources::container(c, &mut errs),
        Object::GitHubSource(g) => sources::github(g, &mut errs),
        Object::KafkaSource(k) => sources::kafka(k, &mut errs),
        Object::CloudPubSubSource(p) => sources::pubsub(p, &mut errs),
        Object::Service(s) => {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            serving::template(s.spec.template.as_ref(), name, "spec.template", &mut errs);
            serving::traffic(&s.spec.traffic, "spec.traffic", true, &mut errs);
            serving::rollout(s.metadata.annotations.as_ref(), &mut errs);
        }
        Object::Configuration(c) => {
            let name = c.metadata.name.as_deref().unwrap_or_default();
            serving::template(c.spec.template.as_ref(), name, "spec.template", &mut errs);
        }
        Object::Revision(r) => {
            serving::revision(&r.spec.revision, "spec", &mut errs);
            if let Some(a) = &r.metadata.annotations {
                serving::autoscaling(a, "metadata.annotations", &mut errs);
            }
        }
        Object::Route(r) => {
            if r.spec.traffic.is_empty() {
                errs.missing("spec.traffic");
            }
            serving::traffic(&r.spec.traffic, "spec.traffic", false, &mut errs);
            serving::rollout(r.metadata.annotations.as_ref(), &mut errs);
        }
        Object::DomainMapping(d) => domain_mapping::validate(d, &mut errs),
        // `data` of a Secret is base64 by definition; deserializing it already checked that.
        Object::ConfigMap(_) | Object::Secret(_) => {}
    }
    errs.0
}

/// Rules that compare an update with the object it replaces: immutable fields.
pub fn validate_update(old: &Object, new: &Object) -> Vec<FieldError> {
    let mut errs = Errors::new();
    let immutable = |errs: &mut Errors, path: &str, changed: bool| {
        if changed {
            errs.add(
                path,
                "field is immutable (delete and re-create the object to change it)",
            );
        }
    };
    match (old, new) {
        (Object::Broker(o), Object::Broker(n)) => {
            let class = |b: &crate::api::eventing::Broker| {
                b.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(names::BROKER_CLASS_ANNOTATION))
                    .cloned()
            };
            immutable(
                &mut errs,
                &format!("metadata.annotations.{}", names::BROKER_CLASS_ANNOTATION),
                class(o) != class(n),
            );
            immutable(&mut errs, "spec.config", o.spec.config != n.spec.config);
        }
        (Object::Trigger(o), Object::Trigger(n)) => {
            immutable(&mut errs, "spec.broker", o.spec.broker != n.spec.broker);
            immutable(
                &mut errs,
                "spec.brokerRef",
                o.spec.broker_ref != n.spec.broker_ref,
            );
        }
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
        // Knative's KafkaChannel: everything but the Channelable part is immutable.
        (Object::KafkaChannel(o), Object::KafkaChannel(n)) => {
            let (o, n) = (&o.spec, &n.spec);
            immutable(
                &mut errs,
                "spec.numPartitions",
                o.num_partitions != n.num_partitions,
            );
            immutable(
                &mut errs,
                "spec.replicationFactor",
                o.replication_factor != n.replication_factor,
            );
            immutable(
                &mut errs,
                "spec.retentionDuration",
                o.retention_duration != n.retention_duration,
            );
        }
        (Object::KafkaSink(o), Object::KafkaSink(n)) => {
            let (o, n) = (&o.spec, &n.spec);
            immutable(&mut errs, "spec.topic", o.topic != n.topic);
            immutable(
                &mut errs,
                "spec.numPartitions",
                o.num_partitions != n.num_partitions,
            );
            immutable(
                &mut errs,
                "spec.replicationFactor",
                o.replication_factor != n.replication_factor,
            );
        }
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
