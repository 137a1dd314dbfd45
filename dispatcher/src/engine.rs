//! The consumer loop of one egress (a Trigger or a Subscription), the same for every backend:
//! read records from the egress's own consumer group, filter, schedule them under the egress's
//! ordering and in-flight limit, deliver, settle each one once its fate is decided, and
//! commit the settled prefix often (every 50 ms or 50 records on durable logs, so a crash
//! replays little).
//!
//! Backpressure: when the records read but not finished reach twice the in-flight limit, the
//! loop stops asking its consumer for more (a memory group's queue, or librdkafka's bounded
//! prefetch, holds the rest). Pausing a Kafka consumer is not used for this: librdkafka drops
//! what it prefetched and takes hundreds of milliseconds to fetch again (measured: delivery fell
//! to about 1,000 events/s). Only when nothing has finished for a minute is the consumer paused
//! and polled, to keep its group session, then resumed once deliveries move.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use knit_channels::{Consumer, GroupStats, Polled, Settle};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::deliver::{Obs, deliver_observed, now_ms};
use crate::egress::EgressRuntime;
use crate::lanes::{Scheduler, Taken};
use crate::observe::{Counters, Fate, Hop, Stats};
use crate::sender::{Sender, Session};

/// How long finished records may wait for a commit.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(50);
/// Finished records that trigger a commit before the interval is up.
pub const COMMIT_EVERY: usize = 50;
/// Most records asked of the consumer at once.
const POLL_BATCH: usize = 256;
/// How long the loop may go without polling its consumer (while its deliveries are all busy)
/// before it pauses the consumer and polls it anyway, to keep a Kafka group session alive
/// (librdkafka leaves the group after `max.poll.interval.ms`, 5 minutes, without a poll).
const KEEPALIVE: Duration = Duration::from_secs(60);

/// What every egress shares: the HTTP clients and the fate counters.
#[derive(Clone)]
pub struct Shared {
    /// HTTP clients.
    pub sender: Sender,
    /// Fates.
    pub stats: Arc<Stats>,
}

struct Ctx {
    consumer: Arc<dyn Consumer>,
    runtime: watch::Receiver<Arc<EgressRuntime>>,
    sched: Mutex<Scheduler>,
    shared: Shared,
    counters: Arc<Counters>,
    /// A worker finished a record.
    progress: Notify,
    /// Finished records not yet committed.
    uncommitted: AtomicUsize,
    stopping: AtomicBool,
    /// The loop waits for progress (its backlog is full, or it is ending): workers wake it
    /// after each record.
    watching: AtomicBool,
    /// Sessions (timers and keep-alive connections) of retired workers, for the next ones:
    /// workers come and go with bursts, their connections should not.
    sessions: Mutex<Vec<Session>>,
    durable: bool,
}

impl Ctx {
    fn finished(&self) {
        let n = self.uncommitted.fetch_add(1, Ordering::Relaxed) + 1;
        if self.durable && (n == 1 || n >= COMMIT_EVERY) {
            self.progress.notify_one();
        }
    }

    async fn commit(&self) {
        if self.uncommitted.swap(0, Ordering::Relaxed) == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit().await {
            let reference = self.runtime.borrow().config.reference.clone();
            tracing::warn!(egress = %reference, error = %e, "commit failed; the records are committed with the next one");
        }
    }
}

/// Reads a running egress's gauges (deliveries in flight, its group's counters), for whoever
/// reports them, without holding the [`EgressTask`].
#[derive(Clone)]
pub struct EgressProbe {
    ctx: Arc<Ctx>,
}

impl EgressProbe {
    /// Deliveries in flight now.
    pub fn in_flight(&self) -> usize {
        self.ctx.sched.lock().workers()
    }

    /// The consumer group's counters.
    pub fn group_stats(&self) -> GroupStats {
        self.ctx.consumer.stats()
    }
}

/// A running egress. Dropping its runtime's sender (the task, or [`EgressTask::shutdown`])
/// stops the loop.
pub struct EgressTask {
    runtime: watch::Sender<Arc<EgressRuntime>>,
    consumer: Arc<dyn Consumer>,
    handle: JoinHandle<()>,
    ended: bool,
    ctx: Arc<Ctx>,
}

impl EgressTask {
    /// Start delivering what `consumer` reads, under `runtime` (later replaced by
    /// [`EgressTask::update`]). `durable`: the log keeps positions, so commits matter.
    pub fn spawn(
        consumer: Arc<dyn Consumer>,
        runtime: Arc<EgressRuntime>,
        shared: Shared,
        durable: bool,
    ) -> Self {
        let counters = shared.stats.egress(&runtime.config.reference);
        let sched = Scheduler::new(runtime.config.ordering, runtime.config.max_in_flight);
        let (runtime_tx, runtime_rx) = watch::channel(runtime);
        let ctx = Arc::new(Ctx {
            consumer: consumer.clone(),
            runtime: runtime_rx,
            sched: Mutex::new(sched),
            shared,
            counters,
            progress: Notify::new(),
            uncommitted: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            sessions: Mutex::new(Vec::new()),
            durable,
        });
        let handle = tokio::spawn(run(ctx.clone()));
        Self {
            runtime: runtime_tx,
            consumer,
            handle,
            ended: false,
            ctx,
        }
    }

