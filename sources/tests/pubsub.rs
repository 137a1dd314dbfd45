//! The CloudPubSubSource adapter against the real Pub/Sub emulator (`PUBSUB_EMULATOR_HOST`,
//! started by scripts/test), driven through a sources [`Runtime`] built here: messages
//! published with attributes reach a local sink in push format; a message the sink drops is
//! not acknowledged and arrives again; removing the source deletes its subscription.
//! Under `CI=true` a missing emulator fails the tests; locally they are skipped, loudly.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use knit_crds::api::eventing::SubscriptionsApiFilter;
use knit_crds::contract::{Adapter, DeliveryPolicy, PubSubAdapter, Source};
use knit_dispatcher::webhook::Webhooks;
use knit_dispatcher::{EventFilter, Reporter, Sender, Shared, Stats};
use knit_sources::logs::Logs;
use knit_sources::pubsub::client::{Client, Outgoing};
use knit_sources::{Config, Ctx, FilterFactory, Runtime};
use parking_lot::Mutex;

/// Longer than `PULL_TIMEOUT`: a subscription deleted outside is noticed at the next pull.
const PATIENCE: Duration = Duration::from_secs(45);

fn emulator() -> Option<String> {
    match std::env::var("PUBSUB_EMULATOR_HOST") {
        Ok(h) if !h.is_empty() => Some(h),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PUBSUB_EMULATOR_HOST is not set: scripts/test starts the emulator (scripts/pubsub-emulator)"
            );
            eprintln!(
                "!!! SKIPPED: PUBSUB_EMULATOR_HOST is not set (run `export PUBSUB_EMULATOR_HOST=$(scripts/pubsub-emulator)`)"
            );
            None
        }
    }
}

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

struct NoFilters;
impl FilterFactory for NoFilters {
    fn build(&self, _: &[SubscriptionsApiFilter]) -> knit_sources::Result<Arc<dyn EventFilter>> {
        Err(knit_sources::Error::Config("no filters here".into()))
    }
}

fn runtime(emulator: Option<String>) -> Runtime {
    Runtime::new(Ctx {
        dispatch: Shared {
            sender: Sender::new().expect("sender"),
            stats: Arc::new(Stats::default()),
        },
        report: Arc::new(Reporter::new()),
        webhooks: Arc::new(Webhooks::default()),
        filters: Arc::new(NoFilters),
        logs: Arc::new(Logs::new()),
        config: Config {
            kubeconfig: None,
            pubsub_emulator_host: emulator,
        },
        on_spawn: None,
        coordination: None,
    })
}

/// What the sink got: (ce-id, ce-type, ce-source, body), and how many requests.
#[derive(Default)]
struct Got {
    events: Mutex<Vec<(String, String, String, Bytes)>>,
    requests: AtomicUsize,
    fail_first: usize,
}

