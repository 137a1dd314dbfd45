//! DomainMappings (`serving.knative.dev/v1beta1`): a custom host, the mapping's name, served by
//! the gateway as another host of the referenced Service's (or Route's) Route. A host is
//! claimed by the first mapping of that name (oldest, then by namespace), as Knative's
//! ClusterDomainClaim does; a later one reports `DomainAlreadyClaimed`.

use knit_crds::api::duck::{Addressable, KReference};
use knit_crds::{Kind, Object, ObjectKey};

use super::super::World;
use super::super::conditions::Conditions;
use super::super::conditions_of;
use super::super::resolve::referenced_kind;

/// Why a DomainMapping's reference names no Route; its text is the `ReferenceResolved`
/// message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// A kind other than a Knative Service or Route.
    #[error("Knit maps domains to Knative Services and Routes only, not {kind} ({api_version})")]
    UnsupportedKind { kind: String, api_version: String },
    /// The Service or Route (or the Service's Route) does not exist.
    #[error("{kind} {namespace}/{name} not found", kind = .kind.name())]
    NotFound {
        kind: Kind,
        namespace: String,
        name: String,
    },
}

/// The Route serving a DomainMapping's reference in `ns`.
pub(crate) fn target_route(
    world: &World<'_>,
    ns: &str,
    r: &KReference,
) -> Result<ObjectKey, TargetError> {
    let name = r.name.clone().unwrap_or_default();
    let kind = referenced_kind(r).filter(|k| matches!(k, Kind::Service | Kind::Route));
    let Some(kind) = kind else {
        return Err(TargetError::UnsupportedKind {
            kind: r.kind.clone().unwrap_or_default(),
            api_version: r.api_version.clone().unwrap_or_default(),
        });
    };
    let not_found = |kind| TargetError::NotFound {
        kind,
        namespace: ns.to_string(),
        name: name.clone(),
    };
    if !world.objects.contains_key(&ObjectKey::new(kind, ns, &name)) {
        return Err(not_found(kind));
    }
    let route = ObjectKey::new(Kind::Route, ns, &name);
    if world.objects.contains_key(&route) {
        Ok(route)
    } else {
        Err(not_found(Kind::Route))
    }
}

/// The mapping that holds each host: the oldest, then the first by namespace.
fn claimant(world: &World<'_>, host: &str) -> Option<ObjectKey> {
    world
        .objects
        .values()
        .filter(|o| o.kind() == Kind::DomainMapping && o.name() == host)
        .min_by_key(|o| {
            (
                o.meta().creation_timestamp.as_ref().map(|t| t.0),
                o.namespace().to_string(),
            )
        })
        .map(Object::key)
}

/// Whether the mapping `key` holds its host (no older mapping claimed it).
pub(crate) fn holds_its_host(world: &World<'_>, key: &ObjectKey) -> bool {
    claimant(world, &key.name).as_ref() == Some(key)
}

/// A mapping's URL (`status.url` and `status.address.url`): its host on the gateway's port.
pub(crate) fn url(world: &World<'_>, key: &ObjectKey) -> String {
    format!(
        "http://{}{}",
        key.name.to_ascii_lowercase(),
        super::port_suffix(&world.env.gateway_url)
    )
}

/// The hosts each claimed, resolved mapping adds to a Route: (route, host).
pub(crate) fn hosts(world: &World<'_>) -> Vec<(ObjectKey, String)> {
    world
        .objects
        .values()
        .filter_map(|o| match o {
            Object::DomainMapping(d) => {
                (claimant(world, o.name()) == Some(o.key())).then_some(())?;
                let route = target_route(world, o.namespace(), &d.spec.reference).ok()?;
                Some((route, o.name().to_ascii_lowercase()))
            }
            _ => None,
        })
        .collect()
}

/// Set every DomainMapping's status.
pub(crate) fn statuses(world: &mut World<'_>) {
    for key in world.keys_of(Kind::DomainMapping) {
        let Some(Object::DomainMapping(d)) = world.objects.get(&key) else {
            continue;
        };
        let mut c = Conditions::new();
        if holds_its_host(world, &key) {
            c.ok("DomainClaimed");
        } else {
            c.fail(
                "DomainClaimed",
                "DomainAlreadyClaimed",
                format!(
                    "The domain name {:?} is already in use by another DomainMapping",
                    key.name
                ),
            );
        }
        let route = target_route(world, &key.namespace, &d.spec.reference);
        match &route {
            Ok(_) => {
                c.ok("ReferenceResolved");
            }
            Err(e) => {
                c.fail("ReferenceResolved", "ResolutionFailed", e.to_string());
            }
        }
        let route_ready = route
            .as_ref()
            .ok()
            .and_then(|r| world.objects.get(r))
            .is_some_and(|r| {
                conditions_of(r)
                    .iter()
                    .any(|c| c.type_ == "AllTrafficAssigned" && c.status == "True")
            });
        if route_ready && c.is_true("DomainClaimed") {
            c.ok("IngressReady");
        } else {
            super::ingress_pending(&mut c);
        }
        super::no_auto_tls(&mut c);
        let url = url(world, &key);
        let conditions = c.roll_up(&[
            "DomainClaimed",
            "ReferenceResolved",
            "IngressReady",
            "CertificateProvisioned",
        ]);
        let Some(Object::DomainMapping(d)) = world.objects.get_mut(&key) else {
            continue;
        };
        let st = d.status.get_or_insert_with(Default::default);
        st.status.conditions = conditions;
        st.address = Some(Addressable {
            name: Some("http".into()),
            url: Some(url.clone()),
            ..Default::default()
        });
        st.url = Some(url);
    }
}
