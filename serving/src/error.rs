//! The crate's [`Error`]: why a request finds no revision, why the KPA refuses a revision's
//! inputs, why a replica cannot start, why a probe failed. The runtime reports them in the
//! revision's status or the gateway's answer; the messages are what users read there.

use std::time::Duration;

use crate::autoscaler::FieldError;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No route answers the request's host.
    #[error("no route for host {host:?}")]
    NoRoute {
        /// The host, normalised.
        host: String,
    },
    /// The host's route has no revision to send the request to.
    #[error("route for host {host:?} has no traffic target")]
    NoTrafficTarget {
        /// The host, normalised.
        host: String,
    },
    /// `config-autoscaler` or the revision's annotations are invalid for the KPA.
    #[error("{}", join(.errors))]
    AutoscalingRefused {
        /// Every invalid key or annotation.
        errors: Vec<FieldError>,
    },
    /// The revision's autoscaler class is not one Knit runs.
    #[error("class {class} is not run by Knit")]
    UnsupportedClass {
        /// The class as written.
        class: String,
    },
    /// No loopback port is free for a replica.
    #[error("no free port: {source}")]
    NoFreePort {
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The container has no command, so it cannot run as a local process.
    #[error("the container has no command")]
    NoCommand,
    /// The replica's process could not be started.
    #[error("cannot start {program:?}: {source}")]
    Start {
        /// The program as given in the container's command.
        program: String,
        /// Why spawning failed.
        #[source]
        source: std::io::Error,
    },
    /// A probe got no answer in time.
    #[error("probe timed out after {} ms", .limit.as_millis())]
    ProbeTimeout {
        /// The probe's timeout.
        limit: Duration,
    },
    /// A probe could not connect to the replica.
    #[error("cannot connect to port {port}: {source}")]
    ProbeConnect {
        /// The replica's port.
        port: u16,
        /// Why connecting failed.
        #[source]
        source: std::io::Error,
    },
    /// A probe could not send its request.
    #[error("probe write: {source}")]
    ProbeWrite {
        /// Why writing failed.
        #[source]
        source: std::io::Error,
    },
    /// A probe could not read the answer.
    #[error("probe read: {source}")]
    ProbeRead {
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP probe's answer has no status line.
    #[error("probe GET {path}: no HTTP status in {head:?}")]
    ProbeNoStatus {
        /// The probed path.
        path: String,
        /// The start of the answer.
        head: String,
    },
    /// An HTTP probe answered neither 2xx nor 3xx.
    #[error("probe GET {path} answered {status}")]
    ProbeStatus {
        /// The probed path.
        path: String,
        /// The status code.
        status: u16,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
