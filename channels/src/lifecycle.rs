//! What a durable log keeps of its own lifecycle, the same for every backend: whether it is
//! closed (no more appends, no new consumers), and the consumers it opened, which a close tells
//! to finish what the log holds and then end. The memory log has its own queue and no need.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::log::LogError;

/// A consumer that can be told its log was closed.
pub(crate) trait Drains: Send + Sync {
    /// Finish what the log holds for the group, then end.
    fn drain_to_end(&self);
}

/// A log's closed flag and the consumers it opened (held weakly: a dropped consumer is
/// forgotten at the next open).
pub(crate) struct Lifecycle<C: Drains> {
    closed: AtomicBool,
    consumers: Mutex<Vec<Weak<C>>>,
}

impl<C: Drains> Default for Lifecycle<C> {
    fn default() -> Self {
        Self {
            closed: AtomicBool::new(false),
            consumers: Mutex::new(Vec::new()),
        }
    }
}

impl<C: Drains> Lifecycle<C> {
    /// Whether [`Lifecycle::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// `Err(Closed)` once closed: no consumer is opened on a closed log.
    pub(crate) fn check_open(&self) -> Result<(), LogError> {
        if self.is_closed() {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// Remember a consumer just opened, so that a close drains it.
    pub(crate) fn track(&self, consumer: &Arc<C>) {
        let mut live = self.consumers.lock();
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(consumer));
    }

    /// Close: refuse appends and opens from now on, and drain every live consumer.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let live: Vec<Arc<C>> = self.consumers.lock().iter().filter_map(Weak::upgrade).collect();
        for c in live {
            c.drain_to_end();
        }
    }
}
