//! GitHubSource: a webhook receiver on the ingress listener (at the source's path, whose URL
//! is `status.address.url`) that verifies GitHub's signature and forwards each delivery as a
//! CloudEvent carrying the original body bytes; and the hook's registration through the GitHub
//! REST API, retried with backoff until it succeeds, and deleted when the source is.
//!
//! Answers: 401 for a missing or bad signature, 400 for missing `X-GitHub-Event` /
//! `X-GitHub-Delivery` or a body that is not JSON, 200 for `ping` and for event types the
//! source does not forward, 202 once the sink (or the dead-letter sink) has the event, 502
//! when it was dropped (GitHub then shows a failed delivery that can be redelivered), 503 when
//! too many deliveries are in flight.

pub mod mapping;
pub mod register;
pub mod signature;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use bytes::Bytes;
use http::HeaderMap;
use knit_channels::{BoxFuture, Event, ExtValue};
use knit_crds::contract::{Adapter, GitHubAdapter, Source};
use knit_dispatcher::Fate;
use knit_dispatcher::observe::Origin;
use knit_dispatcher::webhook::{Webhook, WebhookAuth, WebhookResponse};
use tokio::sync::Semaphore;

use crate::emit::{self, Emitter};
use crate::runtime::{Ctx, Stop, StopSignal};
use register::Registrar;

/// The event-name header.
pub const EVENT_HEADER: &str = "x-github-event";
/// The delivery-id header.
pub const DELIVERY_HEADER: &str = "x-github-delivery";
/// Condition reason while the hook is not registered.
pub const NOT_CONFIGURED: &str = "WebhookNotConfigured";
/// Status annotation carrying the hook's id.
pub const HOOK_ID_KEY: &str = "webhookIDKey";
/// Most deliveries of one source being forwarded at once.
const MAX_IN_FLIGHT: usize = 256;
/// Longest accepted `X-GitHub-Delivery`.
const MAX_DELIVERY_ID: usize = 200;
/// Waits between registration attempts: 1 s doubling to 5 min, for as long as it takes.
const REGISTER_RETRIES: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(1))
    .with_factor(2.0)
    .with_max_delay(Duration::from_secs(300))
    .without_max_times();
/// Attempts at deleting the hook when the source is deleted.
const DELETE_ATTEMPTS: u32 = 3;
/// Waits between them: 1 s, then 2 s.
const DELETE_RETRIES: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(1))
    .with_factor(2.0)
    .with_max_times(DELETE_ATTEMPTS as usize - 1);

/// What the receiver does with one request, before any sending.
#[derive(Debug)]
pub enum Verdict {
    /// Answer at once.
    Answer(WebhookResponse),
    /// Forward this event, then answer with its fate.
    Forward(Box<Event>),
}

/// The webhook receiver of one GitHubSource.
pub struct Receiver {
    reference: String,
    secret: Vec<u8>,
    source_attr: String,
    event_types: HashSet<String>,
    emitter: Emitter,
    in_flight: Semaphore,
    /// Who may post (OIDC on), checked by the ingress.
    auth: Option<WebhookAuth>,
}

impl Receiver {
    /// A receiver for `source` (whose adapter is `cfg`) sending through `emitter`.
    pub fn new(source: &Source, cfg: &GitHubAdapter, emitter: Emitter) -> Self {
        Self {
            reference: source.reference.clone(),
            secret: cfg.secret_token.as_bytes().to_vec(),
            source_attr: mapping::event_source(&cfg.owner_and_repository),
            event_types: cfg.event_types.iter().cloned().collect(),
            emitter,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            auth: cfg.auth.clone().map(|auth| WebhookAuth {
                auth,
                namespace: source.namespace.clone(),
                origin: Arc::new(Origin::new("GitHubSource", &source.namespace, &source.name)),
            }),
        }
    }

    /// Check one request and build its event (no I/O).
    pub fn judge(&self, headers: &HeaderMap, body: &Bytes) -> Verdict {
        let answer = |status: u16, msg: String| Verdict::Answer(WebhookResponse::new(status, msg));
        if let Err(e) = signature::verify(&self.secret, headers, body) {
            tracing::warn!(source = %self.reference, error = %e, "GitHub delivery refused");
            return answer(401, e.to_string());
        }
        let Some(event) = header(headers, EVENT_HEADER) else {
            return answer(400, "missing X-GitHub-Event header".into());
        };
        if !mapping::valid_event_name(event) {
            return answer(400, format!("invalid X-GitHub-Event {event:?}"));
        }
        let Some(delivery) = header(headers, DELIVERY_HEADER) else {
            return answer(400, "missing X-GitHub-Delivery header".into());
        };
        if delivery.len() > MAX_DELIVERY_ID {
            return answer(
                400,
                format!("X-GitHub-Delivery longer than {MAX_DELIVERY_ID} bytes"),
            );
        }
        let payload: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return answer(400, format!("the body is not JSON: {e}")),
        };
        if event == "ping" {
            tracing::info!(source = %self.reference, delivery, "GitHub ping");
            return answer(200, "pong: ping events are not forwarded".into());
        }
        if !self.event_types.is_empty()
            && !self.event_types.contains(event)
            && !self.event_types.contains("*")
        {
            return answer(200, format!("not forwarded: {event} is not in eventTypes"));
        }
        let mut ev = Event::new(
            delivery,
            self.source_attr.clone(),
            mapping::event_type(event),
        );
        ev.datacontenttype = Some("application/json".to_string());
        let (subject, exts) = mapping::subject_and_extensions(event, &payload);
        ev.subject = subject;
        for (name, value) in exts {
            ev.set_extension(name, ExtValue::String(value));
        }
        ev.set_data_from_body(body.clone());
        Verdict::Forward(Box::new(ev))
    }

    async fn receive(&self, headers: HeaderMap, body: Bytes) -> WebhookResponse {
        let ev = match self.judge(&headers, &body) {
            Verdict::Answer(a) => return a,
            Verdict::Forward(ev) => *ev,
        };
        let Ok(_permit) = self.in_flight.try_acquire() else {
            tracing::warn!(source = %self.reference, "delivery refused: {MAX_IN_FLIGHT} in flight");
            return WebhookResponse::new(
                503,
                format!("{MAX_IN_FLIGHT} deliveries in flight; redeliver later"),
            );
        };
        let (id, ty) = (ev.id.clone(), ev.ty.clone());
        let fate = self.emitter.emit(ev).await;
        if emit::accepted(&fate) {
            tracing::debug!(source = %self.reference, id, ty, "GitHub delivery forwarded");
            return WebhookResponse::new(202, "accepted");
        }
        let reason = match &fate {
            Fate::Dropped { attempts, reason } => {
                format!("not delivered after {attempts} attempts: {reason}")
            }
            other => format!("not delivered: {other:?}"),
        };
        tracing::warn!(source = %self.reference, id, ty, reason, "GitHub delivery dropped");
        WebhookResponse::new(502, reason)
    }
}

