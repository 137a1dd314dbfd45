//! Channels and Subscriptions, written once and run against every channel backend: each
//! scenario is a generic function over [`Backend`]; `channel_suite!` instantiates them per
//! backend (the in-memory channel here; the Kafka and NATS backends add their own line).
//!
//! Checklist items: E14 (fan-out to every subscription), E25 (replies go one hop to `reply`),
//! and the ingress and delivery items that apply to channels (E1–E8, E10, E16, E18, E26–E28).

mod common;

use common::sink::{Reply, Sink};
use common::{Knit, condition, eventually, http, post_binary, send};
use serde_json::json;

/// A channel implementation under test.
trait Backend {
    /// The manifest of a channel named `name`.
    fn channel(name: &str, extra_spec: &str) -> String;
    /// The API plural of its kind.
    fn plural() -> &'static str;
    /// Its `apiVersion`.
    fn api_version() -> &'static str;
    /// Its kind.
    fn kind() -> &'static str;
    /// Extra `knit run` flags it needs.
    fn flags() -> Vec<String> {
        Vec::new()
    }
}

struct Memory;

impl Backend for Memory {
    fn channel(name: &str, extra_spec: &str) -> String {
        format!(
            "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{}\n",
            common::indent(extra_spec, 2)
        )
    }
    fn plural() -> &'static str {
        "inmemorychannels"
    }
    fn api_version() -> &'static str {
        "messaging.knative.dev/v1"
    }
    fn kind() -> &'static str {
        "InMemoryChannel"
    }
}

fn subscription<B: Backend>(name: &str, channel: &str, spec: &str) -> String {
    format!(
        "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  channel: {{apiVersion: {}, kind: {}, name: {channel}}}\n{}\n",
        B::api_version(),
        B::kind(),
        common::indent(spec, 2)
    )
}

fn start<B: Backend>(files: &[(&str, &str)], extra: &[&str]) -> Knit {
    let flags: Vec<String> = B::flags();
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend(extra);
    Knit::start_with(files, &all)
}

async fn e14_every_subscription_gets_every_event<B: Backend>() {
    let sink = Sink::start().await;
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            (
                "s1.yaml",
                &subscription::<B>("s1", "c", &format!("subscriber: {{uri: '{}/a'}}", sink.url)),
            ),
            (
                "s2.yaml",
                &subscription::<B>("s2", "c", &format!("subscriber: {{uri: '{}/a'}}", sink.url)),
            ),
            (
                "s3.yaml",
                &subscription::<B>("s3", "c", &format!("subscriber: {{uri: '{}/b'}}", sink.url)),
            ),
        ],
        &[],
    );
    let url = knit.address(B::plural(), "c").await;
    for s in ["s1", "s2", "s3"] {
        knit.ready("subscriptions", s).await;
    }
    assert_eq!(send(&url, "t", "e14").await.status(), 202);
    let got = sink.wait_for(3).await;
    assert_eq!(got.iter().filter(|r| r.id() == "e14").count(), 3);
    assert_eq!(
        got.iter().filter(|r| r.path == "/a").count(),
        2,
        "one delivery per subscription, even to the same URL"
    );
    let ch = knit.ready(B::plural(), "c").await;
    let subs = ch["status"]["subscribers"]
        .as_array()
        .expect("status.subscribers");
    assert_eq!(subs.len(), 3);
    assert!(subs.iter().all(|s| s["ready"] == "True"));
    assert_eq!(ch["spec"]["subscribers"].as_array().map(Vec::len), Some(3));
}

