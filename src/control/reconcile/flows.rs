//! Sequence and Parallel statuses, from the channels and subscriptions they are built from.

use knit_crds::api::duck::{Condition, ObjectReference};
use knit_crds::api::flows::{
    Parallel, ParallelBranchStatus, ParallelStatus, Sequence, SequenceChannelStatus,
    SequenceStatus, SequenceSubscriptionStatus,
};
use knit_crds::{Kind, Object, ObjectKey};

use super::World;
use super::conditions::{Conditions, ready_of};
use super::conditions_of;
use super::resolve::{parallel_ingress_channel, sequence_channel};

fn object_ref(key: &ObjectKey) -> ObjectReference {
    ObjectReference {
        api_version: Some(key.kind.api_version()),
        kind: Some(key.kind.name().into()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
    }
}

fn ready_condition(world: &World<'_>, key: &ObjectKey) -> Condition {
    world
        .objects
        .get(key)
        .and_then(|o| ready_of(conditions_of(o)).cloned())
        .unwrap_or_else(|| Condition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NotFound".into()),
            message: Some(format!("{} {:?} does not exist", key.kind, key.name)),
            ..Default::default()
        })
}

fn all_ready(c: &mut Conditions, type_: &str, reason: &str, conds: &[(String, Condition)]) {
    match conds.iter().find(|(_, r)| r.status != "True") {
        None => {
            c.ok(type_);
        }
        Some((name, r)) => {
            let msg = format!(
                "{name} is not ready: {}",
                r.message.clone().unwrap_or_default()
            );
            if r.status == "False" {
                c.fail(type_, reason, msg);
            } else {
                c.unknown(type_, reason, msg);
            }
        }
    }
}

/// The conditions every flow has: its channels Ready (`template_ok` = the template names a
/// supported channel kind), its subscriptions Ready, and an address.
fn flow_conditions(
    world: &World<'_>,
    key: &ObjectKey,
    template_ok: bool,
    chans: &[(String, Condition)],
    subs: &[(String, Condition)],
    no_address: &str,
) -> (Vec<Condition>, Option<knit_crds::api::duck::Addressable>) {
    let mut c = Conditions::new();
    if template_ok {
        all_ready(&mut c, "ChannelsReady", "ChannelsNotReady", chans);
    } else {
        c.fail(
            "ChannelsReady",
            "ChannelTemplateNotSupported",
            "the channelTemplate names no supported channel kind",
        );
    }
    all_ready(&mut c, "SubscriptionsReady", "SubscriptionsNotReady", subs);
    let address = world.addressable(key, &mut c, "EmptyHostname", no_address);
    (
        c.roll_up(&["ChannelsReady", "SubscriptionsReady", "Addressable"]),
        address,
    )
}

/// Sequence and Parallel statuses, from their channels and subscriptions.
pub(crate) fn flows(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Sequence) {
        let Some(Object::Sequence(mut s)) = world.objects.get(&key).cloned() else {
            continue;
        };
        s.status = Some(sequence_status(world, &key, &s));
        world.objects.insert(key, Object::Sequence(s));
    }
    for key in world.keys_of(Kind::Parallel) {
        let Some(Object::Parallel(mut p)) = world.objects.get(&key).cloned() else {
            continue;
        };
        p.status = Some(parallel_status(world, &key, &p));
        world.objects.insert(key, Object::Parallel(p));
    }
}

/// A Sequence's status: each step's channel and subscription.
fn sequence_status(world: &World<'_>, key: &ObjectKey, s: &Sequence) -> SequenceStatus {
    let mut st = SequenceStatus::default();
    let mut chans = Vec::new();
    let mut subs = Vec::new();
    for i in 0..s.spec.steps.len() {
        if let Some(ck) = sequence_channel(
            s.spec.channel_template.as_ref(),
            &key.namespace,
            &key.name,
            i,
        ) {
            let r = ready_condition(world, &ck);
            chans.push((ck.name.clone(), r.clone()));
            st.channel_statuses.push(SequenceChannelStatus {
                channel: object_ref(&ck),
                ready: r,
            });
        }
        let sk = ObjectKey::new(
            Kind::Subscription,
            &key.namespace,
            format!("{}-kn-sequence-{i}", key.name),
        );
        let r = ready_condition(world, &sk);
        subs.push((sk.name.clone(), r.clone()));
        st.subscription_statuses.push(SequenceSubscriptionStatus {
            subscription: object_ref(&sk),
            ready: r,
        });
    }
    let (conditions, address) = flow_conditions(
        world,
        key,
        chans.len() == s.spec.steps.len(),
        &chans,
        &subs,
        "the first channel has no address",
    );
    st.status.conditions = conditions;
    st.address = address;
    st
}

/// A Parallel's status: its ingress channel, and each branch's channel, filter subscription
/// and subscription.
fn parallel_status(world: &World<'_>, key: &ObjectKey, p: &Parallel) -> ParallelStatus {
    let mut st = ParallelStatus::default();
    let mut chans = Vec::new();
    let mut subs = Vec::new();
    let ingress =
        parallel_ingress_channel(p.spec.channel_template.as_ref(), &key.namespace, &key.name);
    if let Some(ik) = &ingress {
        let r = ready_condition(world, ik);
        chans.push((ik.name.clone(), r.clone()));
        st.ingress_channel_status = Some(SequenceChannelStatus {
            channel: object_ref(ik),
            ready: r,
        });
        for i in 0..p.spec.branches.len() {
            let branch = branch_status(world, key, ik.kind, i);
            chans.push(named(
                &branch.filter_channel_status.channel,
                &branch.filter_channel_status.ready,
            ));
            subs.push(named(
                &branch.filter_subscription_status.subscription,
                &branch.filter_subscription_status.ready,
            ));
            subs.push(named(
                &branch.subscription_status.subscription,
                &branch.subscription_status.ready,
            ));
            st.branch_statuses.push(branch);
        }
    }
    let (conditions, address) = flow_conditions(
        world,
        key,
        ingress.is_some(),
        &chans,
        &subs,
        "the ingress channel has no address",
    );
    st.status.conditions = conditions;
    st.address = address;
    st
}

/// Branch `i` of a Parallel: its channel (of the ingress channel's kind), filter subscription
/// and subscription.
fn branch_status(
    world: &World<'_>,
    key: &ObjectKey,
    channel_kind: Kind,
    i: usize,
) -> ParallelBranchStatus {
    let bk = ObjectKey::new(
        channel_kind,
        &key.namespace,
        format!("{}-kn-parallel-{i}", key.name),
    );
    let fk = ObjectKey::new(
        Kind::Subscription,
        &key.namespace,
        format!("{}-kn-parallel-filter-{i}", key.name),
    );
    let sk = ObjectKey::new(
        Kind::Subscription,
        &key.namespace,
        format!("{}-kn-parallel-{i}", key.name),
    );
    ParallelBranchStatus {
        filter_subscription_status: SequenceSubscriptionStatus {
            subscription: object_ref(&fk),
            ready: ready_condition(world, &fk),
        },
        filter_channel_status: SequenceChannelStatus {
            channel: object_ref(&bk),
            ready: ready_condition(world, &bk),
        },
        subscription_status: SequenceSubscriptionStatus {
            subscription: object_ref(&sk),
            ready: ready_condition(world, &sk),
        },
    }
}

/// (name, Ready) of a referenced object, as `all_ready` reads them.
fn named(r: &ObjectReference, ready: &Condition) -> (String, Condition) {
    (r.name.clone().unwrap_or_default(), ready.clone())
}
