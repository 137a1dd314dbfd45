//! One task per ingress (a Broker, a channel, a KafkaSink, a KafkaSource): opens its log
//! (creating the Kafka topic; retrying while the cluster is unreachable, with the reason in the
//! object's status), keeps one egress task per Trigger or Subscription, installs the memory
//! log's filter index, and on removal retires: the log stops taking appends, every egress
//! delivers what was accepted, and only then are topics deleted.
//!
//! A changed Contract entry costs in proportion to what changed: egresses are diffed by UID and
//! only the changed ones are told; filters are compiled once per egress and kept while they do
//! not change; the journal's view and the filter index are rebuilt once per change, and only
//! when an egress came, went, or changed its filter or name. The first egresses open before the
//! index is installed, so a log's index is built once, not once per group.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use knit_channels::Log;
use knit_crds::contract::{Egress, Ingress, IngressKind};
use knit_dispatcher::observe::{IngressView, Origin, ViewEntry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Ctx;
use super::backends;
use super::egresses::{self, EgressConfig, EgressSlot};
use crate::filter::{self, TriggerRouter};
use crate::ingress::{NoLog, Target};

/// How long a new ingress waits for its first consumer groups before taking events.
const FIRST_GROUPS_WAIT: Duration = Duration::from_secs(10);

/// A Trigger's filter as the event journal explains it (on demand, for `knit trace`).
struct Explained(Option<knit_crds::contract::EgressFilter>);

impl knit_dispatcher::observe::Explain for Explained {
    fn explain(&self, event: &knit_channels::Event) -> knit_dispatcher::observe::Verdict {
        let v = crate::explain::explain(self.0.as_ref(), event);
        knit_dispatcher::observe::Verdict {
            matched: v.matched,
            clause: v.clause,
            reason: v.reason,
        }
    }
}

/// The kind an ingress's events are journaled under.
pub(crate) fn origin_kind(kind: IngressKind) -> &'static str {
    match kind {
        IngressKind::Broker => "Broker",
        IngressKind::Channel => "Channel",
        IngressKind::Sink => "KafkaSink",
        IngressKind::Source => "KafkaSource",
    }
}

/// The request path's view of `ingress`, its log still being opened.
fn target(ingress: &Ingress, stats: &knit_dispatcher::Stats) -> Target {
    let origin = Arc::new(Origin::new(
        origin_kind(ingress.kind),
        &ingress.namespace,
        &ingress.name,
    ));
    let counters = stats.ingress(&origin);
    Target::new(ingress.kind, origin, counters)
}

/// How the journal shows one egress: its name and, on a Broker, its filter.
fn view_entry(e: &Egress, broker: bool) -> ViewEntry {
    ViewEntry {
        reference: Arc::from(e.reference.as_str()),
        filter: broker.then(|| {
            Arc::new(Explained(e.filter.clone())) as Arc<dyn knit_dispatcher::observe::Explain>
        }),
    }
}

/// One egress task with what the ingress derived from its Contract entry once.
struct Running {
    slot: EgressSlot,
    view: ViewEntry,
}

/// The egress tasks of one ingress, by UID, and those winding down.
#[derive(Default)]
struct Egresses {
    running: HashMap<String, Running>,
    leaving: Vec<JoinHandle<()>>,
}

/// What a [`sync`] changed that the journal's view and the filter index show.
#[derive(Default)]
struct Changed {
    /// An egress came or went, or changed its name: the view is rebuilt.
    members: bool,
    /// An egress came or went, or changed its filter: the index is rebuilt.
    filters: bool,
}

/// A running ingress task.
pub(crate) struct IngressSlot {
    pub(crate) ingress: Arc<Ingress>,
    pub(crate) target: Arc<Target>,
    tx: watch::Sender<Option<Arc<Ingress>>>,
    pub(crate) handle: JoinHandle<()>,
    /// Closed when the task has ended (its topics, if it owned any, are deleted).
    pub(crate) ended: watch::Receiver<()>,
}

/// Wait until a task whose `ended` this is has finished.
pub(crate) async fn ended(mut rx: watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}

impl IngressSlot {
    /// Apply a changed Contract entry.
    pub(crate) fn update(&mut self, ingress: Arc<Ingress>) {
        self.target
            .set_auth(ingress.auth.as_ref(), &ingress.namespace);
        self.ingress = ingress.clone();
        self.tx.send_replace(Some(ingress));
    }

    /// Retire the ingress (see the module doc).
    pub(crate) fn remove(self) -> JoinHandle<()> {
        self.tx.send_replace(None);
        self.handle
    }
}

