//! What the data plane tells the control plane: per object UID (a log, a consumer group, a
//! source adapter), whether it runs, and why not. Changes are published on a watch channel
//! (which coalesces bursts).

use std::sync::Arc;

use knit_crds::contract::{ObjectReport, Report};
use parking_lot::Mutex;
use tokio::sync::watch;

/// The shared report.
pub struct Reporter {
    current: Mutex<Report>,
    tx: watch::Sender<Arc<Report>>,
}

impl Reporter {
    /// An empty report.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Arc::new(Report::default()));
        Self {
            current: Mutex::new(Report::default()),
            tx,
        }
    }

    /// Follow the report.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Report>> {
        self.tx.subscribe()
    }

    /// Set one object's state (published only when it changed).
    pub fn set(&self, uid: &str, state: ObjectReport) {
        let mut cur = self.current.lock();
        if cur.objects.get(uid) == Some(&state) {
            return;
        }
        cur.objects.insert(uid.to_string(), state);
        self.tx.send_replace(Arc::new(cur.clone()));
    }

    /// An object is running.
    pub fn ready(&self, uid: &str, annotations: &[(&str, &str)], shed: u64) {
        self.set(
            uid,
            ObjectReport {
                ready: true,
                annotations: annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                shed,
                ..Default::default()
            },
        );
    }

    /// An object is not running yet, or failed.
    pub fn not_ready(&self, uid: &str, reason: &str, message: impl Into<String>) {
        self.set(
            uid,
            ObjectReport {
                ready: false,
                reason: reason.to_string(),
                message: message.into(),
                ..Default::default()
            },
        );
    }

    /// Forget an object that no longer runs here.
    pub fn forget(&self, uid: &str) {
        let mut cur = self.current.lock();
        if cur.objects.remove(uid).is_some() {
            self.tx.send_replace(Arc::new(cur.clone()));
        }
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Self::new()
    }
}
