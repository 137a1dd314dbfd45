//! The Contract from reconciled objects: one ingress per Broker or channel with an address and a
//! backend, one egress per Trigger or Subscription whose destinations resolve. Readiness that
//! depends on the data plane (topics, consumer groups) is not required here: the data plane
//! needs the entry to get there, and reports back.

use std::collections::BTreeMap;

use knit_crds::api::duck::{BackoffPolicy, DeliverySpec, Destination};
use knit_crds::contract::{
    Backoff, Contract, DeliveryPolicy, Egress, EgressFilter, Ingress, IngressKind, Ordering,
    Overflow, Reply, StartAt,
};
use knit_crds::{Object, ObjectKey, duration, names};

use super::World;
use super::backends;
use super::conditions_of;
use super::eventing::trigger_broker;
use super::kafka_source;
use super::messaging::subscription_channel;
use super::resolve::{broker_path, channel_host, channel_path, sink_path};

/// The default most deliveries in flight per Trigger or Subscription.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: u32 = 100;
/// The most deliveries one egress may have in flight, whatever its annotation asks.
pub(crate) const MAX_IN_FLIGHT: u32 = 10_000;

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

/// The `CACerts` a Destination sets (Knative: they replace the Addressable's).
fn ca_certs(d: Option<&Destination>) -> Option<String> {
    d.and_then(|d| d.ca_certs.clone())
        .filter(|c| !c.trim().is_empty())
}

/// The `CACerts` of a delivery's dead-letter sink.
fn dead_letter_ca_certs(delivery: Option<&DeliverySpec>) -> Option<String> {
    ca_certs(delivery.and_then(|d| d.dead_letter_sink.as_ref()))
}

fn annotation<'a>(o: &'a Object, name: &str) -> Option<&'a str> {
    o.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(name))
        .map(String::as_str)
}

fn flow_control(o: &Object) -> (u32, Option<f64>) {
    let max = annotation(o, names::MAX_IN_FLIGHT_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .map(|n: u32| n.min(MAX_IN_FLIGHT))
        .unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    let rate = annotation(o, names::RATE_LIMIT_ANNOTATION)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| r.is_finite() && *r > 0.0);
    (max, rate)
}

/// `kafka.eventing.knative.dev/delivery.order` (Triggers; `unordered` by default, as Knative).
fn ordering(o: &Object) -> Ordering {
    match annotation(o, names::DELIVERY_ORDER_ANNOTATION).and_then(names::delivery_order) {
        Some(names::DELIVERY_ORDER_ORDERED) => Ordering::Ordered,
        Some(names::DELIVERY_ORDER_ORDERED_BY_KEY) => Ordering::OrderedByKey,
        _ => Ordering::Unordered,
    }
}

/// `knit.dev/overflow`: `shed` (default) or `block`.
fn overflow(o: &Object) -> Overflow {
    match annotation(o, names::OVERFLOW_ANNOTATION) {
        Some(names::OVERFLOW_BLOCK) => Overflow::Block,
        _ => Overflow::Shed,
    }
}

fn reference(o: &Object) -> String {
    format!("{}/{}/{}", o.kind(), o.namespace(), o.name())
}

/// Whether these conditions are all True (those present; a missing one counts as not True).
fn all_true(o: &Object, types: &[&str]) -> bool {
    let conds = conditions_of(o);
    types
        .iter()
        .all(|t| conds.iter().any(|c| c.type_ == *t && c.status == "True"))
}

/// The Contract: the ingresses with their egresses, the sources, and serving's section.
pub(crate) fn build(world: &World<'_>) -> Contract {
    let mut ingresses = ingresses(world);
    for (key, o) in &world.objects {
        let egress = match o {
            Object::Trigger(t) => trigger_egress(world, key, o, t),
            Object::Subscription(s) => subscription_egress(world, key, o, s),
            Object::KafkaSource(k) => Some((key.clone(), kafka_source_egress(world, key, o, k))),
            _ => None,
        };
        if let Some((ingress, egress)) = egress
            && let Some(i) = ingresses.get_mut(&ingress)
        {
            i.egresses.push(std::sync::Arc::new(egress));
        }
    }
    Contract {
        generation: 0,
        ingresses: ingresses.into_values().collect(),
        sources: sources(world),
        serving: super::serving::contract::build(world),
        transport_encryption: world.encryption,
        oidc: world.oidc.is_some(),
    }
}

