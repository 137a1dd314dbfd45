//! OpenTelemetry traces over OTLP/HTTP: `knit run --otlp-endpoint URL` exports the spans of an
//! event's journey as OTLP JSON to a local receiver; one event with a known `traceparent`
//! through a Broker with a Trigger whose subscriber fails once then replies, and a Trigger
//! whose subscriber always fails into a dead-letter sink. The span tree is checked.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::sink::{Reply, Sink};
use common::{Knit, broker, eventually, trigger};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER: &str = "00f067aa0ba902b7";

/// A local OTLP/HTTP receiver: keeps every span it is sent (and the content type).
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Value>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> &'static str {
    if let Some(ct) = headers.get("content-type").and_then(|v| v.to_str().ok()) {
        r.content_types.lock().expect("lock").push(ct.to_string());
    }
    let json: Value = serde_json::from_str(&body).expect("OTLP JSON");
    let mut spans = r.spans.lock().expect("lock");
    for rs in json["resourceSpans"].as_array().expect("resourceSpans") {
        let service = rs["resource"]["attributes"]
            .as_array()
            .expect("resource attributes")
            .iter()
            .find(|a| a["key"] == "service.name")
            .map(|a| a["value"]["stringValue"].clone());
        assert_eq!(service, Some(Value::from("knit")));
        for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
            spans.extend(ss["spans"].as_array().expect("spans").iter().cloned());
        }
    }
    "{}"
}

async fn start_receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    let a = span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?;
    let v = &a["value"];
    v.get("stringValue").or_else(|| v.get("intValue"))
}

fn find(spans: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<&Value> {
    spans.iter().filter(|s| pred(s)).collect()
}

#[tokio::test]
async fn an_events_journey_is_exported_as_an_otlp_span_tree() {
    let (receiver, endpoint) = start_receiver().await;
    let orders = Sink::start().await;
    let failing = Sink::start().await;
    let dls = Sink::start().await;
    orders.script([
        Reply::status(500),
        Reply::event_with("order.reply", "reply-1", &serde_json::json!({"ok": true})),
    ]);
    failing.default_reply(Reply::status(503));
    let knit = Knit::start_with(
        &[
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
        ],
        &["--otlp-endpoint", &endpoint],
    );
    let url = knit.address("brokers", "b").await;
    for t in ["orders", "failing"] {
        knit.ready("triggers", t).await;
    }
    let traceparent = format!("00-{TRACE}-{SENDER}-01");
    let r = common::http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "e1")
        .header("ce-source", "/test")
        .header("ce-type", "order.created")
        .header("content-type", "application/json")
        .header("traceparent", &traceparent)
        .body(r#"{"n":1}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    dls.wait_for(1).await;

    // The subscriber got the event's trace.
    let got = orders.received();
    let tp = got
        .first()
        .and_then(|r| r.header("traceparent"))
        .expect("traceparent at the subscriber");
    assert!(tp.contains(TRACE), "{tp}");

    // Every span expected: ingress of e1 and of the reply, two deliver spans (orders,
    // failing) for e1 ended, the dead letter.
    let spans = eventually("the spans of e1 and its reply", || async {
        let spans = receiver.spans.lock().expect("lock").clone();
        let delivers = find(&spans, |s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("deliver "))
                && attr(s, "cloudevents.event_id") == Some(&Value::from("e1"))
        });
        let reply_ingress = find(&spans, |s| {
            s["name"] == "ingress Broker/default/b"
                && attr(s, "cloudevents.event_id") == Some(&Value::from("reply-1"))
        });
        let dead = find(&spans, |s| s["name"] == "POST dead-letter");
        (delivers.len() >= 2 && !reply_ingress.is_empty() && !dead.is_empty()).then_some(spans)
    })
    .await;
    let cts = receiver.content_types.lock().expect("lock").clone();
    assert!(cts.iter().all(|c| c == "application/json"), "{cts:?}");

    let e1: Vec<&Value> = find(&spans, |s| s["traceId"] == TRACE);
    for s in &spans {
        for key in ["startTimeUnixNano", "endTimeUnixNano"] {
            assert!(
                s[key].as_str().is_some_and(|t| t.parse::<u64>().is_ok()),
                "{s}"
            );
        }
    }
    let one = |pred: &dyn Fn(&Value) -> bool, what: &str| -> Value {
        let found: Vec<&&Value> = e1.iter().filter(|s| pred(s)).collect();
        assert_eq!(found.len(), 1, "one {what} in {spans:#?}");
        (*found[0]).clone()
    };
    let is_e1 = |s: &Value| attr(s, "cloudevents.event_id") == Some(&Value::from("e1"));

    // The ingress span: a child of the sender's span.
    let ingress = one(
        &|s| s["name"] == "ingress Broker/default/b" && is_e1(s),
        "ingress span",
    );
    assert_eq!(ingress["parentSpanId"], SENDER);
    assert_eq!(ingress["kind"], 2);
    let ingress_id = ingress["spanId"].clone();

    // orders: a deliver span under the ingress, two attempts (500, then 200) under it, a
    // retry event and a reply event.
    let orders_span = one(
        &|s| s["name"] == "deliver Trigger/default/orders",
        "orders deliver span",
    );
    assert_eq!(orders_span["parentSpanId"], ingress_id);
    assert_eq!(
        attr(&orders_span, "knit.fate"),
        Some(&Value::from("delivered"))
    );
    assert_eq!(attr(&orders_span, "knit.attempts"), Some(&Value::from("2")));
    let events: Vec<&str> = orders_span["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(events.contains(&"retry"), "{orders_span}");
    assert!(events.contains(&"reply"), "{orders_span}");
    let attempts = find(&spans, |s| {
        s["parentSpanId"] == orders_span["spanId"] && s["name"] == "POST subscriber"
    });
    let statuses: Vec<&Value> = attempts
        .iter()
        .filter_map(|s| attr(s, "http.response.status_code"))
        .collect();
    assert_eq!(
        statuses,
        [&Value::from("500"), &Value::from("200")],
        "{attempts:#?}"
    );
    assert_eq!(attempts[0]["status"]["code"], 2);
    assert!(
        attempts
            .iter()
            .all(|s| s["traceId"] == TRACE && s["kind"] == 3)
    );
    assert!(
        attempts.iter().all(|s| attr(s, "url.full")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with(&orders.url))),
        "{attempts:#?}"
    );

    // The reply: its ingress span is a child of the orders deliver span, in the same trace.
    let reply = one(
        &|s| {
            s["name"] == "ingress Broker/default/b"
                && attr(s, "cloudevents.event_id") == Some(&Value::from("reply-1"))
        },
        "reply ingress span",
    );
    assert_eq!(reply["parentSpanId"], orders_span["spanId"]);

    // failing: dead-lettered, with the dead-letter attempt under its deliver span.
    let failing_span = one(
        &|s| s["name"] == "deliver Trigger/default/failing" && is_e1(s),
        "failing deliver span",
    );
    assert_eq!(failing_span["parentSpanId"], ingress_id);
    assert_eq!(
        attr(&failing_span, "knit.fate"),
        Some(&Value::from("dead_lettered"))
    );
    assert_eq!(failing_span["status"]["code"], 2);
    let dead = one(&|s| s["name"] == "POST dead-letter", "dead-letter span");
    assert_eq!(dead["parentSpanId"], failing_span["spanId"]);
    assert_eq!(attr(&dead, "knit.leg"), Some(&Value::from("dead-letter")));
}

