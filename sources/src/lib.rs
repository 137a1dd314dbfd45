//! knit-sources: the event sources — PingSource, GitHubSource, ApiServerSource,
//! CloudPubSubSource, ContainerSource (with SinkBinding) — run from the Contract's sources
//! section, one module per source with the same shape: a `run` task that takes its config
//! from the Contract, reports its state back under the source's UID, and emits events.
//!
//! Sources emit through [`emit::Emitter`], which applies `ceOverrides` and hands each event
//! to the dispatcher's one delivery entry ([`knit_dispatcher::send()`]): retries, dead letters
//! and fates are the dispatcher's. Sources must not open HTTP clients to sinks, and must not
//! know about Brokers, Triggers or the control plane.

pub mod apiserver;
pub mod backoff;
pub mod container;
pub mod emit;
pub mod github;
pub mod lead;
pub mod logs;
pub mod ping;
pub mod pubsub;
mod runtime;
pub mod token_file;

pub use runtime::{Config, Ctx, FilterFactory, Runtime, Stop, StopSignal};

/// Errors of the sources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot run.
    #[error("{0}")]
    Config(String),
    /// An external system failed.
    #[error("{0}")]
    Upstream(String),
    /// A PingSource schedule that is not a cron expression.
    #[error("invalid schedule {pattern:?}: {source}")]
    Schedule {
        /// The schedule as written.
        pattern: String,
        /// What the cron parser found.
        #[source]
        source: croner::errors::CronError,
    },
    /// A PingSource time zone that is not in the time zone database.
    #[error("unknown time zone {zone:?}: {source}")]
    TimeZone {
        /// The zone as written.
        zone: String,
        /// What the lookup found.
        #[source]
        source: jiff::Error,
    },
    /// A PingSource `dataBase64` that is not base64.
    #[error("spec.dataBase64 is not base64: {0}")]
    DataBase64(#[source] base64::DecodeError),
}

/// Result with the sources' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
