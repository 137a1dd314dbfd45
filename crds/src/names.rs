//! Well-known names: annotations, labels, defaults.

/// Annotation selecting a Broker's class.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
/// The default Broker class (channel-based, in-memory channel by default).
pub const DEFAULT_BROKER_CLASS: &str = "MTChannelBasedBroker";
/// Broker classes Knit runs.
pub const BROKER_CLASSES: &[&str] = &[
    "MTChannelBasedBroker",
    "Kafka",
    "KafkaNamespaced",
    "NatsJetStreamBroker",
];
/// The ConfigMap a Broker's `spec.config` defaults to.
pub const DEFAULT_BROKER_CONFIG: &str = "config-br-default-channel";
/// Namespace of Knative's own configuration.
pub const SYSTEM_NAMESPACE: &str = "knative-eventing";
/// Label set on Triggers naming their Broker.
pub const BROKER_LABEL: &str = "eventing.knative.dev/broker";
/// Trigger annotation naming an object whose readiness gates the Trigger.
pub const DEPENDENCY_ANNOTATION: &str = "knative.dev/dependency";
/// Trigger annotation: most deliveries in flight (default 100).
pub const MAX_IN_FLIGHT_ANNOTATION: &str = "knit.dev/max-in-flight";
/// Trigger annotation: most deliveries per second.
pub const RATE_LIMIT_ANNOTATION: &str = "knit.dev/rate-limit";
/// Annotation on a generated object naming the object it was derived from.
pub const OWNER_ANNOTATION: &str = "knit.dev/owner";
