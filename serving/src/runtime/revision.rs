//! One running revision: its replicas, its activator queue, its autoscaler, its log ring and
//! the state it reports under its UID (`ready`, `actualReplicas`, `desiredReplicas`,
//! `lastColdStartMs`, or the reason it is not ready).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use knit_crds::contract::ObjectReport;
use knit_crds::contract::serving::Revision;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::logs::Ring;
use super::proxy::{Counted, Meter, Sample};
use super::replica::{self, Phase, Replica};
use super::scaler::{self, Decide};
use super::{Config, ReportSink};

/// What a revision reports when it is not ready.
#[derive(Debug, Clone)]
struct Failure {
    reason: String,
    message: String,
}

#[derive(Default)]
struct State {
    desired: u32,
    failure: Option<Failure>,
    cold_start_began: Option<Instant>,
    last_cold_start_ms: Option<u64>,
    cold_starts: u64,
    ever_ready: bool,
    last_report: Option<ObjectReport>,
}

/// A revision at run time.
pub(crate) struct Rev {
    pub(crate) spec: Revision,
    routed: AtomicBool,
    pub(crate) logs: Arc<Ring>,
    replicas: Mutex<Vec<Arc<Replica>>>,
    changes: watch::Sender<u64>,
    /// Requests waiting for a ready replica (reference §2's activator), counted like a proxy.
    pub(crate) activator: Arc<Meter>,
    pub(crate) waiting: AtomicUsize,
    pub(crate) max_waiting: usize,
    state: Mutex<State>,
    decider: Mutex<Box<dyn Decide>>,
    /// The decider's inputs: the annotations and `config-autoscaler`.
    inputs: Mutex<(BTreeMap<String, String>, BTreeMap<String, String>)>,
    next_id: AtomicU64,
    rr: AtomicUsize,
    pub(crate) cancel: CancellationToken,
    report: Arc<dyn ReportSink>,
    pub(crate) config: Arc<Config>,
}

impl Rev {
    pub(crate) fn new(
        spec: Revision,
        autoscaler: &BTreeMap<String, String>,
        logs: Arc<Ring>,
        report: Arc<dyn ReportSink>,
        config: Arc<Config>,
    ) -> Arc<Self> {
        let decider = scaler::decider(&spec, autoscaler, config.progress_deadline);
        let initial = decider.initial();
        let inputs = (spec.autoscaling.clone(), autoscaler.clone());
        let rev = Arc::new(Self {
            routed: AtomicBool::new(spec.routed),
            spec,
            logs,
            replicas: Mutex::new(Vec::new()),
            changes: watch::Sender::new(0),
            activator: Meter::new(),
            waiting: AtomicUsize::new(0),
            max_waiting: config.activator_queue,
            state: Mutex::new(State::default()),
            decider: Mutex::new(decider),
            inputs: Mutex::new(inputs),
            next_id: AtomicU64::new(0),
            rr: AtomicUsize::new(0),
            cancel: CancellationToken::new(),
            report,
            config,
        });
        rev.scale_to(initial);
        rev.publish();
        rev
    }

    /// Take the Contract's new routing flag and autoscaling inputs (the container is the same);
    /// the autoscaler starts afresh only when its inputs changed.
    pub(crate) fn update(&self, spec: &Revision, autoscaler: &BTreeMap<String, String>) {
        self.routed.store(spec.routed, Ordering::Release);
        let mut inputs = self.inputs.lock();
        if inputs.0 != spec.autoscaling || inputs.1 != *autoscaler {
            *inputs = (spec.autoscaling.clone(), autoscaler.clone());
            *self.decider.lock() = scaler::decider(spec, autoscaler, self.config.progress_deadline);
        }
    }

    /// Whether `spec` runs the same processes as this revision.
    pub(crate) fn same_processes(&self, spec: &Revision) -> bool {
        let a = &self.spec;
        a.container == spec.container
            && a.container_concurrency == spec.container_concurrency
            && a.timeout_seconds == spec.timeout_seconds
            && a.response_start_timeout_seconds == spec.response_start_timeout_seconds
            && a.idle_timeout_seconds == spec.idle_timeout_seconds
            && a.name == spec.name
            && a.namespace == spec.namespace
            && a.configuration == spec.configuration
            && a.service == spec.service
    }

