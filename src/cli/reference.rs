//! Broker and channel references as every command takes them (`--broker`, `--channel`,
//! `--to broker:...`): `NAMESPACE/NAME`, or `NAME` in the namespace of `-n` (`default` when
//! not given); and the check that such an object exists on the server, whose error names the
//! ones that do.

use std::fmt;

use anyhow::{Result, bail};
use knit_crds::Kind;
use serde_json::Value;

use super::client::Client;

/// A namespaced object named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The namespace when neither the reference nor `-n` gives one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Parse `value` given to `flag`: `NAMESPACE/NAME`, or `NAME` in `namespace` (`-n`, `default`
/// when absent). A namespace in both places must be the same one.
pub fn parse(flag: &str, value: &str, namespace: Option<&str>) -> Result<Reference> {
    let (ns, name) = match value.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, value),
    };
    let valid = |s: &str| !s.is_empty() && !s.contains('/');
    if !valid(name) || ns.is_some_and(|ns| !valid(ns)) {
        bail!("{flag} {value:?}: give NAMESPACE/NAME, or NAME with -n NAMESPACE");
    }
    if let (Some(ns), Some(given)) = (ns, namespace)
        && ns != given
    {
        bail!("{flag} {value}: names namespace {ns:?} but -n says {given:?}; give one of them");
    }
    let namespace = ns.or(namespace).unwrap_or(DEFAULT_NAMESPACE);
    Ok(Reference {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// What a reference may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Broker.
    Broker,
    /// A Broker, or a source or sink that journals the events it sends under its own name
    /// (`knit trace ID --broker NS/SOURCE`).
    BrokerOrSender,
    /// A channel of any implementation.
    Channel,
}

impl Target {
    /// The kinds it may be, the listed ones first.
    fn kinds(self) -> &'static [Kind] {
        match self {
            Target::Broker => &[Kind::Broker],
            Target::BrokerOrSender => &[
                Kind::Broker,
                Kind::PingSource,
                Kind::ApiServerSource,
                Kind::ContainerSource,
                Kind::GitHubSource,
                Kind::KafkaSource,
                Kind::CloudPubSubSource,
                Kind::KafkaSink,
            ],
            Target::Channel => &[
                Kind::Channel,
                Kind::InMemoryChannel,
                Kind::KafkaChannel,
                Kind::NatsJetStreamChannel,
            ],
        }
    }

    /// The kinds named in the error: the ones users mean by the flag.
    fn listed(self) -> &'static [Kind] {
        match self {
            Target::Broker | Target::BrokerOrSender => &[Kind::Broker],
            Target::Channel => self.kinds(),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Target::Broker => "Broker",
            Target::BrokerOrSender => "Broker (or source)",
            Target::Channel => "channel",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Target::Broker | Target::BrokerOrSender => "Brokers",
            Target::Channel => "channels",
        }
    }
}

/// `namespace/name` of every object of `kind` on the server.
async fn names(client: &Client, kind: Kind) -> Result<Vec<String>> {
    let list = client.get(&format!("/api/v1/{}", kind.plural())).await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default();
            format!("{}/{}", s("/metadata/namespace"), s("/metadata/name"))
        })
        .collect())
}

/// `None` when `reference` names an object `target` may be; otherwise what there is instead
/// (`Brokers: default/default, prod/orders`, or `there are no Brokers`).
pub async fn missing(
    client: &Client,
    target: Target,
    reference: &Reference,
) -> Result<Option<String>> {
    let wanted = reference.to_string();
    let mut existing: Vec<String> = Vec::new();
    for kind in target.kinds() {
        let found = names(client, *kind).await?;
        if found.contains(&wanted) {
            return Ok(None);
        }
        if target.listed().contains(kind) {
            existing.extend(found);
        }
    }
    existing.sort();
    existing.dedup();
    Ok(Some(if existing.is_empty() {
        format!("there are no {}", target.plural())
    } else {
        format!("{}: {}", target.plural(), existing.join(", "))
    }))
}

/// Fails unless `reference` names an object `target` may be; the error lists the ones there
/// are (`no Broker default/shop; Brokers: default/default, prod/orders`).
pub async fn must_exist(client: &Client, target: Target, reference: &Reference) -> Result<()> {
    match missing(client, target, reference).await? {
        None => Ok(()),
        Some(there) => bail!("no {} {reference}; {there}", target.word()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str, ns: Option<&str>) -> String {
        parse("--broker", value, ns)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn both_forms_name_the_same_object() {
        assert_eq!(ok("shop/orders", None), "shop/orders");
        assert_eq!(ok("orders", Some("shop")), "shop/orders");
        assert_eq!(ok("shop/orders", Some("shop")), "shop/orders");
        assert_eq!(ok("orders", None), "default/orders");
    }

    #[test]
    fn malformed_or_conflicting_references_are_refused() {
        for bad in ["", "/", "a/", "/b", "a/b/c"] {
            assert!(ok(bad, None).starts_with("error: --broker"), "{bad:?}");
        }
        let e = ok("shop/orders", Some("prod"));
        assert!(e.contains("-n says \"prod\""), "{e}");
    }
}
