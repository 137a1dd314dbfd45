//! Channel implementations, generic Channels and Subscriptions.

use std::collections::BTreeMap;

use knit_crds::api::duck::{Destination, KReference, Status};
use knit_crds::api::messaging::{
    Channel, ChannelStatus, ChannelableSpec, ChannelableStatus, PhysicalSubscription,
    SubscriberSpec, SubscriberStatus, Subscription, SubscriptionStatus,
};
use knit_crds::{Kind, Object, ObjectKey};

use knit_crds::contract::Backend;

use super::World;
use super::backends;
use super::conditions::{Conditions, ready_of};
use super::conditions_of;
use super::eventing::dead_letter_sink;
use super::resolve::{channel_kind, referenced_kind};

fn channelable_parts(o: &Object) -> Option<(&ChannelableSpec, Option<&ChannelableStatus>)> {
    match o {
        Object::InMemoryChannel(c) => Some((&c.spec.channelable, c.status.as_ref())),
        Object::KafkaChannel(c) => Some((&c.spec.channelable, c.status.as_ref())),
        Object::NatsJetStreamChannel(c) => Some((&c.spec.channelable, c.status.as_ref())),
        _ => None,
    }
}

fn set_channelable(
    o: &mut Object,
    spec_subs: Option<Vec<SubscriberSpec>>,
    status: ChannelableStatus,
) {
    let (spec, slot) = match o {
        Object::InMemoryChannel(c) => (&mut c.spec.channelable, &mut c.status),
        Object::KafkaChannel(c) => (&mut c.spec.channelable, &mut c.status),
        Object::NatsJetStreamChannel(c) => (&mut c.spec.channelable, &mut c.status),
        _ => return,
    };
    if let Some(s) = spec_subs {
        spec.subscribers = s;
    }
    *slot = Some(status);
}

/// InMemoryChannel, KafkaChannel, NatsJetStreamChannel.
pub(crate) fn channel_impls(world: &mut World<'_>) {
    let keys: Vec<ObjectKey> = world
        .objects
        .keys()
        .filter(|k| k.kind.is_channel() && k.kind != Kind::Channel)
        .cloned()
        .collect();
    for key in keys {
        let Some(mut o) = world.objects.get(&key).cloned() else {
            continue;
        };
        let Some((spec, _)) = channelable_parts(&o) else {
            continue;
        };
        let delivery = spec.delivery.clone();
        let mut c = Conditions::new();
        let mut status = ChannelableStatus::default();
        let mut deps = vec!["DispatcherReady", "Addressable", "DeadLetterSinkResolved"];
        let backend = match &o {
            Object::InMemoryChannel(_) => Ok(Backend::Memory),
            Object::KafkaChannel(k) => backends::kafka_channel(world, &key, &k.spec),
            Object::NatsJetStreamChannel(n) => backends::nats_channel(world, &key, &n.spec),
            _ => Err(backends::NoBackend {
                reason: "BackendNotConfigured",
                message: format!(
                    "{} needs a backend this Knit build does not run yet; use InMemoryChannel or KafkaChannel",
                    key.kind
                ),
            }),
        };
        match backend {
            Ok(b) => {
                c.ok("DispatcherReady");
                let durable = match b {
                    Backend::Kafka(_) => Some(("TopicReady", "TopicNotReady")),
                    Backend::Nats(_) => Some(("StreamReady", "StreamNotReady")),
                    Backend::Memory => None,
                };
                if let Some((type_, waiting)) = durable {
                    deps.push(type_);
                    status.status.annotations = backends::data_plane(
                        world,
                        o.meta().uid.as_deref(),
                        type_,
                        waiting,
                        &mut c,
                    );
                }
                world.backends.insert(key.clone(), b);
            }
            Err(nb) => {
                c.fail("DispatcherReady", nb.reason, nb.message);
            }
        }
        if let Some(addr) =
            world.addressable(&key, &mut c, "NoAddress", "the channel has no address")
        {
            status.address = Some(addr);
            status.addresses = world.address_list(&key);
        }
        status.dead_letter_sink_uri =
            dead_letter_sink(world, delivery.as_ref(), &key.namespace, &mut c);
        status.status.conditions = c.roll_up(&deps);
        set_channelable(&mut o, None, status);
        world.objects.insert(key, o);
    }
}

