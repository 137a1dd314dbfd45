//! CloudPubSubSource end to end through the `knit` binary and the real Google Pub/Sub emulator
//! (`PUBSUB_EMULATOR_HOST`, started once per run by scripts/test and inherited by knit):
//! messages published with attributes through the emulator's REST API arrive at a recording
//! sink behind a Broker and a Trigger as knative-gcp's events, with the message in push format
//! as data; the status names Knit's subscription; a message the sink keeps refusing is not
//! acknowledged and arrives later (redelivered by Pub/Sub, nothing lost); deleting the source
//! deletes its subscription. Each test uses its own project and topic names.
//!
//! Under `CI=true` a missing emulator fails the tests; elsewhere they are skipped, loudly.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::sink::{Reply, Sink};
use common::{Knit, broker, eventually, http, indent, trigger};
use serde_json::{Value, json};

fn emulator() -> Option<String> {
    match std::env::var("PUBSUB_EMULATOR_HOST") {
        Ok(h) if !h.is_empty() => Some(h),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PUBSUB_EMULATOR_HOST is not set: scripts/test starts the emulator (scripts/pubsub-emulator)"
            );
            eprintln!(
                "!!! SKIPPED: PUBSUB_EMULATOR_HOST is not set (run `export PUBSUB_EMULATOR_HOST=$(scripts/pubsub-emulator)`)"
            );
            None
        }
    }
}

/// Distinct names per test: the tests share one emulator.
fn names() -> (String, String) {
    let s = &uuid::Uuid::new_v4().simple().to_string()[..10];
    (format!("proj-{s}"), format!("topic-{s}"))
}

fn source(name: &str, project: &str, topic: &str, sink: &str) -> String {
    format!(
        "apiVersion: events.cloud.google.com/v1\nkind: CloudPubSubSource\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{}\n",
        indent(
            &format!(
                "project: {project}\ntopic: {topic}\nackDeadline: 30s\nretentionDuration: 1h\nsink:\n{}\n",
                indent(sink, 2)
            ),
            2
        )
    )
}

/// Publish `(data, attributes)` messages through the emulator's REST API; their message IDs.
async fn publish(
    host: &str,
    project: &str,
    topic: &str,
    messages: &[(Vec<u8>, BTreeMap<String, String>)],
) -> Vec<String> {
    let body = json!({
        "messages": messages.iter().map(|(data, attrs)| {
            let mut m = json!({"data": base64::engine::general_purpose::STANDARD.encode(data)});
            if !attrs.is_empty() {
                m["attributes"] = json!(attrs);
            }
            m
        }).collect::<Vec<_>>()
    });
    let r = http()
        .post(format!(
            "http://{host}/v1/projects/{project}/topics/{topic}:publish"
        ))
        .timeout(std::time::Duration::from_secs(10))
        .json(&body)
        .send()
        .await
        .expect("publish");
    assert!(r.status().is_success(), "publish: {}", r.status());
    let v: Value = r.json().await.expect("json");
    v["messageIds"]
        .as_array()
        .expect("messageIds")
        .iter()
        .map(|i| i.as_str().unwrap_or_default().to_string())
        .collect()
}

/// GET a subscription from the emulator: its HTTP status.
async fn subscription_status(host: &str, project: &str, sub: &str) -> u16 {
    http()
        .get(format!(
            "http://{host}/v1/projects/{project}/subscriptions/{sub}"
        ))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .expect("GET subscription")
        .status()
        .as_u16()
}

