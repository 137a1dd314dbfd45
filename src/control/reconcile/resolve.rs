//! Addresses of addressable objects and Destination resolution (eventing-spec §4). A reference
//! resolves to the object's `status.address.url`, as Knative's resolver does: a `ksvc` or Route
//! to its cluster-local address (`http://hello.default.svc.cluster.local`), which Knit's
//! deliveries reach on the gateway. Local processes (`K_SINK`) get a URL they can reach
//! instead: see [`Caller`].

use std::collections::HashMap;

use knit_crds::api::duck::{Destination, KReference};
use knit_crds::{Kind, Object, ObjectKey, names};

use super::World;

/// Path of a Broker's ingress.
pub(crate) fn broker_path(ns: &str, name: &str) -> String {
    format!("/{ns}/{name}")
}

/// Path of a channel's ingress (channels share the ingress listener with brokers).
pub(crate) fn channel_path(ns: &str, name: &str) -> String {
    format!("/channels/{ns}/{name}")
}

/// Path of a KafkaSink's ingress (sinks share the ingress listener with brokers).
pub(crate) fn sink_path(ns: &str, name: &str) -> String {
    format!("/sinks/{ns}/{name}")
}

/// The Knative-style host name of a channel, also accepted by the ingress with path `/`.
pub(crate) fn channel_host(ns: &str, name: &str) -> String {
    format!("{name}-kn-channel.{ns}.svc.cluster.local")
}

/// Whether Knit's data plane runs a Broker of this class.
pub(crate) fn broker_class(o: &Object) -> Option<String> {
    o.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::BROKER_CLASS_ANNOTATION))
        .cloned()
}

/// The channel implementation kind a template or backing reference names.
pub(crate) fn channel_kind(api_version: Option<&str>, kind: Option<&str>) -> Option<Kind> {
    let kind = kind?;
    Kind::ALL.iter().copied().find(|k| {
        k.is_channel()
            && *k != Kind::Channel
            && k.name() == kind
            && api_version.is_none_or(|a| group_of(a) == k.group())
    })
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Every address that can be computed from specs alone: `https://` ones on the HTTPS ingress
/// when encryption is on, none on the ingress when it is strict and there is no certificate.
pub(crate) fn addresses(world: &World<'_>) -> HashMap<ObjectKey, String> {
    let base = world.ingress_base();
    let mut out = HashMap::new();
    for (key, o) in &world.objects {
        let url = match o {
            Object::Broker(_)
                if broker_class(o).is_some_and(|c| super::backends::is_runnable_class(&c)) =>
            {
                Some(format!("{base}{}", broker_path(&key.namespace, &key.name)))
            }
            Object::InMemoryChannel(_)
            | Object::KafkaChannel(_)
            | Object::NatsJetStreamChannel(_) => {
                Some(format!("{base}{}", channel_path(&key.namespace, &key.name)))
            }
            Object::KafkaSink(_) => Some(format!("{base}{}", sink_path(&key.namespace, &key.name))),
            Object::Service(_) | Object::Route(_) | Object::DomainMapping(_) => {
                super::serving::address(world, key)
            }
            _ => None,
        }
        .filter(|u| !(world.encryption_impossible() && u.starts_with(base)));
        if let Some(u) = url {
            out.insert(key.clone(), u);
        }
    }
    // Objects whose address is another object's: a Channel its backing channel's, a Sequence
    // its first channel's, a Parallel its ingress channel's.
    for (key, o) in &world.objects {
        let via = match o {
            Object::Channel(c) => {
                let t = c.spec.channel_template.as_ref();
                channel_kind(
                    t.and_then(|t| t.api_version.as_deref()),
                    t.and_then(|t| t.kind.as_deref()),
                )
                .map(|k| ObjectKey::new(k, &key.namespace, &key.name))
            }
            Object::Sequence(s) => sequence_channel(
                s.spec.channel_template.as_ref(),
                &key.namespace,
                &key.name,
                0,
            ),
            Object::Parallel(p) => parallel_ingress_channel(
                p.spec.channel_template.as_ref(),
                &key.namespace,
                &key.name,
            ),
            _ => None,
        };
        if let Some(u) = via.and_then(|v| out.get(&v).cloned()) {
            out.insert(key.clone(), u);
        }
    }
    out
}

/// The key of a Sequence's i-th channel.
pub(crate) fn sequence_channel(
    template: Option<&knit_crds::api::messaging::ChannelTemplateSpec>,
    ns: &str,
    name: &str,
    i: usize,
) -> Option<ObjectKey> {
    let kind = channel_kind(template?.api_version.as_deref(), template?.kind.as_deref())?;
    Some(ObjectKey::new(kind, ns, format!("{name}-kn-sequence-{i}")))
}

/// The key of a Parallel's ingress channel.
pub(crate) fn parallel_ingress_channel(
    template: Option<&knit_crds::api::messaging::ChannelTemplateSpec>,
    ns: &str,
    name: &str,
) -> Option<ObjectKey> {
    let kind = channel_kind(template?.api_version.as_deref(), template?.kind.as_deref())?;
    Some(ObjectKey::new(kind, ns, format!("{name}-kn-parallel")))
}

/// The kind a reference names: matched by group and kind (any version), so references to
/// older versions still resolve.
pub(crate) fn referenced_kind(r: &KReference) -> Option<Kind> {
    let kind = r.kind.as_deref()?;
    let group = group_of(r.api_version.as_deref().unwrap_or(""));
    Kind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == kind && k.group() == group)
}