/// Why a Subscription's `spec.channel` names no channel; its text goes into the
/// Subscription's `ChannelReady` and `Resolved` messages.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChannelRefError {
    /// The reference names a kind Knit does not know.
    #[error("Knit does not know the channel kind {0:?}")]
    UnknownKind(String),
    /// No object of that kind and name.
    #[error("{plural}.{group} {name:?} not found", plural = .kind.plural(), group = .kind.group())]
    NotFound { kind: Kind, name: String },
    /// A generic Channel whose template names no channel implementation.
    #[error("Channel {0:?} has no supported channelTemplate")]
    NoTemplate(String),
    /// The object is not a channel.
    #[error("{kind} {name:?} is not a channel", kind = .kind.name())]
    NotAChannel { kind: Kind, name: String },
}

/// The channel implementation a subscription's `spec.channel` ends up at (a generic Channel's
/// backing channel has the same name), and the object the reference names.
pub(crate) fn subscription_channel(
    world: &World<'_>,
    r: &KReference,
    ns: &str,
) -> Result<(ObjectKey, ObjectKey), ChannelRefError> {
    let name = r.name.clone().unwrap_or_default();
    let Some(kind) = referenced_kind(r) else {
        return Err(ChannelRefError::UnknownKind(
            r.kind.clone().unwrap_or_default(),
        ));
    };
    let named = ObjectKey::new(kind, ns, &name);
    let Some(o) = world.objects.get(&named) else {
        return Err(ChannelRefError::NotFound { kind, name });
    };
    match o {
        Object::Channel(c) => {
            let t = c.spec.channel_template.as_ref();
            let Some(impl_kind) = channel_kind(
                t.and_then(|t| t.api_version.as_deref()),
                t.and_then(|t| t.kind.as_deref()),
            ) else {
                return Err(ChannelRefError::NoTemplate(name));
            };
            Ok((named, ObjectKey::new(impl_kind, ns, &name)))
        }
        _ if kind.is_channel() => Ok((named.clone(), named)),
        _ => Err(ChannelRefError::NotAChannel { kind, name }),
    }
}

/// Subscription statuses: the channel, the destinations, and the data plane's consumer group.
pub(crate) fn subscriptions(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Subscription) {
        let Some(Object::Subscription(mut s)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let ns = key.namespace.clone();
        let mut c = Conditions::new();
        let channel = channel_ready(world, &s, &ns, &mut c);
        let mut resolved = channel.is_some();
        let channel = channel.unwrap_or_default();
        let phys = PhysicalSubscription {
            subscriber_uri: destination(
                world,
                s.spec.subscriber.as_ref(),
                &ns,
                ("SubscriberResolveFailed", "spec.subscriber"),
                &mut resolved,
                &mut c,
            ),
            reply_uri: destination(
                world,
                s.spec.reply.as_ref(),
                &ns,
                ("ReplyResolveFailed", "spec.reply"),
                &mut resolved,
                &mut c,
            ),
            dead_letter_sink_uri: subscription_dead_letter_sink(
                world,
                &s,
                &ns,
                channel.dead_letter_sink,
                &mut resolved,
                &mut c,
            ),
        };
        if resolved {
            c.ok("Resolved");
        }
        let annotations = added_to_channel(
            world,
            s.metadata.uid.as_deref(),
            resolved,
            channel.durable,
            &mut c,
        );
        backends::keeping_up(world, s.metadata.uid.as_deref(), &mut c);
        let conditions = c.roll_up(&["ChannelReady", "Resolved", "AddedToChannel"]);
        s.status = Some(SubscriptionStatus {
            status: Status {
                conditions,
                annotations,
                ..Default::default()
            },
            physical_subscription: Some(phys),
        });
        world.objects.insert(key, Object::Subscription(s));
    }
}

/// What a Subscription takes from the channel it reads.
#[derive(Default)]
struct ChannelSide {
    /// Whether the channel's log is Kafka (the data plane then reports on the group).
    durable: bool,
    /// The channel's dead-letter sink, for a Subscription without a delivery of its own.
    dead_letter_sink: Option<String>,
}

