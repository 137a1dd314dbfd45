//! Route statuses (traffic resolved to concrete revisions, URLs, tag URLs), each Revision's
//! routing state (`active`, `pending`, `reserve`), and Service statuses rolled up from their
//! Configuration and Route (serving reference §4.1, §4.3).

use std::collections::BTreeSet;

use knit_crds::api::duck::{Addressable, Condition};
use knit_crds::api::serving::TrafficTarget;
use knit_crds::{Kind, Object, ObjectKey};

use super::super::World;
use super::super::conditions::{Conditions, Tri, ready_of};
use super::super::conditions_of;
use super::configuration::revision_ready;
use super::revisions::ROUTING_STATE_LABEL;
use super::{cluster_local, urls};

/// A traffic target that did not resolve: the AllTrafficAssigned condition it sets.
struct TargetError {
    status: Tri,
    reason: String,
    message: String,
}

fn missing(kind: &str, name: &str) -> TargetError {
    TargetError {
        status: Tri::False,
        reason: format!("{kind}Missing"),
        message: format!("{kind} {name:?} referenced in traffic not found."),
    }
}

fn revision_target(world: &World<'_>, ns: &str, name: &str) -> Result<String, TargetError> {
    let Some(ready) = revision_ready(world, ns, name) else {
        return Err(missing("Revision", name));
    };
    match ready.status.as_str() {
        "True" => Ok(name.to_string()),
        "False" => Err(TargetError {
            status: Tri::False,
            reason: "RevisionMissing".into(),
            message: format!("Revision {name:?} failed to become ready."),
        }),
        _ => Err(TargetError {
            status: Tri::Unknown,
            reason: "RevisionMissing".into(),
            message: format!("Revision {name:?} is not ready."),
        }),
    }
}

fn configuration_target(world: &World<'_>, ns: &str, name: &str) -> Result<String, TargetError> {
    let Some(Object::Configuration(c)) =
        world
            .objects
            .get(&ObjectKey::new(Kind::Configuration, ns, name))
    else {
        return Err(missing("Configuration", name));
    };
    let st = c.status.clone().unwrap_or_default();
    match st.latest_ready_revision_name {
        Some(r) => Ok(r),
        None if ready_of(&st.status.conditions).is_some_and(|r| r.status == "False") => {
            Err(TargetError {
                status: Tri::False,
                reason: "RevisionMissing".into(),
                message: format!("Configuration {name:?} does not have any ready Revision."),
            })
        }
        None => Err(TargetError {
            status: Tri::Unknown,
            reason: "RevisionMissing".into(),
            message: format!("Configuration {name:?} is waiting for a Revision to become ready."),
        }),
    }
}

/// Resolve one spec target into its status form (a concrete `revisionName`, no
/// `configurationName`, the tag's URL).
fn resolve_target(
    world: &World<'_>,
    ns: &str,
    route: &str,
    local: bool,
    t: &TrafficTarget,
) -> Result<TrafficTarget, TargetError> {
    let revision = match (&t.revision_name, &t.configuration_name) {
        (Some(r), _) => revision_target(world, ns, r)?,
        (None, Some(c)) => configuration_target(world, ns, c)?,
        (None, None) => return Err(missing("Configuration", "")),
    };
    Ok(TrafficTarget {
        tag: t.tag.clone(),
        revision_name: Some(revision),
        configuration_name: None,
        latest_revision: Some(t.latest_revision.unwrap_or(t.revision_name.is_none())),
        percent: Some(t.percent.unwrap_or(0)),
        url: t
            .tag
            .as_deref()
            .map(|tag| urls(world, ns, route, Some(tag), local).url),
    })
}

/// Set every Route's status, label routed revisions `active` (the rest `reserve`), then roll
/// each Service up.
pub(crate) fn statuses(world: &mut World<'_>) {
    let mut routed: BTreeSet<ObjectKey> = BTreeSet::new();
    for key in world.keys_of(Kind::Route) {
        route_status(world, &key, &mut routed);
    }
    routing_states(world, &routed);
    services(world);
}

/// One Route's status: its traffic resolved to concrete Revisions (added to `routed`), its
/// URLs and conditions.
fn route_status(world: &mut World<'_>, key: &ObjectKey, routed: &mut BTreeSet<ObjectKey>) {
    let Some(o @ Object::Route(r)) = world.objects.get(key) else {
        return;
    };
    let local = cluster_local(o);
    let u = urls(world, &key.namespace, &key.name, None, local);
    let mut resolved = Vec::new();
    let mut errors = Vec::new();
    for t in &r.spec.traffic {
        match resolve_target(world, &key.namespace, &key.name, local, t) {
            Ok(s) => {
                if let Some(rev) = &s.revision_name {
                    routed.insert(ObjectKey::new(Kind::Revision, &key.namespace, rev));
                }
                resolved.push(s);
            }
            Err(e) => errors.push(e),
        }
    }
    let conditions = route_conditions(&errors, &mut resolved);
    let Some(Object::Route(r)) = world.objects.get_mut(key) else {
        return;
    };
    let st = r.status.get_or_insert_with(Default::default);
    st.url = Some(u.url);
    st.address = Some(Addressable {
        name: Some("http".into()),
        url: Some(u.address),
        ..Default::default()
    });
    st.traffic = resolved;
    st.status.conditions = conditions;
}

