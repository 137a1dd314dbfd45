//! The clause named for AND/OR/NOT chains, nested ones, leaves of every kind and errors; and
//! a property test that the walk agrees with the evaluator.

use knit_channels::{Event, ExtValue};
use proptest::prelude::*;

use super::super::{ErrorKind, Expression, Value};
use super::{Walk, is_logic};

fn event() -> Event {
    let mut e = Event::new("1", "/elsewhere", "com.bar.x");
    e.set_extension("myint", ExtValue::Integer(5));
    e.set_extension("flag", ExtValue::Boolean(true));
    e.set_extension("text", ExtValue::String("héllo".into()));
    e
}

/// The explanation of `src` on [`event`], in words, and whether it matched.
fn why(src: &str) -> (bool, String) {
    let x = Expression::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    let why = x.explain(&event());
    assert_eq!((why.value.clone(), why.error.clone()), x.evaluate(&event()));
    (why.matched(), why.to_string())
}

fn says(src: &str, matched: bool, words: &str) {
    assert_eq!(why(src), (matched, words.to_string()), "{src}");
}

#[test]
fn and_names_its_first_false_operand_or_itself_when_true() {
    says(
        "type LIKE 'com.bar.%' AND source = '/bar'",
        false,
        r#"source = '/bar' is false (source is "/elsewhere")"#,
    );
    // Short-circuit: the operand after the first false one is not evaluated (nor its error).
    says(
        "type = 'a' AND missing = 1 AND source = '/x'",
        false,
        r#"type = 'a' is false (type is "com.bar.x")"#,
    );
    says(
        "type LIKE 'com.bar.%' AND source = '/elsewhere'",
        true,
        r#"type LIKE 'com.bar.%' AND source = '/elsewhere' is true (type is "com.bar.x", source is "/elsewhere")"#,
    );
}

#[test]
fn or_names_its_first_true_operand_or_itself_when_false() {
    says(
        "type = 'a' OR source = '/elsewhere' OR missing = 1",
        true,
        r#"source = '/elsewhere' is true (source is "/elsewhere")"#,
    );
    says(
        "type = 'a' OR type = 'b' OR EXISTS subject",
        false,
        r#"type = 'a' OR type = 'b' OR EXISTS subject is false (type is "com.bar.x", subject is absent)"#,
    );
}

#[test]
fn not_negates_the_clause_that_decided_its_operand() {
    says(
        "NOT (type = 'com.bar.x')",
        false,
        r#"NOT (type = 'com.bar.x') is false (type is "com.bar.x")"#,
    );
    // NOT (a AND b) = NOT a OR NOT b: true because b is false.
    says(
        "NOT (type LIKE 'com.%' AND source = '/bar')",
        true,
        r#"NOT (source = '/bar') is true (source is "/elsewhere")"#,
    );
    // NOT (a OR b) = NOT a AND NOT b: false because b is true.
    says(
        "NOT (type = 'a' OR myint IN (1, 5))",
        false,
        "NOT (myint IN (1, 5)) is false (myint is 5)",
    );
    // Two negations cancel out.
    says(
        "NOT (flag AND NOT (type = 'com.bar.x'))",
        true,
        r#"type = 'com.bar.x' is true (type is "com.bar.x")"#,
    );
    says(
        "NOT NOT (type = 'a')",
        false,
        r#"NOT NOT (type = 'a') is false (type is "com.bar.x")"#,
    );
}

