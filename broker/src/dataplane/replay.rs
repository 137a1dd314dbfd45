//! Replaying a Broker's events to one Trigger: a one-off task reading a range of the Broker's
//! log with a reader of its own ([`knit_channels::Log::replay`]: on Kafka, partitions assigned
//! by hand, nothing committed, so the Trigger's consumer group never moves), passing each event
//! through that Trigger's filter, marking it with the [`REPLAY_EXTENSION`] extension (the run's
//! id), and delivering it as the Trigger delivers: the same [`knit_dispatcher::deliver`] with
//! its subscriber, reply, delivery policy and dead-letter sink, with fates recorded under the
//! Trigger's reference. Retries happen in memory (a replay has no retry stream), at most the
//! Trigger's in-flight limit at once (one at a time for an ordered Trigger, in log order).
//!
//! Memory logs keep nothing to replay: a replay of a Trigger on a memory Broker is refused.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use knit_channels::{
    Bound, ExtValue, LogError, LogSpec, PartitionId, PartitionRange, Record, RecordId, Replay,
    ReplayRecord, Role,
};
use knit_crds::contract::{self, Contract, Egress, Ingress, IngressKind};
use knit_dispatcher::sender::Session;
use knit_dispatcher::{EgressRuntime, EventFilter, Fate, Shared as Dispatch};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Ctx, DataPlane, backends};

/// The CloudEvents extension every replayed event carries: the id of the replay run.
pub const REPLAY_EXTENSION: &str = "knitreplay";
/// Most deliveries in flight in one replay, whatever the Trigger allows.
const MAX_IN_FLIGHT: usize = 64;
/// Runs remembered (finished ones are forgotten oldest first).
const KEEP_RUNS: usize = 32;
/// How long deliveries in flight may finish after the process was asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why a replay was not started.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No running Trigger of that name.
    #[error("no running Trigger {namespace}/{name} (it does not exist, or is not Ready)")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Its Broker keeps its events in memory.
    #[error(
        "replay needs a durable log: Broker {namespace}/{broker} keeps its events in memory (use the Kafka broker class or knit run --kafka)"
    )]
    NotDurable {
        /// The Broker's namespace.
        namespace: String,
        /// The Broker's name.
        broker: String,
    },
    /// A replay of the Trigger is running already (its id), or being started.
    #[error("a replay of this Trigger is still running: {0}")]
    Busy(String),
    /// The topic could not be read.
    #[error("cannot read the Broker's topic: {0}")]
    Backend(#[from] LogError),
}

/// Where a replay stands, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayStatus {
    /// The run's id (the value of the `knitreplay` extension).
    pub id: String,
    /// `namespace/name` of the Trigger.
    pub trigger: String,
    /// `namespace/name` of its Broker.
    pub broker: String,
    /// The start as given.
    pub from: String,
    /// The end as given (`latest`: the topic's end when the replay started).
    pub to: String,
    /// The offsets read per partition (`from` inclusive, `to` exclusive).
    pub partitions: Vec<Range>,
    /// Records in the range (an upper bound of `read`).
    pub span: u64,
    /// Records read.
    pub read: u64,
    /// Records the Trigger's filter took.
    pub matched: u64,
    /// Events the subscriber took.
    pub delivered: u64,
    /// Events that were not delivered (dead-lettered or dropped).
    pub failed: u64,
    /// Of the failed, those the dead-letter sink took.
    pub dead_lettered: u64,
    /// The run ended (read its whole range, was cancelled, or failed).
    pub done: bool,
    /// It was cancelled before reading its whole range.
    pub cancelled: bool,
    /// Why it ended early, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A partition's range.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Range {
    /// The partition.
    pub partition: i32,
    /// First offset.
    pub from: i64,
    /// End offset (not read).
    pub to: i64,
}

#[derive(Default)]
struct Counts {
    read: AtomicU64,
    matched: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
}