/// A Route's conditions from its traffic: all assigned, or the first target that failed (a
/// False before an Unknown), in which case no traffic is set.
fn route_conditions(errors: &[TargetError], resolved: &mut Vec<TrafficTarget>) -> Vec<Condition> {
    let mut c = Conditions::new();
    let error = errors
        .iter()
        .find(|e| e.status == Tri::False)
        .or_else(|| errors.first());
    match error {
        None if !resolved.is_empty() => {
            c.ok("AllTrafficAssigned");
            c.ok("IngressReady");
        }
        None => {
            c.fail(
                "AllTrafficAssigned",
                "ConfigurationMissing",
                "the Route has no traffic targets",
            );
        }
        Some(e) => {
            c.set("AllTrafficAssigned", e.status, &e.reason, e.message.clone());
            resolved.clear();
        }
    }
    if !c.is_true("IngressReady") {
        super::ingress_pending(&mut c);
    }
    super::no_auto_tls(&mut c);
    c.roll_up(&[
        "AllTrafficAssigned",
        "IngressReady",
        "CertificateProvisioned",
    ])
}

/// Label each Revision with its routing state: `active` when routed, `pending` while it is its
/// Configuration's newest and still deploying (Knative's route labeler: it runs with its
/// initial scale until it becomes ready and routed), else `reserve`.
fn routing_states(world: &mut World<'_>, routed: &BTreeSet<ObjectKey>) {
    let pending: BTreeSet<ObjectKey> = world
        .objects
        .values()
        .filter_map(|o| match o {
            Object::Configuration(c) => {
                let name = c.status.as_ref()?.latest_created_revision_name.clone()?;
                let ready = revision_ready(world, o.namespace(), &name)?;
                (ready.status != "True" && ready.status != "False")
                    .then(|| ObjectKey::new(Kind::Revision, o.namespace(), name))
            }
            _ => None,
        })
        .collect();
    for key in world.keys_of(Kind::Revision) {
        let state = if routed.contains(&key) {
            "active"
        } else if pending.contains(&key) {
            "pending"
        } else {
            "reserve"
        };
        if let Some(o) = world.objects.get_mut(&key) {
            o.meta_mut()
                .labels
                .get_or_insert_with(Default::default)
                .insert(ROUTING_STATE_LABEL.into(), state.into());
        }
    }
}

/// Whether `child` is controlled by the object with `uid`.
fn controlled_by(child: &Object, uid: &str) -> bool {
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn copy_condition(c: &mut Conditions, type_: &str, from: Option<&Condition>, what: &str) {
    match from {
        Some(r) => {
            let status = match r.status.as_str() {
                "True" => Tri::True,
                "False" => Tri::False,
                _ => Tri::Unknown,
            };
            c.set(
                type_,
                status,
                r.reason.as_deref().unwrap_or(""),
                r.message.clone().unwrap_or_default(),
            );
        }
        None => {
            c.unknown(type_, "Deploying", format!("waiting for the {what}"));
        }
    }
}

fn services(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Service) {
        let Some(svc) = world.objects.get(&key) else {
            continue;
        };
        let uid = svc.meta().uid.clone().unwrap_or_default();
        let ck = ObjectKey::new(Kind::Configuration, &key.namespace, &key.name);
        let rk = ObjectKey::new(Kind::Route, &key.namespace, &key.name);
        let mut c = Conditions::new();
        let config = match world.objects.get(&ck) {
            Some(o @ Object::Configuration(cfg)) if controlled_by(o, &uid) => {
                copy_condition(
                    &mut c,
                    "ConfigurationsReady",
                    ready_of(conditions_of(o)),
                    "Configuration",
                );
                cfg.status.clone()
            }
            Some(_) => {
                c.fail(
                    "ConfigurationsReady",
                    "NotOwned",
                    format!(
                        "There is an existing Configuration {:?} that we do not own.",
                        key.name
                    ),
                );
                None
            }
            None => {
                copy_condition(&mut c, "ConfigurationsReady", None, "Configuration");
                None
            }
        };
        let route = match world.objects.get(&rk) {
            Some(o @ Object::Route(r)) if controlled_by(o, &uid) => {
                copy_condition(&mut c, "RoutesReady", ready_of(conditions_of(o)), "Route");
                r.status.clone()
            }
            Some(_) => {
                c.fail(
                    "RoutesReady",
                    "NotOwned",
                    format!(
                        "There is an existing Route {:?} that we do not own.",
                        key.name
                    ),
                );
                None
            }
            None => {
                copy_condition(&mut c, "RoutesReady", None, "Route");
                None
            }
        };
        let conditions = c.roll_up(&["ConfigurationsReady", "RoutesReady"]);
        let Some(Object::Service(s)) = world.objects.get_mut(&key) else {
            continue;
        };
        let st = s.status.get_or_insert_with(Default::default);
        st.status.conditions = conditions;
        if let Some(cfg) = config {
            st.latest_created_revision_name = cfg.latest_created_revision_name;
            st.latest_ready_revision_name = cfg.latest_ready_revision_name;
        }
        if let Some(r) = route {
            st.url = r.url;
            st.address = r.address;
            st.traffic = r.traffic;
        }
    }
}
