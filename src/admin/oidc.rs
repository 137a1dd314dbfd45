//! Knit as an OIDC issuer (standalone): the discovery document and JWKS, public so any
//! receiver can verify the tokens Knit's deliveries carry, and `POST /api/v1/oidc/token` to
//! mint one (for tests and `knit send`), behind the admin token like the rest of the API.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/.well-known/openid-configuration` | issuer (the admin URL) and `jwks_uri` |
//! | GET | `/openid/v1/jwks` | the signing key's public half (ES256) |
//! | POST | `/api/v1/oidc/token` | `{"subject", "audience", "expiresIn"?}` → `{"token", "expiresAt"}` |

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AdminState, error};

/// The token route (behind the admin token).
pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/api/v1/oidc/token", post(mint))
}

/// The discovery document and JWKS (public).
pub(crate) fn pages() -> Router<AdminState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/openid/v1/jwks", get(jwks))
}

async fn discovery(State(s): State<AdminState>) -> Response {
    Json(knit_oidc::discovery(s.oidc.issuer())).into_response()
}

async fn jwks(State(s): State<AdminState>) -> Response {
    Json(s.oidc.jwks()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Mint {
    subject: String,
    audience: String,
    /// Seconds the token is valid (default an hour, at most a day).
    expires_in: Option<i64>,
}

async fn mint(State(s): State<AdminState>, Json(m): Json<Mint>) -> Response {
    if m.subject.is_empty() || m.audience.is_empty() {
        return error(StatusCode::BAD_REQUEST, "subject and audience are required");
    }
    let lifetime = m
        .expires_in
        .unwrap_or(knit_oidc::TOKEN_LIFETIME_SECS)
        .clamp(1, 86_400);
    let now = knit_oidc::now_secs();
    match s.oidc.mint(&m.subject, &m.audience, now, lifetime) {
        Ok(token) => Json(json!({"token": token, "expiresAt": now + lifetime})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
