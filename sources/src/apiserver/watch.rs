//! The watch tasks of one ApiServerSource: one per watched resource and namespace, each
//! turning its watcher's events into changes ([`super::track::Tracker`]) and sending them in
//! order; and, with a `namespaceSelector`, one over the Namespaces whose labels match.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use knit_crds::contract::{ApiServerMode, Source};
use knit_dispatcher::{EventFilter, Reporter};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::RwLock;

use super::events::{self, Change};
use super::track::Tracker;
use crate::emit::Emitter;
use crate::runtime::StopSignal;

/// One watch.
pub(super) struct Target {
    /// What it watches.
    pub resource: ApiResource,
    /// In one namespace, or all (cluster-scoped, or a namespace selector).
    pub namespace: Option<String>,
    /// Server-side label selector.
    pub label_selector: Option<String>,
    /// Whether only objects in the namespaces the selector picks are reported.
    pub filter_namespaces: bool,
}

/// Whether every watch has listed once: the source is ready then.
pub(super) struct Readiness {
    report: Arc<Reporter>,
    uid: String,
    /// The API server URL: the `source` of every event, reported for `status.ceAttributes`.
    server: String,
    pending: AtomicUsize,
    ready: AtomicBool,
}

impl Readiness {
    pub(super) fn new(report: Arc<Reporter>, uid: String, server: String, pending: usize) -> Self {
        Self {
            report,
            uid,
            server,
            pending: AtomicUsize::new(pending),
            ready: AtomicBool::new(false),
        }
    }

    /// A watch finished its first list.
    fn listed(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.check();
    }

    /// Report ready once nothing is pending.
    pub(super) fn check(&self) {
        if self.pending.load(Ordering::SeqCst) == 0 && !self.ready.swap(true, Ordering::SeqCst) {
            self.report
                .ready(&self.uid, &[("source", self.server.as_str())], 0);
        }
    }

    /// A watch failed: reported while the source is not yet running, logged after (the
    /// watcher retries with backoff either way).
    fn failed(&self, source: &str, err: &watcher::Error) {
        let forbidden = matches!(
            err,
            watcher::Error::InitialListFailed(kube::Error::Api(s))
                | watcher::Error::WatchStartFailed(kube::Error::Api(s))
                | watcher::Error::WatchFailed(kube::Error::Api(s))
                if s.code == 403
        ) || matches!(err, watcher::Error::WatchError(s) if s.code == 403);
        let gone = matches!(err, watcher::Error::WatchError(s) if s.code == 410);
        if gone {
            tracing::debug!(source, "watch expired (410 Gone): re-listing");
        } else {
            tracing::warn!(source, error = %err, "watch failed; retrying with backoff");
        }
        if !gone && !self.ready.load(Ordering::SeqCst) {
            let reason = if forbidden {
                "WatchForbidden"
            } else {
                "WatchFailed"
            };
            self.report.not_ready(&self.uid, reason, err.to_string());
        }
    }
}

/// What the watches of one source share.
pub(super) struct Shared {
    pub source: Arc<Source>,
    pub mode: ApiServerMode,
    pub owner: Option<(String, String)>,
    /// The API server URL: the events' `source`.
    pub server: String,
    pub emitter: Emitter,
    pub filter: Option<Arc<dyn EventFilter>>,
    /// The namespaces the namespace selector picks (when one is set).
    pub namespaces: RwLock<HashSet<String>>,
    pub readiness: Readiness,
}

impl Shared {
    /// Whether `obj` is owned as `owner` asks: Knative checks the controller reference.
    fn owned(&self, obj: &DynamicObject) -> bool {
        let Some((api_version, kind)) = &self.owner else {
            return true;
        };
        let controller = obj
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        controller.is_some_and(|c| {
            (api_version.is_empty() || *api_version == c.api_version)
                && (kind.is_empty() || *kind == c.kind)
        })
    }

