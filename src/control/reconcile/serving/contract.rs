//! The Contract's serving section: every Revision that can run locally (its container has a
//! `command` and its environment resolves) and every Route whose traffic resolved, plus the `config-autoscaler` data and
//! the `tag-header-based-routing` feature flag.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Probe as KProbe;
use knit_crds::api::serving::RevisionSpec;
use knit_crds::contract::serving::{Container, Probe, Revision, Route, Serving, Tag, Target};
use knit_crds::{Kind, Object};

use super::super::World;
use super::super::children::names_serving::SERVICE_LABEL;
use super::domain_mapping;
use super::environment::environment;
use super::revisions::{
    CONFIGURATION_LABEL, DEFAULT_CONTAINER_NAME, DEFAULT_TIMEOUT_SECONDS, ROUTING_STATE_LABEL,
    runnable, serving_container,
};
use super::{cluster_local, config_map, label, urls};

/// Prefix of the autoscaling annotations a Revision carries to the autoscaler.
const AUTOSCALING_PREFIX: &str = "autoscaling.knative.dev/";

fn seconds(v: Option<i32>) -> u64 {
    v.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn probe(p: Option<&KProbe>) -> Option<Probe> {
    let p = p?;
    let http = p.http_get.as_ref();
    Some(Probe {
        http_path: http.map(|h| h.path.clone().unwrap_or_else(|| "/".into())),
        http_headers: http
            .and_then(|h| h.http_headers.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
        initial_delay_seconds: seconds(p.initial_delay_seconds),
        period_seconds: seconds(p.period_seconds),
        timeout_seconds: seconds(p.timeout_seconds),
        failure_threshold: p
            .failure_threshold
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    })
}

fn container(spec: &RevisionSpec, env: Vec<(String, String)>) -> Option<Container> {
    let c = serving_container(spec)?;
    let argv = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect();
    Some(Container {
        name: if c.name.is_empty() {
            DEFAULT_CONTAINER_NAME.into()
        } else {
            c.name.clone()
        },
        image: c.image.clone().unwrap_or_default(),
        argv,
        env,
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        port: c
            .ports
            .iter()
            .flatten()
            .next()
            .and_then(|p| u16::try_from(p.container_port).ok()),
        readiness: probe(c.readiness_probe.as_ref()),
        startup: probe(c.startup_probe.as_ref()),
    })
}

fn positive(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

fn revision(world: &World<'_>, o: &Object) -> Option<Revision> {
    let Object::Revision(r) = o else {
        return None;
    };
    let spec = &r.spec.revision;
    if !runnable(spec) || super::revisions::autoscaler_unsupported(r).is_some() {
        return None;
    }
    let env = environment(world, o.namespace(), spec).ok()?;
    Some(Revision {
        uid: r.metadata.uid.clone().unwrap_or_default(),
        namespace: o.namespace().to_string(),
        name: o.name().to_string(),
        configuration: label(o, CONFIGURATION_LABEL)
            .unwrap_or_default()
            .to_string(),
        service: label(o, SERVICE_LABEL).map(str::to_string),
        container: container(spec, env)?,
        container_concurrency: spec
            .container_concurrency
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        timeout_seconds: positive(spec.timeout_seconds)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS.unsigned_abs()),
        response_start_timeout_seconds: positive(spec.response_start_timeout_seconds),
        idle_timeout_seconds: positive(spec.idle_timeout_seconds),
        autoscaling: o
            .meta()
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(AUTOSCALING_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        // `pending` (deploying, not yet routed) runs with its initial scale too.
        routed: matches!(label(o, ROUTING_STATE_LABEL), Some("active" | "pending")),
    })
}

fn hosts(public: Option<String>, local: String) -> Vec<String> {
    let short = local
        .strip_suffix(".cluster.local")
        .map(str::to_string)
        .unwrap_or_default();
    public
        .into_iter()
        .chain([local])
        .chain((!short.is_empty()).then_some(short))
        .collect()
}

fn route(world: &World<'_>, o: &Object) -> Option<Route> {
    let Object::Route(r) = o else {
        return None;
    };
    let st = r.status.as_ref()?;
    let assigned = st
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "AllTrafficAssigned" && c.status == "True");
    if !assigned {
        return None;
    }
    let (ns, name) = (o.namespace(), o.name());
    let local = cluster_local(o);
    let u = urls(world, ns, name, None, local);
    let mut split: BTreeMap<String, u32> = BTreeMap::new();
    let mut tags = Vec::new();
    for t in &st.traffic {
        let rev = t.revision_name.clone()?;
        let pct = t.percent.and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
        if pct > 0 {
            *split.entry(rev.clone()).or_default() += pct;
        }
        if let Some(tag) = &t.tag {
            let tu = urls(world, ns, name, Some(tag), local);
            tags.push(Tag {
                tag: tag.clone(),
                hosts: hosts(tu.public_host, tu.local_host),
                revision: rev,
            });
        }
    }
    Some(Route {
        uid: r.metadata.uid.clone().unwrap_or_default(),
        namespace: ns.to_string(),
        name: name.to_string(),
        hosts: hosts(u.public_host, u.local_host),
        traffic: split
            .into_iter()
            .map(|(revision, percent)| Target { revision, percent })
            .collect(),
        tags,
    })
}

/// The serving section of the Contract.
pub(crate) fn build(world: &World<'_>) -> Serving {
    let mut out = Serving::default();
    for o in world.objects.values() {
        match o.kind() {
            Kind::Revision => out.revisions.extend(revision(world, o)),
            Kind::Route => out.routes.extend(route(world, o)),
            _ => {}
        }
    }
    for (route, host) in domain_mapping::hosts(world) {
        if let Some(r) = out
            .routes
            .iter_mut()
            .find(|r| r.namespace == route.namespace && r.name == route.name)
            && !r.hosts.contains(&host)
        {
            r.hosts.push(host);
        }
    }
    out.autoscaler_config = config_map(world, "config-autoscaler")
        .cloned()
        .unwrap_or_default();
    out.tag_header_routing = config_map(world, "config-features")
        .and_then(|f| f.get("tag-header-based-routing"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("enabled"));
    out
}