async fn ingress_follows_the_broker_rules<B: Backend>() {
    let sink = Sink::start().await;
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            (
                "s.yaml",
                &subscription::<B>("s", "c", &format!("subscriber: {{uri: '{}'}}", sink.url)),
            ),
        ],
        &["--max-event-size", "1024"],
    );
    let url = knit.address(B::plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    // E7: exactly 202; E1/E2: binary and structured.
    assert_eq!(send(&url, "t", "bin").await.status(), 202);
    let structured = r#"{"specversion":"1.0","id":"str","source":"/s","type":"t","data":{"x":1}}"#;
    let r = http()
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body(structured)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    // E3: batches, all or nothing.
    let batch = r#"[{"specversion":"1.0","id":"b1","source":"/s","type":"t"},{"specversion":"1.0","source":"/s","type":"t"}]"#;
    let r = http()
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    // E6, E5, E8, E10.
    assert_eq!(
        post_binary(
            &url,
            &[("specversion", "1.0"), ("source", "/s"), ("type", "t")],
            None,
            b""
        )
        .await
        .status(),
        400
    );
    assert_eq!(http().get(&url).send().await.expect("GET").status(), 405);
    assert_eq!(
        send(&format!("{}/channels/default/nope", knit.ingress), "t", "x")
            .await
            .status(),
        404
    );
    let big = vec![b'x'; 4096];
    assert_eq!(
        post_binary(
            &url,
            &[
                ("specversion", "1.0"),
                ("id", "big"),
                ("source", "/s"),
                ("type", "t")
            ],
            Some("text/plain"),
            &big
        )
        .await
        .status(),
        413
    );
    // Host-based addressing, as Knative's channel services: `<name>-kn-channel.<ns>.svc...`.
    let r = http()
        .post(format!("{}/", knit.ingress))
        .header("host", "c-kn-channel.default.svc.cluster.local")
        .header("ce-specversion", "0.3")
        .header("ce-id", "host")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    let got = sink.wait_for(3).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, vec!["bin", "host", "str"]);
    // E4: channels never upgrade the spec version.
    let host = got.iter().find(|r| r.id() == "host").expect("host event");
    assert_eq!(host.header("ce-specversion").as_deref(), Some("0.3"));
}

async fn backpressure_answers_429<B: Backend>() {
    let sink = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        delay: std::time::Duration::from_secs(60),
        ..Default::default()
    });
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            (
                "s.yaml",
                &subscription::<B>("s", "c", &format!("subscriber: {{uri: '{}'}}", sink.url)),
            ),
        ],
        &["--log-capacity", "3"],
    );
    let url = knit.address(B::plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(send(&url, "t", &format!("p{i}")).await.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        3,
        "{statuses:?}"
    );
}

async fn e25_replies_go_one_hop_to_reply<B: Backend>() {
    let subscriber = Sink::start().await;
    let reply = Sink::start().await;
    subscriber.default_reply(Reply::event("reply.t", "r1"));
    reply.default_reply(Reply::event("further.t", "r2"));
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            (
                "s.yaml",
                &subscription::<B>(
                    "s",
                    "c",
                    &format!(
                        "subscriber: {{uri: '{}'}}\nreply: {{uri: '{}'}}",
                        subscriber.url, reply.url
                    ),
                ),
            ),
        ],
        &[],
    );
    let url = knit.address(B::plural(), "c").await;
    let sub = knit.ready("subscriptions", "s").await;
    assert_eq!(
        sub["status"]["physicalSubscription"]["replyUri"],
        reply.url.as_str()
    );
    send(&url, "t", "e25").await;
    let got = reply.wait_for(1).await;
    assert_eq!(got[0].id(), "r1");
    eventually("the delivery to finish", || async {
        (knit.api("/api/v1/stats").await["delivered"] == 1).then_some(())
    })
    .await;
    // The reply destination's own answer goes nowhere: one delivery, one reply, nothing else.
    assert_eq!(subscriber.received().len(), 1);
    assert_eq!(reply.received().len(), 1);
}

async fn replies_without_reply_are_discarded<B: Backend>() {
    let subscriber = Sink::start().await;
    subscriber.default_reply(Reply::event("reply.t", "r1"));
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            (
                "s.yaml",
                &subscription::<B>(
                    "s",
                    "c",
                    &format!("subscriber: {{uri: '{}'}}", subscriber.url),
                ),
            ),
        ],
        &[],
    );
    let url = knit.address(B::plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    send(&url, "t", "x").await;
    eventually("the delivery to count as done", || async {
        (knit.api("/api/v1/stats").await["delivered"] == 1).then_some(())
    })
    .await;
    assert_eq!(subscriber.received().len(), 1);
}

async fn failed_reply_retries_then_dead_letters_the_original<B: Backend>() {
    let subscriber = Sink::start().await;
    let reply = Sink::start().await;
    let dls = Sink::start().await;
    subscriber.default_reply(Reply::event("reply.t", "r1"));
    reply.default_reply(Reply::status(500));
    let spec = format!(
        "subscriber: {{uri: '{}'}}\nreply: {{uri: '{}'}}\ndelivery: {{retry: 1, deadLetterSink: {{uri: '{}'}}}}",
        subscriber.url, reply.url, dls.url
    );
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            ("s.yaml", &subscription::<B>("s", "c", &spec)),
        ],
        &[],
    );
    let url = knit.address(B::plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    send(&url, "t", "orig").await;
    let got = dls.wait_for(1).await;
    assert_eq!(got[0].id(), "orig", "the original event is dead-lettered");
    assert_eq!(
        got[0].ext("knativeerrordest").as_deref(),
        Some(reply.url.as_str())
    );
    assert_eq!(
        subscriber.received().len(),
        2,
        "the whole delivery was retried"
    );
}

