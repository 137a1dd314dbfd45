//! Transport encryption (Knative's `transport-encryption`, security.md §4): the mode from
//! ConfigMap `knative-eventing/config-features`, and which `http`/`https` addresses an
//! Addressable on the ingress gets by it.

use knit_crds::api::duck::Addressable;
use knit_crds::contract::TransportEncryption;
use knit_crds::{Object, ObjectKey};

use super::World;

/// The HTTPS side of the running process.
#[derive(Clone, Debug)]
pub struct TlsEnv {
    /// Base URL of the HTTPS ingress, e.g. `https://127.0.0.1:8443`.
    pub ingress_url: String,
    /// Base URL of the HTTPS gateway, e.g. `https://127.0.0.1:8444`: Knative Services' public
    /// URLs use it.
    pub gateway_url: String,
    /// PEM CA certificates published as `CACerts` with every `https` address
    /// (`knit run --ca-file`).
    pub ca_certs: Option<String>,
}

/// `transport-encryption` of ConfigMap `knative-eventing/config-features`. Unset, it is
/// `strict` when `knit run` has a certificate (giving one asks for encryption) and `disabled`
/// otherwise; a value that is not a mode is taken as `strict` (fail closed; admission refuses
/// it anyway).
pub(super) fn transport_encryption(world: &World<'_>) -> TransportEncryption {
    let key = ObjectKey::new(
        knit_crds::Kind::ConfigMap,
        "knative-eventing",
        "config-features",
    );
    let value = match world.objects.get(&key) {
        Some(Object::ConfigMap(cm)) => cm.data.as_ref().and_then(|d| d.get("transport-encryption")),
        _ => None,
    };
    match value {
        Some(v) => TransportEncryption::parse(v).unwrap_or(TransportEncryption::Strict),
        None if world.env.tls.is_some() => TransportEncryption::Strict,
        None => TransportEncryption::Disabled,
    }
}

impl World<'_> {
    /// The HTTPS side when Addressables get `https` addresses (TLS on, encryption not
    /// disabled).
    pub(super) fn https(&self) -> Option<&TlsEnv> {
        self.env
            .tls
            .as_ref()
            .filter(|_| self.encryption != TransportEncryption::Disabled)
    }

    /// The base URL of the ingress addresses resolve to: the HTTPS one when Addressables have
    /// one (in `permissive` too: Knative's resolver takes the first of `status.addresses`,
    /// `https`).
    pub(crate) fn ingress_base(&self) -> &str {
        self.https()
            .map_or(&self.env.ingress_url, |t| &t.ingress_url)
            .trim_end_matches('/')
    }

    /// Strict encryption with no certificate: nothing may be addressed.
    pub(super) fn encryption_impossible(&self) -> bool {
        self.encryption == TransportEncryption::Strict && self.env.tls.is_none()
    }

    /// The object's `http` and `https` addresses by the encryption mode (Knative's table):
    /// `disabled` `[http]`, `permissive` `[https, http]`, `strict` `[https]`; `https` ones
    /// carry `CACerts`.
    pub(crate) fn address_list(&self, key: &ObjectKey) -> Vec<Addressable> {
        let mut list = self.address_list_plain(key);
        for a in &mut list {
            a.audience = a.url.as_deref().and_then(|u| self.audience_for_url(u));
        }
        list
    }

    /// The addresses without their OIDC audience.
    fn address_list_plain(&self, key: &ObjectKey) -> Vec<Addressable> {
        let Some(url) = self.addresses.get(key) else {
            return Vec::new();
        };
        let http = |url: String| Addressable {
            name: Some("http".into()),
            url: Some(url),
            ..Default::default()
        };
        let Some(tls) = self.https() else {
            return vec![http(url.clone())];
        };
        let Some(path) = url.strip_prefix(tls.ingress_url.trim_end_matches('/')) else {
            // Not an ingress address (a Knative Service's cluster-local one).
            return vec![http(url.clone())];
        };
        let https = Addressable {
            name: Some("https".into()),
            url: Some(url.clone()),
            ca_certs: tls.ca_certs.clone(),
            ..Default::default()
        };
        match self.encryption {
            TransportEncryption::Permissive => {
                let plain = format!("{}{path}", self.env.ingress_url.trim_end_matches('/'));
                vec![https, http(plain)]
            }
            _ => vec![https],
        }
    }
}

#[cfg(test)]
mod tests;
