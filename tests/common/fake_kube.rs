//! A fake Kubernetes API server served in-process for ApiServerSource tests: core (`/api/v1`)
//! discovery, list and watch of the kinds it is given, with resourceVersions, label
//! selectors (`k=v`, `k!=v`, `k`), bookmarks, and watches the test can end with an `ERROR`
//! 410 Gone (after which only a fresh list works, as with a compacted etcd). Plain HTTP, with
//! a kubeconfig file pointing at it.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A kind the fake serves (core group, `v1`).
#[derive(Clone, Debug)]
pub struct Kind {
    /// `Pod`.
    pub kind: &'static str,
    /// `pods`.
    pub plural: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

/// Pods, ConfigMaps and Namespaces.
pub fn default_kinds() -> Vec<Kind> {
    vec![
        Kind {
            kind: "Pod",
            plural: "pods",
            namespaced: true,
        },
        Kind {
            kind: "ConfigMap",
            plural: "configmaps",
            namespaced: true,
        },
        Kind {
            kind: "Namespace",
            plural: "namespaces",
            namespaced: false,
        },
    ]
}

struct Entry {
    rv: u64,
    plural: String,
    old: Option<Value>,
    new: Option<Value>,
}

struct LiveWatch {
    plural: String,
    namespace: Option<String>,
    selector: Option<String>,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    history: Vec<Entry>,
    /// Watches asking for versions at or below this get 410 Gone.
    compacted: u64,
    live: Vec<LiveWatch>,
    /// Changes are recorded but not sent to open watches.
    held: bool,
    lists: usize,
    watches: Vec<HashMap<String, String>>,
}

struct FakeState {
    kinds: Vec<Kind>,
    inner: Mutex<Inner>,
}

impl FakeState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running fake; stops when dropped.
pub struct FakeKube {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<FakeState>,
    kubeconfig: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

fn labels_match(selector: Option<&str>, obj: &Value) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = &obj["metadata"]["labels"];
    sel.split(',').map(str::trim).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            let v = v.trim_start_matches('=');
            labels[k.trim()].as_str() == Some(v.trim())
        } else {
            !labels[term].is_null()
        }
    })
}

fn namespace_of(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or("")
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn gone_line() -> Bytes {
    line(
        "ERROR",
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410}),
    )
}

/// The watch event `w` sees for `e`, if any (objects moving out of a selector are DELETED).
fn seen(w: &LiveWatch, e: &Entry) -> Option<Bytes> {
    if w.plural != e.plural {
        return None;
    }
    fn in_scope<'a>(w: &LiveWatch, o: &'a Option<Value>) -> Option<&'a Value> {
        o.as_ref().filter(|o| {
            w.namespace
                .as_deref()
                .is_none_or(|ns| namespace_of(o) == ns)
                && labels_match(w.selector.as_deref(), o)
        })
    }
    match (in_scope(w, &e.old), in_scope(w, &e.new)) {
        (None, Some(n)) => Some(line("ADDED", n)),
        (Some(_), Some(n)) => Some(line("MODIFIED", n)),
        (Some(o), None) => {
            // A deleted object carries the deletion's version; one leaving the selector its new one.
            let mut o = e.new.clone().unwrap_or_else(|| o.clone());
            o["metadata"]["resourceVersion"] = json!(e.rv.to_string());
            Some(line("DELETED", &o))
        }
        (None, None) => None,
    }
}

