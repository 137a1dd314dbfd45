//! The CloudEvents SQL TCK (`../shared/conformance/cesql-tck`): every case, its result and
//! its error kind.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;

use super::{ErrorKind, Expression, Value};

/// An event given as a map of attribute to JSON value (strings, integers, booleans).
struct MapEvent(BTreeMap<String, Json>);

impl super::Attributes for MapEvent {
    fn attribute(&self, name: &str) -> Option<Value> {
        match self.0.get(name)? {
            Json::String(s) => Some(Value::Str(s.clone())),
            Json::Bool(b) => Some(Value::Bool(*b)),
            Json::Number(n) => n
                .as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .map(Value::Int),
            _ => None,
        }
    }
}

fn tck_dir() -> PathBuf {
    std::env::var_os("KNIT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("conformance/cesql-tck")
}

fn kind(name: &str) -> ErrorKind {
    match name {
        "parse" => ErrorKind::Parse,
        "math" => ErrorKind::Math,
        "cast" => ErrorKind::Cast,
        "missingFunction" => ErrorKind::MissingFunction,
        "functionEvaluation" => ErrorKind::FunctionEvaluation,
        "missingAttribute" => ErrorKind::MissingAttribute,
        _ => ErrorKind::Generic,
    }
}

fn expected_value(v: &Json) -> Option<Value> {
    match v {
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::Number(n) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Int),
        Json::String(s) => Some(Value::Str(s.clone())),
        _ => None,
    }
}

#[test]
fn tck() {
    let dir = tck_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the TCK at {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 18, "the TCK has 18 files");
    let (mut total, mut failures) = (0, Vec::new());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let suite: Json = serde_saphyr::from_str(&text).expect("yaml");
        for case in suite["tests"].as_array().expect("tests") {
            total += 1;
            let name = format!(
                "{}: {}",
                file.file_name().unwrap_or_default().to_string_lossy(),
                case["name"]
            );
            let expr = match &case["expression"] {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let want_err = case.get("error").and_then(Json::as_str).map(kind);
            let parsed = Expression::parse(&expr);
            let (value, err) = match parsed {
                Err(e) => {
                    let k = if e.message.starts_with("missing function") {
                        ErrorKind::MissingFunction
                    } else {
                        ErrorKind::Parse
                    };
                    if want_err != Some(k) {
                        failures.push(format!("{name}: {expr:?} failed to parse: {e}"));
                    }
                    continue;
                }
                Ok(x) => {
                    let mut attrs: BTreeMap<String, Json> = match case.get("event") {
                        Some(Json::Object(m)) => m.clone().into_iter().collect(),
                        _ => [
                            ("specversion", "1.0"),
                            ("id", "myId"),
                            ("source", "localhost.localdomain"),
                            ("type", "myType"),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), Json::String(v.into())))
                        .collect(),
                    };
                    if let Some(Json::Object(o)) = case.get("eventOverrides") {
                        attrs.extend(o.clone());
                    }
                    x.evaluate(&MapEvent(attrs))
                }
            };
            let got_kind = err.as_ref().map(|e| e.kind);
            if got_kind != want_err {
                failures.push(format!(
                    "{name}: {expr:?}: error {got_kind:?}, want {want_err:?} ({err:?})"
                ));
                continue;
            }
            if let Some(want) = case.get("result").and_then(expected_value)
                && want != value
            {
                failures.push(format!("{name}: {expr:?}: got {value:?}, want {want:?}"));
            }
        }
    }
    assert_eq!(total, 275, "the TCK has 275 cases");
    assert!(
        failures.is_empty(),
        "{} of {total} TCK cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn parse_errors_name_the_position() {
    let e = Expression::parse("type = 'a' AND (source").unwrap_err();
    assert!(e.to_string().contains("position 23"), "{e}");
    let e = Expression::parse("x LIKE 123").unwrap_err();
    assert!(e.to_string().contains("position 8"), "{e}");
}

#[test]
fn no_panics_on_garbage() {
    for src in [
        "",
        "(",
        ")",
        "((((",
        "'",
        "\"",
        "NOT",
        "-",
        "a IN",
        "a IN (",
        "LIKE",
        "EXISTS",
        "1 +",
        "ABS(",
        "é",
        "9999999999999",
    ] {
        let _ = Expression::parse(src);
    }
    let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
    assert!(Expression::parse(&deep).is_err());
}
