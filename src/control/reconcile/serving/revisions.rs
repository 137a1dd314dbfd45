//! Revisions: one per Configuration generation, immutable, and their statuses.
//!
//! **History.** Knative keeps every Revision as an API object; Knit's store keeps only the
//! user's objects, so the Revisions the control plane stamped come back to it as input: the
//! caller passes [`super::super::Output::history`] of one reconcile into the next one's input.
//! A Revision in the input whose controller owner is a Configuration that still exists (same
//! UID) is history; one whose Configuration is gone is dropped (garbage collection).
//!
//! **Generations.** A Configuration's current template is rendered into a Revision and compared
//! with its newest Revision (spec, labels, annotations): equal, nothing is stamped; different,
//! a new generation is stamped, numbered one past the newest (for a user's Configuration, at
//! least its `metadata.generation`). A Service's Configuration takes that number as its
//! generation, so a traffic-only change of the Service stamps nothing, as in Knative. The name
//! is `spec.template.metadata.name` or `<config>-<generation, 5 digits>`; a user name already
//! taken by a Revision with another template is a conflict (Configuration Ready=False).
//!
//! **Restart.** The history lives in the running control plane only. After `knit run` restarts,
//! the store numbers every object from generation 1 again, so each Configuration stamps
//! `<config>-00001` from its current template; Revisions of past templates are gone, and
//! traffic naming them reports `RevisionMissing` until the manifests stop naming them.
//!
//! **Status** comes from the data plane's report under the Revision's UID: `ready` when a
//! replica is ready or the Revision is healthily at zero, annotations `actualReplicas`,
//! `desiredReplicas`, `lastColdStartMs`. A container without `command` cannot run locally and
//! is decided here: Ready=False `ImageNotRunnableLocally`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use knit_crds::api::serving::{RevisionSpec, RevisionTemplateSpec};
use knit_crds::contract::ObjectReport;
use knit_crds::{Kind, Object, ObjectKey};
use serde_json::{Value, json};

use super::super::World;
use super::super::children::names_serving::{SERVICE_LABEL, SERVICE_UID_LABEL};
use super::super::children::uid_for;
use super::super::conditions::Conditions;
use super::environment::{CONFIG_ERROR, environment};
use super::label;

/// The Configuration a Revision belongs to.
pub(crate) const CONFIGURATION_LABEL: &str = "serving.knative.dev/configuration";
/// The Configuration generation it was stamped from.
pub(crate) const CONFIGURATION_GENERATION_LABEL: &str =
    "serving.knative.dev/configurationGeneration";
/// The Configuration's UID.
pub(crate) const CONFIGURATION_UID_LABEL: &str = "serving.knative.dev/configurationUID";
/// `active` when a Route sends it traffic, `pending` while its Configuration's newest
/// deploys, else `reserve`.
pub(crate) const ROUTING_STATE_LABEL: &str = "serving.knative.dev/routingState";
/// Status annotation: the duration of the Revision's last cold start, in milliseconds.
pub(crate) const COLD_START_ANNOTATION: &str = "serving.knit.dev/last-cold-start-ms";
/// Knative's default request timeout.
pub(crate) const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
/// Knative's default container name.
pub(crate) const DEFAULT_CONTAINER_NAME: &str = "user-container";

/// Reason of a Revision whose container has no `command`.
pub(crate) const IMAGE_NOT_RUNNABLE: &str = "ImageNotRunnableLocally";

/// The Configuration that controls a Revision: (name, uid).
pub(crate) fn controller_configuration(o: &Object) -> Option<(String, String)> {
    o.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.kind == "Configuration" && r.controller == Some(true))
        .map(|r| (r.name.clone(), r.uid.clone()))
}

/// The generation a Revision was stamped from (0 when not stamped by a Configuration).
pub(crate) fn generation_of(o: &Object) -> i64 {
    label(o, CONFIGURATION_GENERATION_LABEL)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// Whether a Configuration was derived from a Service.
fn service_owned(o: &Object) -> bool {
    o.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == "Service" && r.controller == Some(true))
}

