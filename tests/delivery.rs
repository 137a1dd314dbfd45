//! Delivery conformance, written once and run for every route an event can take to a
//! subscriber: Broker → Trigger, and channel → Subscription for every channel backend. One
//! test per data-plane checklist item of eventing-spec §3 that applies to both (E16–E21,
//! E23, E26–E31), named by number; `delivery_suite!` instantiates them per route.

mod common;

use std::time::Duration;

use base64::Engine;
use common::route::{Backend, Via};
use common::sink::{Reply, Sink};
use common::{eventually, http, post_binary, send};

async fn e16_egress_posts_with_prefer_reply_and_kn_namespace(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
    send(&url, "t", "e16").await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("prefer").as_deref(), Some("reply"));
    assert_eq!(got[0].header("kn-namespace").as_deref(), Some("default"));
}

async fn e17_delivery_format_forces_structured_mode(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "delivery: {format: json}", &[]).await;
    send(&url, "t", "e17").await;
    let got = sink.wait_for(1).await;
    assert_eq!(
        got[0].header("content-type").as_deref(),
        Some("application/cloudevents+json")
    );
    assert_eq!(got[0].id(), "e17");
}

async fn e18_data_and_attributes_arrive_unchanged(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
    let body = b"{ \"b\" :1,\n  \"a\": [ true , null ] }";
    let attrs = [
        ("specversion", "1.0"),
        ("id", "e18"),
        ("source", "https://example.com/a?b=c"),
        ("type", "com.example.t"),
        ("subject", "sub/ject"),
        ("time", "2024-05-01T10:00:00.123456Z"),
        ("dataschema", "https://example.com/schema"),
        ("myext", "some value"),
        ("other1", "42"),
    ];
    assert_eq!(
        post_binary(&url, &attrs, Some("application/json; charset=utf-8"), body)
            .await
            .status(),
        202
    );
    let got = sink.wait_for(1).await;
    assert_eq!(&got[0].body[..], body, "data bytes changed");
    for (k, v) in attrs {
        assert_eq!(got[0].header(&format!("ce-{k}")).as_deref(), Some(v), "{k}");
    }
    assert_eq!(
        got[0].header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
}

async fn e19_only_knative_headers_propagate(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
    http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "e19")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .header("x-foo", "no")
        .header("knative-foo", "yes")
        .header("x-request-id", "req-1")
        .header("x-b3-traceid", "abc")
        .send()
        .await
        .expect("POST");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].header("x-foo"), None);
    assert_eq!(got[0].header("knative-foo").as_deref(), Some("yes"));
    assert_eq!(got[0].header("x-request-id").as_deref(), Some("req-1"));
    assert_eq!(got[0].header("x-b3-traceid").as_deref(), Some("abc"));
}

async fn e20_trace_context_passes_through(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "e20")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .header("traceparent", tp)
        .header("tracestate", "k=v")
        .send()
        .await
        .expect("POST");
    let got = sink.wait_for(1).await;
    let seen = got[0].header("traceparent").expect("traceparent");
    assert_eq!(
        seen.split('-').nth(1),
        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        "same trace id"
    );
    assert_eq!(got[0].header("tracestate").as_deref(), Some("k=v"));
}

async fn e21_a_ready_route_gets_every_later_event(via: Via) {
    let sink = Sink::start().await;
    let knit = via.start_without_route();
    let url = via.add_route(&knit, &sink).await;
    for i in 0..100 {
        assert_eq!(send(&url, "t", &format!("e21-{i}")).await.status(), 202);
    }
    let got = sink.wait_for(100).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}

async fn e23_a_2xx_body_that_is_not_an_event_fails_the_delivery(via: Via) {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply {
        status: 200,
        body: b"ok".to_vec(),
        ..Default::default()
    });
    let (_knit, url) = via
        .start(
            &sink,
            &format!(
                "delivery: {{retry: 2, deadLetterSink: {{uri: '{}'}}}}",
                dls.url
            ),
            &[],
        )
        .await;
    send(&url, "t", "e23").await;
    let got = dls.wait_for(1).await;
    assert_eq!(got[0].id(), "e23");
    assert_eq!(sink.received().len(), 3, "first attempt plus 2 retries");
}

