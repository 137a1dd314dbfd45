//! Broker, Trigger and EventType statuses.

use knit_crds::api::duck::{Condition, DeliverySpec};
use std::collections::BTreeMap;

use knit_crds::api::eventing::{BrokerStatus, EventTypeStatus, Trigger, TriggerStatus};
use knit_crds::{Kind, Object, ObjectKey, names};

use knit_crds::contract::Backend;

use super::World;
use super::backends;
use super::conditions::{Conditions, ready_of};
use super::conditions_of;
use super::resolve::{broker_class, referenced_kind};

/// Resolve a delivery spec's dead-letter sink into `DeadLetterSinkResolved`.
pub(crate) fn dead_letter_sink(
    world: &World<'_>,
    delivery: Option<&DeliverySpec>,
    ns: &str,
    c: &mut Conditions,
) -> Option<String> {
    match delivery.and_then(|d| d.dead_letter_sink.as_ref()) {
        Some(dls) => match world.resolve(dls, ns) {
            Ok(u) => {
                c.ok("DeadLetterSinkResolved");
                Some(u)
            }
            Err(e) => {
                c.fail(
                    "DeadLetterSinkResolved",
                    "Unable to get the DeadLetterSink's URI",
                    e.to_string(),
                );
                None
            }
        },
        None => {
            no_dead_letter_sink(c);
            None
        }
    }
}

/// `DeadLetterSinkResolved` true because there is none, as Knative words it.
fn no_dead_letter_sink(c: &mut Conditions) {
    c.ok_because(
        "DeadLetterSinkResolved",
        "DeadLetterSinkNotConfigured",
        "No dead letter sink is configured.",
    );
}

/// A Broker of a class Knit does not run: a Knative class whose backend is not here, or an
/// unknown one.
fn not_runnable(class: &str, c: &mut Conditions) {
    if names::BROKER_CLASSES.contains(&class) {
        c.fail(
            "IngressReady",
            "BackendNotConfigured",
            format!("broker class {class} needs a backend this Knit build does not run yet; use {}, Kafka or {}", names::DEFAULT_BROKER_CLASS, names::NATS_JETSTREAM_BROKER_CLASS),
        );
    } else {
        c.fail(
            "IngressReady",
            "BrokerClassNotSupported",
            format!(
                "Knit does not run broker class {class:?}; use {}, Kafka or {}",
                names::DEFAULT_BROKER_CLASS,
                names::NATS_JETSTREAM_BROKER_CLASS
            ),
        );
    }
}

pub(crate) fn brokers(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Broker) {
        let Some(Object::Broker(mut b)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let mut c = Conditions::new();
        let mut status = BrokerStatus::default();
        let class = broker_class(&Object::Broker(b.clone())).unwrap_or_default();
        let mut deps: Vec<&str> = vec![
            "IngressReady",
            "TriggerChannelReady",
            "FilterReady",
            "Addressable",
            "DeadLetterSinkResolved",
        ];
        let runnable = backends::is_runnable_class(&class);
        if runnable {
            c.ok("IngressReady").ok("FilterReady");
            let template = if class == names::DEFAULT_BROKER_CLASS {
                channel_config(world, b.spec.config.as_ref(), &mut c)
            } else {
                c.ok("TriggerChannelReady");
                None
            };
            match backends::broker(
                world,
                &key,
                &class,
                b.spec.config.as_ref(),
                template.as_deref(),
            ) {
                Ok(backend) => {
                    let durable = match backend {
                        Backend::Kafka(_) => Some(("TopicReady", "TopicNotReady")),
                        Backend::Nats(_) => Some(("StreamReady", "StreamNotReady")),
                        Backend::Memory => None,
                    };
                    if let Some((type_, waiting)) = durable {
                        deps.push(type_);
                        status.status.annotations = backends::data_plane(
                            world,
                            b.metadata.uid.as_deref(),
                            type_,
                            waiting,
                            &mut c,
                        );
                    }
                    world.backends.insert(key.clone(), backend);
                }
                Err(nb) => {
                    c.fail("TriggerChannelReady", nb.reason, nb.message);
                }
            }
            if let Some(addr) =
                world.addressable(&key, &mut c, "NoAddress", "the broker has no address")
            {
                status.address = Some(addr);
                status.addresses = world.address_list(&key);
            }
            status.dead_letter_sink_uri =
                dead_letter_sink(world, b.spec.delivery.as_ref(), &key.namespace, &mut c);
        } else {
            not_runnable(&class, &mut c);
        }
        status.status.conditions = c.roll_up(&deps);
        b.status = Some(status);
        world.objects.insert(key, Object::Broker(b));
    }
}

