//! Broker, Trigger, EventType, KafkaSink and the Subscriptions API filter rules.

use std::collections::BTreeMap;

use super::common::{
    Errors, attribute_name, bootstrap_servers, delivery, kafka_topic, kafka_topic_problem,
    kreference, overflow_annotation, required_destination,
};
use crate::admission::Hooks;
use crate::api::eventing::{
    Broker, EventPolicy, EventPolicyReference, EventType, KafkaSink, SubscriptionsApiFilter,
    Trigger,
};
use crate::names;

pub(crate) fn broker(b: &Broker, errs: &mut Errors) {
    let class = b
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::BROKER_CLASS_ANNOTATION));
    if class.is_none_or(|c| c.is_empty()) {
        errs.add(
            format!("metadata.annotations.{}", names::BROKER_CLASS_ANNOTATION),
            "the broker class must not be empty",
        );
    }
    if let Some(c) = &b.spec.config {
        kreference(c, "spec.config", errs);
    }
    if let Some(d) = &b.spec.delivery {
        delivery(d, "spec.delivery", errs);
    }
    // Knative's Kafka broker uses this existing topic instead of creating one.
    if let Some(topic) = b
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::EXTERNAL_TOPIC_ANNOTATION))
        && let Some(p) = kafka_topic_problem(topic)
    {
        errs.add(
            format!("metadata.annotations.{}", names::EXTERNAL_TOPIC_ANNOTATION),
            format!("invalid value {topic:?}: {p}"),
        );
    }
}

pub(crate) fn trigger(t: &Trigger, hooks: &Hooks, errs: &mut Errors) {
    let s = &t.spec;
    match (&s.broker, &s.broker_ref) {
        (None, None) => errs.missing("spec.broker"),
        (Some(b), _) if b.is_empty() => errs.missing("spec.broker"),
        (Some(_), Some(_)) => errs.add("spec", "expected exactly one, got both: broker, brokerRef"),
        (None, Some(r)) => {
            if r.name.as_deref().is_none_or(str::is_empty) {
                errs.missing("spec.brokerRef.name");
            }
        }
        (Some(_), None) => {}
    }
    if let Some(f) = &s.filter {
        for key in f.attributes.keys() {
            if !attribute_name(key) {
                errs.add(
                    format!("spec.filter.attributes.{key}"),
                    "invalid attribute name: must be lower-case letters and digits, starting with a letter",
                );
            }
        }
    }
    filters(&s.filters, "spec.filters", hooks, errs);
    required_destination(s.subscriber.as_ref(), "spec.subscriber", errs);
    if let Some(d) = &s.delivery {
        delivery(d, "spec.delivery", errs);
    }
    let annotations = t.metadata.annotations.clone().unwrap_or_default();
    if let Some(dep) = annotations.get(names::DEPENDENCY_ANNOTATION) {
        dependency(
            dep,
            t.metadata.namespace.as_deref().unwrap_or("default"),
            errs,
        );
    }
    if annotations.contains_key("eventing.knative.dev/injection")
        && s.broker.as_deref() != Some("default")
    {
        errs.add(
            "metadata.annotations.eventing.knative.dev/injection",
            "only allowed for a Trigger of the broker named \"default\"",
        );
    }
    flow_control(&annotations, errs);
    if let Some(v) = annotations.get(names::DELIVERY_ORDER_ANNOTATION)
        && names::delivery_order(v).is_none()
    {
        errs.add(
            format!("metadata.annotations.{}", names::DELIVERY_ORDER_ANNOTATION),
            format!(
                "invalid value {v:?}: must be one of {}",
                names::DELIVERY_ORDERS.join(", ")
            ),
        );
    }
    overflow_annotation(&annotations, errs);
}