#[test]
fn nested_chains_are_followed_down_to_the_leaf() {
    says(
        "(type = 'a' OR type LIKE 'com.%') AND (EXISTS subject OR myint > 10)",
        false,
        "EXISTS subject OR myint > 10 is false (subject is absent, myint is 5)",
    );
    says(
        "(type = 'a' OR type LIKE 'com.%') AND NOT (myint IN (1, 5, 7))",
        false,
        "NOT (myint IN (1, 5, 7)) is false (myint is 5)",
    );
    says(
        "type = 'a' OR (myint = 5 AND flag)",
        true,
        "myint = 5 AND flag is true (myint is 5, flag is true)",
    );
    says(
        "flag AND (source = '/x' OR (type LIKE 'com.%' AND (myint < 3 OR NOT flag)))",
        false,
        r#"source = '/x' OR (type LIKE 'com.%' AND (myint < 3 OR NOT flag)) is false (source is "/elsewhere", type is "com.bar.x", myint is 5, flag is true)"#,
    );
    says(
        "flag AND (source = '/elsewhere' AND (type LIKE 'com.%' AND (myint < 3 OR NOT flag)))",
        false,
        "myint < 3 OR NOT flag is false (myint is 5, flag is true)",
    );
    // AND, OR and XOR share one precedence level: the rendering shows the grouping.
    says(
        "type = 'a' AND flag OR myint = 6",
        false,
        r#"(type = 'a' AND flag) OR myint = 6 is false (type is "com.bar.x", flag is true, myint is 5)"#,
    );
    says(
        "flag XOR type = 'a'",
        true,
        r#"flag XOR type = 'a' is true (flag is true, type is "com.bar.x")"#,
    );
}

#[test]
fn leaves_of_every_kind_show_the_attributes_they_read() {
    says(
        "LENGTH(text) > 10 OR UPPER(text) = 'HÉLLO'",
        true,
        r#"UPPER(text) = 'HÉLLO' is true (text is "héllo")"#,
    );
    says(
        "source NOT LIKE '/else%'",
        false,
        r#"source NOT LIKE '/else%' is false (source is "/elsewhere")"#,
    );
    says(
        "type IN ('a', 'b') OR CONCAT(source, type) = id",
        false,
        r#"type IN ('a', 'b') OR CONCAT(source, type) = id is false (type is "com.bar.x", source is "/elsewhere", id is "1")"#,
    );
    says(
        "Type = 'x' and SOURCE like '/e%'",
        false,
        r#"type = 'x' is false (type is "com.bar.x")"#,
    );
    says(
        "EXISTS subject AND subject = 'a'",
        false,
        "EXISTS subject is false (subject is absent)",
    );
    says("TRUE", true, "TRUE is true");
    says(
        "LENGTH(text)",
        false,
        r#"LENGTH(text) is 5 (text is "héllo")"#,
    );
    says(
        "source LIKE 'it\\'s 100\\%'",
        false,
        r#"source LIKE 'it\'s 100\%' is false (source is "/elsewhere")"#,
    );
}

#[test]
fn errors_name_the_operand_that_raised_them() {
    says(
        "type LIKE 'com.%' AND subject = 'x'",
        false,
        "subject = 'x' failed: MissingAttribute: missing attribute subject (subject is absent)",
    );
    says(
        "type LIKE 'com.%' AND myint / 0 = 0",
        false,
        "myint / 0 = 0 failed: Math: division by zero (myint is 5)",
    );
    // A value an operator cannot cast to a boolean.
    says(
        "text OR TRUE",
        false,
        r#"text failed: Cast: cannot cast 'héllo' to a boolean (text is "héllo")"#,
    );
    // A failed operand wins over an earlier cast error, as in the evaluator.
    says(
        "text OR missing",
        false,
        "missing failed: MissingAttribute: missing attribute missing (missing is absent)",
    );
    // A leaf's error names the leaf.
    says(
        "INT(text)",
        false,
        r#"INT(text) failed: Cast: cannot cast 'héllo' to an integer (text is "héllo")"#,
    );
    let x = Expression::parse("NOT (flag AND myint + 'x' = 5)").expect("parse");
    let why = x.explain(&event());
    assert_eq!(why.error.map(|e| e.kind), Some(ErrorKind::Cast));
    assert_eq!(why.clause, "myint + 'x' = 5");
}

