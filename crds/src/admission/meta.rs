//! Checks of `metadata`, as the Kubernetes API server does them: names, namespaces, labels,
//! annotations, and no unknown fields.

use serde_json::Value;

use super::FieldError;
use crate::object::Kind;

const KNOWN_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
];

/// Check the metadata of a document of `kind`.
pub(crate) fn check(kind: Kind, doc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(meta) = doc.get("metadata") else {
        errs.push(FieldError::new("metadata.name", "Required value"));
        return errs;
    };
    let Some(meta) = meta.as_object() else {
        errs.push(FieldError::new("metadata", "must be a mapping"));
        return errs;
    };
    for key in meta.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            errs.push(FieldError::new(format!("metadata.{key}"), "unknown field"));
        }
    }
    match meta.get("name") {
        None | Some(Value::Null) => {
            let msg = if meta.contains_key("generateName") {
                "Required value (generateName is not supported; give the object a name)"
            } else {
                "Required value"
            };
            errs.push(FieldError::new("metadata.name", msg));
        }
        Some(Value::String(name)) => {
            let problem = if serving_kind(kind) {
                dns1123_label(name)
            } else {
                dns1123_subdomain(name)
            };
            if let Some(p) = problem {
                errs.push(FieldError::new("metadata.name", invalid_name(name, p)));
            }
        }
        Some(_) => errs.push(FieldError::new("metadata.name", "must be a string")),
    }
    match meta.get("namespace") {
        None | Some(Value::Null) => {}
        Some(Value::String(ns)) => {
            if let Some(p) = dns1123_label(ns) {
                errs.push(FieldError::new("metadata.namespace", invalid_name(ns, p)));
            }
        }
        Some(_) => errs.push(FieldError::new("metadata.namespace", "must be a string")),
    }
    for field in ["labels", "annotations"] {
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    if !v.is_string() {
                        errs.push(FieldError::new(
                            format!("metadata.{field}.{k}"),
                            format!("must be a string (quote it: \"{}\")", compact(v)),
                        ));
                    } else if field == "labels"
                        && let Some(p) = label_value(v.as_str().unwrap_or_default())
                    {
                        errs.push(FieldError::new(format!("metadata.labels.{k}"), p));
                    }
                    if let Some(p) = qualified_name(k) {
                        errs.push(FieldError::new(
                            format!("metadata.{field}"),
                            format!("invalid key {k:?}: {p}"),
                        ));
                    }
                }
            }
            Some(_) => errs.push(FieldError::new(
                format!("metadata.{field}"),
                "must be a mapping of strings",
            )),
        }
    }
    errs
}

fn compact(v: &Value) -> String {
    v.to_string()
}

fn serving_kind(kind: Kind) -> bool {
    // Serving names become host name labels (`name.namespace.domain`).
    matches!(kind, Kind::Service | Kind::Configuration | Kind::Route)
}

fn invalid_name(name: &str, problem: &str) -> String {
    let hint = if name.contains(['<', '>', '{', '}']) {
        " (it looks like a placeholder to fill in)"
    } else {
        ""
    };
    format!("invalid value {name:?}: {problem}{hint}")
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A DNS-1123 label: at most 63 lower-case alphanumerics or `-`, alphanumeric at both ends.
pub(crate) fn dns1123_label(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return Some("must be 1 to 63 characters");
    }
    let ok =
        b.iter().all(|&c| is_alnum(c) || c == b'-') && is_alnum(b[0]) && is_alnum(b[b.len() - 1]);
    (!ok).then_some(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
    )
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn dns1123_subdomain(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > 253 {
        return Some("must be 1 to 253 characters");
    }
    let ok = s.split('.').all(|l| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter().all(|&c| is_alnum(c) || c == b'-')
            && is_alnum(b[0])
            && is_alnum(b[b.len() - 1])
    });
    (!ok).then_some(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    )
}

/// A DNS-1035 label: like a DNS-1123 label but starting with a letter.
pub(crate) fn dns1035_label(s: &str) -> Option<&'static str> {
    if let Some(p) = dns1123_label(s) {
        return Some(p);
    }
    (!s.as_bytes()[0].is_ascii_lowercase())
        .then_some("a DNS-1035 label must start with a lower case letter")
}

fn name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A qualified name: `[prefix/]name`, as used for label and annotation keys.
fn qualified_name(s: &str) -> Option<&'static str> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && dns1123_subdomain(p).is_some()
    {
        return Some("the prefix must be a DNS subdomain");
    }
    (!name_part(name)).then_some(
        "the name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character",
    )
}

fn label_value(s: &str) -> Option<&'static str> {
    (!s.is_empty() && !name_part(s)).then_some(
        "a label value must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(dns1123_subdomain("my-broker.v1").is_none());
        assert!(dns1123_subdomain("<broker-name>").is_some());
        assert!(dns1123_label("a.b").is_some());
        assert!(dns1035_label("1abc").is_some());
        assert!(dns1035_label("abc-1").is_none());
    }

    #[test]
    fn placeholder_names_are_explained() {
        let errs = check(
            Kind::Broker,
            &json!({"metadata": {"name": "<broker-name>"}}),
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("placeholder"), "{errs:?}");
    }

    #[test]
    fn annotations_must_be_strings() {
        let errs = check(
            Kind::Service,
            &json!({"metadata": {"name": "a", "annotations": {"x/y": 1}}}),
        );
        assert_eq!(errs[0].path, "metadata.annotations.x/y");
    }
}