    async fn send(&self, target: &Target, change: Change, obj: &DynamicObject) {
        if !self.owned(obj) {
            return;
        }
        if target.filter_namespaces {
            let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
            if !self.namespaces.read().contains(ns) {
                return;
            }
        }
        let ev = match events::event(&self.server, self.mode, change, obj) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(source = %self.source.reference, error = %e, "object cannot be encoded; skipped");
                return;
            }
        };
        if let Some(f) = &self.filter
            && !f.matches(&ev)
        {
            tracing::debug!(source = %self.source.reference, ty = %ev.ty, subject = ?ev.subject, "filtered out");
            return;
        }
        let (ty, subject) = (ev.ty.clone(), ev.subject.clone());
        let fate = self.emitter.emit(ev).await;
        tracing::debug!(source = %self.source.reference, ty = %ty, subject = ?subject, fate = ?fate, "sent");
    }
}

fn watch_config(label_selector: Option<&str>) -> watcher::Config {
    // Bookmarks are on by default (`allowWatchBookmarks=true`): they move the resume point.
    let cfg = watcher::Config::default();
    match label_selector {
        Some(s) => cfg.labels(s),
        None => cfg,
    }
}

/// Watch one target until told to stop.
pub(super) async fn objects(
    shared: Arc<Shared>,
    client: kube::Client,
    target: Target,
    mut stop: StopSignal,
) {
    let api: Api<DynamicObject> = match &target.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &target.resource),
        None => Api::all_with(client, &target.resource),
    };
    let what = format!(
        "{}/{} in {}",
        target.resource.api_version,
        target.resource.kind,
        target.namespace.as_deref().unwrap_or("all namespaces")
    );
    let reference = shared.source.reference.clone();
    let stream = watcher(api, watch_config(target.label_selector.as_deref())).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut tracker = Tracker::new(
        target.resource.clone(),
        shared.mode == ApiServerMode::Resource,
    );
    tracing::debug!(source = %reference, watch = %what, "watch started");
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.stopped() => break,
            n = stream.next() => n,
        };
        match next {
            None => break,
            Some(Err(e)) => shared.readiness.failed(&reference, &e),
            Some(Ok(ev)) => {
                let was_primed = tracker.primed();
                let changes = tracker.on(ev);
                if !was_primed && tracker.primed() {
                    tracing::debug!(source = %reference, watch = %what, objects = tracker.len(), "first list done");
                    shared.readiness.listed();
                }
                for (change, obj) in changes {
                    if stop.is_stopped().is_some() {
                        return;
                    }
                    shared.send(&target, change, &obj).await;
                }
            }
        }
    }
}

/// Keep `shared.namespaces` equal to the Namespaces `selector` picks, until told to stop.
pub(super) async fn namespaces(
    shared: Arc<Shared>,
    client: kube::Client,
    selector: String,
    mut stop: StopSignal,
) {
    let api: Api<Namespace> = Api::all(client);
    let reference = shared.source.reference.clone();
    let stream = watcher(api, watch_config(Some(&selector))).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listing: Option<HashSet<String>> = None;
    let mut primed = false;
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.stopped() => break,
            n = stream.next() => n,
        };
        let name = |ns: &Namespace| ns.metadata.name.clone().unwrap_or_default();
        match next {
            None => break,
            Some(Err(e)) => shared.readiness.failed(&reference, &e),
            Some(Ok(watcher::Event::Init)) => listing = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitApply(ns))) => {
                listing.get_or_insert_with(HashSet::new).insert(name(&ns));
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let set = listing.take().unwrap_or_default();
                tracing::debug!(source = %reference, namespaces = ?set, "namespaces selected");
                *shared.namespaces.write() = set;
                if !primed {
                    primed = true;
                    shared.readiness.listed();
                }
            }
            Some(Ok(watcher::Event::Apply(ns))) => {
                shared.namespaces.write().insert(name(&ns));
            }
            Some(Ok(watcher::Event::Delete(ns))) => {
                shared.namespaces.write().remove(&name(&ns));
            }
        }
    }
}
