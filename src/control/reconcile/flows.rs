//! Sequence and Parallel statuses, from the channels and subscriptions they are built from.

use knit_crds::api::duck::{Condition, ObjectReference};
use knit_crds::api::flows::{
    ParallelBranchStatus, ParallelStatus, SequenceChannelStatus, SequenceStatus,
    SequenceSubscriptionStatus,
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
            &key,
            chans.len() == s.spec.steps.len(),
            &chans,
            &subs,
            "the first channel has no address",
        );
        st.status.conditions = conditions;
        st.address = address;
        s.status = Some(st);
        world.objects.insert(key, Object::Sequence(s));
    }

    for key in world.keys_of(Kind::Parallel) {
        let Some(Object::Parallel(mut p)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let mut st = ParallelStatus::default();
        let mut chans = Vec::new();
        let mut subs = Vec::new();
        let template = p.spec.channel_template.clone();
        let ingress = parallel_ingress_channel(template.as_ref(), &key.namespace, &key.name);
        if let Some(ik) = &ingress {
            let r = ready_condition(world, ik);
            chans.push((ik.name.clone(), r.clone()));
            st.ingress_channel_status = Some(SequenceChannelStatus {
                channel: object_ref(ik),
                ready: r,
            });
        }
        for i in 0..p.spec.branches.len() {
            let Some(ik) = &ingress else { break };
            let bk = ObjectKey::new(
                ik.kind,
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
            let (br, fr, sr) = (
                ready_condition(world, &bk),
                ready_condition(world, &fk),
                ready_condition(world, &sk),
            );
            chans.push((bk.name.clone(), br.clone()));
            subs.push((fk.name.clone(), fr.clone()));
            subs.push((sk.name.clone(), sr.clone()));
            st.branch_statuses.push(ParallelBranchStatus {
                filter_subscription_status: SequenceSubscriptionStatus {
                    subscription: object_ref(&fk),
                    ready: fr,
                },
                filter_channel_status: SequenceChannelStatus {
                    channel: object_ref(&bk),
                    ready: br,
                },
                subscription_status: SequenceSubscriptionStatus {
                    subscription: object_ref(&sk),
                    ready: sr,
                },
            });
        }
        let (conditions, address) = flow_conditions(
            world,
            &key,
            ingress.is_some(),
            &chans,
            &subs,
            "the ingress channel has no address",
        );
        st.status.conditions = conditions;
        st.address = address;
        p.status = Some(st);
        world.objects.insert(key, Object::Parallel(p));
    }
}