    /// Deliveries in flight now.
    pub fn in_flight(&self) -> usize {
        self.probe().in_flight()
    }

    /// A handle that reads the egress's gauges without holding the task.
    pub fn probe(&self) -> EgressProbe {
        EgressProbe {
            ctx: self.ctx.clone(),
        }
    }

    /// Deliver with `runtime` from now on (deliveries in flight finish under the old one).
    pub fn update(&self, runtime: Arc<EgressRuntime>) {
        self.runtime.send_replace(runtime);
    }

    /// The configuration in force.
    pub fn runtime(&self) -> Arc<EgressRuntime> {
        self.runtime.borrow().clone()
    }

    /// The consumer group's counters.
    pub fn group_stats(&self) -> GroupStats {
        self.consumer.stats()
    }

    /// Resolves when the loop ended by itself (its log was closed, or its group deleted, and
    /// everything it held was delivered); never again after that.
    pub async fn finished(&mut self) {
        if self.ended {
            return std::future::pending().await;
        }
        let _ = (&mut self.handle).await;
        self.ended = true;
    }

    /// Stop reading; let deliveries in flight finish for up to `grace`; commit; leave the group.
    /// Records read but not finished are read again by the group's next consumer.
    pub async fn shutdown(self, grace: Duration) {
        if self.ended {
            return;
        }
        drop(self.runtime);
        let mut handle = self.handle;
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            handle.abort();
            // Commit what did finish, then leave: the rest is replayed.
            let _ = self.consumer.commit().await;
            self.consumer.close().await;
        }
    }
}

async fn run(ctx: Arc<Ctx>) {
    let mut runtime = ctx.runtime.clone();
    let mut pressure = Pressure::default();
    let mut commit_due: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut drained = false;
    loop {
        // The hot path checks its signals without futures: the consumer is polled first, and
        // the other branches only register their wakers when it has nothing to give.
        match runtime.has_changed() {
            // The sender is gone: the owner shut the egress down, or is gone itself.
            Err(_) => break,
            Ok(true) => {
                let rt = runtime.borrow_and_update().clone();
                ctx.sched
                    .lock()
                    .configure(rt.config.ordering, rt.config.max_in_flight);
            }
            Ok(false) => {}
        }
        let Backlog {
            backlog,
            high,
            full,
            stalled_at,
        } = pressure.assess(&ctx);
        let paused = pressure.paused;
        if commit_now(&ctx, &mut commit_due) {
            ctx.commit().await;
        }
        let room = high.saturating_sub(backlog).clamp(1, POLL_BATCH);
        tokio::select! {
            biased;
            polled = ctx.consumer.poll(room), if !full || paused => match polled {
                None => {
                    drained = true;
                    break;
                }
                Some(Polled::Revoked(parts)) => {
                    let dropped = ctx.sched.lock().revoke(&parts);
                    tracing::info!(egress = %ctx.runtime.borrow().config.reference, ?parts, dropped, "partitions revoked");
                }
                Some(Polled::Records(records)) => schedule(&ctx, records),
            },
            // A closed channel: shut down, or the task's owner is gone.
            r = runtime.changed() => if r.is_err() { break },
            () = async { if let Some(d) = commit_due.as_mut() { d.await } }, if commit_due.is_some() => {
                commit_due = None;
                ctx.commit().await;
            }
            () = ctx.progress.notified(), if full || ctx.durable => {}
            // (An async block: select! evaluates every branch's expression, a timer is not free.)
            () = async { if let Some(at) = stalled_at { tokio::time::sleep_until(at).await } }, if full && !paused => {}
        }
    }
    wind_down(&ctx, drained).await;
}

/// The backlog as the loop sees it before it polls.
struct Backlog {
    /// Records read and not finished.
    backlog: usize,
    /// The backlog at which the loop stops polling: twice the in-flight limit.
    high: usize,
    /// The backlog reached `high`.
    full: bool,
    /// When a full backlog counts as a stall (see [`KEEPALIVE`]).
    stalled_at: Option<Instant>,
}

/// Backpressure: whether the consumer is paused to keep its session through a stall, and
/// since when the backlog has been full.
#[derive(Default)]
struct Pressure {
    paused: bool,
    /// Since when the backlog has been full without a poll (clock read only on that edge).
    full_since: Option<Instant>,
}

