//! Receivers that live on the ingress listener but are not Brokers or channels: a source's
//! webhook (GitHubSource). The ingress reads the body within its limits, checks the sender
//! (OIDC on) and hands it to the receiver registered at the request's path; sources register
//! and remove their receivers.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use knit_channels::{BoxFuture, Event};
use knit_crds::contract::IngressAuth;

use crate::observe::Origin;
use parking_lot::RwLock;

/// The answer of a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// HTTP status.
    pub status: u16,
    /// A short text body (the reason, for refusals).
    pub body: String,
}

impl WebhookResponse {
    /// A response with `status` and `body`.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

/// Who may post to a receiver (OIDC on), and where its refusals are counted and journaled.
pub struct WebhookAuth {
    /// The receiver's audience, policies and default mode.
    pub auth: IngressAuth,
    /// The receiver's namespace (for `allow-same-namespace`).
    pub namespace: String,
    /// The receiving object, e.g. `GitHubSource/default/gh`.
    pub origin: Arc<Origin>,
}

/// A receiver of POSTed requests at one path.
pub trait Webhook: Send + Sync {
    /// Handle one POST with `headers` and the whole `body`.
    fn handle(&self, headers: HeaderMap, body: Bytes) -> BoxFuture<'_, WebhookResponse>;

    /// Who may post here (OIDC on): the ingress checks the bearer token and the sender's
    /// authorization before [`Webhook::handle`].
    fn auth(&self) -> Option<&WebhookAuth> {
        None
    }

    /// The event `handle` would forward for this request, if any (no I/O), for the
    /// EventPolicies' filters.
    fn preview(&self, _headers: &HeaderMap, _body: &Bytes) -> Option<Event> {
        None
    }
}

/// The receivers by path (e.g. `/github/default/my-source`).
#[derive(Default)]
pub struct Webhooks {
    by_path: RwLock<HashMap<String, Arc<dyn Webhook>>>,
}

impl Webhooks {
    /// No receivers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `hook` at `path` (replacing what was there).
    pub fn insert(&self, path: &str, hook: Arc<dyn Webhook>) {
        self.by_path.write().insert(path.to_string(), hook);
    }

    /// Remove the receiver at `path`.
    pub fn remove(&self, path: &str) {
        self.by_path.write().remove(path);
    }

    /// Remove the receiver at `path` if it is still `hook` (a successor may have replaced it).
    pub fn remove_if(&self, path: &str, hook: &Arc<dyn Webhook>) {
        let mut map = self.by_path.write();
        if map.get(path).is_some_and(|h| Arc::ptr_eq(h, hook)) {
            map.remove(path);
        }
    }

    /// The receiver at `path`.
    pub fn get(&self, path: &str) -> Option<Arc<dyn Webhook>> {
        self.by_path.read().get(path).cloned()
    }
}
