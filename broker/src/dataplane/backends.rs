//! Opening the log an ingress's Contract entry names, through the backends' one factory
//! ([`knit_channels::Backends`]): what the ingress does with the log decides its role.

use std::sync::Arc;

use knit_channels::{Backends, Log, LogError, LogSpec, Role};
use knit_crds::contract::{Ingress, IngressKind};

/// How an ingress of `kind` uses its log: Brokers and channels own their topics, a sink
/// writes to someone else's, a source only reads.
fn role(kind: IngressKind) -> Role {
    match kind {
        IngressKind::Broker | IngressKind::Channel => Role::Owner,
        IngressKind::Sink => Role::Writer,
        IngressKind::Source => Role::Reader,
    }
}

/// The log `ingress` names.
pub(crate) fn spec(ingress: &Ingress) -> LogSpec<'_> {
    LogSpec {
        backend: &ingress.backend,
        owner: &ingress.uid,
        role: role(ingress.kind),
    }
}

/// Open (creating its topic if needed) the log of `ingress`.
pub(crate) async fn open(ingress: &Ingress, backends: &Backends) -> Result<Arc<dyn Log>, LogError> {
    backends.open(&spec(ingress)).await
}

/// Whether two Contract entries for the same address keep the same log (a recreated Broker
/// hands its topic, and what it holds, over to its successor).
pub(crate) fn same_log(a: &Ingress, b: &Ingress) -> bool {
    knit_channels::backends::same_log(&spec(a), &spec(b))
}