/// `ChannelReady` from the channel implementation `spec.channel` ends up at. `None` when
/// `spec.channel` names no channel (`Resolved` then fails too) or is not set.
fn channel_ready(
    world: &World<'_>,
    s: &Subscription,
    ns: &str,
    c: &mut Conditions,
) -> Option<ChannelSide> {
    let Some(r) = s.spec.channel.as_ref() else {
        c.fail(
            "ChannelReady",
            "ChannelReferenceFailed",
            "spec.channel is not set",
        );
        return None;
    };
    let impl_key = match subscription_channel(world, r, ns) {
        Ok((_, impl_key)) => impl_key,
        Err(e) => {
            let msg = format!("Failed to get Spec.Channel or backing channel: {e}");
            c.fail("ChannelReady", "ChannelReferenceFailed", msg.clone());
            c.fail("Resolved", "ChannelReferenceFailed", msg);
            return None;
        }
    };
    let impl_obj = world.objects.get(&impl_key);
    match impl_obj.and_then(|o| ready_of(conditions_of(o)).cloned()) {
        Some(r) if r.status == "True" => {
            c.ok("ChannelReady");
        }
        Some(r) => {
            c.fail(
                "ChannelReady",
                "ChannelNotReady",
                r.message
                    .unwrap_or_else(|| "the channel is not ready".into()),
            );
        }
        None => {
            c.fail(
                "ChannelReady",
                "ChannelNotReady",
                "the backing channel does not exist",
            );
        }
    }
    Some(ChannelSide {
        durable: matches!(
            world.backends.get(&impl_key),
            Some(Backend::Kafka(_) | Backend::Nats(_))
        ),
        dead_letter_sink: impl_obj
            .and_then(channelable_parts)
            .and_then(|(_, st)| st.and_then(|st| st.dead_letter_sink_uri.clone())),
    })
}

/// The URL of a Subscription's `subscriber` or `reply` (with the reason and the field named
/// when it fails). The first destination that does not resolve fails `Resolved`.
fn destination(
    world: &World<'_>,
    d: Option<&Destination>,
    ns: &str,
    (reason, field): (&str, &str),
    resolved: &mut bool,
    c: &mut Conditions,
) -> Option<String> {
    match world.resolve(d?, ns) {
        Ok(u) => Some(u),
        Err(e) => {
            if *resolved {
                c.fail(
                    "Resolved",
                    reason,
                    format!("Failed to resolve {field}: {e}"),
                );
            }
            *resolved = false;
            None
        }
    }
}

/// A Subscription's dead-letter sink: its own delivery's, which replaces the channel's as a
/// whole, else the channel's.
fn subscription_dead_letter_sink(
    world: &World<'_>,
    s: &Subscription,
    ns: &str,
    channel_dls: Option<String>,
    resolved: &mut bool,
    c: &mut Conditions,
) -> Option<String> {
    if s.spec.delivery.as_ref().is_none_or(|d| d.is_empty()) {
        return channel_dls;
    }
    let mut dls_conds = Conditions::new();
    let url = dead_letter_sink(world, s.spec.delivery.as_ref(), ns, &mut dls_conds);
    if !dls_conds.is_true("DeadLetterSinkResolved") && *resolved {
        let msg = dls_conds
            .get("DeadLetterSinkResolved")
            .and_then(|d| d.message.clone())
            .unwrap_or_default();
        c.fail(
            "Resolved",
            "DeadLetterSinkResolveFailed",
            format!("Failed to resolve spec.delivery.deadLetterSink: {msg}"),
        );
        *resolved = false;
    }
    url
}

/// `AddedToChannel`: on a Kafka channel, what the data plane reports of the consumer group
/// (whose annotations are returned); otherwise True once the channel and destinations are.
fn added_to_channel(
    world: &World<'_>,
    uid: Option<&str>,
    resolved: bool,
    durable: bool,
    c: &mut Conditions,
) -> BTreeMap<String, String> {
    if c.is_true("ChannelReady") && resolved && durable {
        return backends::data_plane(world, uid, "AddedToChannel", "ConsumerGroupNotReady", c);
    }
    if c.is_true("ChannelReady") && resolved {
        c.ok("AddedToChannel");
    } else {
        c.unknown(
            "AddedToChannel",
            "NotAddedToChannel",
            "waiting for the channel and the destinations",
        );
    }
    BTreeMap::new()
}

