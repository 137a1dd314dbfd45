//! What the data plane tells the control plane: per object UID (a log, a consumer group, a
//! source adapter), whether it runs, and why not. Changes are published on a watch channel
//! (which coalesces bursts).
//!
//! A change costs O(log n), not a copy of the whole report: the report is changed in place
//! under the channel's lock and copied only when a reader still holds the previous version
//! (copy on write), so a burst of changes between two reads costs at most one copy.

use std::sync::Arc;

use knit_crds::contract::{ObjectReport, Report};
use tokio::sync::watch;

/// The shared report.
pub struct Reporter {
    tx: watch::Sender<Arc<Report>>,
}

impl Reporter {
    /// An empty report.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Arc::new(Report::default()));
        Self { tx }
    }

    /// Follow the report.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Report>> {
        self.tx.subscribe()
    }

    /// Set one object's state (published only when it changed).
    pub fn set(&self, uid: &str, state: ObjectReport) {
        self.tx.send_if_modified(|report| {
            if report.objects.get(uid) == Some(&state) {
                return false;
            }
            Arc::make_mut(report).objects.insert(uid.to_string(), state);
            true
        });
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
        self.tx.send_if_modified(|report| {
            if !report.objects.contains_key(uid) {
                return false;
            }
            Arc::make_mut(report).objects.remove(uid);
            true
        });
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_its_version_while_changes_go_on() {
        let r = Reporter::new();
        let mut rx = r.subscribe();
        r.ready("a", &[], 0);
        assert!(rx.has_changed().unwrap_or(false));
        let held = rx.borrow_and_update().clone();
        r.not_ready("b", "Opening", "not yet");
        r.ready("b", &[("group.id", "g")], 0);
        assert_eq!(held.objects.len(), 1, "the held version is not changed");
        let now = rx.borrow_and_update().clone();
        assert_eq!(now.objects.len(), 2);
        assert_eq!(now.objects["b"].annotations["group.id"], "g");
        r.ready("b", &[("group.id", "g")], 0);
        assert!(
            !rx.has_changed().unwrap_or(true),
            "the same state is no change"
        );
        r.forget("a");
        r.forget("missing");
        assert!(!rx.borrow_and_update().objects.contains_key("a"));
        assert!(!rx.has_changed().unwrap_or(true));
    }
}
