//! Seeing the whole system (issue #22 §4), with real processes: two replicas with one Broker
//! and one Trigger on a private nats-server, events posted through both ingresses. Each event is
//! accepted by one replica and delivered by whichever pulls it, so each replica's journal knows
//! part of it: `knit get events --all-replicas` lists every event once with its acceptance and
//! its delivery, `knit trace --all-replicas` follows an event accepted elsewhere, `knit stats
//! --all-replicas` sums the replicas' counters, every `/metrics` series carries `replica`, and a
//! member whose admin API cannot be reached is a warning naming it while the rest is shown.
//!
//! These tests start several knit processes: nextest runs them one at a time (test group
//! `multi-process` in .config/nextest.toml).
#![cfg(feature = "nats")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::nats::NatsServer;
use common::sink::Sink;
use common::{Knit, broker, eventually_for, free_port, send, trigger};
use serde_json::Value;

/// How long a step with several processes may take on a busy machine.
const PATIENCE: Duration = Duration::from_secs(90);
/// Events posted, alternately through each replica's ingress.
const EVENTS: usize = 6;
const TRIGGER: &str = "Trigger/default/t";

/// A replica `id` on `nats` with a Broker `b` and a Trigger `t` to `sink`; `extra` flags.
fn replica(nats: &NatsServer, sink: &Sink, id: &str, extra: &[&str]) -> Knit {
    let mut flags = vec!["--nats", nats.url.as_str(), "--replica-id", id];
    flags.extend(extra);
    Knit::start_with(
        &[
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &flags,
    )
}

/// `knit get events --all-replicas -o json` through `knit`: the items, and stderr.
fn all_events(knit: &Knit) -> (Vec<Value>, String) {
    let (code, out, err) = knit.cli(&[
        "get",
        "events",
        "--broker",
        "default/b",
        "--all-replicas",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (v["items"].as_array().cloned().unwrap_or_default(), err)
}

/// Every event once, accepted (by the replica it was posted to) and delivered to the Trigger
/// (by whichever replica pulled it); the items when so.
fn each_once_accepted_and_delivered(items: &[Value], ids: &BTreeSet<String>) -> bool {
    let listed: Vec<&str> = items.iter().filter_map(|j| j["id"].as_str()).collect();
    let distinct: BTreeSet<&str> = listed.iter().copied().collect();
    listed.len() == ids.len()
        && distinct.iter().copied().eq(ids.iter().map(String::as_str))
        && items.iter().all(|j| {
            j["accepted"].is_object()
                && j["egresses"][0]["name"] == "t"
                && j["egresses"][0]["outcome"] == "delivered"
        })
}

/// Post [`EVENTS`] events, alternately through each replica's Broker address; their ids.
async fn post_through_both(replicas: &[&Knit]) -> BTreeSet<String> {
    let mut urls = Vec::new();
    for k in replicas {
        urls.push(k.address("brokers", "b").await);
        k.ready("triggers", "t").await;
    }
    let mut ids = BTreeSet::new();
    for n in 0..EVENTS {
        let id = format!("ev-{n}");
        let r = send(&urls[n % urls.len()], "cluster.view", &id).await;
        assert_eq!(
            r.status(),
            202,
            "event {id} through replica {}",
            n % urls.len()
        );
        ids.insert(id);
    }
    ids
}

/// `knit stats --all-replicas -o json`: the Trigger's deliveries summed, and each replica's.
fn stats(knit: &Knit) -> (u64, BTreeMap<String, u64>) {
    let (code, out, err) = knit.cli(&["stats", "--all-replicas", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let each = v["replicas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(id, s)| {
            let n = s["egresses"][TRIGGER]["delivered"].as_u64().unwrap_or(0);
            (id.clone(), n)
        })
        .collect();
    let total = v["egresses"][TRIGGER]["delivered"].as_u64().unwrap_or(0);
    (total, each)
}

/// Every sample of `/metrics` on `knit` carries `replica="ID"`.
async fn metrics_name_the_replica(knit: &Knit, id: &str) {
    let text = knit.metrics().await;
    let label = format!("replica=\"{id}\"");
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(
        samples
            .iter()
            .any(|l| l.starts_with("knit_deliveries_total{")),
        "{text}"
    );
    for s in samples {
        assert!(s.contains(&label), "a series without {label}: {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_nats_are_seen_as_one_system() {
    let nats = NatsServer::start();
    let sink = Sink::start().await;
    let r0 = replica(&nats, &sink, "r0", &[]);
    let r1 = replica(&nats, &sink, "r1", &[]);
    common::replicas::members(&[&r0], &["r0", "r1"]).await;
    let ids = post_through_both(&[&r0, &r1]).await;
    sink.wait_for(EVENTS).await;

    let items = eventually_for(
        "every event once, accepted and delivered",
        PATIENCE,
        || async {
            let (items, err) = all_events(&r0);
            assert!(!err.contains("warning"), "{err}");
            each_once_accepted_and_delivered(&items, &ids).then_some(items)
        },
    )
    .await;
    let seen_on: BTreeSet<&str> = items
        .iter()
        .flat_map(|j| j["replicas"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(seen_on, BTreeSet::from(["r0", "r1"]));
    let (code, table, err) = r1.cli(&["get", "events", "--broker", "default/b", "--all-replicas"]);
    assert_eq!(code, 0, "{err}");
    for id in &ids {
        let rows = table
            .lines()
            .filter(|l| l.split_whitespace().any(|w| w == id))
            .count();
        assert_eq!(rows, 1, "{id} once in:\n{table}");
    }

    // ev-1 was posted to r1; asked through r0 it is still known from its acceptance on.
    let (code, out, err) = r0.cli(&["trace", "ev-1", "--broker", "default/b", "--all-replicas"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("seen on        replicas"), "{out}");
    assert!(
        out.contains("at Broker default/b ("),
        "its acceptance: {out}"
    );
    assert!(out.contains("outcome        delivered"), "{out}");

    let (total, each) = eventually_for("the deliveries summed", PATIENCE, || async {
        let (total, each) = stats(&r0);
        (total == EVENTS as u64).then_some((total, each))
    })
    .await;
    assert_eq!(
        each.keys().map(String::as_str).collect::<Vec<_>>(),
        ["r0", "r1"]
    );
    assert_eq!(each.values().sum::<u64>(), total);
    metrics_name_the_replica(&r0, "r0").await;
    metrics_name_the_replica(&r1, "r1").await;

    // A member whose admin API cannot be reached: a warning naming it, the rest still shown.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let _r2 = replica(&nats, &sink, "r2", &["--admin-url", &nowhere]);
    common::replicas::members(&[&r0], &["r0", "r1", "r2"]).await;
    let (items, err) = all_events(&r0);
    assert!(
        err.contains(&format!("warning: replica r2 ({nowhere}) did not answer")),
        "{err}"
    );
    let listed: BTreeSet<String> = items
        .iter()
        .filter_map(|j| j["id"].as_str().map(String::from))
        .collect();
    assert_eq!(listed, ids, "the answering replicas are still shown");
}
