//! knit-dispatcher: delivery, the one engine behind every egress (Trigger, Subscription, and
//! later sources): the per-egress consumer loop over any log backend, ordering and in-flight
//! limits, the HTTP binding, sending with timeouts, retry and backoff (in memory or through the
//! log's own retry path), `Retry-After`, dead-lettering, reply routing, settle-then-commit;
//! and the one place every event's fate is recorded. Sources send through [`send()`], the same
//! engine without a log.
//!
//! It must not know about Knative kinds: it sees consumers, egress configurations and filters.

pub mod binding;
pub mod deliver;
pub mod egress;
pub mod engine;
pub mod hosts;
mod http1;
pub mod lanes;
pub mod observe;
pub mod policy;
pub mod report;
pub mod send;
pub mod sender;
pub mod webhook;

pub use egress::{EgressRuntime, EventFilter, Target};
pub use engine::{EgressProbe, EgressTask, Shared};
pub use hosts::{Listeners, LocalHosts};
pub use observe::{Counters, Fate, Stats};
pub use report::Reporter;
pub use send::{Destination, send};
pub use sender::{Sender, Trust, TrustError};

/// Errors of the dispatcher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The `https://` client could not be built from the trust settings (e.g. CA certificates
    /// that are not PEM).
    #[error("cannot build the HTTPS client: {0}")]
    Trust(#[source] sender::TrustError),
}

/// Result with the dispatcher's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