impl Webhook for Receiver {
    fn handle(&self, headers: HeaderMap, body: Bytes) -> BoxFuture<'_, WebhookResponse> {
        Box::pin(self.receive(headers, body))
    }

    fn auth(&self) -> Option<&WebhookAuth> {
        self.auth.as_ref()
    }

    fn preview(&self, headers: &HeaderMap, body: &Bytes) -> Option<Event> {
        match self.judge(headers, body) {
            Verdict::Forward(ev) => Some(*ev),
            Verdict::Answer(_) => None,
        }
    }
}

/// A header's value as non-empty trimmed text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

pub(crate) async fn run(ctx: Arc<Ctx>, source: Arc<Source>, mut stop: StopSignal) {
    let Adapter::GitHub(cfg) = &source.adapter else {
        return;
    };
    let receiver: Arc<dyn Webhook> = Arc::new(Receiver::new(
        &source,
        cfg,
        Emitter::new(&ctx.dispatch, &source),
    ));
    ctx.webhooks.insert(&cfg.path, receiver.clone());
    tracing::info!(source = %source.reference, path = %cfg.path, "GitHub receiver listening");

    let why = match Registrar::new(cfg) {
        Ok(registrar) => {
            // With replicas, the leader registers (again after a failover: registering updates
            // the hook already pointing at our URL) and deletes the hook when the source goes.
            let mut gate = crate::lead::Gate::new(&ctx, &source);
            let standby = match &mut gate {
                Some(g) => g.acquire(&ctx, &mut stop).await,
                None => None,
            };
            let (why, id) = match standby {
                Some(why) => (why, None),
                None => register_until_stopped(&ctx, &source, &registrar, &mut stop).await,
            };
            if why == Stop::Removed && gate.as_ref().is_none_or(crate::lead::Gate::leads) {
                unregister(&source, &registrar, id).await;
            }
            why
        }
        Err(e) => {
            ctx.report
                .not_ready(&source.uid, NOT_CONFIGURED, e.to_string());
            stop.stopped().await
        }
    };
    ctx.webhooks.remove_if(&cfg.path, &receiver);
    tracing::info!(source = %source.reference, ?why, "GitHub receiver stopped");
}

/// Register the hook (retrying with backoff), report it, and wait for the stop; why it
/// stopped and the hook's id if it was registered.
async fn register_until_stopped(
    ctx: &Ctx,
    source: &Source,
    registrar: &Registrar,
    stop: &mut StopSignal,
) -> (Stop, Option<u64>) {
    ctx.report.not_ready(
        &source.uid,
        NOT_CONFIGURED,
        "registering the webhook with GitHub",
    );
    let mut waits = REGISTER_RETRIES.build();
    let id = loop {
        let result = tokio::select! {
            why = stop.stopped() => return (why, None),
            r = registrar.register() => r,
        };
        match result {
            Ok(id) => break id,
            Err(e) => {
                let wait = waits.next().unwrap_or(Duration::from_secs(300));
                tracing::warn!(source = %source.reference, error = %e, retry_in = ?wait, "GitHub webhook not registered");
                ctx.report
                    .not_ready(&source.uid, NOT_CONFIGURED, e.to_string());
                tokio::select! {
                    why = stop.stopped() => return (why, None),
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    let id_text = id.to_string();
    ctx.report.ready(&source.uid, &[(HOOK_ID_KEY, &id_text)], 0);
    (stop.stopped().await, Some(id))
}

async fn unregister(source: &Source, registrar: &Registrar, id: Option<u64>) {
    let attempts = AtomicU32::new(0);
    let deleted = (|| async {
        let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        registrar.unregister(id).await.inspect_err(|e| {
            tracing::warn!(source = %source.reference, error = %e, attempt, "GitHub webhook not deleted");
        })
    })
    .retry(DELETE_RETRIES)
    .await;
    if deleted.is_err() {
        tracing::error!(source = %source.reference, hook = ?id, "GitHub webhook left in place: delete it by hand");
    }
}

#[cfg(test)]
mod tests;
