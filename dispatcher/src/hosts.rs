//! Where a delivery connects: the one place a destination's host is mapped to the address to
//! dial. The `Host` header is never changed, only where the bytes go.
//!
//! In standalone mode one process is the whole cluster, with no cluster DNS: a destination
//! resolved from a reference is the object's `status.address.url`, and Knative Services' and
//! Routes' addresses are cluster-local (`http://hello.default.svc.cluster.local`). So every host
//! the Contract says this process serves is dialled at the listener that serves it:
//! - a Route's hosts (`name.ns.svc.cluster.local`, `name.ns.svc`, its public host, tagged
//!   `tag-name.ns.…` hosts and DomainMappings' hosts) at the serving gateway, which routes by
//!   that Host;
//! - a channel's host (`<channel>-kn-channel.<ns>.svc.cluster.local`) at the ingress, which
//!   routes by that Host too;
//! - any other host under `svc.cluster.local` (or `svc`) names nothing here (a core `v1`
//!   Service, a Knative Service not ready yet): the attempt fails at once with
//!   [`NotServed`], instead of waiting on a DNS lookup that cannot succeed;
//! - names under `localhost` are loopback (RFC 6761 §6.3), as browsers and curl treat them;
//! - anything else goes to the system resolver.
//!
//! The lookup runs when a connection is opened, not per delivery (a worker's connections are
//! kept alive by authority); for an ordinary host it allocates nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use knit_crds::contract::Contract;

/// The cluster-local domain: Kubernetes Services' DNS names end with it.
const CLUSTER_DOMAIN: &str = ".svc.cluster.local";
/// The short form of the cluster-local domain Knative also serves (`name.ns.svc`).
const CLUSTER_DOMAIN_SHORT: &str = ".svc";

/// This process's listeners that answer for hosts of the Contract (`None`: not served here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listeners {
    /// The broker and channel ingress.
    pub ingress: Option<SocketAddr>,
    /// The serving gateway.
    pub gateway: Option<SocketAddr>,
}

/// The hosts this process serves, and where to dial for them. The default serves none and
/// leaves every name to the resolver (a data plane inside a cluster, which has cluster DNS).
#[derive(Debug, Default)]
pub struct LocalHosts {
    /// Lower-case host (no port, no trailing dot) to the listener serving it.
    hosts: HashMap<Box<str>, SocketAddr>,
    /// This process stands for the whole cluster: a cluster-local name it does not serve
    /// exists nowhere.
    whole_cluster: bool,
}

/// A cluster-local host nothing in this process serves; its text is what the event's journey
/// shows for the attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no such service in this process: nothing here serves {host} (Knit standalone reaches Knative Services, Routes and channels it runs, not Kubernetes Services; a Knative Service not ready yet is served once it is)"
)]
pub struct NotServed {
    /// The host, as the destination wrote it.
    pub host: String,
}

/// What to dial for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dial<'a> {
    /// A known address.
    Addr(SocketAddr),
    /// A name (or IP literal) for the resolver, and the port.
    Name(&'a str, u16),
}

impl LocalHosts {
    /// The hosts `contract` has this process serve at `listeners`, in standalone mode (this
    /// process is the whole cluster).
    pub fn standalone(contract: &Contract, listeners: Listeners) -> Self {
        let mut hosts = HashMap::new();
        let mut add = |host: &str, at: Option<SocketAddr>| {
            if let Some(at) = at {
                hosts.insert(normalize(host).to_ascii_lowercase().into(), at);
            }
        };
        for ingress in &contract.ingresses {
            for h in &ingress.hosts {
                add(h, listeners.ingress);
            }
        }
        for route in &contract.serving.routes {
            let tagged = route.tags.iter().flat_map(|t| &t.hosts);
            for h in route.hosts.iter().chain(tagged) {
                add(h, listeners.gateway);
            }
        }
        Self {
            hosts,
            whole_cluster: true,
        }
    }

