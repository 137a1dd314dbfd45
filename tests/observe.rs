//! Seeing what happens: `knit trace` and `knit get events` read the event journal (an event
//! through a Broker with matching and non-matching Triggers, a retry, a reply followed with a
//! second trace, a dead letter, an unknown id, the journal's bound), and `/metrics` is
//! Prometheus text whose counts match what was sent.

mod common;

use std::collections::BTreeMap;

use common::sink::{Reply, Sink};
use common::{Knit, broker, eventually, send, trigger};
use serde_json::Value;

/// The journey of `id` at Broker `b` once every egress reached an outcome other than
/// `inFlight`.
async fn settled(knit: &Knit, id: &str) -> Value {
    eventually(&format!("the journey of {id} to settle"), || async {
        let r = common::http()
            .get(format!("{}/api/v1/events/default/b/{id}", knit.admin))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let j: Value = r.json().await.ok()?;
        let egresses = j["egresses"].as_array()?;
        egresses
            .iter()
            .all(|e| e["outcome"] != "inFlight")
            .then_some(j.clone())
    })
    .await
}

fn egress<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["egresses"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no egress {name} in {j}"))
}

/// One sample of Prometheus text: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A small parser of the Prometheus text format (0.0.4): every line is a comment (`# HELP`,
/// `# TYPE`) or a sample `name{label="value",...} number`; each sample's family has a TYPE.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut typed: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().expect("TYPE names a family");
            let kind = parts.next().expect("TYPE has a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line:?}");
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => line.split_at(line.find(' ').expect("a value")),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut labels = BTreeMap::new();
        let value_text = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '}' {
                    end = Some(i);
                    break;
                }
                if c == ',' {
                    continue;
                }
                let key_start = i;
                let mut key_end = i;
                for (j, c) in chars.by_ref() {
                    if c == '=' {
                        key_end = j;
                        break;
                    }
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => panic!("{line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(body[key_start..key_end].to_string(), value);
            }
            let end = end.unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
            &body[end + 1..]
        } else {
            rest
        };
        let value: f64 = value_text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let family = typed.iter().any(|t| {
            name == t
                || name
                    .strip_prefix(t.as_str())
                    .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        });
        assert!(family, "{name} has no TYPE line");
        out.push((name.to_string(), labels, value));
    }
    out
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn trace_follows_an_event_through_a_broker_and_metrics_count_it() {
    let orders = Sink::start().await;
    let audit = Sink::start().await;
    let failing = Sink::start().await;
    let dls = Sink::start().await;
    // orders: fails once, then replies with a new event.
    orders.script([Reply::status(500), Reply::event("order.reply", "reply-1")]);
    failing.default_reply(Reply::status(503));
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
        (
            "t.yaml",
            &[
                trigger(
                    "orders",
                    "b",
                    &orders.url,
                    "filter: {attributes: {type: order.created}}\ndelivery: {retry: 2, backoffPolicy: linear, backoffDelay: PT0.05S}",
                ),
                trigger(
                    "audit",
                    "b",
                    &audit.url,
                    "filter: {attributes: {type: audit.event}}",
                ),
                trigger(
                    "failing",
                    "b",
                    &failing.url,
                    &format!(
                        "filter: {{attributes: {{type: order.created}}}}\ndelivery: {{retry: 1, backoffDelay: PT0.01S, deadLetterSink: {{uri: '{}'}}}}",
                        dls.url
                    ),
                ),
            ]
            .join("---\n"),
        ),
    ]);
    let url = knit.address("brokers", "b").await;
    for t in ["orders", "audit", "failing"] {
        knit.ready("triggers", t).await;
    }
    assert_eq!(send(&url, "order.created", "e1").await.status(), 202);
    dls.wait_for(1).await;

    // The journey through the API.
    let j = settled(&knit, "e1").await;
    assert_eq!(j["ingress"]["kind"], "Broker");
    assert_eq!(j["accepted"]["mode"], "binary");
    assert_eq!(j["tooOld"], false);
    let o = egress(&j, "orders");
    assert_eq!(o["outcome"], "delivered", "{j}");
    assert_eq!(o["retries"], 1);
    assert_eq!(o["reply"]["id"], "reply-1");
    let a = egress(&j, "audit");
    assert_eq!(a["matched"], false);
    assert_eq!(a["clause"], "filter.attributes.type", "{j}");
    assert_eq!(egress(&j, "failing")["outcome"], "deadLettered");

    // The same for people.
    let (code, out, err) = knit.cli(&["trace", "e1", "--broker", "default/b"]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "event e1 (type order.created, source /test)",
        "accepted",
        "at Broker default/b",
        "binary mode",
        "trigger/audit: no match — filter.attributes.type: type is \"order.created\", not \"audit.event\"",
        "trigger/orders: matched",
        "attempt 1",
        "→ 500 in",
        "retry in 50 ms",
        "→ 200 in",
        "new event reply-1 (follow it: knit trace reply-1 --broker default/b)",
        "delivered after 1 retry",
        "dead letter to",
        "dead-lettered after 1 retry",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }

    // The reply, followed: it came back into the same Broker, where no Trigger wanted it.
    let r = settled(&knit, "reply-1").await;
    assert_eq!(r["source"], "/reply");
    let (code, out, err) = knit.cli(&["trace", "reply-1", "--broker", "default/b"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("event reply-1 (type order.reply"), "{out}");
    assert!(out.contains("trigger/orders: no match"), "{out}");

    // An event that goes well, and the failed ones listed.
    send(&url, "audit.event", "fine-1").await;
    audit.wait_for(1).await;
    settled(&knit, "fine-1").await;
    let (code, out, err) = knit.cli(&["get", "events", "--broker", "b", "--failed"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("e1"), "{out}");
    assert!(out.contains("failing=deadLettered"), "{out}");
    assert!(!out.contains("fine-1"), "{out}");
    let (_, out, _) = knit.cli(&["get", "events", "--broker", "b", "--type", "audit.event"]);
    assert!(out.contains("fine-1") && !out.contains("e1 "), "{out}");
    let list = knit.api("/api/v1/events?namespace=default&broker=b").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, ["fine-1", "reply-1", "e1"], "newest first");

    // An id nobody sent.
    let (code, out, err) = knit.cli(&["trace", "nope", "--broker", "default/b"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("not known at default/b (or forgotten"),
        "{err}"
    );

    // Metrics: Prometheus text whose counts match.
    let r = common::http()
        .get(format!("{}/metrics", knit.admin))
        .send()
        .await
        .expect("metrics");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/plain")),
    );
    let text = r.text().await.expect("text");
    let m = parse_prometheus(&text);
    let ingress = |ty: &str| {
        value(
            &m,
            "kn_eventing_ingress_events_total",
            &[
                ("kind", "Broker"),
                ("name", "b"),
                ("cloudevents_type", ty),
                ("http_response_status_code", "202"),
            ],
        )
    };
    assert_eq!(ingress("order.created"), 1.0, "{text}");
    assert_eq!(ingress("order.reply"), 1.0, "{text}");
    assert_eq!(ingress("audit.event"), 1.0, "{text}");
    let fate = |name: &str, outcome: &str| {
        value(
            &m,
            "knit_deliveries_total",
            &[("kind", "Trigger"), ("name", name), ("outcome", outcome)],
        )
    };
    assert_eq!(fate("orders", "delivered"), 1.0, "{text}");
    assert_eq!(fate("orders", "retried"), 1.0, "{text}");
    assert_eq!(fate("failing", "deadLettered"), 1.0, "{text}");
    assert_eq!(fate("audit", "delivered"), 1.0, "{text}");
    let attempts = |name: &str, status: &str| {
        value(
            &m,
            "kn_eventing_dispatch_duration_seconds_count",
            &[("name", name), ("http_response_status_code", status)],
        )
    };
    assert_eq!(attempts("orders", "500"), 1.0, "{text}");
    // The subscriber's 200 and the reply's 202 at the Broker.
    assert_eq!(attempts("orders", "200"), 1.0, "{text}");
    assert_eq!(attempts("orders", "202"), 1.0, "{text}");
    assert_eq!(attempts("failing", "503"), 2.0, "{text}");
    assert_eq!(
        attempts("failing", "202"),
        1.0,
        "the dead-letter sink; {text}"
    );
    let inf = value(
        &m,
        "kn_eventing_dispatch_duration_seconds_bucket",
        &[
            ("name", "orders"),
            ("http_response_status_code", "500"),
            ("le", "+Inf"),
        ],
    );
    assert_eq!(inf, 1.0, "{text}");
    assert!(text.contains("knit_egress_lag{"), "{text}");
    assert!(text.contains("knit_egress_in_flight{"), "{text}");
    assert_eq!(
        value(&m, "knit_journal_events", &[("state", "kept")]),
        3.0,
        "{text}"
    );
}

#[tokio::test]
async fn the_journal_keeps_the_last_n_and_says_when_an_event_is_too_old() {
    let sink = Sink::start().await;
    let (knit, url) =
        common::broker_with_trigger_flags(&sink, "", &["--journal-capacity", "3"]).await;
    for i in 0..5 {
        assert_eq!(send(&url, "t", &format!("n{i}")).await.status(), 202);
    }
    sink.wait_for(5).await;
    let list = knit.api("/api/v1/events?namespace=default&broker=b").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, ["n4", "n3", "n2"]);
    let r = common::http()
        .get(format!("{}/api/v1/events/default/b/n0", knit.admin))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["tooOld"], true, "{body}");
    assert_eq!(body["capacity"], 3);
    let (code, _, err) = knit.cli(&["trace", "n0", "--broker", "b"]);
    assert_eq!(code, 1);
    assert!(err.contains("too old to know"), "{err}");
    let j = settled(&knit, "n4").await;
    assert_eq!(egress(&j, "t")["outcome"], "delivered");
}
