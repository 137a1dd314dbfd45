//! The data plane: applies each new Contract without dropping events. Every ingress runs as a
//! task that owns its log; every egress as a task that owns its consumer group (see
//! [`ingresses`] and [`egresses`]). Applying a Contract only diffs it against the running tasks
//! and tells them what changed, so it never blocks on a backend; what actually happened comes
//! back through [`DataPlane::report`].

mod backends;
mod egresses;
mod gauges;
mod ingresses;
mod replay;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use knit_channels::{Backends, MemoryConfig};
use knit_crds::contract::{Contract, Ingress, Report};
use knit_dispatcher::observe::Journal;
use knit_dispatcher::{Sender, Shared as Dispatch, Stats};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ingress::{self, Limits, Shared, Table};
use ingresses::IngressSlot;
pub use knit_dispatcher::Reporter;
pub use replay::{REPLAY_EXTENSION, Range, ReplayError, ReplayStatus};

/// Settings of the data plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest event accepted, in bytes.
    pub max_event_size: usize,
    /// Bounds of memory logs, per consumer group.
    pub memory: MemoryConfig,
    /// Hop limit given to events entering a Broker without one (and the most one may carry).
    pub default_ttl: i32,
    /// Limits of the ingress listener.
    pub limits: Limits,
    /// Journeys the event journal keeps (`knit trace`).
    pub journal_capacity: usize,
    /// OTLP/HTTP endpoint traces are exported to (`None`: no tracing).
    pub otlp_endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_event_size: 4 * 1024 * 1024,
            memory: MemoryConfig::default(),
            default_ttl: 255,
            limits: Limits::default(),
            journal_capacity: knit_dispatcher::observe::journal::DEFAULT_CAPACITY,
            otlp_endpoint: None,
        }
    }
}

impl Config {
    /// What the ingress handler needs of it.
    fn ingress(&self) -> ingress::Settings {
        ingress::Settings {
            max_event_size: self.max_event_size,
            default_ttl: self.default_ttl,
            limits: self.limits.clone(),
            traced: self.otlp_endpoint.is_some(),
        }
    }
}

/// What the ingress and egress tasks share.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) dispatch: Dispatch,
    pub(crate) report: Arc<Reporter>,
    pub(crate) backends: Backends,
    pub(crate) shutdown: watch::Sender<bool>,
    /// The egresses' gauges, refreshed by one task.
    pub(crate) gauges: gauges::Gauges,
    /// Whether this process deletes what a removed object owned (topics, streams, consumer
    /// groups); unset: it does. Several replicas leave that to their leader.
    pub(crate) deletes: std::sync::OnceLock<DeleteGate>,
}

/// Says whether this process deletes owned resources: `Some(true)` it does (it leads the
/// deletions), `Some(false)` another replica does, `None` not known yet.
pub type DeleteGate = Arc<dyn Fn() -> Option<bool> + Send + Sync>;

/// How long a retiring object waits to learn who deletes what it owned (a replica just
/// started may not know its leader yet): 75 looks 200 ms apart.
const WHO_DELETES: backon::ConstantBuilder = backon::ConstantBuilder::new()
    .with_delay(std::time::Duration::from_millis(200))
    .with_max_times(75);

impl Ctx {
    /// Whether this process deletes what a removed object owned; unknown after the wait: no
    /// (what is left is logged).
    pub(crate) async fn may_delete(&self) -> bool {
        use backon::Retryable;
        let Some(gate) = self.deletes.get() else {
            return true;
        };
        let known = || async { gate().ok_or(()) };
        known.retry(WHO_DELETES).await.unwrap_or_else(|()| {
            tracing::warn!("no replica is known to lead the deletions: owned topics, streams and groups are left");
            false
        })
    }
}

/// The data plane of one process.
pub struct DataPlane {
    shared: Arc<Shared>,
    ctx: Arc<Ctx>,
    slots: Mutex<HashMap<String, IngressSlot>>,
    /// Ingress tasks retiring (draining, deleting topics).
    retiring: Mutex<Vec<Retiring>>,
    /// The event journal.
    journal: Arc<Journal>,
    /// Replays of Triggers (see [`replay`]).
    replays: replay::Runs,
}

/// An ingress task retiring: its address, its task, and its end.
struct Retiring {
    key: String,
    handle: JoinHandle<()>,
    ended: watch::Receiver<()>,
}

impl DataPlane {
    /// A data plane with no ingresses.
    pub fn new(config: Config) -> crate::Result<Self> {
        let (shutdown, _) = watch::channel(false);
        let journal = Arc::new(Journal::new(config.journal_capacity));
        let mut observers: Vec<Arc<dyn knit_dispatcher::observe::Observer>> = vec![journal.clone()];
        if let Some(endpoint) = &config.otlp_endpoint {
            observers.push(knit_dispatcher::observe::Otlp::start(endpoint)?);
        }
        let stats = Arc::new(Stats::with_observers(observers));
        let backends = Backends::new(
            &config_kafka_client_id(),
            config.memory,
            stats.unmatched.clone(),
        );
        Ok(Self {
            shared: Arc::new(Shared::new(
                config.ingress(),
                Arc::new(knit_dispatcher::webhook::Webhooks::new()),
                stats.clone(),
            )),
            ctx: Arc::new(Ctx {
                config,
                dispatch: Dispatch {
                    sender: Sender::new()?,
                    stats,
                },
                report: Arc::new(Reporter::new()),
                backends,
                shutdown,
                gauges: gauges::Gauges::default(),
                deletes: std::sync::OnceLock::new(),
            }),
            slots: Mutex::new(HashMap::new()),
            retiring: Mutex::new(Vec::new()),
            replays: replay::Runs::default(),
            journal,
        })
    }

