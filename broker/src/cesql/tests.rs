//! The CloudEvents SQL TCK (`../shared/conformance/cesql-tck`): every case, its result and
//! its error kind.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;

use super::{Error, ErrorKind, Expression, Value};

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
                    let k = match e {
                        Error::MissingFunction { .. } => ErrorKind::MissingFunction,
                        Error::Syntax(_) => ErrorKind::Parse,
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
                    let event = MapEvent(attrs);
                    failures
                        .extend(explained_and_rendered(&x, &event).map(|e| format!("{name}: {e}")));
                    x.evaluate(&event)
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

/// The explanation has the evaluation's value and error, and the expression rendered back as
/// text parses to the same rendering and value.
fn explained_and_rendered(x: &Expression, event: &MapEvent) -> Option<String> {
    let evaluated = x.evaluate(event);
    let why = x.explain(event);
    if (why.value.clone(), why.error.clone()) != evaluated {
        return Some(format!("explained as {why:?}, evaluated as {evaluated:?}"));
    }
    let text = x.root.to_string();
    let again = match Expression::parse(&text) {
        Ok(again) => again,
        Err(e) => return Some(format!("rendered as {text:?}, which does not parse: {e}")),
    };
    if again.root.to_string() != text || again.evaluate(event) != evaluated {
        return Some(format!(
            "rendered as {text:?}, which parses as {:?} and evaluates to {:?}",
            again.root.to_string(),
            again.evaluate(event)
        ));
    }
    None
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

/// An event with typed extensions for the edge cases below.
fn edge_event() -> knit_channels::Event {
    use knit_channels::ExtValue;
    let mut e = knit_channels::Event::new("1", "/s", "t");
    e.set_extension("min", ExtValue::Integer(i64::from(i32::MIN)));
    e.set_extension("max", ExtValue::Integer(i64::from(i32::MAX)));
    e.set_extension("huge", ExtValue::Integer(i64::MAX));
    e.set_extension("text", ExtValue::String("héllo".into()));
    e
}

fn eval(src: &str) -> (Value, Option<ErrorKind>) {
    let x = Expression::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    let (v, err) = x.evaluate(&edge_event());
    (v, err.map(|e| e.kind))
}

/// CESQL integers are 32-bit: an overflowing operator yields 0 and a math error, as division
/// by zero does (TCK binary_math_operators); ABS and negation of the minimum saturate to the
/// maximum with a math error (TCK integer_builtin_functions, "ABS overflow").
#[test]
fn integer_overflow_is_a_math_error() {
    let math =
        |src: &str, v: i32| assert_eq!(eval(src), (Value::Int(v), Some(ErrorKind::Math)), "{src}");
    let ok = |src: &str, v: i32| assert_eq!(eval(src), (Value::Int(v), None), "{src}");
    ok("-2147483648", i32::MIN);
    ok("2147483647", i32::MAX);
    math("2147483647 + 1", 0);
    math("max + 1", 0);
    math("-2147483648 - 1", 0);
    math("min - 1", 0);
    math("65536 * 65536", 0);
    math("min * -1", 0);
    math("-2147483648 / -1", 0);
    ok("-2147483648 % -1", 0);
    ok("min % -1", 0);
    ok("min / 1", i32::MIN);
    math("1 / 0", 0);
    math("min % 0", 0);
    math("ABS(-2147483648)", i32::MAX);
    math("ABS(min)", i32::MAX);
    math("-(-2147483648)", i32::MAX);
    math("-min", i32::MAX);
    ok("-max", -i32::MAX);
    // An extension beyond 32 bits reads as its decimal text; casting it fails.
    assert_eq!(eval("INT(huge)"), (Value::Int(0), Some(ErrorKind::Cast)));
    assert_eq!(eval("huge + 1"), (Value::Int(1), Some(ErrorKind::Cast)));
    assert_eq!(
        eval("INT('2147483648')"),
        (Value::Int(0), Some(ErrorKind::Cast))
    );
    ok("INT('-2147483648')", i32::MIN);
}

#[test]
fn integer_literals_beyond_32_bits_do_not_parse() {
    for src in [
        "2147483648",
        "-2147483649",
        "99999999999999999999999",
        "1 - 2147483648",
    ] {
        let e = Expression::parse(src).expect_err(src);
        assert!(e.to_string().contains("out of"), "{src}: {e}");
    }
}

#[test]
fn string_functions_with_extreme_indexes() {
    let s = |v: &str| Value::Str(v.to_string());
    let fe = Some(ErrorKind::FunctionEvaluation);
    assert_eq!(eval("SUBSTRING(text, 2147483647)"), (s(""), fe));
    assert_eq!(eval("SUBSTRING(text, -2147483648)"), (s(""), fe));
    assert_eq!(eval("SUBSTRING(text, 1, 2147483647)"), (s("héllo"), None));
    assert_eq!(eval("SUBSTRING(text, -1, 2147483647)"), (s("o"), None));
    assert_eq!(eval("SUBSTRING(text, -5, 2)"), (s("hé"), None));
    assert_eq!(eval("SUBSTRING(text, 2, -2147483648)"), (s(""), fe));
    assert_eq!(eval("SUBSTRING(text, max, max)"), (s(""), fe));
    assert_eq!(eval("SUBSTRING(text, min, min)"), (s(""), fe));
    assert_eq!(eval("LEFT(text, 2147483647)"), (s("héllo"), None));
    assert_eq!(eval("RIGHT(text, 2147483647)"), (s("héllo"), None));
    assert_eq!(eval("RIGHT(text, 2)"), (s("lo"), None));
    assert_eq!(eval("LEFT(text, -2147483648)"), (s("héllo"), fe));
    assert_eq!(eval("LENGTH(text)"), (Value::Int(5), None));
}

/// Long operator chains are parsed in a loop and evaluated without recursion, but build one
/// tree level per operator (checking, cloning and dropping recurse per level); nesting
/// (parentheses, prefix operators, calls, `LIKE`/`IN` in a row) recurses when parsing and
/// evaluating (and explaining). Beyond MAX_DEPTH levels or MAX_NESTING nested ones an
/// expression is refused, so that what is accepted fits a 1 MiB stack even in a debug build
/// (tokio's workers have 2 MiB).
#[test]
fn deep_trees_are_refused_and_allowed_ones_fit_a_small_stack() {
    use super::parser::{MAX_DEPTH, MAX_NESTING};
    let chain = |n: usize| format!("1{}", " + 1".repeat(n));
    let nested = |open: &str, leaf: &str, close: &str, n: usize| {
        format!("{}{leaf}{}", open.repeat(n), close.repeat(n))
    };
    let too_deep = [
        chain(MAX_DEPTH),
        chain(7_000),
        format!("TRUE{}", " OR FALSE".repeat(MAX_DEPTH)),
        nested("(", "1", ")", MAX_NESTING + 1),
        nested("(", "1", ")", 7_000),
        nested("NOT ", "TRUE", "", MAX_NESTING + 1),
        nested("- ", "(1)", "", MAX_NESTING + 1),
        nested("ABS(", "1", ")", MAX_NESTING + 1),
        nested("(", "TRUE", " OR FALSE)", MAX_NESTING + 1),
        nested("1 + (", "1", ")", MAX_NESTING + 1),
        nested("", "'a'", " LIKE 'a'", MAX_NESTING + 1),
        nested("", "1", " IN (1)", MAX_NESTING + 1),
        nested("", "'a'", " NOT LIKE 'b' NOT IN ('c')", 2_000),
    ];
    for src in &too_deep {
        let e = Expression::parse(src).expect_err("too deep");
        assert!(e.to_string().contains("nested too deeply"), "{e}");
    }
    let deepest = vec![
        chain(MAX_DEPTH - 1),
        format!("TRUE{}", " AND TRUE".repeat(MAX_DEPTH - 1)),
        nested("- ", "(1)", "", MAX_NESTING - 2),
        nested("NOT ", "TRUE", "", MAX_NESTING - 1),
        nested("ABS(", "1", ")", MAX_NESTING - 1),
        nested("(", "TRUE", " OR FALSE)", MAX_NESTING - 2),
        nested("CONCAT('a', ", "'b'", ")", MAX_NESTING - 1),
        nested("", "'a'", " LIKE 'a'", MAX_NESTING - 1),
        nested("", "TRUE", " IN (TRUE)", MAX_NESTING - 2),
        // A long chain of deeply nested operands.
        vec![nested("NOT ", "TRUE", "", MAX_NESTING - 2); 200].join(" OR "),
        vec![nested("ABS(", "-1", ")", MAX_NESTING - 2); 200].join(" + "),
    ];
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            for src in &deepest {
                let x = Expression::parse(src).unwrap_or_else(|e| panic!("{e}"));
                let (_, err) = x.clone().evaluate(&edge_event());
                assert!(err.is_none(), "{err:?}");
                // The explanation walks, renders and reads attributes within the same stack.
                let why = x.explain(&edge_event());
                assert!(why.error.is_none() && !why.to_string().is_empty());
            }
        })
        .expect("thread")
        .join()
        .expect("the deepest accepted trees fit a 1 MiB stack");
}

