//! The Contract from reconciled objects: one ingress per Ready Broker or channel, one egress per
//! Ready Trigger or Subscription.

use std::collections::BTreeMap;

use knit_crds::api::duck::{BackoffPolicy, DeliverySpec};
use knit_crds::contract::{
    Backend, Backoff, Contract, DeliveryPolicy, Egress, EgressFilter, Ingress, IngressKind, Reply,
};
use knit_crds::{Object, ObjectKey, duration, names};

use super::World;
use super::conditions::is_ready;
use super::conditions_of;
use super::eventing::trigger_broker;
use super::messaging::subscription_channel;
use super::resolve::{broker_path, channel_host, channel_path};

/// The default most deliveries in flight per Trigger or Subscription.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: u32 = 100;

fn ms(v: Option<&String>) -> Option<u64> {
    v.and_then(|s| duration::parse_iso8601(s).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Turn a DeliverySpec into the resolved policy the dispatcher runs.
pub(crate) fn policy(spec: Option<&DeliverySpec>) -> DeliveryPolicy {
    let Some(d) = spec else {
        return DeliveryPolicy::default();
    };
    DeliveryPolicy {
        retry: d.retry.map(|r| u32::try_from(r).unwrap_or(0)).unwrap_or(0),
        backoff: d.backoff_policy.map(|p| match p {
            BackoffPolicy::Linear => Backoff::Linear,
            BackoffPolicy::Exponential => Backoff::Exponential,
        }),
        backoff_delay_ms: ms(d.backoff_delay.as_ref()).unwrap_or(0),
        backoff_max_ms: ms(d.backoff_max.as_ref()),
        timeout_ms: ms(d.timeout.as_ref()),
        retry_after_max_ms: ms(d.retry_after_max.as_ref()),
        format: d.format,
    }
}

fn flow_control(o: &Object) -> (u32, Option<f64>) {
    let a = o.meta().annotations.as_ref();
    let max = a
        .and_then(|a| a.get(names::MAX_IN_FLIGHT_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    let rate = a
        .and_then(|a| a.get(names::RATE_LIMIT_ANNOTATION))
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| r.is_finite() && *r > 0.0);
    (max, rate)
}

fn reference(o: &Object) -> String {
    format!("{}/{}/{}", o.kind(), o.namespace(), o.name())
}

pub(crate) fn build(world: &World<'_>) -> Contract {
    let mut ingresses: BTreeMap<ObjectKey, Ingress> = BTreeMap::new();
    for (key, o) in &world.objects {
        if !is_ready(conditions_of(o)) {
            continue;
        }
        let (kind, path, hosts) = match o {
            Object::Broker(_) => (
                IngressKind::Broker,
                broker_path(&key.namespace, &key.name),
                vec![],
            ),
            Object::InMemoryChannel(_) => (
                IngressKind::Channel,
                channel_path(&key.namespace, &key.name),
                vec![channel_host(&key.namespace, &key.name)],
            ),
            _ => continue,
        };
        ingresses.insert(
            key.clone(),
            Ingress {
                uid: o.meta().uid.clone().unwrap_or_default(),
                kind,
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                path,
                hosts,
                backend: Backend::Memory,
                egresses: Vec::new(),
            },
        );
    }

    for (key, o) in &world.objects {
        if !is_ready(conditions_of(o)) {
            continue;
        }
        let (max_in_flight, rate_limit) = flow_control(o);
        match o {
            Object::Trigger(t) => {
                let bk = trigger_broker(t, &key.namespace);
                let Some(Object::Broker(b)) = world.objects.get(&bk) else {
                    continue;
                };
                let Some(broker_url) = world.addresses.get(&bk) else {
                    continue;
                };
                let st = t.status.clone().unwrap_or_default();
                let delivery = if t.spec.delivery.as_ref().is_some_and(|d| !d.is_empty()) {
                    t.spec.delivery.as_ref()
                } else {
                    b.spec.delivery.as_ref()
                };
                let egress = Egress {
                    uid: t.metadata.uid.clone().unwrap_or_default(),
                    reference: reference(o),
                    namespace: key.namespace.clone(),
                    filter: Some(EgressFilter {
                        attributes: t.spec.filter.clone(),
                        filters: t.spec.filters.clone(),
                    }),
                    subscriber: st.subscriber_uri.clone(),
                    reply: Some(Reply {
                        url: broker_url.clone(),
                        carry: vec!["knativebrokerttl".into()],
                    }),
                    dead_letter_sink: st.dead_letter_sink_uri.clone(),
                    delivery: policy(delivery),
                    max_in_flight,
                    rate_limit,
                };
                if let Some(i) = ingresses.get_mut(&bk) {
                    i.egresses.push(egress);
                }
            }
            Object::Subscription(s) => {
                let Some(r) = &s.spec.channel else { continue };
                let Ok((_, impl_key)) = subscription_channel(world, r, &key.namespace) else {
                    continue;
                };
                let channel_delivery = match world.objects.get(&impl_key) {
                    Some(Object::InMemoryChannel(c)) => c.spec.channelable.delivery.clone(),
                    _ => None,
                };
                let phys = s
                    .status
                    .as_ref()
                    .and_then(|st| st.physical_subscription.clone())
                    .unwrap_or_default();
                let delivery = if s.spec.delivery.as_ref().is_some_and(|d| !d.is_empty()) {
                    s.spec.delivery.clone()
                } else {
                    channel_delivery
                };
                let egress = Egress {
                    uid: s.metadata.uid.clone().unwrap_or_default(),
                    reference: reference(o),
                    namespace: key.namespace.clone(),
                    filter: None,
                    subscriber: phys.subscriber_uri.clone(),
                    reply: phys
                        .reply_uri
                        .clone()
                        .map(|url| Reply { url, carry: vec![] }),
                    dead_letter_sink: phys.dead_letter_sink_uri.clone(),
                    delivery: policy(delivery.as_ref()),
                    max_in_flight,
                    rate_limit,
                };
                if let Some(i) = ingresses.get_mut(&impl_key) {
                    i.egresses.push(egress);
                }
            }
            _ => {}
        }
    }
    Contract {
        generation: 0,
        ingresses: ingresses.into_values().collect(),
    }
}
