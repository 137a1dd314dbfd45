//! Reconciling: a pure function from resources to statuses and the Contract.
//!
//! No I/O happens here, so the same code serves the standalone mode and a cluster, and every
//! rule is unit-testable. The caller supplies the environment (listener addresses), the time,
//! and the previous conditions (to keep `lastTransitionTime` stable).

mod backends;
mod children;
mod conditions;
mod contract;
mod defaults;
mod encryption;
mod eventing;
mod flow_policies;
mod flows;
mod kafka_sink;
mod kafka_source;
mod messaging;
mod oidc;
mod resolve;
mod serving;
mod source_adapters;
mod sources;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use knit_crds::api::duck::{Addressable, Condition};
use knit_crds::contract::{AuthorizationMode, Backend, Contract, Report, TransportEncryption};
use knit_crds::{Object, ObjectKey};

pub use encryption::TlsEnv;

/// What the reconciler needs to know about the running process.
#[derive(Clone, Debug)]
pub struct Env {
    /// Base URL of the broker/channel ingress, e.g. `http://127.0.0.1:8080`.
    pub ingress_url: String,
    /// Base URL of the serving gateway, e.g. `http://127.0.0.1:8081`: its port goes into every
    /// Knative Service's URL (`http://hello.default.localhost:8081`).
    pub gateway_url: String,
    /// `knit run --kafka`: the default Kafka bootstrap servers, making Kafka the default log.
    pub kafka: Option<String>,
    /// `knit run --nats`: the default NATS server, making JetStream the default log.
    pub nats: Option<NatsEnv>,
    /// `knit run --tls-cert`: the HTTPS listeners and the CA their addresses publish; `None`
    /// when TLS is off.
    pub tls: Option<TlsEnv>,
}

/// The NATS server `knit run --nats` names, and how to connect to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsEnv {
    /// Server URL(s), comma-separated; a user and password or a token may be in the URL.
    pub url: String,
    /// `--nats-creds`: a credentials file (JWT and NKey seed).
    pub creds_file: Option<String>,
    /// `--nats-ca`: a CA file (PEM) for the servers' TLS certificates.
    pub ca_file: Option<String>,
}

/// Conditions from the previous reconcile, by object.
pub type PreviousConditions = HashMap<ObjectKey, Vec<Condition>>;

/// Where the previous reconcile's conditions are read from (to keep `lastTransitionTime` where
/// a condition did not change).
pub trait Previous {
    /// The conditions `key` had, if it existed.
    fn conditions(&self, key: &ObjectKey) -> Option<Before<'_>>;
}

/// One object's conditions in the previous reconcile.
#[derive(Clone, Copy)]
pub enum Before<'a> {
    /// As they were.
    Conditions(&'a [Condition]),
    /// Only what [`stamp`] reads of them.
    Remembered(&'a [Remembered]),
}

/// What the next reconcile reads of a condition: its type, its status and since when. The
/// strings are shared: a handful of types and statuses, and one time per pass.
#[derive(Clone, Debug)]
pub struct Remembered {
    /// The condition's type.
    pub type_: Arc<str>,
    /// Its status.
    pub status: Arc<str>,
    /// Its `lastTransitionTime`.
    pub since: Option<Arc<str>>,
}

impl Before<'_> {
    /// `Some(lastTransitionTime)` when the condition `type_` had `status` already.
    pub(crate) fn unchanged_since(self, type_: &str, status: &str) -> Option<Option<String>> {
        match self {
            Before::Conditions(cs) => cs
                .iter()
                .find(|p| p.type_ == type_)
                .filter(|p| p.status == status)
                .map(|p| p.last_transition_time.clone()),
            Before::Remembered(rs) => rs
                .iter()
                .find(|p| &*p.type_ == type_)
                .filter(|p| &*p.status == status)
                .map(|p| p.since.as_deref().map(str::to_string)),
        }
    }
}

impl Previous for PreviousConditions {
    fn conditions(&self, key: &ObjectKey) -> Option<Before<'_>> {
        self.get(key).map(|cs| Before::Conditions(cs))
    }
}

/// The result of reconciling.
#[derive(Debug, Default)]
pub struct Output {
    /// Every object with its status: the user's plus the ones derived from them (a Channel's
    /// backing channel, a Sequence's channels and subscriptions, ...), sorted by key.
    pub objects: Vec<Object>,
    /// The data-plane configuration (generation 0: the caller numbers it).
    pub contract: Contract,
    /// The Revisions the control plane stamped (no status): pass them back with the next
    /// input, after the stored objects, so that past generations keep existing (Knative keeps
    /// them as API objects; see `serving::revisions`).
    pub history: Vec<Object>,
}

