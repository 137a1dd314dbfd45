//! The serving data plane: revisions as supervised local processes, a proxy in front of each
//! replica (containerConcurrency, stats), the activator queue that holds requests while a
//! revision scales from zero, the scaler loop, and the gateway that routes by Host.
//!
//! # API (what `src/run.rs` wires)
//!
//! ```ignore
//! let serving = Serving::new(Config::default(), Arc::new(bridge) as Arc<dyn ReportSink>);
//! tokio::spawn({ let s = serving.clone(); async move { s.serve_gateway(listener).await } });
//! serving.apply(&contract.serving);               // on every Contract; returns at once
//! let lines = serving.logs("default", "hello", 0); // `knit logs ksvc/hello` (service or revision)
//! serving.shutdown(Duration::from_secs(10)).await;
//! ```
//!
//! - [`Serving::new`] must be called inside a Tokio runtime (it spawns the scaler loop).
//! - [`Serving::apply`] diffs by revision UID: a new UID starts replicas (initial scale), a
//!   UID whose processes changed is restarted, `routed`/autoscaling changes apply in place,
//!   a UID gone is drained and [`ReportSink::forget`] is called; routes are replaced at once.
//! - Reports go to the [`ReportSink`] per Revision UID whenever they change: `ready` when a
//!   replica is ready or the revision sits healthily at zero; annotations `actualReplicas`,
//!   `desiredReplicas`, `lastColdStartMs`, `coldStarts`; when not ready, `reason` is one of
//!   `ExitCode` (message: exit status and last output line, or why it could not start),
//!   `ProbeFailed`, `ProgressDeadlineExceeded`, `Deploying`.

mod activator;
mod env;
mod fastpath;
#[cfg(test)]
mod fixtures;
mod gateway;
mod kpa;
mod logs;
mod pool;
mod probe;
mod proxy;
mod replica;
mod revision;
mod rewind;
mod scaler;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use knit_crds::contract::ObjectReport;
use knit_crds::contract::serving::Serving as Spec;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

pub use logs::LogLine;

use gateway::Table;
use logs::Ring;
use revision::Rev;

/// Where the data plane's per-Revision state goes (the lead bridges it to the Reporter).
pub trait ReportSink: Send + Sync + 'static {
    /// The state of the Revision with this UID.
    fn set(&self, uid: &str, state: ObjectReport);
    /// The Revision is gone from the Contract.
    fn forget(&self, uid: &str);
}

/// Tunables of the data plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// The scaler's period (reference §1.1: 1 s; the KPA's buckets expect one stat a second).
    pub tick: Duration,
    /// Requests that may wait per revision for a ready replica (reference §2: 10,000).
    pub activator_queue: usize,
    /// A revision with no replica ready this long after one started reports
    /// `ProgressDeadlineExceeded` (Knative: 600 s).
    pub progress_deadline: Duration,
    /// Told the PID of every replica started (each leads its own process group).
    pub on_spawn: OnSpawn,
}

/// A hook told the PID of every process started, so whoever runs the data plane can stop
/// those processes if it dies without stopping them itself (SIGKILL, a crash).
#[derive(Clone, Default)]
pub struct OnSpawn(Option<Arc<dyn Fn(u32) + Send + Sync>>);

impl OnSpawn {
    pub fn new(f: impl Fn(u32) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    pub(crate) fn call(&self, pid: Option<u32>) {
        if let (Some(f), Some(pid)) = (&self.0, pid) {
            f(pid);
        }
    }
}

impl std::fmt::Debug for OnSpawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OnSpawn(set)"
        } else {
            "OnSpawn(none)"
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            activator_queue: 10_000,
            progress_deadline: Duration::from_secs(600),
            on_spawn: OnSpawn::default(),
        }
    }
}

/// Shared state.
pub(crate) struct Inner {
    pub(crate) config: Arc<Config>,
    report: Arc<dyn ReportSink>,
    /// By UID.
    pub(crate) revisions: RwLock<HashMap<String, Arc<Rev>>>,
    /// Namespace to name to UID.
    names: RwLock<HashMap<String, HashMap<String, String>>>,
    pub(crate) table: RwLock<Table>,
    /// Log rings by (namespace, revision name); kept while the revision runs.
    logs: RwLock<HashMap<(String, String), Arc<Ring>>>,
    seq: Arc<AtomicU64>,
    pub(crate) client: proxy::Upstream,
    pub(crate) cancel: CancellationToken,
}

impl Inner {
    /// The running revision `namespace/name`.
    pub(crate) fn revision(&self, namespace: &str, name: &str) -> Option<Arc<Rev>> {
        let names = self.names.read();
        let uid = names.get(namespace)?.get(name)?;
        self.revisions.read().get(uid).cloned()
    }
}

/// The serving data plane; cheap to clone.
#[derive(Clone)]
pub struct Serving {
    inner: Arc<Inner>,
}

