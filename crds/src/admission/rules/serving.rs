//! Service, Configuration, Revision, Route: traffic, revision templates, autoscaling
//! annotations and the runtime contract's reserved names.

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
            autoscaling(a, &format!("{path}.metadata.annotations"), errs);
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

fn annotation<'a>(a: &'a BTreeMap<String, String>, key: &str) -> Option<(&'a str, String)> {
    let legacy = key
        .split('-')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                w[..1].to_uppercase() + &w[1..]
            }
        })
        .collect::<String>();
    for k in [
        format!("autoscaling.knative.dev/{key}"),
        format!("autoscaling.knative.dev/{legacy}"),
    ] {
        if let Some(v) = a.get(&k) {
            return Some((v.as_str(), k));
        }
    }
    None
}

/// `autoscaling.knative.dev/*` annotations.
pub(crate) fn autoscaling(a: &BTreeMap<String, String>, path: &str, errs: &mut Errors) {
    let mut int = |key: &str, min: i64| -> Option<i64> {
        let (v, k) = annotation(a, key)?;
        match v.parse::<i64>() {
            Ok(n) if n >= min => Some(n),
            _ => {
                errs.add(
                    format!("{path}.{k}"),
                    format!("invalid value {v:?}: must be a whole number of at least {min}"),
                );
                None
            }
        }
    };
    let min = int("min-scale", 0);
    let max = int("max-scale", 0);
    let initial = int("initial-scale", 0);
    let activation = int("activation-scale", 2);
    if let (Some(mn), Some(mx)) = (min, max)
        && mx > 0
        && mn > mx
    {
        errs.add(
            format!("{path}.autoscaling.knative.dev/max-scale"),
            format!("max-scale={mx} is less than min-scale={mn}"),
        );
    }
    if let Some(act) = activation
        && (min.is_some_and(|m| act < m) || max.is_some_and(|m| m > 0 && act > m))
    {
        errs.add(
            format!("{path}.autoscaling.knative.dev/activation-scale"),
            "must be between min-scale and max-scale",
        );
    }
    if initial == Some(0) {
        errs.add(
            format!("{path}.autoscaling.knative.dev/initial-scale"),
            "0 is only allowed when allow-zero-initial-scale is enabled",
        );
    }
    let mut float = |key: &str, lo: f64, hi: f64| {
        if let Some((v, k)) = annotation(a, key)
            && !v.parse::<f64>().is_ok_and(|n| n >= lo && n <= hi)
        {
            errs.add(
                format!("{path}.{k}"),
                format!("invalid value {v:?}: must be between {lo} and {hi}"),
            );
        }
    };
    float("target", 0.01, f64::MAX);
    float("target-utilization-percentage", 1.0, 100.0);
    float("panic-window-percentage", 1.0, 100.0);
    float("panic-threshold-percentage", 110.0, 1000.0);
    if let Some((v, k)) = annotation(a, "target-burst-capacity")
        && !v.parse::<f64>().is_ok_and(|n| n >= 0.0 || n == -1.0)
    {
        errs.add(
            format!("{path}.{k}"),
            format!("invalid value {v:?}: must be 0 or more, or -1"),
        );
    }
    if let Some((v, k)) = annotation(a, "class")
        && v.ends_with(".knative.dev")
        && v != "kpa.autoscaling.knative.dev"
        && v != "hpa.autoscaling.knative.dev"
    {
        errs.add(
            format!("{path}.{k}"),
            format!("unknown autoscaler class {v:?}"),
        );
    }
    let kpa = annotation(a, "class").is_none_or(|(v, _)| v == "kpa.autoscaling.knative.dev");
    if let Some((v, k)) = annotation(a, "metric")
        && kpa
        && v != "concurrency"
        && v != "rps"
    {
        errs.add(
            format!("{path}.{k}"),
            format!("invalid value {v:?}: the KPA scales on concurrency or rps"),
        );
    }
    let mut secs = |key: &str, lo: u64, hi: u64, whole: bool| {
        if let Some((v, k)) = annotation(a, key) {
            match duration::parse_go(v) {
                Ok(d) if d.as_secs() < lo || d.as_secs() > hi || d.as_secs_f64() > hi as f64 => {
                    errs.add(
                        format!("{path}.{k}"),
                        format!("invalid value {v:?}: must be between {lo}s and {hi}s"),
                    )
                }
                Ok(d) if whole && d.subsec_nanos() != 0 => errs.add(
                    format!("{path}.{k}"),
                    format!("invalid value {v:?}: must be whole seconds"),
                ),
                Ok(_) => {}
                Err(e) => errs.add(format!("{path}.{k}"), e),
            }
        }
    };
    secs("window", 6, 3600, true);
    secs("scale-down-delay", 0, 3600, true);
    secs("scale-to-zero-pod-retention-period", 0, 3600, false);
    if let Some((v, k)) = annotation(a, "metric-aggregation-algorithm")
        && !matches!(v, "linear" | "weighted-exponential" | "weightedExponential")
    {
        errs.add(
            format!("{path}.{k}"),
            format!("invalid value {v:?}: must be linear or weighted-exponential"),
        );
    }
}

/// `serving.knative.dev/rollout-duration` on a Service or Route.
pub(crate) fn rollout(a: Option<&BTreeMap<String, String>>, errs: &mut Errors) {
    if let Some(v) = a.and_then(|a| a.get("serving.knative.dev/rollout-duration"))
        && let Err(e) = duration::parse_go(v)
    {
        errs.add(
            "metadata.annotations.serving.knative.dev/rollout-duration",
            e,
        );
    }
}
