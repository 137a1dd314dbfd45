//! Replay on the admin API: re-deliver a Broker's events in a range to one Trigger.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/api/v1/replay/{namespace}/{trigger}` | `{"from": POS, "to": POS?}` → 202 and the run |
//! | GET | `/api/v1/replay` | `{"items": [run...]}`, the runs remembered |
//! | GET | `/api/v1/replay/{id}` | one run |
//! | DELETE | `/api/v1/replay/{id}` | cancel a run (deliveries in flight finish) |
//!
//! A run is `{id, trigger, broker, from, to, partitions: [{partition, from, to}], span, read,
//! matched, delivered, failed, deadLettered, done, cancelled, error?}`. Positions: an RFC 3339
//! time, an offset on every partition (`0`), `partition:offset` pairs (`0:12,1:40`),
//! `earliest`, `latest`. Refusals: 409 for a Broker on memory or a replay of that Trigger
//! still running, 404 for an unknown Trigger, 400 for a bad position, 502 when Kafka fails.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use knit_broker::dataplane::ReplayError;
use knit_channels::Bound;
use serde::Deserialize;
use serde_json::json;

use super::{AdminState, error};

/// The replay routes.
pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/replay", get(list))
        .route("/api/v1/replay/{namespace}/{trigger}", post(start))
        .route("/api/v1/replay/{id}", get(one).delete(cancel))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    from: String,
    #[serde(default)]
    to: Option<String>,
}

async fn start(
    State(s): State<AdminState>,
    Path((namespace, trigger)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let body: Start = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"from\": POSITION, \"to\": POSITION}}: {e}"),
            );
        }
    };
    let from = match Bound::parse(&body.from) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    let to = match body.to.as_deref().map(Bound::parse).transpose() {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("to: {e}")),
    };
    let contract = s.control.snapshot().contract.clone();
    match s
        .dataplane
        .replay(&contract, &namespace, &trigger, &from, to.as_ref())
        .await
    {
        Ok(run) => (StatusCode::ACCEPTED, Json(run)).into_response(),
        Err(e) => {
            let status = match &e {
                ReplayError::NotFound { .. } => StatusCode::NOT_FOUND,
                ReplayError::NotDurable { .. } | ReplayError::Busy(_) => StatusCode::CONFLICT,
                ReplayError::Backend(_) => StatusCode::BAD_GATEWAY,
            };
            tracing::info!(namespace = %namespace, trigger = %trigger, error = %e, "replay refused");
            error(status, e.to_string())
        }
    }
}

async fn list(State(s): State<AdminState>) -> Response {
    Json(json!({ "items": s.dataplane.replay_list() })).into_response()
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no replay {id:?}"))
}

async fn one(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match s.dataplane.replay_status(&id) {
        Some(run) => Json(run).into_response(),
        None => not_found(&id),
    }
}

async fn cancel(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match s.dataplane.replay_cancel(&id) {
        Some(run) => Json(run).into_response(),
        None => not_found(&id),
    }
}
