//! Trigger filters (eventing-spec §1.4), compiled once per Trigger, and the index that keeps
//! routing from costing O(triggers) per event: triggers that require an exact `type` (or,
//! failing that, an exact `source`) are only evaluated for events with that value.

use std::collections::HashMap;

use knit_channels::Event;
use knit_channels::Selector;
use knit_crds::api::eventing::SubscriptionsApiFilter;
use knit_crds::contract::EgressFilter;
use knit_dispatcher::EventFilter;

use crate::cesql::Expression;

/// A compiled filter.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Every event.
    True,
    /// Legacy `filter.attributes`: each attribute present and equal; `""` = any non-empty value.
    Attributes(Vec<(String, String)>),
    /// Every attribute present and equal.
    Exact(Vec<(String, String)>),
    /// Every attribute present and starting with the value.
    Prefix(Vec<(String, String)>),
    /// Every attribute present and ending with the value.
    Suffix(Vec<(String, String)>),
    /// All sub-filters.
    All(Vec<Filter>),
    /// At least one sub-filter.
    Any(Vec<Filter>),
    /// Not the sub-filter.
    Not(Box<Filter>),
    /// A CESQL expression that must yield true without error.
    Cesql(Box<Expression>),
    /// A filter that can never match (an expression that does not parse; admission rejects
    /// these, so this only guards against a Contract from elsewhere).
    Never,
}

fn pairs(m: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn compile_one(f: &SubscriptionsApiFilter) -> Filter {
    if !f.exact.is_empty() {
        return Filter::Exact(pairs(&f.exact));
    }
    if !f.prefix.is_empty() {
        return Filter::Prefix(pairs(&f.prefix));
    }
    if !f.suffix.is_empty() {
        return Filter::Suffix(pairs(&f.suffix));
    }
    if !f.all.is_empty() {
        return Filter::All(f.all.iter().map(compile_one).collect());
    }
    if !f.any.is_empty() {
        return Filter::Any(f.any.iter().map(compile_one).collect());
    }
    if let Some(n) = &f.not {
        return Filter::Not(Box::new(compile_one(n)));
    }
    if let Some(expr) = &f.cesql {
        return match Expression::parse(expr) {
            Ok(e) => Filter::Cesql(Box::new(e)),
            Err(_) => Filter::Never,
        };
    }
    // An empty element, or empty all/any/not: no filter.
    Filter::True
}

/// Compile a Trigger's filter: `filters` (ANDed) when non-empty, else `filter.attributes`.
pub fn compile(f: Option<&EgressFilter>) -> Filter {
    let Some(f) = f else { return Filter::True };
    if !f.filters.is_empty() {
        return Filter::All(f.filters.iter().map(compile_one).collect());
    }
    match &f.attributes {
        Some(a) if !a.attributes.is_empty() => Filter::Attributes(pairs(&a.attributes)),
        _ => Filter::True,
    }
}

impl Filter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::True => true,
            Filter::Never => false,
            Filter::Attributes(p) => p.iter().all(|(k, v)| match event.attribute(k) {
                Some(actual) => {
                    if v.is_empty() {
                        !actual.is_empty()
                    } else {
                        actual == v.as_str()
                    }
                }
                None => false,
            }),
            Filter::Exact(p) => p
                .iter()
                .all(|(k, v)| event.attribute(k).is_some_and(|a| a == v.as_str())),
            Filter::Prefix(p) => p.iter().all(|(k, v)| {
                event
                    .attribute(k)
                    .is_some_and(|a| a.starts_with(v.as_str()))
            }),
            Filter::Suffix(p) => p
                .iter()
                .all(|(k, v)| event.attribute(k).is_some_and(|a| a.ends_with(v.as_str()))),
            Filter::All(fs) => fs.iter().all(|f| f.matches(event)),
            Filter::Any(fs) => fs.is_empty() || fs.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
            Filter::Cesql(e) => e.matches(event),
        }
    }

    /// The value of `attr` every matching event must have exactly, if the filter says so.
    pub fn required(&self, attr: &str) -> Option<&str> {
        match self {
            Filter::Attributes(p) | Filter::Exact(p) => p
                .iter()
                .find(|(k, v)| k == attr && !v.is_empty())
                .map(|(_, v)| v.as_str()),
            Filter::All(fs) => fs.iter().find_map(|f| f.required(attr)),
            _ => None,
        }
    }
}

