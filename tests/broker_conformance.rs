//! Broker conformance: one test per data-plane checklist item of eventing-spec §3 that applies
//! to a Broker (named by number), black-box against the `knit` binary over HTTP, with a
//! recording sink that answers with scripted statuses, delays, `Retry-After` and replies.
//!
//! Not here: E9 and E31-across-restarts (durability: the in-memory broker is documented as not
//! durable; the Kafka/NATS backends carry those tests), E12 (authentication is optional and
//! not offered), E14 and E25 (channels), E32 (ordered delivery is a Kafka trigger mode).

mod common;

use std::time::Duration;

use base64::Engine;
use common::sink::{Reply, Sink};
use common::{Knit, broker, eventually, http, post_binary, send, trigger};
use serde_json::Value;

/// A Broker `b` with Trigger `t` (extra spec lines `extra`) to `sink`.
async fn setup(sink: &Sink, extra: &str) -> (Knit, String) {
    setup_with(sink, extra, &[]).await
}

async fn setup_with(sink: &Sink, extra: &str, flags: &[&str]) -> (Knit, String) {
    let knit = Knit::start_with(
        &[
            ("b.yaml", &broker("b", "")),
            ("t.yaml", &trigger("t", "b", &sink.url, extra)),
        ],
        flags,
    );
    let url = knit.address("brokers", "b").await;
    knit.ready("triggers", "t").await;
    (knit, url)
}

async fn stats(knit: &Knit) -> Value {
    knit.api("/api/v1/stats").await
}

#[tokio::test]
async fn e01_binary_mode_with_json_xml_and_opaque_bodies() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    let bodies: [(&str, &[u8]); 3] = [
        ("application/json", br#"{"a": [1, 2]}"#),
        ("application/xml", b"<a><b>1</b></a>"),
        (
            "application/vnd.apache.thrift.binary",
            &[0x80, 0x01, 0x00, 0xff, 0x00],
        ),
    ];
    for (i, (ct, body)) in bodies.iter().enumerate() {
        let id = format!("e01-{i}");
        let r = post_binary(
            &url,
            &[
                ("specversion", "1.0"),
                ("id", &id),
                ("source", "/e01"),
                ("type", "t"),
            ],
            Some(ct),
            body,
        )
        .await;
        assert_eq!(r.status(), 202, "{ct}");
    }
    let got = sink.wait_for(3).await;
    for (ct, body) in bodies {
        let r = got
            .iter()
            .find(|r| r.header("content-type").as_deref() == Some(ct))
            .expect(ct);
        assert_eq!(&r.body[..], body, "{ct} body changed");
    }
}

#[tokio::test]
async fn e02_structured_mode() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    let event = r#"{"specversion":"1.0","id":"e02","source":"/e02","type":"t","subject":"s1","myext":"v","datacontenttype":"application/json","data":{"k":"v"}}"#;
    let r = http()
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body(event)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let got = sink.wait_for(1).await;
    let ev = got[0].event.as_ref().expect("a CloudEvent");
    use cloudevents::AttributesReader;
    assert_eq!(
        (ev.id(), ev.source().as_str(), ev.ty(), ev.subject()),
        ("e02", "/e02", "t", Some("s1"))
    );
    assert_eq!(got[0].ext("myext").as_deref(), Some("v"));
}

#[tokio::test]
async fn e03_batches_are_all_or_nothing() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    let batch = r#"[{"specversion":"1.0","id":"e03-1","source":"/s","type":"t"},{"specversion":"1.0","id":"e03-2","source":"/s","type":"t"}]"#;
    let r = http()
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let bad = r#"[{"specversion":"1.0","id":"e03-3","source":"/s","type":"t"},{"specversion":"1.0","source":"/s","type":"t"}]"#;
    let r = http()
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(bad)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("batch entry 1"));
    assert_eq!(send(&url, "t", "e03-barrier").await.status(), 202);
    let got = sink.wait_for(3).await;
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert!(
        ids.contains(&"e03-1".into()) && ids.contains(&"e03-2".into()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"e03-3".into()),
        "nothing of a rejected batch is delivered"
    );
}

#[tokio::test]
async fn e04_spec_versions_are_kept() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    let r = post_binary(
        &url,
        &[
            ("specversion", "0.3"),
            ("id", "e04"),
            ("source", "/s"),
            ("type", "t"),
        ],
        Some("text/plain"),
        b"hi",
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = post_binary(
        &url,
        &[
            ("specversion", "19.0"),
            ("id", "e04-bad"),
            ("source", "/s"),
            ("type", "t"),
        ],
        None,
        b"",
    )
    .await;
    assert_eq!(r.status(), 400);
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].header("ce-specversion").as_deref(), Some("0.3"));
}

