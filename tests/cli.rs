//! The command line as a newcomer meets it: `knit send` prints the id it gave the event and the
//! `knit trace` that follows it; `--broker` and `--channel` take `NS/NAME`, or `NAME` with `-n`,
//! in every command; an unknown Broker or channel is an error naming the ones there are;
//! `knit get events -o json|yaml`; the Trigger table's SUBSCRIBER_URI.

mod common;

use common::sink::Sink;
use common::{Knit, eventually};
use serde_json::Value;

const CHANNEL: &str = "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata:\n  name: c\n  namespace: default\n";

/// A Broker `b` with a Trigger `t` to `sink`, and an InMemoryChannel `c`, all Ready.
async fn start(sink: &Sink) -> Knit {
    let knit = Knit::start(&[
        ("b.yaml", &common::broker("b", "")),
        ("t.yaml", &common::trigger("t", "b", &sink.url, "")),
        ("c.yaml", CHANNEL),
    ]);
    knit.ready("triggers", "t").await;
    knit.ready("inmemorychannels", "c").await;
    knit
}

/// The `knit trace ...` command in `send`'s answer line, as arguments.
fn follow_command(line: &str) -> Vec<String> {
    let (_, follow) = line
        .split_once("(follow it: knit ")
        .unwrap_or_else(|| panic!("no trace command in {line:?}"));
    follow
        .trim_end_matches(')')
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn send_prints_the_id_and_the_trace_command_that_follows_it() {
    let sink = Sink::start().await;
    let knit = start(&sink).await;
    let (code, out, err) = knit.cli(&[
        "send", "--to", "broker:b", "--type", "t", "--source", "/me", "--data", "{}",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out.lines().next().unwrap_or_default();
    let id = line
        .strip_prefix("202 Accepted: event ")
        .and_then(|rest| rest.split_once(" to broker default/b "))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("unexpected answer line {line:?}"));
    assert!(uuid_like(&id), "{id}");
    let received = sink.wait_for(1).await;
    assert_eq!(received[0].id(), id);

    // The printed command, run as printed.
    let args = follow_command(line);
    assert_eq!(args, ["trace", &id, "--broker", "default/b"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = eventually("the trace to show the delivery", || {
        let (code, out, _) = knit.cli(&args);
        std::future::ready((code == 0 && out.contains("outcome        delivered")).then_some(out))
    })
    .await;
    assert!(
        out.contains(&format!("event {id} (type t, source /me)")),
        "{out}"
    );
    assert!(out.contains("trigger/t: matched"), "{out}");

    // To a URL: the id and the URL, no trace command.
    let url = knit.address("brokers", "b").await;
    let (code, out, _) = knit.cli(&[
        "send", "--to", &url, "--type", "t", "--source", "/me", "--id", "by-url",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().next(),
        Some(format!("202 Accepted: event by-url to {url}").as_str())
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test]
async fn both_forms_name_a_broker_or_channel_everywhere_and_unknown_ones_are_errors() {
    let sink = Sink::start().await;
    let knit = start(&sink).await;
    let (code, out, err) = knit.cli(&[
        "send",
        "--to",
        "broker:default/b",
        "--type",
        "t",
        "--source",
        "/me",
        "--id",
        "e1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    sink.wait_for(1).await;
    let (code, out, err) = knit.cli(&[
        "send",
        "--to",
        "channel:c",
        "-n",
        "default",
        "--type",
        "t",
        "--source",
        "/me",
        "--id",
        "c1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("202 Accepted: event c1 to channel default/c"),
        "{out}"
    );

    for broker in [
        &["--broker", "default/b"][..],
        &["--broker", "b", "-n", "default"],
    ] {
        let trace = [&["trace", "e1"][..], broker].concat();
        let out = eventually("trace e1", || {
            let (code, out, _) = knit.cli(&trace);
            std::future::ready((code == 0).then_some(out))
        })
        .await;
        assert!(out.contains("event e1"), "{out}");
        let (code, out, err) = knit.cli(&[&["get", "events"][..], broker].concat());
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("e1"), "{broker:?}: {out}{err}");
    }
    let (code, out, err) = knit.cli(&["get", "events", "--channel", "default/c"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("c1"), "{out}{err}");

    // Unknown ones: an error naming what there is, whichever command.
    let (code, _, err) = knit.cli(&["get", "events", "--broker", "default/default"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no Broker default/default; Brokers: default/b"),
        "{err}"
    );
    let (code, _, err) = knit.cli(&["get", "events", "--channel", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no channel default/nope; channels: default/c"),
        "{err}"
    );
    let (code, _, err) = knit.cli(&["trace", "e1", "--broker", "shop/b"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no Broker (or source) shop/b; Brokers: default/b"),
        "{err}"
    );
    let (code, _, err) = knit.cli(&["send", "--to", "broker:x", "--type", "t", "--source", "/me"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no Broker default/x; Brokers: default/b"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"specversion": "1.0", "id": "f1", "source": "/me", "type": "t"}"#,
    )
    .expect("write event");
    let event = event.to_str().expect("path");
    let (code, _, err) = knit.cli(&["filter", "test", "--broker", "x", "--event", event]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no running Broker default/x; Brokers: default/b"),
        "{err}"
    );
    let (code, out, err) = knit.cli(&["filter", "test", "--broker", "b", "--event", event]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("trigger/t: matched"), "{out}");

    // A namespace given twice must agree.
    let (code, _, err) = knit.cli(&["get", "events", "--broker", "default/b", "-n", "shop"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("-n says \"shop\""), "{err}");
}

#[tokio::test]
async fn get_events_prints_json_and_yaml_and_refuses_flags_it_would_ignore() {
    let sink = Sink::start().await;
    let knit = start(&sink).await;
    let url = knit.address("brokers", "b").await;
    assert_eq!(common::send(&url, "t", "j1").await.status(), 202);
    sink.wait_for(1).await;
    let (code, out, err) = knit.cli(&["get", "events", "--broker", "b", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["items"][0]["id"], "j1", "{v}");
    assert_eq!(v["items"][0]["ingress"]["name"], "b", "{v}");
    let (code, out, err) = knit.cli(&["get", "events", "--broker", "b", "-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("items:") && out.contains("id: j1"), "{out}");

    let (code, _, err) = knit.cli(&["get", "events", "j1", "--broker", "b"]);
    assert_ne!(code, 0);
    assert!(err.contains("knit trace j1"), "{err}");
    let (code, _, err) = knit.cli(&["get", "events", "-A", "--broker", "b"]);
    assert_ne!(code, 0);
    assert!(err.contains("not -A"), "{err}");
    let (code, _, err) = knit.cli(&["get", "triggers", "--failed"]);
    assert_ne!(code, 0);
    assert!(err.contains("--failed is for knit get events"), "{err}");
}

#[tokio::test]
async fn the_trigger_table_says_subscriber_uri_as_kubectl_does() {
    let sink = Sink::start().await;
    let knit = start(&sink).await;
    let (code, out, _) = knit.cli(&["get", "triggers"]);
    assert_eq!(code, 0);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "BROKER", "SUBSCRIBER_URI", "AGE", "READY", "REASON"]
    );
    assert!(out.contains(&sink.url), "{out}");
}
