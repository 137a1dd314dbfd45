//! The ConfigMaps Knit reads, recognised by namespace and name, validated as Knative's
//! configmap webhooks validate them: a bad value is refused at admission (and a bad edit of
//! a running `knit run` keeps the last good ConfigMap), so no value Knit reads can stop it.
//! Keys Knit does not read are accepted, as Knative accepts them.
//!
//! Knit is stricter than Knative where a value it reads would otherwise be ignored or
//! misread: the numbers of `config-autoscaler` must be finite, the `config-features` flags
//! Knit reads must be one of their documented values (Knative logs a warning and falls back),
//! and `bootstrap.servers` must name at least one server.

use std::collections::BTreeMap;

use super::common::Errors;
use super::messaging::channel_template;
use crate::api::ConfigMap;
use crate::configmap::autoscaler::AutoscalerConfig;
use crate::configmap::{
    ChannelDefaults, DEFAULT_CH_CONFIG_KEY, DEFAULT_CH_WEBHOOK, KeyError, shown,
};
use crate::contract::TransportEncryption;
use crate::names;

/// Namespace of Knative Serving's ConfigMaps.
const SERVING_NAMESPACE: &str = "knative-serving";
/// The ConfigMap of KafkaChannels' bootstrap servers.
const KAFKA_CHANNEL_CONFIG: &str = "kafka-channel-config";

/// Every problem of `cm` when it is one of the ConfigMaps Knit reads.
pub(crate) fn validate(cm: &ConfigMap, errs: &mut Errors) {
    let ns = cm.metadata.namespace.as_deref().unwrap_or("default");
    let name = cm.metadata.name.as_deref().unwrap_or_default();
    let empty = BTreeMap::new();
    let data = cm.data.as_ref().unwrap_or(&empty);
    let mut keys = Vec::new();
    match (ns, name) {
        (SERVING_NAMESPACE, "config-autoscaler") => {
            if let Err(e) = AutoscalerConfig::from_map(data) {
                keys.extend(e);
            }
        }
        (SERVING_NAMESPACE, "config-domain") => domains(data, &mut keys),
        (SERVING_NAMESPACE, "config-features") => serving_features(data, &mut keys),
        (names::SYSTEM_NAMESPACE, "config-features") => eventing_features(data, &mut keys),
        (names::SYSTEM_NAMESPACE, names::KAFKA_BROKER_CONFIG) => {
            bootstrap_servers(data, &mut keys);
            for key in [
                names::KAFKA_DEFAULT_TOPIC_PARTITIONS_KEY,
                names::KAFKA_DEFAULT_TOPIC_REPLICATION_FACTOR_KEY,
            ] {
                positive_int(data, key, &mut keys);
            }
        }
        (names::SYSTEM_NAMESPACE, KAFKA_CHANNEL_CONFIG) => bootstrap_servers(data, &mut keys),
        (names::SYSTEM_NAMESPACE, DEFAULT_CH_WEBHOOK) => channel_defaults(data, errs),
        _ => {}
    }
    for k in keys {
        errs.add(format!("data.{}", k.key), k.message);
    }
}

/// `config-domain`: every key but `_example` is a domain; its value is empty (the default
/// domain) or a YAML mapping (`selector:` labels, which Knit does not apply).
fn domains(data: &BTreeMap<String, String>, keys: &mut Vec<KeyError>) {
    for (domain, value) in data {
        if domain == "_example" {
            continue;
        }
        if let Some(problem) = domain_problem(domain) {
            let key = domain.chars().take(64).collect::<String>();
            keys.push(KeyError::new(
                key,
                format!("{} is not a domain name: {problem}", shown(domain)),
            ));
            continue;
        }
        if value.trim().is_empty() {
            continue;
        }
        let mapping = serde_saphyr::from_str::<serde_json::Value>(value)
            .map_err(|e| e.to_string())
            .and_then(|v| match v {
                serde_json::Value::Object(m) => Ok(m),
                serde_json::Value::Null => Ok(serde_json::Map::new()),
                _ => Err("not a YAML mapping".to_string()),
            });
        match mapping {
            Err(e) => keys.push(KeyError::new(
                domain,
                format!("the value must be empty or a YAML mapping with `selector`: {e}"),
            )),
            Ok(m) => {
                let labels_ok = m.get("selector").is_none_or(|s| {
                    s.as_object()
                        .is_some_and(|l| l.values().all(serde_json::Value::is_string))
                });
                if !labels_ok {
                    keys.push(KeyError::new(
                        domain,
                        "selector must be a mapping of label names to string values",
                    ));
                }
            }
        }
    }
}

