//! Serving: Service → Configuration → Revision → Route, as Knative's controllers do it.
//!
//! - `children` derives a Service's Configuration and Route; [`revisions`] stamps a Revision
//!   per Configuration generation, keeping the ones stamped before (they come back as input:
//!   see [`revisions`] for the history and what a restart does);
//! - [`revisions`] also sets each Revision's status from the data plane's report under its UID;
//! - [`configuration`] picks `latestCreatedRevisionName` and `latestReadyRevisionName`;
//! - [`route`] resolves traffic targets to concrete revisions, sets URLs and rolls a Service's
//!   status up from its Configuration and Route;
//! - [`contract`] is the Contract's serving section.
//!
//! URLs: a Route's host is `{name}.{namespace}.{domain}` (domain from the `config-domain`
//! ConfigMap in `knative-serving`, standalone default `localhost`), and its public URL carries
//! the gateway's port: `http://hello.default.localhost:8081`. The cluster-local host
//! `{name}.{namespace}.svc.cluster.local` is `status.address.url` and is served by the gateway
//! too; `networking.knative.dev/visibility: cluster-local` keeps the public host off.
//! [`domain_mapping`] adds custom hosts to a Route.

pub(crate) mod configuration;
pub(crate) mod contract;
pub(crate) mod domain_mapping;
pub(crate) mod environment;
pub(crate) mod revisions;
pub(crate) mod route;

use knit_crds::{Kind, Object, ObjectKey};

use super::World;
use super::conditions::Conditions;

/// Namespace of serving's ConfigMaps.
pub(crate) const SYSTEM_NAMESPACE: &str = "knative-serving";
/// The standalone default domain: `*.localhost` resolves to loopback.
pub(crate) const DEFAULT_DOMAIN: &str = "localhost";
/// The cluster-local domain suffix.
pub(crate) const CLUSTER_LOCAL_DOMAIN: &str = "svc.cluster.local";
/// The visibility label (and its legacy serving.knative.dev spelling).
pub(crate) const VISIBILITY_LABELS: [&str; 2] = [
    "networking.knative.dev/visibility",
    "serving.knative.dev/visibility",
];

/// Run every serving step.
pub(crate) fn serving(world: &mut World<'_>) {
    revisions::stamp(world);
    revisions::statuses(world);
    configuration::statuses(world);
    route::statuses(world);
    domain_mapping::statuses(world);
}

/// The data of ConfigMap `knative-serving/{name}`.
pub(crate) fn config_map<'a>(
    world: &'a World<'_>,
    name: &str,
) -> Option<&'a std::collections::BTreeMap<String, String>> {
    match world
        .objects
        .get(&ObjectKey::new(Kind::ConfigMap, SYSTEM_NAMESPACE, name))
    {
        Some(Object::ConfigMap(cm)) => cm.data.as_ref(),
        _ => None,
    }
}

