//! Hostile input at the ingress: typed attributes in every mode, the hop limit against reply
//! loops, refusals a client that writes first can read, and the listener's limits.

mod common;

use std::process::Command;

use common::sink::{Reply, Sink};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A valid event in structured mode, with `extra` members merged in.
fn structured(extra: Value) -> Value {
    let mut ev = json!({"specversion": "1.0", "id": "x", "source": "/s", "type": "t"});
    if let (Some(o), Some(e)) = (ev.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    ev
}

async fn post_json(url: &str, content_type: &str, body: &Value) -> (u16, String) {
    let r = http()
        .post(url)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn status_text(r: reqwest::Response) -> (u16, String) {
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_hop_counter_is_a_32_bit_integer_and_capped() {
    let looping = Sink::start().await;
    looping.default_reply(Reply::event("loop", "again"));
    let (knit, url) = broker_with_trigger(
        &looping,
        "filter: {attributes: {type: loop}}\ndelivery: {retry: 0}",
    )
    .await;
    let base = [
        ("specversion", "1.0"),
        ("source", "/s"),
        ("type", "not-loop"),
    ];
    for bad in [
        "abc",
        "-9223372036854775808",
        "2147483648",
        "1.5",
        "0x10",
        "",
    ] {
        let mut a = base.to_vec();
        a.extend([("id", "bad"), ("knativebrokerttl", bad)]);
        let (status, text) = status_text(post_binary(&url, &a, None, b"").await).await;
        assert_eq!(status, 400, "{bad:?}: {text}");
        assert!(text.contains("knativebrokerttl"), "{bad:?}: {text}");
    }
    for bad in [json!("abc"), json!(1.5), json!(4294967296_i64), json!(true)] {
        let ev = structured(json!({ "knativebrokerttl": bad }));
        let (status, text) = post_json(&url, "application/cloudevents+json", &ev).await;
        assert_eq!(status, 400, "{bad}: {text}");
        let (status, text) =
            post_json(&url, "application/cloudevents-batch+json", &json!([ev])).await;
        assert_eq!(status, 400, "batch {bad}: {text}");
    }

    // A sender asking for two billion hops gets the broker's 255: the self-loop ends after
    // 254 deliveries (255 lowered to the default, decremented at each of the 255 entries, the
    // last of which is refused).
    let a = [
        ("specversion", "1.0"),
        ("source", "/s"),
        ("id", "loop"),
        ("type", "loop"),
        ("knativebrokerttl", "2147483647"),
    ];
    assert_eq!(post_binary(&url, &a, None, b"").await.status(), 202);
    eventually("the loop to end", || async {
        (knit.api("/api/v1/stats").await["dropped"] == 1).then_some(())
    })
    .await;
    assert_eq!(looping.received().len(), 254);
}

/// What is tried, its binary-mode headers, its structured-mode members, the expected status.
type Case = (&'static str, Vec<(&'static str, String)>, Value, u16);

fn cases() -> Vec<Case> {
    let many: Vec<(&'static str, String)> = Vec::new();
    let mut many_json = serde_json::Map::new();
    for i in 0..65 {
        many_json.insert(format!("ext{i}"), json!("v"));
    }
    vec![
        ("a valid event", vec![], json!({}), 202),
        (
            "time with an offset",
            vec![("ce-time", "1996-12-19T16:39:57-08:00".into())],
            json!({"time": "1996-12-19T16:39:57-08:00"}),
            202,
        ),
        (
            "time without seconds",
            vec![("ce-time", "2018-04-05T17:31Z".into())],
            json!({"time": "2018-04-05T17:31Z"}),
            400,
        ),
        (
            "time with an offset out of range",
            vec![("ce-time", "2018-04-05T17:31:00+25:00".into())],
            json!({"time": "2018-04-05T17:31:00+25:00"}),
            400,
        ),
        (
            "time without a zone",
            vec![("ce-time", "2018-04-05T17:31:00".into())],
            json!({"time": "2018-04-05T17:31:00"}),
            400,
        ),
        (
            "an empty time",
            vec![("ce-time", String::new())],
            json!({"time": ""}),
            400,
        ),
        (
            "a datacontenttype that is no media type",
            vec![("content-type", "json".into())],
            json!({"datacontenttype": "json"}),
            400,
        ),
        (
            "an empty datacontenttype",
            vec![("content-type", String::new())],
            json!({"datacontenttype": ""}),
            400,
        ),
        (
            "a media type with parameters",
            vec![("content-type", "text/plain; charset=\"utf-8\"".into())],
            json!({"datacontenttype": "text/plain; charset=\"utf-8\""}),
            202,
        ),
        (
            "a relative dataschema",
            vec![("ce-dataschema", "/schema".into())],
            json!({"dataschema": "/schema"}),
            400,
        ),
        (
            "an empty dataschema",
            vec![("ce-dataschema", String::new())],
            json!({"dataschema": ""}),
            400,
        ),
        (
            "an absolute dataschema",
            vec![("ce-dataschema", "https://example.com/s.json".into())],
            json!({"dataschema": "https://example.com/s.json"}),
            202,
        ),
        (
            "a source that is no URI-reference",
            vec![("ce-source", "a source".into())],
            json!({"source": "a source"}),
            400,
        ),
        (
            "a URN source",
            vec![("ce-source", "urn:event:from:myapi/resource/123".into())],
            json!({"source": "urn:event:from:myapi/resource/123"}),
            202,
        ),
        (
            "an empty subject",
            vec![("ce-subject", String::new())],
            json!({"subject": ""}),
            400,
        ),
        (
            "an empty extension",
            vec![("ce-myext", String::new())],
            json!({"myext": ""}),
            400,
        ),
        (
            "an extension name of 65 characters",
            vec![(
                "ce-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "v".into(),
            )],
            json!({ "a".repeat(65): "v" }),
            400,
        ),
        (
            "a malformed timestamp extension",
            vec![("ce-recordedtime", "yesterday".into())],
            json!({"recordedtime": "yesterday"}),
            400,
        ),
        ("65 extensions", many, Value::Object(many_json), 400),
    ]
}

#[tokio::test]
async fn attributes_are_typed_in_binary_and_structured_mode_and_in_batches() {
    let sink = Sink::start().await;
    let (_knit, url) = broker_with_trigger(&sink, "").await;
    for (what, headers, members, expected) in cases() {
        // Binary mode (the 65-extension case is structured only; headers are capped apart).
        if members.as_object().is_none_or(|m| m.len() != 65) {
            let mut req = http()
                .post(&url)
                .header("ce-specversion", "1.0")
                .header("ce-type", "t")
                .header("ce-id", "x");
            if !headers.iter().any(|(k, _)| *k == "ce-source") {
                req = req.header("ce-source", "/s");
            }
            for (k, v) in &headers {
                req = req.header(*k, v.as_str());
            }
            let (status, text) = status_text(req.body("{}").send().await.expect("POST")).await;
            assert_eq!(status, expected, "binary, {what}: {text}");
        }
        let ev = structured(members);
        let (status, text) = post_json(&url, "application/cloudevents+json", &ev).await;
        assert_eq!(status, expected, "structured, {what}: {text}");
        let ok = structured(json!({"id": "fine"}));
        let (status, text) =
            post_json(&url, "application/cloudevents-batch+json", &json!([ok, ev])).await;
        assert_eq!(status, expected, "batch, {what}: {text}");
        if expected == 400 {
            assert!(text.contains("entry 1"), "batch, {what}: {text}");
        }
    }
    // Numbers in structured mode are 32-bit integers.
    for (n, expected) in [
        (json!(7), 202),
        (json!(-2147483648_i64), 202),
        (json!(2147483648_i64), 400),
        (json!(1.5), 400),
        (json!(1e3), 400),
    ] {
        let ev = structured(json!({ "num": n }));
        let (status, text) = post_json(&url, "application/cloudevents+json", &ev).await;
        assert_eq!(status, expected, "num {n}: {text}");
    }
    // An empty batch is a valid batch: accepted, nothing delivered.
    let (status, _) = post_json(&url, "application/cloudevents-batch+json", &json!([])).await;
    assert_eq!(status, 202);
    // Attributes given twice in binary mode are refused.
    let r = http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-type", "t")
        .header("ce-source", "/s")
        .header("ce-id", "a")
        .header("ce-id", "b")
        .send()
        .await
        .expect("POST");
    let (status, text) = status_text(r).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("twice"), "{text}");
}

#[tokio::test]
async fn batches_are_bounded() {
    let sink = Sink::start().await;
    let (_knit, url) = broker_with_trigger(&sink, "").await;
    let batch: Vec<Value> = (0..1001)
        .map(|i| structured(json!({ "id": format!("e{i}") })))
        .collect();
    let (status, text) = post_json(
        &url,
        "application/cloudevents-batch+json",
        &Value::Array(batch),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("1000"), "{text}");
}

/// Run the write-everything-then-read Python client.
fn write_then_read(url: &str, size: usize, extra: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(repo("tests/clients/python/write_then_read.py"))
        .arg(url)
        .arg(size.to_string())
        .args(extra)
        .output()
        .expect("python3");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn refusals_reach_a_client_that_writes_its_whole_body_first() {
    let sink = Sink::start().await;
    let (knit, url) = broker_with_trigger_flags(&sink, "", &["--max-event-size", "1024"]).await;
    let big = 8 * 1024 * 1024;
    let cases: Vec<(String, Vec<&str>, u16, &str)> = vec![
        (url.clone(), vec![], 413, "larger than 1024"),
        (url.clone(), vec!["--chunked"], 413, "larger than 1024"),
        (
            format!("{}/default/nobody", knit.ingress),
            vec![],
            404,
            "no broker",
        ),
        (
            format!("{}/x/y/z/w", knit.ingress),
            vec![],
            400,
            "malformed path",
        ),
        (url.clone(), vec!["--method", "PUT"], 405, "only POST"),
    ];
    for (target, flags, status, says) in cases {
        let got = write_then_read(&target, big, &flags);
        assert_eq!(got["status"], status, "{target} {flags:?}: {got}");
        let body = got["body"].as_str().unwrap_or_default();
        assert!(body.contains(says), "{target} {flags:?}: {got}");
    }
    // The connection stays usable when the refused body was drained in full: a small request
    // after a refused one on the same client works.
    assert_eq!(send(&url, "t", "after").await.status(), 202);
    sink.wait_for(1).await;
}

#[tokio::test]
async fn the_listener_bounds_heads_and_slow_clients() {
    let sink = Sink::start().await;
    let (knit, url) =
        broker_with_trigger_flags(&sink, "", &["--header-timeout", "1", "--body-timeout", "1"])
            .await;
    // Too many headers, or a head too large: 431.
    let mut req = http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-type", "t")
        .header("ce-source", "/s")
        .header("ce-id", "h");
    for i in 0..200 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = req.send().await.expect("answered");
    assert_eq!(r.status(), 431);
    let r = http()
        .post(&url)
        .header("x-big", "v".repeat(100 * 1024))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 431);

    // A slow-loris client: half a head, then nothing. It is disconnected; others are served.
    let addr = knit.ingress.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"POST /default/b HTTP/1.1\r\nhost: x\r\nce-id: 1\r\n")
        .await
        .expect("write");
    assert_eq!(send(&url, "t", "while-slow").await.status(), 202);
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a client sending half a head is disconnected"
    );
    drop(slow);

    // A slow body: the head arrives, the body never completes. 408, readable.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(
        b"POST /default/b HTTP/1.1\r\nhost: x\r\nce-specversion: 1.0\r\nce-id: 1\r\nce-source: /s\r\nce-type: t\r\ncontent-length: 100\r\n\r\n0123456789",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the slow body is answered");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(slow);
}

/// A knit of its own with the default head timeout: with the 1 s one above, the idle connections
/// were closed as slow heads whenever a busy machine took over a second to start the fifth.
#[tokio::test]
async fn the_listener_refuses_a_clients_connections_beyond_its_share() {
    let sink = Sink::start().await;
    let (knit, url) =
        broker_with_trigger_flags(&sink, "", &["--connections-per-client", "4"]).await;
    let addr = knit.ingress.trim_start_matches("http://").to_string();
    // The fifth open connection from this address is answered 429, readably even while it
    // writes a body.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    let got = eventually("the fifth connection to be refused", || async {
        let got = write_then_read(&url, 256 * 1024, &[]);
        (got["status"] == 429).then_some(got)
    })
    .await;
    assert!(
        got["body"]
            .as_str()
            .unwrap_or_default()
            .contains("too many connections"),
        "{got}"
    );
    drop(idle);
    eventually("connections to be accepted again", || async {
        (send(&url, "t", "again").await.status() == 202).then_some(())
    })
    .await;
}
