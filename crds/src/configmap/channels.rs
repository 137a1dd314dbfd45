//! `knative-eventing/default-ch-webhook`: the channel implementation of Channels, Sequences and
//! Parallels that name none, cluster-wide and per namespace.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Error;
use crate::api::messaging::ChannelTemplateSpec;

/// The ConfigMap's name (in `knative-eventing`).
pub const DEFAULT_CH_WEBHOOK: &str = "default-ch-webhook";
/// Its key holding [`ChannelDefaults`] as YAML.
pub const DEFAULT_CH_CONFIG_KEY: &str = "default-ch-config";

/// The value of `default-ch-config`.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDefaults {
    /// The template of every namespace without its own.
    #[serde(default)]
    pub cluster_default: Option<ChannelTemplateSpec>,
    /// Templates by namespace.
    #[serde(default)]
    pub namespace_defaults: BTreeMap<String, ChannelTemplateSpec>,
}

impl ChannelDefaults {
    /// Parse `default-ch-config`; the error is the YAML reader's ([`Error::Yaml`]).
    pub fn parse(text: &str) -> crate::Result<Self> {
        serde_saphyr::from_str::<Option<Self>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::Yaml {
                source: Box::new(e),
            })
    }
}
