//! knit-broker: the HTTP ingress of Brokers and channels, Trigger filters (legacy attributes,
//! the Subscriptions API dialects and CloudEvents SQL), hop limits, and the data plane that
//! applies the Contract.
//!
//! It must not parse YAML or know about resources beyond the Contract.

pub mod cesql;
pub mod dataplane;
pub mod filter;
pub mod ingress;

pub use dataplane::{Config, DataPlane};
