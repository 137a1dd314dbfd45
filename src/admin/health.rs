//! Probes, public (a kubelet's probe carries no bearer token):
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/healthz` | liveness: `ok` while the process serves its admin API |
//! | GET | `/readyz` | readiness: 200 `{"ready": true}` once the manifests are loaded, every ingress of the data plane runs (its log is there: topic or stream created, memory log started) and the keys of every `--oidc-issuer` were loaded once; 503 `{"ready": false, "waiting": [INGRESS or "OIDC issuer URL"...]}` before |
//!
//! The admin API itself only listens once the manifests were loaded, so `/readyz` needs to
//! look at the data plane's report alone.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::AdminState;

/// The probe routes (outside the bearer-token layer).
pub(crate) fn pages() -> Router<AdminState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
}

/// The ingresses of the Contract (Brokers, channels, sinks, KafkaSources: `Kind ns/name`)
/// the data plane has not reported running yet, and the `--oidc-issuer`s whose keys have not
/// loaded yet.
fn waiting(s: &AdminState) -> Vec<String> {
    let snapshot = s.control.snapshot();
    let report = s.dataplane.report().borrow().clone();
    snapshot
        .contract
        .ingresses
        .iter()
        .filter(|i| report.objects.get(&i.uid).is_none_or(|r| !r.ready))
        .map(|i| format!("{:?} {}/{}", i.kind, i.namespace, i.name))
        .chain(
            s.oidc_issuers
                .iter()
                .filter(|i| !i.is_loaded())
                .map(|i| format!("OIDC issuer {}", i.url())),
        )
        .collect()
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let waiting = waiting(&s);
    if waiting.is_empty() {
        Json(json!({"ready": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "waiting": waiting})),
        )
            .into_response()
    }
}