async fn e26_retries_with_exponential_backoff(via: Via) {
    let sink = Sink::start().await;
    sink.script([Reply::status(503), Reply::status(500), Reply::status(429)]);
    let (_knit, url) = via
        .start(
            &sink,
            "delivery: {retry: 3, backoffPolicy: exponential, backoffDelay: PT0.1S}",
            &[],
        )
        .await;
    send(&url, "t", "e26").await;
    let got = sink.wait_for(4).await;
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    // The wait before retry k is at least delay × 2^(k-1).
    for (k, gap) in gaps.iter().enumerate() {
        let min = Duration::from_millis(100 * (1 << k));
        assert!(
            *gap >= min,
            "gap before retry {} was {gap:?}, want ≥ {min:?}",
            k + 1
        );
    }
}

async fn e26_linear_backoff_and_retry_count(via: Via) {
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(503));
    let (knit, url) = via
        .start(
            &sink,
            "delivery: {retry: 2, backoffPolicy: linear, backoffDelay: PT0.1S}",
            &[],
        )
        .await;
    send(&url, "t", "e26l").await;
    eventually("retries to run out", || async {
        (knit.api("/api/v1/stats").await["dropped"] == 1).then_some(())
    })
    .await;
    let got = sink.received();
    assert_eq!(got.len(), 3, "total attempts = retry + 1");
    assert!(got[2].at - got[1].at >= Duration::from_millis(200));
}

async fn e27_non_retryable_statuses_go_straight_to_the_dead_letter_sink(via: Via) {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply::status(400));
    let (_knit, url) = via
        .start(
            &sink,
            &format!(
                "delivery: {{retry: 5, deadLetterSink: {{uri: '{}'}}}}",
                dls.url
            ),
            &[],
        )
        .await;
    send(&url, "t", "e27").await;
    let got = dls.wait_for(1).await;
    assert_eq!(got[0].ext("knativeerrorcode").as_deref(), Some("400"));
    assert_eq!(sink.received().len(), 1, "exactly one attempt");
}

async fn e28_dead_letters_carry_the_error_extensions(via: Via) {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply {
        status: 500,
        body: b"boom".to_vec(),
        ..Default::default()
    });
    let (_knit, url) = via
        .start(
            &sink,
            &format!(
                "delivery: {{retry: 1, deadLetterSink: {{uri: '{}/dls'}}}}",
                dls.url
            ),
            &[],
        )
        .await;
    post_binary(
        &url,
        &[
            ("specversion", "1.0"),
            ("id", "e28"),
            ("source", "/s"),
            ("type", "t"),
        ],
        Some("application/json"),
        br#"{"x":1}"#,
    )
    .await;
    let got = dls.wait_for(1).await;
    let d = &got[0];
    assert_eq!(d.path, "/dls");
    assert_eq!(
        d.ext("knativeerrordest").as_deref(),
        Some(sink.url.as_str())
    );
    assert_eq!(d.ext("knativeerrorcode").as_deref(), Some("500"));
    let data = base64::engine::general_purpose::STANDARD
        .decode(d.ext("knativeerrordata").expect("errordata"))
        .expect("base64");
    assert_eq!(data, b"boom");
    assert_eq!(&d.body[..], br#"{"x":1}"#, "the original data");
    assert_eq!(d.id(), "e28");
}

async fn e29_retry_after_is_honoured_up_to_retry_after_max(via: Via) {
    let sink = Sink::start().await;
    sink.script([Reply {
        status: 429,
        headers: vec![("retry-after".into(), "30".into())],
        ..Default::default()
    }]);
    let (_knit, url) = via.start(
        &sink,
        "delivery: {retry: 1, backoffPolicy: linear, backoffDelay: PT0.1S, retryAfterMax: PT1S}", &[])
    .await;
    send(&url, "t", "e29").await;
    // Uncapped, the retry would come after 30 s, beyond the test's patience.
    let got = sink.wait_for(2).await;
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "Retry-After honoured up to retryAfterMax"
    );
}

async fn e29_retry_after_is_ignored_without_retry_after_max(via: Via) {
    let sink = Sink::start().await;
    sink.script([Reply {
        status: 503,
        headers: vec![("retry-after".into(), "30".into())],
        ..Default::default()
    }]);
    let (_knit, url) = via
        .start(
            &sink,
            "delivery: {retry: 1, backoffPolicy: linear, backoffDelay: PT0.1S}",
            &[],
        )
        .await;
    send(&url, "t", "e29b").await;
    sink.wait_for(2).await;
}