/// Why a reference or a Destination does not resolve; its text is the condition message
/// users see (eventing-spec §4).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The reference names a kind Knit does not know.
    #[error(
        "failed to get object {namespace}/{name}: Knit does not know the kind {kind} ({api_version})"
    )]
    UnknownKind {
        namespace: String,
        name: String,
        kind: String,
        api_version: String,
    },
    /// No object of that kind and name.
    #[error("failed to get object {namespace}/{name}: {plural}.{group} {name:?} not found", plural = .kind.plural(), group = .kind.group())]
    NotFound {
        namespace: String,
        name: String,
        kind: Kind,
    },
    /// The object has no address by nature.
    #[error("{kind} {namespace}/{name} is not addressable")]
    NotAddressable {
        namespace: String,
        name: String,
        kind: String,
    },
    /// The object could have an address but has none yet.
    #[error("address not set for {kind} {namespace}/{name}")]
    NoAddress {
        namespace: String,
        name: String,
        kind: String,
    },
    /// The referenced object's address is not a URL (a relative `uri` cannot join it).
    #[error("invalid address {address:?}: {source}")]
    InvalidAddress {
        address: String,
        #[source]
        source: url::ParseError,
    },
    /// The `uri` does not join the referenced object's address.
    #[error("invalid uri {uri:?}: {source}")]
    InvalidUri {
        uri: String,
        #[source]
        source: url::ParseError,
    },
    /// Neither `ref` nor `uri` is set.
    #[error("the destination has neither ref nor uri")]
    Empty,
}

/// Who connects to a resolved URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Knit's own deliveries: `status.address.url` as is (the dispatcher connects the
    /// cluster-local hosts this process serves to its listeners).
    Knit,
    /// A local process Knit starts (a ContainerSource's `K_SINK`): it has no cluster DNS, so a
    /// Knative Service, Route or DomainMapping resolves to the Route's public URL (`status.url`,
    /// a name under `localhost`), when it has one.
    Process,
}

impl World<'_> {
    /// Resolve a reference to an Addressable into a URL `caller` can reach.
    fn resolve_ref(
        &self,
        r: &KReference,
        ns: &str,
        caller: Caller,
    ) -> Result<String, ResolveError> {
        let name = r.name.clone().unwrap_or_default();
        let ns = r.namespace.clone().unwrap_or_else(|| ns.to_string());
        let api_version = r.api_version.clone().unwrap_or_default();
        let kind_name = r.kind.clone().unwrap_or_default();
        if group_of(&api_version).is_empty() && kind_name == "Service" {
            // A core Kubernetes Service resolves to its cluster DNS name.
            return Ok(format!("http://{name}.{ns}.svc.cluster.local"));
        }
        let Some(kind) = referenced_kind(r) else {
            return Err(ResolveError::UnknownKind {
                namespace: ns,
                name,
                kind: kind_name,
                api_version,
            });
        };
        let key = ObjectKey::new(kind, &ns, &name);
        if !self.objects.contains_key(&key) {
            return Err(ResolveError::NotFound {
                namespace: ns,
                name,
                kind,
            });
        }
        if !kind.is_addressable() {
            return Err(ResolveError::NotAddressable {
                namespace: ns,
                name,
                kind: kind_name,
            });
        }
        let reachable = match caller {
            Caller::Knit => None,
            Caller::Process if self.addresses.contains_key(&key) => {
                super::serving::process_url(self, &key)
            }
            Caller::Process => None,
        };
        reachable
            .or_else(|| self.addresses.get(&key).cloned())
            .ok_or(ResolveError::NoAddress {
                namespace: ns,
                name,
                kind: kind_name,
            })
    }

    /// Resolve a Destination (ref, uri, or ref plus relative uri) into a URL.
    pub(crate) fn resolve(&self, d: &Destination, ns: &str) -> Result<String, ResolveError> {
        self.resolve_for(d, ns, Caller::Knit)
    }

    /// Resolve a Destination into a URL `caller` can reach.
    pub(crate) fn resolve_for(
        &self,
        d: &Destination,
        ns: &str,
        caller: Caller,
    ) -> Result<String, ResolveError> {
        match (&d.reference, &d.uri) {
            (Some(r), None) => self.resolve_ref(r, ns, caller),
            (Some(r), Some(u)) => {
                let base = self.resolve_ref(r, ns, caller)?;
                let base =
                    url::Url::parse(&base).map_err(|source| ResolveError::InvalidAddress {
                        address: base.clone(),
                        source,
                    })?;
                base.join(u)
                    .map(|u| u.to_string())
                    .map_err(|source| ResolveError::InvalidUri {
                        uri: u.clone(),
                        source,
                    })
            }
            (None, Some(u)) => Ok(u.clone()),
            (None, None) => Err(ResolveError::Empty),
        }
    }
}