    /// Where to connect for `host` (as a URI writes it: an IPv6 literal in brackets) and
    /// `port`.
    pub(crate) fn dial<'a>(&self, host: &'a str, port: u16) -> Result<Dial<'a>, NotServed> {
        // `[::1]` in a URI is `::1` to the resolver.
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let bare = normalize(name);
        if !self.hosts.is_empty() {
            let found = if bare.bytes().any(|b| b.is_ascii_uppercase()) {
                self.hosts.get(bare.to_ascii_lowercase().as_str())
            } else {
                self.hosts.get(bare)
            };
            if let Some(at) = found {
                return Ok(Dial::Addr(*at));
            }
        }
        if self.whole_cluster
            && (ends_with_ignore_case(bare, CLUSTER_DOMAIN)
                || ends_with_ignore_case(bare, CLUSTER_DOMAIN_SHORT))
        {
            return Err(NotServed { host: host.into() });
        }
        if bare.eq_ignore_ascii_case("localhost") || ends_with_ignore_case(bare, ".localhost") {
            return Ok(Dial::Addr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            )));
        }
        Ok(Dial::Name(name, port))
    }
}

/// A host without its trailing dot (the absolute form of a DNS name).
fn normalize(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

fn ends_with_ignore_case(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len()
        && host
            .get(host.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use knit_crds::contract::serving::{Route, Tag};
    use knit_crds::contract::{Backend, Ingress, IngressKind};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn contract() -> Contract {
        let mut c = Contract::default();
        c.ingresses.push(Ingress {
            uid: "u".into(),
            kind: IngressKind::Channel,
            namespace: "default".into(),
            name: "c".into(),
            path: "/channels/default/c".into(),
            hosts: vec!["c-kn-channel.default.svc.cluster.local".into()],
            backend: Backend::Memory,
            egresses: Vec::new(),
            auth: None,
        });
        c.serving.routes.push(Route {
            uid: "r".into(),
            namespace: "default".into(),
            name: "hello".into(),
            hosts: vec![
                "hello.default.localhost".into(),
                "hello.default.svc.cluster.local".into(),
                "hello.default.svc".into(),
                "hello.example.com".into(),
            ],
            traffic: Vec::new(),
            tags: vec![Tag {
                tag: "v1".into(),
                hosts: vec!["v1-hello.default.svc.cluster.local".into()],
                revision: "hello-00001".into(),
            }],
        });
        c
    }

    fn standalone() -> LocalHosts {
        LocalHosts::standalone(
            &contract(),
            Listeners {
                ingress: Some(addr(8080)),
                gateway: Some(addr(8081)),
            },
        )
    }

    #[test]
    fn served_hosts_are_dialled_at_their_listener_whatever_the_port_and_case() {
        let h = standalone();
        let at = |host, port| h.dial(host, port);
        for host in [
            "hello.default.svc.cluster.local",
            "hello.default.svc",
            "Hello.Default.SVC.cluster.local.",
            "v1-hello.default.svc.cluster.local",
            "hello.example.com",
            "hello.default.localhost",
        ] {
            assert_eq!(at(host, 80), Ok(Dial::Addr(addr(8081))), "{host}");
        }
        assert_eq!(
            at("c-kn-channel.default.svc.cluster.local", 80),
            Ok(Dial::Addr(addr(8080)))
        );
    }

    #[test]
    fn other_cluster_local_hosts_are_not_served_here() {
        let h = standalone();
        for host in [
            "svc.default.svc.cluster.local",
            "other-kn-channel.default.svc.cluster.local",
            "nope.default.svc",
        ] {
            let err = h.dial(host, 80).expect_err(host);
            assert_eq!(err.host, host);
            assert!(
                err.to_string()
                    .starts_with("no such service in this process"),
                "{err}"
            );
        }
    }

    #[test]
    fn other_hosts_go_to_loopback_or_the_resolver() {
        let h = standalone();
        assert_eq!(
            h.dial("other.default.localhost", 9000),
            Ok(Dial::Addr(addr(9000)))
        );
        assert_eq!(h.dial("LOCALHOST.", 9), Ok(Dial::Addr(addr(9))));
        assert_eq!(
            h.dial("notlocalhost", 80),
            Ok(Dial::Name("notlocalhost", 80))
        );
        assert_eq!(h.dial("example.com", 80), Ok(Dial::Name("example.com", 80)));
        assert_eq!(h.dial("[::1]", 8), Ok(Dial::Name("::1", 8)));
        assert_eq!(h.dial("svc", 80), Ok(Dial::Name("svc", 80)));
    }

    #[test]
    fn without_standalone_hosts_every_name_goes_to_the_resolver() {
        let h = LocalHosts::default();
        assert_eq!(
            h.dial("hello.default.svc.cluster.local", 80),
            Ok(Dial::Name("hello.default.svc.cluster.local", 80))
        );
        assert_eq!(h.dial("a.localhost", 1), Ok(Dial::Addr(addr(1))));
    }
}