async fn subscription_delivery_replaces_the_channels<B: Backend>() {
    let subscriber = Sink::start().await;
    let channel_dls = Sink::start().await;
    let sub_dls = Sink::start().await;
    subscriber.default_reply(Reply::status(503));
    let knit = start::<B>(
        &[
            (
                "c.yaml",
                &B::channel(
                    "c",
                    &format!(
                        "delivery: {{retry: 0, deadLetterSink: {{uri: '{}'}}}}",
                        channel_dls.url
                    ),
                ),
            ),
            (
                "s.yaml",
                &subscription::<B>(
                    "s",
                    "c",
                    &format!(
                        "subscriber: {{uri: '{}'}}\ndelivery: {{retry: 2, deadLetterSink: {{uri: '{}'}}}}",
                        subscriber.url, sub_dls.url
                    ),
                ),
            ),
            (
                "s2.yaml",
                &subscription::<B>(
                    "s2",
                    "c",
                    &format!("subscriber: {{uri: '{}/inherits'}}", subscriber.url),
                ),
            ),
        ],
        &[],
    );
    let url = knit.address(B::plural(), "c").await;
    let s = knit.ready("subscriptions", "s").await;
    assert_eq!(
        s["status"]["physicalSubscription"]["deadLetterSinkUri"],
        sub_dls.url.as_str()
    );
    let s2 = knit.ready("subscriptions", "s2").await;
    assert_eq!(
        s2["status"]["physicalSubscription"]["deadLetterSinkUri"],
        channel_dls.url.as_str()
    );
    send(&url, "t", "d").await;
    sub_dls.wait_for(1).await;
    channel_dls.wait_for(1).await;
    let to_s = subscriber
        .received()
        .iter()
        .filter(|r| r.path == "/")
        .count();
    let to_s2 = subscriber
        .received()
        .iter()
        .filter(|r| r.path == "/inherits")
        .count();
    assert_eq!(
        (to_s, to_s2),
        (3, 1),
        "retry 2 for s, the channel's retry 0 for s2"
    );
}

async fn egress_headers_and_data_are_kept<B: Backend>() {
    let sink = Sink::start().await;
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            (
                "s.yaml",
                &subscription::<B>("s", "c", &format!("subscriber: {{uri: '{}'}}", sink.url)),
            ),
        ],
        &[],
    );
    let url = knit.address(B::plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    let body = b"{ \"spaced\" :  true }";
    post_binary(
        &url,
        &[
            ("specversion", "1.0"),
            ("id", "e18"),
            ("source", "/s"),
            ("type", "t"),
            ("myext", "v"),
        ],
        Some("application/json"),
        body,
    )
    .await;
    let got = sink.wait_for(1).await;
    assert_eq!(&got[0].body[..], body);
    assert_eq!(got[0].header("ce-myext").as_deref(), Some("v"));
    assert_eq!(got[0].header("prefer").as_deref(), Some("reply"));
    assert_eq!(got[0].header("kn-namespace").as_deref(), Some("default"));
}

