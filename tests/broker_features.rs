//! Broker features beyond the checklist: filter dialects end to end, flow control,
//! backpressure, statuses, and events published with the real Python and JavaScript
//! CloudEvents SDKs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::sink::{Reply, Sink};
use common::{Knit, broker, condition, eventually, post_binary, repo, send, trigger};

#[tokio::test]
async fn filter_dialects_and_cesql_route_events() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
        (
            "prefix.yaml",
            &trigger(
                "prefix",
                "b",
                &format!("{}/prefix", sink.url),
                "filters: [{prefix: {type: com.github.}}]",
            ),
        ),
        (
            "cesql.yaml",
            &trigger(
                "cesql",
                "b",
                &format!("{}/cesql", sink.url),
                "filters:\n- cesql: \"source LIKE '%commerce%' AND type IN ('order.created', 'order.updated')\"",
            ),
        ),
        (
            "not.yaml",
            &trigger(
                "not",
                "b",
                &format!("{}/not", sink.url),
                "filters: [{not: {exact: {type: com.github.push}}}, {exact: {myext: 'yes'}}]",
            ),
        ),
        (
            "any.yaml",
            &trigger(
                "any",
                "b",
                &format!("{}/any", sink.url),
                "filters: [{any: [{suffix: {type: .created}}, {exact: {subject: s1}}]}]",
            ),
        ),
        (
            "legacy.yaml",
            &trigger(
                "legacy",
                "b",
                &format!("{}/legacy", sink.url),
                "filter: {attributes: {myext: ''}}",
            ),
        ),
    ]);
    let url = knit.address("brokers", "b").await;
    for t in ["prefix", "cesql", "not", "any", "legacy"] {
        knit.ready("triggers", t).await;
    }
    let ev =
        |id: &'static str, ty: &'static str, source: &'static str, ext: Option<&'static str>| {
            let url = url.clone();
            async move {
                let mut a = vec![
                    ("specversion", "1.0"),
                    ("id", id),
                    ("source", source),
                    ("type", ty),
                ];
                if let Some(e) = ext {
                    a.push(("myext", e));
                }
                assert_eq!(post_binary(&url, &a, None, b"").await.status(), 202);
            }
        };
    ev("1", "com.github.push", "/gh", None).await; // prefix
    ev("2", "order.created", "/ecommerce/x", None).await; // cesql, any
    ev("3", "order.deleted", "/ecommerce/x", Some("yes")).await; // not, legacy
    ev("4", "com.github.push", "/gh", Some("yes")).await; // prefix, legacy (not: excluded)
    let got = sink.wait_for(7).await;
    let mut routes: Vec<(String, String)> = got.iter().map(|r| (r.path.clone(), r.id())).collect();
    routes.sort();
    let want: Vec<(String, String)> = [
        ("/any", "2"),
        ("/cesql", "2"),
        ("/legacy", "3"),
        ("/legacy", "4"),
        ("/not", "3"),
        ("/prefix", "1"),
        ("/prefix", "4"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(routes, want);
}

#[tokio::test]
async fn a_thousand_triggers_route_by_type() {
    let sink = Sink::start().await;
    let mut triggers = String::new();
    for i in 0..1000 {
        triggers.push_str(&trigger(
            &format!("t{i}"),
            "b",
            &format!("{}/t{i}", sink.url),
            &format!("filter: {{attributes: {{type: type{i}}}}}"),
        ));
        triggers.push_str("---\n");
    }
    let knit = Knit::start(&[("b.yaml", &broker("b", "")), ("t.yaml", &triggers)]);
    let patience = std::time::Duration::from_secs(120);
    knit.ready_within("brokers", "b", patience).await;
    let url = knit.address("brokers", "b").await;
    // Every Trigger reads on its own: the one that matters must be Ready, not just the last.
    knit.ready_within("triggers", "t999", patience).await;
    knit.ready_within("triggers", "t777", patience).await;
    let r = send(&url, "type777", "x").await;
    assert_eq!(r.status().as_u16(), 202);
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].path, "/t777");
}

/// Trigger `t` on broker `b` to `uri` with one annotation.
fn annotated_trigger(uri: &str, annotation: &str, value: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n  annotations: {{{annotation}: '{value}'}}\nspec:\n  broker: b\n  subscriber: {{uri: '{uri}'}}\n"
    )
}

#[tokio::test]
async fn max_in_flight_caps_concurrent_deliveries() {
    let sink = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        delay: Duration::from_millis(200),
        ..Default::default()
    });
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
        (
            "t.yaml",
            &annotated_trigger(&sink.url, "knit.dev/max-in-flight", "2"),
        ),
    ]);
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    for i in 0..8 {
        send(&url, "t", &format!("m{i}")).await;
    }
    sink.wait_for(8).await;
    assert_eq!(sink.max_in_flight(), 2);
}

