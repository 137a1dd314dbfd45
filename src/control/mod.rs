//! The standalone control plane: a store fed by watched manifest files and the admin API,
//! reconciled after every change; statuses are published as a snapshot and the Contract is
//! handed to the data plane before the statuses that depend on it become visible (see
//! [`publish`]). Nothing runs while nothing changes: files are watched through the operating
//! system's notifications where it has them ([`watch`]), and data-plane reports wake it only
//! when one changed.

pub(crate) mod feature_gate;
pub mod files;
mod load;
mod publish;
pub mod reconcile;
pub mod store;
#[cfg(test)]
mod testing;
pub mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use knit_crds::admission::{Hooks, Issue, admit_file};
use knit_crds::contract::{Contract, Report};
use knit_crds::{Object, ObjectKey};
use tokio::sync::{mpsc, oneshot};

pub use publish::Json;
use reconcile::Env;
use store::{Action, Origin, Store};

/// Receives each new Contract; returns once the data plane runs it.
pub trait Applier: Send + Sync + 'static {
    /// Apply `contract`.
    fn apply<'a>(&'a self, contract: &'a Contract)
    -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// What the admin API reads: every object with its status, and the Contract.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Objects as JSON (with `status`), by key.
    pub objects: BTreeMap<ObjectKey, Json>,
    /// The Contract the data plane runs.
    pub contract: Arc<Contract>,
    /// Increases whenever an object or its status changes.
    pub version: u64,
}

/// One object `knit apply` touched.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    /// `Kind/name`.
    pub object: String,
    /// Namespace.
    pub namespace: String,
    /// created, configured or unchanged.
    pub action: &'static str,
}

/// The result of `knit apply`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyReport {
    /// What was applied.
    pub applied: Vec<Applied>,
    /// Warnings (ignored kinds, converted versions).
    pub warnings: Vec<String>,
}

enum Command {
    Apply {
        file: String,
        text: String,
        respond: oneshot::Sender<Result<ApplyReport, Vec<String>>>,
    },
    Delete {
        key: ObjectKey,
        respond: oneshot::Sender<bool>,
    },
}

/// A handle to the running control plane.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    snapshot: tokio::sync::watch::Receiver<Arc<Snapshot>>,
}

impl Handle {
    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Admit and store the manifests in `text` (named `file` in messages).
    pub async fn apply(&self, file: String, text: String) -> Result<ApplyReport, Vec<String>> {
        let (respond, rx) = oneshot::channel();
        self.tx
            .send(Command::Apply {
                file,
                text,
                respond,
            })
            .await
            .map_err(|_| vec!["the control plane has stopped".to_string()])?;
        rx.await
            .map_err(|_| vec!["the control plane has stopped".to_string()])?
    }