/// Where a trigger sits in the index.
enum Bucket {
    Type(String),
    Source(String),
    Rest,
}

impl EventFilter for Filter {
    fn matches(&self, event: &Event) -> bool {
        Filter::matches(self, event)
    }
}

/// Routes a Broker's events to its Triggers' consumer groups, evaluating only candidates (the
/// memory log's [`Selector`]).
pub struct TriggerRouter {
    groups: Vec<String>,
    filters: Vec<std::sync::Arc<Filter>>,
    by_type: HashMap<String, Vec<usize>>,
    by_source: HashMap<String, Vec<usize>>,
    rest: Vec<usize>,
}

impl TriggerRouter {
    /// Index the filters of `groups` (group name, filter).
    pub fn new(groups: Vec<(String, std::sync::Arc<Filter>)>) -> Self {
        let (names, filters): (Vec<String>, Vec<std::sync::Arc<Filter>>) =
            groups.into_iter().unzip();
        let mut r = Self {
            groups: names,
            filters: Vec::new(),
            by_type: HashMap::new(),
            by_source: HashMap::new(),
            rest: Vec::new(),
        };
        for (i, f) in filters.iter().enumerate() {
            let bucket = match (f.required("type"), f.required("source")) {
                (Some(t), _) => Bucket::Type(t.to_string()),
                (None, Some(s)) => Bucket::Source(s.to_string()),
                _ => Bucket::Rest,
            };
            match bucket {
                Bucket::Type(t) => r.by_type.entry(t).or_default().push(i),
                Bucket::Source(s) => r.by_source.entry(s).or_default().push(i),
                Bucket::Rest => r.rest.push(i),
            }
        }
        r.filters = filters;
        r
    }
}

impl Selector for TriggerRouter {
    fn groups(&self) -> &[String] {
        &self.groups
    }