/// One replay run.
struct Run {
    id: String,
    trigger: String,
    broker: String,
    from: String,
    to: String,
    partitions: Vec<Range>,
    span: u64,
    counts: Counts,
    done: AtomicBool,
    cancelled: AtomicBool,
    error: Mutex<Option<String>>,
    stop: watch::Sender<bool>,
}

impl Run {
    fn status(&self) -> ReplayStatus {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReplayStatus {
            id: self.id.clone(),
            trigger: self.trigger.clone(),
            broker: self.broker.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            partitions: self.partitions.clone(),
            span: self.span,
            read: l(&self.counts.read),
            matched: l(&self.counts.matched),
            delivered: l(&self.counts.delivered),
            failed: l(&self.counts.failed),
            dead_lettered: l(&self.counts.dead_lettered),
            done: self.done.load(Ordering::Acquire),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            error: self.error.lock().clone(),
        }
    }
}

/// The replays of one data plane.
#[derive(Default)]
pub(crate) struct Runs {
    runs: Mutex<VecDeque<Arc<Run>>>,
    started: AtomicU64,
    /// Triggers whose replay is being set up (its range resolved), not yet in `runs`.
    starting: Mutex<HashSet<String>>,
}

/// Holds a Trigger's place in [`Runs::starting`] until dropped.
struct Starting<'a> {
    runs: &'a Runs,
    trigger: String,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.runs.starting.lock().remove(&self.trigger);
    }
}

impl Runs {
    /// Hold `trigger`'s place while its replay is set up; refused while one runs or starts.
    fn reserve(&self, trigger: &str) -> Result<Starting<'_>, ReplayError> {
        let runs = self.runs.lock();
        if let Some(r) = runs
            .iter()
            .find(|r| r.trigger == trigger && !r.done.load(Ordering::Acquire))
        {
            return Err(ReplayError::Busy(r.id.clone()));
        }
        if !self.starting.lock().insert(trigger.to_string()) {
            return Err(ReplayError::Busy("it is being started".into()));
        }
        Ok(Starting {
            runs: self,
            trigger: trigger.to_string(),
        })
    }

    /// Keep `run`, forgetting the oldest finished runs beyond [`KEEP_RUNS`].
    fn remember(&self, run: Arc<Run>) {
        let mut runs = self.runs.lock();
        while runs.len() >= KEEP_RUNS {
            match runs.iter().position(|r| r.done.load(Ordering::Acquire)) {
                Some(i) => drop(runs.remove(i)),
                None => break,
            }
        }
        runs.push_back(run);
    }
}