#[tokio::test]
async fn published_messages_reach_a_trigger_in_push_format() {
    let Some(host) = emulator() else { return };
    let (project, topic) = names();
    let sink = Sink::start().await;
    let files = [
        ("b.yaml", broker("b", "")),
        ("t.yaml", trigger("t", "b", &sink.url, "")),
        (
            "ps.yaml",
            source(
                "ps",
                &project,
                &topic,
                "ref:\n  apiVersion: eventing.knative.dev/v1\n  kind: Broker\n  name: b",
            ),
        ),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let knit = Knit::start(&refs);
    knit.ready("triggers", "t").await;
    let ps = knit.ready("cloudpubsubsources", "ps").await;
    let sub = ps["status"]["subscriptionId"]
        .as_str()
        .unwrap_or_else(|| panic!("status.subscriptionId: {ps}"))
        .to_string();
    assert_eq!(ps["status"]["projectId"], project.as_str(), "{ps}");
    assert_eq!(subscription_status(&host, &project, &sub).await, 200);

    const N: usize = 20;
    let messages: Vec<(Vec<u8>, BTreeMap<String, String>)> = (0..N)
        .map(|i| {
            let data = if i % 2 == 0 {
                format!("{{\"n\":{i}}}").into_bytes()
            } else {
                vec![0, 255, i as u8, 128]
            };
            let attrs = if i == 0 {
                BTreeMap::new()
            } else {
                BTreeMap::from([
                    ("n".to_string(), i.to_string()),
                    ("kind".to_string(), "test".to_string()),
                ])
            };
            (data, attrs)
        })
        .collect();
    let ids = publish(&host, &project, &topic, &messages).await;
    assert_eq!(ids.len(), N);

    let got = sink.wait_for(N).await;
    let mut by_id = BTreeMap::new();
    for r in &got {
        let ce = |n: &str| r.header(&format!("ce-{n}")).unwrap_or_default();
        assert_eq!(ce("type"), "google.cloud.pubsub.topic.v1.messagePublished");
        assert_eq!(
            ce("source"),
            format!("//pubsub.googleapis.com/projects/{project}/topics/{topic}")
        );
        assert_eq!(
            ce("dataschema"),
            "https://raw.githubusercontent.com/googleapis/google-cloudevents/master/proto/google/events/cloud/pubsub/v1/data.proto"
        );
        assert!(!ce("time").is_empty(), "time is the publish time");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        let data: Value = serde_json::from_slice(&r.body).expect("JSON data");
        by_id.insert(ce("id"), (data, ce("time")));
    }
    assert_eq!(by_id.len(), N, "duplicates or losses: {:?}", by_id.keys());
    for (i, id) in ids.iter().enumerate() {
        let (data, time) = by_id
            .get(id)
            .unwrap_or_else(|| panic!("message {id} missing"));
        assert_eq!(data["subscription"], sub.as_str());
        let m = &data["message"];
        assert_eq!(m["messageId"], id.as_str());
        assert_eq!(m["publishTime"], time.as_str());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(m["data"].as_str().unwrap_or_default())
            .expect("base64 data");
        assert_eq!(bytes, messages[i].0, "message {i}: data");
        if messages[i].1.is_empty() {
            assert!(
                m.get("attributes").is_none(),
                "empty attributes omitted: {m}"
            );
        } else {
            assert_eq!(m["attributes"], json!(messages[i].1), "message {i}");
        }
    }
}

#[tokio::test]
async fn a_message_the_sink_refuses_is_redelivered_and_the_subscription_goes_with_the_source() {
    let Some(host) = emulator() else { return };
    let (project, topic) = names();
    let sink = Sink::start().await;
    // Every attempt fails until the sink was asked 4 times: more than one delivery of the
    // source's (its retries exhausted), so the message must have been nacked and pulled again.
    sink.script(std::iter::repeat_n(Reply::status(500), 4));
    let files = [(
        "ps.yaml",
        source("ps", &project, &topic, &format!("uri: {}", sink.url)),
    )];
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let knit = Knit::start(&refs);
    let ps = knit.ready("cloudpubsubsources", "ps").await;
    let sub = ps["status"]["subscriptionId"]
        .as_str()
        .unwrap_or_else(|| panic!("status.subscriptionId: {ps}"))
        .to_string();

    let ids = publish(
        &host,
        &project,
        &topic,
        &[(b"precious".to_vec(), BTreeMap::new())],
    )
    .await;
    let id = ids.first().expect("a message id").clone();
    let accepted = eventually("the message to be accepted after refusals", || async {
        let all = sink.received();
        (all.len() >= 5).then_some(all)
    })
    .await;
    assert!(
        accepted
            .iter()
            .all(|r| r.header("ce-id").as_deref() == Some(&*id))
    );
    assert!(
        knit.logs().contains("nacked"),
        "a dropped delivery is logged: {}",
        knit.logs()
    );
    // Accepted once, then acknowledged: no further deliveries. Publish a marker and wait for
    // it: the first message must not come again before it.
    let marker = publish(
        &host,
        &project,
        &topic,
        &[(b"marker".to_vec(), BTreeMap::new())],
    )
    .await;
    let all = eventually("the marker", || async {
        let all = sink.received();
        all.iter()
            .any(|r| r.header("ce-id") == marker.first().cloned())
            .then_some(all)
    })
    .await;
    assert_eq!(all.len(), 6, "the accepted message came again");

    // Deleting the source deletes its subscription (the topic stays).
    assert_eq!(subscription_status(&host, &project, &sub).await, 200);
    knit.remove("ps.yaml");
    eventually("the subscription to be deleted", || async {
        (subscription_status(&host, &project, &sub).await == 404).then_some(())
    })
    .await;
    let topic_status = http()
        .get(format!(
            "http://{host}/v1/projects/{project}/topics/{topic}"
        ))
        .send()
        .await
        .expect("GET topic")
        .status();
    assert_eq!(topic_status, 200);
}
