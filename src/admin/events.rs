//! The event journal on the admin API: where did my event go (`knit trace`, `knit get events`,
//! the flow map's trigger panel).
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/events/{namespace}/{broker-or-channel}/{id}[?source=S]` | one journey |
//! | GET | `/api/v1/events?namespace=NS&broker=NAME[&channel=NAME][&type=T][&failed=true][&limit=N]` | `{"items": [journey...]}`, newest first |
//!
//! A journey is `{id, source, type, ingress: {kind, namespace, name}, accepted: {at, size,
//! mode, refused?} | null, egresses: [{name, kind, matched, clause?, reason?, attempts: [{at,
//! destination, target, status?, error?, latencyMs, retryInMs?}], retries, reply: {id}?,
//! outcome}], tooOld}`; `outcome` is `delivered`, `deadLettered`, `dropped`, `filtered` or
//! `inFlight`. An unknown event is a 404 `{"error", "tooOld", "capacity", "oldest"?}`:
//! `tooOld` when the journal knew it and forgot it (it keeps the last `--journal-capacity`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use knit_dispatcher::observe::{self, Unknown};
use serde::Deserialize;
use serde_json::json;

use super::{AdminState, error};

/// Journeys listed at most.
const MAX_LIMIT: usize = 1000;
/// Journeys listed without `limit`.
const DEFAULT_LIMIT: usize = 50;

/// The journal routes.
pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/events", get(list))
        .route("/api/v1/events/{namespace}/{name}/{id}", get(one))
}

#[derive(Deserialize)]
struct OneQuery {
    source: Option<String>,
}

fn rfc3339(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

async fn one(
    State(s): State<AdminState>,
    Path((namespace, name, id)): Path<(String, String, String)>,
    Query(q): Query<OneQuery>,
) -> Response {
    let journal = s.dataplane.journal();
    match journal.journey(&namespace, &name, &id, q.source.as_deref()) {
        Ok(j) => Json(j).into_response(),
        Err(Unknown {
            too_old,
            capacity,
            oldest_ms,
        }) => {
            let source = q
                .source
                .as_deref()
                .map(|s| format!(" from source {s:?}"))
                .unwrap_or_default();
            let why = if too_old {
                format!(
                    "event {id:?}{source} at {namespace}/{name} is too old to know: the journal keeps the last {capacity} events and has forgotten it"
                )
            } else {
                format!(
                    "event {id:?}{source} is not known at {namespace}/{name} (or forgotten: the journal keeps the last {capacity} events)"
                )
            };
            let mut body = json!({"error": why, "tooOld": too_old, "capacity": capacity});
            if let Some(at) = oldest_ms.and_then(rfc3339) {
                body["oldest"] = json!(at);
            }
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: Option<String>,
    broker: Option<String>,
    channel: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    failed: bool,
    limit: Option<usize>,
}

async fn list(State(s): State<AdminState>, Query(q): Query<ListQuery>) -> Response {
    if q.broker.is_some() && q.channel.is_some() {
        return error(StatusCode::BAD_REQUEST, "give broker or channel, not both");
    }
    let (kind, name) = match (&q.broker, &q.channel) {
        (Some(b), _) => (Some("Broker"), Some(b.as_str())),
        (_, Some(c)) => (Some("Channel"), Some(c.as_str())),
        _ => (None, None),
    };
    let query = observe::Query {
        namespace: q.namespace.as_deref(),
        name,
        kind,
        ty: q.ty.as_deref(),
        failed: q.failed,
        limit: q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
    };
    let journal = s.dataplane.journal();
    let items = journal.recent(&query);
    Json(json!({"items": items, "capacity": journal.capacity()})).into_response()
}