/// Chains evaluate left to right like the recursion did: short-circuits, the first error, and
/// the operator's zero value on a failed operand (which then fails the next operator too; a
/// failed implicit cast does not).
#[test]
fn chains_keep_their_semantics() {
    assert_eq!(eval("FALSE AND missing OR TRUE"), (Value::Bool(true), None));
    assert_eq!(
        eval("TRUE OR missing AND FALSE"),
        (Value::Bool(false), None)
    );
    assert_eq!(
        eval("1 + missing + 2"),
        (Value::Int(0), Some(ErrorKind::MissingAttribute))
    );
    assert_eq!(
        eval("1 / 0 + 5 - 'x'"),
        (Value::Int(0), Some(ErrorKind::Math))
    );
    assert_eq!(
        eval("2147483647 + 1 - 1"),
        (Value::Int(0), Some(ErrorKind::Math))
    );
    assert_eq!(eval("1 = 1 = TRUE"), (Value::Bool(true), None));
    assert_eq!(eval("3 - 2 - 1"), (Value::Int(0), None));
    assert_eq!(
        eval("'5' + 1 - 'x'"),
        (Value::Int(6), Some(ErrorKind::Cast))
    );
    assert_eq!(eval("12 / 2 / 3 % 2"), (Value::Int(0), None));
}