    fn select(&self, event: &Event, out: &mut Vec<usize>) {
        let candidates = self
            .by_type
            .get(&event.ty)
            .into_iter()
            .flatten()
            .chain(self.by_source.get(&event.source).into_iter().flatten())
            .chain(self.rest.iter());
        for &i in candidates {
            if self.filters[i].matches(event) {
                out.push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knit_channels::ExtValue;
    use knit_crds::api::eventing::TriggerFilter;

    fn ev(ty: &str) -> Event {
        let mut e = Event::new("1", "/src", ty);
        e.set_extension("myext", ExtValue::String("abc-value".into()));
        e
    }

    fn parse(json: serde_json::Value) -> Vec<SubscriptionsApiFilter> {
        serde_json::from_value(json).expect("filters")
    }

    fn attrs(pairs: &[(&str, &str)]) -> EgressFilter {
        EgressFilter {
            attributes: Some(TriggerFilter {
                attributes: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            filters: vec![],
        }
    }

    #[test]
    fn legacy_empty_value_means_any_non_empty() {
        let f = compile(Some(&attrs(&[("myext", "")])));
        assert!(f.matches(&ev("t")));
        let f = compile(Some(&attrs(&[("subject", "")])));
        assert!(!f.matches(&ev("t")), "absent attribute does not match");
        let f = compile(Some(&attrs(&[("type", "t"), ("myext", "abc-value")])));
        assert!(f.matches(&ev("t")));
        assert!(!f.matches(&ev("T")), "case-sensitive");
    }

    #[test]
    fn dialects() {
        let f = compile(Some(&EgressFilter {
            attributes: None,
            filters: parse(serde_json::json!([
                {"prefix": {"type": "com.github."}},
                {"suffix": {"myext": "-value"}},
                {"not": {"exact": {"subject": "x"}}},
                {"any": [{"exact": {"source": "/nope"}}, {"cesql": "source LIKE '/s%'"}]}
            ])),
        }));
        assert!(f.matches(&ev("com.github.push")));
        assert!(!f.matches(&ev("com.gitlab.push")));
    }

    #[test]
    fn filters_override_attributes() {
        let mut ef = attrs(&[("type", "b")]);
        ef.filters = parse(serde_json::json!([{"exact": {"type": "a"}}]));
        let f = compile(Some(&ef));
        assert!(f.matches(&ev("a")));
        assert!(!f.matches(&ev("b")));
    }

    #[test]
    fn index_only_evaluates_candidates_and_finds_all_matches() {
        let mut filters: Vec<Filter> = (0..1000)
            .map(|i| compile(Some(&attrs(&[("type", &format!("t{i}"))]))))
            .collect();
        filters.push(Filter::True);
        filters.push(compile(Some(&attrs(&[("source", "/src")]))));
        let r = TriggerRouter::new(
            filters
                .into_iter()
                .enumerate()
                .map(|(i, f)| (format!("g{i}"), std::sync::Arc::new(f)))
                .collect(),
        );
        let mut out = Vec::new();
        r.select(&ev("t7"), &mut out);
        out.sort();
        assert_eq!(out, vec![7, 1000, 1001]);
    }
}

/// Property test: the index finds exactly the groups whose filter matches on its own, for
/// random filters (every kind, nested) and random events over a small alphabet.
#[cfg(test)]
mod props {
    use std::sync::Arc;

    use knit_channels::ExtValue;
    use proptest::prelude::*;

    use super::*;

    const NAMES: &[&str] = &["type", "source", "subject", "myext", "id", "TYPE"];
    const VALUES: &[&str] = &["", "a", "b", "ab", "ba"];
    const CESQL: &[&str] = &[
        "type = 'a'",
        "source LIKE 'a%'",
        "EXISTS myext",
        "myext = 'ab' OR subject = 'b'",
        "type = 'a' AND source = 'b'",
        "NOT (type IN ('a', 'b'))",
        "missing = 'a'",
    ];

    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (prop::sample::select(NAMES), prop::sample::select(VALUES))
                .prop_map(|(k, v)| (k.to_string(), v.to_string())),
            0..3,
        )
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let leaf = prop_oneof![
            Just(Filter::True),
            Just(Filter::Never),
            pairs().prop_map(Filter::Attributes),
            pairs().prop_map(Filter::Exact),
            pairs().prop_map(Filter::Prefix),
            pairs().prop_map(Filter::Suffix),
            prop::sample::select(CESQL).prop_map(|s| match Expression::parse(s) {
                Ok(e) => Filter::Cesql(Box::new(e)),
                Err(_) => Filter::Never,
            }),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::All),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::Any),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    fn event() -> impl Strategy<Value = Event> {
        let v = || prop::sample::select(VALUES);
        (v(), v(), v(), prop::option::of(v()), prop::option::of(v())).prop_map(
            |(id, source, ty, subject, ext)| {
                let mut e = Event::new(id, source, ty);
                e.subject = subject.map(str::to_string);
                if let Some(x) = ext {
                    e.set_extension("myext", ExtValue::String(x.to_string()));
                }
                e
            },
        )
    }

    proptest! {
        #[test]
        fn index_selects_what_naive_evaluation_selects(
            filters in prop::collection::vec(filter(), 0..12),
            events in prop::collection::vec(event(), 1..8),
        ) {
            let router = TriggerRouter::new(
                filters
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (format!("g{i}"), Arc::new(f.clone())))
                    .collect(),
            );
            prop_assert_eq!(router.groups().len(), filters.len());
            for ev in &events {
                let mut got = Vec::new();
                router.select(ev, &mut got);
                let n = got.len();
                got.sort_unstable();
                got.dedup();
                prop_assert_eq!(got.len(), n, "a group selected twice");
                let want: Vec<usize> = (0..filters.len())
                    .filter(|&i| filters[i].matches(ev))
                    .collect();
                prop_assert_eq!(got, want, "event {:?}", ev);
            }
        }
    }
}
