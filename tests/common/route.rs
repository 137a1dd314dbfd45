//! How events reach the subscriber under test: through a Broker and a Trigger, or through a
//! channel and a Subscription, on a given log backend. Delivery tests are written once against
//! [`Via`] (and channel tests against [`Backend`]) and run for each.

use super::sink::Sink;
use super::{Knit, broker, indent, trigger};

/// A log backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// In memory: InMemoryChannel, the default Broker.
    Memory,
    /// Kafka (a nisshi broker started for the test): KafkaChannel, Brokers of class `Kafka`.
    #[cfg(feature = "kafka")]
    Kafka,
    /// NATS JetStream (a nats-server started for the test): NatsJetStreamChannel, Brokers of
    /// class `NatsJetStreamBroker`.
    #[cfg(feature = "nats")]
    Nats,
}

impl Backend {
    /// The manifest of a channel named `name` with extra `spec` lines.
    pub fn channel(self, name: &str, extra_spec: &str) -> String {
        format!(
            "apiVersion: {}\nkind: {}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{}\n",
            self.api_version(),
            self.kind(),
            indent(extra_spec, 2)
        )
    }

    /// The API plural of its channel kind.
    pub fn plural(self) -> &'static str {
        match self {
            Backend::Memory => "inmemorychannels",
            #[cfg(feature = "kafka")]
            Backend::Kafka => "kafkachannels",
            #[cfg(feature = "nats")]
            Backend::Nats => "natsjetstreamchannels",
        }
    }

    /// Its channel's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            Backend::Memory => "messaging.knative.dev/v1",
            #[cfg(feature = "kafka")]
            Backend::Kafka => "messaging.knative.dev/v1beta1",
            #[cfg(feature = "nats")]
            Backend::Nats => "messaging.knative.dev/v1alpha1",
        }
    }

    /// Its channel kind.
    pub fn kind(self) -> &'static str {
        match self {
            Backend::Memory => "InMemoryChannel",
            #[cfg(feature = "kafka")]
            Backend::Kafka => "KafkaChannel",
            #[cfg(feature = "nats")]
            Backend::Nats => "NatsJetStreamChannel",
        }
    }

    /// The manifest of a Broker named `name` on this backend, with extra `spec` lines.
    pub fn broker(self, name: &str, extra_spec: &str) -> String {
        match self {
            Backend::Memory => broker(name, extra_spec),
            #[cfg(feature = "kafka")]
            Backend::Kafka => with_class(broker(name, extra_spec), "Kafka"),
            #[cfg(feature = "nats")]
            Backend::Nats => with_class(broker(name, extra_spec), "NatsJetStreamBroker"),
        }
    }

    /// Start knit with `files` and `flags` on this backend (Kafka, NATS: a server for this
    /// test).
    pub fn start(self, files: &[(&str, &str)], flags: &[&str]) -> Knit {
        match self {
            Backend::Memory => Knit::start_with(files, flags),
            #[cfg(feature = "kafka")]
            Backend::Kafka => Knit::start_with_kafka(files, flags),
            #[cfg(feature = "nats")]
            Backend::Nats => Knit::start_with_nats(files, flags),
        }
    }

    /// A Subscription `name` to channel `channel` with `spec` lines.
    pub fn subscription(self, name: &str, channel: &str, spec: &str) -> String {
        format!(
            "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  channel: {{apiVersion: {}, kind: {}, name: {channel}}}\n{}\n",
            self.api_version(),
            self.kind(),
            indent(spec, 2)
        )
    }
}

/// A Broker manifest with the `eventing.knative.dev/broker.class` annotation `class`.
#[cfg(any(feature = "kafka", feature = "nats"))]
fn with_class(broker: String, class: &str) -> String {
    broker.replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations:\n    eventing.knative.dev/broker.class: {class}\n"),
        1,
    )
}

/// The path events take to the subscriber.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// Broker `b` on this backend, Trigger `t`.
    Trigger(Backend),
    /// Channel `c` of this backend, Subscription `s`.
    Subscription(Backend),
}

impl Via {
    /// The backend.
    pub fn backend(self) -> Backend {
        match self {
            Via::Trigger(b) | Via::Subscription(b) => b,
        }
    }

    fn container(self) -> (String, String) {
        match self {
            Via::Trigger(b) => ("b.yaml".into(), b.broker("b", "")),
            Via::Subscription(b) => ("c.yaml".into(), b.channel("c", "")),
        }
    }

    fn route(self, sink_url: &str, extra: &str) -> (String, String) {
        match self {
            Via::Trigger(_) => ("t.yaml".into(), trigger("t", "b", sink_url, extra)),
            Via::Subscription(b) => (
                "s.yaml".into(),
                b.subscription(
                    "s",
                    "c",
                    &format!("subscriber: {{uri: '{sink_url}'}}\n{extra}"),
                ),
            ),
        }
    }

    /// Wait for the route's pieces to be Ready; the address to send events to.
    pub async fn ready(self, knit: &Knit) -> String {
        match self {
            Via::Trigger(_) => {
                knit.ready("triggers", "t").await;
                knit.address("brokers", "b").await
            }
            Via::Subscription(b) => {
                knit.ready("subscriptions", "s").await;
                knit.address(b.plural(), "c").await
            }
        }
    }

    /// Start knit with the route to `sink` (extra spec lines `extra` on the Trigger or
    /// Subscription); returns it with the address once Ready.
    pub async fn start(self, sink: &Sink, extra: &str, flags: &[&str]) -> (Knit, String) {
        let (cf, cy) = self.container();
        let (rf, ry) = self.route(&sink.url, extra);
        let knit = self.backend().start(
            &[(cf.as_str(), cy.as_str()), (rf.as_str(), ry.as_str())],
            flags,
        );
        let url = self.ready(&knit).await;
        (knit, url)
    }

    /// Start knit with only the Broker or channel; [`Via::add_route`] adds the rest later.
    pub fn start_without_route(self) -> Knit {
        let (cf, cy) = self.container();
        self.backend().start(&[(cf.as_str(), cy.as_str())], &[])
    }

    /// Add the Trigger or Subscription to a running knit; the address once Ready.
    pub async fn add_route(self, knit: &Knit, sink: &Sink) -> String {
        let (rf, ry) = self.route(&sink.url, "");
        knit.write(&rf, &ry);
        self.ready(knit).await
    }
}