/// The domain of public hosts: the `config-domain` key whose value is empty (Knative's default
/// domain; label selectors are not supported), else `localhost`.
pub(crate) fn domain(world: &World<'_>) -> String {
    config_map(world, "config-domain")
        .and_then(|d| {
            d.iter()
                .find(|(k, v)| v.trim().is_empty() && k.as_str() != CLUSTER_LOCAL_DOMAIN)
                .map(|(k, _)| k.trim().to_ascii_lowercase())
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_DOMAIN.to_string())
}

/// Whether an object's labels make it cluster-local.
pub(crate) fn cluster_local(o: &Object) -> bool {
    let labels = o.meta().labels.as_ref();
    VISIBILITY_LABELS
        .iter()
        .any(|l| labels.and_then(|m| m.get(*l)).map(String::as_str) == Some("cluster-local"))
}

/// Host names and URLs of one Route (or the Service that owns it).
#[derive(Clone, Debug)]
pub(crate) struct Urls {
    /// `name.ns.domain`, or `None` when cluster-local.
    pub(crate) public_host: Option<String>,
    /// `name.ns.svc.cluster.local`.
    pub(crate) local_host: String,
    /// `status.url`: on the HTTPS gateway when TLS is on (as Knative's `external-domain-tls`).
    pub(crate) url: String,
    /// The public URL on the plain gateway, which answers whatever the TLS settings (what
    /// local processes get: they have no CA to trust).
    pub(crate) plain_url: String,
    /// `status.address.url`: what a Destination `ref` to it resolves to; Knit's deliveries
    /// reach it on the gateway (the dispatcher connects cluster-local hosts it serves there).
    pub(crate) address: String,
}

/// `:{port}` of the gateway, empty for the scheme's default port (80, 443) or when unknown.
pub(crate) fn port_suffix(gateway_url: &str) -> String {
    url::Url::parse(gateway_url)
        .ok()
        .and_then(|u| u.port())
        .filter(|p| *p != 80)
        .map(|p| format!(":{p}"))
        .unwrap_or_default()
}

/// The URLs of Route `name` in `ns` (or of its tag `tag`).
pub(crate) fn urls(
    world: &World<'_>,
    ns: &str,
    name: &str,
    tag: Option<&str>,
    local: bool,
) -> Urls {
    let label = match tag {
        Some(t) => format!("{t}-{name}"),
        None => name.to_string(),
    };
    let local_host = format!("{label}.{ns}.{CLUSTER_LOCAL_DOMAIN}");
    let port = port_suffix(&world.env.gateway_url);
    let public_host = (!local).then(|| format!("{label}.{ns}.{}", domain(world)));
    let address = format!("http://{local_host}");
    let plain_url = match &public_host {
        Some(h) => format!("http://{h}{port}"),
        None => address.clone(),
    };
    let url = match (&public_host, &world.env.tls) {
        (Some(h), Some(tls)) => format!("https://{h}{}", port_suffix(&tls.gateway_url)),
        _ => plain_url.clone(),
    };
    Urls {
        public_host,
        local_host,
        url,
        plain_url,
        address,
    }
}

/// `status.address.url` of a Service, Route or DomainMapping, as a Destination `ref` to it
/// resolves (Knative resolves an Addressable to its address): `http://{name}.{ns}.svc.cluster.local`
/// for a Service or Route, the mapping's own URL for a DomainMapping that holds its host and
/// names a Route. The dispatcher connects these hosts to the gateway.
pub(crate) fn address(world: &World<'_>, key: &ObjectKey) -> Option<String> {
    let o = world.objects.get(key)?;
    match o {
        Object::Service(_) | Object::Route(_) => {
            Some(urls(world, &key.namespace, &key.name, None, cluster_local(o)).address)
        }
        Object::DomainMapping(d) => {
            domain_mapping::target_route(world, &key.namespace, &d.spec.reference).ok()?;
            domain_mapping::holds_its_host(world, key).then(|| domain_mapping::url(world, key))
        }
        _ => None,
    }
}

/// Where a local process (a ContainerSource's, through `K_SINK`) reaches a Service, Route or
/// DomainMapping: the Route's public URL (`http://hello.default.localhost:8081`; names under
/// `localhost` are loopback), since the process has no cluster DNS for the cluster-local
/// address. `None` for a cluster-local Route, which has no public URL.
pub(crate) fn process_url(world: &World<'_>, key: &ObjectKey) -> Option<String> {
    let o = world.objects.get(key)?;
    match o {
        Object::Service(_) | Object::Route(_) if !cluster_local(o) => {
            Some(urls(world, &key.namespace, &key.name, None, false).plain_url)
        }
        Object::DomainMapping(d) => {
            let route =
                domain_mapping::target_route(world, &key.namespace, &d.spec.reference).ok()?;
            process_url(world, &route)
        }
        _ => None,
    }
}

/// A label of an object.
pub(crate) fn label<'a>(o: &'a Object, name: &str) -> Option<&'a str> {
    o.meta()
        .labels
        .as_ref()
        .and_then(|a| a.get(name))
        .map(String::as_str)
}

/// `IngressReady` unknown: the gateway does not serve the host yet (Knative's wording).
pub(crate) fn ingress_pending(c: &mut Conditions) {
    c.unknown(
        "IngressReady",
        "IngressNotConfigured",
        "Ingress has not yet been reconciled.",
    );
}

/// `CertificateProvisioned` true because auto-TLS is off (Knative's wording).
pub(crate) fn no_auto_tls(c: &mut Conditions) {
    c.ok_because(
        "CertificateProvisioned",
        "TLSNotEnabled",
        "autoTLS is not enabled",
    );
}

#[cfg(test)]
mod tests;