/// The sources, each with the identity its deliveries carry (OIDC on): its sink's audience is
/// `spec.sink.audience`, else the Broker's or channel's it resolves to.
fn sources(world: &World<'_>) -> Vec<knit_crds::contract::Source> {
    let mut sources = world.sources.clone();
    if world.oidc.is_none() {
        return sources;
    }
    for s in &mut sources {
        let Some(kind) = s
            .reference
            .split('/')
            .next()
            .and_then(knit_crds::Kind::lookup)
        else {
            continue;
        };
        let key = ObjectKey::new(kind, &s.namespace, &s.name);
        if let knit_crds::contract::Adapter::GitHub(g) = &mut s.adapter {
            g.auth = world.ingress_auth(&key);
        }
        let sink: Option<Destination> = world
            .objects
            .get(&key)
            .and_then(|o| o.to_json().pointer("/spec/sink").cloned())
            .and_then(|v| serde_json::from_value(v).ok());
        s.auth = world.egress_auth(
            &key,
            (sink.as_ref(), Some(s.sink.as_str())),
            (None, None),
            (None, None),
        );
    }
    sources
}

/// One ingress per Broker, channel, KafkaSink and KafkaSource that runs, no egresses yet.
fn ingresses(world: &World<'_>) -> BTreeMap<ObjectKey, Ingress> {
    let mut ingresses = BTreeMap::new();
    for (key, backend) in &world.backends {
        let Some(o) = world.objects.get(key) else {
            continue;
        };
        // An ingress runs once its object has an address and a backend: a dead-letter sink that
        // does not resolve, or a topic still being created, does not stop it (the data plane
        // answers 503 until its log is open).
        let runs = match o {
            Object::KafkaSource(_) => all_true(o, &["SinkProvided"]),
            _ => all_true(o, &["Addressable"]),
        };
        if !runs {
            continue;
        }
        let uid = o.meta().uid.clone().unwrap_or_default();
        let (kind, path, hosts, uid) = match o {
            Object::Broker(_) => (
                IngressKind::Broker,
                broker_path(&key.namespace, &key.name),
                vec![],
                uid,
            ),
            Object::InMemoryChannel(_)
            | Object::KafkaChannel(_)
            | Object::NatsJetStreamChannel(_) => (
                IngressKind::Channel,
                channel_path(&key.namespace, &key.name),
                vec![channel_host(&key.namespace, &key.name)],
                uid,
            ),
            Object::KafkaSink(_) => (
                IngressKind::Sink,
                sink_path(&key.namespace, &key.name),
                vec![],
                uid,
            ),
            Object::KafkaSource(_) => (
                IngressKind::Source,
                String::new(),
                vec![],
                kafka_source::log_uid(&uid),
            ),
            _ => continue,
        };
        ingresses.insert(
            key.clone(),
            Ingress {
                uid,
                kind,
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                path,
                hosts,
                backend: backend.clone(),
                egresses: Vec::new(),
                auth: world.ingress_auth(key),
            },
        );
    }
    ingresses
}

/// A ready Trigger's egress, on its Broker's ingress; replies go back to the Broker.
fn trigger_egress(
    world: &World<'_>,
    key: &ObjectKey,
    o: &Object,
    t: &knit_crds::api::eventing::Trigger,
) -> Option<(ObjectKey, Egress)> {
    if !all_true(
        o,
        &[
            "SubscriberResolved",
            "DependencyReady",
            "DeadLetterSinkResolved",
        ],
    ) {
        return None;
    }
    let bk = trigger_broker(t, &key.namespace);
    let Some(Object::Broker(b)) = world.objects.get(&bk) else {
        return None;
    };
    let broker_url = world.addresses.get(&bk)?;
    let st = t.status.clone().unwrap_or_default();
    let delivery = if t.spec.delivery.as_ref().is_some_and(|d| !d.is_empty()) {
        t.spec.delivery.as_ref()
    } else {
        b.spec.delivery.as_ref()
    };
    let (max_in_flight, rate_limit) = flow_control(o);
    let egress = Egress {
        uid: t.metadata.uid.clone().unwrap_or_default(),
        group: match world.backends.get(&bk) {
            Some(knit_crds::contract::Backend::Nats(_)) => {
                backends::nats_trigger_group(&key.namespace, &key.name)
            }
            _ => backends::trigger_group(&key.namespace, &key.name),
        },
        reference: reference(o),
        namespace: key.namespace.clone(),
        filter: Some(EgressFilter {
            attributes: t.spec.filter.clone(),
            filters: t.spec.filters.clone(),
        }),
        subscriber: st.subscriber_uri.clone(),
        subscriber_ca_certs: ca_certs(t.spec.subscriber.as_ref()),
        reply: Some(Reply {
            url: broker_url.clone(),
            ca_certs: None,
            carry: vec!["knativebrokerttl".into()],
        }),
        dead_letter_sink: st.dead_letter_sink_uri.clone(),
        dead_letter_sink_ca_certs: dead_letter_ca_certs(delivery),
        delivery: policy(delivery),
        max_in_flight,
        rate_limit,
        ordering: ordering(o),
        overflow: overflow(o),
        start: StartAt::Latest,
        auth: world.egress_auth(
            key,
            (t.spec.subscriber.as_ref(), st.subscriber_uri.as_deref()),
            (None, Some(broker_url.as_str())),
            (
                delivery.and_then(|d| d.dead_letter_sink.as_ref()),
                st.dead_letter_sink_uri.as_deref(),
            ),
        ),
    };
    Some((bk, egress))
}

