//! A recording sink: records every request (headers, body, the event as the official Rust
//! CloudEvents SDK decodes it) and answers with scripted responses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request the sink received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Request method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// The event, decoded by cloudevents-sdk (independent of Knit's own binding).
    pub event: Option<cloudevents::Event>,
}

impl Received {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The event's id.
    pub fn id(&self) -> String {
        use cloudevents::AttributesReader;
        self.event
            .as_ref()
            .map(|e| e.id().to_string())
            .unwrap_or_default()
    }

    /// An extension of the event as text.
    pub fn ext(&self, name: &str) -> Option<String> {
        self.event.as_ref()?.extension(name).map(|v| v.to_string())
    }
}

/// A scripted answer.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// Status (202 when zero).
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Answer before `delay` passed once this turns true.
    pub until: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Reply {
    /// A 200 with a binary-mode reply event of this type and id carrying JSON `data`.
    pub fn event_with(ty: &str, id: &str, data: &serde_json::Value) -> Self {
        let mut r = Reply::event(ty, id);
        r.body = serde_json::to_vec(data).unwrap_or_default();
        r
    }

    /// Just a status.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            ..Default::default()
        }
    }

    /// A 200 with a binary-mode reply event.
    pub fn event(ty: &str, id: &str) -> Self {
        Reply {
            status: 200,
            headers: vec![
                ("ce-specversion".into(), "1.0".into()),
                ("ce-id".into(), id.into()),
                ("ce-source".into(), "/reply".into()),
                ("ce-type".into(), ty.into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: br#"{"reply":true}"#.to_vec(),
            delay: Duration::ZERO,
            until: None,
        }
    }
}

/// Computes the answer from the request.
pub type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

#[derive(Default)]
struct Inner {
    handler: Option<Handler>,
    in_flight: usize,
    max_in_flight: usize,
    received: Vec<Received>,
    script: VecDeque<Reply>,
    default: Reply,
}

/// A running sink.
#[derive(Clone)]
pub struct Sink {
    inner: Arc<Mutex<Inner>>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let event = cloudevents::binding::http::to_event(&parts.headers, body.to_vec()).ok();
    let reply = {
        let mut g = inner.lock().expect("sink lock");
        g.in_flight += 1;
        g.max_in_flight = g.max_in_flight.max(g.in_flight);
        g.received.push(Received {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
            body: body.clone(),
            at: Instant::now(),
            event,
        });
        let last = g.received.last().cloned();
        match (g.script.pop_front(), &g.handler, last) {
            (Some(r), _, _) => r,
            (None, Some(h), Some(req)) => h(&req),
            _ => g.default.clone(),
        }
    };
    if !reply.delay.is_zero() {
        let sleep = tokio::time::sleep(reply.delay);
        match reply.until.clone() {
            Some(mut until) => {
                let released = async {
                    // A dropped sender never releases.
                    if until.wait_for(|v| *v).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    _ = sleep => {}
                    _ = released => {}
                }
            }
            None => sleep.await,
        }
    }
    inner.lock().expect("sink lock").in_flight -= 1;
    let status = StatusCode::from_u16(if reply.status == 0 { 202 } else { reply.status })
        .unwrap_or(StatusCode::ACCEPTED);
    let mut resp = (status, reply.body).into_response();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

impl Sink {
    /// Start a sink on an ephemeral loopback port.
    pub async fn start() -> Sink {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink { inner, url }
    }

    /// Answer the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().expect("lock").script.extend(replies);
    }

    /// Answer every unscripted request with what `handler` computes from it.
    pub fn respond_with(&self, handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) {
        self.inner.lock().expect("lock").handler = Some(Arc::new(handler));
    }

    /// Answer every unscripted request with `reply`.
    pub fn default_reply(&self, reply: Reply) {
        self.inner.lock().expect("lock").default = reply;
    }

    /// The most requests the sink was handling at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().expect("lock").max_in_flight
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("lock").received.clone()
    }

    /// The event id and arrival time of each request after the first `from`, in arrival order:
    /// a cheap way to follow a stream of thousands (`received` copies every request).
    pub fn arrivals_since(&self, from: usize) -> Vec<(String, Instant)> {
        let g = self.inner.lock().expect("lock");
        g.received
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(|r| (r.id(), r.at))
            .collect()
    }

    /// Wait until at least `n` requests arrived; returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        super::eventually(&format!("{n} requests at {}", self.url), || async {
            let r = self.received();
            (r.len() >= n).then_some(r)
        })
        .await
    }
}