async fn sink(fail_first: usize) -> (String, Arc<Got>) {
    let got = Arc::new(Got {
        fail_first,
        ..Default::default()
    });
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::post(
                |State(got): State<Arc<Got>>, headers: HeaderMap, body: Bytes| async move {
                    let n = got.requests.fetch_add(1, Ordering::SeqCst);
                    if n < got.fail_first {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    got.events
                        .lock()
                        .push((h("ce-id"), h("ce-type"), h("ce-source"), body));
                    StatusCode::OK
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/"), got)
}

fn source(uid: &str, sink: &str, project: &str, topic: &str, sub: &str) -> Source {
    Source {
        uid: uid.into(),
        reference: format!("CloudPubSubSource/default/{uid}"),
        namespace: "default".into(),
        name: uid.into(),
        sink: sink.into(),
        dead_letter_sink: None,
        delivery: DeliveryPolicy::default(),
        overrides: BTreeMap::new(),
        adapter: Adapter::PubSub(PubSubAdapter {
            project: project.into(),
            topic: topic.into(),
            subscription: sub.into(),
            ack_deadline_seconds: 30,
            retain_acked_messages: false,
            retention_seconds: Some(600),
        }),
        auth: None,
    }
}

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ready_annotations(rt: &Runtime, uid: &str) -> Option<BTreeMap<String, String>> {
    let report = rt.ctx().report.subscribe().borrow().clone();
    let o = report.objects.get(uid)?;
    o.ready.then(|| o.annotations.clone())
}

#[tokio::test]
async fn published_messages_arrive_in_push_format_and_the_subscription_goes_with_the_source() {
    let Some(host) = emulator() else { return };
    let s = suffix();
    let (project, topic, sub) = (
        format!("proj-{s}"),
        format!("topic-{s}"),
        format!("knit-{s}"),
    );
    let (url, got) = sink(0).await;
    let rt = runtime(Some(host.clone()));
    let src = source("ps1", &url, &project, &topic, &sub);
    rt.apply(std::slice::from_ref(&src));
    let ann = eventually("the source to be ready", || async {
        ready_annotations(&rt, "ps1")
    })
    .await;
    assert_eq!(ann.get("subscriptionId"), Some(&sub));
    assert_eq!(ann.get("projectId"), Some(&project));

    let client = Client::emulator(&host).expect("client");
    let full_topic = format!("projects/{project}/topics/{topic}");
    let messages: Vec<Outgoing> = (0..5)
        .map(|i| Outgoing {
            data: format!("payload {i}").into_bytes(),
            attributes: BTreeMap::from([("n".to_string(), i.to_string())]),
        })
        .collect();
    let ids = client
        .publish(&full_topic, &messages)
        .await
        .expect("publish");
    assert_eq!(ids.len(), 5);

    eventually("5 events at the sink", || async {
        (got.events.lock().len() >= 5).then_some(())
    })
    .await;
    let events = got.events.lock().clone();
    let mut by_id = HashMap::new();
    for (id, ty, source, body) in events {
        assert_eq!(ty, "google.cloud.pubsub.topic.v1.messagePublished");
        assert_eq!(
            source,
            format!("//pubsub.googleapis.com/projects/{project}/topics/{topic}")
        );
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json data");
        assert_eq!(v["subscription"], sub.as_str());
        assert_eq!(v["message"]["messageId"], id.as_str());
        by_id.insert(id, v);
    }
    for (i, id) in ids.iter().enumerate() {
        let v = by_id
            .get(id)
            .unwrap_or_else(|| panic!("message {id} missing"));
        assert_eq!(v["message"]["attributes"]["n"], i.to_string());
        let data = v["message"]["data"].as_str().unwrap_or_default();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64");
        assert_eq!(bytes, format!("payload {i}").into_bytes());
    }

    let sub_name = format!("projects/{project}/subscriptions/{sub}");
    assert!(client.get_subscription(&sub_name).await.is_ok());
    rt.apply(&[]);
    eventually("the subscription to be deleted", || async {
        client
            .get_subscription(&sub_name)
            .await
            .err()
            .filter(|e| e.not_found())
    })
    .await;
    // The topic stays.
    assert!(!client.create_topic(&full_topic).await.expect("topic"));
}

#[tokio::test]
async fn a_message_the_sink_dropped_is_not_acked_and_arrives_again() {
    let Some(host) = emulator() else { return };
    let s = suffix();
    let (project, topic, sub) = (
        format!("proj-{s}"),
        format!("topic-{s}"),
        format!("knit-{s}"),
    );
    // No retries: each of the first three attempts is a dropped delivery.
    let (url, got) = sink(3).await;
    let rt = runtime(Some(host.clone()));
    rt.apply(&[source("ps2", &url, &project, &topic, &sub)]);
    eventually("the source to be ready", || async {
        ready_annotations(&rt, "ps2")
    })
    .await;
    let client = Client::emulator(&host).expect("client");
    let ids = client
        .publish(
            &format!("projects/{project}/topics/{topic}"),
            &[Outgoing {
                data: b"precious".to_vec(),
                attributes: BTreeMap::new(),
            }],
        )
        .await
        .expect("publish");
    eventually("the message after redeliveries", || async {
        (!got.events.lock().is_empty()).then_some(())
    })
    .await;
    assert!(got.requests.load(Ordering::SeqCst) >= 4);
    let events = got.events.lock().clone();
    assert_eq!(events[0].0, ids[0]);
    let v: serde_json::Value = serde_json::from_slice(&events[0].3).expect("json");
    assert!(v["message"].get("attributes").is_none(), "{v}");
    rt.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn without_the_emulator_the_source_says_why_it_cannot_run() {
    let rt = runtime(None);
    rt.apply(&[source("ps3", "http://127.0.0.1:9/", "proj", "topic", "sub")]);
    let o = eventually("a report", || async {
        rt.ctx()
            .report
            .subscribe()
            .borrow()
            .objects
            .get("ps3")
            .cloned()
    })
    .await;
    assert!(!o.ready);
    assert_eq!(o.reason, "CredentialsNotSupported");
    assert!(o.message.contains("PUBSUB_EMULATOR_HOST"), "{}", o.message);
}

#[tokio::test]
async fn an_unreachable_pubsub_is_reported_with_the_reason() {
    // Port 9 (discard) on loopback: nothing listens there.
    let rt = runtime(Some("127.0.0.1:9".into()));
    rt.apply(&[source("ps4", "http://127.0.0.1:9/", "proj", "topic", "sub")]);
    let o = eventually("a report", || async {
        rt.ctx()
            .report
            .subscribe()
            .borrow()
            .objects
            .get("ps4")
            .cloned()
    })
    .await;
    assert!(!o.ready);
    assert_eq!(o.reason, "SubscriptionFailed");
    assert!(
        o.message.contains("projects/proj/topics/topic"),
        "{}",
        o.message
    );
    rt.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_subscription_follows_topic_changes_and_comes_back_when_deleted_outside() {
    let Some(host) = emulator() else { return };
    let s = suffix();
    let (project, sub) = (format!("proj-{s}"), format!("knit-{s}"));
    let (url, got) = sink(0).await;
    let client = Client::emulator(&host).expect("client");
    let sub_name = format!("projects/{project}/subscriptions/{sub}");
    let rt = runtime(Some(host.clone()));
    rt.apply(&[source("ps5", &url, &project, "first-topic", &sub)]);
    eventually("the subscription on the first topic", || async {
        let s = client.get_subscription(&sub_name).await.ok()?;
        (s.topic == format!("projects/{project}/topics/first-topic")).then_some(())
    })
    .await;

    // Same subscription name, another topic: the adapter restarts and moves it.
    let mut moved = source("ps5", &url, &project, "second-topic", &sub);
    if let Adapter::PubSub(cfg) = &mut moved.adapter {
        cfg.ack_deadline_seconds = 45;
    }
    rt.apply(std::slice::from_ref(&moved));
    eventually("the subscription on the second topic", || async {
        let s = client.get_subscription(&sub_name).await.ok()?;
        (s.topic == format!("projects/{project}/topics/second-topic")
            && s.ack_deadline_seconds == 45)
            .then_some(())
    })
    .await;

    // Deleted behind Knit's back: the next pull finds it gone and recreates it.
    assert!(client.delete_subscription(&sub_name).await.expect("delete"));
    eventually("the subscription to come back", || async {
        client.get_subscription(&sub_name).await.ok()
    })
    .await;
    let ids = client
        .publish(
            &format!("projects/{project}/topics/second-topic"),
            &[Outgoing {
                data: b"after".to_vec(),
                attributes: BTreeMap::new(),
            }],
        )
        .await
        .expect("publish");
    eventually("the message after the recreation", || async {
        got.events
            .lock()
            .iter()
            .any(|e| Some(&e.0) == ids.first())
            .then_some(())
    })
    .await;
    rt.shutdown(Duration::from_secs(5)).await;
}