/// A resolved Subscription's egress, on its channel implementation's ingress.
fn subscription_egress(
    world: &World<'_>,
    key: &ObjectKey,
    o: &Object,
    s: &knit_crds::api::messaging::Subscription,
) -> Option<(ObjectKey, Egress)> {
    if !all_true(o, &["Resolved"]) {
        return None;
    }
    let r = s.spec.channel.as_ref()?;
    let (_, impl_key) = subscription_channel(world, r, &key.namespace).ok()?;
    let channel_delivery = match world.objects.get(&impl_key) {
        Some(Object::InMemoryChannel(c)) => c.spec.channelable.delivery.clone(),
        Some(Object::KafkaChannel(c)) => c.spec.channelable.delivery.clone(),
        Some(Object::NatsJetStreamChannel(c)) => c.spec.channelable.delivery.clone(),
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
    let uid = s.metadata.uid.clone().unwrap_or_default();
    let (max_in_flight, rate_limit) = flow_control(o);
    let egress = Egress {
        group: match world.backends.get(&impl_key) {
            Some(knit_crds::contract::Backend::Nats(_)) => {
                backends::nats_subscription_group(&key.namespace, &key.name)
            }
            _ => backends::subscription_group(&key.namespace, &impl_key.name, &key.name),
        },
        uid,
        reference: reference(o),
        namespace: key.namespace.clone(),
        filter: None,
        subscriber: phys.subscriber_uri.clone(),
        subscriber_ca_certs: ca_certs(s.spec.subscriber.as_ref()),
        reply: phys.reply_uri.clone().map(|url| Reply {
            url,
            ca_certs: ca_certs(s.spec.reply.as_ref()),
            carry: vec![],
        }),
        dead_letter_sink: phys.dead_letter_sink_uri.clone(),
        dead_letter_sink_ca_certs: dead_letter_ca_certs(delivery.as_ref()),
        delivery: policy(delivery.as_ref()),
        max_in_flight,
        rate_limit,
        // Subscriptions are unordered unless asked (Knative forces `ordered` on
        // KafkaChannel subscriptions; eventing-kafka-broker#2699 asks otherwise).
        ordering: ordering(o),
        overflow: overflow(o),
        start: StartAt::Latest,
        auth: world.egress_auth(
            key,
            (s.spec.subscriber.as_ref(), phys.subscriber_uri.as_deref()),
            (s.spec.reply.as_ref(), phys.reply_uri.as_deref()),
            (
                delivery.as_ref().and_then(|d| d.dead_letter_sink.as_ref()),
                phys.dead_letter_sink_uri.as_deref(),
            ),
        ),
    };
    Some((impl_key, egress))
}

/// A KafkaSource's one egress, on its own ingress (its topics): to its sink.
fn kafka_source_egress(
    world: &World<'_>,
    key: &ObjectKey,
    o: &Object,
    k: &knit_crds::api::sources::KafkaSource,
) -> Egress {
    let st = k.status.clone().unwrap_or_default();
    let dls = k
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref())
        .and_then(|d| world.resolve(d, &key.namespace).ok());
    let (max_in_flight, rate_limit) = flow_control(o);
    Egress {
        uid: k.metadata.uid.clone().unwrap_or_default(),
        group: k.spec.consumer_group.clone().unwrap_or_else(|| {
            format!(
                "{}{}-{}",
                names::KAFKA_SOURCE_CONSUMER_GROUP_PREFIX,
                key.namespace,
                key.name
            )
        }),
        reference: reference(o),
        namespace: key.namespace.clone(),
        filter: None,
        subscriber: st.source.sink_uri.clone(),
        subscriber_ca_certs: ca_certs(k.spec.sink.as_ref()),
        reply: None,
        dead_letter_sink: dls.clone(),
        dead_letter_sink_ca_certs: dead_letter_ca_certs(k.spec.delivery.as_ref()),
        delivery: policy(k.spec.delivery.as_ref()),
        max_in_flight,
        rate_limit,
        // Knative's KafkaSource default is `ordered` (one in flight per partition).
        ordering: match k.spec.ordering.as_deref() {
            Some("unordered") => Ordering::Unordered,
            _ => Ordering::Ordered,
        },
        overflow: Overflow::Shed,
        start: match k.spec.initial_offset.as_deref() {
            Some("earliest") => StartAt::Earliest,
            _ => StartAt::Latest,
        },
        auth: world.egress_auth(
            key,
            (k.spec.sink.as_ref(), st.source.sink_uri.as_deref()),
            (None, None),
            (
                k.spec
                    .delivery
                    .as_ref()
                    .and_then(|d| d.dead_letter_sink.as_ref()),
                dls.as_deref(),
            ),
        ),
    }
}