    /// Delete one object; false when it did not exist.
    pub async fn delete(&self, key: ObjectKey) -> bool {
        let (respond, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Delete { key, respond })
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

struct ControlPlane {
    store: Store,
    /// What each watched file's documents held at its last good load (see [`load`]).
    documents: std::collections::HashMap<String, load::KnownDocuments>,
    /// The objects with their statuses as the last pass left them (their conditions keep
    /// `lastTransitionTime` stable), and their JSON.
    published: publish::Published,
    /// The Revisions the previous reconcile stamped, passed back so past generations stay.
    history: Vec<Object>,
    env: Env,
    hooks: Hooks,
    applier: Arc<dyn Applier>,
    contract: Arc<Contract>,
    snapshot: tokio::sync::watch::Sender<Arc<Snapshot>>,
    /// What the data plane made of the Contract (read into statuses).
    report: tokio::sync::watch::Receiver<Arc<Report>>,
    /// How long the last pass took.
    last_pass: Duration,
    /// Passes so far.
    passes: u64,
}

fn now() -> jiff::Timestamp {
    let t = jiff::Timestamp::now();
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn display(path: &std::path::Path) -> String {
    path.display().to_string()
}

impl ControlPlane {
    fn apply(&mut self, file: &str, text: &str) -> Result<ApplyReport, Vec<String>> {
        let verdict = admit_file(file, text, &self.hooks);
        if !verdict.errors.is_empty() {
            return Err(verdict.errors.iter().map(ToString::to_string).collect());
        }
        let mut errors = Vec::new();
        for (doc, o) in &verdict.objects {
            for e in self.store.check(o) {
                errors.push(format!("{file}:{doc}: {}/{}: {e}", o.kind(), o.name()));
            }
        }
        let batch = verdict.objects.iter().map(|(_, o)| o);
        for (key, e) in feature_gate::refusals(&self.store, batch, None, |_| false) {
            errors.push(format!("{file}: {}/{}: {e}", key.kind, key.name));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let applied = verdict
            .objects
            .into_iter()
            .map(|(_, o)| {
                let (object, namespace) = (
                    format!("{}/{}", o.kind().singular(), o.name()),
                    o.namespace().to_string(),
                );
                let action: Action = self.store.put(o, Origin::Api, now());
                Applied {
                    object,
                    namespace,
                    action: action.as_str(),
                }
            })
            .collect();
        Ok(ApplyReport {
            applied,
            warnings: verdict.warnings.iter().map(ToString::to_string).collect(),
        })
    }
}

/// Load `files`, reconcile, and run the control plane, reconciling again whenever `report` (what
/// the data plane made of the Contract) changes. Fails with every admission error of the initial
/// load.
pub async fn start(
    roots: Vec<PathBuf>,
    env: Env,
    hooks: Hooks,
    applier: Arc<dyn Applier>,
    report: tokio::sync::watch::Receiver<Arc<Report>>,
) -> Result<Handle, Vec<Issue>> {
    let wakeup = watch::Wakeup::for_roots(&roots);
    let mut watcher = files::Watcher::new(roots);
    let (watcher, changes) = tokio::task::spawn_blocking(move || {
        let c = watcher.poll();
        (watcher, c)
    })
    .await
    .map_err(|e| vec![task_issue(e)])?;
    let (snap_tx, snap_rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    let mut cp = ControlPlane {
        store: Store::default(),
        documents: Default::default(),
        published: publish::Published::default(),
        history: Vec::new(),
        env,
        hooks,
        applier,
        contract: Arc::default(),
        snapshot: snap_tx,
        report,
        last_pass: Duration::ZERO,
        passes: 0,
    };
    // A file refused on the first round is read again once every other file is in: what it
    // depends on (the ConfigMap enabling a feature it uses) may come in a later file.
    let mut refused = Vec::new();
    for change in changes {
        if let files::Change::Changed(path, text) = change
            && cp.load_file(&path, &text).is_err()
        {
            refused.push((path, text));
        }
    }
    let mut errors = Vec::new();
    for (path, text) in refused {
        if let Err(e) = cp.load_file(&path, &text) {
            errors.extend(e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    cp.publish().await;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run(cp, watcher, wakeup, rx));
    Ok(Handle {
        tx,
        snapshot: snap_rx,
    })
}

fn task_issue(e: tokio::task::JoinError) -> Issue {
    Issue {
        file: String::new(),
        doc: 0,
        subject: None,
        error: knit_crds::admission::FieldError::new("", format!("loading manifests failed: {e}")),
        severity: knit_crds::admission::Severity::Error,
    }
}

/// The control loop: admin API commands, file changes and data-plane reports, each causing
/// a pass; reports gather for [`ControlPlane::report_settle`] first.
async fn run(
    mut cp: ControlPlane,
    watcher: files::Watcher,
    mut wakeup: watch::Wakeup,
    mut rx: mpsc::Receiver<Command>,
) {
    let mut watcher = Some(watcher);
    // Files rejected so far, retried after every other change (a conflict may have gone away).
    let mut rejected: BTreeMap<PathBuf, String> = BTreeMap::new();
    // When the reports that arrived are due for a pass, and how many passes there had been.
    let mut report_due: Option<(tokio::time::Instant, u64)> = None;
    loop {
        tokio::select! {
            changed = cp.report.changed(), if report_due.is_none() => {
                if changed.is_err() {
                    break;
                }
                report_due = Some((tokio::time::Instant::now() + cp.report_settle(), cp.passes));
            }
            () = sleep_until(report_due.map(|(due, _)| due)), if report_due.is_some() => {
                report_due = None;
                cp.publish().await;
            }
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                cp.command(cmd).await;
            }
            () = wakeup.next() => {
                wakeup.settle().await;
                let Some(w) = watcher.take() else { break };
                let Some((w, changes)) = poll(w).await else { break };
                watcher = Some(w);
                if !changes.is_empty() {
                    cp.file_changes(changes, &mut rejected).await;
                }
            }
        }
        // A pass for a command or a file read every report that had arrived: none is due unless
        // another came after it.
        if let Some((_, passes)) = report_due
            && cp.passes > passes
            && !cp.report.has_changed().unwrap_or(false)
        {
            report_due = None;
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Poll the watched files off the async threads: the watcher back, and what changed (`None`
/// if the poll panicked).
async fn poll(mut w: files::Watcher) -> Option<(files::Watcher, Vec<files::Change>)> {
    tokio::task::spawn_blocking(move || {
        let c = w.poll();
        (w, c)
    })
    .await
    .ok()
}

impl ControlPlane {
    /// Run one admin API command, publishing when it changed anything.
    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Apply {
                file,
                text,
                respond,
            } => {
                let result = self.apply(&file, &text);
                if result.is_ok() {
                    self.publish().await;
                }
                let _ = respond.send(result);
            }
            Command::Delete { key, respond } => {
                let found = self.store.remove(&key).is_some();
                if found {
                    self.publish().await;
                }
                let _ = respond.send(found);
            }
        }
    }

    /// Load the changed manifest files (a rejected one keeps its last good version and is
    /// retried after later changes, with those rejected before), drop the removed ones, and
    /// publish.
    async fn file_changes(
        &mut self,
        changes: Vec<files::Change>,
        rejected: &mut BTreeMap<PathBuf, String>,
    ) {
        for change in changes {
            match change {
                files::Change::Changed(path, text) => {
                    rejected.remove(&path);
                    match self.load_file(&path, &text) {
                        Ok(()) => tracing::info!(file = %path.display(), "manifest loaded"),
                        Err(errors) => {
                            for e in errors {
                                tracing::error!(file = %path.display(), "rejected, keeping the last good version: {e}");
                            }
                            rejected.insert(path, text);
                        }
                    }
                }
                files::Change::Removed(path) => {
                    tracing::info!(file = %path.display(), "manifest removed");
                    rejected.remove(&path);
                    self.remove_file(&path);
                }
            }
        }
        rejected.retain(|path, text| match self.load_file(path, text) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "manifest loaded");
                false
            }
            Err(_) => true,
        });
        self.publish().await;
    }
}
