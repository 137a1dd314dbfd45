//! The consumer loop of one egress (a Trigger or a Subscription), the same for every backend:
//! read records from the egress's own consumer group, filter, schedule them under the egress's
//! ordering and in-flight limit, deliver, mark each one done once its fate is decided, and
//! commit the finished prefix often (every 50 ms or 50 records on durable logs, so a crash
//! replays little).
//!
//! Backpressure: when the records read but not finished reach twice the in-flight limit, the
//! consumer is paused (a Kafka consumer keeps polling, so it stays in its group) and resumed
//! once they are back at the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use knit_channels::{Consumer, GroupStats, Polled};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::deliver::{deliver, now_ms};
use crate::egress::EgressRuntime;
use crate::lanes::{Scheduler, Taken};
use crate::observe::{Counters, Fate, Stats};
use crate::sender::{Deadline, Sender};

/// How long finished records may wait for a commit.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(50);
/// Finished records that trigger a commit before the interval is up.
pub const COMMIT_EVERY: usize = 50;
/// Most records asked of the consumer at once.
const POLL_BATCH: usize = 256;

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
    /// The loop waits for progress (paused, or ending): workers wake it after each record.
    watching: AtomicBool,
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

/// A running egress.
pub struct EgressTask {
    runtime: watch::Sender<Arc<EgressRuntime>>,
    stop: watch::Sender<bool>,
    consumer: Arc<dyn Consumer>,
    handle: JoinHandle<()>,
    ended: bool,
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
        let (stop_tx, stop_rx) = watch::channel(false);
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
            durable,
        });
        let handle = tokio::spawn(run(ctx, stop_rx));
        Self {
            runtime: runtime_tx,
            stop: stop_tx,
            consumer,
            handle,
            ended: false,
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
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            handle.abort();
            // Commit what did finish, then leave: the rest is replayed.
            let _ = self.consumer.commit().await;
            self.consumer.close().await;
        }
    }
}

async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut runtime = ctx.runtime.clone();
    let mut paused = false;
    let mut commit_due: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut drained = false;
    loop {
        let (backlog, limit) = {
            let s = ctx.sched.lock();
            (s.backlog(), s.max_in_flight())
        };
        let high = limit.saturating_mul(2).max(2);
        if !paused && backlog >= high {
            ctx.consumer.pause();
            paused = true;
        } else if paused && backlog <= limit {
            ctx.consumer.resume();
            paused = false;
        }
        ctx.watching.store(paused, Ordering::Relaxed);
        if ctx.durable && commit_due.is_none() && ctx.uncommitted.load(Ordering::Relaxed) > 0 {
            commit_due = Some(Box::pin(tokio::time::sleep(COMMIT_INTERVAL)));
        }
        let room = high.saturating_sub(backlog).clamp(1, POLL_BATCH);
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            changed = runtime.changed() => {
                if changed.is_ok() {
                    let rt = runtime.borrow_and_update().clone();
                    ctx.sched.lock().configure(rt.config.ordering, rt.config.max_in_flight);
                }
            }
            () = async { if let Some(d) = commit_due.as_mut() { d.await } }, if commit_due.is_some() => {
                commit_due = None;
                ctx.commit().await;
            }
            () = ctx.progress.notified() => {
                if ctx.uncommitted.load(Ordering::Relaxed) >= COMMIT_EVERY {
                    commit_due = None;
                    ctx.commit().await;
                }
            }
            polled = ctx.consumer.poll(room) => match polled {
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
        }
    }
    ctx.stopping.store(!drained, Ordering::Relaxed);
    ctx.watching.store(true, Ordering::Relaxed);
    // Wait for the deliveries in flight (a drain also waits for what is still queued).
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
            ctx.shared.stats.record(
                &ctx.counters,
                &rt.config.reference,
                &r.event.id,
                &Fate::Filtered,
            );
            ctx.consumer.done(r.id);
            ctx.finished();
        }
    }
    while let Some(t) = sched.start() {
        tokio::spawn(worker(ctx.clone(), t));
    }
}

async fn worker(ctx: Arc<Ctx>, mut taken: Taken) {
    let mut deadline = Deadline::new();
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
        let fate = deliver(
            &ctx.shared.sender,
            &rt,
            &taken.record,
            ctx.consumer.as_ref(),
            &mut deadline,
        )
        .await;
        ctx.shared.stats.record(
            &ctx.counters,
            &rt.config.reference,
            &taken.record.event.id,
            &fate,
        );
        ctx.consumer.done(taken.record.id);
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
}
