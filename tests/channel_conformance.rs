//! Channels and Subscriptions, written once and run against every channel backend: each
//! scenario is a generic function over [`Backend`]; `channel_suite!` instantiates them per
//! backend (the in-memory channel here; the Kafka and NATS backends add their own line).
//!
//! Checklist items, named by number: E8 (channel addressing by path and host), E14 (fan-out to
//! every subscription) and E25 (replies go one hop to `reply`). The ingress and delivery items
//! channels share with brokers (E1–E7, E10, E16–E21, E23, E26–E31, E33) run for every channel
//! backend in `ingress.rs` and `delivery.rs`; E9 and E32 belong to the durable backends.

mod common;

use common::route::Backend;
use common::sink::{Reply, Sink};
use common::{Knit, condition, eventually, http, send};
use serde_json::json;

fn start(b: Backend, files: &[(&str, &str)], extra: &[&str]) -> Knit {
    b.start(files, extra)
}

async fn e14_every_subscription_gets_every_event(b: Backend) {
    let sink = Sink::start().await;
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            (
                "s1.yaml",
                &b.subscription("s1", "c", &format!("subscriber: {{uri: '{}/a'}}", sink.url)),
            ),
            (
                "s2.yaml",
                &b.subscription("s2", "c", &format!("subscriber: {{uri: '{}/a'}}", sink.url)),
            ),
            (
                "s3.yaml",
                &b.subscription("s3", "c", &format!("subscriber: {{uri: '{}/b'}}", sink.url)),
            ),
        ],
        &[],
    );
    let url = knit.address(b.plural(), "c").await;
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
    let ch = knit.ready(b.plural(), "c").await;
    let subs = ch["status"]["subscribers"]
        .as_array()
        .expect("status.subscribers");
    assert_eq!(subs.len(), 3);
    assert!(subs.iter().all(|s| s["ready"] == "True"));
    assert_eq!(ch["spec"]["subscribers"].as_array().map(Vec::len), Some(3));
}

/// A channel `c` with a Subscription `s` to `sink`; the channel's address once Ready.
async fn channel_to(b: Backend, sink: &Sink, flags: &[&str]) -> (Knit, String) {
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            (
                "s.yaml",
                &b.subscription("s", "c", &format!("subscriber: {{uri: '{}'}}", sink.url)),
            ),
        ],
        flags,
    );
    let url = knit.address(b.plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    (knit, url)
}

async fn e08_addressing_by_path_and_host(b: Backend) {
    let sink = Sink::start().await;
    let (knit, _url) = channel_to(b, &sink, &[]).await;
    assert_eq!(
        send(&format!("{}/channels/default/nope", knit.ingress), "t", "x")
            .await
            .status(),
        404
    );
    assert_eq!(
        send(&format!("{}/channels/a/b/c", knit.ingress), "t", "x")
            .await
            .status(),
        400
    );
    // Knative's channel services: `Host: <name>-kn-channel.<ns>.svc...` with path `/`.
    let r = http()
        .post(format!("{}/", knit.ingress))
        .header("host", "c-kn-channel.default.svc.cluster.local")
        .header("ce-specversion", "1.0")
        .header("ce-id", "by-host")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202);
    assert_eq!(sink.wait_for(1).await[0].id(), "by-host");
}