impl Pressure {
    /// Read the backlog, asking finishing workers to wake the loop while it is full; pause the
    /// consumer after a long stall, resume it once deliveries move.
    #[inline]
    fn assess(&mut self, ctx: &Ctx) -> Backlog {
        // Ask to be woken by finishing workers *before* reading the backlog: a worker that
        // finishes after the read then wakes us, one that finished before shows in it.
        ctx.watching.store(true, Ordering::SeqCst);
        let (backlog, limit) = {
            let s = ctx.sched.lock();
            (s.backlog(), s.max_in_flight())
        };
        let high = limit.saturating_mul(2).max(2);
        let full = backlog >= high;
        if !full {
            ctx.watching.store(false, Ordering::Relaxed);
        }
        let stalled_at = if full {
            Some(*self.full_since.get_or_insert_with(Instant::now) + KEEPALIVE)
        } else {
            self.full_since = None;
            None
        };
        if let Some(at) = stalled_at
            && !self.paused
            && Instant::now() >= at
        {
            // A long stall: pause the consumer and poll it, which keeps its group session.
            ctx.consumer.pause();
            self.paused = true;
        } else if self.paused && backlog <= limit {
            ctx.consumer.resume();
            self.paused = false;
            self.full_since = None;
        }
        Backlog {
            backlog,
            high,
            full,
            stalled_at,
        }
    }
}

/// On durable logs: whether enough records finished to commit now; otherwise the commit
/// timer is armed once any did.
#[inline]
fn commit_now(ctx: &Ctx, commit_due: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) -> bool {
    if !ctx.durable {
        return false;
    }
    let uncommitted = ctx.uncommitted.load(Ordering::Relaxed);
    if uncommitted >= COMMIT_EVERY {
        *commit_due = None;
        return true;
    }
    if commit_due.is_none() && uncommitted > 0 {
        *commit_due = Some(Box::pin(tokio::time::sleep(COMMIT_INTERVAL)));
    }
    false
}

/// After the loop: wait for the deliveries in flight (a drain also waits for what is still
/// queued), commit and leave the group.
async fn wind_down(ctx: &Ctx, drained: bool) {
    ctx.stopping.store(!drained, Ordering::Relaxed);
    ctx.watching.store(true, Ordering::Relaxed);
    loop {
        let notified = ctx.progress.notified();
        if ctx.sched.lock().backlog() == 0 || (!drained && ctx.sched.lock().workers() == 0) {
            break;
        }
        notified.await;
    }
    ctx.commit().await;
    ctx.consumer.close().await;
}

fn schedule(ctx: &Arc<Ctx>, records: Vec<knit_channels::Record>) {
    let rt = ctx.runtime.borrow().clone();
    let mut sched = ctx.sched.lock();
    for r in records {
        if rt.takes(&r.event) {
            sched.push(r);
        } else {
            let hop = Hop {
                origin: rt.origin.as_ref(),
                egress: &rt.reference,
                event: &r.event,
            };
            ctx.shared.stats.fate(&ctx.counters, &hop, &Fate::Filtered);
            // Always settled at once (see `knit_channels::log`): nothing to wait for.
            let _ = ctx.consumer.settle(&r, Settle::Ack);
            ctx.finished();
        }
    }
    while let Some(t) = sched.start() {
        tokio::spawn(worker(ctx.clone(), t));
    }
}

async fn worker(ctx: Arc<Ctx>, mut taken: Taken) {
    let mut session = ctx.sessions.lock().pop().unwrap_or_default();
    loop {
        let rt = ctx.runtime.borrow().clone();
        if let Some(r) = &taken.record.retry {
            let wait = r.not_before_ms.saturating_sub(now_ms());
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
            }
        }
        if let Some(rate) = &rt.rate {
            rate.acquire().await;
        }
        let obs = Obs {
            stats: &ctx.shared.stats,
            counters: &ctx.counters,
        };
        let fate = deliver_observed(
            &ctx.shared.sender,
            &rt,
            &taken.record,
            ctx.consumer.as_ref(),
            &mut session,
            Some(obs),
        )
        .await;
        let hop = Hop {
            origin: rt.origin.as_ref(),
            egress: &rt.reference,
            event: &taken.record.event,
        };
        ctx.shared.stats.fate(&ctx.counters, &hop, &fate);
        if let Some(how) = settlement(&fate) {
            // `Ack` and `DeadLettered` settle at once (see `knit_channels::log`).
            let _ = ctx.consumer.settle(&taken.record, how);
        }
        ctx.finished();
        let next = {
            let mut s = ctx.sched.lock();
            if ctx.stopping.load(Ordering::Relaxed) {
                s.retire(taken.lane.take());
                None
            } else {
                s.finish(taken.lane.take())
            }
        };
        if ctx.watching.load(Ordering::Relaxed) {
            ctx.progress.notify_one();
        }
        match next {
            Some(t) => taken = t,
            None => break,
        }
    }
    ctx.sessions.lock().push(session);
}

/// How a record whose delivery ended with `fate` is settled; `None` when the log took it back
/// already ([`Fate::Deferred`]).
#[inline]
fn settlement(fate: &Fate) -> Option<Settle> {
    match fate {
        Fate::Delivered { .. } | Fate::Filtered => Some(Settle::Ack),
        Fate::DeadLettered { .. } | Fate::Dropped { .. } => Some(Settle::DeadLettered),
        Fate::Deferred { .. } => None,
    }
}