    /// Events a memory log holds for one group (`--log-capacity`).
    pub fn memory_capacity(&self) -> usize {
        self.ctx.config.memory.capacity
    }

    /// The event journal (`knit trace`, `knit get events`).
    pub fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    /// Serve the ingress on `listener`.
    pub async fn serve_ingress(&self, listener: tokio::net::TcpListener) {
        ingress::serve(
            listener,
            self.shared.clone(),
            ingress::Encryption::default(),
        )
        .await
    }

    /// Serve the ingress on `listener` (plain TCP or TLS) while `encryption` lets that kind of
    /// listener answer (404 otherwise).
    pub async fn serve_ingress_on<A: knit_tls::Accept>(
        &self,
        listener: A,
        encryption: ingress::Encryption,
    ) {
        ingress::serve(listener, self.shared.clone(), encryption).await
    }

    /// Delete the topics, streams and consumer groups of removed objects only while `gate`
    /// says so (replicas: while this one leads the deletions); set once.
    pub fn delete_owned_when(&self, gate: DeleteGate) {
        let _ = self.ctx.deletes.set(gate);
    }

    /// Verify the bearer tokens requests to ingresses carry (OIDC) against `trust`'s issuers.
    pub fn verify_tokens_with(&self, trust: Arc<knit_oidc::Trust>) {
        self.shared.verify_with(trust);
    }

    /// Delivery counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.ctx.dispatch.stats.clone()
    }

    /// The report sources write into as well.
    pub fn reporter(&self) -> Arc<Reporter> {
        self.ctx.report.clone()
    }

    /// HTTP clients and fate counters, for the sources' deliveries.
    pub fn dispatch(&self) -> Dispatch {
        self.ctx.dispatch.clone()
    }

    /// Receivers on the ingress listener that are not Brokers or channels (source webhooks).
    pub fn webhooks(&self) -> Arc<knit_dispatcher::webhook::Webhooks> {
        self.shared.webhooks.clone()
    }

    /// Follow what the data plane made of the Contract.
    pub fn report(&self) -> watch::Receiver<Arc<Report>> {
        self.ctx.report.subscribe()
    }

    /// Run `contract`: start, update and retire ingresses and egresses. Returns at once; the
    /// tasks do the work and report back. Only the entries that differ from the running ones are
    /// copied and handed to their tasks (each task then diffs its egresses by UID).
    pub fn apply(&self, contract: &Contract) {
        let mut slots = self.slots.lock();
        let mut retiring = self.retiring.lock();
        retiring.retain(|r| !r.handle.is_finished());
        let mut next: HashMap<String, IngressSlot> = HashMap::new();
        for ingress in &contract.ingresses {
            let key = if ingress.path.is_empty() {
                format!("source:{}", ingress.uid)
            } else {
                ingress.path.clone()
            };
            let slot = match slots.remove(&key) {
                // Unchanged: nothing to clone, nothing to tell its task.
                Some(s) if *s.ingress == *ingress => s,
                Some(mut s) if backends::same_log(&s.ingress, ingress) => {
                    s.update(Arc::new(ingress.clone()));
                    s
                }
                Some(old) => {
                    tracing::info!(ingress = %key, "recreated: the old log drains, a new one starts");
                    let ended = old.ended.clone();
                    retiring.push(Retiring {
                        key: key.clone(),
                        handle: old.remove(),
                        ended,
                    });
                    self.start(&key, Arc::new(ingress.clone()), &retiring)
                }
                None => {
                    tracing::info!(ingress = %key, kind = ?ingress.kind, "ingress started");
                    self.start(&key, Arc::new(ingress.clone()), &retiring)
                }
            };
            next.insert(key, slot);
        }
        for (key, old) in slots.drain() {
            tracing::info!(ingress = %key, "ingress removed: its log drains");
            self.shared.stats.forget_ingress(&old.target.origin);
            let ended = old.ended.clone();
            retiring.push(Retiring {
                key,
                handle: old.remove(),
                ended,
            });
        }
        let mut table = Table::default();
        for slot in next.values() {
            if slot.ingress.path.is_empty() {
                continue;
            }
            table
                .by_path
                .insert(slot.ingress.path.clone(), slot.target.clone());
            for h in &slot.ingress.hosts {
                table.by_host.insert(h.clone(), slot.target.clone());
            }
        }
        self.shared.set_table(table);
        *slots = next;
    }

    /// Start an ingress task at `key` after whatever still retires there (a Kafka topic of the
    /// same name must be deleted before it is created again).
    fn start(&self, key: &str, ingress: Arc<Ingress>, retiring: &[Retiring]) -> IngressSlot {
        // Memory logs share nothing with their predecessors: no need to wait for their drain.
        let durable = !matches!(ingress.backend, knit_crds::contract::Backend::Memory);
        let after = retiring
            .iter()
            .filter(|r| durable && r.key == key)
            .map(|r| r.ended.clone())
            .collect();
        ingresses::spawn(ingress, self.ctx.clone(), after)
    }

    /// Stop: the ingress answers nothing new, egresses finish what is in flight (up to a few
    /// seconds), commit and leave their groups. Nothing is deleted.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.set_table(Table::default());
        self.ctx.shutdown.send_replace(true);
        let handles: Vec<JoinHandle<()>> = {
            let mut slots = self.slots.lock();
            let mut retiring = self.retiring.lock();
            slots
                .drain()
                .map(|(_, s)| s.handle)
                .chain(retiring.drain(..).map(|r| r.handle))
                .collect()
        };
        let all = futures::future::join_all(handles);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                "some deliveries did not finish before shutdown; they are replayed from the last commit"
            );
        }
    }
}

fn config_kafka_client_id() -> String {
    format!("knit-{}", std::process::id())
}
