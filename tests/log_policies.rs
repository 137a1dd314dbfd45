//! Logs as their users meet them: one consumer per Trigger, so a dead subscriber beside a
//! healthy one hurts nobody; the bounded memory log's overflow policy (shed and count, or push
//! back); and a steady stream of events while manifests are edited, added and removed, with
//! every accepted event accounted for. Written once, run for each backend where it applies.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::route::Backend;
use common::sink::{Reply, Sink};
use common::{Knit, condition, eventually, http, send, trigger};

fn annotated(yaml: &str, annotations: &str) -> String {
    yaml.replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations: {{{annotations}}}\n"),
        1,
    )
}

async fn stats(knit: &Knit) -> serde_json::Value {
    knit.api("/api/v1/stats").await
}

/// The case: a Broker with two Triggers, one whose subscriber always answers 500 (with
/// the Broker's default delivery: 10 retries, exponential), one healthy. Every event is accepted
/// and the healthy one gets all of them; the broken one sheds what it cannot hold and says so.
async fn a_failing_trigger_does_not_hold_back_the_broker(b: Backend, events: usize) {
    let bad = Sink::start().await;
    bad.default_reply(Reply::status(500));
    let good = Sink::start().await;
    let knit = b.start(
        &[
            ("b.yaml", &b.broker("b", "")),
            ("bad.yaml", &trigger("bad", "b", &bad.url, "")),
            ("good.yaml", &trigger("good", "b", &good.url, "")),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "bad").await;
    knit.ready("triggers", "good").await;
    let client = http();
    let mut refused = Vec::new();
    for i in 0..events {
        let r = client
            .post(&url)
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("e{i}"))
            .header("ce-source", "/iso")
            .header("ce-type", "t")
            .body("{}")
            .send()
            .await
            .expect("POST");
        if r.status() != 202 {
            refused.push((i, r.status().as_u16()));
        }
    }
    assert!(
        refused.is_empty(),
        "refused: {:?}",
        &refused[..refused.len().min(10)]
    );
    let got = good.wait_for(events).await;
    let ids: BTreeSet<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), events, "the healthy trigger got every event");
    eprintln!(
        "isolation ({b:?}): {events} events posted one by one, {} refused, {} at the healthy trigger",
        refused.len(),
        ids.len()
    );
    if b == Backend::Memory && events > 10_200 {
        // 10,000 waiting + 100 in flight + 100 read ahead fit; the rest was shed, counted.
        let shed = eventually("the shed count in the stats", || async {
            let s = stats(&knit).await;
            let n = s["egresses"]["Trigger/default/bad"]["shed"].as_u64()?;
            (n > 0).then_some(n)
        })
        .await;
        assert!(shed <= (events - 10_000) as u64, "{shed}");
        eprintln!("isolation (memory): {shed} events shed by the failing trigger");
        let t = eventually("KeepingUp=False on the trigger", || async {
            let t = knit.object("triggers", "bad").await?;
            (condition(&t, "KeepingUp")?["status"] == "False").then_some(t)
        })
        .await;
        let c = condition(&t, "KeepingUp").expect("condition");
        assert_eq!(c["reason"], "EventsShed");
        assert_eq!(c["severity"], "Warning");
        assert_eq!(
            condition(&t, "Ready").expect("ready")["status"],
            "True",
            "shedding informs; the trigger still runs"
        );
        let good_t = knit.ready("triggers", "good").await;
        assert_eq!(
            condition(&good_t, "KeepingUp").expect("c")["status"],
            "True"
        );
    }
}