/// `spec.config` of an MTChannelBasedBroker names the ConfigMap holding its channel template;
/// returns the template's kind when it names one.
fn channel_config(
    world: &World<'_>,
    config: Option<&knit_crds::api::duck::KReference>,
    c: &mut Conditions,
) -> Option<String> {
    let Some(cfg) = config else {
        c.ok("TriggerChannelReady");
        return None;
    };
    let name = cfg.name.clone().unwrap_or_default();
    let ns = cfg
        .namespace
        .clone()
        .unwrap_or_else(|| names::SYSTEM_NAMESPACE.into());
    if name == names::DEFAULT_BROKER_CONFIG && ns == names::SYSTEM_NAMESPACE {
        c.ok("TriggerChannelReady");
        return None;
    }
    let key = ObjectKey::new(Kind::ConfigMap, &ns, &name);
    let Some(Object::ConfigMap(cm)) = world.objects.get(&key) else {
        c.fail(
            "TriggerChannelReady",
            "ConfigMapNotFound",
            format!("ConfigMap {ns}/{name} does not exist"),
        );
        return None;
    };
    let template = cm
        .data
        .as_ref()
        .and_then(|d| d.get("channel-template-spec"))
        .cloned()
        .unwrap_or_default();
    let kind = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("kind:"))
        .map(|k| k.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "InMemoryChannel".into());
    if kind == "InMemoryChannel" || kind == "KafkaChannel" || kind == "NatsJetStreamChannel" {
        c.ok("TriggerChannelReady");
        Some(kind)
    } else {
        c.fail(
            "TriggerChannelReady",
            "ChannelTemplateNotSupported",
            format!("ConfigMap {ns}/{name} asks for {kind} channels, which this Knit build does not run yet"),
        );
        None
    }
}

fn propagate(
    c: &mut Conditions,
    type_: &str,
    from: Option<&Condition>,
    missing_reason: &str,
    missing_message: String,
) {
    match from {
        None => {
            c.fail(type_, missing_reason, missing_message);
        }
        Some(r) if r.status == "True" => {
            c.ok(type_);
        }
        Some(r) if r.status == "False" => {
            c.fail(
                type_,
                r.reason.as_deref().unwrap_or_default(),
                r.message.clone().unwrap_or_default(),
            );
        }
        Some(r) => {
            c.unknown(
                type_,
                r.reason.as_deref().unwrap_or_default(),
                r.message.clone().unwrap_or_default(),
            );
        }
    }
}

/// The Broker a Trigger points at.
pub(crate) fn trigger_broker(t: &knit_crds::api::eventing::Trigger, ns: &str) -> ObjectKey {
    match (&t.spec.broker, &t.spec.broker_ref) {
        (Some(b), _) => ObjectKey::new(Kind::Broker, ns, b),
        (None, Some(r)) => ObjectKey::new(
            Kind::Broker,
            r.namespace.as_deref().unwrap_or(ns),
            r.name.as_deref().unwrap_or_default(),
        ),
        (None, None) => ObjectKey::new(Kind::Broker, ns, ""),
    }
}

/// Trigger statuses: the Broker, the data plane's consumer group, the dependency, the
/// subscriber and the dead-letter sink.
pub(crate) fn triggers(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Trigger) {
        let Some(Object::Trigger(mut t)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let ns = key.namespace.clone();
        let mut c = Conditions::new();
        let mut status = TriggerStatus::default();
        let broker_key = trigger_broker(&t, &ns);
        let broker = world.objects.get(&broker_key);
        let broker_ready = broker.and_then(|b| ready_of(conditions_of(b)).cloned());
        propagate(
            &mut c,
            "BrokerReady",
            broker_ready.as_ref(),
            "BrokerDoesNotExist",
            format!("Broker {:?} does not exist", broker_key.name),
        );
        status.status.annotations = trigger_subscription(world, &t, &broker_key, &mut c);
        dependency(world, &t, &ns, &mut c);
        status.subscriber_uri = trigger_subscriber(world, &t, &ns, &mut c);
        status.dead_letter_sink_uri = trigger_dead_letter_sink(world, &t, broker, &ns, &mut c);
        backends::keeping_up(world, t.metadata.uid.as_deref(), &mut c);
        status.status.conditions = c.roll_up(&[
            "BrokerReady",
            "SubscriptionReady",
            "DependencyReady",
            "SubscriberResolved",
            "DeadLetterSinkResolved",
        ]);
        t.status = Some(status);
        world.objects.insert(key, Object::Trigger(t));
    }
}

