//! Broker conformance, ingress: the data-plane checklist items of eventing-spec §3 about how a
//! Broker accepts events that only a Broker has (E8 addressing, E11 hop limit), named by number,
//! black-box against the `knit` binary, written once over [`Backend`] and run for the in-memory
//! Broker, Kafka Brokers and JetStream Brokers (`broker_suite!`). The items shared with
//! channels (E1–E7, E10, E33) run for every route in `ingress.rs`; delivery items are in
//! `broker_delivery.rs` and `delivery.rs`.
//!
//! Not here: E9 (durability: the in-memory broker is documented as not durable; the Kafka/NATS
//! crash suites carry it), E12 (authentication is optional and not offered).

mod common;

use common::route::{Backend, Via};
use common::sink::Sink;
use common::{post_binary, send};

async fn e08_unknown_brokers_404_and_malformed_paths_400(b: Backend) {
    let sink = Sink::start().await;
    let (knit, _url) = Via::Trigger(b).start(&sink, "", &[]).await;
    assert_eq!(
        send(&format!("{}/default/nope", knit.ingress), "t", "x")
            .await
            .status(),
        404
    );
    assert_eq!(
        send(&format!("{}/other/b", knit.ingress), "t", "x")
            .await
            .status(),
        404
    );
    assert_eq!(
        send(&format!("{}/", knit.ingress), "t", "x").await.status(),
        404
    );
    assert_eq!(
        send(&format!("{}/a/b/c", knit.ingress), "t", "x")
            .await
            .status(),
        400
    );
}

async fn e11_hop_limit_rejects_exhausted_events_and_is_stripped(b: Backend) {
    let sink = Sink::start().await;
    let (_knit, url) = Via::Trigger(b).start(&sink, "", &[]).await;
    let base = [("specversion", "1.0"), ("source", "/s"), ("type", "t")];
    let mut a: Vec<(&str, &str)> = base.to_vec();
    a.extend([("id", "ttl1"), ("knativebrokerttl", "1")]);
    assert_eq!(post_binary(&url, &a, None, b"").await.status(), 400);
    let mut a: Vec<(&str, &str)> = base.to_vec();
    a.extend([("id", "ttl2"), ("knativebrokerttl", "2")]);
    assert_eq!(post_binary(&url, &a, None, b"").await.status(), 202);
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].id(), "ttl2");
    assert!(
        got[0].header("ce-knativebrokerttl").is_none(),
        "the hop counter is stripped before the subscriber"
    );
}

macro_rules! broker_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn e08_unknown_brokers_404_and_malformed_paths_400() {
                super::e08_unknown_brokers_404_and_malformed_paths_400($backend).await
            }
            #[tokio::test]
            async fn e11_hop_limit_rejects_exhausted_events_and_is_stripped() {
                super::e11_hop_limit_rejects_exhausted_events_and_is_stripped($backend).await
            }
        }
    };
}

broker_suite!(memory, Backend::Memory);
#[cfg(feature = "kafka")]
broker_suite!(kafka, Backend::Kafka);
#[cfg(feature = "nats")]
broker_suite!(nats, Backend::Nats);
