//! `knit replay trigger`, end to end through the binary with a real Kafka-protocol broker
//! (nisshi): a Kafka Broker with two Triggers; a replay re-delivers exactly the matching events
//! of the range to the one Trigger, each marked with `knitreplay`, while the other Trigger gets
//! nothing and neither Trigger's consumer group moves; time, offset and `partition:offset`
//! bounds hold; a memory Broker refuses.

mod common;

use std::collections::BTreeSet;

use common::kafka::offsets;
use common::route::Backend;
use common::sink::{Received, Sink};
use common::{Knit, cli_env, eventually, http, send, trigger};
use serde_json::json;

const TOPIC: &str = "knative-broker-default-b";
const GROUP_A: &str = "knative-trigger-default-ta";
const GROUP_B: &str = "knative-trigger-default-tb";
const REFUSAL: &str = "replay needs a durable log: Broker default/b keeps its events in memory (use the Kafka broker class or knit run --kafka)";

/// A Kafka Broker `b` whose topic has `partitions`, Trigger `ta` (type `a`) to one sink and
/// `tb` (type `b`) to another.
async fn start(partitions: u32) -> (Knit, Sink, Sink, String) {
    let (sink_a, sink_b) = (Sink::start().await, Sink::start().await);
    let config = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kafka-broker-config, namespace: knative-eventing}}\ndata:\n  default.topic.partitions: \"{partitions}\"\n"
    );
    let b = Backend::Kafka;
    let knit = b.start(
        &[
            ("cm.yaml", &config),
            // (Named: a Broker without `spec.config` is given the channel-based default.)
            (
                "b.yaml",
                &b.broker(
                    "b",
                    "config: {apiVersion: v1, kind: ConfigMap, name: kafka-broker-config, namespace: knative-eventing}",
                ),
            ),
            (
                "ta.yaml",
                &trigger("ta", "b", &sink_a.url, "filter:\n  attributes:\n    type: a"),
            ),
            (
                "tb.yaml",
                &trigger("tb", "b", &sink_b.url, "filter:\n  attributes:\n    type: b"),
            ),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "ta").await;
    knit.ready("triggers", "tb").await;
    (knit, sink_a, sink_b, url)
}

/// Send events of these (type, id)s, each accepted.
async fn send_all(url: &str, events: &[(&str, &str)]) {
    for (ty, id) in events {
        assert_eq!(send(url, ty, id).await.status(), 202, "{id}");
    }
}

/// Wait until `group` committed everything the topic holds; returns its offsets.
async fn settled(knit: &Knit, group: &str) -> Vec<(i64, i64)> {
    let bootstrap = knit.kafka.as_ref().expect("kafka").bootstrap.clone();
    eventually(&format!("{group} to commit everything"), || async {
        let o = offsets(&bootstrap, group, TOPIC).await;
        o.iter().all(|(c, end)| c == end).then_some(o)
    })
    .await
}

/// `knit replay ARGS...` against `knit` (off the test's runtime: the sinks must keep
/// answering meanwhile): (exit code, stdout, stderr).
async fn replay(knit: &Knit, args: &[&str]) -> (i32, String, String) {
    let admin = knit.admin.clone();
    let args: Vec<String> = ["replay", "trigger"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli_env(&args, &[("KNIT_SERVER", admin.as_str())])
    })
    .await
    .expect("the CLI ran")
}

/// The run id in the CLI's first line (`replay ID: ...`).
fn run_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("replay "))
        .and_then(|l| l.split(':').next())
        .expect("a replay line")
        .to_string()
}

