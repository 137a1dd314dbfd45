//! One egress at run time: its configuration from the Contract, its filter, its destinations
//! parsed once, and its rate limit.

use std::sync::Arc;

use http::Uri;
use knit_channels::Event;
use knit_crds::contract::Egress;

use crate::lanes::RateLimiter;
use crate::observe::Origin;

/// Decides whether an egress takes an event (a Trigger's filters). The dispatcher calls it on
/// every record it reads; it knows nothing of the filter's language.
pub trait EventFilter: Send + Sync {
    /// Whether the egress takes `event`.
    fn matches(&self, event: &Event) -> bool;
}

/// A destination URL, parsed once.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as configured.
    pub url: String,
    /// The parsed URI for plain `http://` URLs (sent through hyper directly).
    pub uri: Option<Uri>,
    /// The URL again, shared with the journeys that record attempts at it.
    pub shared_url: Arc<str>,
    /// PEM CA certificates an `https://` destination is also verified against (its
    /// Destination's `CACerts`).
    pub ca_certs: Option<Arc<str>>,
    /// OIDC on: the sender's subject and this destination's audience; each request carries
    /// `Authorization: Bearer <token for them>`.
    pub auth: Option<TargetAuth>,
}

/// Who sends to a destination, and the audience the destination expects (OIDC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAuth {
    /// The JWT `sub`.
    pub subject: Arc<str>,
    /// The JWT `aud`.
    pub audience: Arc<str>,
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
            shared_url: Arc::from(url),
            ca_certs: None,
            auth: None,
        }
    }

    /// The same, sending tokens for `subject` and `audience` when both are known.
    pub fn with_auth(mut self, subject: Option<&str>, audience: Option<&str>) -> Self {
        self.auth = match (subject, audience.filter(|a| !a.is_empty())) {
            (Some(s), Some(a)) => Some(TargetAuth {
                subject: Arc::from(s),
                audience: Arc::from(a),
            }),
            _ => None,
        };
        self
    }

    /// The same, verified against `ca_certs` too when it is `https://` (blank: none).
    pub fn with_ca_certs(mut self, ca_certs: Option<&str>) -> Self {
        self.ca_certs = ca_certs.filter(|c| !c.trim().is_empty()).map(Arc::from);
        self
    }
}

/// An egress ready to deliver.
pub struct EgressRuntime {
    /// The configuration from the Contract.
    pub config: Arc<Egress>,
    /// Its filter; `None` takes everything.
    pub filter: Option<Arc<dyn EventFilter>>,
    /// Its rate limit, if any (kept across updates that do not change it).
    pub rate: Option<Arc<RateLimiter>>,
    /// Where events go.
    pub subscriber: Option<Target>,
    /// Where replies go.
    pub reply: Option<Target>,
    /// Where undeliverable events go.
    pub dead_letter_sink: Option<Target>,
    /// Keep retrying a failing dead-letter sink instead of dropping the event (durable logs:
    /// the record's position is held until the sink takes it).
    pub hold_dead_letters: bool,
    /// `config.reference`, shared with the journeys that name it.
    pub reference: Arc<str>,
    /// The Broker or channel it reads from (sources: the source itself), for the journal.
    pub origin: Option<Arc<Origin>>,
}

impl EgressRuntime {
    /// Prepare `config` with `filter`; `previous` lends its rate limiter when the rate is
    /// unchanged.
    pub fn new(
        config: Arc<Egress>,
        filter: Option<Arc<dyn EventFilter>>,
        previous: Option<&EgressRuntime>,
        hold_dead_letters: bool,
    ) -> Self {
        let rate = match previous {
            Some(p) if p.config.rate_limit == config.rate_limit => p.rate.clone(),
            _ => config.rate_limit.map(|r| Arc::new(RateLimiter::new(r))),
        };
        let auth = config.auth.as_ref();
        let subject = auth.map(|a| a.subject.as_str());
        Self {
            subscriber: config.subscriber.as_deref().map(|u| {
                Target::new(u)
                    .with_ca_certs(config.subscriber_ca_certs.as_deref())
                    .with_auth(subject, auth.and_then(|a| a.subscriber_audience.as_deref()))
            }),
            reply: config.reply.as_ref().map(|r| {
                Target::new(&r.url)
                    .with_ca_certs(r.ca_certs.as_deref())
                    .with_auth(subject, auth.and_then(|a| a.reply_audience.as_deref()))
            }),
            dead_letter_sink: config.dead_letter_sink.as_deref().map(|u| {
                Target::new(u)
                    .with_ca_certs(config.dead_letter_sink_ca_certs.as_deref())
                    .with_auth(
                        subject,
                        auth.and_then(|a| a.dead_letter_sink_audience.as_deref()),
                    )
            }),
            filter,
            rate,
            reference: Arc::from(config.reference.as_str()),
            config,
            hold_dead_letters,
            origin: None,
        }
    }

    /// The same, reading from `origin`.
    pub fn with_origin(mut self, origin: Arc<Origin>) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Names of attributes carried to replies (not sent to the subscriber).
    pub fn carried(&self) -> &[String] {
        self.config
            .reply
            .as_ref()
            .map(|r| r.carry.as_slice())
            .unwrap_or_default()
    }

    /// Whether the egress takes `event`.
    pub fn takes(&self, event: &Event) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(event))
    }
}