/// A subscription whose subscriber never answers does not hold back another one on the same
/// channel, nor the channel's ingress.
async fn a_stuck_subscription_does_not_hold_back_others(b: Backend) {
    let stuck = Sink::start().await;
    stuck.default_reply(Reply {
        status: 202,
        delay: std::time::Duration::from_secs(60),
        ..Default::default()
    });
    let healthy = Sink::start().await;
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            (
                "stuck.yaml",
                &b.subscription(
                    "stuck",
                    "c",
                    &format!("subscriber: {{uri: '{}'}}", stuck.url),
                )
                .replacen(
                    "metadata: {name: stuck, namespace: default}",
                    "metadata: {name: stuck, namespace: default, annotations: {knit.dev/max-in-flight: '2'}}",
                    1,
                ),
            ),
            (
                "ok.yaml",
                &b.subscription("ok", "c", &format!("subscriber: {{uri: '{}'}}", healthy.url)),
            ),
        ],
        &["--log-capacity", "5"],
    );
    let url = knit.address(b.plural(), "c").await;
    knit.ready("subscriptions", "stuck").await;
    knit.ready("subscriptions", "ok").await;
    for i in 0..40 {
        assert_eq!(
            send(&url, "t", &format!("p{i}")).await.status(),
            202,
            "event {i}"
        );
    }
    let got = healthy.wait_for(40).await;
    assert_eq!(got.len(), 40);
}

