//! Broker conformance, routing: the data-plane checklist items of eventing-spec §3 that only a
//! Broker has (E13, E15, E22, E24 replies and the Broker's dead-letter sink), one test per item
//! named by number, black-box against the `knit` binary with a recording sink that answers with
//! scripted statuses and replies; written once over [`Backend`] and run for the in-memory,
//! Kafka and JetStream Brokers (`routing_suite!`). The delivery items shared with channels
//! (E16–E21, E23, E26–E31) run for every route in `delivery.rs`.
//!
//! Not here: E14 and E25 (channels, in `channel_conformance.rs`), E31 across restarts (durable
//! backends), E32 (ordered delivery is a Kafka trigger mode).

mod common;

use common::route::{Backend, Via};
use common::sink::{Reply, Sink};
use common::{eventually, post_binary, send, trigger};

async fn e13_every_matching_trigger_gets_its_own_delivery(b: Backend) {
    let sink = Sink::start().await;
    let knit = b.start(
        &[
            ("b.yaml", &b.broker("b", "")),
            (
                "t1.yaml",
                &trigger("t1", "b", &format!("{}/one", sink.url), ""),
            ),
            (
                "t2.yaml",
                &trigger("t2", "b", &format!("{}/one", sink.url), ""),
            ),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t1").await;
    knit.ready("triggers", "t2").await;
    assert_eq!(send(&url, "t", "e13").await.status(), 202);
    let got = sink.wait_for(2).await;
    assert_eq!(got.iter().filter(|r| r.id() == "e13").count(), 2);
}

async fn e15_unmatched_events_are_accepted_and_dropped(b: Backend) {
    let sink = Sink::start().await;
    let (knit, url) = Via::Trigger(b)
        .start(&sink, "filter: {attributes: {type: wanted}}", &[])
        .await;
    assert_eq!(send(&url, "unwanted", "e15-drop").await.status(), 202);
    // A memory Broker routes at its ingress and counts what no Trigger wanted; on a log every
    // Trigger reads every event and counts what its filter passed over (README, Admin API).
    eventually("the unmatched event to be counted", || async {
        let stats = knit.api("/api/v1/stats").await;
        let counted = if matches!(b, Backend::Memory) {
            stats["unmatched"] == 1
        } else {
            stats["egresses"]["Trigger/default/t"]["filtered"] == 1
        };
        counted.then_some(())
    })
    .await;
    assert_eq!(send(&url, "wanted", "e15-keep").await.status(), 202);
    let got = sink.wait_for(1).await;
    assert!(got.iter().all(|r| r.id() == "e15-keep"));
}

async fn e22_a_202_body_is_never_a_reply(b: Backend) {
    let sink = Sink::start().await;
    let replies = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        ..Reply::event("reply.type", "e22-reply")
    });
    let knit = b.start(
        &[
            ("b.yaml", &b.broker("b", "")),
            (
                "a.yaml",
                &trigger("a", "b", &sink.url, "filter: {attributes: {type: request}}"),
            ),
            (
                "r.yaml",
                &trigger(
                    "r",
                    "b",
                    &replies.url,
                    "filter: {attributes: {type: reply.type}}",
                ),
            ),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "a").await;
    knit.ready("triggers", "r").await;
    send(&url, "request", "e22").await;
    sink.wait_for(1).await;
    eventually("the delivery to complete", || async {
        (knit.api("/api/v1/stats").await["delivered"] == 1).then_some(())
    })
    .await;
    send(&url, "reply.type", "e22-barrier").await;
    let got = replies.wait_for(1).await;
    assert!(
        got.iter().all(|r| r.id() == "e22-barrier"),
        "a 202 body was routed as a reply"
    );
}

async fn e24_replies_reenter_the_broker_and_loops_end(b: Backend) {
    let first = Sink::start().await;
    let second = Sink::start().await;
    let looping = Sink::start().await;
    first.default_reply(Reply::event("step.two", "e24-reply"));
    // Each reply is a new event (its own id): JetStream de-duplicates by source and id, as
    // CloudEvents lets a consumer do, so a sink answering the same id every time would loop once.
    looping.script((1..=4).map(|i| Reply::event("loop", &format!("e24-loop-{i}"))));
    let knit = b.start(
        &[
            ("b.yaml", &b.broker("b", "")),
            (
                "a.yaml",
                &trigger(
                    "a",
                    "b",
                    &first.url,
                    "filter: {attributes: {type: step.one}}",
                ),
            ),
            (
                "c.yaml",
                &trigger(
                    "c",
                    "b",
                    &second.url,
                    "filter: {attributes: {type: step.two}}",
                ),
            ),
            (
                "l.yaml",
                &trigger(
                    "l",
                    "b",
                    &looping.url,
                    "filter: {attributes: {type: loop}}\ndelivery: {retry: 0}",
                ),
            ),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    for t in ["a", "c", "l"] {
        knit.ready("triggers", t).await;
    }
    send(&url, "step.one", "e24").await;
    let got = second.wait_for(1).await;
    assert_eq!(got[0].id(), "e24-reply");

    // A self-loop: the reply carries the hop counter back in, so it ends.
    let r = post_binary(
        &url,
        &[
            ("specversion", "1.0"),
            ("id", "loop"),
            ("source", "/s"),
            ("type", "loop"),
            ("knativebrokerttl", "5"),
        ],
        None,
        b"",
    )
    .await;
    assert_eq!(r.status(), 202);
    eventually("the loop to end", || async {
        (knit.api("/api/v1/stats").await["dropped"] == 1).then_some(())
    })
    .await;
    assert_eq!(
        looping.received().len(),
        4,
        "hop counter 5 allows 4 deliveries"
    );
}

async fn e28_broker_dead_letter_sink_applies_when_the_trigger_has_none(b: Backend) {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply::status(404));
    let knit = b.start(
        &[
            (
                "b.yaml",
                &b.broker(
                    "b",
                    &format!(
                        "delivery: {{retry: 1, deadLetterSink: {{uri: '{}'}}}}",
                        dls.url
                    ),
                ),
            ),
            ("t.yaml", &trigger("t", "b", &sink.url, "")),
        ],
        &[],
    );
    let url = knit.address("brokers", "b").await;
    let t = knit.ready("triggers", "t").await;
    assert_eq!(t["status"]["deadLetterSinkUri"], dls.url.as_str());
    send(&url, "t", "e28b").await;
    dls.wait_for(1).await;
    assert_eq!(sink.received().len(), 2);
}

macro_rules! routing_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn e13_every_matching_trigger_gets_its_own_delivery() {
                super::e13_every_matching_trigger_gets_its_own_delivery($backend).await
            }
            #[tokio::test]
            async fn e15_unmatched_events_are_accepted_and_dropped() {
                super::e15_unmatched_events_are_accepted_and_dropped($backend).await
            }
            #[tokio::test]
            async fn e22_a_202_body_is_never_a_reply() {
                super::e22_a_202_body_is_never_a_reply($backend).await
            }
            #[tokio::test]
            async fn e24_replies_reenter_the_broker_and_loops_end() {
                super::e24_replies_reenter_the_broker_and_loops_end($backend).await
            }
            #[tokio::test]
            async fn e28_broker_dead_letter_sink_applies_when_the_trigger_has_none() {
                super::e28_broker_dead_letter_sink_applies_when_the_trigger_has_none($backend).await
            }
        }
    };
}

routing_suite!(memory, Backend::Memory);
#[cfg(feature = "kafka")]
routing_suite!(kafka, Backend::Kafka);
#[cfg(feature = "nats")]
routing_suite!(nats, Backend::Nats);