/// The objects being reconciled, by key.
pub(crate) struct World<'a> {
    pub(crate) env: &'a Env,
    pub(crate) objects: BTreeMap<ObjectKey, Object>,
    /// `status.address.url` of every addressable object that has one.
    pub(crate) addresses: HashMap<ObjectKey, String>,
    /// The log of every Broker and channel that can have one.
    pub(crate) backends: BTreeMap<ObjectKey, Backend>,
    /// What the data plane made of the previous Contract.
    pub(crate) report: &'a Report,
    /// The sources the data plane runs (those whose sink resolves).
    pub(crate) sources: Vec<knit_crds::contract::Source>,
    /// The time of this reconcile (RFC 3339), for objects created now (Revisions).
    pub(crate) now: &'a str,
    /// `transport-encryption` from `config-features`: which addresses Addressables get.
    pub(crate) encryption: TransportEncryption,
    /// `authentication-oidc` enabled: `Some(default-authorization-mode)`.
    pub(crate) oidc: Option<AuthorizationMode>,
}

/// Reconcile `input` (objects as stored: spec and metadata, no status), with what the data plane
/// reported of the previous Contract.
#[cfg(test)]
pub fn reconcile(
    input: &[Object],
    prev: &dyn Previous,
    env: &Env,
    report: &Report,
    now: &str,
) -> Output {
    reconcile_owned(input.to_vec(), prev, env, report, now)
}

/// Reconcile `input` (objects as stored: spec and metadata, no status), with what the data plane
/// reported of the previous Contract.
pub fn reconcile_owned(
    mut input: Vec<Object>,
    prev: &dyn Previous,
    env: &Env,
    report: &Report,
    now: &str,
) -> Output {
    for o in input
        .iter_mut()
        .filter(|o| o.kind() == knit_crds::Kind::Revision)
    {
        o.clear_status();
    }
    let durable_channels = if env.kafka.is_some() {
        Some(knit_crds::Kind::KafkaChannel)
    } else if env.nats.is_some() {
        Some(knit_crds::Kind::NatsJetStreamChannel)
    } else {
        None
    };
    defaults::channel_templates(&mut input, durable_channels);
    let children = children::derive(&input);
    let mut objects: BTreeMap<ObjectKey, Object> =
        input.into_iter().map(|o| (o.key(), o)).collect();
    for child in children {
        // A user's own object of the same name wins; the parent reports the conflict.
        objects.entry(child.key()).or_insert(child);
    }
    let mut world = World {
        env,
        objects,
        addresses: HashMap::new(),
        backends: BTreeMap::new(),
        report,
        sources: Vec::new(),
        now,
        encryption: TransportEncryption::Disabled,
        oidc: None,
    };
    world.encryption = encryption::transport_encryption(&world);
    world.oidc = oidc::settings(&world);
    flow_policies::derive(&mut world);
    world.addresses = resolve::addresses(&world);

    eventing::brokers(&mut world);
    messaging::channel_impls(&mut world);
    kafka_sink::kafka_sinks(&mut world);
    eventing::triggers(&mut world);
    messaging::subscriptions(&mut world);
    messaging::channel_subscribers(&mut world);
    messaging::generic_channels(&mut world);
    flows::flows(&mut world);
    sources::sources(&mut world);
    eventing::event_types(&mut world);
    serving::serving(&mut world);
    oidc::policies(&mut world);

    let contract = contract::build(&world);
    let history = serving::revisions::history(&world);
    let mut objects: Vec<Object> = world.objects.into_values().collect();
    for o in &mut objects {
        stamp(o, prev, now);
    }
    Output {
        objects,
        contract,
        history,
    }
}

/// The mutable common status block of any object that has one.
fn status_mut(o: &mut Object) -> Option<&mut knit_crds::api::duck::Status> {
    Some(match o {
        Object::Broker(x) => &mut x.status.as_mut()?.status,
        Object::Trigger(x) => &mut x.status.as_mut()?.status,
        Object::EventType(x) => &mut x.status.as_mut()?.status,
        Object::KafkaSink(x) => &mut x.status.as_mut()?.status,
        Object::EventPolicy(x) => &mut x.status.as_mut()?.status,
        Object::Channel(x) => &mut x.status.as_mut()?.channelable.status,
        Object::InMemoryChannel(x) => &mut x.status.as_mut()?.status,
        Object::KafkaChannel(x) => &mut x.status.as_mut()?.status,
        Object::NatsJetStreamChannel(x) => &mut x.status.as_mut()?.status,
        Object::Subscription(x) => &mut x.status.as_mut()?.status,
        Object::Sequence(x) => &mut x.status.as_mut()?.status,
        Object::Parallel(x) => &mut x.status.as_mut()?.status,
        Object::PingSource(x) => &mut x.status.as_mut()?.status,
        Object::ApiServerSource(x) => &mut x.status.as_mut()?.source.status,
        Object::SinkBinding(x) => &mut x.status.as_mut()?.status,
        Object::ContainerSource(x) => &mut x.status.as_mut()?.status,
        Object::GitHubSource(x) => &mut x.status.as_mut()?.source.status,
        Object::KafkaSource(x) => &mut x.status.as_mut()?.source.status,
        Object::CloudPubSubSource(x) => &mut x.status.as_mut()?.source.status,
        Object::Service(x) => &mut x.status.as_mut()?.status,
        Object::Configuration(x) => &mut x.status.as_mut()?.status,
        Object::Revision(x) => &mut x.status.as_mut()?.status,
        Object::Route(x) => &mut x.status.as_mut()?.status,
        Object::DomainMapping(x) => &mut x.status.as_mut()?.status,
        Object::ConfigMap(_) | Object::Secret(_) => return None,
    })
}