/// Start the task of `ingress`, once the tasks in `after` (predecessors at the same address,
/// still retiring) have ended.
pub(crate) fn spawn(
    ingress: Arc<Ingress>,
    ctx: Arc<Ctx>,
    after: Vec<watch::Receiver<()>>,
) -> IngressSlot {
    let target = Arc::new(target(&ingress, &ctx.dispatch.stats));
    target.set_auth(ingress.auth.as_ref(), &ingress.namespace);
    let (tx, rx) = watch::channel(Some(ingress.clone()));
    let (ended_tx, ended_rx) = watch::channel(());
    let handle = tokio::spawn({
        let target = target.clone();
        async move {
            Box::pin(futures::future::join_all(after.into_iter().map(ended))).await;
            run(rx, target, ctx).await;
            drop(ended_tx);
        }
    });
    IngressSlot {
        ingress,
        target,
        tx,
        handle,
        ended: ended_rx,
    }
}

/// The ingress task: open the log, keep the egresses in line with the Contract, retire.
async fn run(mut rx: watch::Receiver<Option<Arc<Ingress>>>, target: Arc<Target>, ctx: Arc<Ctx>) {
    let Some(first) = rx.borrow_and_update().clone() else {
        return;
    };
    let mut shutdown = ctx.shutdown.subscribe();
    // The stages a task goes through once are boxed (here and below): a task's future is as
    // large as its largest state, and 1,000 Brokers keep 1,000 of them waiting in the loop.
    let opening = Box::pin(open_log(&mut rx, first, &target, &ctx, &mut shutdown));
    let Some((log, mut current)) = opening.await else {
        return;
    };
    let annotations = log.annotations();
    let annotations: Vec<(&str, &str)> = annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut egresses = Egresses::default();
    Box::pin(open_first_groups(
        &current,
        &log,
        &mut egresses,
        &ctx,
        &target,
    ))
    .await;
    target.set(Ok(log.clone()));
    let mut reported_uid = current.uid.clone();
    loop {
        if reported_uid != current.uid {
            ctx.report.forget(&reported_uid);
            reported_uid = current.uid.clone();
        }
        ctx.report.ready(&current.uid, &annotations, 0);
        // Stopping is looked at first: the stop also drops this task's sender, which must not
        // read as the ingress's removal (the replica leading the deletions would delete the
        // topics and streams the other replicas still use).
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                // The process is stopping: egresses stop on the same signal; nothing is deleted.
                let Egresses { running, mut leaving } = egresses;
                leaving.extend(running.into_values().map(|r| r.slot.handle));
                Box::pin(futures::future::join_all(leaving)).await;
                return;
            }
            changed = rx.changed() => {
                match (changed, rx.borrow_and_update().clone()) {
                    (Ok(()), Some(i)) => current = i,
                    _ => break,
                }
            }
        }
        let changed = sync(&current, &log, &mut egresses, &ctx, &target);
        show(&current, &log, &egresses, &changed, &target);
    }
    let deletes = ctx.may_delete().await;
    Box::pin(retire(&current, log, egresses, &target, deletes)).await;
    ctx.report.forget(&reported_uid);
    tracing::info!(ingress = %current.path, "ingress retired");
}

