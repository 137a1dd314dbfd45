//! Configuration statuses: `latestCreatedRevisionName` (set when stamping) and
//! `latestReadyRevisionName`, the highest-generation Ready Revision, which stays on the last
//! good one when a newer Revision fails (serving reference §4.2).

use knit_crds::api::duck::Condition;
use knit_crds::{Kind, Object, ObjectKey};

use super::super::World;
use super::super::conditions::{Conditions, ready_of};
use super::super::conditions_of;
use super::revisions::{controller_configuration, generation_of};

/// The `Ready` condition of Revision `name` in `ns`, if it exists.
pub(crate) fn revision_ready(world: &World<'_>, ns: &str, name: &str) -> Option<Condition> {
    let o = world
        .objects
        .get(&ObjectKey::new(Kind::Revision, ns, name))?;
    Some(ready_of(conditions_of(o)).cloned().unwrap_or_default())
}

/// Set every Configuration's `latestReadyRevisionName` and `Ready`.
pub(crate) fn statuses(world: &mut World<'_>) {
    for key in world.keys_of(Kind::Configuration) {
        let Some(Object::Configuration(c)) = world.objects.get(&key) else {
            continue;
        };
        let uid = c.metadata.uid.clone().unwrap_or_default();
        let st = c.status.clone().unwrap_or_default();
        let latest_ready = world
            .objects
            .values()
            .filter(|o| {
                o.kind() == Kind::Revision
                    && o.namespace() == key.namespace
                    && controller_configuration(o).is_some_and(|(_, u)| u == uid)
                    && ready_of(conditions_of(o)).is_some_and(|r| r.status == "True")
            })
            .max_by_key(|o| generation_of(o))
            .map(|o| o.name().to_string());
        let created = st.latest_created_revision_name.clone();
        let conditions = match &created {
            // Stamping failed: its condition stands.
            None => st.status.conditions.clone(),
            Some(name) => {
                let mut cs = Conditions::new();
                let ready = revision_ready(world, &key.namespace, name).unwrap_or_default();
                match ready.status.as_str() {
                    "True" => {
                        cs.ok("Ready");
                    }
                    "False" => {
                        cs.fail(
                            "Ready",
                            "RevisionFailed",
                            format!(
                                "Revision {name:?} failed with message: {}.",
                                ready.message.unwrap_or_default()
                            ),
                        );
                    }
                    _ => {
                        cs.unknown(
                            "Ready",
                            ready.reason.as_deref().unwrap_or("Deploying"),
                            format!("Revision {name:?} is not ready yet."),
                        );
                    }
                }
                cs.roll_up(&["Ready"])
            }
        };
        let Some(Object::Configuration(c)) = world.objects.get_mut(&key) else {
            continue;
        };
        let s = c.status.get_or_insert_with(Default::default);
        s.latest_ready_revision_name = latest_ready;
        s.status.conditions = conditions;
    }
}
