//! Filter dry-run: why a Trigger's filter takes or refuses an event, naming the clause that
//! decided (`filters[1].any[0].exact.type`, `filter.attributes.source`, `filters[0].cesql`
//! with the sub-expression that decided and the attributes it reads, or the error — see
//! [`crate::cesql::Explanation`]). It walks the filter as written, with the same semantics as
//! [`crate::filter::Filter`] (a test keeps the two in agreement), for `knit filter test`.

use knit_channels::Event;
use knit_crds::api::eventing::SubscriptionsApiFilter;
use knit_crds::contract::EgressFilter;
use serde::{Deserialize, Serialize};

use crate::cesql::Expression;

/// The verdict of one filter on one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the filter takes the event.
    pub matched: bool,
    /// The clause that decided, e.g. `filters[0].exact.type`, or `(no filter)`.
    pub clause: String,
    /// Why, in words.
    pub reason: String,
}

fn verdict(matched: bool, clause: impl Into<String>, reason: impl Into<String>) -> Verdict {
    Verdict {
        matched,
        clause: clause.into(),
        reason: reason.into(),
    }
}

/// Explain `filter` (a Trigger's, as the Contract carries it) on `event`.
pub fn explain(filter: Option<&EgressFilter>, event: &Event) -> Verdict {
    let Some(f) = filter else {
        return verdict(
            true,
            "(no filter)",
            "a Trigger without a filter takes every event",
        );
    };
    if !f.filters.is_empty() {
        return all(&f.filters, "filters", event);
    }
    match &f.attributes {
        Some(a) if !a.attributes.is_empty() => {
            for (k, want) in &a.attributes {
                let clause = format!("filter.attributes.{k}");
                match event.attribute(k) {
                    None => return verdict(false, clause, format!("the event has no {k}")),
                    Some(v) if want.is_empty() && v.is_empty() => {
                        return verdict(false, clause, format!("{k} is empty"));
                    }
                    Some(v) if !want.is_empty() && v != want.as_str() => {
                        return verdict(false, clause, format!("{k} is {v:?}, not {want:?}"));
                    }
                    Some(_) => {}
                }
            }
            verdict(true, "filter.attributes", "every attribute matched")
        }
        _ => verdict(true, "(no filter)", "an empty filter takes every event"),
    }
}

/// Every filter of `list` (at `path`) must match: the first that does not decides.
fn all(list: &[SubscriptionsApiFilter], path: &str, event: &Event) -> Verdict {
    for (i, f) in list.iter().enumerate() {
        let v = one(f, &format!("{path}[{i}]"), event);
        if !v.matched {
            return v;
        }
    }
    verdict(true, path, format!("all {} matched", list.len()))
}

fn pairs(
    map: &std::collections::BTreeMap<String, String>,
    dialect: &str,
    path: &str,
    event: &Event,
    test: impl Fn(&str, &str) -> bool,
    words: &str,
) -> Verdict {
    for (k, want) in map {
        let clause = format!("{path}.{dialect}.{k}");
        match event.attribute(k) {
            None => return verdict(false, clause, format!("the event has no {k}")),
            Some(v) if !test(&v, want) => {
                return verdict(
                    false,
                    clause,
                    format!("{k} is {v:?}, which does not {words} {want:?}"),
                );
            }
            Some(_) => {}
        }
    }
    verdict(
        true,
        format!("{path}.{dialect}"),
        format!("every attribute {words}s its value"),
    )
}