/// Ids of `received`, as a set.
fn ids(received: &[Received]) -> BTreeSet<String> {
    received.iter().map(Received::id).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Replay from offset 0: exactly the matching events arrive again at that Trigger's sink,
/// marked with the run's id; the other Trigger's sink gets nothing new; no group moves.
#[tokio::test]
async fn replay_from_offset_zero_reaches_one_trigger_only() {
    let (knit, sink_a, sink_b, url) = start(3).await;
    let events = [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("b", "b2"),
        ("a", "a3"),
        ("b", "b3"),
    ];
    send_all(&url, &events).await;
    sink_a.wait_for(3).await;
    sink_b.wait_for(3).await;
    let before_a = settled(&knit, GROUP_A).await;
    let before_b = settled(&knit, GROUP_B).await;

    let (code, out, err) = replay(&knit, &["ta", "--from", "0"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("read 6, matched 3, delivered 3, failed 0"),
        "{out}"
    );
    let id = run_id(&out);
    let got = sink_a.received();
    assert_eq!(got.len(), 6, "{got:?}");
    let (first, again) = got.split_at(3);
    assert!(first.iter().all(|r| r.ext("knitreplay").is_none()));
    assert_eq!(ids(again), set(&["a1", "a2", "a3"]));
    for r in again {
        assert_eq!(r.ext("knitreplay").as_deref(), Some(id.as_str()), "{r:?}");
        assert_eq!(r.header("ce-type").as_deref(), Some("a"));
    }
    assert_eq!(sink_b.received().len(), 3);

    let bootstrap = knit.kafka.as_ref().expect("kafka").bootstrap.clone();
    assert_eq!(offsets(&bootstrap, GROUP_A, TOPIC).await, before_a);
    assert_eq!(offsets(&bootstrap, GROUP_B, TOPIC).await, before_b);
    // The replay's own reader committed nothing anywhere.
    let own = offsets(&bootstrap, &format!("knit-replay-{id}"), TOPIC).await;
    assert!(own.iter().all(|(c, _)| *c < 0), "{own:?}");

    // The run as the admin API keeps it.
    let run = knit.api(&format!("/api/v1/replay/{id}")).await;
    assert_eq!(run["trigger"], "default/ta");
    assert_eq!(run["broker"], "default/b");
    assert_eq!(run["done"], true);
    assert_eq!(run["read"], 6);
    assert_eq!(run["matched"], 3);
    assert_eq!(run["delivered"], 3);
    assert_eq!(run["span"], 6);
    let list = knit.api("/api/v1/replay").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    // Cancelling a run that ended changes nothing; an unknown run is 404.
    let r = http()
        .delete(format!("{}/api/v1/replay/{id}", knit.admin))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 200);
    let run: serde_json::Value = r.json().await.expect("json");
    assert_eq!(run["cancelled"], false);
    let r = http()
        .get(format!("{}/api/v1/replay/nope", knit.admin))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 404);

    // A second replay of the same range: the same events again, under a new id.
    let (code, out, err) = replay(&knit, &["ta", "--from", "earliest"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let second = run_id(&out);
    assert_ne!(second, id);
    let got = sink_a.wait_for(9).await;
    assert_eq!(ids(&got[6..]), set(&["a1", "a2", "a3"]));
    assert!(
        got[6..]
            .iter()
            .all(|r| r.ext("knitreplay").as_deref() == Some(second.as_str()))
    );
}

/// `--from TIME`, `--to TIME`, `--to OFFSET` and `partition:offset` bounds hold.
#[tokio::test]
async fn replay_bounds_hold() {
    let (knit, sink_a, sink_b, url) = start(1).await;
    send_all(&url, &[("a", "a1"), ("b", "b1"), ("a", "a2")]).await;
    sink_a.wait_for(2).await;
    // A time after every record so far (record times are in whole milliseconds) and before
    // every record sent from now on.
    let mark = jiff::Timestamp::now().as_millisecond() + 1;
    eventually("the clock to pass the mark", || async {
        (jiff::Timestamp::now().as_millisecond() > mark).then_some(())
    })
    .await;
    let mark = jiff::Timestamp::from_millisecond(mark)
        .expect("a time")
        .to_string();
    send_all(&url, &[("b", "b2"), ("a", "a3"), ("a", "a4")]).await;
    sink_a.wait_for(4).await;
    sink_b.wait_for(2).await;
    settled(&knit, GROUP_A).await;
    settled(&knit, GROUP_B).await;

    // From the mark: the second half.
    let (code, out, err) = replay(&knit, &["ta", "--from", &mark]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("read 3, matched 2, delivered 2, failed 0"),
        "{out}"
    );
    let got = sink_a.received();
    assert_eq!(got.len(), 6);
    assert_eq!(ids(&got[4..]), set(&["a3", "a4"]));

    // Up to the mark: the first half.
    let (code, out, err) = replay(&knit, &["ta", "--from", "earliest", "--to", &mark]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("read 3, matched 2, delivered 2, failed 0"),
        "{out}"
    );
    let id = run_id(&out);
    let got = sink_a.received();
    assert_eq!(got.len(), 8);
    assert_eq!(ids(&got[6..]), set(&["a1", "a2"]));
    assert!(
        got[6..]
            .iter()
            .all(|r| r.ext("knitreplay").as_deref() == Some(id.as_str()))
    );

    // Offsets: partition 0 from 1 (b1) to 3 (b2, not read): b1 and a2, of which a2 matches.
    let (code, out, err) = replay(&knit, &["ta", "--from", "0:1", "--to", "3"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0:[1, 3)"), "{out}");
    assert!(
        out.contains("read 2, matched 1, delivered 1, failed 0"),
        "{out}"
    );
    let got = sink_a.received();
    assert_eq!(got.len(), 9);
    assert_eq!(got[8].id(), "a2");

    // An empty range ends at once; a partition the topic lacks is refused.
    let (code, out, err) = replay(&knit, &["ta", "--from", "latest"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("read 0, matched 0"), "{out}");
    let (code, _, err) = replay(&knit, &["ta", "--from", "7:0"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("has no partition 7"), "{err}");

    assert_eq!(sink_b.received().len(), 2);
    assert_eq!(sink_a.received().len(), 9);
}

/// A Broker on memory keeps nothing to replay: the CLI and the API refuse with the reason.
#[tokio::test]
async fn a_memory_broker_refuses_replay() {
    let sink = Sink::start().await;
    let (knit, url) = common::broker_with_trigger(&sink, "").await;
    assert_eq!(send(&url, "a", "e1").await.status(), 202);
    sink.wait_for(1).await;

    let (code, out, err) = replay(&knit, &["t", "--from", "0"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains(REFUSAL), "{err}");

    let r = http()
        .post(format!("{}/api/v1/replay/default/t", knit.admin))
        .json(&json!({"from": "0"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], REFUSAL);

    // An unknown Trigger, a position that is none.
    let r = http()
        .post(format!("{}/api/v1/replay/default/nope", knit.admin))
        .json(&json!({"from": "0"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 404);
    let (code, _, err) = replay(&knit, &["t", "--from", "yesterday"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("is not a position"), "{err}");
    assert_eq!(sink.received().len(), 1);
}
