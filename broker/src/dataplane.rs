//! The data plane: applies each new Contract without dropping events. Every ingress gets a log
//! and a consumer; every egress its flow control; updates swap routing in place, so events
//! in flight finish under the configuration they started with.

use std::collections::HashMap;
use std::sync::Arc;

use knit_channels::MemoryLog;
use knit_crds::contract::{Contract, Egress, Ingress, IngressKind};
use knit_dispatcher::{AllRouter, EgressRuntime, Routing, Sender, Stats, flow::FlowControl};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::filter::{self, TriggerRouter};

/// Settings of the data plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest event accepted, in bytes.
    pub max_event_size: usize,
    /// Events a log holds before its ingress answers 429.
    pub log_capacity: usize,
    /// Bytes a log holds before its ingress answers 429.
    pub log_max_bytes: usize,
    /// Hop limit given to events entering a Broker without one.
    pub default_ttl: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_event_size: 4 * 1024 * 1024,
            log_capacity: 10_000,
            log_max_bytes: 256 * 1024 * 1024,
            default_ttl: 255,
        }
    }
}

/// One ingress as the request path sees it.
pub struct Target {
    /// Whether it is a Broker (hop limit applies).
    pub broker: bool,
    /// Its log.
    pub log: Arc<MemoryLog>,
}

/// Where requests are routed.
#[derive(Default)]
pub struct Table {
    /// By path (`/ns/name`, `/channels/ns/name`).
    pub by_path: HashMap<String, Arc<Target>>,
    /// By host name (channels).
    pub by_host: HashMap<String, Arc<Target>>,
}

/// State shared with the ingress handler.
pub struct Shared {
    table: RwLock<Arc<Table>>,
    /// Settings.
    pub config: Config,
}

impl Shared {
    /// The current routing table.
    pub fn table(&self) -> Arc<Table> {
        self.table.read().clone()
    }
}

struct Running {
    uid: String,
    target: Arc<Target>,
    routing: watch::Sender<Arc<Routing>>,
    egresses: HashMap<String, Arc<EgressRuntime>>,
}

/// The data plane of one process.
pub struct DataPlane {
    shared: Arc<Shared>,
    sender: Sender,
    stats: Arc<Stats>,
    running: Mutex<HashMap<String, Running>>,
}

impl DataPlane {
    /// A data plane with no ingresses.
    pub fn new(config: Config) -> knit_dispatcher::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                table: RwLock::new(Arc::new(Table::default())),
                config,
            }),
            sender: Sender::new()?,
            stats: Arc::new(Stats::default()),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Serve the ingress on `listener`.
    pub async fn serve_ingress(&self, listener: tokio::net::TcpListener) {
        crate::ingress::serve(listener, self.shared.clone()).await
    }

    /// Delivery counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The runtime of an egress: kept while its configuration is unchanged; otherwise a new one
    /// with its own queue, so work routed before the change drains under the configuration it
    /// was routed with and new work uses the new one.
    fn egress_runtime(old: Option<&Arc<EgressRuntime>>, config: &Egress) -> Arc<EgressRuntime> {
        match old {
            Some(o) if o.config == *config => o.clone(),
            _ => Arc::new(EgressRuntime::new(
                config.clone(),
                FlowControl::new(config.max_in_flight, config.rate_limit),
            )),
        }
    }

    fn routing(ingress: &Ingress, egresses: &[Arc<EgressRuntime>]) -> Routing {
        let router: Box<dyn knit_dispatcher::Router> = match ingress.kind {
            IngressKind::Broker => Box::new(TriggerRouter::new(
                egresses
                    .iter()
                    .map(|e| filter::compile(e.config.filter.as_ref()))
                    .collect(),
            )),
            IngressKind::Channel => Box::new(AllRouter(egresses.len())),
        };
        Routing {
            egresses: egresses.to_vec(),
            router,
        }
    }

    /// Run `contract`: create, update and remove ingresses and egresses.
    pub fn apply(&self, contract: &Contract) {
        let mut running = self.running.lock();
        let mut next: HashMap<String, Running> = HashMap::new();
        for ingress in &contract.ingresses {
            let key = ingress.path.clone();
            // A recreated object (same path, new UID) gets a fresh log; the old one is closed
            // and its accepted events still drain to the old egresses.
            let previous = match running.remove(&key) {
                Some(r) if r.uid == ingress.uid => Some(r),
                Some(old) => {
                    old.target.log.close();
                    None
                }
                None => None,
            };
            let old_egresses = previous
                .as_ref()
                .map(|r| r.egresses.clone())
                .unwrap_or_default();
            let egresses: Vec<Arc<EgressRuntime>> = ingress
                .egresses
                .iter()
                .map(|e| Self::egress_runtime(old_egresses.get(&e.uid), e))
                .collect();
            let routing = Arc::new(Self::routing(ingress, &egresses));
            let by_uid = egresses
                .iter()
                .map(|e| (e.config.uid.clone(), e.clone()))
                .collect();
            let r = match previous {
                Some(p) => {
                    p.routing.send_replace(routing);
                    Running {
                        egresses: by_uid,
                        ..p
                    }
                }
                None => {
                    let log = MemoryLog::new(
                        self.shared.config.log_capacity,
                        self.shared.config.log_max_bytes,
                    );
                    let (tx, rx) = watch::channel(routing);
                    tokio::spawn(knit_dispatcher::fanout::run(
                        log.clone(),
                        rx,
                        self.sender.clone(),
                        self.stats.clone(),
                    ));
                    tracing::info!(path = %ingress.path, kind = ?ingress.kind, "ingress started");
                    Running {
                        uid: ingress.uid.clone(),
                        target: Arc::new(Target {
                            broker: ingress.kind == IngressKind::Broker,
                            log,
                        }),
                        routing: tx,
                        egresses: by_uid,
                    }
                }
            };
            next.insert(key, r);
        }
        // What is left was removed from the Contract (or recreated with a new UID).
        for (path, r) in running.drain() {
            tracing::info!(path = %path, "ingress stopped");
            r.target.log.close();
        }
        let mut table = Table::default();
        for ingress in &contract.ingresses {
            if let Some(r) = next.get(&ingress.path) {
                table.by_path.insert(ingress.path.clone(), r.target.clone());
                for h in &ingress.hosts {
                    table.by_host.insert(h.clone(), r.target.clone());
                }
            }
        }
        *self.shared.table.write() = Arc::new(table);
        *running = next;
    }
}
