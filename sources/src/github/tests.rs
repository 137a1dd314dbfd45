//! The adapter against a fake GitHub API and a recording sink, both local axum servers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{any, post};
use bytes::Bytes;
use knit_crds::api::eventing::SubscriptionsApiFilter;
use knit_crds::contract::{Adapter, DeliveryPolicy, GitHubAdapter, Source};
use knit_dispatcher::webhook::Webhooks;
use knit_dispatcher::{EventFilter, Reporter, Shared};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::*;
use crate::logs::Logs;
use crate::runtime::FilterFactory;

const SECRET: &str = "It's a Secret to Everybody";
const PATH: &str = "/github/default/gh";
const URL: &str = "http://knit.example/github/default/gh";

struct NoFilters;
impl FilterFactory for NoFilters {
    fn build(&self, _: &[SubscriptionsApiFilter]) -> crate::Result<Arc<dyn EventFilter>> {
        Err(crate::Error::Config("no filters here".into()))
    }
}

#[derive(Default)]
struct Api {
    calls: Mutex<Vec<(Method, String, Value)>>,
    failures_left: AtomicU32,
    existing: Mutex<Vec<Value>>,
}

async fn api(
    State(s): State<Arc<Api>>,
    method: Method,
    uri: axum::http::Uri,
    body: Bytes,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.calls
        .lock()
        .push((method.clone(), uri.path().to_string(), body));
    if s.failures_left.load(Ordering::SeqCst) > 0 {
        s.failures_left.fetch_sub(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials"}).to_string(),
        );
    }
    match method {
        Method::GET => (
            StatusCode::OK,
            Value::Array(s.existing.lock().clone()).to_string(),
        ),
        Method::POST => (
            StatusCode::CREATED,
            json!({"id": 77, "config": {"url": URL}}).to_string(),
        ),
        Method::PATCH => {
            let id: u64 = uri
                .path()
                .rsplit('/')
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            (StatusCode::OK, json!({"id": id}).to_string())
        }
        Method::DELETE => (StatusCode::NO_CONTENT, String::new()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
}

#[derive(Default)]
struct Sink {
    got: Mutex<Vec<(HeaderMap, Bytes)>>,
    fail: AtomicBool,
}

async fn sink(State(s): State<Arc<Sink>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if s.fail.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    s.got.lock().push((headers, body));
    StatusCode::OK
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn source(api_url: &str, sink: &str, event_types: &[&str]) -> Source {
    Source {
        uid: "uid-gh".into(),
        reference: "GitHubSource/default/gh".into(),
        namespace: "default".into(),
        name: "gh".into(),
        sink: sink.into(),
        dead_letter_sink: None,
        delivery: DeliveryPolicy {
            retry: 1,
            backoff: None,
            backoff_delay_ms: 0,
            backoff_max_ms: None,
            timeout_ms: Some(5_000),
            retry_after_max_ms: None,
            format: None,
        },
        overrides: BTreeMap::from([("team".to_string(), "blue".to_string())]),
        adapter: Adapter::GitHub(GitHubAdapter {
            auth: None,
            path: PATH.into(),
            url: URL.into(),
            owner_and_repository: "octo/hello".into(),
            event_types: event_types.iter().map(|s| s.to_string()).collect(),
            secret_token: SECRET.into(),
            access_token: "tok".into(),
            api_url: api_url.into(),
            secure: false,
        }),
        auth: None,
    }
}

fn ctx(webhooks: Arc<Webhooks>, report: Arc<Reporter>) -> Arc<Ctx> {
    let sender = knit_dispatcher::sender::Sender::new().expect("sender");
    Arc::new(Ctx {
        dispatch: Shared {
            sender,
            stats: Arc::default(),
        },
        report,
        webhooks,
        filters: Arc::new(NoFilters),
        logs: Arc::new(Logs::new()),
        config: Default::default(),
        on_spawn: None,
        coordination: None,
    })
}

fn signed(event: &str, delivery: &str, body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-github-event", event.parse().expect("event"));
    h.insert("x-github-delivery", delivery.parse().expect("delivery"));
    h.insert(
        signature::SHA256_HEADER,
        signature::sign_sha256(SECRET.as_bytes(), body)
            .parse()
            .expect("sig"),
    );
    h
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report_of(report: &Reporter, uid: &str) -> Option<knit_crds::contract::ObjectReport> {
    report.subscribe().borrow().objects.get(uid).cloned()
}

#[tokio::test]
async fn receives_registers_and_deletes() {
    let api_state = Arc::new(Api::default());
    api_state.failures_left.store(1, Ordering::SeqCst);
    let api_url = serve(
        Router::new()
            .route("/{*rest}", any(api))
            .with_state(api_state.clone()),
    )
    .await;
    let sink_state = Arc::new(Sink::default());
    let sink_url = serve(
        Router::new()
            .route("/", post(sink))
            .with_state(sink_state.clone()),
    )
    .await;

    let webhooks = Arc::new(Webhooks::new());
    let report = Arc::new(Reporter::new());
    let src = Arc::new(source(&api_url, &format!("{sink_url}/"), &[]));
    let (stop_tx, stop) = StopSignal::never();
    let task = tokio::spawn(run(ctx(webhooks.clone(), report.clone()), src, stop));

    // The receiver works before the registration succeeds.
    let hook = until("the receiver", || webhooks.get(PATH)).await;
    // The first attempt fails with GitHub's message, then the retry registers.
    let first = until("a report", || {
        report_of(&report, "uid-gh").filter(|r| r.message.contains("Bad credentials"))
    })
    .await;
    assert_eq!(first.reason, NOT_CONFIGURED);
    let ready = until("ready", || report_of(&report, "uid-gh").filter(|r| r.ready)).await;
    assert_eq!(
        ready.annotations.get(HOOK_ID_KEY).map(String::as_str),
        Some("77")
    );
    {
        let calls = api_state.calls.lock();
        let (m, p, body) = calls.last().expect("a call");
        assert_eq!((m, p.as_str()), (&Method::POST, "/repos/octo/hello/hooks"));
        assert_eq!(body["config"]["url"], URL);
        assert_eq!(body["config"]["secret"], SECRET);
        assert_eq!(body["config"]["insecure_ssl"], "1");
        assert_eq!(body["config"]["content_type"], "json");
        assert_eq!(body["events"], json!(["*"]));
        assert_eq!(body["name"], "web");
    }

    // A signed push arrives with its attributes and the very bytes sent.
    let body = Bytes::from_static(br#"{ "ref":"refs/heads/main","compare":"https://github.com/octo/hello/compare/abc...def", "created":false,"deleted":false,"forced":true,"pusher":{"name":"octo"},"repository":{"id":1,"name":"hello","owner":{"login":"octo"}},"sender":{"login":"octo"},"extra":1.50}"#);
    let answer = hook
        .handle(signed("push", "d-1", &body), body.clone())
        .await;
    assert_eq!(answer, WebhookResponse::new(202, "accepted"));
    let (headers, got) = sink_state.got.lock().first().cloned().expect("delivered");
    assert_eq!(got, body);
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        h("ce-type").as_deref(),
        Some("dev.knative.source.github.push")
    );
    assert_eq!(
        h("ce-source").as_deref(),
        Some("https://github.com/octo/hello")
    );
    assert_eq!(h("ce-id").as_deref(), Some("d-1"));
    assert_eq!(h("ce-subject").as_deref(), Some("abc...def"));
    assert_eq!(h("ce-forced").as_deref(), Some("true"));
    assert_eq!(h("ce-pusher").as_deref(), Some("octo"));
    assert_eq!(h("ce-team").as_deref(), Some("blue"));
    assert_eq!(h("content-type").as_deref(), Some("application/json"));

    // Refusals: nothing more arrives.
    let mut bad = signed("push", "d-2", b"other");
    assert_eq!(hook.handle(bad.clone(), body.clone()).await.status, 401);
    bad.remove(signature::SHA256_HEADER);
    assert_eq!(hook.handle(bad, body.clone()).await.status, 401);
    let mut no_event = signed("push", "d-3", &body);
    no_event.remove("x-github-event");
    assert_eq!(hook.handle(no_event, body.clone()).await.status, 400);
    let mut no_delivery = signed("push", "d-4", &body);
    no_delivery.remove("x-github-delivery");
    assert_eq!(hook.handle(no_delivery, body.clone()).await.status, 400);
    let text = Bytes::from_static(b"payload=%7B%7D");
    assert_eq!(
        hook.handle(signed("push", "d-5", &text), text).await.status,
        400
    );
    let ping = Bytes::from_static(br#"{"zen":"x","hook_id":77}"#);
    assert_eq!(
        hook.handle(signed("ping", "d-6", &ping), ping).await.status,
        200
    );
    assert_eq!(sink_state.got.lock().len(), 1);

    // A sink that keeps failing: 502 with the reason.
    sink_state.fail.store(true, Ordering::SeqCst);
    let answer = hook
        .handle(signed("push", "d-7", &body), body.clone())
        .await;
    assert_eq!(answer.status, 502, "{answer:?}");
    assert!(answer.body.contains("not delivered"), "{answer:?}");

    // Deleted: the hook is deleted at GitHub and the receiver is gone.
    stop_tx.send_replace(Some(Stop::Removed));
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops")
        .expect("joins");
    let calls = api_state.calls.lock();
    let (m, p, _) = calls.last().expect("a call");
    assert_eq!(
        (m, p.as_str()),
        (&Method::DELETE, "/repos/octo/hello/hooks/77")
    );
    assert!(webhooks.get(PATH).is_none());
}

#[tokio::test]
async fn reuses_an_existing_hook_filters_types_and_keeps_it_on_shutdown() {
    let api_state = Arc::new(Api::default());
    api_state.existing.lock().extend([
        json!({"id": 5, "config": {"url": "https://elsewhere.example/"}}),
        json!({"id": 9, "config": {"url": URL, "secret": "********"}}),
    ]);
    let api_url = serve(
        Router::new()
            .route("/{*rest}", any(api))
            .with_state(api_state.clone()),
    )
    .await;
    let sink_state = Arc::new(Sink::default());
    let sink_url = serve(
        Router::new()
            .route("/", post(sink))
            .with_state(sink_state.clone()),
    )
    .await;
    let webhooks = Arc::new(Webhooks::new());
    let report = Arc::new(Reporter::new());
    let src = Arc::new(source(&api_url, &format!("{sink_url}/"), &["issues"]));
    let (stop_tx, stop) = StopSignal::never();
    let task = tokio::spawn(run(ctx(webhooks.clone(), report.clone()), src, stop));

    let ready = until("ready", || report_of(&report, "uid-gh").filter(|r| r.ready)).await;
    assert_eq!(
        ready.annotations.get(HOOK_ID_KEY).map(String::as_str),
        Some("9")
    );
    {
        let calls = api_state.calls.lock();
        let (m, p, body) = calls.last().expect("a call");
        assert_eq!(
            (m, p.as_str()),
            (&Method::PATCH, "/repos/octo/hello/hooks/9")
        );
        assert_eq!(body["events"], json!(["issues"]));
        assert_eq!(body["config"]["secret"], SECRET);
    }
    let hook = webhooks.get(PATH).expect("receiver");
    let body = Bytes::from_static(br#"{"action":"opened","issue":{"number":3}}"#);
    let pushed = hook
        .handle(signed("push", "d-1", &body), body.clone())
        .await;
    assert_eq!(pushed.status, 200);
    assert!(pushed.body.starts_with("not forwarded"), "{pushed:?}");
    assert_eq!(
        hook.handle(signed("issues", "d-2", &body), body.clone())
            .await
            .status,
        202
    );
    let got = sink_state.got.lock().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].0.get("ce-subject").and_then(|v| v.to_str().ok()),
        Some("3")
    );

    stop_tx.send_replace(Some(Stop::Shutdown));
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops")
        .expect("joins");
    assert!(
        api_state
            .calls
            .lock()
            .iter()
            .all(|(m, _, _)| *m != Method::DELETE)
    );
    assert!(webhooks.get(PATH).is_none());
}

#[test]
fn legacy_signature_accepted_without_sha256() {
    let mut h = HeaderMap::new();
    h.insert(
        "x-hub-signature",
        signature::sign_sha1(SECRET.as_bytes(), b"{}")
            .parse()
            .expect("sig"),
    );
    assert_eq!(
        signature::verify(SECRET.as_bytes(), &h, b"{}"),
        Ok(signature::Algorithm::Sha1)
    );
}

#[tokio::test]
async fn the_receiver_is_replaced_not_removed_by_its_predecessor() {
    let webhooks = Arc::new(Webhooks::new());
    let report = Arc::new(Reporter::new());
    // An API that does not answer at all: registration keeps failing, the receiver stays.
    let src = Arc::new(source("http://127.0.0.1:9", "http://127.0.0.1:9/", &[]));
    let c = ctx(webhooks.clone(), report.clone());
    let (old_tx, old_stop) = StopSignal::never();
    let old = tokio::spawn(run(c.clone(), src.clone(), old_stop));
    let first = until("first receiver", || webhooks.get(PATH)).await;
    let (_new_tx, new_stop) = StopSignal::never();
    let _new = tokio::spawn(run(c, src, new_stop));
    until("second receiver", || {
        webhooks.get(PATH).filter(|h| !Arc::ptr_eq(h, &first))
    })
    .await;
    old_tx.send_replace(Some(Stop::Replaced));
    tokio::time::timeout(Duration::from_secs(10), old)
        .await
        .expect("stops")
        .expect("joins");
    assert!(webhooks.get(PATH).is_some_and(|h| !Arc::ptr_eq(&h, &first)));
    let r = until("not ready", || {
        report_of(&report, "uid-gh").filter(|r| !r.ready && r.message.contains("127.0.0.1:9"))
    })
    .await;
    assert_eq!(r.reason, NOT_CONFIGURED);
}
