//! One task per egress (a Trigger, a Subscription, a KafkaSource): opens the egress's own
//! consumer group on its ingress's log (retrying while the backend is unreachable), runs the
//! dispatcher's consumer loop on it, applies configuration changes in place, reports whether it
//! runs, and on removal either drains (memory: what was accepted is still delivered) or stops,
//! commits and deletes its group (durable logs, as Knative deletes a deleted Trigger's group).

use std::sync::Arc;
use std::time::Duration;

use knit_channels::{Consumer, GroupSpec, Log, LogError};
use knit_crds::contract::{self, Egress, Ordering};
use knit_dispatcher::{EgressRuntime, EgressTask, EventFilter};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Ctx;
use super::gauges::Gauges;
use crate::filter::Filter;

/// How long deliveries in flight may run on when an egress stops.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// An egress's configuration with its compiled filter.
pub(crate) struct EgressConfig {
    pub(crate) egress: Arc<Egress>,
    pub(crate) filter: Option<Arc<Filter>>,
    /// Knit named the group (a Trigger's, a Subscription's) and deletes it with the egress;
    /// a KafkaSource's `consumerGroup` is the user's and is kept.
    pub(crate) owns_group: bool,
    /// The Broker or channel it reads from.
    pub(crate) origin: Arc<knit_dispatcher::observe::Origin>,
}

/// A running egress task.
pub(crate) struct EgressSlot {
    pub(crate) config: Arc<EgressConfig>,
    tx: watch::Sender<Option<Arc<EgressConfig>>>,
    pub(crate) handle: JoinHandle<()>,
    /// Becomes true once the consumer group is open and positioned.
    pub(crate) opened: watch::Receiver<bool>,
}

impl EgressSlot {
    /// Replace the configuration.
    pub(crate) fn update(&mut self, config: Arc<EgressConfig>) {
        self.config = config.clone();
        self.tx.send_replace(Some(config));
    }

    /// Remove the egress; its task winds down (see the module doc).
    pub(crate) fn remove(self) -> JoinHandle<()> {
        self.tx.send_replace(None);
        self.handle
    }
}

/// The group name on `log`: Knative's name on durable logs (it outlives the process); the
/// egress UID on memory logs, so a recreated Trigger never meets its predecessor's group.
pub(crate) fn group_name(egress: &Egress, durable: bool) -> String {
    if durable {
        egress.group.clone()
    } else {
        egress.uid.clone()
    }
}

fn spec(egress: &Egress, durable: bool) -> GroupSpec {
    GroupSpec {
        name: group_name(egress, durable),
        start: match egress.start {
            contract::StartAt::Latest => knit_channels::StartAt::Latest,
            contract::StartAt::Earliest => knit_channels::StartAt::Earliest,
        },
        overflow: match egress.overflow {
            contract::Overflow::Shed => knit_channels::Overflow::Shed,
            contract::Overflow::Block => knit_channels::Overflow::Block,
        },
        // Ordered egresses retry in place (a retry stream would reorder).
        durable_retries: durable && egress.ordering == Ordering::Unordered,
        max_in_flight: egress.max_in_flight,
        order: match egress.ordering {
            Ordering::Unordered => knit_channels::Order::Unordered,
            Ordering::Ordered => knit_channels::Order::Ordered,
            Ordering::OrderedByKey => knit_channels::Order::OrderedByKey,
        },
        ack_deadline: knit_dispatcher::deliver::attempt_deadline(&egress.delivery),
    }
}

fn runtime(
    cfg: &EgressConfig,
    previous: Option<&EgressRuntime>,
    durable: bool,
) -> Arc<EgressRuntime> {
    let filter = cfg.filter.clone().map(|f| f as Arc<dyn EventFilter>);
    Arc::new(
        EgressRuntime::new(cfg.egress.clone(), filter, previous, durable)
            .with_origin(cfg.origin.clone()),
    )
}

/// Start the task of one egress on `log`.
pub(crate) fn spawn(log: Arc<dyn Log>, config: Arc<EgressConfig>, ctx: Arc<Ctx>) -> EgressSlot {
    let (tx, rx) = watch::channel(Some(config.clone()));
    let (opened_tx, opened) = watch::channel(false);
    let handle = tokio::spawn(run(log, rx, opened_tx, ctx));
    EgressSlot {
        config,
        tx,
        handle,
        opened,
    }
}

/// Wait for the next change of `rx`; false when the egress was removed.
async fn still_wanted(rx: &mut watch::Receiver<Option<Arc<EgressConfig>>>) -> bool {
    rx.changed().await.is_ok() && rx.borrow().is_some()
}

