//! Sequence and Parallel, end to end, with the real Knative samples under
//! `../shared/knative-samples/` (their PingSource runs for real). The samples' Knative Services (appender, filter and transformer
//! images, event_display) cannot run here; each reference to one is pointed at a recording
//! stand-in that behaves as the image does, and everything else is loaded as written.
//!
//! Each scenario runs over every [`Backend`] (`flows_suite!`): as written (InMemoryChannel)
//! for memory; on Kafka and NATS with the samples' `channelTemplate` left out, so the flows get
//! the default channel of `knit run --kafka` / `--nats` (KafkaChannel, NatsJetStreamChannel)
//! and the default-class Broker of the broker sample is on that backend too.

mod common;

use std::collections::BTreeMap;

use common::route::Backend;
use common::sink::{Received, Reply, Sink};
use common::{broker, post_binary, shared_dir};
use serde_json::{Value, json};

/// Load a sample file with every reference to a Knative Service named in `stand_ins` (and
/// every URI whose host is named there) replaced by the stand-in URL; for a durable backend
/// `b`, without its flows' `channelTemplate` (so they get `b`'s default channel).
fn sample(b: Backend, file: &str, stand_ins: &BTreeMap<&str, String>) -> String {
    let text =
        std::fs::read_to_string(shared_dir().join("knative-samples").join(file)).expect("sample");
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("sample YAML");
    docs.into_iter()
        .map(|mut d| {
            rewrite(&mut d, stand_ins);
            if b != Backend::Memory
                && let Some(spec) = d.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.remove("channelTemplate");
            }
            format!("---\n{}", serde_saphyr::to_string(&d).expect("yaml"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rewrite(v: &mut Value, stand_ins: &BTreeMap<&str, String>) {
    match v {
        Value::Object(map) => {
            let target = map.get("ref").and_then(|r| {
                let serving = r
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.starts_with("serving.knative.dev"));
                let name = r.get("name").and_then(Value::as_str)?;
                if serving {
                    stand_ins.get(name).cloned()
                } else {
                    None
                }
            });
            if let Some(url) = target {
                map.remove("ref");
                map.insert("uri".into(), Value::String(url));
            }
            if let Some(Value::String(uri)) = map.get_mut("uri")
                && let Ok(u) = url::Url::parse(uri)
            {
                let host = u
                    .host_str()
                    .unwrap_or_default()
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some(base) = stand_ins.get(host.as_str()) {
                    *uri = format!("{base}{}", u.path());
                }
            }
            map.values_mut().for_each(|x| rewrite(x, stand_ins));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| rewrite(x, stand_ins)),
        _ => {}
    }
}

fn message(r: &Received) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn minute(r: &Received) -> i64 {
    let t: jiff::Timestamp = r
        .header("ce-time")
        .expect("time")
        .parse()
        .expect("RFC 3339");
    t.as_second() / 60
}

/// The stand-ins: the appender image (appends its MESSAGE, optionally sets TYPE), the
/// filter and switcher images (pass the event when its minute matches), the transformers,
/// and event_display (records).
fn stand_in_behaviour(sink: &Sink) {
    sink.respond_with(|r: &Received| {
        let path = r.path.trim_start_matches('/').to_string();
        let ty = r.header("ce-type").unwrap_or_default();
        let id = r.id();
        let appended = |n: u32, new_type: Option<&str>| {
            let m = format!("{} - Handled by {n}", message(r));
            Reply::event_with(
                new_type.unwrap_or(&ty),
                &format!("{id}-{n}"),
                &json!({"message": m}),
            )
        };
        let pass = |even: bool| {
            if (minute(r) % 2 == 0) == even {
                let mut reply = Reply::event_with(
                    &ty,
                    &id,
                    &serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                );
                reply
                    .headers
                    .push(("ce-time".into(), r.header("ce-time").unwrap_or_default()));
                reply
            } else {
                Reply::status(202)
            }
        };
        match path.as_str() {
            "first" => appended(0, None),
            "second" => appended(1, None),
            "third" => appended(2, Some("samples.http.mod3")),
            "fourth" => appended(3, None),
            "fifth" => appended(4, None),
            "sixth" => appended(5, None),
            "even-filter" | "me-even-odd-switcher/0" => pass(true),
            "odd-filter" | "me-even-odd-switcher/1" => pass(false),
            "even-transformer" | "me-even-transformer" => Reply::event_with(
                "transformed",
                &format!("{id}-t"),
                &json!({"message": "we are even!"}),
            ),
            "odd-transformer" | "me-odd-transformer" => Reply::event_with(
                "transformed",
                &format!("{id}-t"),
                &json!({"message": "this is odd!"}),
            ),
            _ => Reply::status(202),
        }
    });
}

fn stand_ins(sink: &Sink, names: &[&'static str]) -> BTreeMap<&'static str, String> {
    names
        .iter()
        .map(|n| (*n, format!("{}/{n}", sink.url)))
        .collect()
}

fn at(display: &Sink, path: &str) -> Vec<Received> {
    display
        .received()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

async fn sequence_with_broker_and_trigger_sample(b: Backend) {
    let sink = Sink::start().await;
    stand_in_behaviour(&sink);
    let s = stand_ins(&sink, &["first", "second", "third", "sequence-display"]);
    let dir = "docs__docs__versioned__eventing__flows__sequence__sequence-with-broker-trigger__";
    let files: Vec<(String, String)> = [
        "ping-source",
        "steps",
        "sequence",
        "trigger",
        "display-trigger",
    ]
    .iter()
    .map(|f| {
        (
            format!("{f}.yaml"),
            sample(b, &format!("{dir}{f}.yaml"), &s),
        )
    })
    .map(|(f, text)| {
        let text = text.replace("*/2 * * * *", "*/2 * * * * *");
        (f, text)
    })
    .chain([("broker.yaml".to_string(), broker("default", ""))])
    .collect();
    assert!(
        files.iter().any(|(_, t)| t.contains("*/2 * * * * *")),
        "the sample's schedule was found and shortened"
    );
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let knit = b.start(&refs, &[]);
    knit.address("brokers", "default").await;
    let broker = knit.ready("brokers", "default").await;
    let on_log = broker["status"]["annotations"]
        .as_object()
        .is_some_and(|a| !a.is_empty());
    assert_eq!(on_log, b != Backend::Memory, "the broker's log: {broker}");
    knit.ready("sequences", "sequence").await;
    knit.ready("triggers", "sequence-trigger").await;
    knit.ready("triggers", "display-trigger").await;
    // The PingSource runs as written, every two seconds instead of every two minutes.
    let ping = knit.ready("pingsources", "ping-source").await;
    let sink_uri = ping["status"]["sinkUri"].as_str().unwrap_or_default();
    assert!(sink_uri.ends_with("/default/default"), "{sink_uri}");
    let shown = common::eventually("the display to get the sequence's output", || async {
        at(&sink, "/sequence-display").into_iter().next()
    })
    .await;
    assert_eq!(
        message(&shown),
        "Hello world! - Handled by 0 - Handled by 1 - Handled by 2"
    );
    assert_eq!(
        shown.header("ce-type").as_deref(),
        Some("samples.http.mod3")
    );
    // What entered the sequence is the PingSource's own event.
    let first = at(&sink, "/first").into_iter().next().expect("first step");
    assert_eq!(
        first.header("ce-source").as_deref(),
        Some("/apis/v1/namespaces/default/pingsources/ping-source")
    );
    assert_eq!(
        first.header("ce-type").as_deref(),
        Some("dev.knative.sources.ping")
    );
    let seq = knit.ready("sequences", "sequence").await;
    assert_eq!(
        seq["status"]["subscriptionStatuses"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(
        seq["status"]["channelStatuses"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        seq["status"]["channelStatuses"][0]["channel"]["name"],
        "sequence-kn-sequence-0"
    );
    assert_eq!(
        seq["status"]["channelStatuses"][0]["channel"]["kind"],
        b.kind()
    );
    assert_eq!(
        seq["status"]["subscriptionStatuses"][2]["ready"]["status"],
        "True"
    );
}

async fn sequence_reply_to_sequence_sample(b: Backend) {
    let sink = Sink::start().await;
    stand_in_behaviour(&sink);
    let s = stand_ins(
        &sink,
        &[
            "first",
            "second",
            "third",
            "fourth",
            "fifth",
            "sixth",
            "event-display",
        ],
    );
    let dir = "docs__docs__versioned__eventing__flows__sequence__sequence-reply-to-sequence__";
    let one = sample(b, &format!("{dir}sequence1.yaml"), &s);
    let two = sample(b, &format!("{dir}sequence2.yaml"), &s);
    let knit = b.start(&[("sequence1.yaml", &one), ("sequence2.yaml", &two)], &[]);
    knit.ready("sequences", "second-sequence").await;
    let url = knit.address("sequences", "first-sequence").await;
    post_binary(
        &url,
        &[
            ("specversion", "1.0"),
            ("id", "s2s"),
            ("source", "/test"),
            ("type", "samples.http"),
        ],
        Some("application/json"),
        br#"{"message": "Hello"}"#,
    )
    .await;
    let shown = common::eventually("the display", || async {
        at(&sink, "/event-display").into_iter().next()
    })
    .await;
    assert_eq!(
        message(&shown),
        "Hello - Handled by 0 - Handled by 1 - Handled by 2 - Handled by 3 - Handled by 4 - Handled by 5"
    );
}

async fn parallel_scenario(
    b: Backend,
    file: &str,
    names: &[&'static str],
    display: &str,
    name: &str,
) {
    let sink = Sink::start().await;
    stand_in_behaviour(&sink);
    let s = stand_ins(&sink, names);
    let mut files = vec![(
        "parallel.yaml".to_string(),
        sample(b, &format!("{file}parallel.yaml"), &s),
    )];
    if file.contains("multiple-branches") {
        files.push((
            "filters.yaml".to_string(),
            sample(b, &format!("{file}filters.yaml"), &s),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let knit = b.start(&refs, &[]);
    let url = knit.address("parallels", name).await;
    // One event in an even minute and one in an odd minute.
    for (id, time) in [
        ("even", "2024-01-01T10:02:30Z"),
        ("odd", "2024-01-01T10:03:30Z"),
    ] {
        let r = post_binary(
            &url,
            &[
                ("specversion", "1.0"),
                ("id", id),
                ("source", "/ping"),
                ("type", "samples"),
                ("time", time),
            ],
            Some("application/json"),
            br#"{"message": "Even or odd?"}"#,
        )
        .await;
        assert_eq!(r.status(), 202);
    }
    let shown = common::eventually("both branches to reach the display", || async {
        let got = at(&sink, display);
        (got.len() >= 2).then_some(got)
    })
    .await;
    let mut messages: Vec<String> = shown.iter().map(message).collect();
    messages.sort();
    assert_eq!(messages, vec!["this is odd!", "we are even!"]);
    let p = knit.ready("parallels", name).await;
    assert_eq!(
        p["status"]["branchStatuses"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        p["status"]["ingressChannelStatus"]["channel"]["name"],
        format!("{name}-kn-parallel")
    );
    assert_eq!(
        p["status"]["ingressChannelStatus"]["channel"]["kind"],
        b.kind()
    );
    assert_eq!(
        p["status"]["branchStatuses"][1]["filterSubscriptionStatus"]["subscription"]["name"],
        format!("{name}-kn-parallel-filter-1")
    );
}

async fn parallel_multiple_branches_sample(b: Backend) {
    parallel_scenario(
        b,
        "docs__code-samples__eventing__parallel__multiple-branches__",
        &[
            "even-filter",
            "odd-filter",
            "even-transformer",
            "odd-transformer",
            "event-display",
        ],
        "/event-display",
        "odd-even-parallel",
    )
    .await;
}

async fn parallel_mutual_exclusivity_sample(b: Backend) {
    parallel_scenario(
        b,
        "docs__code-samples__eventing__parallel__mutual-exclusivity__",
        &[
            "me-even-odd-switcher",
            "me-even-transformer",
            "me-odd-transformer",
            "me-event-display",
        ],
        "/me-event-display",
        "me-odd-even-parallel",
    )
    .await;
}

macro_rules! flows_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn sequence_with_broker_and_trigger_sample() {
                super::sequence_with_broker_and_trigger_sample($backend).await
            }
            #[tokio::test]
            async fn sequence_reply_to_sequence_sample() {
                super::sequence_reply_to_sequence_sample($backend).await
            }
            #[tokio::test]
            async fn parallel_multiple_branches_sample() {
                super::parallel_multiple_branches_sample($backend).await
            }
            #[tokio::test]
            async fn parallel_mutual_exclusivity_sample() {
                super::parallel_mutual_exclusivity_sample($backend).await
            }
        }
    };
}

flows_suite!(memory, Backend::Memory);
#[cfg(feature = "kafka")]
flows_suite!(kafka, Backend::Kafka);
#[cfg(feature = "nats")]
flows_suite!(nats, Backend::Nats);
