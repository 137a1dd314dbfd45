//! knit-sources: the event sources — PingSource, GitHubSource, ApiServerSource,
//! CloudPubSubSource, and the ContainerSource/SinkBinding adapters with `ceOverrides`.
//!
//! Sources produce events and hand them to the dispatcher's sender; they must not deliver on
//! their own (no retries or HTTP clients of their own). Their resources are already admitted and
//! their sinks resolved by the control plane; the adapters arrive with the sources issue.