/// The egress task: open the group, run the dispatcher's consumer loop on it, follow
/// configuration changes, report, and wind down on removal (see the module doc).
async fn run(
    log: Arc<dyn Log>,
    mut rx: watch::Receiver<Option<Arc<EgressConfig>>>,
    opened: watch::Sender<bool>,
    ctx: Arc<Ctx>,
) {
    let Some(first) = rx.borrow_and_update().clone() else {
        return;
    };
    let uid = first.egress.uid.clone();
    let reference = first.egress.reference.clone();
    let durable = log.durable();
    let mut shutdown = ctx.shutdown.subscribe();
    // Stages gone through once are boxed: a task's future is as large as its largest state.
    let names = (uid.as_str(), reference.as_str());
    let opening = Box::pin(open_group(&log, &mut rx, first, &ctx, &mut shutdown, names));
    let Some((consumer, mut current)) = opening.await else {
        return;
    };
    let group = group_name(&current.egress, durable);
    let named = if durable {
        log.group_annotations(&group)
    } else {
        Vec::new()
    };
    let annotations: Vec<(&str, &str)> = named
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ctx.report.ready(&uid, &annotations, 0);
    opened.send_replace(true);
    let mut task = EgressTask::spawn(
        consumer,
        runtime(&current, None, durable),
        ctx.dispatch.clone(),
        durable,
    );
    let watched = Gauges::watch(&ctx, &uid, &reference, task.probe(), &annotations);
    loop {
        // Stopping is looked at first: a stopping ingress drops this task's sender too, which
        // must not read as the egress's removal (the replica leading the deletions would
        // delete the group the other replicas consume in).
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                ctx.gauges.unwatch(&watched);
                Box::pin(task.shutdown(STOP_GRACE)).await;
                return;
            }
            changed = rx.changed() => {
                let next = if changed.is_ok() { rx.borrow_and_update().clone() } else { None };
                let Some(cfg) = next else {
                    // The gauges' probe holds the consumer: let go of it before the group is
                    // left and deleted.
                    ctx.gauges.unwatch(&watched);
                    let owns = current.owns_group && ctx.may_delete().await;
                    Box::pin(removed(task, &log, &group, owns, &reference, &mut shutdown)).await;
                    break;
                };
                if !durable && cfg.egress.overflow != current.egress.overflow {
                    // Memory groups take the new policy on re-open (the overflow policy means
                    // nothing to Kafka, whose re-open would be a second consumer in the group).
                    let _ = log.open(spec(&cfg.egress, durable)).await;
                }
                task.update(runtime(&cfg, Some(&task.runtime()), durable));
                current = cfg;
            }
            () = task.finished() => {
                // The log was closed (its ingress is gone) and this group delivered all of it.
                // Deleting the group is led, as deleting the topic is: a follower whose
                // manifests dropped the Broker leaves it to the leader.
                ctx.gauges.unwatch(&watched);
                if durable && current.owns_group && ctx.may_delete().await {
                    Box::pin(delete_group(&log, &group, &reference)).await;
                }
                break;
            }
        }
    }
    ctx.report.forget(&uid);
}

/// Open the egress's consumer group, retrying with backoff while the backend fails (the
/// reason in the object's status), following configuration changes. `None`: the log was
/// closed, the egress removed, or the process stops, first.
async fn open_group(
    log: &Arc<dyn Log>,
    rx: &mut watch::Receiver<Option<Arc<EgressConfig>>>,
    mut current: Arc<EgressConfig>,
    ctx: &Ctx,
    shutdown: &mut watch::Receiver<bool>,
    (uid, reference): (&str, &str),
) -> Option<(Arc<dyn Consumer>, Arc<EgressConfig>)> {
    let durable = log.durable();
    let mut wait = Duration::from_millis(200);
    loop {
        let e = match log.open(spec(&current.egress, durable)).await {
            Ok(c) => return Some((c, current)),
            Err(LogError::Closed) => return None,
            Err(e) => e,
        };
        tracing::warn!(egress = %reference, error = %e, "cannot open the consumer group; retrying");
        ctx.report.not_ready(
            uid,
            "ConsumerGroupNotReady",
            format!("consumer group {}: {e}", current.egress.group),
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            wanted = still_wanted(rx) => {
                if !wanted {
                    ctx.report.forget(uid);
                    return None;
                }
            }
            _ = shutdown.changed() => return None,
        }
        if let Some(c) = rx.borrow_and_update().clone() {
            current = c;
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// The egress was removed. Durable logs: stop, commit, and delete the group if Knit
/// `owns` it. Memory logs: no more appends reach the group; what it holds is still delivered
/// (unless the process stops first).
async fn removed(
    task: EgressTask,
    log: &Arc<dyn Log>,
    group: &str,
    owns: bool,
    reference: &str,
    shutdown: &mut watch::Receiver<bool>,
) {
    if log.durable() {
        task.shutdown(STOP_GRACE).await;
        if owns {
            delete_group(log, group, reference).await;
        }
    } else {
        let mut task = task;
        let _ = log.delete_group(group).await;
        tokio::select! {
            () = task.finished() => {}
            _ = shutdown.changed() => task.shutdown(STOP_GRACE).await,
        }
    }
}

async fn delete_group(log: &Arc<dyn Log>, group: &str, reference: &str) {
    if let Err(e) = log.delete_group(group).await {
        tracing::warn!(egress = %reference, group, error = %e, "cannot delete the consumer group");
    }
}
