//! Knative's semantic validation rules, per kind, on typed (defaulted) objects.

mod autoscaling;
mod common;
mod config_maps;
mod domain_mapping;
mod eventing;
mod immutable;
mod messaging;
mod serving;
pub(super) mod sources;

use common::Errors;
pub use immutable::validate_update;

use super::{FieldError, Hooks};
use crate::object::Object;

/// Every rule violation of `object`.
pub(crate) fn validate(object: &Object, hooks: &Hooks) -> Vec<FieldError> {
    let mut errs = Errors::new();
    match object {
        Object::Broker(b) => eventing::broker(b, &mut errs),
        Object::Trigger(t) => eventing::trigger(t, hooks, &mut errs),
        Object::EventType(e) => eventing::event_type(e, &mut errs),
        Object::KafkaSink(k) => eventing::kafka_sink(k, &mut errs),
        Object::EventPolicy(p) => eventing::event_policy(p, hooks, &mut errs),
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
                autoscaling::annotations(a, "metadata.annotations", &mut errs);
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
        Object::ConfigMap(cm) => config_maps::validate(cm, &mut errs),
        // `data` of a Secret is base64 by definition; deserializing it already checked that.
        Object::Secret(_) => {}
    }
    errs.0
}
