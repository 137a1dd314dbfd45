//! knit-dispatcher: delivery, the one engine behind every egress (Trigger or Subscription):
//! the HTTP binding, sending with timeouts, retry and backoff, `Retry-After`, dead-lettering,
//! reply routing, flow control (in-flight and rate limits) and commit-after-done; and the one
//! place every event's fate is recorded.
//!
//! It must not know about Knative kinds: it sees logs, egresses and a router.

pub mod binding;
pub mod deliver;
pub mod egress;
pub mod fanout;
pub mod flow;
pub mod observe;
pub mod policy;
pub mod sender;

pub use egress::{EgressRuntime, Target};
pub use fanout::{AllRouter, Router, Routing};
pub use observe::{Fate, Stats};
pub use sender::Sender;

/// Errors of the dispatcher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Result with the dispatcher's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
