//! Sender identity and EventPolicy at the ingress (OIDC on; security.md §2.5, §3.4): a request
//! without a valid bearer token for the target's audience is answered 401, one from a sender
//! no applying EventPolicy (or, with none, the default authorization mode) allows 403. Knative
//! answers after decoding the event, so a malformed request gets 400 first, as here.

use std::sync::Arc;

use http::{HeaderMap, StatusCode, header};
use knit_channels::Event;
use knit_crds::contract::{AuthorizationMode, EgressFilter, IngressAuth};

use super::{Response, text};
use crate::filter::{self, Filter};

/// An ingress's authorization, compiled once per Contract change.
pub struct Authz {
    audience: String,
    namespace: String,
    policies: Vec<(String, Vec<String>, Filter)>,
    mode: AuthorizationMode,
}

impl Authz {
    /// Compile `auth` for the target in `namespace`.
    pub fn new(auth: &IngressAuth, namespace: &str) -> Self {
        Self {
            audience: auth.audience.clone(),
            namespace: namespace.to_string(),
            policies: auth
                .policies
                .iter()
                .map(|p| {
                    let f = EgressFilter {
                        attributes: None,
                        filters: p.filters.clone(),
                    };
                    (
                        p.name.clone(),
                        p.subjects.clone(),
                        filter::compile(Some(&f)),
                    )
                })
                .collect(),
            mode: auth.default_mode,
        }
    }

    /// Whether `subject` may send `events`: any applying policy whose subjects match and whose
    /// filters every event passes (the docs' any-of, as the Kafka receiver does); with no
    /// policy, the default mode.
    fn allows(&self, subject: &str, events: &[Arc<Event>]) -> bool {
        if self.policies.is_empty() {
            return match self.mode {
                AuthorizationMode::AllowAll => true,
                AuthorizationMode::DenyAll => false,
                AuthorizationMode::AllowSameNamespace => {
                    subject.starts_with(&format!("system:serviceaccount:{}:", self.namespace))
                }
            };
        }
        self.policies.iter().any(|(_, subjects, filter)| {
            subjects
                .iter()
                .any(|s| knit_oidc::subject_matches(s, subject))
                && events.iter().all(|e| filter.matches(e))
        })
    }
}

/// Check the request's bearer token (against Knit's own issuer or, for a token another issuer
/// signed, that `--oidc-issuer`'s keys, which may be fetched first) and the sender's
/// authorization; `Some` is the 401 or 403 to answer.
pub(super) async fn refusal(
    trust: Option<&knit_oidc::Trust>,
    authz: &Authz,
    headers: &HeaderMap,
    events: &[Arc<Event>],
) -> Option<Response> {
    match check(trust, authz, headers, events).await {
        Ok(()) => None,
        Err(answer) => Some(*answer),
    }
}

async fn check(
    trust: Option<&knit_oidc::Trust>,
    authz: &Authz,
    headers: &HeaderMap,
    events: &[Arc<Event>],
) -> Result<(), Box<Response>> {
    let unauthorized = |why: String| {
        let mut r = text(StatusCode::UNAUTHORIZED, why);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        Box::new(r)
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized(
            "no Authorization header: a bearer token is required (OIDC)".into(),
        ));
    };
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    let Some(trust) = trust else {
        return Err(unauthorized(
            "OIDC is on but no issuer is configured".into(),
        ));
    };
    let claims = trust
        .verify(token, &authz.audience, knit_oidc::now_secs())
        .await
        .map_err(|e| unauthorized(format!("invalid token: {e}")))?;
    if authz.allows(&claims.sub, events) {
        return Ok(());
    }
    let why = if authz.policies.is_empty() {
        format!(
            "{:?} is not allowed by the default authorization mode {:?}",
            claims.sub,
            authz.mode.shown()
        )
    } else {
        let names: Vec<&str> = authz.policies.iter().map(|(n, _, _)| n.as_str()).collect();
        format!(
            "{:?} (or this event) is not allowed by the event policies {}",
            claims.sub,
            names.join(", ")
        )
    };
    tracing::debug!(subject = %claims.sub, audience = %authz.audience, "request refused: not authorized");
    Err(Box::new(text(StatusCode::FORBIDDEN, why)))
}