async fn reply_only_subscriptions_forward<B: Backend>() {
    let reply = Sink::start().await;
    let knit = start::<B>(
        &[
            ("c.yaml", &B::channel("c", "")),
            (
                "s.yaml",
                &subscription::<B>("s", "c", &format!("reply: {{uri: '{}'}}", reply.url)),
            ),
        ],
        &[],
    );
    let url = knit.address(B::plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    send(&url, "t", "fwd").await;
    assert_eq!(reply.wait_for(1).await[0].id(), "fwd");
}

async fn subscription_statuses_use_knative_reasons<B: Backend>() {
    let knit = start::<B>(
        &[
            (
                "s1.yaml",
                &subscription::<B>("s1", "missing", "subscriber: {uri: 'http://127.0.0.1:1/'}"),
            ),
            ("c.yaml", &B::channel("c", "")),
            (
                "s2.yaml",
                &subscription::<B>(
                    "s2",
                    "c",
                    "subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: nope}}",
                ),
            ),
        ],
        &[],
    );
    let s1 = eventually("s1 status", || async {
        knit.object("subscriptions", "s1")
            .await
            .filter(|o| o.get("status").is_some())
    })
    .await;
    assert_eq!(
        condition(&s1, "Ready").expect("Ready")["reason"],
        "ChannelReferenceFailed"
    );
    let s2 = eventually("s2 status", || async {
        knit.object("subscriptions", "s2")
            .await
            .filter(|o| o.get("status").is_some())
    })
    .await;
    assert_eq!(
        condition(&s2, "Ready").expect("Ready")["reason"],
        "SubscriberResolveFailed"
    );
    assert!(
        s2["status"]["physicalSubscription"]
            .get("subscriberUri")
            .is_none()
    );
}

macro_rules! channel_suite {
    ($module:ident, $backend:ty $(, #[$attr:meta])?) => {
        mod $module {
            use super::*;
            $(#[$attr])? #[tokio::test] async fn e14_every_subscription_gets_every_event() { super::e14_every_subscription_gets_every_event::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn ingress_follows_the_broker_rules() { super::ingress_follows_the_broker_rules::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn backpressure_answers_429() { super::backpressure_answers_429::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn e25_replies_go_one_hop_to_reply() { super::e25_replies_go_one_hop_to_reply::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn replies_without_reply_are_discarded() { super::replies_without_reply_are_discarded::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn failed_reply_retries_then_dead_letters_the_original() { super::failed_reply_retries_then_dead_letters_the_original::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn subscription_delivery_replaces_the_channels() { super::subscription_delivery_replaces_the_channels::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn egress_headers_and_data_are_kept() { super::egress_headers_and_data_are_kept::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn reply_only_subscriptions_forward() { super::reply_only_subscriptions_forward::<$backend>().await }
            $(#[$attr])? #[tokio::test] async fn subscription_statuses_use_knative_reasons() { super::subscription_statuses_use_knative_reasons::<$backend>().await }
        }
    };
}

channel_suite!(memory, Memory);

/// A generic Channel is backed by the configured implementation and mirrors its status.
#[tokio::test]
async fn generic_channel_mirrors_its_backing_channel() {
    let sink = Sink::start().await;
    let knit = Knit::start(&[
        (
            "c.yaml",
            "apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: gen, namespace: default}\n",
        ),
        (
            "s.yaml",
            &format!(
                "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {{name: s, namespace: default}}\nspec:\n  channel: {{apiVersion: messaging.knative.dev/v1, kind: Channel, name: gen}}\n  subscriber: {{uri: '{}'}}\n",
                sink.url
            ),
        ),
    ]);
    let ch = knit.ready("channels", "gen").await;
    let imc = knit.ready("inmemorychannels", "gen").await;
    assert_eq!(
        ch["spec"]["channelTemplate"]["kind"], "InMemoryChannel",
        "defaulted from default-ch-webhook"
    );
    assert_eq!(ch["status"]["channel"]["kind"], "InMemoryChannel");
    assert_eq!(ch["status"]["address"], imc["status"]["address"]);
    knit.ready("subscriptions", "s").await;
    let ch = knit.ready("channels", "gen").await;
    assert_eq!(
        ch["status"]["subscribers"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(imc["metadata"]["ownerReferences"][0]["kind"], "Channel");
    let url = ch["status"]["address"]["url"]
        .as_str()
        .expect("address")
        .to_string();
    send(&url, "t", "via-channel").await;
    assert_eq!(sink.wait_for(1).await[0].id(), "via-channel");
}

/// `default-ch-webhook` chooses the implementation of Channels without a template.
#[tokio::test]
async fn default_channel_comes_from_default_ch_webhook() {
    let knit = Knit::start(&[
        (
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: default-ch-webhook, namespace: knative-eventing}\ndata:\n  default-ch-config: |\n    clusterDefault:\n      apiVersion: messaging.knative.dev/v1\n      kind: InMemoryChannel\n    namespaceDefaults:\n      default:\n        apiVersion: messaging.knative.dev/v1beta1\n        kind: KafkaChannel\n        spec: {numPartitions: 3}\n",
        ),
        (
            "c.yaml",
            "apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: k, namespace: default}\n",
        ),
    ]);
    let ch = eventually("the channel status", || async {
        knit.object("channels", "k")
            .await
            .filter(|o| o.get("status").is_some())
    })
    .await;
    assert_eq!(ch["spec"]["channelTemplate"]["kind"], "KafkaChannel");
    let kc = eventually("the backing KafkaChannel", || async {
        knit.object("kafkachannels", "k").await
    })
    .await;
    assert_eq!(kc["spec"]["numPartitions"], json!(3));
}