/// Open the log `current` names, retrying with backoff while the backend fails (the reason
/// in the object's status, and in the target for the requests meanwhile), following changes
/// of the Contract entry. `None`: the ingress was removed, or the process stops, first.
async fn open_log(
    rx: &mut watch::Receiver<Option<Arc<Ingress>>>,
    mut current: Arc<Ingress>,
    target: &Target,
    ctx: &Ctx,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(Arc<dyn Log>, Arc<Ingress>)> {
    let mut wait = Duration::from_millis(200);
    loop {
        let e = match backends::open(&current, &ctx.backends).await {
            Ok(o) => return Some((o, current)),
            Err(e) => e,
        };
        tracing::warn!(ingress = %current.path, error = %e, "cannot open the log; retrying");
        let why = NoLog::Failed {
            log: describe(&current),
            source: Arc::new(e),
        };
        ctx.report
            .not_ready(&current.uid, "TopicNotReady", why.to_string());
        target.set(Err(why));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = rx.changed() => {
                if changed.is_err() || rx.borrow().is_none() {
                    ctx.report.forget(&current.uid);
                    return None;
                }
            }
            _ = shutdown.changed() => return None,
        }
        if let Some(i) = rx.borrow_and_update().clone() {
            current = i;
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// Start the egresses the ingress starts with and wait (bounded) for their groups before it
/// takes any event, so a Broker recreated under a steady stream loses nothing to the gap; a
/// group that cannot be opened does not keep the ingress shut. The filter index is installed
/// once they are open: a memory log re-indexes its groups on every open, against the index it
/// has.
async fn open_first_groups(
    ingress: &Ingress,
    log: &Arc<dyn Log>,
    egresses: &mut Egresses,
    ctx: &Arc<Ctx>,
    target: &Target,
) {
    let changed = sync(ingress, log, egresses, ctx, target);
    let first_groups = egresses.running.values().map(|r| r.slot.opened.clone());
    let all_open = futures::future::join_all(first_groups.map(|mut o| async move {
        let _ = o.wait_for(|v| *v).await;
    }));
    if tokio::time::timeout(FIRST_GROUPS_WAIT, all_open)
        .await
        .is_err()
    {
        tracing::warn!(ingress = %ingress.path, "some consumer groups are not open yet; accepting events anyway");
    }
    show(ingress, log, egresses, &changed, target);
}

/// Retire: no more appends; every egress delivers what was accepted, then ends; then the
/// topics the ingress owns are deleted (when `deletes`: by the replica leading deletions). The slots stay alive meanwhile: an egress whose slot
/// goes away takes it as its own removal. A KafkaSource accepted nothing: its consumer just
/// stops (its topics are someone else's).
async fn retire(
    current: &Ingress,
    log: Arc<dyn Log>,
    egresses: Egresses,
    target: &Target,
    deletes: bool,
) {
    target.set(Err(NoLog::Deleted));
    let Egresses {
        running,
        mut leaving,
    } = egresses;
    if current.kind == IngressKind::Source {
        leaving.extend(running.into_values().map(|r| r.slot.remove()));
        futures::future::join_all(leaving).await;
    } else {
        log.close();
        let mut slots: Vec<EgressSlot> = running.into_values().map(|r| r.slot).collect();
        let handles = slots.iter_mut().map(|s| &mut s.handle);
        futures::future::join_all(handles.chain(leaving.iter_mut())).await;
        drop(slots);
    }
    if !deletes {
        tracing::info!(log = %describe(current), "its topics are left to the replica leading the deletions");
    } else if let Err(e) = log.destroy().await {
        tracing::warn!(log = %describe(current), error = %e, "cannot delete the topics of a deleted broker or channel");
    }
}

fn describe(i: &Ingress) -> String {
    knit_channels::backends::describe(&i.backend)
}

/// Bring the egress tasks in line with `ingress`, touching only the egresses that came, went
/// or changed.
fn sync(
    ingress: &Ingress,
    log: &Arc<dyn Log>,
    egresses: &mut Egresses,
    ctx: &Arc<Ctx>,
    target: &Target,
) -> Changed {
    let mut changed = Changed::default();
    egresses.leaving.retain(|h| !h.is_finished());
    if egresses.running.len() != ingress.egresses.len()
        || ingress
            .egresses
            .iter()
            .any(|e| !egresses.running.contains_key(&e.uid))
    {
        let wanted: std::collections::HashSet<&str> =
            ingress.egresses.iter().map(|e| e.uid.as_str()).collect();
        let gone: Vec<String> = egresses
            .running
            .keys()
            .filter(|uid| !wanted.contains(uid.as_str()))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(r) = egresses.running.remove(&uid) {
                egresses.leaving.push(r.slot.remove());
                changed.members = true;
                changed.filters = true;
            }
        }
    }
    let broker = ingress.kind == IngressKind::Broker;
    for e in &ingress.egresses {
        match egresses.running.get_mut(&e.uid) {
            Some(r) if r.slot.config.egress == *e => {}
            Some(r) => {
                let old = &r.slot.config.egress;
                let filter = if old.filter == e.filter {
                    r.slot.config.filter.clone()
                } else {
                    changed.filters = true;
                    compiled(ingress, e)
                };
                if old.reference != e.reference || old.filter != e.filter {
                    changed.members = true;
                    r.view = view_entry(e, broker);
                }
                r.slot.update(Arc::new(EgressConfig {
                    egress: e.clone(),
                    filter,
                    owns_group: ingress.kind != IngressKind::Source,
                    origin: target.origin.clone(),
                }));
            }
            None => {
                let cfg = Arc::new(EgressConfig {
                    egress: e.clone(),
                    filter: compiled(ingress, e),
                    owns_group: ingress.kind != IngressKind::Source,
                    origin: target.origin.clone(),
                });
                let slot = egresses::spawn(log.clone(), cfg, ctx.clone());
                let view = view_entry(e, broker);
                egresses
                    .running
                    .insert(e.uid.clone(), Running { slot, view });
                changed.members = true;
                changed.filters = true;
            }
        }
    }
    changed
}

/// Show what `changed` touched: the journal's view of the egresses (in Contract order) and, on
/// a Broker, the log's filter index.
fn show(
    ingress: &Ingress,
    log: &Arc<dyn Log>,
    egresses: &Egresses,
    changed: &Changed,
    target: &Target,
) {
    if changed.members {
        let entries = ingress
            .egresses
            .iter()
            .filter_map(|e| egresses.running.get(&e.uid))
            .map(|r| r.view.clone())
            .collect();
        target.set_view(Arc::new(IngressView { egresses: entries }));
    }
    if changed.filters && ingress.kind == IngressKind::Broker {
        let durable = log.durable();
        let groups = egresses
            .running
            .values()
            .filter_map(|r| {
                let f = r.slot.config.filter.clone()?;
                Some((egresses::group_name(&r.slot.config.egress, durable), f))
            })
            .collect();
        log.select(Some(Arc::new(TriggerRouter::new(groups))));
    }
}

fn compiled(ingress: &Ingress, e: &knit_crds::contract::Egress) -> Option<Arc<filter::Filter>> {
    (ingress.kind == IngressKind::Broker).then(|| Arc::new(filter::compile(e.filter.as_ref())))
}