/// Why `domain` (compared ignoring case, as Knit lowercases it) is not a DNS name.
fn domain_problem(domain: &str) -> Option<&'static str> {
    let d = domain.trim();
    if d.is_empty() {
        return Some("empty");
    }
    if d.len() > 253 {
        return Some("longer than 253 characters");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.split('.').all(label_ok) {
        None
    } else {
        Some(
            "each dot-separated label must be 1 to 63 letters, digits or '-', not starting or ending with '-'",
        )
    }
}

/// A Knative feature flag's value: `enabled`, `disabled` or `allowed`, ignoring case.
fn is_flag(value: &str) -> bool {
    ["enabled", "disabled", "allowed"]
        .iter()
        .any(|f| value.trim().eq_ignore_ascii_case(f))
}

fn flag(data: &BTreeMap<String, String>, key: &str, keys: &mut Vec<KeyError>) {
    if let Some(v) = data.get(key)
        && !is_flag(v)
    {
        keys.push(KeyError::new(
            key,
            format!(
                "cannot parse the feature flag {}: must be enabled, disabled or allowed",
                shown(v)
            ),
        ));
    }
}

/// Serving's `config-features`: the flag Knit reads.
fn serving_features(data: &BTreeMap<String, String>, keys: &mut Vec<KeyError>) {
    flag(data, "tag-header-based-routing", keys);
}

/// Eventing's `config-features` (reference security.md §1): the documented flags.
fn eventing_features(data: &BTreeMap<String, String>, keys: &mut Vec<KeyError>) {
    for key in ["authentication-oidc", "cross-namespace-event-links"] {
        flag(data, key, keys);
    }
    if let Some(v) = data.get("transport-encryption")
        && TransportEncryption::parse(v).is_none()
    {
        keys.push(KeyError::new(
            "transport-encryption",
            format!(
                "cannot parse the feature flag {}: must be disabled, permissive or strict",
                shown(v)
            ),
        ));
    }
    const MODES: [&str; 3] = ["allow-all", "deny-all", "allow-same-namespace"];
    if let Some(v) = data.get("default-authorization-mode")
        && !MODES.iter().any(|m| v.trim().eq_ignore_ascii_case(m))
    {
        keys.push(KeyError::new(
            "default-authorization-mode",
            format!(
                "cannot parse {}: must be allow-all, deny-all or allow-same-namespace",
                shown(v)
            ),
        ));
    }
}

/// `bootstrap.servers`: a comma-separated list of at least one `host[:port]`, none empty.
fn bootstrap_servers(data: &BTreeMap<String, String>, keys: &mut Vec<KeyError>) {
    let key = names::KAFKA_BOOTSTRAP_SERVERS_KEY;
    if let Some(v) = data.get(key)
        && !v.split(',').all(|s| is_server(s.trim()))
    {
        keys.push(KeyError::new(
            key,
            format!(
                "{} must be a comma-separated list of host:port, none empty",
                shown(v)
            ),
        ));
    }
}

/// `host`, `host:port` or `[v6]:port`: a host of at most 253 letters, digits, `.`, `-` and
/// `_`, a port from 1 to 65535.
fn is_server(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        }
    };
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// A positive 32-bit integer (partitions, replication factor).
fn positive_int(data: &BTreeMap<String, String>, key: &str, keys: &mut Vec<KeyError>) {
    if let Some(v) = data.get(key)
        && !v.trim().parse::<i32>().is_ok_and(|n| n > 0)
    {
        keys.push(KeyError::new(
            key,
            format!(
                "{} must be a positive integer (at most {})",
                shown(v),
                i32::MAX
            ),
        ));
    }
}

/// `default-ch-webhook`'s `default-ch-config`: YAML naming channel templates Knit runs.
fn channel_defaults(data: &BTreeMap<String, String>, errs: &mut Errors) {
    let Some(text) = data.get(DEFAULT_CH_CONFIG_KEY) else {
        return;
    };
    let path = format!("data.{DEFAULT_CH_CONFIG_KEY}");
    match ChannelDefaults::parse(text) {
        Err(e) => errs.add(path, format!("failed to parse the channel defaults: {e}")),
        Ok(d) => {
            if let Some(t) = &d.cluster_default {
                channel_template(Some(t), &format!("{path}.clusterDefault"), errs);
            }
            for (ns, t) in &d.namespace_defaults {
                channel_template(Some(t), &format!("{path}.namespaceDefaults.{ns}"), errs);
            }
        }
    }
}

#[cfg(test)]
mod tests;
