//! A Broker, channel, KafkaSink or KafkaSource as the request path sees it: where its events
//! go (its log, or why there is none yet), what it is called in journeys and metrics, and its
//! egresses for the journal. The data plane's ingress task fills it in; the handler only reads.

use std::sync::Arc;
use std::time::Duration;

use knit_channels::{Log, LogError};
use knit_crds::contract::IngressKind;
use knit_dispatcher::observe::{IngressCounters, IngressView, Origin};
use parking_lot::RwLock;
use tokio::sync::watch;

/// Why an ingress has no log to append to (the 503's reason).
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoLog {
    /// The first attempt to open it has not ended yet.
    #[error("the log is being opened")]
    Opening,
    /// Opening it failed (it is being retried).
    #[error("{log}: {source}")]
    Failed {
        /// The log (`memory log`, `topic T on B`).
        log: String,
        /// Why.
        #[source]
        source: Arc<LogError>,
    },
    /// Its Broker or channel was deleted.
    #[error("the broker or channel was deleted")]
    Deleted,
}

/// An ingress as the request path sees it.
pub struct Target {
    /// What it belongs to.
    pub kind: IngressKind,
    log: RwLock<Result<Arc<dyn Log>, NoLog>>,
    /// Set once the first attempt to open the log has ended (either way).
    settled: watch::Sender<bool>,
    /// The Broker or channel, as journeys and metrics name it.
    pub origin: Arc<Origin>,
    /// Its request counters.
    pub counters: Arc<IngressCounters>,
    view: RwLock<Arc<IngressView>>,
    authz: RwLock<Option<Arc<super::Authz>>>,
}

impl Target {
    /// A target whose log is being opened.
    pub(crate) fn new(
        kind: IngressKind,
        origin: Arc<Origin>,
        counters: Arc<IngressCounters>,
    ) -> Self {
        Self {
            kind,
            log: RwLock::new(Err(NoLog::Opening)),
            settled: watch::Sender::new(false),
            origin,
            counters,
            view: RwLock::new(Arc::default()),
            authz: RwLock::new(None),
        }
    }

    /// Who may send (OIDC on), or `None`: anyone.
    pub fn authz(&self) -> Option<Arc<super::Authz>> {
        self.authz.read().clone()
    }

    /// Check senders by `auth` from now on (`None`: OIDC off).
    pub(crate) fn set_auth(
        &self,
        auth: Option<&knit_crds::contract::IngressAuth>,
        namespace: &str,
    ) {
        *self.authz.write() = auth.map(|a| Arc::new(super::Authz::new(a, namespace)));
    }

    /// Its egresses now, with their filters (for the journal).
    pub fn view(&self) -> Arc<IngressView> {
        self.view.read().clone()
    }

    /// Replace its egresses.
    pub(crate) fn set_view(&self, view: Arc<IngressView>) {
        *self.view.write() = view;
    }

    /// Whether the hop limit applies.
    pub fn is_broker(&self) -> bool {
        self.kind == IngressKind::Broker
    }

    /// The log, or why there is none yet.
    pub fn log(&self) -> Result<Arc<dyn Log>, NoLog> {
        self.log.read().clone()
    }

    /// The log, waiting up to `within` while it is first being opened (a Broker is Ready
    /// before its ingress has opened the consumer groups of many Triggers; an event sent then
    /// waits instead of being refused). Once an attempt failed, answers at once.
    pub async fn log_within(&self, within: Duration) -> Result<Arc<dyn Log>, NoLog> {
        let log = self.log();
        if log.is_ok() || *self.settled.borrow() {
            return log;
        }
        let mut settled = self.settled.subscribe();
        let _ = tokio::time::timeout(within, settled.wait_for(|s| *s)).await;
        self.log()
    }

    /// Set the log, or why there is none.
    pub(crate) fn set(&self, log: Result<Arc<dyn Log>, NoLog>) {
        *self.log.write() = log;
        self.settled.send_replace(true);
    }
}