async fn e25_replies_go_one_hop_to_reply(b: Backend) {
    let subscriber = Sink::start().await;
    let reply = Sink::start().await;
    subscriber.default_reply(Reply::event("reply.t", "r1"));
    reply.default_reply(Reply::event("further.t", "r2"));
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            (
                "s.yaml",
                &b.subscription(
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
    let url = knit.address(b.plural(), "c").await;
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

async fn e25_replies_without_a_reply_destination_are_discarded(b: Backend) {
    let subscriber = Sink::start().await;
    subscriber.default_reply(Reply::event("reply.t", "r1"));
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            (
                "s.yaml",
                &b.subscription(
                    "s",
                    "c",
                    &format!("subscriber: {{uri: '{}'}}", subscriber.url),
                ),
            ),
        ],
        &[],
    );
    let url = knit.address(b.plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    send(&url, "t", "x").await;
    eventually("the delivery to count as done", || async {
        (knit.api("/api/v1/stats").await["delivered"] == 1).then_some(())
    })
    .await;
    assert_eq!(subscriber.received().len(), 1);
}

async fn e25_a_failed_reply_retries_then_dead_letters_the_original(b: Backend) {
    let subscriber = Sink::start().await;
    let reply = Sink::start().await;
    let dls = Sink::start().await;
    subscriber.default_reply(Reply::event("reply.t", "r1"));
    reply.default_reply(Reply::status(500));
    let spec = format!(
        "subscriber: {{uri: '{}'}}\nreply: {{uri: '{}'}}\ndelivery: {{retry: 1, deadLetterSink: {{uri: '{}'}}}}",
        subscriber.url, reply.url, dls.url
    );
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            ("s.yaml", &b.subscription("s", "c", &spec)),
        ],
        &[],
    );
    let url = knit.address(b.plural(), "c").await;
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

async fn subscription_delivery_replaces_the_channels(b: Backend) {
    let subscriber = Sink::start().await;
    let channel_dls = Sink::start().await;
    let sub_dls = Sink::start().await;
    subscriber.default_reply(Reply::status(503));
    let knit = start(b,
        &[
            (
                "c.yaml",
                &b.channel(
                    "c",
                    &format!(
                        "delivery: {{retry: 0, deadLetterSink: {{uri: '{}'}}}}",
                        channel_dls.url
                    ),
                ),
            ),
            (
                "s.yaml",
                &b.subscription(
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
                &b.subscription(
                    "s2",
                    "c",
                    &format!("subscriber: {{uri: '{}/inherits'}}", subscriber.url),
                ),
            ),
        ],
        &[],
    );
    let url = knit.address(b.plural(), "c").await;
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

async fn reply_only_subscriptions_forward(b: Backend) {
    let reply = Sink::start().await;
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            (
                "s.yaml",
                &b.subscription("s", "c", &format!("reply: {{uri: '{}'}}", reply.url)),
            ),
        ],
        &[],
    );
    let url = knit.address(b.plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    send(&url, "t", "fwd").await;
    assert_eq!(reply.wait_for(1).await[0].id(), "fwd");
}

async fn subscription_statuses_use_knative_reasons(b: Backend) {
    let knit = start(b,
        &[
            (
                "s1.yaml",
                &b.subscription("s1", "missing", "subscriber: {uri: 'http://127.0.0.1:1/'}"),
            ),
            ("c.yaml", &b.channel("c", "")),
            (
                "s2.yaml",
                &b.subscription(
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
    // Until a Kafka channel's topic is ready the reason is the channel's; then the subscriber's.
    let s2 = eventually("s2 to say its subscriber does not resolve", || async {
        knit.object("subscriptions", "s2").await.filter(|o| {
            condition(o, "Ready").is_some_and(|c| c["reason"] == "SubscriberResolveFailed")
        })
    })
    .await;
    assert_eq!(condition(&s2, "Ready").expect("Ready")["status"], "False");
    assert!(
        s2["status"]["physicalSubscription"]
            .get("subscriberUri")
            .is_none()
    );
}

macro_rules! channel_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn e14_every_subscription_gets_every_event() {
                super::e14_every_subscription_gets_every_event($backend).await
            }
            #[tokio::test]
            async fn e08_addressing_by_path_and_host() {
                super::e08_addressing_by_path_and_host($backend).await
            }
            #[tokio::test]
            async fn a_stuck_subscription_does_not_hold_back_others() {
                super::a_stuck_subscription_does_not_hold_back_others($backend).await
            }
            #[tokio::test]
            async fn e25_replies_go_one_hop_to_reply() {
                super::e25_replies_go_one_hop_to_reply($backend).await
            }
            #[tokio::test]
            async fn e25_replies_without_a_reply_destination_are_discarded() {
                super::e25_replies_without_a_reply_destination_are_discarded($backend).await
            }
            #[tokio::test]
            async fn e25_a_failed_reply_retries_then_dead_letters_the_original() {
                super::e25_a_failed_reply_retries_then_dead_letters_the_original($backend).await
            }
            #[tokio::test]
            async fn subscription_delivery_replaces_the_channels() {
                super::subscription_delivery_replaces_the_channels($backend).await
            }
            #[tokio::test]
            async fn reply_only_subscriptions_forward() {
                super::reply_only_subscriptions_forward($backend).await
            }
            #[tokio::test]
            async fn subscription_statuses_use_knative_reasons() {
                super::subscription_statuses_use_knative_reasons($backend).await
            }
        }
    };
}

channel_suite!(memory, Backend::Memory);
#[cfg(feature = "kafka")]
channel_suite!(kafka, Backend::Kafka);
#[cfg(feature = "nats")]
channel_suite!(nats, Backend::Nats);

/// On the bounded memory log, a subscription annotated `knit.dev/overflow: block` pushes back:
/// once it is `--log-capacity` events behind, the channel answers 429 with `Retry-After`.
#[tokio::test]
async fn memory_backpressure_with_overflow_block_answers_429() {
    let b = Backend::Memory;
    let sink = Sink::start().await;
    sink.default_reply(Reply {
        status: 202,
        delay: std::time::Duration::from_secs(60),
        ..Default::default()
    });
    let knit = start(
        b,
        &[
            ("c.yaml", &b.channel("c", "")),
            (
                "s.yaml",
                &b.subscription("s", "c", &format!("subscriber: {{uri: '{}'}}", sink.url))
                    .replacen(
                        "metadata: {name: s, namespace: default}",
                        "metadata: {name: s, namespace: default, annotations: {knit.dev/overflow: block, knit.dev/max-in-flight: '1'}}",
                        1,
                    ),
            ),
        ],
        &["--log-capacity", "3"],
    );
    let url = knit.address(b.plural(), "c").await;
    knit.ready("subscriptions", "s").await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = send(&url, "t", &format!("p{i}")).await;
        if r.status() == 429 {
            assert_eq!(
                r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                Some("1")
            );
        }
        statuses.push(r.status().as_u16());
    }
    // One in flight, one read ahead (twice the in-flight limit), three waiting: then 429.
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert!((3..=5).contains(&accepted), "{statuses:?}");
    assert!(
        statuses[accepted..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
}

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
