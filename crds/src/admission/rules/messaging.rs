//! Channels, Subscriptions, Sequence and Parallel.

use super::common::{
    Errors, delivery, destination, kreference, overflow_annotation, required_destination,
};
use crate::api::flows::{Parallel, Sequence};
use crate::api::messaging::{ChannelTemplateSpec, ChannelableSpec, KafkaChannelSpec, Subscription};
use crate::duration;

pub(crate) fn channelable(c: &ChannelableSpec, errs: &mut Errors) {
    if let Some(d) = &c.delivery {
        delivery(d, "spec.delivery", errs);
    }
}

pub(crate) fn channel_template(t: Option<&ChannelTemplateSpec>, path: &str, errs: &mut Errors) {
    let Some(t) = t else { return };
    if t.kind.as_deref().is_none_or(str::is_empty) {
        errs.missing(format!("{path}.kind"));
    }
    if t.api_version.as_deref().is_none_or(str::is_empty) {
        errs.missing(format!("{path}.apiVersion"));
    }
    if let (Some(api), Some(kind)) = (&t.api_version, &t.kind) {
        let known = [
            ("messaging.knative.dev/v1", "InMemoryChannel"),
            ("messaging.knative.dev/v1beta1", "KafkaChannel"),
            ("messaging.knative.dev/v1alpha1", "NatsJetStreamChannel"),
        ];
        if !known.contains(&(api.as_str(), kind.as_str())) {
            errs.add(
                path,
                format!("unsupported channel implementation {kind} ({api}); use InMemoryChannel, KafkaChannel or NatsJetStreamChannel"),
            );
        }
    }
}

pub(crate) fn kafka_channel(c: &KafkaChannelSpec, errs: &mut Errors) {
    if c.num_partitions.is_some_and(|n| n <= 0) {
        errs.add("spec.numPartitions", "must be more than 0");
    }
    if c.replication_factor.is_some_and(|n| n <= 0) {
        errs.add("spec.replicationFactor", "must be more than 0");
    }
    if let Some(r) = &c.retention_duration
        && let Err(e) = duration::parse_iso8601(r)
    {
        errs.add("spec.retentionDuration", format!("invalid value: {e}"));
    }
    channelable(&c.channelable, errs);
}

pub(crate) fn subscription(s: &Subscription, errs: &mut Errors) {
    match &s.spec.channel {
        None => errs.missing("spec.channel"),
        Some(c) => {
            kreference(c, "spec.channel", errs);
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            if c.namespace.as_deref().is_some_and(|n| n != ns) {
                errs.add(
                    "spec.channel.namespace",
                    "must be the Subscription's namespace",
                );
            }
        }
    }
    // Knative: at least one of subscriber and reply (a reply-only subscription forwards).
    match (&s.spec.subscriber, &s.spec.reply) {
        (None, None) => errs.add("spec", "missing field(s): spec.subscriber, spec.reply: the Subscription must reference at least one of (reply or a subscriber)"),
        (sub, reply) => {
            if let Some(d) = sub {
                destination(d, "spec.subscriber", errs);
            }
            if let Some(d) = reply {
                destination(d, "spec.reply", errs);
            }
        }
    }
    if let Some(d) = &s.spec.delivery {
        delivery(d, "spec.delivery", errs);
    }
    if let Some(a) = &s.metadata.annotations {
        overflow_annotation(a, errs);
    }
}

pub(crate) fn sequence(s: &Sequence, errs: &mut Errors) {
    if s.spec.steps.is_empty() {
        errs.missing("spec.steps");
    }
    for (i, step) in s.spec.steps.iter().enumerate() {
        destination(&step.destination, &format!("spec.steps[{i}]"), errs);
        if let Some(d) = &step.delivery {
            delivery(d, &format!("spec.steps[{i}].delivery"), errs);
        }
    }
    channel_template(
        s.spec.channel_template.as_ref(),
        "spec.channelTemplate",
        errs,
    );
    if let Some(r) = &s.spec.reply {
        destination(r, "spec.reply", errs);
    }
}

pub(crate) fn parallel(p: &Parallel, errs: &mut Errors) {
    if p.spec.branches.is_empty() {
        errs.missing("spec.branches");
    }
    for (i, b) in p.spec.branches.iter().enumerate() {
        let path = format!("spec.branches[{i}]");
        if let Some(f) = &b.filter {
            destination(f, &format!("{path}.filter"), errs);
        }
        required_destination(b.subscriber.as_ref(), &format!("{path}.subscriber"), errs);
        if let Some(r) = &b.reply {
            destination(r, &format!("{path}.reply"), errs);
        }
        if let Some(d) = &b.delivery {
            delivery(d, &format!("{path}.delivery"), errs);
        }
    }
    channel_template(
        p.spec.channel_template.as_ref(),
        "spec.channelTemplate",
        errs,
    );
    if let Some(r) = &p.spec.reply {
        destination(r, "spec.reply", errs);
    }
}
