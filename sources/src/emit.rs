//! Emitting: every source hands its events to an [`Emitter`], which applies the source's
//! `ceOverrides` and sends through the dispatcher's one delivery entry (retries, backoff,
//! timeout, dead letter, fate recorded under the source's reference).

use knit_channels::{Event, ExtValue};
use knit_crds::contract::Source;
use knit_dispatcher::sender::Session;
use knit_dispatcher::{Destination, Fate, Shared};
use parking_lot::Mutex;

/// Most idle connection sessions kept for concurrent sends.
const MAX_IDLE_SESSIONS: usize = 16;

/// Sends one source's events to its sink.
pub struct Emitter {
    dispatch: Shared,
    dest: Destination,
    overrides: Vec<(String, String)>,
    sessions: Mutex<Vec<Session>>,
}

impl Emitter {
    /// An emitter for `source`.
    pub fn new(dispatch: &Shared, source: &Source) -> Self {
        Self {
            dispatch: dispatch.clone(),
            dest: Destination::new(
                &source.reference,
                &source.namespace,
                &source.sink,
                source.dead_letter_sink.as_deref(),
                source.delivery.clone(),
                source.auth.clone(),
            ),
            overrides: source
                .overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sessions: Mutex::new(Vec::new()),
        }
    }

    /// Apply the overrides to `event` (what [`Self::emit`] does first).
    pub fn apply_overrides(&self, event: &mut Event) {
        for (k, v) in &self.overrides {
            event.set_extension(k, ExtValue::String(v.clone()));
        }
    }

    /// Send `event` (with the overrides applied); resolves with its fate once it was delivered,
    /// dead-lettered or given up. Safe to call concurrently.
    pub async fn emit(&self, mut event: Event) -> Fate {
        self.apply_overrides(&mut event);
        let mut session = self.sessions.lock().pop().unwrap_or_default();
        let fate = knit_dispatcher::send(&self.dispatch, &self.dest, event, &mut session).await;
        let mut idle = self.sessions.lock();
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
        fate
    }
}

/// Whether a fate means the sink (or its dead-letter sink) has the event.
pub fn accepted(fate: &Fate) -> bool {
    matches!(fate, Fate::Delivered { .. } | Fate::DeadLettered { .. })
}
