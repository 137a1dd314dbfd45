//! Broker conformance, routing and delivery: the data-plane checklist items of eventing-spec §3
//! about what a Broker does with accepted events (E13–E31), one test per item named by number,
//! black-box against the `knit` binary with a recording sink that answers with scripted
//! statuses, delays, `Retry-After` and replies.
//!
//! Not here: E14 and E25 (channels, in `channel_conformance.rs`), E31 across restarts (durable
//! backends), E32 (ordered delivery is a Kafka trigger mode).

mod common;

use std::time::Duration;

use base64::Engine;
use common::sink::{Reply, Sink};
use common::{Knit, broker, eventually, http, post_binary, send, trigger};

#[tokio::test]
async fn e13_every_matching_trigger_gets_its_own_delivery() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
        (
            "t1.yaml",
            &trigger("t1", "b", &format!("{}/one", sink.url), ""),
        ),
        (
            "t2.yaml",
            &trigger("t2", "b", &format!("{}/one", sink.url), ""),
        ),
    ]);
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t1").await;
    knit.ready("triggers", "t2").await;
    assert_eq!(send(&url, "t", "e13").await.status(), 202);
    let got = sink.wait_for(2).await;
    assert_eq!(got.iter().filter(|r| r.id() == "e13").count(), 2);
}

#[tokio::test]
async fn e15_unmatched_events_are_accepted_and_dropped() {
    let sink = Sink::start().await;
    let (knit, url) =
        common::broker_with_trigger(&sink, "filter: {attributes: {type: wanted}}").await;
    assert_eq!(send(&url, "unwanted", "e15-drop").await.status(), 202);
    eventually("the unmatched event to be counted", || async {
        (knit.api("/api/v1/stats").await["unmatched"] == 1).then_some(())
    })
    .await;
    assert_eq!(send(&url, "wanted", "e15-keep").await.status(), 202);
    let got = sink.wait_for(1).await;
    assert!(got.iter().all(|r| r.id() == "e15-keep"));
}

#[tokio::test]
async fn e16_egress_posts_with_prefer_reply_and_kn_namespace() {
    let sink = Sink::start().await;
    let (_knit, url) = common::broker_with_trigger(&sink, "").await;
    send(&url, "t", "e16").await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("prefer").as_deref(), Some("reply"));
    assert_eq!(got[0].header("kn-namespace").as_deref(), Some("default"));
}

#[tokio::test]
async fn e17_delivery_format_forces_structured_mode() {
    let sink = Sink::start().await;
    let (_knit, url) = common::broker_with_trigger(&sink, "delivery: {format: json}").await;
    send(&url, "t", "e17").await;
    let got = sink.wait_for(1).await;
    assert_eq!(
        got[0].header("content-type").as_deref(),
        Some("application/cloudevents+json")
    );
    assert_eq!(got[0].id(), "e17");
}

#[tokio::test]
async fn e18_data_and_attributes_arrive_unchanged() {
    let sink = Sink::start().await;
    let (_knit, url) = common::broker_with_trigger(&sink, "").await;
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

#[tokio::test]
async fn e19_only_knative_headers_propagate() {
    let sink = Sink::start().await;
    let (_knit, url) = common::broker_with_trigger(&sink, "").await;
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

#[tokio::test]
async fn e20_trace_context_passes_through() {
    let sink = Sink::start().await;
    let (_knit, url) = common::broker_with_trigger(&sink, "").await;
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

#[tokio::test]
async fn e21_a_ready_trigger_gets_every_later_event() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[("b.yaml", &broker("b", ""))]);
    let url = knit.address("brokers", "b").await;
    knit.write("t.yaml", &trigger("late", "b", &sink.url, ""));
    knit.ready("triggers", "late").await;
    for i in 0..100 {
        assert_eq!(send(&url, "t", &format!("e21-{i}")).await.status(), 202);
    }
    let got = sink.wait_for(100).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}

#[tokio::test]
async fn e22_a_202_body_is_never_a_reply() {
    let sink = Sink::start().await;
    let replies = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        ..Reply::event("reply.type", "e22-reply")
    });
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
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
    ]);
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

#[tokio::test]
async fn e23_a_2xx_body_that_is_not_an_event_fails_the_delivery() {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply {
        status: 200,
        body: b"ok".to_vec(),
        ..Default::default()
    });
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        &format!(
            "delivery: {{retry: 2, deadLetterSink: {{uri: '{}'}}}}",
            dls.url
        ),
    )
    .await;
    send(&url, "t", "e23").await;
    let got = dls.wait_for(1).await;
    assert_eq!(got[0].id(), "e23");
    assert_eq!(sink.received().len(), 3, "first attempt plus 2 retries");
}

