//! The egresses' gauges — shed, lag, deliveries in flight — and their readiness, refreshed for
//! all of them by one task every [`REPORT_EVERY`]. An idle data plane wakes once a second
//! whatever its egress count, instead of once a second per egress (10,000 Triggers were 10,000
//! wake-ups a second). The report is written only when an egress's shed count changed (it is
//! ready from its first watch on), so an idle pass allocates nothing per egress.
//!
//! An egress is watched once its group is open and unwatched as soon as it ends — before its
//! group is left or deleted (a probe holds the consumer, whose group a Kafka broker will not
//! delete while it is a member) and before its entry leaves the report: a refresh holds the
//! watch list for its whole pass, so none can put back an entry that was just forgotten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use knit_dispatcher::EgressProbe;
use knit_dispatcher::observe::Counters;
use parking_lot::Mutex;

use super::Ctx;

/// How often gauges are refreshed.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The egresses watched, by UID.
#[derive(Default)]
pub(crate) struct Gauges {
    entries: Mutex<HashMap<String, Entry>>,
    /// Tells one watch from the next of the same UID (a re-created egress).
    next_token: AtomicU64,
    /// The refreshing task was started.
    started: AtomicBool,
}

struct Entry {
    token: u64,
    probe: EgressProbe,
    counters: Arc<Counters>,
    annotations: Vec<(String, String)>,
    /// The shed count last put in the report (the egress reports itself ready with 0 before
    /// it is watched): the report is written only when it changes.
    reported_shed: u64,
}

/// What [`Gauges::watch`] gives back, to unwatch that same egress.
pub(crate) struct Watched {
    uid: String,
    token: u64,
}

impl Gauges {
    /// Refresh the gauges of `uid` (reported as `reference`'s) from now on, with
    /// `annotations` in its report; the first watch starts the refreshing task.
    pub(crate) fn watch(
        ctx: &Arc<Ctx>,
        uid: &str,
        reference: &str,
        probe: EgressProbe,
        annotations: &[(&str, &str)],
    ) -> Watched {
        let gauges = &ctx.gauges;
        if !gauges.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(refresh_every(Arc::downgrade(ctx)));
        }
        let token = gauges.next_token.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            token,
            probe,
            counters: ctx.dispatch.stats.egress(reference),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reported_shed: 0,
        };
        gauges.entries.lock().insert(uid.to_string(), entry);
        Watched {
            uid: uid.to_string(),
            token,
        }
    }

    /// Stop refreshing what `watched` names (not a later watch of the same UID), and drop its
    /// probe (which holds the egress's consumer). Once this returns no refresh of it is under
    /// way.
    pub(crate) fn unwatch(&self, watched: &Watched) {
        let mut entries = self.entries.lock();
        if entries
            .get(&watched.uid)
            .is_some_and(|e| e.token == watched.token)
        {
            entries.remove(&watched.uid);
        }
    }

    /// One pass over every watched egress.
    fn refresh(&self, ctx: &Ctx) {
        let relaxed = Ordering::Relaxed;
        let mut entries = self.entries.lock();
        for (uid, e) in entries.iter_mut() {
            let group = e.probe.group_stats();
            e.counters.shed.store(group.shed, relaxed);
            e.counters.lag.store(group.lag.unwrap_or(0), relaxed);
            e.counters
                .in_flight
                .store(e.probe.in_flight() as u64, relaxed);
            if group.shed != e.reported_shed {
                let annotations: Vec<(&str, &str)> = e
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                ctx.report.ready(uid, &annotations, group.shed);
                e.reported_shed = group.shed;
            }
        }
    }
}

/// Refresh every [`REPORT_EVERY`] while the data plane lives.
async fn refresh_every(ctx: Weak<Ctx>) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ctx) = ctx.upgrade() else { return };
        if *ctx.shutdown.borrow() {
            return;
        }
        ctx.gauges.refresh(&ctx);
    }
}
