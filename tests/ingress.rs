//! Ingress conformance, written once for every address an event can be posted to: a Broker's
//! and a channel's (of every backend). One test per data-plane checklist item of
//! eventing-spec §3 about accepting events (E1–E7, E10, E33), named by number;
//! `ingress_suite!` instantiates them per route. Addressing (E8) and the Broker's hop limit
//! (E11) differ between brokers and channels and live in `broker_conformance.rs` and
//! `channel_conformance.rs`.

mod common;

use common::route::{Backend, Via};
use common::sink::Sink;
use common::{http, post_binary, send};

async fn e01_binary_mode_with_json_xml_and_opaque_bodies(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
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

async fn e02_structured_mode(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
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

async fn e03_batches_are_all_or_nothing(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
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

async fn e04_spec_versions_are_kept(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
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

async fn e05_non_post_methods_get_405_with_allow(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
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

async fn e06_missing_required_attributes_get_400_naming_them(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
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

async fn e07_accepted_events_get_202(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
    let r = send(&url, "t", "e07").await;
    assert_eq!(r.status(), 202);
    assert!(r.text().await.expect("body").is_empty());
}

async fn e10_oversized_events_get_413_and_are_not_delivered(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &["--max-event-size", "1024"]).await;
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

async fn e33_upgrade_requests_are_served_as_http_1_1(via: Via) {
    let sink = Sink::start().await;
    let (_knit, url) = via.start(&sink, "", &[]).await;
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

macro_rules! ingress_suite {
    ($module:ident, $via:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn e01_binary_mode_with_json_xml_and_opaque_bodies() {
                super::e01_binary_mode_with_json_xml_and_opaque_bodies($via).await
            }
            #[tokio::test]
            async fn e02_structured_mode() {
                super::e02_structured_mode($via).await
            }
            #[tokio::test]
            async fn e03_batches_are_all_or_nothing() {
                super::e03_batches_are_all_or_nothing($via).await
            }
            #[tokio::test]
            async fn e04_spec_versions_are_kept() {
                super::e04_spec_versions_are_kept($via).await
            }
            #[tokio::test]
            async fn e05_non_post_methods_get_405_with_allow() {
                super::e05_non_post_methods_get_405_with_allow($via).await
            }
            #[tokio::test]
            async fn e06_missing_required_attributes_get_400_naming_them() {
                super::e06_missing_required_attributes_get_400_naming_them($via).await
            }
            #[tokio::test]
            async fn e07_accepted_events_get_202() {
                super::e07_accepted_events_get_202($via).await
            }
            #[tokio::test]
            async fn e10_oversized_events_get_413_and_are_not_delivered() {
                super::e10_oversized_events_get_413_and_are_not_delivered($via).await
            }
            #[tokio::test]
            async fn e33_upgrade_requests_are_served_as_http_1_1() {
                super::e33_upgrade_requests_are_served_as_http_1_1($via).await
            }
        }
    };
}

ingress_suite!(broker, Via::Trigger(Backend::Memory));
#[cfg(feature = "kafka")]
ingress_suite!(kafka_broker, Via::Trigger(Backend::Kafka));
#[cfg(feature = "nats")]
ingress_suite!(nats_broker, Via::Trigger(Backend::Nats));
ingress_suite!(memory_channel, Via::Subscription(Backend::Memory));
#[cfg(feature = "kafka")]
ingress_suite!(kafka_channel, Via::Subscription(Backend::Kafka));
#[cfg(feature = "nats")]
ingress_suite!(nats_channel, Via::Subscription(Backend::Nats));