/// Events flow at a steady pace while Triggers are edited, added and removed and the Broker is
/// deleted and recreated. Trigger `t1` exists throughout: every event the broker accepted
/// (202) reaches it.
async fn a_steady_stream_survives_manifest_changes(b: Backend) {
    let sink = Sink::start().await;
    let other = Sink::start().await;
    let knit = b.start(
        &[
            ("b.yaml", &b.broker("b", "")),
            (
                "t1.yaml",
                &trigger("t1", "b", &format!("{}/t1", sink.url), ""),
            ),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t1").await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(async move {
        let client = http();
        let mut accepted = Vec::new();
        let mut refused = 0usize;
        let mut i = 0usize;
        while !*stop_rx.borrow() {
            let id = format!("s{i}");
            i += 1;
            let r = client
                .post(&url)
                .header("ce-specversion", "1.0")
                .header("ce-id", &id)
                .header("ce-source", "/steady")
                .header("ce-type", "steady")
                .body("{}")
                .send()
                .await;
            match r.map(|r| r.status().as_u16()) {
                Ok(202) => accepted.push(id),
                // While the Broker is gone (404) or its new log opens (503), nothing is accepted.
                Ok(404 | 503) => refused += 1,
                Ok(s) => panic!("unexpected status {s} for {id}"),
                Err(e) => panic!("POST failed: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (accepted, refused)
    });
    let progress = |n: usize| {
        let sink = &sink;
        async move {
            eventually(&format!("{n} deliveries"), || async {
                (sink.received().len() >= n).then_some(())
            })
            .await
        }
    };
    progress(50).await;
    // Edit t1 (new delivery options and a filter that still matches): same object, same UID.
    knit.write(
        "t1.yaml",
        &trigger(
            "t1",
            "b",
            &format!("{}/t1", sink.url),
            "filter: {attributes: {type: steady}}\ndelivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.1S}",
        ),
    );
    progress(150).await;
    // Add a second trigger, then remove it.
    knit.write("t2.yaml", &trigger("t2", "b", &other.url, ""));
    knit.ready("triggers", "t2").await;
    progress(250).await;
    knit.remove("t2.yaml");
    progress(350).await;
    // Edit the Broker (a delivery spec): the same log goes on.
    knit.write("b.yaml", &b.broker("b", "delivery: {retry: 2}"));
    progress(450).await;
    // Delete and recreate the Broker.
    knit.remove("b.yaml");
    eventually("the broker to be gone", || async {
        knit.object("brokers", "b").await.is_none().then_some(())
    })
    .await;
    knit.write("b.yaml", &b.broker("b", ""));
    knit.address("brokers", "b").await;
    knit.ready("triggers", "t1").await;
    let before = sink.received().len();
    progress(before + 100).await;
    stop_tx.send_replace(true);
    let (accepted, refused) = sender.await.expect("sender");
    let wanted: BTreeSet<String> = accepted.iter().cloned().collect();
    let deadline = std::time::Instant::now() + common::PATIENCE;
    loop {
        let got: BTreeSet<String> = sink
            .received()
            .iter()
            .filter(|r| r.path == "/t1")
            .map(|r| r.id())
            .collect();
        let missing: Vec<&String> = wanted.difference(&got).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} accepted events never reached t1, e.g. {:?}",
            missing.len(),
            wanted.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        accepted.len() > 500,
        "{} accepted, {refused} refused",
        accepted.len()
    );
}

macro_rules! suite {
    ($module:ident, $backend:expr, $events:expr) => {
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_failing_trigger_does_not_hold_back_the_broker() {
                super::a_failing_trigger_does_not_hold_back_the_broker($backend, $events).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_steady_stream_survives_manifest_changes() {
                super::a_steady_stream_survives_manifest_changes($backend).await
            }
        }
    };
}

suite!(memory, Backend::Memory, 15_000);
#[cfg(feature = "kafka")]
suite!(kafka, Backend::Kafka, 1_000);
#[cfg(feature = "nats")]
suite!(nats, Backend::Nats, 1_000);

/// On the bounded memory log, a Trigger annotated `knit.dev/overflow: block` pushes back: once
/// it is `--log-capacity` events behind, the broker answers 429 with `Retry-After: 1`.
#[tokio::test]
async fn memory_overflow_block_answers_429_with_retry_after() {
    let sink = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        delay: Duration::from_secs(60),
        ..Default::default()
    });
    let t = annotated(
        &trigger("t", "b", &sink.url, ""),
        "knit.dev/overflow: block, knit.dev/max-in-flight: '1'",
    );
    let knit = Knit::start_with(
        &[("b.yaml", &common::broker("b", "")), ("t.yaml", &t)],
        &["--log-capacity", "5"],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = send(&url, "t", &format!("f{i}")).await;
        if r.status() == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
        }
        statuses.push(r.status().as_u16());
    }
    // One in flight, one read ahead (twice the in-flight limit), five waiting: then 429.
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert!((5..=7).contains(&accepted), "{statuses:?}");
    assert!(
        statuses[accepted..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
}

/// A Broker whose dead-letter sink does not resolve is not Ready, but its ingress still takes
/// events (the reason does not concern it), and its triggers deliver them.
#[tokio::test]
async fn a_broker_with_an_unresolved_dead_letter_sink_keeps_accepting() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        (
            "b.yaml",
            &common::broker(
                "b",
                "delivery:\n  deadLetterSink:\n    ref: {apiVersion: v1, kind: Service, name: nope, namespace: elsewhere}\n    uri: /x",
            )
            .replace("kind: Service, name: nope, namespace: elsewhere", "kind: Broker, name: nope"),
        ),
        ("t.yaml", &trigger("t", "b", &sink.url, "")),
    ]);
    let b = eventually("the broker's status", || async {
        let b = knit.object("brokers", "b").await?;
        (condition(&b, "Ready")?["status"] == "False").then_some(b)
    })
    .await;
    assert_eq!(
        condition(&b, "DeadLetterSinkResolved").expect("c")["status"],
        "False"
    );
    let url = format!("{}/default/b", knit.ingress);
    let status = eventually("the ingress to accept", || async {
        let s = send(&url, "t", "kept").await.status().as_u16();
        (s != 404).then_some(s)
    })
    .await;
    assert_eq!(status, 202);
    assert_eq!(sink.wait_for(1).await[0].id(), "kept");
}