    /// The drain and kill grace: `timeoutSeconds` (at least 1 s).
    pub(crate) fn grace(&self) -> Duration {
        Duration::from_secs(self.spec.timeout_seconds.max(1))
    }

    /// A receiver woken on every replica change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wake whoever waits for a replica.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A ready replica for one request, counted in its proxy before the lock is released (so a
    /// drain that starts later waits for it). CC ≤ 3: first with a free slot; CC > 3: round
    /// robin over those with a free slot; else (or none free) the least loaded.
    pub(crate) fn pick(&self) -> Option<Counted> {
        let replicas = self.replicas.lock();
        let ready = || replicas.iter().filter(|r| r.phase() == Phase::Ready);
        let n = ready().count();
        if n == 0 {
            return None;
        }
        let cc = self.spec.container_concurrency;
        let chosen = if cc > 0 && cc <= 3 {
            ready().find(|r| r.proxy.has_free_slot())
        } else if cc > 3 {
            let start = self.rr.fetch_add(1, Ordering::Relaxed) % n;
            ready()
                .cycle()
                .skip(start)
                .take(n)
                .find(|r| r.proxy.has_free_slot())
        } else {
            None
        };
        let chosen = match chosen {
            Some(r) => r,
            None if n == 1 => ready().next()?,
            None => ready().min_by_key(|r| r.proxy.load())?,
        };
        Some(chosen.proxy.count())
    }

    /// A request waits at zero (or with no ready replica): scale up now.
    pub(crate) fn poke(self: &Arc<Self>) {
        let now = Instant::now();
        self.decider.lock().poke(now);
        let (ready, live) = self.counts();
        if ready == 0 {
            let mut st = self.state.lock();
            if st.cold_start_began.is_none() && live == 0 {
                st.cold_start_began = Some(now);
            }
        }
        if live == 0 {
            tracing::info!(revision = %self.spec.name, namespace = %self.spec.namespace, "request at zero: starting a replica");
            self.scale_to(1);
            self.publish();
        }
    }

    /// Ready and live (not draining) replicas.
    pub(crate) fn counts(&self) -> (u32, u32) {
        let replicas = self.replicas.lock();
        let ready = replicas
            .iter()
            .filter(|r| r.phase() == Phase::Ready)
            .count();
        let live = replicas
            .iter()
            .filter(|r| r.phase() != Phase::Draining)
            .count();
        (ready as u32, live as u32)
    }

    /// Start or drain replicas until `n` are live.
    pub(crate) fn scale_to(self: &Arc<Self>, n: u32) {
        if self.cancel.is_cancelled() {
            return;
        }
        self.state.lock().desired = n;
        let mut replicas = self.replicas.lock();
        let mut live: Vec<Arc<Replica>> = replicas
            .iter()
            .filter(|r| r.phase() != Phase::Draining)
            .cloned()
            .collect();
        let n = n as usize;
        if live.len() < n {
            for _ in live.len()..n {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                let rep = Replica::new(id, self.spec.container_concurrency);
                replicas.push(rep.clone());
                tokio::spawn(replica::run(self.clone(), rep));
            }
        } else if live.len() > n {
            // Not ready first, then the least loaded, then the youngest.
            live.sort_by_key(|r| {
                (
                    r.phase() == Phase::Ready,
                    r.proxy.load(),
                    std::cmp::Reverse(r.since),
                )
            });
            for r in live.iter().take(live.len() - n) {
                tracing::info!(revision = %self.spec.name, replica = r.id, "draining replica");
                r.drain();
            }
        }
        drop(replicas);
        self.changed();
    }

    /// A replica is gone (stopped and drained).
    pub(crate) fn remove(&self, rep: &Replica) {
        self.replicas.lock().retain(|r| r.id != rep.id);
        self.changed();
        self.publish();
    }

    /// A replica passed its readiness probe.
    pub(crate) fn on_ready(&self, replica: u64) {
        {
            let mut st = self.state.lock();
            st.ever_ready = true;
            st.failure = None;
            if let Some(began) = st.cold_start_began.take() {
                let ms = began.elapsed().as_millis() as u64;
                st.last_cold_start_ms = Some(ms);
                st.cold_starts += 1;
                tracing::info!(revision = %self.spec.name, namespace = %self.spec.namespace, cold_start_ms = ms, "cold start");
            }
        }
        tracing::info!(revision = %self.spec.name, namespace = %self.spec.namespace, replica, "replica ready");
        self.note(replica, "ready");
        self.changed();
        self.publish();
    }