/// The revision name of generation `generation`.
fn revision_name(config: &str, template: &RevisionTemplateSpec, generation: i64) -> String {
    template
        .metadata
        .as_ref()
        .and_then(|m| m.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{config}-{generation:05}"))
}

/// The Revision spec with Knative's defaults (`timeoutSeconds` 300, `containerConcurrency` 0,
/// a lone unnamed container named `user-container`).
fn defaulted(spec: Option<&RevisionSpec>) -> RevisionSpec {
    let mut spec = spec.cloned().unwrap_or_default();
    spec.timeout_seconds.get_or_insert(DEFAULT_TIMEOUT_SECONDS);
    spec.container_concurrency.get_or_insert(0);
    if let [c] = spec.pod.containers.as_mut_slice()
        && c.name.is_empty()
    {
        c.name = DEFAULT_CONTAINER_NAME.into();
    }
    spec
}

/// Render a Configuration's template as Revision `name` of `generation`.
fn render(
    created: Option<Time>,
    config: &Object,
    template: &RevisionTemplateSpec,
    generation: i64,
    name: &str,
) -> Option<Object> {
    let m = config.meta();
    let tm = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = tm.labels.clone().unwrap_or_default();
    labels.insert(CONFIGURATION_LABEL.into(), config.name().into());
    labels.insert(
        CONFIGURATION_GENERATION_LABEL.into(),
        generation.to_string(),
    );
    labels.insert(
        CONFIGURATION_UID_LABEL.into(),
        m.uid.clone().unwrap_or_default(),
    );
    for l in [SERVICE_LABEL, SERVICE_UID_LABEL] {
        if let Some(v) = label(config, l) {
            labels.insert(l.into(), v.into());
        }
    }
    let doc = json!({
        "metadata": {
            "name": name,
            "namespace": config.namespace(),
            "uid": uid_for(config, Kind::Revision, name),
            "generation": 1,
            "creationTimestamp": created.or_else(|| m.creation_timestamp.clone()),
            "labels": labels,
            "annotations": tm.annotations.clone().unwrap_or_default(),
            "ownerReferences": [{
                "apiVersion": Kind::Configuration.api_version(),
                "kind": "Configuration",
                "name": config.name(),
                "uid": m.uid.clone().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": serde_json::to_value(defaulted(template.spec.as_ref())).ok()?,
    });
    Kind::Revision.parse(doc).ok()
}

/// What of a Revision its template decides: spec, labels (less the routing state) and
/// annotations.
fn template_part(o: &Object) -> (Value, Option<BTreeMap<String, String>>, Value) {
    let mut labels = o.meta().labels.clone();
    if let Some(l) = &mut labels {
        l.remove(ROUTING_STATE_LABEL);
    }
    (
        o.content(),
        labels,
        serde_json::to_value(&o.meta().annotations).unwrap_or(Value::Null),
    )
}

/// Drop Revisions whose Configuration is gone, and stamp each Configuration's current one.
pub(crate) fn stamp(world: &mut World<'_>) {
    // Garbage-collect history whose Configuration was deleted or replaced.
    let stale: Vec<ObjectKey> = world
        .keys_of(Kind::Revision)
        .into_iter()
        .filter(|k| {
            let Some(o) = world.objects.get(k) else {
                return false;
            };
            let Some((cfg, uid)) = controller_configuration(o) else {
                return false;
            };
            let ck = ObjectKey::new(Kind::Configuration, &k.namespace, cfg);
            world
                .objects
                .get(&ck)
                .is_none_or(|c| c.meta().uid.as_deref() != Some(uid.as_str()))
        })
        .collect();
    for k in stale {
        world.objects.remove(&k);
    }
    for key in world.keys_of(Kind::Configuration) {
        stamp_one(world, &key);
    }
}

/// Why a Configuration's current template was not stamped; its text goes into the
/// Configuration's `RevisionFailed` message.
#[derive(Debug, thiserror::Error)]
enum StampError {
    /// The template does not render into a Revision.
    #[error("the template of Configuration {0:?} does not make a valid Revision")]
    InvalidTemplate(String),
    /// The template's name is taken by a Revision of another template.
    #[error(
        "Revision {0:?} already exists with a different template: give the changed template a new name (spec.template.metadata.name)"
    )]
    NameTaken(String),
}

/// Stamp one Configuration's current template (unless its newest Revision already has it) and
/// record the outcome in its status: `latestCreatedRevisionName`, or Ready=False.
fn stamp_one(world: &mut World<'_>, key: &ObjectKey) {
    let Some(config) = world.objects.get(key).cloned() else {
        return;
    };
    let Object::Configuration(c) = &config else {
        return;
    };
    let uid = c.metadata.uid.clone().unwrap_or_default();
    let template = c.spec.template.clone().unwrap_or_default();
    let newest = newest_revision(world, &key.namespace, &uid);
    let derived = service_owned(&config);
    let outcome = match newest
        .as_ref()
        .and_then(|n| unchanged(&config, &template, n))
    {
        Some(kept) => Ok(kept),
        None => {
            let last = newest.as_ref().map(generation_of).unwrap_or(0);
            let mut g = last + 1;
            if !derived {
                g = g.max(c.metadata.generation.unwrap_or(1));
            }
            stamp_new(world, &config, &template, &uid, g)
        }
    };
    record(world, key, derived, outcome);
}

/// The newest Revision of the Configuration with `uid` in `ns`.
fn newest_revision(world: &World<'_>, ns: &str, uid: &str) -> Option<Object> {
    world
        .objects
        .values()
        .filter(|o| {
            o.kind() == Kind::Revision
                && o.namespace() == ns
                && controller_configuration(o).is_some_and(|(_, u)| u == uid)
        })
        .max_by_key(|o| generation_of(o))
        .cloned()
}

/// (generation, name) of `newest` when it was stamped from the current `template`.
fn unchanged(
    config: &Object,
    template: &RevisionTemplateSpec,
    newest: &Object,
) -> Option<(i64, String)> {
    let g = generation_of(newest);
    let name = revision_name(config.name(), template, g);
    render(None, config, template, g, &name)
        .is_some_and(|cand| {
            cand.name() == newest.name() && template_part(&cand) == template_part(newest)
        })
        .then(|| (g, newest.name().to_string()))
}

/// Stamp `template` as generation `g` (a name already stamped from the same template is
/// kept as it is): its (generation, name).
fn stamp_new(
    world: &mut World<'_>,
    config: &Object,
    template: &RevisionTemplateSpec,
    uid: &str,
    g: i64,
) -> Result<(i64, String), StampError> {
    // A Revision stamped now is created now (when the caller's time parses).
    let now = world.now.parse::<jiff::Timestamp>().ok().map(Time);
    let name = revision_name(config.name(), template, g);
    let rk = ObjectKey::new(Kind::Revision, config.namespace(), &name);
    let Some(cand) = render(now, config, template, g, &name) else {
        return Err(StampError::InvalidTemplate(config.name().to_string()));
    };
    match world.objects.get(&rk) {
        Some(existing) => {
            let ours = controller_configuration(existing).is_some_and(|(_, u)| u == uid);
            let old = render(None, config, template, generation_of(existing), &name);
            if ours && old.is_some_and(|o| template_part(&o) == template_part(existing)) {
                Ok((generation_of(existing), name))
            } else {
                Err(StampError::NameTaken(name))
            }
        }
        None => {
            world.objects.insert(rk, cand);
            Ok((g, name))
        }
    }
}

/// Record what stamping made of a Configuration in its status (and, for a Service's, its
/// generation).
fn record(
    world: &mut World<'_>,
    key: &ObjectKey,
    derived: bool,
    outcome: Result<(i64, String), StampError>,
) {
    let Some(Object::Configuration(c)) = world.objects.get_mut(key) else {
        return;
    };
    let status = c.status.get_or_insert_with(Default::default);
    match outcome {
        Ok((g, name)) => {
            if derived {
                c.metadata.generation = Some(g);
            }
            status.latest_created_revision_name = Some(name);
        }
        Err(why) => {
            let mut cs = Conditions::new();
            cs.fail(
                "Ready",
                "RevisionFailed",
                format!("Revision creation failed with message: {why}."),
            );
            status.status.conditions = cs.roll_up(&["Ready"]);
        }
    }
}

/// The serving container of a Revision spec: the one declaring a port, else the first.
pub(crate) fn serving_container(
    spec: &RevisionSpec,
) -> Option<&k8s_openapi::api::core::v1::Container> {
    let cs = &spec.pod.containers;
    cs.iter()
        .find(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
        .or_else(|| cs.first())
}

/// Whether the container has a program to run locally.
pub(crate) fn runnable(spec: &RevisionSpec) -> bool {
    serving_container(spec)
        .and_then(|c| c.command.as_ref())
        .is_some_and(|c| c.iter().any(|a| !a.is_empty()))
}

/// Why Knit's autoscaler does not run a Revision (the HPA class, a metric other than
/// concurrency or rps): (reason, message) for its Ready condition; such revisions stay out of
/// the Contract. Annotations that do not validate were refused at admission.
pub(crate) fn autoscaler_unsupported(
    r: &knit_crds::api::serving::Revision,
) -> Option<(&'static str, String)> {
    let annotations = r.metadata.annotations.clone().unwrap_or_default();
    let cc = r
        .spec
        .revision
        .container_concurrency
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0);
    knit_serving::autoscaler::target::RevisionSpec::resolve(
        &knit_serving::autoscaler::AutoscalerConfig::default(),
        &annotations,
        cc,
    )
    .ok()?
    .unsupported()
}

/// Reasons of a report that mean "still starting", not a failure.
const PENDING_REASONS: &[&str] = &["", "Deploying", "Pending", "Activating", "Queued"];

/// Revision conditions and fields from the report.
pub(crate) fn statuses(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Revision) {
        let Some(Object::Revision(r)) = world.objects.get(&key) else {
            continue;
        };
        let uid = r.metadata.uid.clone().unwrap_or_default();
        let spec = &r.spec.revision;
        let image = serving_container(spec)
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let is_runnable = runnable(spec);
        let unsupported = autoscaler_unsupported(r);
        let env_error = environment(world, &key.namespace, spec).err();
        let report = world.report.objects.get(&uid).cloned();
        let Some(Object::Revision(r)) = world.objects.get_mut(&key) else {
            continue;
        };
        let st = r.status.get_or_insert_with(Default::default);
        let mut c = Conditions::new();
        if !is_runnable {
            let msg = format!(
                "Knit runs revisions as local processes and cannot run image {image:?} by itself: set `command` (and `args`) on the container to the program that serves it on $PORT"
            );
            c.fail("ContainerHealthy", IMAGE_NOT_RUNNABLE, msg.clone());
            c.fail("ResourcesAvailable", IMAGE_NOT_RUNNABLE, msg);
            c.fail(
                "Active",
                "NoTraffic",
                "The target is not receiving traffic.",
            );
            st.actual_replicas = Some(0);
            st.desired_replicas = Some(0);
        } else if let Some((reason, msg)) = unsupported {
            c.fail("ResourcesAvailable", reason, msg.clone());
            c.fail("ContainerHealthy", reason, msg);
            c.fail(
                "Active",
                "NoTraffic",
                "The target is not receiving traffic.",
            );
        } else if let Some(why) = env_error {
            c.fail("ContainerHealthy", CONFIG_ERROR, why.to_string());
            c.fail("ResourcesAvailable", CONFIG_ERROR, why.to_string());
            c.fail(
                "Active",
                "NoTraffic",
                "The target is not receiving traffic.",
            );
        } else {
            apply_report(&mut c, st, report.as_ref());
        }
        st.status.conditions = c.roll_up(&["ResourcesAvailable", "ContainerHealthy"]);
    }
}

fn replicas(r: &ObjectReport, key: &str) -> Option<i32> {
    r.annotations.get(key).and_then(|v| v.parse().ok())
}

fn apply_report(
    c: &mut Conditions,
    st: &mut knit_crds::api::serving::RevisionStatus,
    report: Option<&ObjectReport>,
) {
    let Some(r) = report else {
        c.unknown("ResourcesAvailable", "Deploying", "");
        c.unknown("ContainerHealthy", "Deploying", "");
        c.unknown("Active", "Deploying", "");
        return;
    };
    st.actual_replicas = replicas(r, "actualReplicas");
    st.desired_replicas = replicas(r, "desiredReplicas");
    if let Some(ms) = r.annotations.get("lastColdStartMs") {
        st.status
            .annotations
            .insert(COLD_START_ANNOTATION.into(), ms.clone());
    }
    if r.ready {
        c.ok("ResourcesAvailable");
        c.ok("ContainerHealthy");
    } else if PENDING_REASONS.contains(&r.reason.as_str()) {
        let reason = if r.reason.is_empty() {
            "Deploying"
        } else {
            r.reason.as_str()
        };
        c.unknown("ResourcesAvailable", reason, r.message.clone());
        c.unknown("ContainerHealthy", reason, r.message.clone());
    } else {
        c.fail("ContainerHealthy", &r.reason, r.message.clone());
        c.fail("ResourcesAvailable", &r.reason, r.message.clone());
    }
    match st.actual_replicas {
        Some(n) if n > 0 => {
            c.ok("Active");
        }
        Some(_) if r.ready => {
            c.fail(
                "Active",
                "NoTraffic",
                "The target is not receiving traffic.",
            );
        }
        _ if r.ready => {
            c.ok("Active");
        }
        _ => {
            c.unknown("Active", "Deploying", "");
        }
    }
}

/// The Revisions to pass back with the next input: those a Configuration controls, without
/// status.
pub(crate) fn history(world: &World<'_>) -> Vec<Object> {
    world
        .objects
        .values()
        .filter(|o| o.kind() == Kind::Revision && controller_configuration(o).is_some())
        .map(|o| {
            let mut o = o.clone();
            o.clear_status();
            o
        })
        .collect()
}