/// Set `observedGeneration` and keep `lastTransitionTime` where a condition did not change.
fn stamp(o: &mut Object, prev: &dyn Previous, now: &str) {
    let key = o.key();
    let generation = o.meta().generation;
    let before = prev.conditions(&key);
    if let Some(status) = status_mut(o) {
        status.observed_generation = generation;
        for c in &mut status.conditions {
            let since = before.and_then(|b| b.unchanged_since(&c.type_, &c.status));
            c.last_transition_time = since.unwrap_or_else(|| Some(now.to_string()));
        }
    }
}

/// The common status block of any object that has one.
pub(crate) fn status_ref(o: &Object) -> Option<&knit_crds::api::duck::Status> {
    Some(match o {
        Object::Broker(x) => &x.status.as_ref()?.status,
        Object::Trigger(x) => &x.status.as_ref()?.status,
        Object::EventType(x) => &x.status.as_ref()?.status,
        Object::KafkaSink(x) => &x.status.as_ref()?.status,
        Object::EventPolicy(x) => &x.status.as_ref()?.status,
        Object::Channel(x) => &x.status.as_ref()?.channelable.status,
        Object::InMemoryChannel(x) => &x.status.as_ref()?.status,
        Object::KafkaChannel(x) => &x.status.as_ref()?.status,
        Object::NatsJetStreamChannel(x) => &x.status.as_ref()?.status,
        Object::Subscription(x) => &x.status.as_ref()?.status,
        Object::Sequence(x) => &x.status.as_ref()?.status,
        Object::Parallel(x) => &x.status.as_ref()?.status,
        Object::PingSource(x) => &x.status.as_ref()?.status,
        Object::ApiServerSource(x) => &x.status.as_ref()?.source.status,
        Object::SinkBinding(x) => &x.status.as_ref()?.status,
        Object::ContainerSource(x) => &x.status.as_ref()?.status,
        Object::GitHubSource(x) => &x.status.as_ref()?.source.status,
        Object::KafkaSource(x) => &x.status.as_ref()?.source.status,
        Object::CloudPubSubSource(x) => &x.status.as_ref()?.source.status,
        Object::Service(x) => &x.status.as_ref()?.status,
        Object::Configuration(x) => &x.status.as_ref()?.status,
        Object::Revision(x) => &x.status.as_ref()?.status,
        Object::Route(x) => &x.status.as_ref()?.status,
        Object::DomainMapping(x) => &x.status.as_ref()?.status,
        Object::ConfigMap(_) | Object::Secret(_) => return None,
    })
}

/// The conditions of any object (empty when it has no status).
pub(crate) fn conditions_of(o: &Object) -> &[Condition] {
    status_ref(o)
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

impl World<'_> {
    /// Set `Addressable` from the object's address: `Some(status.address)` when it has one
    /// (`http` in `permissive` mode, as Knative), otherwise the condition fails with `reason`
    /// and `message` (or says that strict encryption needs a certificate).
    pub(crate) fn addressable(
        &self,
        key: &ObjectKey,
        c: &mut conditions::Conditions,
        reason: &str,
        message: &str,
    ) -> Option<Addressable> {
        let list = self.address_list(key);
        let address = match self.encryption {
            TransportEncryption::Permissive => list.last(),
            _ => list.first(),
        };
        match address {
            Some(a) => {
                c.ok("Addressable");
                Some(a.clone())
            }
            None if self.encryption_impossible() => {
                c.fail(
                    "Addressable",
                    "TLSNotConfigured",
                    "transport-encryption is strict but knit run has no certificate: give it --tls-cert and --tls-key",
                );
                None
            }
            None => {
                c.fail("Addressable", reason, message);
                None
            }
        }
    }

    /// Keys of every object of `kind`.
    pub(crate) fn keys_of(&self, kind: knit_crds::Kind) -> Vec<ObjectKey> {
        self.objects
            .keys()
            .filter(|k| k.kind == kind)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests;

/// The conditions of any object, owned.
#[cfg(test)]
pub fn conditions_of_owned(o: &Object) -> Vec<Condition> {
    conditions_of(o).to_vec()
}