/// The Trigger `reference` in `contract`: its Broker and itself.
fn find_trigger<'a>(
    contract: &'a Contract,
    reference: &str,
    namespace: &str,
    name: &str,
) -> Result<(&'a Ingress, &'a Egress), ReplayError> {
    let found = contract
        .ingresses
        .iter()
        .filter(|i| i.kind == IngressKind::Broker)
        .find_map(|i| Some((i, i.egresses.iter().find(|e| e.reference == reference)?)));
    let Some((ingress, egress)) = found else {
        return Err(ReplayError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    };
    Ok((ingress, egress))
}

impl DataPlane {
    /// Replay the events of Trigger `namespace/name`'s Broker between `from` and `to` (`None`:
    /// the topic's end now) to that Trigger only. `contract` is the one in force. Returns once
    /// the range is known and the run started.
    pub async fn replay(
        &self,
        contract: &Contract,
        namespace: &str,
        name: &str,
        from: &Bound,
        to: Option<&Bound>,
    ) -> Result<ReplayStatus, ReplayError> {
        let reference = format!("Trigger/{namespace}/{name}");
        let (ingress, egress) = find_trigger(contract, &reference, namespace, name)?;
        // The Broker's log, opened only to read it (nothing is created).
        let log = LogSpec {
            role: Role::Reader,
            ..backends::spec(ingress)
        };
        let log = self.ctx.backends.open(&log).await?;
        if !log.durable() {
            return Err(ReplayError::NotDurable {
                namespace: ingress.namespace.clone(),
                broker: ingress.name.clone(),
            });
        }
        let trigger = format!("{namespace}/{name}");
        let _starting = self.replays.reserve(&trigger)?;
        let n = self.replays.started.fetch_add(1, Ordering::Relaxed) + 1;
        let id = run_id(n);
        let reader = log.replay(from, to, &id).await?;
        let filter = crate::filter::compile(egress.filter.as_ref());
        let runtime = Arc::new(EgressRuntime::new(
            Arc::new(egress.clone()),
            Some(Arc::new(filter) as Arc<dyn EventFilter>),
            None,
            false,
        ));
        let (stop, stop_rx) = watch::channel(false);
        let run = Arc::new(Run {
            id: id.clone(),
            trigger,
            broker: format!("{}/{}", ingress.namespace, ingress.name),
            from: from.to_string(),
            to: to.map_or_else(|| "latest".to_string(), Bound::to_string),
            partitions: reader.ranges().iter().map(range).collect(),
            span: reader.span(),
            counts: Counts::default(),
            done: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            error: Mutex::new(None),
            stop,
        });
        self.replays.remember(run.clone());
        tracing::info!(replay = %id, trigger = %reference, from = %run.from, to = %run.to, span = run.span, "replay started");
        tokio::spawn(drive(
            run.clone(),
            reader,
            runtime,
            self.ctx.clone(),
            stop_rx,
        ));
        Ok(run.status())
    }

    /// A replay run, by id.
    pub fn replay_status(&self, id: &str) -> Option<ReplayStatus> {
        let runs = self.replays.runs.lock();
        runs.iter().find(|r| r.id == id).map(|r| r.status())
    }

    /// The replay runs remembered, oldest first.
    pub fn replay_list(&self) -> Vec<ReplayStatus> {
        self.replays
            .runs
            .lock()
            .iter()
            .map(|r| r.status())
            .collect()
    }

    /// Stop a replay run: nothing more is read; deliveries in flight finish.
    pub fn replay_cancel(&self, id: &str) -> Option<ReplayStatus> {
        let runs = self.replays.runs.lock();
        let run = runs.iter().find(|r| r.id == id)?;
        if !run.done.load(Ordering::Acquire) {
            run.cancelled.store(true, Ordering::Relaxed);
            run.stop.send_replace(true);
        }
        Some(run.status())
    }
}

fn range(r: &PartitionRange) -> Range {
    Range {
        partition: r.partition,
        from: r.from,
        to: r.to,
    }
}

/// `r<unix seconds in base 36>-<n>`: short, unique within a process and unlikely to repeat
/// across restarts.
fn run_id(n: u64) -> String {
    let mut secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut digits = Vec::new();
    loop {
        let d = u32::try_from(secs % 36).unwrap_or_default();
        digits.push(char::from_digit(d, 36).unwrap_or('0'));
        secs /= 36;
        if secs == 0 {
            break;
        }
    }
    let stamp: String = digits.into_iter().rev().collect();
    format!("r{stamp}-{n}")
}

/// Read the run's range and deliver what the Trigger's filter takes, at most its in-flight
/// limit at once; until the range is read, the run is cancelled, or the process stops.
async fn drive(
    run: Arc<Run>,
    mut reader: Box<dyn Replay>,
    runtime: Arc<EgressRuntime>,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    let dispatch = ctx.dispatch.clone();
    let mut shutdown = ctx.shutdown.subscribe();
    let limit = in_flight_limit(&runtime);
    let mut inflight: JoinSet<Session> = JoinSet::new();
    let mut sessions: Vec<Session> = Vec::new();
    let mut stopping = false;
    loop {
        while inflight.len() >= limit {
            if let Some(Ok(s)) = inflight.join_next().await {
                sessions.push(s);
            }
        }
        while let Some(done) = inflight.try_join_next() {
            sessions.extend(done.ok());
        }
        let batch = tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = shutdown.changed() => {
                stopping = true;
                break;
            }
            b = reader.next(limit - inflight.len()) => b,
        };
        let records = match batch {
            Ok(Some(records)) => records,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(replay = %run.id, error = %e, "replay failed");
                *run.error.lock() = Some(e.to_string());
                break;
            }
        };
        for r in records {
            let Some(record) = taken(&run, &runtime, r) else {
                continue;
            };
            let session = sessions.pop().unwrap_or_default();
            inflight.spawn(deliver_one(
                run.clone(),
                runtime.clone(),
                dispatch.clone(),
                record,
                session,
            ));
        }
    }
    wind_down(inflight, stopping).await;
    // Dropping a reader may block (Kafka closes its consumer): not on a runtime thread.
    drop(tokio::task::spawn_blocking(move || drop(reader)));
    run.done.store(true, Ordering::Release);
    let s = run.status();
    tracing::info!(replay = %s.id, trigger = %s.trigger, read = s.read, matched = s.matched,
        delivered = s.delivered, failed = s.failed, cancelled = s.cancelled, "replay ended");
}

