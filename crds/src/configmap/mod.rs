//! The data of the ConfigMaps Knit reads, parsed once for everyone: admission validates them
//! with these parsers (Knative's configmap webhooks do the same), and the control and data
//! planes read them with the same code.

pub mod autoscaler;
mod channels;

pub use channels::{ChannelDefaults, DEFAULT_CH_CONFIG_KEY, DEFAULT_CH_WEBHOOK};

/// One invalid ConfigMap key (or annotation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct KeyError {
    /// The ConfigMap key or annotation key as written.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl KeyError {
    /// A new error.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The longest part of a refused value an error message quotes.
const SHOWN_CHARS: usize = 64;

/// `value` quoted for an error message: at most [`SHOWN_CHARS`] characters of it, so that a
/// 64 KiB value makes a readable line.
pub fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    if chars.next().is_none() {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({} bytes)", value.len())
    }
}