#[tokio::test]
async fn e24_replies_reenter_the_broker_and_loops_end() {
    let first = Sink::start().await;
    let second = Sink::start().await;
    let looping = Sink::start().await;
    first.default_reply(Reply::event("step.two", "e24-reply"));
    looping.default_reply(Reply::event("loop", "e24-loop"));
    let knit = Knit::start(&[
        ("b.yaml", &broker("b", "")),
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
    ]);
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

#[tokio::test]
async fn e26_retries_with_exponential_backoff() {
    let sink = Sink::start().await;
    sink.script([Reply::status(503), Reply::status(500), Reply::status(429)]);
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        "delivery: {retry: 3, backoffPolicy: exponential, backoffDelay: PT0.1S}",
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

#[tokio::test]
async fn e26_linear_backoff_and_retry_count() {
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(503));
    let (knit, url) = common::broker_with_trigger(
        &sink,
        "delivery: {retry: 2, backoffPolicy: linear, backoffDelay: PT0.1S}",
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

#[tokio::test]
async fn e27_non_retryable_statuses_go_straight_to_the_dead_letter_sink() {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply::status(400));
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        &format!(
            "delivery: {{retry: 5, deadLetterSink: {{uri: '{}'}}}}",
            dls.url
        ),
    )
    .await;
    send(&url, "t", "e27").await;
    let got = dls.wait_for(1).await;
    assert_eq!(got[0].ext("knativeerrorcode").as_deref(), Some("400"));
    assert_eq!(sink.received().len(), 1, "exactly one attempt");
}

#[tokio::test]
async fn e28_dead_letters_carry_the_error_extensions() {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply {
        status: 500,
        body: b"boom".to_vec(),
        ..Default::default()
    });
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        &format!(
            "delivery: {{retry: 1, deadLetterSink: {{uri: '{}/dls'}}}}",
            dls.url
        ),
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

#[tokio::test]
async fn e28_broker_dead_letter_sink_applies_when_the_trigger_has_none() {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply::status(404));
    let knit = Knit::start(&[
        (
            "b.yaml",
            &broker(
                "b",
                &format!(
                    "delivery: {{retry: 1, deadLetterSink: {{uri: '{}'}}}}",
                    dls.url
                ),
            ),
        ),
        ("t.yaml", &trigger("t", "b", &sink.url, "")),
    ]);
    let url = knit.address("brokers", "b").await;
    let t = knit.ready("triggers", "t").await;
    assert_eq!(t["status"]["deadLetterSinkUri"], dls.url.as_str());
    send(&url, "t", "e28b").await;
    dls.wait_for(1).await;
    assert_eq!(sink.received().len(), 2);
}

#[tokio::test]
async fn e29_retry_after_is_honoured_up_to_retry_after_max() {
    let sink = Sink::start().await;
    sink.script([Reply {
        status: 429,
        headers: vec![("retry-after".into(), "30".into())],
        ..Default::default()
    }]);
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        "delivery: {retry: 1, backoffPolicy: linear, backoffDelay: PT0.1S, retryAfterMax: PT1S}",
    )
    .await;
    send(&url, "t", "e29").await;
    // Uncapped, the retry would come after 30 s, beyond the test's patience.
    let got = sink.wait_for(2).await;
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "Retry-After honoured up to retryAfterMax"
    );
}

#[tokio::test]
async fn e29_retry_after_is_ignored_without_retry_after_max() {
    let sink = Sink::start().await;
    sink.script([Reply {
        status: 503,
        headers: vec![("retry-after".into(), "30".into())],
        ..Default::default()
    }]);
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        "delivery: {retry: 1, backoffPolicy: linear, backoffDelay: PT0.1S}",
    )
    .await;
    send(&url, "t", "e29b").await;
    sink.wait_for(2).await;
}

#[tokio::test]
async fn e30_attempts_time_out() {
    let sink = Sink::start().await;
    let dls = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        delay: Duration::from_secs(30),
        ..Default::default()
    });
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        &format!(
            "delivery: {{retry: 1, timeout: PT0.5S, deadLetterSink: {{uri: '{}'}}}}",
            dls.url
        ),
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

#[tokio::test]
async fn e31_every_accepted_event_arrives_at_least_once() {
    let sink = Sink::start().await;
    sink.script((0..30).map(|i| {
        if i % 2 == 0 {
            Reply::status(503)
        } else {
            Reply::status(202)
        }
    }));
    let (_knit, url) = common::broker_with_trigger(
        &sink,
        "delivery: {retry: 10, backoffPolicy: linear, backoffDelay: PT0.01S}",
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