#[tokio::test]
async fn e05_non_post_methods_get_405_with_allow() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let r = http()
            .request(method.clone(), &url)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 405, "{method}");
        assert!(
            r.headers()["allow"]
                .to_str()
                .expect("allow")
                .contains("POST")
        );
    }
    let r = http()
        .request(reqwest::Method::OPTIONS, &url)
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["allow"]
            .to_str()
            .expect("allow")
            .contains("POST")
    );
    assert_eq!(r.headers()["webhook-allowed-origin"], "*");
}

#[tokio::test]
async fn e06_missing_required_attributes_get_400_naming_them() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    let full = [
        ("specversion", "1.0"),
        ("id", "e06"),
        ("source", "/s"),
        ("type", "t"),
    ];
    for missing in ["id", "source", "type", "specversion"] {
        let attrs: Vec<(&str, &str)> = full
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        let r = post_binary(&url, &attrs, Some("application/json"), b"{}").await;
        assert_eq!(r.status(), 400, "without {missing}");
        let body = r.text().await.expect("body");
        assert!(
            body.contains(missing) || body.contains("not a CloudEvent"),
            "{missing}: {body}"
        );
    }
    let r = http()
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    let r = http()
        .post(&url)
        .header("content-type", "application/cloudevents+avro")
        .body("x")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 415);
}

#[tokio::test]
async fn e07_accepted_events_get_202() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    let r = send(&url, "t", "e07").await;
    assert_eq!(r.status(), 202);
    assert!(r.text().await.expect("body").is_empty());
}

#[tokio::test]
async fn e08_unknown_brokers_404_and_malformed_paths_400() {
    let sink = Sink::start().await;
    let (knit, _url) = setup(&sink, "").await;
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

#[tokio::test]
async fn e10_oversized_events_get_413_and_are_not_delivered() {
    let sink = Sink::start().await;
    let (_knit, url) = setup_with(&sink, "", &["--max-event-size", "1024"]).await;
    let big = vec![b'x'; 2048];
    let r = post_binary(
        &url,
        &[
            ("specversion", "1.0"),
            ("id", "big"),
            ("source", "/s"),
            ("type", "t"),
        ],
        Some("text/plain"),
        &big,
    )
    .await;
    assert_eq!(r.status(), 413);
    // Chunked (no Content-Length) bodies are limited too.
    let stream = futures_body(big.clone());
    let r = http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "big2")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .body(stream)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 413);
    assert_eq!(send(&url, "t", "small").await.status(), 202);
    let got = sink.wait_for(1).await;
    assert!(got.iter().all(|r| r.id() == "small"));
}

fn futures_body(bytes: Vec<u8>) -> reqwest::Body {
    // A body of unknown length is sent chunked.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        for chunk in bytes.chunks(512) {
            let _ = tx.send(Ok(chunk.to_vec())).await;
        }
    });
    reqwest::Body::wrap_stream(tokio_stream(rx))
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn e11_hop_limit_rejects_exhausted_events_and_is_stripped() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
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
    let (knit, url) = setup(&sink, "filter: {attributes: {type: wanted}}").await;
    assert_eq!(send(&url, "unwanted", "e15-drop").await.status(), 202);
    eventually("the unmatched event to be counted", || async {
        (stats(&knit).await["unmatched"] == 1).then_some(())
    })
    .await;
    assert_eq!(send(&url, "wanted", "e15-keep").await.status(), 202);
    let got = sink.wait_for(1).await;
    assert!(got.iter().all(|r| r.id() == "e15-keep"));
}

#[tokio::test]
async fn e16_egress_posts_with_prefer_reply_and_kn_namespace() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    send(&url, "t", "e16").await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("prefer").as_deref(), Some("reply"));
    assert_eq!(got[0].header("kn-namespace").as_deref(), Some("default"));
}

#[tokio::test]
async fn e17_delivery_format_forces_structured_mode() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "delivery: {format: json}").await;
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
    let (_knit, url) = setup(&sink, "").await;
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
    let (_knit, url) = setup(&sink, "").await;
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
    let (_knit, url) = setup(&sink, "").await;
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
        (stats(&knit).await["delivered"] == 1).then_some(())
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
    let (_knit, url) = setup(
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
        (stats(&knit).await["dropped"] == 1).then_some(())
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
    let (_knit, url) = setup(
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
    let (knit, url) = setup(
        &sink,
        "delivery: {retry: 2, backoffPolicy: linear, backoffDelay: PT0.1S}",
    )
    .await;
    send(&url, "t", "e26l").await;
    eventually("retries to run out", || async {
        (stats(&knit).await["dropped"] == 1).then_some(())
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
    let (_knit, url) = setup(
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
    let (_knit, url) = setup(
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
    let (_knit, url) = setup(
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
    let (_knit, url) = setup(
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
    let (_knit, url) = setup(
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
    let (_knit, url) = setup(
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

#[tokio::test]
async fn e33_upgrade_requests_are_served_as_http_1_1() {
    let sink = Sink::start().await;
    let (_knit, url) = setup(&sink, "").await;
    let r = http()
        .post(&url)
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
        .header("ce-specversion", "1.0")
        .header("ce-id", "e33")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    sink.wait_for(1).await;
}
