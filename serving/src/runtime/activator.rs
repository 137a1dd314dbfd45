//! The activator (reference §2), in-process: a request for a revision with no ready replica
//! waits in the revision's bounded queue (full: 503) while the first one pokes the scaler, which
//! starts a replica at once (a cold start). Waiting requests are counted like a proxy's, so the
//! autoscaler sees them. The caller's deadline bounds the wait (504).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::proxy::{Admitted, MeterGuard, Refused};
use super::revision::Rev;

/// Why no replica took the request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// The activator's queue for this revision is full.
    #[error("pending request queue full ({0} requests wait for revision {1})")]
    QueueFull(usize, String),
    /// The replica's own queue is full.
    #[error(transparent)]
    Replica(#[from] Refused),
    /// The revision was removed while the request waited.
    #[error("revision {0} was removed")]
    Gone(String),
}

/// A place in the activator's queue, released on drop.
struct Waiting<'a> {
    rev: &'a Rev,
    _counted: MeterGuard,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.rev.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A slot on a ready replica of `rev`, waiting for one (and starting one) if needed.
pub(crate) async fn admit(rev: &Arc<Rev>) -> Result<Admitted, Refusal> {
    // The usual case, a ready replica, without subscribing to changes first.
    if let Some(counted) = rev.pick() {
        return Ok(counted.admit().await?);
    }
    let mut waiting: Option<Waiting<'_>> = None;
    loop {
        let mut changes = rev.subscribe();
        if let Some(counted) = rev.pick() {
            drop(waiting);
            return Ok(counted.admit().await?);
        }
        if rev.cancel.is_cancelled() {
            return Err(Refusal::Gone(rev.spec.name.clone()));
        }
        if waiting.is_none() {
            let before = rev.waiting.fetch_add(1, Ordering::AcqRel);
            let w = Waiting {
                rev,
                _counted: rev.activator.enter(),
            };
            if before >= rev.max_waiting {
                return Err(Refusal::QueueFull(before, rev.spec.name.clone()));
            }
            waiting = Some(w);
            rev.poke();
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    return Err(Refusal::Gone(rev.spec.name.clone()));
                }
            }
            () = rev.cancel.cancelled() => return Err(Refusal::Gone(rev.spec.name.clone())),
        }
    }
}
