//! Serving statuses. Revisions, routes and the gateway are the serving subsystem's; until it
//! runs, serving resources are stored and report that they cannot serve yet.

use knit_crds::{Kind, Object};

use super::World;
use super::conditions::Conditions;

pub(crate) fn serving(world: &mut World<'_>) {
    for kind in [
        Kind::Service,
        Kind::Configuration,
        Kind::Revision,
        Kind::Route,
    ] {
        for key in world.keys_of(kind) {
            let Some(mut o) = world.objects.get(&key).cloned() else {
                continue;
            };
            let mut c = Conditions::new();
            let msg = "serving (revisions as local processes, routes, the gateway) is not part of this Knit build yet";
            let conditions = match kind {
                Kind::Service => {
                    c.fail("ConfigurationsReady", "ServingNotAvailable", msg);
                    c.unknown("RoutesReady", "ServingNotAvailable", "");
                    c.roll_up(&["ConfigurationsReady", "RoutesReady"])
                }
                Kind::Route => {
                    c.fail("AllTrafficAssigned", "ServingNotAvailable", msg);
                    c.roll_up(&["AllTrafficAssigned"])
                }
                _ => {
                    c.fail("ResourcesAvailable", "ServingNotAvailable", msg);
                    c.roll_up(&["ResourcesAvailable"])
                }
            };
            match &mut o {
                Object::Service(s) => {
                    s.status
                        .get_or_insert_with(Default::default)
                        .status
                        .conditions = conditions
                }
                Object::Configuration(s) => {
                    s.status
                        .get_or_insert_with(Default::default)
                        .status
                        .conditions = conditions
                }
                Object::Revision(s) => {
                    s.status
                        .get_or_insert_with(Default::default)
                        .status
                        .conditions = conditions
                }
                Object::Route(s) => {
                    s.status
                        .get_or_insert_with(Default::default)
                        .status
                        .conditions = conditions
                }
                _ => continue,
            }
            world.objects.insert(key, o);
        }
    }
}
