//! The closed set of kinds Knit runs: a `Kind` per kind with its names, and `Object`, one value
//! of any kind.

use std::fmt;

use kube::Resource;
use serde::Serialize;
use serde_json::Value;

use crate::api::eventing::{Broker, EventPolicy, EventType, KafkaSink, Trigger};
use crate::api::flows::{Parallel, Sequence};
use crate::api::messaging::{
    Channel, InMemoryChannel, KafkaChannel, NatsJetStreamChannel, Subscription,
};
use crate::api::serving::{Configuration, DomainMapping, Revision, Route, Service};
use crate::api::sources::{
    ApiServerSource, CloudPubSubSource, ContainerSource, GitHubSource, KafkaSource, PingSource,
    SinkBinding,
};
use crate::api::{ConfigMap, ObjectMeta, Secret};

/// Identity of a stored object: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind.name(), self.namespace, self.name)
    }
}

macro_rules! kinds {
    ($( $variant:ident($ty:ty) { plural: $plural:literal, short: [$($short:literal),*] } ),* $(,)?) => {
        /// Every kind Knit runs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Kind {
            $(
                $variant,
            )*
        }

        /// One object of any kind Knit runs. Each kind is boxed: the kinds differ in size by
        /// kilobytes (a Service holds a pod template), and objects are kept by the thousand in
        /// maps whose slots would otherwise all be as large as the largest kind.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Object {
            $(
                $variant(Box<$ty>),
            )*
        }

        impl Kind {
            /// Every kind, in a stable order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The kind's name, e.g. `Broker`.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$variant => stringify!($variant)),* }
            }

            /// The API group (empty for core kinds).
            pub fn group(self) -> String {
                match self { $(Kind::$variant => <$ty as Resource>::group(&()).into_owned()),* }
            }

            /// The API version alone, e.g. `v1`.
            pub fn version(self) -> String {
                match self { $(Kind::$variant => <$ty as Resource>::version(&()).into_owned()),* }
            }

            /// `apiVersion` as written in manifests, e.g. `eventing.knative.dev/v1`.
            pub fn api_version(self) -> String {
                match self { $(Kind::$variant => <$ty as Resource>::api_version(&()).into_owned()),* }
            }

            /// The lower-case plural, e.g. `brokers`.
            pub fn plural(self) -> &'static str {
                match self { $(Kind::$variant => $plural),* }
            }

            /// Short names kubectl accepts, e.g. `ksvc`.
            pub fn short_names(self) -> &'static [&'static str] {
                match self { $(Kind::$variant => &[$($short),*]),* }
            }

            /// Deserialize a JSON document of this kind; the error carries the field path.
            pub fn parse(self, value: Value) -> Result<Object, serde_path_to_error::Error<serde_json::Error>> {
                match self {
                    $(Kind::$variant => serde_path_to_error::deserialize(value).map(|o| Object::$variant(Box::new(o)))),*
                }
            }
        }

        impl Object {
            /// The kind.
            pub fn kind(&self) -> Kind {
                match self { $(Object::$variant(_) => Kind::$variant),* }
            }

            /// Metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self { $(Object::$variant(o) => o.meta()),* }
            }

            /// Mutable metadata.
            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Object::$variant(o) => o.meta_mut()),* }
            }

            /// A 64-bit fingerprint of the whole object (its JSON form, hashed as it is written,
            /// without building it): equal objects have equal fingerprints, and different ones
            /// differ but with a chance of 2^-64.
            pub fn fingerprint(&self) -> u64 {
                use std::hash::Hasher as _;
                let mut w = HashWriter(std::hash::DefaultHasher::new());
                w.0.write_u8(self.kind() as u8);
                // Writing plain data types into a hasher cannot fail.
                let _ = match self { $(Object::$variant(o) => serde_json::to_writer(&mut w, o)),* };
                w.0.finish()
            }

            /// The whole object as JSON, with `apiVersion` and `kind`.
            pub fn to_json(&self) -> Value {
                let mut v = match self {
                    // Serializing plain data types to a Value cannot fail.
                    $(Object::$variant(o) => serde_json::to_value(o).unwrap_or(Value::Null)),*
                };
                if let Some(map) = v.as_object_mut() {
                    map.insert("apiVersion".into(), Value::String(self.kind().api_version()));
                    map.insert("kind".into(), Value::String(self.kind().name().into()));
                }
                v
            }
        }
    };
}

