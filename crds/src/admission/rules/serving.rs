//! Service, Configuration, Revision, Route: traffic, revision templates (their autoscaling
//! annotations are `super::autoscaling`'s) and the runtime contract's reserved names.

use std::collections::{BTreeMap, BTreeSet};

use super::common::Errors;
use crate::admission::meta::{dns1035_label, dns1123_subdomain};
use crate::api::serving::{RevisionSpec, RevisionTemplateSpec, TrafficTarget};
use crate::duration;

const RESERVED_ENV: &[&str] = &["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];
const RESERVED_PORTS: &[i32] = &[8012, 8013, 8022, 8112, 9090, 9091];
const MAX_TIMEOUT_SECONDS: i64 = 600;
const MAX_CONTAINER_CONCURRENCY: i64 = 1000;

/// Traffic targets of a Service (`in_service`) or a Route.
pub(crate) fn traffic(targets: &[TrafficTarget], path: &str, in_service: bool, errs: &mut Errors) {
    let mut sum = 0i64;
    let mut tags = BTreeSet::new();
    for (i, t) in targets.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(tag) = &t.tag {
            if let Some(problem) = dns1035_label(tag) {
                errs.add(
                    format!("{p}.tag"),
                    format!("invalid value {tag:?}: {problem}"),
                );
            }
            if !tags.insert(tag) {
                errs.add(format!("{p}.tag"), format!("duplicate tag {tag:?}"));
            }
        }
        if in_service && t.configuration_name.is_some() {
            errs.add(
                format!("{p}.configurationName"),
                "must not be set inside a Service (its configuration is implied)",
            );
        }
        match (&t.revision_name, &t.configuration_name) {
            (Some(_), Some(_)) => errs.add(
                &p,
                "expected exactly one, got both: revisionName, configurationName",
            ),
            (None, None) if !in_service => errs.add(
                &p,
                "expected exactly one, got neither: revisionName, configurationName",
            ),
            _ => {}
        }
        if let Some(r) = &t.revision_name {
            if let Some(problem) = dns1123_subdomain(r) {
                errs.add(
                    format!("{p}.revisionName"),
                    format!("invalid value {r:?}: {problem}"),
                );
            }
            if t.latest_revision == Some(true) {
                errs.add(
                    format!("{p}.latestRevision"),
                    "may not be true when revisionName is set",
                );
            }
        } else if t.latest_revision == Some(false) {
            errs.add(
                format!("{p}.latestRevision"),
                "may not be false when revisionName is not set",
            );
        }
        match t.percent {
            Some(pc) if !(0..=100).contains(&pc) => errs.add(
                format!("{p}.percent"),
                format!("invalid value {pc}: must be between 0 and 100"),
            ),
            Some(pc) => sum += pc,
            None => {}
        }
        if t.url.is_some() {
            errs.add(format!("{p}.url"), "must not be set (it is status only)");
        }
    }
    if !targets.is_empty() && sum != 100 {
        errs.add(path, format!("traffic targets sum to {sum}, want 100"));
    }
}

/// A Service's or Configuration's template; `owner` is the Service/Configuration name.
pub(crate) fn template(
    t: Option<&RevisionTemplateSpec>,
    owner: &str,
    path: &str,
    errs: &mut Errors,
) {
    let Some(t) = t else {
        errs.missing(format!("{path}.spec.containers"));
        return;
    };
    if let Some(meta) = &t.metadata {
        if let Some(name) = &meta.name {
            if !name.starts_with(&format!("{owner}-")) {
                errs.add(
                    format!("{path}.metadata.name"),
                    format!("{name:?} must have prefix \"{owner}-\""),
                );
            }
            if let Some(problem) = dns1123_subdomain(name) {
                errs.add(
                    format!("{path}.metadata.name"),
                    format!("invalid value {name:?}: {problem}"),
                );
            }
        }
        if let Some(a) = &meta.annotations {
            super::autoscaling::annotations(a, &format!("{path}.metadata.annotations"), errs);
        }
    }
    match &t.spec {
        Some(spec) => revision(spec, &format!("{path}.spec"), errs),
        None => errs.missing(format!("{path}.spec.containers")),
    }
}

/// A Revision spec.
pub(crate) fn revision(spec: &RevisionSpec, path: &str, errs: &mut Errors) {
    let containers = &spec.pod.containers;
    if containers.is_empty() {
        errs.missing(format!("{path}.containers"));
    }
    let mut with_port = 0;
    for (i, c) in containers.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        if c.image.as_deref().is_none_or(str::is_empty)
            && c.command.as_ref().is_none_or(Vec::is_empty)
        {
            errs.missing(format!("{p}.image"));
        }
        for (j, e) in c.env.iter().flatten().enumerate() {
            if RESERVED_ENV.contains(&e.name.as_str()) {
                errs.add(
                    format!("{p}.env[{j}].name"),
                    format!("{:?} is a reserved environment variable", e.name),
                );
            }
        }
        let ports = c.ports.as_deref().unwrap_or_default();
        if ports.len() > 1 {
            errs.add(
                format!("{p}.ports"),
                "more than one container port is not allowed",
            );
        }
        if !ports.is_empty() {
            with_port += 1;
        }
        for (j, port) in ports.iter().enumerate() {
            if RESERVED_PORTS.contains(&port.container_port) {
                errs.add(
                    format!("{p}.ports[{j}].containerPort"),
                    format!("port {} is reserved", port.container_port),
                );
            }
        }
    }
    if containers.len() > 1 && with_port != 1 {
        errs.add(
            format!("{path}.containers"),
            "with more than one container, exactly one must declare a port (the serving container)",
        );
    }
    if let Some(cc) = spec.container_concurrency
        && !(0..=MAX_CONTAINER_CONCURRENCY).contains(&cc)
    {
        errs.add(
            format!("{path}.containerConcurrency"),
            format!("invalid value {cc}: must be between 0 and {MAX_CONTAINER_CONCURRENCY}"),
        );
    }
    for (field, v) in [
        ("timeoutSeconds", spec.timeout_seconds),
        (
            "responseStartTimeoutSeconds",
            spec.response_start_timeout_seconds,
        ),
        ("idleTimeoutSeconds", spec.idle_timeout_seconds),
    ] {
        if let Some(v) = v
            && !(0..=MAX_TIMEOUT_SECONDS).contains(&v)
        {
            errs.add(
                format!("{path}.{field}"),
                format!("invalid value {v}: must be between 0 and {MAX_TIMEOUT_SECONDS}"),
            );
        }
    }
}

/// `serving.knative.dev/rollout-duration` on a Service or Route.
pub(crate) fn rollout(a: Option<&BTreeMap<String, String>>, errs: &mut Errors) {
    if let Some(v) = a.and_then(|a| a.get("serving.knative.dev/rollout-duration"))
        && let Err(e) = duration::parse_go(v)
    {
        errs.add(
            "metadata.annotations.serving.knative.dev/rollout-duration",
            e.to_string(),
        );
    }
}
