//! Merging what several replicas answered (`--all-replicas`): journeys of the same event seen on
//! several replicas become one (the replica whose ingress accepted it knows its acceptance, the
//! replica that delivered it to a Trigger knows the attempts), and fate counters are summed.

use std::collections::BTreeMap;

use knit_dispatcher::observe::Journey;
use knit_dispatcher::observe::journey::{AttemptView, EgressJourney};
use serde_json::{Map, Value, json};

/// When something happened (RFC 3339), for ordering; unparsable times sort first.
fn when(at: &str) -> jiff::Timestamp {
    at.parse().unwrap_or(jiff::Timestamp::MIN)
}

/// How final an egress's outcome is: a fate beats `inFlight` (the replica that accepted the
/// event knows only that it was handed on; the one that delivered it knows how it ended).
fn rank(outcome: &str) -> u8 {
    match outcome {
        "delivered" => 5,
        "deadLettered" => 4,
        "dropped" => 3,
        "filtered" => 2,
        "inFlight" => 0,
        _ => 1,
    }
}

/// One egress as several replicas saw it: the most final view, with every replica's attempts
/// in time order (the same attempt once).
fn merge_egress(views: Vec<EgressJourney>) -> Option<EgressJourney> {
    let mut attempts: Vec<AttemptView> = views.iter().flat_map(|v| v.attempts.clone()).collect();
    let retries = views.iter().map(|v| v.retries).max().unwrap_or(0);
    let omitted = views.iter().map(|v| v.omitted).max().unwrap_or(0);
    let mut best = views.into_iter().max_by_key(|v| rank(&v.outcome))?;
    attempts.sort_by_key(|a| when(&a.at));
    attempts
        .dedup_by(|a, b| a.at == b.at && a.destination == b.destination && a.target == b.target);
    let at_subscriber = attempts
        .iter()
        .filter(|a| a.target == knit_dispatcher::observe::Leg::Subscriber)
        .count();
    let tried = u32::try_from(at_subscriber.saturating_sub(1)).unwrap_or(u32::MAX);
    best.retries = retries.max(tried);
    best.omitted = omitted;
    best.attempts = attempts;
    Some(best)
}

/// The journeys of one event (one id and source) from several replicas as one.
fn merge_one(seen: Vec<Journey>) -> Option<Journey> {
    let accepted = seen
        .iter()
        .filter_map(|j| j.accepted.clone())
        .min_by_key(|a| when(&a.at));
    let mut order: Vec<(String, String)> = Vec::new();
    let mut by_egress: BTreeMap<(String, String), Vec<EgressJourney>> = BTreeMap::new();
    for e in seen.iter().flat_map(|j| j.egresses.iter()) {
        let key = (e.kind.clone(), e.name.clone());
        if !by_egress.contains_key(&key) {
            order.push(key.clone());
        }
        by_egress.entry(key).or_default().push(e.clone());
    }
    let egresses = order
        .into_iter()
        .filter_map(|k| by_egress.remove(&k).and_then(merge_egress))
        .collect();
    let mut first = seen.into_iter().next()?;
    first.too_old = first.too_old && accepted.is_none();
    first.accepted = accepted;
    first.egresses = egresses;
    Some(first)
}

/// When a journey started: its acceptance, else its first attempt.
fn started(j: &Journey) -> jiff::Timestamp {
    match &j.accepted {
        Some(a) => when(&a.at),
        None => j
            .egresses
            .iter()
            .flat_map(|e| e.attempts.iter())
            .map(|a| when(&a.at))
            .min()
            .unwrap_or(jiff::Timestamp::MIN),
    }
}

/// The journey as JSON, with the replicas that saw it (`replicas`).
fn with_replicas(j: &Journey, replicas: &[String]) -> Value {
    let mut v = serde_json::to_value(j).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("replicas".into(), json!(replicas));
    }
    v
}

/// One event's journeys from several replicas (replica id, journey) as one, with
/// `replicas`: who saw it. `None` when none did.
pub fn journey(seen: Vec<(String, Journey)>) -> Option<Value> {
    let mut replicas: Vec<String> = seen.iter().map(|(r, _)| r.clone()).collect();
    replicas.dedup();
    let merged = merge_one(seen.into_iter().map(|(_, j)| j).collect())?;
    Some(with_replicas(&merged, &replicas))
}

/// The recent journeys several replicas listed (replica id, its items): each event (by id and
/// source) once, newest first, at most `limit`.
pub fn journeys(lists: Vec<(String, Vec<Journey>)>, limit: usize) -> Vec<Value> {
    let mut by_event: BTreeMap<(String, String), Vec<(String, Journey)>> = BTreeMap::new();
    for (replica, items) in lists {
        for j in items {
            let key = (j.id.clone(), j.source.clone());
            by_event.entry(key).or_default().push((replica.clone(), j));
        }
    }
    let mut merged: Vec<(jiff::Timestamp, Vec<String>, Journey)> = by_event
        .into_values()
        .filter_map(|seen| {
            let replicas: Vec<String> = seen.iter().map(|(r, _)| r.clone()).collect();
            let j = merge_one(seen.into_iter().map(|(_, j)| j).collect())?;
            Some((started(&j), replicas, j))
        })
        .collect();
    merged.sort_by_key(|m| std::cmp::Reverse(m.0));
    merged
        .iter()
        .take(limit)
        .map(|(_, replicas, j)| with_replicas(j, replicas))
        .collect()
}

