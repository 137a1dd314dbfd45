//! Runs the Contract's sources: one task per source, started, restarted when its entry in the
//! Contract changes (and only then), and stopped when it goes away.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use knit_crds::api::eventing::SubscriptionsApiFilter;
use knit_crds::contract::{Adapter, Source};
use knit_dispatcher::webhook::Webhooks;
use knit_dispatcher::{EventFilter, Reporter, Shared};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::lead::run_led;
use crate::logs::Logs;

/// Builds the Subscriptions API filters of an ApiServerSource (the dialects live in the
/// broker crate, which sources must not depend on).
pub trait FilterFactory: Send + Sync {
    /// A filter for `filters`, or why they cannot run ([`crate::Error::Config`]).
    fn build(&self, filters: &[SubscriptionsApiFilter]) -> crate::Result<Arc<dyn EventFilter>>;
}

/// Settings of the process that every adapter may need.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `knit run --kubeconfig` or `KUBECONFIG`: the API server ApiServerSources watch.
    pub kubeconfig: Option<PathBuf>,
    /// `PUBSUB_EMULATOR_HOST` (`host:port`): CloudPubSubSources talk to the emulator there.
    pub pubsub_emulator_host: Option<String>,
}

/// What every adapter shares.
pub struct Ctx {
    /// HTTP clients and fate counters (the one delivery entry).
    pub dispatch: Shared,
    /// Where adapters report whether they run, under their source's UID.
    pub report: Arc<Reporter>,
    /// Receivers on the ingress listener.
    pub webhooks: Arc<Webhooks>,
    /// Builds ApiServerSource filters.
    pub filters: Arc<dyn FilterFactory>,
    /// Output of local processes.
    pub logs: Arc<Logs>,
    /// Process settings.
    pub config: Config,
    /// Told the PID of every ContainerSource process started (each leads its own process
    /// group), so whoever runs knit can stop them if knit dies without stopping them.
    pub on_spawn: Option<Arc<dyn Fn(u32) + Send + Sync>>,
    /// The replicas of this system: work that must run once runs on the leader of its source
    /// ([`crate::lead`]); `None` runs everything here.
    pub coordination: Option<Arc<knit_channels::coordination::Coordination>>,
}

/// Why an adapter is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Its configuration changed: a new task takes over at once.
    Replaced,
    /// The source was deleted: undo what it set up outside (a GitHub webhook).
    Removed,
    /// Knit is stopping: leave outside state as it is.
    Shutdown,
}

/// An adapter's view of its stop signal.
#[derive(Clone)]
pub struct StopSignal(pub(crate) watch::Receiver<Option<Stop>>);

impl StopSignal {
    /// Resolves when the adapter must stop, with why.
    pub async fn stopped(&mut self) -> Stop {
        loop {
            if let Some(s) = *self.0.borrow_and_update() {
                return s;
            }
            if self.0.changed().await.is_err() {
                return Stop::Shutdown;
            }
        }
    }

    /// Whether the adapter was told to stop.
    pub fn is_stopped(&self) -> Option<Stop> {
        *self.0.borrow()
    }

    /// A signal that never fires (tests).
    pub fn never() -> (watch::Sender<Option<Stop>>, Self) {
        let (tx, rx) = watch::channel(None);
        (tx, Self(rx))
    }
}

fn ping(ctx: Arc<Ctx>, source: Arc<Source>, stop: StopSignal) -> BoxFuture<'static, ()> {
    Box::pin(crate::ping::run(ctx, source, stop))
}

fn apiserver(ctx: Arc<Ctx>, source: Arc<Source>, stop: StopSignal) -> BoxFuture<'static, ()> {
    Box::pin(crate::apiserver::run(ctx, source, stop))
}

fn container(ctx: Arc<Ctx>, source: Arc<Source>, stop: StopSignal) -> BoxFuture<'static, ()> {
    Box::pin(crate::container::run(ctx, source, stop))
}

struct Slot {
    source: Source,
    stop: watch::Sender<Option<Stop>>,
    handle: JoinHandle<()>,
}

/// The running sources.
pub struct Runtime {
    ctx: Arc<Ctx>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Runtime {
    /// No sources yet.
    pub fn new(ctx: Ctx) -> Self {
        Self {
            ctx: Arc::new(ctx),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// What the adapters share.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// Run `sources`: start new ones, restart changed ones, stop removed ones. Returns at once.
    pub fn apply(&self, sources: &[Source]) {
        let mut slots = self.slots.lock();
        let mut next = HashMap::new();
        for src in sources {
            let slot = match slots.remove(&src.uid) {
                Some(s) if s.source == *src => s,
                Some(old) => {
                    tracing::info!(source = %src.reference, "source changed: its adapter restarts");
                    old.stop.send_replace(Some(Stop::Replaced));
                    self.start(src)
                }
                None => {
                    tracing::info!(source = %src.reference, "source started");
                    self.start(src)
                }
            };
            next.insert(src.uid.clone(), slot);
        }
        for (uid, old) in slots.drain() {
            tracing::info!(source = %old.source.reference, "source removed");
            old.stop.send_replace(Some(Stop::Removed));
            let report = self.ctx.report.clone();
            let handle = old.handle;
            tokio::spawn(async move {
                let _ = handle.await;
                report.forget(&uid);
                report.forget(&crate::lead::report_key(&uid));
            });
        }
        *slots = next;
    }

    fn start(&self, src: &Source) -> Slot {
        let (stop, rx) = watch::channel(None);
        let signal = StopSignal(rx);
        let ctx = self.ctx.clone();
        let source = Arc::new(src.clone());
        let handle = tokio::spawn(async move {
            match &source.adapter {
                Adapter::Ping(_) => run_led(ctx, source, signal, ping).await,
                // The receiver listens on every replica; only the registration is led.
                Adapter::GitHub(_) => crate::github::run(ctx, source, signal).await,
                Adapter::ApiServer(_) => run_led(ctx, source, signal, apiserver).await,
                // Pub/Sub hands each message of the shared subscription to one puller: every
                // replica pulls.
                Adapter::PubSub(_) => crate::pubsub::run(ctx, source, signal).await,
                Adapter::Container(_) => run_led(ctx, source, signal, container).await,
            }
        });
        Slot {
            source: src.clone(),
            stop,
            handle,
        }
    }

    /// Stop every adapter (outside state such as webhooks is left in place), waiting up to
    /// `grace` for them to finish what they are sending.
    pub async fn shutdown(&self, grace: Duration) {
        let handles: Vec<JoinHandle<()>> = {
            let mut slots = self.slots.lock();
            slots
                .drain()
                .map(|(_, s)| {
                    s.stop.send_replace(Some(Stop::Shutdown));
                    s.handle
                })
                .collect()
        };
        let all = futures::future::join_all(handles);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some sources did not stop in time");
        }
    }
}
