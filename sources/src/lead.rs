//! Work that must run once in the system runs on its leader. When several Knit replicas share
//! a Kafka or NATS engine, a PingSource's ticks, an ApiServerSource's watches, a
//! ContainerSource's processes and a GitHubSource's hook registration run only on the replica
//! that leads the source's name (`Kind/namespace/name`, held through the engine: see
//! `knit_channels::coordination`). The others stand by and take over when the leader goes.
//! CloudPubSubSources pull on every replica (Pub/Sub hands each message of the shared
//! subscription to one puller), and GitHub receivers listen on every replica (any ingress
//! accepts for all).
//!
//! Whether this replica leads, and who does, is reported under [`report_key`]`(uid)`: the
//! source's status shows it as the `Leader` condition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use knit_channels::coordination::{Coordination, Leadership};
use knit_crds::contract::{ObjectReport, Source};
use tokio::sync::watch;

use crate::runtime::{Ctx, Stop, StopSignal};

/// How often a replica standing by refreshes who leads in its report.
const STANDBY_REPORT: Duration = Duration::from_secs(2);

/// Where the leadership of the source `uid` is reported.
pub fn report_key(uid: &str) -> String {
    format!("{uid}#leader")
}

/// An adapter's entry point.
pub(crate) type AdapterFn =
    fn(Arc<Ctx>, Arc<Source>, StopSignal) -> futures::future::BoxFuture<'static, ()>;

/// The campaign of one source for its leadership.
pub(crate) struct Gate {
    coordination: Arc<Coordination>,
    lead: Leadership,
    name: String,
    key: String,
}

impl Gate {
    /// Campaign for `source` (`None` without coordination: this process runs everything).
    /// Alone on no engine this process leads at once, and statuses say nothing of it.
    pub(crate) fn new(ctx: &Ctx, source: &Source) -> Option<Self> {
        let coordination = ctx.coordination.clone()?;
        let name = source.reference.clone();
        Some(Self {
            lead: coordination.lead(&name),
            coordination,
            key: report_key(&source.uid),
            name,
        })
    }

    /// Stand by until this replica leads (`None`) or the adapter is told to stop.
    pub(crate) async fn acquire(&mut self, ctx: &Ctx, stop: &mut StopSignal) -> Option<Stop> {
        let mut every = tokio::time::interval(STANDBY_REPORT);
        loop {
            self.report(ctx, false);
            tokio::select! {
                why = stop.stopped() => return Some(why),
                () = self.lead.acquired() => break,
                _ = every.tick() => {}
            }
        }
        self.report(ctx, true);
        tracing::info!(source = %self.name, replica = %self.coordination.id(), "this replica leads");
        None
    }

    /// Resolves once this replica no longer leads.
    pub(crate) async fn lost(&mut self) {
        self.lead.lost().await;
    }

    /// Whether this replica leads now.
    pub(crate) fn leads(&self) -> bool {
        self.lead.is_leader()
    }

    fn report(&self, ctx: &Ctx, leading: bool) {
        if !self.coordination.shared() {
            return;
        }
        let me = self.coordination.id();
        let leader = if leading {
            Some(me.clone())
        } else {
            self.coordination.leader_of(&self.name)
        };
        let message = match &leader {
            Some(l) if *l == me => format!("this replica ({me}) leads"),
            Some(l) => format!("replica {l} leads; this replica ({me}) stands by"),
            None => format!("no replica leads yet; this replica ({me}) stands by"),
        };
        let mut annotations = BTreeMap::from([("replica".to_string(), me)]);
        if let Some(l) = leader {
            annotations.insert("leader".into(), l);
        }
        ctx.report.set(
            &self.key,
            ObjectReport {
                ready: leading,
                reason: if leading { "Leading" } else { "Standby" }.into(),
                message,
                annotations,
                ..Default::default()
            },
        );
    }
}

/// Run `adapter` for `source` while this replica leads it; stand by otherwise.
pub(crate) async fn run_led(
    ctx: Arc<Ctx>,
    source: Arc<Source>,
    mut stop: StopSignal,
    adapter: AdapterFn,
) {
    let Some(mut gate) = Gate::new(&ctx, &source) else {
        adapter(ctx, source, stop).await;
        return;
    };
    loop {
        if gate.acquire(&ctx, &mut stop).await.is_some() {
            return;
        }
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(adapter(ctx.clone(), source.clone(), StopSignal(rx)));
        tokio::select! {
            why = stop.stopped() => {
                tx.send_replace(Some(why));
                let _ = task.await;
                return;
            }
            () = gate.lost() => {
                tracing::warn!(source = %source.reference, "lead lost: the adapter stops here");
                // Like a shutdown: what the adapter set up outside stays for the next leader.
                tx.send_replace(Some(Stop::Shutdown));
                let _ = task.await;
            }
        }
    }
}