#[tokio::test]
async fn an_event_without_trace_context_gets_one_its_subscriber_receives() {
    let (receiver, endpoint) = start_receiver().await;
    let sink = Sink::start().await;
    let knit = Knit::start_with(
        &[
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
            (
                "other.yaml",
                &trigger(
                    "other",
                    "b",
                    &sink.url,
                    "filter: {attributes: {type: something.else}}",
                ),
            ),
        ],
        &["--otlp-endpoint", &endpoint],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    knit.ready("triggers", "other").await;
    let r = common::send(&url, "no.context", "n1").await;
    assert_eq!(r.status(), 202);
    let got = sink.wait_for(1).await;
    let tp = got[0]
        .header("traceparent")
        .expect("a traceparent at the subscriber");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    let (trace, parent) = (parts[1].to_string(), parts[2].to_string());
    // Knit's ingress span is a root in that trace, and the subscriber's parent is that span.
    let ingress = eventually("the ingress span", || async {
        receiver
            .spans
            .lock()
            .expect("lock")
            .iter()
            .find(|s| {
                s["name"] == "ingress Broker/default/b"
                    && attr(s, "cloudevents.event_id") == Some(&Value::from("n1"))
            })
            .cloned()
    })
    .await;
    assert_eq!(ingress["traceId"], Value::from(trace.as_str()));
    assert_eq!(ingress["spanId"], Value::from(parent.as_str()));
    assert_eq!(
        ingress["parentSpanId"].as_str().unwrap_or_default(),
        "",
        "a root: {ingress}"
    );
    // Filter evaluation: one `filter` event per Trigger, with the deciding clause.
    let filters: Vec<&Value> = ingress["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["name"] == "filter").collect())
        .unwrap_or_default();
    assert_eq!(filters.len(), 2, "{ingress}");
    let other = filters
        .iter()
        .find(|e| attr(e, "knit.egress") == Some(&Value::from("Trigger/default/other")))
        .expect("the other Trigger's filter event");
    assert_eq!(
        other["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["key"] == "knit.matched"))
            .map(|a| a["value"]["boolValue"].clone()),
        Some(Value::from(false)),
        "{other}"
    );
    assert_eq!(
        attr(other, "knit.clause"),
        Some(&Value::from("filter.attributes.type"))
    );
}
