//! Well-known names: annotations, labels, defaults.

/// Annotation selecting a Broker's class.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
/// The default Broker class (channel-based, in-memory channel by default).
pub const DEFAULT_BROKER_CLASS: &str = "MTChannelBasedBroker";
/// The Broker class of Knative's Kafka broker (knative-extensions/eventing-kafka-broker).
pub const KAFKA_BROKER_CLASS: &str = "Kafka";
/// The namespaced variant of Knative's Kafka broker class (its data plane runs per namespace).
pub const KAFKA_NAMESPACED_BROKER_CLASS: &str = "KafkaNamespaced";
/// The Broker class of Knit's NATS JetStream broker.
pub const NATS_JETSTREAM_BROKER_CLASS: &str = "NatsJetStreamBroker";
/// Broker classes Knit runs.
pub const BROKER_CLASSES: &[&str] = &[
    DEFAULT_BROKER_CLASS,
    KAFKA_BROKER_CLASS,
    KAFKA_NAMESPACED_BROKER_CLASS,
    NATS_JETSTREAM_BROKER_CLASS,
];
/// The ConfigMap a Broker's `spec.config` defaults to.
pub const DEFAULT_BROKER_CONFIG: &str = "config-br-default-channel";
/// The ConfigMap a Kafka-class Broker's `spec.config` names by convention (in
/// `knative-eventing`), as Knative's Kafka broker installs it.
pub const KAFKA_BROKER_CONFIG: &str = "kafka-broker-config";
/// Key of [`KAFKA_BROKER_CONFIG`]: comma-separated Kafka bootstrap servers.
pub const KAFKA_BOOTSTRAP_SERVERS_KEY: &str = "bootstrap.servers";
/// Key of [`KAFKA_BROKER_CONFIG`]: partitions of each Broker topic Knit creates.
pub const KAFKA_DEFAULT_TOPIC_PARTITIONS_KEY: &str = "default.topic.partitions";
/// Key of [`KAFKA_BROKER_CONFIG`]: replication factor of each Broker topic Knit creates.
pub const KAFKA_DEFAULT_TOPIC_REPLICATION_FACTOR_KEY: &str = "default.topic.replication.factor";
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

/// Trigger annotation of Knative's Kafka broker: the order in which the Trigger's events are
/// delivered. Values are [`DELIVERY_ORDERS`]; Knative compares them ignoring case (use
/// [`delivery_order`] to read one).
pub const DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";
/// [`DELIVERY_ORDER_ANNOTATION`] value: one event in flight per partition (Knative's).
pub const DELIVERY_ORDER_ORDERED: &str = "ordered";
/// [`DELIVERY_ORDER_ANNOTATION`] value: events in flight concurrently (Knative's default).
pub const DELIVERY_ORDER_UNORDERED: &str = "unordered";
/// [`DELIVERY_ORDER_ANNOTATION`] value, Knit's own: one event in flight per partition key, so
/// keys run concurrently and each key keeps its order.
pub const DELIVERY_ORDER_ORDERED_BY_KEY: &str = "ordered-by-key";
/// Every value [`DELIVERY_ORDER_ANNOTATION`] accepts.
pub const DELIVERY_ORDERS: &[&str] = &[
    DELIVERY_ORDER_ORDERED,
    DELIVERY_ORDER_UNORDERED,
    DELIVERY_ORDER_ORDERED_BY_KEY,
];

/// The canonical (lower-case) delivery order a [`DELIVERY_ORDER_ANNOTATION`] value names, or
/// `None` when it names none. Case is ignored, as Knative's Kafka broker ignores it.
pub fn delivery_order(value: &str) -> Option<&'static str> {
    DELIVERY_ORDERS
        .iter()
        .copied()
        .find(|o| o.eq_ignore_ascii_case(value))
}

/// Broker annotation of Knative's Kafka broker: use this existing topic instead of creating one.
pub const EXTERNAL_TOPIC_ANNOTATION: &str = "kafka.eventing.knative.dev/external.topic";

/// Trigger and Subscription annotation, Knit's own: what happens when the egress falls further
/// behind its log than its budget allows. Values are [`OVERFLOW_POLICIES`].
pub const OVERFLOW_ANNOTATION: &str = "knit.dev/overflow";
/// [`OVERFLOW_ANNOTATION`] value: the egress skips events it has fallen too far behind on,
/// counting them; other egresses and the ingress are not slowed.
pub const OVERFLOW_SHED: &str = "shed";
/// [`OVERFLOW_ANNOTATION`] value: the log's ingress pushes back until the egress catches up.
pub const OVERFLOW_BLOCK: &str = "block";
/// Every value [`OVERFLOW_ANNOTATION`] accepts.
pub const OVERFLOW_POLICIES: &[&str] = &[OVERFLOW_SHED, OVERFLOW_BLOCK];

/// CloudEvent `type` of the events a KafkaSource sends.
pub const KAFKA_SOURCE_EVENT_TYPE: &str = "dev.knative.kafka.event";
/// Prefix of the consumer group a KafkaSource gets when `spec.consumerGroup` is empty.
pub const KAFKA_SOURCE_CONSUMER_GROUP_PREFIX: &str = "knative-kafka-source-";

/// CloudEvent `source` of the events a KafkaSource sends from `topic`, as Knative writes it:
/// `/apis/v1/namespaces/<namespace>/kafkasources/<name>#<topic>`.
pub fn kafka_source_event_source(namespace: &str, name: &str, topic: &str) -> String {
    format!("/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_orders_ignore_case() {
        assert_eq!(delivery_order("Ordered"), Some(DELIVERY_ORDER_ORDERED));
        assert_eq!(delivery_order("unordered"), Some(DELIVERY_ORDER_UNORDERED));
        assert_eq!(
            delivery_order("ordered-by-key"),
            Some(DELIVERY_ORDER_ORDERED_BY_KEY)
        );
        assert_eq!(delivery_order("sorted"), None);
        assert_eq!(delivery_order(""), None);
    }

    #[test]
    fn kafka_source_event_sources_follow_knative() {
        assert_eq!(
            kafka_source_event_source("ns", "src", "orders"),
            "/apis/v1/namespaces/ns/kafkasources/src#orders"
        );
    }

    #[test]
    fn broker_classes_include_kafka() {
        assert!(BROKER_CLASSES.contains(&KAFKA_BROKER_CLASS));
        assert!(BROKER_CLASSES.contains(&DEFAULT_BROKER_CLASS));
    }
}