kinds! {
    Broker(Broker) { plural: "brokers", short: [] },
    Trigger(Trigger) { plural: "triggers", short: [] },
    EventType(EventType) { plural: "eventtypes", short: [] },
    KafkaSink(KafkaSink) { plural: "kafkasinks", short: [] },
    EventPolicy(EventPolicy) { plural: "eventpolicies", short: [] },
    Channel(Channel) { plural: "channels", short: ["ch"] },
    InMemoryChannel(InMemoryChannel) { plural: "inmemorychannels", short: ["imc"] },
    Subscription(Subscription) { plural: "subscriptions", short: ["sub"] },
    KafkaChannel(KafkaChannel) { plural: "kafkachannels", short: ["kc"] },
    NatsJetStreamChannel(NatsJetStreamChannel) { plural: "natsjetstreamchannels", short: ["njsc"] },
    Sequence(Sequence) { plural: "sequences", short: [] },
    Parallel(Parallel) { plural: "parallels", short: [] },
    PingSource(PingSource) { plural: "pingsources", short: [] },
    ApiServerSource(ApiServerSource) { plural: "apiserversources", short: [] },
    SinkBinding(SinkBinding) { plural: "sinkbindings", short: [] },
    ContainerSource(ContainerSource) { plural: "containersources", short: [] },
    GitHubSource(GitHubSource) { plural: "githubsources", short: [] },
    KafkaSource(KafkaSource) { plural: "kafkasources", short: [] },
    CloudPubSubSource(CloudPubSubSource) { plural: "cloudpubsubsources", short: [] },
    Service(Service) { plural: "services", short: ["ksvc", "kservice"] },
    Configuration(Configuration) { plural: "configurations", short: ["config", "cfg"] },
    Revision(Revision) { plural: "revisions", short: ["rev"] },
    Route(Route) { plural: "routes", short: ["rt"] },
    DomainMapping(DomainMapping) { plural: "domainmappings", short: [] },
    ConfigMap(ConfigMap) { plural: "configmaps", short: ["cm"] },
    Secret(Secret) { plural: "secrets", short: [] },
}

/// Feeds what is written to a hasher.
struct HashWriter(std::hash::DefaultHasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::hash::Hasher::write(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Kind {
    /// The lower-case singular, e.g. `broker`.
    pub fn singular(self) -> String {
        self.name().to_ascii_lowercase()
    }

    /// Find a kind by kubectl-style name: plural, singular, short name or Kind, any case.
    pub fn lookup(name: &str) -> Option<Kind> {
        let n = name.to_ascii_lowercase();
        // `kind.group` forms, e.g. `services.serving.knative.dev`.
        let (n, group) = match n.split_once('.') {
            Some((k, g)) => (k.to_string(), Some(g.to_string())),
            None => (n, None),
        };
        Kind::ALL.iter().copied().find(|k| {
            let names_match =
                k.plural() == n || k.singular() == n || k.short_names().contains(&n.as_str());
            names_match && group.as_deref().is_none_or(|g| g == k.group())
        })
    }

    /// The kind for an `apiVersion` and `kind` written in a manifest, current versions only.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == kind && k.api_version() == api_version)
    }

    /// True for kinds with a `status.address` others can send events to.
    pub fn is_addressable(self) -> bool {
        matches!(
            self,
            Kind::Broker
                | Kind::KafkaSink
                | Kind::Channel
                | Kind::InMemoryChannel
                | Kind::KafkaChannel
                | Kind::NatsJetStreamChannel
                | Kind::Sequence
                | Kind::Parallel
                | Kind::Service
                | Kind::Route
                | Kind::DomainMapping
        )
    }

    /// True for channel implementations (Channelable kinds).
    pub fn is_channel(self) -> bool {
        matches!(
            self,
            Kind::Channel | Kind::InMemoryChannel | Kind::KafkaChannel | Kind::NatsJetStreamChannel
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Object {
    /// The object's name (empty if unset).
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace (`default` if unset).
    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or("default")
    }

    /// The object's key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.kind(), self.namespace(), self.name())
    }

    /// The user-controlled content: everything but metadata and status. A change here bumps the
    /// generation.
    pub fn content(&self) -> Value {
        let mut v = self.to_json();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    }

    /// Remove any status (statuses are computed, never read from manifests).
    pub fn clear_status(&mut self) {
        match self {
            Object::Broker(o) => o.status = None,
            Object::Trigger(o) => o.status = None,
            Object::EventType(o) => o.status = None,
            Object::KafkaSink(o) => o.status = None,
            Object::EventPolicy(o) => o.status = None,
            Object::Channel(o) => o.status = None,
            Object::InMemoryChannel(o) => o.status = None,
            Object::Subscription(o) => o.status = None,
            Object::KafkaChannel(o) => o.status = None,
            Object::NatsJetStreamChannel(o) => o.status = None,
            Object::Sequence(o) => o.status = None,
            Object::Parallel(o) => o.status = None,
            Object::PingSource(o) => o.status = None,
            Object::ApiServerSource(o) => o.status = None,
            Object::SinkBinding(o) => o.status = None,
            Object::ContainerSource(o) => o.status = None,
            Object::GitHubSource(o) => o.status = None,
            Object::KafkaSource(o) => o.status = None,
            Object::CloudPubSubSource(o) => o.status = None,
            Object::Service(o) => o.status = None,
            Object::Configuration(o) => o.status = None,
            Object::Revision(o) => o.status = None,
            Object::Route(o) => o.status = None,
            Object::DomainMapping(o) => o.status = None,
            Object::ConfigMap(_) | Object::Secret(_) => {}
        }
    }
}