impl FakeKube {
    /// Serve `kinds` on an ephemeral port.
    pub async fn start(kinds: Vec<Kind>) -> FakeKube {
        let state = Arc::new(FakeState {
            kinds,
            inner: Mutex::new(Inner {
                rv: 100,
                ..Default::default()
            }),
        });
        let app = Router::new()
            .route("/api", get(api_versions))
            .route("/api/v1", get(discovery))
            .route("/api/v1/{plural}", get(collection_all))
            .route("/api/v1/namespaces/{ns}/{plural}", get(collection_ns))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake kube");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}");
        let kubeconfig = std::env::temp_dir().join(format!(
            "knit-fake-kube-{}-{}.yaml",
            std::process::id(),
            addr.port()
        ));
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
        );
        std::fs::write(&kubeconfig, text).expect("write kubeconfig");
        FakeKube {
            url,
            state,
            kubeconfig,
            server,
        }
    }

    /// The kubeconfig file pointing at the fake.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn kind(&self, kind: &str) -> Kind {
        self.state
            .kinds
            .iter()
            .find(|k| k.kind == kind)
            .cloned()
            .unwrap_or_else(|| panic!("the fake does not serve {kind}"))
    }

    fn record(&self, inner: &mut Inner, entry: Entry) {
        if !inner.held {
            let mut closed = Vec::new();
            for (i, w) in inner.live.iter().enumerate() {
                if let Some(l) = seen(w, &entry)
                    && w.tx.try_send(l).is_err()
                {
                    closed.push(i);
                }
            }
            for i in closed.into_iter().rev() {
                inner.live.remove(i);
            }
        }
        inner.history.push(entry);
    }

    /// Create or replace an object of `kind` (`metadata.name`, and `metadata.namespace` for
    /// namespaced kinds, must be set); returns its new resourceVersion.
    pub fn put(&self, kind: &str, mut obj: Value) -> u64 {
        let k = self.kind(kind);
        let mut inner = self.state.lock();
        inner.rv += 1;
        let rv = inner.rv;
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = if k.namespaced {
            namespace_of(&obj).to_string()
        } else {
            String::new()
        };
        obj["apiVersion"] = json!("v1");
        obj["kind"] = json!(k.kind);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = (k.plural.to_string(), ns.clone(), name.clone());
        let old = inner.objects.get(&key).cloned();
        obj["metadata"]["uid"] = old
            .as_ref()
            .map(|o| o["metadata"]["uid"].clone())
            .unwrap_or_else(|| json!(format!("uid-{ns}-{name}-{rv}")));
        inner.objects.insert(key, obj.clone());
        let entry = Entry {
            rv,
            plural: k.plural.to_string(),
            old,
            new: Some(obj),
        };
        self.record(&mut inner, entry);
        rv
    }

    /// Delete an object; returns whether it existed.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let k = self.kind(kind);
        let mut inner = self.state.lock();
        let key = (
            k.plural.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let Some(old) = inner.objects.remove(&key) else {
            return false;
        };
        inner.rv += 1;
        let entry = Entry {
            rv: inner.rv,
            plural: k.plural.to_string(),
            old: Some(old),
            new: None,
        };
        self.record(&mut inner, entry);
        true
    }

    /// From now on, changes are not sent to open watches (as if their connections stalled).
    pub fn hold(&self) {
        self.state.lock().held = true;
    }

    /// Compact the history and end every open watch with `ERROR` 410 Gone: clients must
    /// list again. Releases a [`Self::hold`].
    pub fn gone(&self) {
        let mut inner = self.state.lock();
        inner.compacted = inner.rv;
        inner.held = false;
        for w in inner.live.drain(..) {
            let _ = w.tx.try_send(gone_line());
        }
    }

    /// Send a BOOKMARK at the current resourceVersion to every open watch.
    pub fn bookmark(&self) {
        let inner = self.state.lock();
        for w in &inner.live {
            let kind = self
                .state
                .kinds
                .iter()
                .find(|k| k.plural == w.plural)
                .map(|k| k.kind)
                .unwrap_or("");
            let _ = w.tx.try_send(line(
                "BOOKMARK",
                &json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": inner.rv.to_string()}}),
            ));
        }
    }

    /// Lists served so far.
    pub fn lists(&self) -> usize {
        self.state.lock().lists
    }

    /// Query parameters of every watch request so far.
    pub fn watches(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().watches.clone()
    }

    /// Watches open now.
    pub fn open_watches(&self) -> usize {
        self.state
            .lock()
            .live
            .iter()
            .filter(|w| !w.tx.is_closed())
            .count()
    }
}

async fn api_versions() -> Response {
    axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}))
        .into_response()
}

async fn discovery(State(state): State<Arc<FakeState>>) -> Response {
    let resources: Vec<Value> = state
        .kinds
        .iter()
        .map(|k| {
            json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced,
                   "kind": k.kind, "verbs": ["get", "list", "watch", "create", "update", "delete"]})
        })
        .collect();
    axum::Json(json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}))
        .into_response()
}

async fn collection_all(
    State(state): State<Arc<FakeState>>,
    UrlPath(plural): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    collection(state, plural, None, q)
}

async fn collection_ns(
    State(state): State<Arc<FakeState>>,
    UrlPath((ns, plural)): UrlPath<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    collection(state, plural, Some(ns), q)
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn collection(
    state: Arc<FakeState>,
    plural: String,
    ns: Option<String>,
    q: HashMap<String, String>,
) -> Response {
    let Some(kind) = state.kinds.iter().find(|k| k.plural == plural).cloned() else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource {plural}"),
        );
    };
    let selector = q.get("labelSelector").cloned();
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let mut inner = state.lock();
    if !watching {
        inner.lists += 1;
        let items: Vec<Value> = inner
            .objects
            .iter()
            .filter(|((p, o_ns, _), o)| {
                *p == plural
                    && ns.as_deref().is_none_or(|n| n == o_ns)
                    && labels_match(selector.as_deref(), o)
            })
            .map(|(_, o)| {
                // Like the real API server, list items carry no apiVersion/kind.
                let mut o = o.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        let body = json!({"apiVersion": "v1", "kind": format!("{}List", kind.kind),
                          "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items});
        return axum::Json(body).into_response();
    }
    inner.watches.push(q.clone());
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let w = LiveWatch {
        plural: plural.clone(),
        namespace: ns,
        selector,
        tx,
    };
    if from < inner.compacted {
        let _ = w.tx.try_send(gone_line());
    } else {
        for e in inner.history.iter().filter(|e| e.rv > from) {
            if let Some(l) = seen(&w, e) {
                let _ = w.tx.try_send(l);
            }
        }
        if q.get("allowWatchBookmarks").is_some_and(|b| b == "true") {
            let _ = w.tx.try_send(line(
                "BOOKMARK",
                &json!({"kind": kind.kind, "apiVersion": "v1", "metadata": {"resourceVersion": inner.rv.to_string()}}),
            ));
        }
        inner.live.push(w);
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| status(500, "InternalError", "response"))
}