fn flow_control(annotations: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some(v) = annotations.get(names::MAX_IN_FLIGHT_ANNOTATION)
        && !v.parse::<u32>().is_ok_and(|n| n >= 1)
    {
        errs.add(
            format!("metadata.annotations.{}", names::MAX_IN_FLIGHT_ANNOTATION),
            format!("invalid value {v:?}: must be a whole number of at least 1"),
        );
    }
    if let Some(v) = annotations.get(names::RATE_LIMIT_ANNOTATION)
        && !v.parse::<f64>().is_ok_and(|r| r.is_finite() && r > 0.0)
    {
        errs.add(
            format!("metadata.annotations.{}", names::RATE_LIMIT_ANNOTATION),
            format!("invalid value {v:?}: must be a number of events per second above 0"),
        );
    }
}

fn dependency(dep: &str, ns: &str, errs: &mut Errors) {
    let path = format!("metadata.annotations.{}", names::DEPENDENCY_ANNOTATION);
    let value: serde_json::Value = match serde_json::from_str(dep) {
        Ok(v) => v,
        Err(e) => return errs.add(path, format!("must be a JSON object reference: {e}")),
    };
    for field in ["kind", "name", "apiVersion"] {
        if value
            .get(field)
            .and_then(|v| v.as_str())
            .is_none_or(str::is_empty)
        {
            errs.missing(format!("{path}.{field}"));
        }
    }
    if let Some(other) = value.get("namespace").and_then(|v| v.as_str())
        && other != ns
    {
        errs.add(
            format!("{path}.namespace"),
            "must be the Trigger's namespace",
        );
    }
}

/// Subscriptions API filters (Trigger `filters`, ApiServerSource `filters`).
pub(crate) fn filters(
    list: &[SubscriptionsApiFilter],
    path: &str,
    hooks: &Hooks,
    errs: &mut Errors,
) {
    for (i, f) in list.iter().enumerate() {
        filter(f, &format!("{path}[{i}]"), hooks, errs);
    }
}

fn filter(f: &SubscriptionsApiFilter, path: &str, hooks: &Hooks, errs: &mut Errors) {
    let mut dialects = Vec::new();
    if !f.exact.is_empty() {
        dialects.push("exact");
    }
    if !f.prefix.is_empty() {
        dialects.push("prefix");
    }
    if !f.suffix.is_empty() {
        dialects.push("suffix");
    }
    if !f.all.is_empty() {
        dialects.push("all");
    }
    if !f.any.is_empty() {
        dialects.push("any");
    }
    if f.not.is_some() {
        dialects.push("not");
    }
    if f.cesql.is_some() {
        dialects.push("cesql");
    }
    if dialects.len() > 1 {
        errs.add(
            path,
            format!(
                "multiple dialects found ({}), filters can have only one dialect set",
                dialects.join(", ")
            ),
        );
    }
    for (dialect, map) in [
        ("exact", &f.exact),
        ("prefix", &f.prefix),
        ("suffix", &f.suffix),
    ] {
        for (key, value) in map {
            if !attribute_name(key) {
                errs.add(
                    format!("{path}.{dialect}.{key}"),
                    "invalid attribute name: must be lower-case letters and digits, starting with a letter",
                );
            }
            if value.is_empty() {
                errs.add(
                    format!("{path}.{dialect}.{key}"),
                    "the value must not be empty",
                );
            }
        }
    }
    filters(&f.all, &format!("{path}.all"), hooks, errs);
    filters(&f.any, &format!("{path}.any"), hooks, errs);
    if let Some(n) = &f.not {
        filter(n, &format!("{path}.not"), hooks, errs);
    }
    if let Some(expr) = &f.cesql {
        if expr.trim().is_empty() {
            errs.add(format!("{path}.cesql"), "the expression must not be empty");
        } else if let Some(check) = hooks.cesql
            && let Err(e) = check(expr)
        {
            errs.add(format!("{path}.cesql"), format!("parse error: {e}"));
        }
    }
}

pub(crate) fn event_type(e: &EventType, errs: &mut Errors) {
    if let Some(r) = &e.spec.reference {
        kreference(r, "spec.reference", errs);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, a) in e.spec.attributes.iter().enumerate() {
        if !attribute_name(&a.name) {
            errs.add(
                format!("spec.attributes[{i}].name"),
                "invalid attribute name",
            );
        }
        if !seen.insert(&a.name) {
            errs.add(
                format!("spec.attributes[{i}].name"),
                format!("duplicate attribute {:?}", a.name),
            );
        }
    }
}