#[tokio::test]
async fn rate_limit_spaces_deliveries() {
    let sink = Sink::start().await;
    // One delivery at a time, so after the first every one goes out on the same warm
    // connection and arrival times follow start times; without the rate limit the five would
    // take milliseconds.
    let t = annotated_trigger(&sink.url, "knit.dev/rate-limit", "10").replace(
        "annotations: {knit.dev/rate-limit: '10'}",
        "annotations: {knit.dev/rate-limit: '10', knit.dev/max-in-flight: '1'}",
    );
    let knit = Knit::start(&[("b.yaml", &broker("b", "")), ("t.yaml", &t)]);
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    // One batch, so all five are in the log at once whatever the machine's load (sent one by
    // one on a slow machine, the limiter's tokens would refill between them).
    let batch: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            serde_json::json!({"specversion": "1.0", "id": format!("r{i}"), "source": "/test", "type": "t"})
        })
        .collect();
    let r = common::http()
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(serde_json::Value::Array(batch).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let got = sink.wait_for(5).await;
    // The first delivery also opens the connection: measure the spacing after it.
    let span = got[4].at - got[1].at;
    assert!(
        span >= Duration::from_millis(280),
        "deliveries 2 to 5 at 10/s span at least 300 ms, got {span:?}"
    );
}

#[tokio::test]
async fn statuses_report_knative_reasons_and_resolved_urls() {
    let dls = Sink::start().await;
    let knit = Knit::start(&[
        (
            "b.yaml",
            &broker(
                "b",
                &format!("delivery: {{deadLetterSink: {{uri: '{}'}}}}", dls.url),
            ),
        ),
        (
            "t1.yaml",
            &trigger("t1", "missing", "http://127.0.0.1:1/", ""),
        ),
        (
            "t2.yaml",
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t2}\nspec:\n  broker: b\n  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: nope}}\n",
        ),
        ("t3.yaml", &trigger("t3", "b", "http://127.0.0.1:1/", "")),
    ]);
    let b = knit.ready("brokers", "b").await;
    assert_eq!(b["status"]["deadLetterSinkUri"], dls.url.as_str());
    let t3 = knit.ready("triggers", "t3").await;
    assert_eq!(t3["status"]["subscriberUri"], "http://127.0.0.1:1/");
    assert_eq!(t3["status"]["deadLetterSinkUri"], dls.url.as_str());
    let t1 = eventually("t1 status", || async {
        knit.object("triggers", "t1")
            .await
            .filter(|o| o.get("status").is_some())
    })
    .await;
    assert_eq!(
        condition(&t1, "Ready").expect("Ready")["reason"],
        "BrokerDoesNotExist"
    );
    let t2 = eventually("t2 status", || async {
        knit.object("triggers", "t2")
            .await
            .filter(|o| o.get("status").is_some())
    })
    .await;
    assert_eq!(
        condition(&t2, "Ready").expect("Ready")["reason"],
        "Unable to get the Subscriber's URI"
    );
    assert!(t2["status"].get("subscriberUri").is_none());
    // The trigger becomes Ready once its broker appears.
    knit.write("b2.yaml", &broker("missing", ""));
    knit.ready("triggers", "t1").await;
}

fn clients_note() -> &'static str {
    "needs the CloudEvents SDK clients: run scripts/test, which installs them"
}

#[tokio::test]
#[ignore = "needs the Python and JavaScript CloudEvents SDKs (scripts/test installs them)"]
async fn python_sdk_events_arrive_in_binary_and_structured_mode() {
    let python = std::env::var("KNIT_PYTHON").unwrap_or_else(|_| panic!("{}", clients_note()));
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
        ("t.yaml", &trigger("t", "b", &sink.url, "")),
    ]);
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    for mode in ["binary", "structured"] {
        let out = Command::new(&python)
            .arg(repo("tests/clients/python/send.py"))
            .args([
                &url,
                mode,
                &format!("py-{mode}"),
                "com.example.py",
                "/python",
                r#"{"hello": "python"}"#,
                "myext=a b",
            ])
            .output()
            .expect("python");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "202",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = sink.wait_for(2).await;
    for mode in ["binary", "structured"] {
        let r = got
            .iter()
            .find(|r| r.id() == format!("py-{mode}"))
            .expect(mode);
        assert_eq!(
            r.ext("myext").as_deref(),
            Some("a b"),
            "{mode}: percent-encoded header decoded"
        );
        let data: serde_json::Value = serde_json::from_slice(&r.body).expect("json data");
        assert_eq!(data["hello"], "python");
    }
}

#[tokio::test]
#[ignore = "needs the Python and JavaScript CloudEvents SDKs (scripts/test installs them)"]
async fn js_sdk_chunked_events_arrive_in_binary_and_structured_mode() {
    let clients = std::env::var("KNIT_JS_CLIENTS").unwrap_or_else(|_| panic!("{}", clients_note()));
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
        ("t.yaml", &trigger("t", "b", &sink.url, "")),
    ]);
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    for mode in ["binary", "structured"] {
        let out = Command::new("node")
            .current_dir(&clients)
            .arg("send.mjs")
            .args([
                &url,
                mode,
                &format!("js-{mode}"),
                "com.example.js",
                "/js",
                r#"{"hello": "js"}"#,
                "myext=v",
            ])
            .output()
            .expect("node");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("sent"));
    }
    let got = sink.wait_for(2).await;
    for mode in ["binary", "structured"] {
        let r = got
            .iter()
            .find(|r| r.id() == format!("js-{mode}"))
            .expect(mode);
        assert_eq!(r.ext("myext").as_deref(), Some("v"));
        let data: serde_json::Value = serde_json::from_slice(&r.body).expect("json data");
        assert_eq!(data["hello"], "js");
    }
}
