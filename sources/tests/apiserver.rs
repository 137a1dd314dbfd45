//! ApiServerSource against a fake API server served in-process: existing objects emit
//! nothing, changes emit Knative's events in order, a watch ended by 410 Gone is re-listed
//! without duplicate `add`s (but with what changed meanwhile), and the label selector,
//! owner, namespace selector and Subscriptions API filters hold.

#[path = "../../tests/common/fake_kube.rs"]
mod fake_kube;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use fake_kube::{FakeKube, default_kinds};
use knit_channels::Event;
use knit_crds::api::eventing::SubscriptionsApiFilter;
use knit_crds::contract::{Adapter, ApiServerAdapter, ApiServerMode, Source, WatchedResource};
use knit_dispatcher::sender::Sender;
use knit_dispatcher::webhook::Webhooks;
use knit_dispatcher::{EventFilter, Reporter, Shared, Stats};
use knit_sources::logs::Logs;
use knit_sources::{Config, Ctx, FilterFactory, Runtime};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(20);

/// What the sink received.
#[derive(Clone, Debug)]
struct Got {
    ty: String,
    subject: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Got>>>);

impl Sink {
    async fn start(&self) -> String {
        let got = self.0.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: Bytes| {
                let got = got.clone();
                async move {
                    let h: BTreeMap<String, String> = headers
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect();
                    let g = Got {
                        ty: h.get("ce-type").cloned().unwrap_or_default(),
                        subject: h.get("ce-subject").cloned().unwrap_or_default(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        headers: h,
                    };
                    got.lock().unwrap_or_else(|e| e.into_inner()).push(g);
                    StatusCode::ACCEPTED
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        format!("http://{addr}/")
    }

    fn events(&self) -> Vec<Got> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Wait until an event with `ty` and a subject ending in `/name` arrived; return all so far.
    async fn until(&self, ty: &str, name: &str) -> Vec<Got> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let evs = self.events();
            if evs
                .iter()
                .any(|g| g.ty == ty && g.subject.ends_with(&format!("/{name}")))
            {
                return evs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {ty} of {name}; got {:?}",
                summary(&evs)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn summary(evs: &[Got]) -> Vec<(String, String)> {
    evs.iter()
        .map(|g| (g.ty.clone(), g.subject.clone()))
        .collect()
}

/// Builds only `exact` filters (enough here; knit wires the broker's dialects).
struct ExactFilters;

struct Exact(BTreeMap<String, String>);

impl EventFilter for Exact {
    fn matches(&self, event: &Event) -> bool {
        self.0
            .iter()
            .all(|(k, v)| event.attribute(k).as_deref() == Some(v.as_str()))
    }
}

impl FilterFactory for ExactFilters {
    fn build(
        &self,
        filters: &[SubscriptionsApiFilter],
    ) -> knit_sources::Result<Arc<dyn EventFilter>> {
        let mut all = BTreeMap::new();
        for f in filters {
            all.extend(f.exact.clone());
        }
        Ok(Arc::new(Exact(all)))
    }
}

fn runtime(kubeconfig: Option<&std::path::Path>) -> (Runtime, Arc<Reporter>) {
    let report = Arc::new(Reporter::new());
    let ctx = Ctx {
        dispatch: Shared {
            sender: Sender::new().expect("sender"),
            stats: Arc::new(Stats::default()),
        },
        report: report.clone(),
        webhooks: Arc::new(Webhooks::new()),
        filters: Arc::new(ExactFilters),
        logs: Arc::new(Logs::new()),
        config: Config {
            kubeconfig: kubeconfig.map(|p| p.to_path_buf()),
            ..Default::default()
        },
        on_spawn: None,
        coordination: None,
    };
    (Runtime::new(ctx), report)
}

fn source(sink: &str, adapter: ApiServerAdapter) -> Source {
    Source {
        uid: "uid-1".into(),
        reference: "ApiServerSource/demo/watcher".into(),
        namespace: "demo".into(),
        name: "watcher".into(),
        sink: sink.into(),
        dead_letter_sink: None,
        delivery: Default::default(),
        overrides: Default::default(),
        adapter: Adapter::ApiServer(adapter),
        auth: None,
    }
}

fn pods(mode: ApiServerMode, label_selector: Option<&str>) -> ApiServerAdapter {
    ApiServerAdapter {
        resources: vec![WatchedResource {
            api_version: "v1".into(),
            kind: "Pod".into(),
            label_selector: label_selector.map(str::to_string),
        }],
        owner: None,
        mode,
        namespaces: vec!["demo".into()],
        namespace_selector: None,
        filters: Vec::new(),
    }
}

fn pod(ns: &str, name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": {"n": 1}})
}

/// Wait until the source reports ready.
async fn ready(report: &Reporter, uid: &str) {
    let mut rx = report.subscribe();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = rx.borrow_and_update().objects.get(uid).cloned();
        if state.as_ref().is_some_and(|s| s.ready) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "source not ready: {state:?}");
        let _ = tokio::time::timeout(left, rx.changed()).await;
    }
}

/// Wait until the source reports not ready with a reason; return it.
async fn not_ready_reason(report: &Reporter, uid: &str) -> String {
    let mut rx = report.subscribe();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = rx.borrow_and_update().objects.get(uid).cloned();
        if let Some(s) = state.filter(|s| !s.ready && !s.reason.is_empty()) {
            return s.reason;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no report");
        let _ = tokio::time::timeout(left, rx.changed()).await;
    }
}

fn short(evs: &[Got], prefix: &str) -> Vec<(String, String)> {
    summary(evs)
        .into_iter()
        .map(|(t, s)| {
            (
                t.trim_start_matches(prefix).to_string(),
                s.rsplit('/').next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn existing_objects_are_silent_and_changes_arrive_in_order() {
    let kube = FakeKube::start(default_kinds()).await;
    kube.put("Pod", pod("demo", "old", json!({})));
    kube.put("Pod", pod("elsewhere", "other", json!({})));
    let sink = Sink::default();
    let url = sink.start().await;
    let (rt, report) = runtime(Some(kube.kubeconfig()));
    rt.apply(&[source(&url, pods(ApiServerMode::Reference, None))]);
    ready(&report, "uid-1").await;

    kube.put("Pod", pod("demo", "new", json!({})));
    kube.put("Pod", pod("demo", "new", json!({"changed": "yes"})));
    kube.delete("Pod", "demo", "old");
    kube.put("Pod", pod("elsewhere", "other2", json!({})));
    kube.put("Pod", pod("demo", "sentinel", json!({})));
    let evs = sink
        .until("dev.knative.apiserver.ref.add", "sentinel")
        .await;
    assert_eq!(
        short(&evs, "dev.knative.apiserver.ref."),
        pairs(&[
            ("add", "new"),
            ("update", "new"),
            ("delete", "old"),
            ("add", "sentinel")
        ])
    );
    let first = &evs[0];
    assert_eq!(first.subject, "/apis/v1/namespaces/demo/pods/new");
    assert_eq!(
        first.body,
        json!({"kind": "Pod", "namespace": "demo", "name": "new", "apiVersion": "v1"})
    );
    let h = |k: &str| first.headers.get(k).map(String::as_str);
    assert_eq!(h("ce-source"), Some(kube.url.as_str()));
    assert_eq!(h("ce-kind"), Some("Pod"));
    assert_eq!(h("ce-apiversion"), Some("v1"));
    assert_eq!(h("ce-name"), Some("new"));
    assert_eq!(h("ce-namespace"), Some("demo"));
    assert!(h("ce-time").is_some());
    assert_ne!(h("ce-id"), evs[1].headers.get("ce-id").map(String::as_str));
    assert!(
        kube.watches()
            .iter()
            .all(|q| q.get("allowWatchBookmarks").map(String::as_str) == Some("true")),
        "bookmarks are asked for"
    );
    rt.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_watch_ended_by_410_is_relisted_without_duplicate_adds() {
    let kube = FakeKube::start(default_kinds()).await;
    for name in ["a", "b", "c"] {
        kube.put("Pod", pod("demo", name, json!({})));
    }
    let sink = Sink::default();
    let url = sink.start().await;
    let (rt, report) = runtime(Some(kube.kubeconfig()));
    rt.apply(&[source(&url, pods(ApiServerMode::Resource, None))]);
    ready(&report, "uid-1").await;

    kube.put("Pod", pod("demo", "d", json!({})));
    sink.until("dev.knative.apiserver.resource.add", "d").await;
    kube.bookmark();
    // The watch stalls: these changes reach no open watch, then it ends with 410 Gone.
    kube.hold();
    kube.put("Pod", pod("demo", "b", json!({"v": "2"})));
    kube.delete("Pod", "demo", "c");
    kube.put("Pod", pod("demo", "e", json!({})));
    let lists = kube.lists();
    kube.gone();
    sink.until("dev.knative.apiserver.resource.delete", "c")
        .await;
    assert!(kube.lists() > lists, "the client listed again");
    kube.put("Pod", pod("demo", "sentinel", json!({})));
    let evs = sink
        .until("dev.knative.apiserver.resource.add", "sentinel")
        .await;
    assert_eq!(
        short(&evs, "dev.knative.apiserver.resource."),
        pairs(&[
            ("add", "d"),
            ("update", "b"),
            ("add", "e"),
            ("delete", "c"),
            ("add", "sentinel"),
        ])
    );
    // Resource mode: the whole object, with its kind restored (list items carry none).
    let update = &evs[1];
    assert_eq!(update.body["kind"], "Pod");
    assert_eq!(update.body["apiVersion"], "v1");
    assert_eq!(update.body["metadata"]["labels"]["v"], "2");
    assert_eq!(update.body["spec"]["n"], 1);
    assert_eq!(evs[3].body["metadata"]["name"], "c");
    rt.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn label_selector_and_owner_filter_what_is_sent() {
    let kube = FakeKube::start(default_kinds()).await;
    let sink = Sink::default();
    let url = sink.start().await;
    let (rt, report) = runtime(Some(kube.kubeconfig()));
    let mut cfg = pods(ApiServerMode::Reference, Some("app=web"));
    cfg.owner = Some(("apps/v1".into(), "ReplicaSet".into()));
    rt.apply(&[source(&url, cfg)]);
    ready(&report, "uid-1").await;

    let owned = |name: &str, labels: Value, kind: &str, controller: bool| {
        let mut p = pod("demo", name, labels);
        p["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": kind, "name": "rs", "uid": "rs-uid",
            "controller": controller
        }]);
        p
    };
    kube.put("Pod", owned("unlabelled", json!({}), "ReplicaSet", true));
    kube.put("Pod", pod("demo", "orphan", json!({"app": "web"})));
    kube.put(
        "Pod",
        owned("other-owner", json!({"app": "web"}), "StatefulSet", true),
    );
    kube.put(
        "Pod",
        owned("not-controller", json!({"app": "web"}), "ReplicaSet", false),
    );
    kube.put(
        "Pod",
        owned("wanted", json!({"app": "web"}), "ReplicaSet", true),
    );
    let evs = sink.until("dev.knative.apiserver.ref.add", "wanted").await;
    assert_eq!(
        short(&evs, "dev.knative.apiserver.ref."),
        pairs(&[("add", "wanted")])
    );
    assert!(
        kube.watches()
            .iter()
            .all(|q| q.get("labelSelector").map(String::as_str) == Some("app=web")),
        "the selector is applied by the server"
    );
    rt.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn subscriptions_api_filters_apply_before_sending() {
    let kube = FakeKube::start(default_kinds()).await;
    let sink = Sink::default();
    let url = sink.start().await;
    let (rt, report) = runtime(Some(kube.kubeconfig()));
    let mut cfg = pods(ApiServerMode::Reference, None);
    cfg.filters = vec![SubscriptionsApiFilter {
        exact: [(
            "type".to_string(),
            "dev.knative.apiserver.ref.delete".to_string(),
        )]
        .into(),
        ..Default::default()
    }];
    rt.apply(&[source(&url, cfg)]);
    ready(&report, "uid-1").await;
    kube.put("Pod", pod("demo", "p", json!({})));
    kube.put("Pod", pod("demo", "p", json!({"x": "y"})));
    kube.delete("Pod", "demo", "p");
    let evs = sink.until("dev.knative.apiserver.ref.delete", "p").await;
    assert_eq!(evs.len(), 1, "{:?}", summary(&evs));
    rt.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_namespace_selector_picks_namespaces_by_label_as_they_change() {
    let kube = FakeKube::start(default_kinds()).await;
    kube.put(
        "Namespace",
        json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}),
    );
    kube.put(
        "Namespace",
        json!({"metadata": {"name": "team-b", "labels": {"team": "b"}}}),
    );
    let sink = Sink::default();
    let url = sink.start().await;
    let (rt, report) = runtime(Some(kube.kubeconfig()));
    let mut cfg = pods(ApiServerMode::Reference, None);
    cfg.namespaces = Vec::new();
    cfg.namespace_selector = Some("team=a".into());
    rt.apply(&[source(&url, cfg)]);
    ready(&report, "uid-1").await;
    kube.put("Pod", pod("team-b", "ignored", json!({})));
    kube.put("Pod", pod("team-a", "seen", json!({})));
    sink.until("dev.knative.apiserver.ref.add", "seen").await;
    // team-b joins the selection: its new pods are reported from then on.
    kube.put(
        "Namespace",
        json!({"metadata": {"name": "team-b", "labels": {"team": "a"}}}),
    );
    let deadline = Instant::now() + PATIENCE;
    let mut n = 0;
    loop {
        n += 1;
        kube.put("Pod", pod("team-b", &format!("joined-{n}"), json!({})));
        let evs = sink.events();
        if evs.iter().any(|g| g.subject.contains("/team-b/")) {
            assert!(
                !evs.iter().any(|g| g.subject.ends_with("/ignored")),
                "{:?}",
                summary(&evs)
            );
            break;
        }
        assert!(Instant::now() < deadline, "team-b never selected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rt.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn without_a_kubeconfig_the_source_says_so() {
    let (rt, report) = runtime(None);
    rt.apply(&[source(
        "http://127.0.0.1:9/",
        pods(ApiServerMode::Reference, None),
    )]);
    assert_eq!(not_ready_reason(&report, "uid-1").await, "NoKubernetesAPI");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_unknown_kind_is_not_ready_with_the_reason() {
    let kube = FakeKube::start(default_kinds()).await;
    let (rt, report) = runtime(Some(kube.kubeconfig()));
    let mut cfg = pods(ApiServerMode::Reference, None);
    cfg.resources[0].kind = "Widget".into();
    rt.apply(&[source("http://127.0.0.1:9/", cfg)]);
    assert_eq!(not_ready_reason(&report, "uid-1").await, "ResourceNotFound");
    rt.shutdown(Duration::from_secs(1)).await;
}
