//! knit-serving: Knative Serving — revisions as supervised local processes (Deployments in a
//! cluster), the gateway that routes by Host and traffic split, the proxy that counts
//! concurrency, the KPA autoscaler and the activator that scales from zero.
//!
//! It stands alone: it must not depend on the eventing crates. Serving resources are already
//! admitted and stored by the control plane; this crate's runtime arrives with the serving issue.
