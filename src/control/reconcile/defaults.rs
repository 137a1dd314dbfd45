//! Defaults that depend on other objects: the channel implementation of Channels, Sequences and
//! Parallels comes from the `default-ch-webhook` ConfigMap in `knative-eventing` (key
//! `default-ch-config`, with `clusterDefault` and `namespaceDefaults`), InMemoryChannel when it
//! says nothing, as Knative's defaulting webhook does (KafkaChannel under `knit run --kafka`).

use knit_crds::admission::default_channel_template;
use knit_crds::api::messaging::ChannelTemplateSpec;
use knit_crds::configmap::{ChannelDefaults, DEFAULT_CH_CONFIG_KEY, DEFAULT_CH_WEBHOOK};
use knit_crds::{Kind, Object, ObjectKey, names};

/// The channel defaults of `default-ch-webhook` (admission validated them; one that does not
/// parse all the same is ignored with a warning).
fn channel_defaults(objects: &[Object]) -> ChannelDefaults {
    let key = ObjectKey::new(Kind::ConfigMap, names::SYSTEM_NAMESPACE, DEFAULT_CH_WEBHOOK);
    objects
        .iter()
        .find(|o| o.key() == key)
        .and_then(|o| match o {
            Object::ConfigMap(cm) => cm.data.as_ref()?.get(DEFAULT_CH_CONFIG_KEY).cloned(),
            _ => None,
        })
        .and_then(|text| match ChannelDefaults::parse(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "default-ch-webhook: cannot read default-ch-config; using InMemoryChannel");
                None
            }
        })
        .unwrap_or_default()
}

/// Fill in every missing channel template. With `durable` (`knit run --kafka`: KafkaChannel,
/// `--nats`: NatsJetStreamChannel) that kind is the built-in default instead of
/// InMemoryChannel.
pub(crate) fn channel_templates(objects: &mut [Object], durable: Option<Kind>) {
    let defaults = channel_defaults(objects);
    let builtin = || match durable {
        Some(kind) => ChannelTemplateSpec {
            api_version: Some(kind.api_version()),
            kind: Some(kind.name().into()),
            spec: None,
        },
        None => default_channel_template(),
    };
    let template = |ns: &str| {
        defaults
            .namespace_defaults
            .get(ns)
            .or(defaults.cluster_default.as_ref())
            .cloned()
            .unwrap_or_else(builtin)
    };
    for o in objects.iter_mut() {
        let ns = o.namespace().to_string();
        let slot = match o {
            Object::Channel(c) => &mut c.spec.channel_template,
            Object::Sequence(s) => &mut s.spec.channel_template,
            Object::Parallel(p) => &mut p.spec.channel_template,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(template(&ns));
        }
    }
}
