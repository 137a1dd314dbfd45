//! Structural checks against each kind's CRD schema, as the Kubernetes API server does them:
//! JSON Schema validation (with `jsonschema`) plus strict field validation (unknown fields are
//! errors, as with `kubectl apply --validate=strict`).

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value};

use super::FieldError;
use crate::crd;
use crate::object::Kind;

struct KindSchema {
    raw: Value,
    validator: Option<Validator>,
}

/// Compiled per kind on first use (compiling all of them costs far more than one check).
static SCHEMAS: LazyLock<HashMap<Kind, OnceLock<Option<KindSchema>>>> =
    LazyLock::new(|| Kind::ALL.iter().map(|k| (*k, OnceLock::new())).collect());

fn compile(kind: Kind) -> Option<KindSchema> {
    let raw = crd::schema(kind)?;
    let mut js = raw.clone();
    to_json_schema(&mut js);
    let validator = jsonschema::options()
        .with_draft(Draft::Draft7)
        .should_validate_formats(false)
        .build(&js)
        .map_err(|e| tracing::error!(kind = %kind, error = %e, "CRD schema does not compile"))
        .ok();
    Some(KindSchema { raw, validator })
}

fn schema_of(kind: Kind) -> Option<&'static KindSchema> {
    SCHEMAS.get(&kind)?.get_or_init(|| compile(kind)).as_ref()
}

/// OpenAPI v3 marks optional values with `nullable`; JSON Schema wants `null` in `type`.
fn to_json_schema(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type").cloned()
            {
                map.insert("type".into(), serde_json::json!([t, "null"]));
            }
            for (_, v) in map.iter_mut() {
                to_json_schema(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        _ => {}
    }
}

/// Check `doc` (the whole object, metadata excluded from schema checks) against `kind`'s schema.
pub(crate) fn check(kind: Kind, doc: &Value) -> Vec<FieldError> {
    let Some(schema) = schema_of(kind) else {
        return Vec::new();
    };
    let mut body = doc.clone();
    if let Some(map) = body.as_object_mut() {
        // Metadata is checked on its own; status is computed and dropped.
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    let mut errors = Vec::new();
    if let Some(validator) = &schema.validator {
        for e in validator.iter_errors(&body) {
            let path = pointer_to_path(e.instance_path().iter().map(|s| s.to_string()));
            let (path, message) = match e.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    let field = property.as_str().unwrap_or_default();
                    (join(&path, field), "Required value".to_string())
                }
                _ => (path, describe(&e.to_string())),
            };
            errors.push(FieldError::new(path, message));
        }
    }
    let mut path = Vec::new();
    unknown_fields(&schema.raw, &body, &mut path, &mut errors);
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    errors.dedup();
    errors
}

fn describe(msg: &str) -> String {
    // jsonschema quotes the whole offending value; keep messages short for large values.
    if msg.len() > 200 {
        format!(
            "{}…",
            &msg[..msg
                .char_indices()
                .nth(200)
                .map(|(i, _)| i)
                .unwrap_or(msg.len())]
        )
    } else {
        msg.to_string()
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// `["spec", "filters", "0", "exact"]` → `spec.filters[0].exact`.
pub(crate) fn pointer_to_path(segments: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for seg in segments {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

fn unknown_fields(
    schema: &Value,
    value: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<FieldError>,
) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(map) => object_fields(schema, map, path, out),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    unknown_fields(item_schema, item, path, out);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

fn object_fields(
    schema: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &mut Vec<String>,
    out: &mut Vec<FieldError>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, v) in map {
        path.push(key.clone());
        match (props.and_then(|p| p.get(key)), additional) {
            (Some(s), _) => unknown_fields(s, v, path, out),
            (None, Some(Value::Object(_))) => {
                if let Some(ap) = additional {
                    unknown_fields(ap, v, path, out);
                }
            }
            (None, Some(Value::Bool(true))) => {}
            (None, _) if props.is_some() => {
                out.push(FieldError::new(
                    pointer_to_path(path.iter().cloned()),
                    "unknown field",
                ));
            }
            (None, _) => {}
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let doc = json!({"spec": {"broker": "b", "filter": {"attributes": {"type": "x"}, "subscriber": {}}}});
        let errs = check(Kind::Trigger, &doc);
        assert!(
            errs.iter()
                .any(|e| e.path == "spec.filter.subscriber" && e.message == "unknown field"),
            "{errs:?}"
        );
    }

    #[test]
    fn wrong_types_are_reported() {
        let doc = json!({"spec": {"broker": "b", "filters": {"exact": {"type": "a"}}}});
        let errs = check(Kind::Trigger, &doc);
        assert!(errs.iter().any(|e| e.path == "spec.filters"), "{errs:?}");
    }

    #[test]
    fn nullable_fields_accept_null() {
        let doc = json!({"spec": {"broker": "b", "delivery": null}});
        assert!(check(Kind::Trigger, &doc).is_empty());
    }

    #[test]
    fn pod_spec_fields_are_known() {
        let doc = json!({"spec": {"template": {"spec": {"containers": [{"image": "x", "readinessProbe": {"httpGet": {"path": "/"}, "initialDelaySeconds": 3}}]}}}});
        assert!(
            check(Kind::Service, &doc).is_empty(),
            "{:?}",
            check(Kind::Service, &doc)
        );
    }
}
