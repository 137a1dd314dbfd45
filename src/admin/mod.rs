//! The admin API: read resources with their status, apply and delete manifests, read the
//! Contract. `knit get|describe|apply|delete` are its clients.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/healthz`, `/readyz` | liveness and readiness, public (see [`health`]) |
//! | GET | `/api/v1/{kind}?namespace=NS` | `{"items": [...]}`, all namespaces without `namespace` |
//! | GET | `/api/v1/{kind}/{namespace}/{name}` | one object with its status |
//! | DELETE | `/api/v1/{kind}/{namespace}/{name}` | delete one object |
//! | POST | `/api/v1/apply` | `{"file": NAME, "manifest": YAML}`: admit and store |
//! | GET | `/api/v1/contract` | the data-plane Contract (secret values redacted) |
//! | POST | `/api/v1/filter-test/{namespace}/{broker}` | `{"event": CE-JSON}` → `{"triggers": [{name, verdict: {matched, clause, reason}}]}` |
//! | GET | `/api/v1/logs/{kind}/{namespace}/{name}?after=N` | output of a ContainerSource's processes, or of a Knative Service's (Configuration's, Revision's) replicas, after line N |
//! | GET | `/api/v1/cluster` | the replicas of this system (`members`: id, adminUrl, since, lastSeen, leads) and who leads what (`leaders`: name → replica) |
//! | GET | `/api/v1/stats` | fate counters in total and per egress (`egresses`, by `Kind/ns/name`): delivered, filtered, deferred, deadLettered, dropped, shed, retries; and unmatched |
//!
//! `{kind}` accepts kubectl-style names: plural, singular, short name.
//!
//! Journeys of events (`/api/v1/events...`) are in [`events`]; Prometheus metrics
//! (`/metrics`) in [`metrics`].
//!
//! The live flow map (`/ui`) and its feed (`/api/v1/stream`) are in [`ui`].
//!
//! Replays of a Trigger (`/api/v1/replay/...`) are in [`replay`].
//!
//! The OIDC issuer's discovery document, JWKS and token minting are in [`oidc`].

mod events;
mod health;
mod metrics;
mod oidc;
mod replay;
mod ui;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use knit_crds::contract::Contract;
use knit_crds::{Kind, ObjectKey};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::control::Handle;

/// What every admin handler can read (submodules add their routes with
/// `Router::merge(submodule::routes())` in [`router`]).
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) control: Handle,
    pub(crate) token: Option<Arc<str>>,
    pub(crate) stats: Arc<knit_dispatcher::Stats>,
    pub(crate) logs: Arc<knit_sources::logs::Logs>,
    pub(crate) serving: knit_serving::runtime::Serving,
    pub(crate) dataplane: Arc<knit_broker::DataPlane>,
    pub(crate) coordination: Arc<knit_channels::coordination::Coordination>,
    pub(crate) oidc: Arc<knit_oidc::Signer>,
    /// The `--oidc-issuer`s (readiness waits for their keys).
    pub(crate) oidc_issuers: Vec<Arc<knit_oidc::Issuer>>,
}

/// The admin router; with a `token` in `state`, every request must carry
/// `Authorization: Bearer TOKEN`.
pub(crate) fn router(state: AdminState) -> Router {
    Router::new()
        .route("/api/v1/contract", get(contract))
        .route("/api/v1/stats", get(stats_handler))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/apply", post(apply))
        .route("/api/v1/logs/{kind}/{namespace}/{name}", get(logs_handler))
        .route(
            "/api/v1/filter-test/{namespace}/{broker}",
            post(filter_test),
        )
        .merge(events::routes())
        .merge(metrics::routes())
        .merge(replay::routes())
        .merge(oidc::routes())
        .merge(ui::routes())
        .route("/api/v1/{kind}", get(list))
        .route(
            "/api/v1/{kind}/{namespace}/{name}",
            get(get_one).delete(delete),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        // After the authentication layer: the page's files are public, its data is not.
        .merge(ui::pages())
        .merge(oidc::pages())
        .merge(health::pages())
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(state)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(
    State(state): State<AdminState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(req).await
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn unknown_kind(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("the server doesn't have a resource type {name:?}"),
    )
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

async fn list(
    State(s): State<AdminState>,
    Path(k): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let Some(kind) = Kind::lookup(&k) else {
        return unknown_kind(&k);
    };
    let snap = s.control.snapshot();
    let items: Vec<&RawValue> = snap
        .objects
        .iter()
        .filter(|(key, _)| {
            key.kind == kind && q.namespace.as_ref().is_none_or(|ns| &key.namespace == ns)
        })
        .map(|(_, v)| &**v)
        .collect();
    Json(List {
        api_version: "v1",
        kind: "List",
        items,
    })
    .into_response()
}

/// A list of objects, each written as the snapshot rendered it.
#[derive(serde::Serialize)]
struct List<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    items: Vec<&'a RawValue>,
}

async fn get_one(
    State(s): State<AdminState>,
    Path((k, ns, name)): Path<(String, String, String)>,
) -> Response {
    let Some(kind) = Kind::lookup(&k) else {
        return unknown_kind(&k);
    };
    let snap = s.control.snapshot();
    match snap.objects.get(&ObjectKey::new(kind, &ns, &name)) {
        Some(v) => Json(&**v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "{}.{} {name:?} not found in namespace {ns:?}",
                kind.plural(),
                kind.group()
            ),
        ),
    }
}

async fn delete(
    State(s): State<AdminState>,
    Path((k, ns, name)): Path<(String, String, String)>,
) -> Response {
    let Some(kind) = Kind::lookup(&k) else {
        return unknown_kind(&k);
    };
    if s.control.delete(ObjectKey::new(kind, &ns, &name)).await {
        Json(json!({"deleted": format!("{}/{name}", kind.singular()), "namespace": ns}))
            .into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!(
                "{}.{} {name:?} not found in namespace {ns:?}",
                kind.plural(),
                kind.group()
            ),
        )
    }
}