impl Serving {
    /// A data plane with nothing to run yet; spawns the scaler loop (call inside a runtime).
    pub fn new(config: Config, report: Arc<dyn ReportSink>) -> Serving {
        let inner = Arc::new(Inner {
            config: Arc::new(config),
            report,
            revisions: RwLock::new(HashMap::new()),
            names: RwLock::new(HashMap::new()),
            table: RwLock::new(Table::default()),
            logs: RwLock::new(HashMap::new()),
            seq: Arc::new(AtomicU64::new(0)),
            client: proxy::upstream(),
            cancel: CancellationToken::new(),
        });
        tokio::spawn(scaler::run(inner.clone()));
        Serving { inner }
    }

    /// Run what `spec` says; returns at once (replicas start and drain in the background).
    pub fn apply(&self, spec: &Spec) {
        let inner = &self.inner;
        if inner.cancel.is_cancelled() {
            return;
        }
        let mut removed: Vec<Arc<Rev>> = Vec::new();
        {
            let mut revisions = inner.revisions.write();
            let mut names = inner.names.write();
            let mut logs = inner.logs.write();
            let wanted: HashMap<&str, _> =
                spec.revisions.iter().map(|r| (r.uid.as_str(), r)).collect();
            revisions.retain(|uid, rev| {
                let keep = wanted
                    .get(uid.as_str())
                    .is_some_and(|w| rev.same_processes(w));
                if !keep {
                    removed.push(rev.clone());
                }
                keep
            });
            for r in &spec.revisions {
                if let Some(rev) = revisions.get(&r.uid) {
                    rev.update(r, &spec.autoscaler_config);
                    continue;
                }
                let key = (r.namespace.clone(), r.name.clone());
                let ring = logs
                    .entry(key.clone())
                    .or_insert_with(|| Arc::new(Ring::new(&r.name, inner.seq.clone())))
                    .clone();
                tracing::info!(revision = %r.name, namespace = %r.namespace, uid = %r.uid, "starting revision");
                let rev = Rev::new(
                    r.clone(),
                    &spec.autoscaler_config,
                    ring,
                    inner.report.clone(),
                    inner.config.clone(),
                );
                revisions.insert(r.uid.clone(), rev);
                names
                    .entry(r.namespace.clone())
                    .or_default()
                    .insert(r.name.clone(), r.uid.clone());
            }
            names.retain(|_, by_name| {
                by_name.retain(|_, uid| revisions.contains_key(uid));
                !by_name.is_empty()
            });
            logs.retain(|(ns, name), _| names.get(ns).is_some_and(|m| m.contains_key(name)));
        }
        *inner.table.write() = Table::build(spec);
        for rev in removed {
            let still = inner.revisions.read().contains_key(&rev.spec.uid);
            tracing::info!(revision = %rev.spec.name, namespace = %rev.spec.namespace, "stopping revision");
            if !still {
                inner.report.forget(&rev.spec.uid);
            }
            let grace = rev.grace();
            tokio::spawn(async move { rev.stop(grace).await });
        }
    }

    /// Serve the gateway on `listener` until [`Serving::shutdown`].
    pub async fn serve_gateway(&self, listener: tokio::net::TcpListener) {
        gateway::serve(self.inner.clone(), listener).await;
    }

    /// Serve the gateway on `listener`, plain TCP or TLS (`knit_tls::TlsListener`); the app
    /// gets `X-Forwarded-Proto: https` from the latter.
    pub async fn serve_gateway_on<A: knit_tls::Accept>(&self, listener: A) {
        gateway::serve(self.inner.clone(), listener).await;
    }

    /// Replica output after sequence number `after_seq` (0: all kept) of the revision `name`,
    /// or of every revision of the Service or Configuration `name`, in sequence order.
    pub fn logs(&self, namespace: &str, name: &str, after_seq: u64) -> Vec<LogLine> {
        const MAX: usize = 10_000;
        let inner = &self.inner;
        let mut rings: Vec<Arc<Ring>> = Vec::new();
        {
            let revisions = inner.revisions.read();
            let logs = inner.logs.read();
            for rev in revisions.values() {
                let s = &rev.spec;
                if s.namespace == namespace
                    && (s.name == name
                        || s.configuration == name
                        || s.service.as_deref() == Some(name))
                    && let Some(ring) = logs.get(&(s.namespace.clone(), s.name.clone()))
                {
                    rings.push(ring.clone());
                }
            }
        }
        let mut lines: Vec<LogLine> = rings.iter().flat_map(|r| r.since(after_seq, MAX)).collect();
        lines.sort_by_key(|l| l.seq);
        lines.truncate(MAX);
        lines
    }

    /// The current report of the Revision with this UID.
    pub fn report(&self, uid: &str) -> Option<ObjectReport> {
        self.inner.revisions.read().get(uid).map(|r| r.report())
    }

    /// Stop serving: the gateway stops accepting, every replica drains (up to `grace`), then
    /// whatever is left is killed.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.cancel.cancel();
        let revs: Vec<Arc<Rev>> = self
            .inner
            .revisions
            .write()
            .drain()
            .map(|(_, r)| r)
            .collect();
        let stops = revs.iter().map(|r| r.stop(grace));
        futures::future::join_all(stops).await;
    }
}