/// Long chains are walked, rendered and searched for attributes without recursing per operator.
#[test]
fn long_chains_fit_a_small_stack() {
    let or = vec!["type = 'a'"; 999].join(" OR ");
    let and = format!("flag{}", " AND flag".repeat(998));
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let (matched, words) = why(&or);
            assert!(!matched && words.ends_with(r#"is false (type is "com.bar.x")"#));
            let (matched, words) = why(&and);
            assert!(matched && words.ends_with("is true (flag is true)"));
        })
        .expect("thread")
        .join()
        .expect("explaining a 999-operator chain fits a 1 MiB stack, as evaluating it does");
}

const ATOMS: &[&str] = &[
    "TRUE",
    "FALSE",
    "flag",
    "type = 'com.bar.x'",
    "source LIKE '/else%'",
    "myint IN (1, 5)",
    "myint > 4",
    "EXISTS subject",
    "LENGTH(text) = 5",
    "subject = 'a'",
    "text",
    "myint / 0 = 0",
    "'true'",
];

fn expression() -> impl Strategy<Value = String> {
    prop::sample::select(ATOMS)
        .prop_map(str::to_string)
        .prop_recursive(4, 32, 3, |inner| {
            let op = prop::sample::select(&["AND", "OR", "XOR"][..]);
            prop_oneof![
                (inner.clone(), op.clone(), inner.clone())
                    .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
                (inner.clone(), op, inner.clone())
                    .prop_map(|(a, op, b)| format!("({a}) {op} ({b})")),
                inner.clone().prop_map(|a| format!("NOT ({a})")),
                inner.prop_map(|a| format!("NOT {a}")),
            ]
        })
}

fn events() -> impl Strategy<Value = Event> {
    (
        prop::sample::select(&["com.bar.x", "a"][..]),
        prop::sample::select(&["/elsewhere", "/bar"][..]),
        prop::option::of(prop::sample::select(&["a", "b"][..])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(&[1i64, 5, 9][..])),
        prop::option::of(prop::sample::select(&["héllo", "true", ""][..])),
    )
        .prop_map(|(ty, source, subject, flag, myint, text)| {
            let mut e = Event::new("1", source, ty);
            e.subject = subject.map(str::to_string);
            if let Some(b) = flag {
                e.set_extension("flag", ExtValue::Boolean(b));
            }
            if let Some(n) = myint {
                e.set_extension("myint", ExtValue::Integer(n));
            }
            if let Some(t) = text {
                e.set_extension("text", ExtValue::String(t.to_string()));
            }
            e
        })
}

proptest! {
    /// The walk reaches the evaluator's verdict, and the clause it names, evaluated on its
    /// own, has the whole expression's value; an error is found among the walk's.
    #[test]
    fn the_named_clause_has_the_expressions_value(src in expression(), ev in events()) {
        let x = Expression::parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        let (value, error) = x.evaluate(&ev);
        let why = x.explain(&ev);
        prop_assert_eq!((&why.value, &why.error), (&value, &error));
        if is_logic(&x.root) {
            let mut walk = Walk { event: &ev, errors: Vec::new() };
            let found = walk.operand(&x.root);
            match &error {
                None => {
                    prop_assert!(walk.errors.is_empty(), "{:?}", walk.errors);
                    prop_assert_eq!(&Value::Bool(found.truth), &value);
                }
                Some(e) => prop_assert!(walk.errors.iter().any(|(_, w)| w == e), "{e:?} not in {:?}", walk.errors),
            }
        }
        if error.is_none() {
            let clause = Expression::parse(&why.clause)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", why.clause)))?;
            let (v, e) = clause.evaluate(&ev);
            prop_assert_eq!(e, None);
            let truth = |v: &Value| matches!(v, Value::Bool(true)) || matches!(v, Value::Str(s) if s.eq_ignore_ascii_case("true"));
            prop_assert_eq!(truth(&v), truth(&value), "{} on {:?}: {}", src, ev, why);
        }
    }
}