async fn e30_attempts_time_out(via: Via) {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        delay: Duration::from_secs(30),
        ..Default::default()
    });
    let (_knit, url) = via
        .start(
            &sink,
            &format!(
                "delivery: {{retry: 1, timeout: PT0.5S, deadLetterSink: {{uri: '{}'}}}}",
                dls.url
            ),
            &[],
        )
        .await;
    send(&url, "t", "e30").await;
    let got = dls.wait_for(1).await;
    assert_eq!(got[0].id(), "e30");
    assert_eq!(sink.received().len(), 2, "both attempts timed out");
    assert!(
        got[0].ext("knativeerrorcode").is_none(),
        "no status when nothing answered"
    );
}

async fn e31_every_accepted_event_arrives_at_least_once(via: Via) {
    let sink = Sink::start().await;
    sink.script((0..30).map(|i| {
        if i % 2 == 0 {
            Reply::status(503)
        } else {
            Reply::status(202)
        }
    }));
    let (_knit, url) = via
        .start(
            &sink,
            "delivery: {retry: 10, backoffPolicy: linear, backoffDelay: PT0.01S}",
            &[],
        )
        .await;
    for i in 0..50 {
        assert_eq!(send(&url, "t", &format!("e31-{i}")).await.status(), 202);
    }
    let ids = eventually("all 50 events", || async {
        let mut ids: Vec<String> = sink
            .received()
            .iter()
            .filter(|r| r.header("ce-id").is_some())
            .map(|r| r.id())
            .collect();
        ids.sort();
        ids.dedup();
        (ids.len() == 50).then_some(ids)
    })
    .await;
    assert_eq!(ids.len(), 50);
}

macro_rules! delivery_suite {
    ($module:ident, $via:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn e16_egress_posts_with_prefer_reply_and_kn_namespace() {
                super::e16_egress_posts_with_prefer_reply_and_kn_namespace($via).await
            }
            #[tokio::test]
            async fn e17_delivery_format_forces_structured_mode() {
                super::e17_delivery_format_forces_structured_mode($via).await
            }
            #[tokio::test]
            async fn e18_data_and_attributes_arrive_unchanged() {
                super::e18_data_and_attributes_arrive_unchanged($via).await
            }
            #[tokio::test]
            async fn e19_only_knative_headers_propagate() {
                super::e19_only_knative_headers_propagate($via).await
            }
            #[tokio::test]
            async fn e20_trace_context_passes_through() {
                super::e20_trace_context_passes_through($via).await
            }
            #[tokio::test]
            async fn e21_a_ready_route_gets_every_later_event() {
                super::e21_a_ready_route_gets_every_later_event($via).await
            }
            #[tokio::test]
            async fn e23_a_2xx_body_that_is_not_an_event_fails_the_delivery() {
                super::e23_a_2xx_body_that_is_not_an_event_fails_the_delivery($via).await
            }
            #[tokio::test]
            async fn e26_retries_with_exponential_backoff() {
                super::e26_retries_with_exponential_backoff($via).await
            }
            #[tokio::test]
            async fn e26_linear_backoff_and_retry_count() {
                super::e26_linear_backoff_and_retry_count($via).await
            }
            #[tokio::test]
            async fn e27_non_retryable_statuses_go_straight_to_the_dead_letter_sink() {
                super::e27_non_retryable_statuses_go_straight_to_the_dead_letter_sink($via).await
            }
            #[tokio::test]
            async fn e28_dead_letters_carry_the_error_extensions() {
                super::e28_dead_letters_carry_the_error_extensions($via).await
            }
            #[tokio::test]
            async fn e29_retry_after_is_honoured_up_to_retry_after_max() {
                super::e29_retry_after_is_honoured_up_to_retry_after_max($via).await
            }
            #[tokio::test]
            async fn e29_retry_after_is_ignored_without_retry_after_max() {
                super::e29_retry_after_is_ignored_without_retry_after_max($via).await
            }
            #[tokio::test]
            async fn e30_attempts_time_out() {
                super::e30_attempts_time_out($via).await
            }
            #[tokio::test]
            async fn e31_every_accepted_event_arrives_at_least_once() {
                super::e31_every_accepted_event_arrives_at_least_once($via).await
            }
        }
    };
}

delivery_suite!(trigger, Via::Trigger(Backend::Memory));
#[cfg(feature = "kafka")]
delivery_suite!(kafka_trigger, Via::Trigger(Backend::Kafka));
#[cfg(feature = "nats")]
delivery_suite!(nats_trigger, Via::Trigger(Backend::Nats));
delivery_suite!(memory_subscription, Via::Subscription(Backend::Memory));
#[cfg(feature = "kafka")]
delivery_suite!(kafka_subscription, Via::Subscription(Backend::Kafka));
#[cfg(feature = "nats")]
delivery_suite!(nats_subscription, Via::Subscription(Backend::Nats));
