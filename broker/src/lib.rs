//! knit-broker: the HTTP ingress of Brokers, channels and KafkaSinks, Trigger filters (legacy
//! attributes, the Subscriptions API dialects and CloudEvents SQL), hop limits, and the data
//! plane that applies the Contract: a task per ingress owning its log, a task per egress owning
//! its consumer group, and a report of what runs back to the control plane.
//!
//! It must not parse YAML or know about resources beyond the Contract.

pub mod cesql;
pub mod dataplane;
pub mod explain;
pub mod filter;
pub mod ingress;

pub use dataplane::{Config, DataPlane};

/// Errors of the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data plane's HTTP clients or trace exporter could not be built.
    #[error(transparent)]
    Dispatcher(#[from] knit_dispatcher::Error),
}

/// Result with the broker's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
