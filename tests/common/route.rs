//! How events reach the subscriber under test: through a Broker and a Trigger, or through a
//! channel (of a given backend) and a Subscription. Delivery tests are written once against
//! [`Via`] and run for each.

use super::sink::Sink;
use super::{Knit, broker, indent, trigger};

/// A channel implementation under test.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// InMemoryChannel.
    Memory,
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

    /// The API plural of its kind.
    pub fn plural(self) -> &'static str {
        match self {
            Backend::Memory => "inmemorychannels",
        }
    }

    /// Its `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            Backend::Memory => "messaging.knative.dev/v1",
        }
    }

    /// Its kind.
    pub fn kind(self) -> &'static str {
        match self {
            Backend::Memory => "InMemoryChannel",
        }
    }

    /// Extra `knit run` flags it needs.
    pub fn flags(self) -> Vec<String> {
        Vec::new()
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

/// The path events take to the subscriber.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// Broker `b`, Trigger `t`.
    Trigger,
    /// Channel `c` of this backend, Subscription `s`.
    Subscription(Backend),
}

impl Via {
    fn container(self) -> (String, String) {
        match self {
            Via::Trigger => ("b.yaml".into(), broker("b", "")),
            Via::Subscription(b) => ("c.yaml".into(), b.channel("c", "")),
        }
    }

    fn route(self, sink_url: &str, extra: &str) -> (String, String) {
        match self {
            Via::Trigger => ("t.yaml".into(), trigger("t", "b", sink_url, extra)),
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

    fn flags(self) -> Vec<String> {
        match self {
            Via::Trigger => Vec::new(),
            Via::Subscription(b) => b.flags(),
        }
    }

    /// Wait for the route's pieces to be Ready; the address to send events to.
    pub async fn ready(self, knit: &Knit) -> String {
        match self {
            Via::Trigger => {
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
        let own = self.flags();
        let mut all: Vec<&str> = own.iter().map(String::as_str).collect();
        all.extend(flags);
        let knit = Knit::start_with(
            &[(cf.as_str(), cy.as_str()), (rf.as_str(), ry.as_str())],
            &all,
        );
        let url = self.ready(&knit).await;
        (knit, url)
    }

    /// Start knit with only the Broker or channel; [`Via::add_route`] adds the rest later.
    pub fn start_without_route(self) -> Knit {
        let (cf, cy) = self.container();
        let own = self.flags();
        let flags: Vec<&str> = own.iter().map(String::as_str).collect();
        Knit::start_with(&[(cf.as_str(), cy.as_str())], &flags)
    }

    /// Add the Trigger or Subscription to a running knit; the address once Ready.
    pub async fn add_route(self, knit: &Knit, sink: &Sink) -> String {
        let (rf, ry) = self.route(&sink.url, "");
        knit.write(&rf, &ry);
        self.ready(knit).await
    }
}
