//! One egress at run time: its configuration from the Contract, its destinations parsed once,
//! and its flow control.

use http::{HeaderValue, Uri};
use knit_crds::contract::Egress;

use crate::flow::FlowControl;

/// A destination URL, parsed once.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as configured.
    pub url: String,
    /// The parsed URI for plain `http://` URLs (sent through hyper directly).
    pub uri: Option<Uri>,
}

impl Target {
    /// Parse `url`.
    pub fn new(url: &str) -> Self {
        let uri = if url.starts_with("http://") {
            url.parse().ok()
        } else {
            None
        };
        Self {
            url: url.to_string(),
            uri,
        }
    }
}

/// An egress ready to deliver.
pub struct EgressRuntime {
    /// The configuration from the Contract.
    pub config: Egress,
    /// Its limits (kept across Contract updates when they do not change).
    pub flow: FlowControl,
    /// Where events go.
    pub subscriber: Option<Target>,
    /// Where replies go.
    pub reply: Option<Target>,
    /// Where undeliverable events go.
    pub dead_letter_sink: Option<Target>,
    /// The `Kn-Namespace` header value.
    pub namespace: Option<HeaderValue>,
}

impl EgressRuntime {
    /// Prepare `config` with `flow`.
    pub fn new(config: Egress, flow: FlowControl) -> Self {
        Self {
            subscriber: config.subscriber.as_deref().map(Target::new),
            reply: config.reply.as_ref().map(|r| Target::new(&r.url)),
            dead_letter_sink: config.dead_letter_sink.as_deref().map(Target::new),
            namespace: HeaderValue::from_str(&config.namespace).ok(),
            config,
            flow,
        }
    }

    /// Names of attributes carried to replies (not sent to the subscriber).
    pub fn carried(&self) -> &[String] {
        self.config
            .reply
            .as_ref()
            .map(|r| r.carry.as_slice())
            .unwrap_or_default()
    }
}