/// `a + b`, number by number: objects by key (keys of either), numbers summed, anything else
/// taken from `a` when it has it.
fn add(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(mine) => add(mine, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                *a = x.saturating_add(y).into();
            } else if let Some(sum) = a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(x, y)| serde_json::Number::from_f64(x + y))
            {
                *a = sum;
            }
        }
        _ => {}
    }
}

/// The `/api/v1/stats` answers of several replicas (replica id, answer) summed: totals and
/// each egress's counters, plus `replicas` with each replica's own answer.
pub fn stats(answers: Vec<(String, Value)>) -> Value {
    let mut sum = Value::Object(Map::new());
    let mut each = Map::new();
    for (replica, answer) in answers {
        add(&mut sum, &answer);
        each.insert(replica, answer);
    }
    if let Some(o) = sum.as_object_mut() {
        o.insert("replicas".into(), Value::Object(each));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journey(v: Value) -> Journey {
        serde_json::from_value(v).expect("a journey")
    }

    fn attempt(at: &str) -> Value {
        json!({"at": at, "destination": "http://sink", "target": "subscriber", "status": 200, "latencyMs": 1.0})
    }

    fn accepted_here() -> Journey {
        journey(json!({
            "id": "e1", "source": "/s", "type": "t",
            "ingress": {"kind": "Broker", "namespace": "default", "name": "b"},
            "accepted": {"at": "2026-01-01T00:00:01Z", "size": 10, "mode": "binary"},
            "egresses": [{"name": "tr", "kind": "Trigger", "matched": true, "attempts": [], "retries": 0, "outcome": "inFlight"}],
            "tooOld": false
        }))
    }

    fn delivered_there(at: &str) -> Journey {
        journey(json!({
            "id": "e1", "source": "/s", "type": "t",
            "ingress": {"kind": "Broker", "namespace": "default", "name": "b"},
            "accepted": null,
            "egresses": [{"name": "tr", "kind": "Trigger", "matched": true, "attempts": [attempt(at)], "retries": 0, "outcome": "delivered"}],
            "tooOld": true
        }))
    }

    #[test]
    fn an_event_accepted_on_one_replica_and_delivered_by_another_is_one_journey() {
        let lists = vec![
            ("r0".to_string(), vec![accepted_here()]),
            (
                "r1".to_string(),
                vec![delivered_there("2026-01-01T00:00:02Z")],
            ),
        ];
        let items = journeys(lists, 10);
        assert_eq!(items.len(), 1, "{items:?}");
        let j = &items[0];
        assert_eq!(j["accepted"]["size"], 10);
        assert_eq!(j["tooOld"], false);
        assert_eq!(j["egresses"][0]["outcome"], "delivered");
        assert_eq!(
            j["egresses"][0]["attempts"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(j["replicas"], json!(["r0", "r1"]));
    }

    #[test]
    fn attempts_from_two_replicas_are_in_time_order_and_count_as_retries() {
        let one = journey(json!({
            "id": "e1", "source": "/s", "type": "t",
            "ingress": {"kind": "Broker", "namespace": "default", "name": "b"},
            "accepted": null,
            "egresses": [{"name": "tr", "kind": "Trigger", "matched": true, "attempts": [attempt("2026-01-01T00:00:03.5Z")], "retries": 0, "outcome": "inFlight"}],
            "tooOld": true
        }));
        let seen = vec![
            ("r1".to_string(), delivered_there("2026-01-01T00:00:04Z")),
            ("r2".to_string(), one),
        ];
        let j = super::journey(seen).expect("merged");
        let attempts = j["egresses"][0]["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0]["at"], "2026-01-01T00:00:03.5Z");
        assert_eq!(j["egresses"][0]["retries"], 1);
        assert_eq!(j["egresses"][0]["outcome"], "delivered");
        assert_eq!(j["tooOld"], true, "no replica knows its acceptance");
    }

    #[test]
    fn distinct_events_stay_apart_newest_first_within_the_limit() {
        let mut other = accepted_here();
        other.id = "e2".into();
        other.accepted.as_mut().expect("accepted").at = "2026-01-01T00:00:09Z".into();
        let mut same_id_other_source = accepted_here();
        same_id_other_source.source = "/other".into();
        let lists = vec![
            ("r0".to_string(), vec![accepted_here(), other]),
            ("r1".to_string(), vec![same_id_other_source]),
        ];
        let items = journeys(lists.clone(), 10);
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["id"], "e2");
        assert_eq!(journeys(lists, 2).len(), 2);
    }

    #[test]
    fn stats_are_summed_per_object_with_each_replica_kept() {
        let a = json!({"delivered": 2, "egresses": {"Trigger/default/t": {"delivered": 2, "retries": 1}}});
        let b = json!({"delivered": 3, "egresses": {"Trigger/default/t": {"delivered": 3}, "Trigger/default/u": {"delivered": 1}}});
        let s = stats(vec![("r0".into(), a.clone()), ("r1".into(), b)]);
        assert_eq!(s["delivered"], 5);
        assert_eq!(s["egresses"]["Trigger/default/t"]["delivered"], 5);
        assert_eq!(s["egresses"]["Trigger/default/t"]["retries"], 1);
        assert_eq!(s["egresses"]["Trigger/default/u"]["delivered"], 1);
        assert_eq!(s["replicas"]["r0"], a);
    }
}