/// `SubscriptionReady`: on a Kafka-backed Broker, what the data plane reports of the
/// Trigger's consumer group (whose annotations are returned); otherwise the Broker's
/// readiness.
fn trigger_subscription(
    world: &World<'_>,
    t: &Trigger,
    broker_key: &ObjectKey,
    c: &mut Conditions,
) -> BTreeMap<String, String> {
    let durable = matches!(
        world.backends.get(broker_key),
        Some(Backend::Kafka(_) | Backend::Nats(_))
    );
    if c.is_true("BrokerReady") && durable {
        return backends::data_plane(
            world,
            t.metadata.uid.as_deref(),
            "SubscriptionReady",
            "ConsumerGroupNotReady",
            c,
        );
    }
    if c.is_true("BrokerReady") {
        c.ok("SubscriptionReady");
    } else {
        c.unknown(
            "SubscriptionReady",
            "BrokerNotReady",
            "waiting for the Broker",
        );
    }
    BTreeMap::new()
}

/// The Trigger's subscriber URL, into `SubscriberResolved`.
fn trigger_subscriber(
    world: &World<'_>,
    t: &Trigger,
    ns: &str,
    c: &mut Conditions,
) -> Option<String> {
    match t.spec.subscriber.as_ref().map(|s| world.resolve(s, ns)) {
        Some(Ok(u)) => {
            c.ok("SubscriberResolved");
            Some(u)
        }
        Some(Err(e)) => {
            c.fail(
                "SubscriberResolved",
                "Unable to get the Subscriber's URI",
                e.to_string(),
            );
            None
        }
        None => {
            c.fail(
                "SubscriberResolved",
                "Unable to get the Subscriber's URI",
                "no subscriber",
            );
            None
        }
    }
}

/// The Trigger's dead-letter sink: its own delivery's, which replaces the Broker's as a
/// whole, else the Broker's.
fn trigger_dead_letter_sink(
    world: &World<'_>,
    t: &Trigger,
    broker: Option<&Object>,
    ns: &str,
    c: &mut Conditions,
) -> Option<String> {
    if t.spec.delivery.as_ref().is_some_and(|d| !d.is_empty()) {
        return dead_letter_sink(world, t.spec.delivery.as_ref(), ns, c);
    }
    let broker_dls = match broker {
        Some(Object::Broker(b)) => b
            .status
            .as_ref()
            .and_then(|s| s.dead_letter_sink_uri.clone()),
        _ => None,
    };
    match broker_dls {
        Some(u) => {
            c.ok("DeadLetterSinkResolved");
            Some(u)
        }
        None => {
            no_dead_letter_sink(c);
            None
        }
    }
}

fn dependency(
    world: &World<'_>,
    t: &knit_crds::api::eventing::Trigger,
    ns: &str,
    c: &mut Conditions,
) {
    let dep = t
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::DEPENDENCY_ANNOTATION));
    let Some(dep) = dep else {
        c.ok("DependencyReady");
        return;
    };
    let r: knit_crds::api::duck::KReference = serde_json::from_str(dep).unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let found = referenced_kind(&r).and_then(|k| world.objects.get(&ObjectKey::new(k, ns, &name)));
    let ready = found.and_then(|o| ready_of(conditions_of(o)).cloned());
    propagate(
        c,
        "DependencyReady",
        ready.as_ref(),
        "DependencyDoesNotExist",
        format!(
            "Dependency does not exist: {} {ns}/{name}",
            r.kind.unwrap_or_default()
        ),
    );
}

pub(crate) fn event_types(world: &mut World<'_>) {
    for key in world.keys_of(Kind::EventType) {
        let Some(Object::EventType(mut e)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let mut c = Conditions::new();
        match &e.spec.reference {
            None => {
                c.ok("ReferenceExists");
            }
            Some(r) => {
                let name = r.name.clone().unwrap_or_default();
                let ns = r.namespace.clone().unwrap_or_else(|| key.namespace.clone());
                let exists = referenced_kind(r)
                    .is_some_and(|k| world.objects.contains_key(&ObjectKey::new(k, &ns, &name)));
                if exists {
                    c.ok("ReferenceExists");
                } else {
                    c.fail(
                        "ReferenceExists",
                        "ReferenceDoesNotExist",
                        format!(
                            "{} {ns}/{name} does not exist",
                            r.kind.clone().unwrap_or_default()
                        ),
                    );
                }
            }
        }
        e.status = Some(EventTypeStatus {
            status: knit_crds::api::duck::Status {
                conditions: c.roll_up(&["ReferenceExists"]),
                ..Default::default()
            },
        });
        world.objects.insert(key, Object::EventType(e));
    }
}