#[derive(Deserialize)]
struct ApplyBody {
    file: String,
    manifest: String,
}

async fn apply(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let body: ApplyBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"file\", \"manifest\"}}: {e}"),
            );
        }
    };
    match s.control.apply(body.file, body.manifest).await {
        Ok(report) => Json(report).into_response(),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"errors": errors})),
        )
            .into_response(),
    }
}

async fn stats_handler(State(s): State<AdminState>) -> Response {
    let mut map: serde_json::Map<String, Value> = s
        .stats
        .totals()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    map.insert("egresses".into(), json!(s.stats.egresses()));
    Json(Value::Object(map)).into_response()
}

/// The replicas of this system and who leads what.
async fn cluster(State(s): State<AdminState>) -> Response {
    Json(s.coordination.view()).into_response()
}

/// The Contract, with the secret values sources carry replaced by `(redacted)`.
async fn contract(State(s): State<AdminState>) -> Response {
    let mut contract = Contract::clone(&s.control.snapshot().contract);
    for src in &mut contract.sources {
        if let knit_crds::contract::Adapter::GitHub(g) = &mut src.adapter {
            g.secret_token = "(redacted)".into();
            g.access_token = "(redacted)".into();
        }
    }
    Json(&contract).into_response()
}

#[derive(Deserialize)]
struct LogsQuery {
    /// Lines after this sequence number (0: everything kept).
    #[serde(default)]
    after: u64,
}

/// Output of a source's local processes: `{"lines": [{seq, process, stream, text}], "next": N}`.
async fn logs_handler(
    State(s): State<AdminState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<LogsQuery>,
) -> Response {
    let Some(kind) = Kind::lookup(&kind) else {
        return error(StatusCode::NOT_FOUND, format!("unknown kind {kind:?}"));
    };
    if matches!(kind, Kind::Service | Kind::Configuration | Kind::Revision) {
        let lines = s.serving.logs(&namespace, &name, q.after);
        let next = lines.last().map(|l| l.seq).unwrap_or(q.after);
        return Json(json!({ "lines": lines, "next": next })).into_response();
    }
    let key = knit_sources::logs::key(&kind.to_string(), &namespace, &name);
    let Some(buffer) = s.logs.get(&key) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no output kept for {kind} {namespace}/{name} (only ContainerSources run local processes)"
            ),
        );
    };
    let lines = buffer.since(q.after, 1000);
    let next = lines.last().map(|l| l.seq).unwrap_or(q.after);
    Json(json!({ "lines": lines, "next": next })).into_response()
}

#[derive(Deserialize)]
struct FilterTest {
    event: Value,
}

/// Every Trigger of a Broker against one event: matched or not, and the clause that decided.
async fn filter_test(
    State(s): State<AdminState>,
    Path((namespace, broker)): Path<(String, String)>,
    Json(body): Json<FilterTest>,
) -> Response {
    let bytes = match serde_json::to_vec(&body.event) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/cloudevents+json"),
    );
    let event = match knit_dispatcher::binding::decode(&headers, bytes.into()) {
        Ok(knit_dispatcher::binding::Decoded::One(e)) => *e,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "give one event, not a batch"),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a valid CloudEvent: {e}"),
            );
        }
    };
    let snapshot = s.control.snapshot();
    let path = format!("/{namespace}/{broker}");
    let Some(ingress) = snapshot.contract.ingress(&path) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no running Broker {namespace}/{broker}"),
        );
    };
    let triggers: Vec<Value> = ingress
        .egresses
        .iter()
        .map(|e| {
            let name = e.reference.rsplit('/').next().unwrap_or_default();
            let verdict = knit_broker::explain::explain(e.filter.as_ref(), &event);
            json!({ "name": name, "verdict": verdict })
        })
        .collect();
    Json(json!({ "triggers": triggers })).into_response()
}