/// KafkaSink (eventing-kafka-broker `kafka_sink_validation.go`).
pub(crate) fn kafka_sink(k: &KafkaSink, errs: &mut Errors) {
    let s = &k.spec;
    kafka_topic(&s.topic, "spec.topic", errs);
    bootstrap_servers(&s.bootstrap_servers, "spec.bootstrapServers", errs);
    if let Some(n) = s.num_partitions
        && n <= 0
    {
        errs.add(
            "spec.numPartitions",
            format!("invalid value {n}: must be more than 0"),
        );
    }
    // Knative's field is an int16, as is Kafka's replication factor.
    if let Some(n) = s.replication_factor
        && !(1..=i32::from(i16::MAX)).contains(&n)
    {
        errs.add(
            "spec.replicationFactor",
            format!("invalid value {n}: must be from 1 to {}", i16::MAX),
        );
    }
    if let Some(r) = s
        .auth
        .as_ref()
        .and_then(|a| a.secret.as_ref())
        .and_then(|s| s.reference.as_ref())
        && r.name.is_empty()
    {
        errs.missing("spec.auth.secret.ref.name");
    }
}

/// EventPolicy (Knative's `eventpolicy_validation.go`): each `to` names exactly one of a ref
/// and a selector, each `from` exactly one of a ref and a non-empty `sub` whose only `*` is
/// its last character; refs need apiVersion, kind and name; filters as a Trigger's.
pub(crate) fn event_policy(p: &EventPolicy, hooks: &Hooks, errs: &mut Errors) {
    let s = &p.spec;
    for (i, to) in s.to.iter().enumerate() {
        let path = format!("spec.to[{i}]");
        match (&to.reference, &to.selector) {
            (Some(r), None) => policy_ref(r, &format!("{path}.ref"), errs),
            (None, Some(sel)) => {
                if sel.api_version.is_empty() {
                    errs.missing(format!("{path}.selector.apiVersion"));
                }
                if sel.kind.is_empty() {
                    errs.missing(format!("{path}.selector.kind"));
                }
                for (j, e) in sel.match_expressions.iter().enumerate() {
                    if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&e.operator.as_str()) {
                        errs.add(
                            format!("{path}.selector.matchExpressions[{j}].operator"),
                            format!("{:?} is not a valid selector operator", e.operator),
                        );
                    }
                }
            }
            (Some(_), Some(_)) => errs.add(path, "expected exactly one, got both: ref, selector"),
            (None, None) => errs.add(path, "expected exactly one, got neither: ref, selector"),
        }
    }
    for (i, from) in s.from.iter().enumerate() {
        let path = format!("spec.from[{i}]");
        match (
            &from.reference,
            from.sub.as_deref().filter(|s| !s.is_empty()),
        ) {
            (Some(r), None) => policy_ref(r, &format!("{path}.ref"), errs),
            (None, Some(sub)) => {
                if sub.find('*').is_some_and(|at| at + 1 != sub.len()) {
                    errs.add(
                        format!("{path}.sub"),
                        "invalid value: '*' is only allowed as suffix",
                    );
                }
            }
            (Some(_), Some(_)) => errs.add(path, "expected exactly one, got both: ref, sub"),
            (None, None) => errs.add(path, "expected exactly one, got neither: ref, sub"),
        }
    }
    filters(&s.filters, "spec.filters", hooks, errs);
}

fn policy_ref(r: &EventPolicyReference, path: &str, errs: &mut Errors) {
    if r.api_version.is_empty() {
        errs.missing(format!("{path}.apiVersion"));
    }
    if r.kind.is_empty() {
        errs.missing(format!("{path}.kind"));
    }
    if r.name.is_empty() {
        errs.missing(format!("{path}.name"));
    }
}
