//! What the ingress handler reads: the routing table (targets by path and by host), the source
//! webhooks on the same listener, the handler's settings and the fate record. The data plane
//! replaces the table whenever a Contract changes; a request reads one table throughout.

use std::collections::HashMap;
use std::sync::Arc;

use knit_dispatcher::Stats;
use knit_dispatcher::webhook::Webhooks;
use parking_lot::RwLock;

use super::Limits;
use super::target::Target;

/// Where requests are routed.
#[derive(Default)]
pub struct Table {
    /// By path (`/ns/name`, `/channels/ns/name`, `/sinks/ns/name`).
    pub by_path: HashMap<String, Arc<Target>>,
    /// By host name (channels).
    pub by_host: HashMap<String, Arc<Target>>,
}

/// The handler's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest event accepted, in bytes.
    pub max_event_size: usize,
    /// Hop limit given to events entering a Broker without one (and the most one may carry).
    pub default_ttl: i32,
    /// Limits of the listener.
    pub limits: Limits,
    /// Traces are exported: an event arriving without a trace context is given one.
    pub traced: bool,
}

/// State shared with the ingress handler.
pub struct Shared {
    table: RwLock<Arc<Table>>,
    /// Source webhooks on this listener.
    pub webhooks: Arc<Webhooks>,
    /// Settings.
    pub settings: Settings,
    /// The fate record (and the journal behind it).
    pub stats: Arc<Stats>,
    /// The OIDC issuers whose tokens are accepted (Knit's own and `--oidc-issuer`s).
    trust: RwLock<Option<Arc<knit_oidc::Trust>>>,
}

impl Shared {
    /// An empty routing table.
    pub(crate) fn new(settings: Settings, webhooks: Arc<Webhooks>, stats: Arc<Stats>) -> Self {
        Self {
            table: RwLock::new(Arc::new(Table::default())),
            webhooks,
            settings,
            stats,
            trust: RwLock::new(None),
        }
    }

    /// The issuers tokens are verified against (OIDC).
    pub fn trust(&self) -> Option<Arc<knit_oidc::Trust>> {
        self.trust.read().clone()
    }

    /// Verify tokens against `trust` from now on.
    pub fn verify_with(&self, trust: Arc<knit_oidc::Trust>) {
        *self.trust.write() = Some(trust);
    }

    /// The current routing table.
    pub fn table(&self) -> Arc<Table> {
        self.table.read().clone()
    }

    /// Route by `table` from now on.
    pub(crate) fn set_table(&self, table: Table) {
        *self.table.write() = Arc::new(table);
    }
}