/// Fill each channel implementation's `spec.subscribers` and `status.subscribers`.
pub(crate) fn channel_subscribers(world: &mut World<'_>) {
    let mut by_channel: std::collections::BTreeMap<
        ObjectKey,
        Vec<(SubscriberSpec, SubscriberStatus)>,
    > = Default::default();
    for key in world.keys_of(Kind::Subscription) {
        let Some(Object::Subscription(s)) = world.objects.get(&key) else {
            continue;
        };
        let Some(r) = &s.spec.channel else { continue };
        let Ok((_, impl_key)) = subscription_channel(world, r, &key.namespace) else {
            continue;
        };
        let st = s.status.clone().unwrap_or_default();
        let phys = st.physical_subscription.clone().unwrap_or_default();
        let ready = ready_of(&st.status.conditions).cloned().unwrap_or_default();
        let spec = SubscriberSpec {
            uid: s.metadata.uid.clone(),
            generation: s.metadata.generation,
            subscriber_uri: phys.subscriber_uri.clone(),
            reply_uri: phys.reply_uri.clone(),
            delivery: s.spec.delivery.clone(),
        };
        let status = SubscriberStatus {
            uid: s.metadata.uid.clone(),
            observed_generation: s.metadata.generation,
            ready: ready.status.clone(),
            message: ready.message.clone(),
        };
        by_channel.entry(impl_key).or_default().push((spec, status));
    }
    let keys: Vec<ObjectKey> = world
        .objects
        .keys()
        .filter(|k| k.kind.is_channel() && k.kind != Kind::Channel)
        .cloned()
        .collect();
    for key in keys {
        let Some(mut o) = world.objects.get(&key).cloned() else {
            continue;
        };
        let Some((_, status)) = channelable_parts(&o) else {
            continue;
        };
        let mut status = status.cloned().unwrap_or_default();
        let subs = by_channel.remove(&key).unwrap_or_default();
        status.subscribers = subs.iter().map(|(_, st)| st.clone()).collect();
        set_channelable(
            &mut o,
            Some(subs.into_iter().map(|(sp, _)| sp).collect()),
            status,
        );
        world.objects.insert(key, o);
    }
}

/// Generic Channels mirror their backing channel.
pub(crate) fn generic_channels(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Channel) {
        let Some(Object::Channel(mut ch)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let t = ch.spec.channel_template.clone().unwrap_or_default();
        let mut c = Conditions::new();
        let mut status = ChannelStatus::default();
        match channel_kind(t.api_version.as_deref(), t.kind.as_deref()) {
            Some(kind) => mirror_backing(world, &key, kind, &mut ch, &mut status, &mut c),
            None => {
                c.fail(
                    "BackingChannelReady",
                    "ChannelTemplateNotSupported",
                    "the channelTemplate names no supported channel kind",
                );
            }
        }
        if status.channelable.address.is_some() {
            c.ok("Addressable");
        } else {
            c.fail(
                "Addressable",
                "NoAddress",
                "the backing channel has no address",
            );
        }
        status.channelable.status.conditions = c.roll_up(&["BackingChannelReady", "Addressable"]);
        ch.status = Some(status);
        world.objects.insert(key, Object::Channel(ch));
    }
}

/// Mirror the backing channel (of `kind`, same name) into a generic Channel: `status.channel`,
/// and when the Channel owns it, its readiness, subscribers, dead-letter sink and address.
fn mirror_backing(
    world: &World<'_>,
    key: &ObjectKey,
    kind: Kind,
    ch: &mut Channel,
    status: &mut ChannelStatus,
    c: &mut Conditions,
) {
    let backing_key = ObjectKey::new(kind, &key.namespace, &key.name);
    status.channel = Some(KReference {
        api_version: Some(kind.api_version()),
        kind: Some(kind.name().into()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
    });
    let backing = world.objects.get(&backing_key);
    let owned = backing.is_some_and(|b| {
        b.meta()
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| Some(&r.uid) == ch.metadata.uid.as_ref()))
    });
    let Some((spec, st)) = backing.and_then(channelable_parts).filter(|_| owned) else {
        c.fail(
            "BackingChannelReady",
            "ChannelFailure",
            format!(
                "{} {:?} exists and is not owned by this Channel",
                kind.name(),
                key.name
            ),
        );
        return;
    };
    let st = st.cloned().unwrap_or_default();
    match ready_of(&st.status.conditions).cloned() {
        Some(r) if r.status == "True" => {
            c.ok("BackingChannelReady");
        }
        Some(r) => {
            c.fail(
                "BackingChannelReady",
                r.reason.as_deref().unwrap_or("BackingChannelNotReady"),
                r.message.unwrap_or_default(),
            );
        }
        None => {
            c.unknown("BackingChannelReady", "BackingChannelNotReady", "");
        }
    }
    ch.spec.channelable.subscribers = spec.subscribers.clone();
    status.channelable.subscribers = st.subscribers.clone();
    status.channelable.dead_letter_sink_uri = st.dead_letter_sink_uri.clone();
    status.channelable.address = st.address.clone();
    status.channelable.addresses = st.addresses.clone();
}
