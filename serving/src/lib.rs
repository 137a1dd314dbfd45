//! knit-serving: Knative Serving — revisions as supervised local processes (Deployments in a
//! cluster), the gateway that routes by Host and traffic split, the proxy that counts
//! concurrency, the KPA autoscaler and the activator that scales from zero.
//!
//! It stands alone: it must not depend on the eventing crates (only on `knit-crds` for the
//! Contract's serving section and the report type, and on `knit-wire` for HTTP/1.1 framing).
//! The control plane computes what to run; this crate runs it and reports back per Revision
//! UID.

pub mod autoscaler;
mod error;
pub mod runtime;

pub use error::{Error, Result};