/// Deliveries in flight at once: the Trigger's limit (at most [`MAX_IN_FLIGHT`]), one for an
/// ordered Trigger.
fn in_flight_limit(runtime: &EgressRuntime) -> usize {
    if runtime.config.ordering == contract::Ordering::Unordered {
        usize::try_from(runtime.config.max_in_flight)
            .unwrap_or(MAX_IN_FLIGHT)
            .clamp(1, MAX_IN_FLIGHT)
    } else {
        1
    }
}

/// The record to deliver for `r` if the Trigger's filter takes it, marked with the run's id;
/// counted as read (and matched).
fn taken(run: &Run, runtime: &EgressRuntime, r: ReplayRecord) -> Option<Record> {
    run.counts.read.fetch_add(1, Ordering::Relaxed);
    if !runtime.takes(&r.event) {
        return None;
    }
    run.counts.matched.fetch_add(1, Ordering::Relaxed);
    let mut event = r.event;
    event.set_extension(REPLAY_EXTENSION, ExtValue::String(run.id.clone()));
    Some(Record {
        id: RecordId {
            partition: PartitionId(u64::try_from(r.partition).unwrap_or_default()),
            offset: r.offset,
            handle: 0,
        },
        event: Arc::new(event),
        key: None,
        retry: None,
    })
}

/// Let the deliveries in flight finish: all of them, or (the process stopping) those that
/// finish within [`STOP_GRACE`].
async fn wind_down(mut inflight: JoinSet<Session>, stopping: bool) {
    if stopping {
        let all = async { while inflight.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
            inflight.abort_all();
        }
    } else {
        while inflight.join_next().await.is_some() {}
    }
}

async fn deliver_one(
    run: Arc<Run>,
    runtime: Arc<EgressRuntime>,
    dispatch: Dispatch,
    record: Record,
    mut session: Session,
) -> Session {
    if let Some(rate) = &runtime.rate {
        rate.acquire().await;
    }
    let fate = knit_dispatcher::deliver::deliver(
        &dispatch.sender,
        &runtime,
        &record,
        // No log position to hold and no retry stream: retries happen in memory.
        &knit_dispatcher::send::Direct,
        &mut session,
    )
    .await;
    let reference = &runtime.config.reference;
    let counters = dispatch.stats.egress(reference);
    dispatch
        .stats
        .record(&counters, reference, &record.event.id, &fate);
    let c = &run.counts;
    match fate {
        Fate::Delivered { .. } => {
            c.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Fate::DeadLettered { .. } => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            c.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Fate::Dropped { .. } => {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        // Not produced without a retry stream, nor by `deliver`.
        Fate::Deferred { .. } | Fate::Filtered => {}
    }
    session
}
