//! Rules shared by many kinds: references, destinations, delivery.

use std::collections::BTreeMap;

use crate::admission::FieldError;
use crate::api::duck::{DeliverySpec, Destination, KReference};
use crate::{duration, names};

/// Collects errors under a path prefix.
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }
    pub(crate) fn missing(&mut self, path: impl Into<String>) {
        self.add(path, "Required value");
    }
}

/// `ref` of a Destination or any KReference: kind, name and apiVersion are required.
pub(crate) fn kreference(r: &KReference, path: &str, errs: &mut Errors) {
    if r.kind.as_deref().is_none_or(str::is_empty) {
        errs.missing(format!("{path}.kind"));
    }
    if r.name.as_deref().is_none_or(str::is_empty) {
        errs.missing(format!("{path}.name"));
    }
    if r.api_version.as_deref().is_none_or(str::is_empty) {
        errs.missing(format!("{path}.apiVersion"));
    }
}

/// A Destination: a ref, an absolute URI, or a ref plus a relative URI.
pub(crate) fn destination(d: &Destination, path: &str, errs: &mut Errors) {
    match (&d.reference, &d.uri) {
        (None, None) => errs.add(path, "expected at least one, got neither: ref, uri"),
        (Some(r), uri) => {
            kreference(r, &format!("{path}.ref"), errs);
            if let Some(u) = uri
                && url::Url::parse(u).is_ok()
            {
                errs.add(
                        format!("{path}.uri"),
                        "an absolute URI is not allowed when ref is set (it is resolved relative to ref's address)",
                    );
            }
        }
        (None, Some(u)) => match url::Url::parse(u) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(url) => errs.add(
                format!("{path}.uri"),
                format!(
                    "unsupported URI {u:?}: scheme {:?} (use http or https)",
                    url.scheme()
                ),
            ),
            Err(_) => errs.add(
                format!("{path}.uri"),
                format!("{u:?} is not an absolute URI (a relative URI needs ref)"),
            ),
        },
    }
}

/// An optional Destination that must be set.
pub(crate) fn required_destination(d: Option<&Destination>, path: &str, errs: &mut Errors) {
    match d {
        Some(d) => destination(d, path, errs),
        None => errs.missing(path),
    }
}

/// A DeliverySpec.
pub(crate) fn delivery(d: &DeliverySpec, path: &str, errs: &mut Errors) {
    if let Some(dls) = &d.dead_letter_sink {
        destination(dls, &format!("{path}.deadLetterSink"), errs);
    }
    if let Some(r) = d.retry
        && r < 0
    {
        errs.add(
            format!("{path}.retry"),
            format!("invalid value {r}: must be 0 or more"),
        );
    }
    for (field, value, positive) in [
        ("backoffDelay", &d.backoff_delay, false),
        ("backoffMax", &d.backoff_max, false),
        ("timeout", &d.timeout, true),
        ("retryAfterMax", &d.retry_after_max, false),
    ] {
        if let Some(v) = value {
            match duration::parse_iso8601(v) {
                Ok(dur) if positive && dur.is_zero() => errs.add(
                    format!("{path}.{field}"),
                    format!("invalid value {v:?}: must be more than 0"),
                ),
                Ok(_) => {}
                Err(e) => errs.add(format!("{path}.{field}"), format!("invalid value: {e}")),
            }
        }
    }
}

/// CloudEvent attribute names: lower-case letters and digits, starting with a letter.
pub(crate) fn attribute_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Why `name` cannot be a Kafka topic name, if it cannot (Kafka's own rule: 1 to 249 of
/// `[a-zA-Z0-9._-]`, and neither `.` nor `..`).
pub(crate) fn kafka_topic_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name == "." || name == ".." {
        Some("must not be \".\" or \"..\"")
    } else if name.len() > 249 {
        Some("must be at most 249 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("a Kafka topic name may contain only ASCII letters, digits, '.', '_' and '-'")
    } else {
        None
    }
}

/// A Kafka topic name at `path`.
pub(crate) fn kafka_topic(name: &str, path: &str, errs: &mut Errors) {
    if name.is_empty() {
        errs.missing(path);
    } else if let Some(p) = kafka_topic_problem(name) {
        errs.add(path, format!("invalid value {name:?}: {p}"));
    }
}

/// A list of Kafka bootstrap servers: at least one, none empty. (An entry may itself be a
/// comma-separated list, as Knative allows.)
pub(crate) fn bootstrap_servers(servers: &[String], path: &str, errs: &mut Errors) {
    if servers.is_empty() {
        errs.missing(path);
    }
    for (i, s) in servers.iter().enumerate() {
        if s.trim().is_empty() {
            errs.missing(format!("{path}[{i}]"));
        }
    }
}

/// The `knit.dev/overflow` annotation of a Trigger or Subscription.
pub(crate) fn overflow_annotation(annotations: &BTreeMap<String, String>, errs: &mut Errors) {
    if let Some(v) = annotations.get(names::OVERFLOW_ANNOTATION)
        && !names::OVERFLOW_POLICIES.contains(&v.as_str())
    {
        errs.add(
            format!("metadata.annotations.{}", names::OVERFLOW_ANNOTATION),
            format!(
                "invalid value {v:?}: must be one of {}",
                names::OVERFLOW_POLICIES.join(", ")
            ),
        );
    }
}