    /// A replica failed: the revision says why (while no replica is ready).
    pub(crate) fn fail(&self, replica: u64, reason: &str, message: &str) {
        tracing::warn!(revision = %self.spec.name, namespace = %self.spec.namespace, replica, reason, message, "replica failed");
        self.note(replica, &format!("{reason}: {message}"));
        self.state.lock().failure = Some(Failure {
            reason: reason.to_string(),
            message: message.to_string(),
        });
        self.publish();
    }

    /// A supervisor's note in the log ring.
    pub(crate) fn note(&self, replica: u64, text: &str) {
        self.logs.push(replica, "knit", text);
    }

    /// One scaler tick: sample, decide, scale, check progress, report.
    pub(crate) fn tick(self: &Arc<Self>, now: Instant) {
        let mut sample = self.activator.cut(now);
        for r in self.replicas.lock().iter() {
            let s: Sample = r.proxy.meter.cut(now);
            r.proxy.pool.sweep(now);
            sample.concurrency += s.concurrency;
            sample.rps += s.rps;
        }
        let initialized = self.state.lock().ever_ready;
        let routed = self.routed.load(Ordering::Acquire);
        let (ready, live) = self.counts();
        let mut want = self
            .decider
            .lock()
            .tick(now, sample, ready, routed, initialized);
        if want == 0 && self.waiting.load(Ordering::Acquire) > 0 {
            want = 1;
        }
        if want != live || want != self.state.lock().desired {
            self.scale_to(want);
        }
        if ready == 0 && live > 0 {
            let oldest = self
                .replicas
                .lock()
                .iter()
                .filter(|r| r.phase() == Phase::Starting)
                .map(|r| r.since)
                .min();
            if let Some(since) = oldest
                && now.duration_since(since) >= self.config.progress_deadline
            {
                let mut st = self.state.lock();
                if st.failure.is_none() {
                    st.failure = Some(Failure {
                        reason: "ProgressDeadlineExceeded".to_string(),
                        message: format!(
                            "no replica became ready within {} s",
                            self.config.progress_deadline.as_secs()
                        ),
                    });
                }
            }
        }
        self.publish();
    }

    /// The current report.
    pub(crate) fn report(&self) -> ObjectReport {
        let (ready, live) = self.counts();
        let st = self.state.lock();
        let mut annotations = BTreeMap::new();
        annotations.insert("actualReplicas".to_string(), ready.to_string());
        annotations.insert("desiredReplicas".to_string(), st.desired.to_string());
        if let Some(ms) = st.last_cold_start_ms {
            annotations.insert("lastColdStartMs".to_string(), ms.to_string());
            annotations.insert("coldStarts".to_string(), st.cold_starts.to_string());
        }
        if ready > 0 {
            return ObjectReport {
                ready: true,
                annotations,
                ..Default::default()
            };
        }
        match &st.failure {
            Some(f) => ObjectReport {
                ready: false,
                reason: f.reason.clone(),
                message: f.message.clone(),
                annotations,
                ..Default::default()
            },
            None if live == 0 && st.desired == 0 && (st.ever_ready || !self.spec.routed) => {
                ObjectReport {
                    ready: true,
                    annotations,
                    ..Default::default()
                }
            }
            None => ObjectReport {
                ready: false,
                reason: "Deploying".to_string(),
                message: "waiting for a replica to become ready".to_string(),
                annotations,
                ..Default::default()
            },
        }
    }

    /// Send the report if it changed.
    pub(crate) fn publish(&self) {
        if self.cancel.is_cancelled() {
            return;
        }
        let now = self.report();
        let mut st = self.state.lock();
        if st.last_report.as_ref() != Some(&now) {
            st.last_report = Some(now.clone());
            drop(st);
            self.report.set(&self.spec.uid, now);
        }
    }

    /// Drain every replica and wait (up to `grace`) until all are gone.
    pub(crate) async fn stop(self: &Arc<Self>, grace: Duration) {
        self.cancel.cancel();
        let mut rx = self.subscribe();
        for r in self.replicas.lock().iter() {
            r.drain();
        }
        let all_gone = async {
            loop {
                if self.replicas.lock().is_empty() {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(grace, all_gone).await.is_err() {
            tracing::warn!(revision = %self.spec.name, "replicas still stopping after the grace period");
        }
    }
}