fn one(f: &SubscriptionsApiFilter, path: &str, event: &Event) -> Verdict {
    if !f.exact.is_empty() {
        return pairs(&f.exact, "exact", path, event, |v, w| v == w, "equal");
    }
    if !f.prefix.is_empty() {
        return pairs(
            &f.prefix,
            "prefix",
            path,
            event,
            |v, w| v.starts_with(w),
            "start with",
        );
    }
    if !f.suffix.is_empty() {
        return pairs(
            &f.suffix,
            "suffix",
            path,
            event,
            |v, w| v.ends_with(w),
            "end with",
        );
    }
    if !f.all.is_empty() {
        return all(&f.all, &format!("{path}.all"), event);
    }
    if !f.any.is_empty() {
        let mut why = Vec::new();
        for (i, sub) in f.any.iter().enumerate() {
            let v = one(sub, &format!("{path}.any[{i}]"), event);
            if v.matched {
                return v;
            }
            why.push(format!("{}: {}", v.clause, v.reason));
        }
        return verdict(
            false,
            format!("{path}.any"),
            format!("none matched ({})", why.join("; ")),
        );
    }
    if let Some(inner) = &f.not {
        let v = one(inner, &format!("{path}.not"), event);
        return if v.matched {
            verdict(
                false,
                format!("{path}.not"),
                format!("the negated filter matched ({}: {})", v.clause, v.reason),
            )
        } else {
            verdict(
                true,
                format!("{path}.not"),
                format!(
                    "the negated filter did not match ({}: {})",
                    v.clause, v.reason
                ),
            )
        };
    }
    if let Some(text) = &f.cesql {
        let clause = format!("{path}.cesql");
        return match Expression::parse(text) {
            Err(e) => verdict(false, clause, format!("{text:?} does not parse: {e}")),
            Ok(expr) => {
                let why = expr.explain(event);
                verdict(why.matched(), clause, why.to_string())
            }
        };
    }
    verdict(true, path, "an empty filter takes every event")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::compile;
    use std::collections::BTreeMap;

    fn event() -> Event {
        let mut e = Event::new("1", "/orders", "order.created");
        e.subject = Some("eu/123".into());
        e
    }

    fn filters(json: serde_json::Value) -> EgressFilter {
        EgressFilter {
            attributes: None,
            filters: serde_json::from_value(json).unwrap_or_default(),
        }
    }

    #[test]
    fn the_deciding_clause_is_named() {
        let f = filters(serde_json::json!([
            {"prefix": {"type": "order."}},
            {"any": [{"exact": {"subject": "us/1"}}, {"suffix": {"source": "/payments"}}]}
        ]));
        let v = explain(Some(&f), &event());
        assert!(!v.matched);
        assert_eq!(v.clause, "filters[1].any");
        assert!(
            v.reason.contains("filters[1].any[0].exact.subject"),
            "{}",
            v.reason
        );

        let f = filters(
            serde_json::json!([{"cesql": "subject LIKE 'eu/%' AND type = 'order.created'"}]),
        );
        let v = explain(Some(&f), &event());
        assert!(v.matched, "{v:?}");
        assert_eq!(v.clause, "filters");

        // Inside an expression: the sub-expression that decided, with the attribute's value.
        let f = filters(serde_json::json!([
            {"prefix": {"type": "order."}},
            {"cesql": "type LIKE 'order.%' AND (source = '/bar' OR NOT EXISTS subject)"}
        ]));
        let v = explain(Some(&f), &event());
        assert_eq!(
            (v.matched, v.clause.as_str(), v.reason.as_str()),
            (
                false,
                "filters[1].cesql",
                r#"source = '/bar' OR NOT EXISTS subject is false (source is "/orders", subject is "eu/123")"#
            )
        );
        let f = filters(serde_json::json!([{"cesql": "NOT (subject LIKE 'eu/%')"}]));
        let v = explain(Some(&f), &event());
        assert_eq!(
            v.reason,
            r#"NOT (subject LIKE 'eu/%') is false (subject is "eu/123")"#
        );
        let f = filters(serde_json::json!([{"cesql": "EXISTS subject AND myext = 'x'"}]));
        let v = explain(Some(&f), &event());
        assert_eq!(
            v.reason,
            "myext = 'x' failed: MissingAttribute: missing attribute myext (myext is absent)"
        );

        let f = filters(serde_json::json!([{"cesql": "type = 'x' AND"}]));
        let v = explain(Some(&f), &event());
        assert!(!v.matched);
        assert!(v.reason.contains("position"), "{}", v.reason);

        let legacy = EgressFilter {
            attributes: Some(knit_crds::api::eventing::TriggerFilter {
                attributes: BTreeMap::from([("source".to_string(), "/payments".to_string())]),
            }),
            filters: vec![],
        };
        let v = explain(Some(&legacy), &event());
        assert_eq!(
            (v.matched, v.clause.as_str()),
            (false, "filter.attributes.source")
        );
    }

    #[test]
    fn explain_agrees_with_the_compiled_filter() {
        let cases = [
            serde_json::json!([{"exact": {"type": "order.created"}}]),
            serde_json::json!([{"not": {"prefix": {"source": "/ord"}}}]),
            serde_json::json!([{"any": []}]),
            serde_json::json!([{"all": [{"suffix": {"subject": "123"}}, {"cesql": "EXISTS subject"}]}]),
            serde_json::json!([{"cesql": "1/0 = 0"}]),
            serde_json::json!([{"exact": {"missing": ""}}]),
        ];
        for c in cases {
            let f = filters(c.clone());
            assert_eq!(
                explain(Some(&f), &event()).matched,
                compile(Some(&f)).matches(&event()),
                "{c}"
            );
        }
    }
}
