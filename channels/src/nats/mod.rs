//! The NATS JetStream backend (async-nats; cargo feature `nats`): a stream per Broker or
//! channel, a durable pull consumer per egress with explicit acks, retries by nak with a delay
//! (their count kept by us), reading a range again for a replay, and the CloudEvents NATS
//! protocol binding ([`binding`]). The data plane reaches it only through
//! [`crate::backends::Backends`] and the [`crate::log`] traits.
//!
//! # Names
//!
//! The Contract names the stream and its subject (eventing-natss's names, kafka-nats.md §4,
//! §5.1: `KN_BROKER_<NS>__<NAME>` with subject `<ns>.<name>._knative_broker.events` for a
//! Broker, `KN_<NS>__<NAME>` with `<ns>.<name>._knative` for a channel). A consumer group
//! becomes the durable consumer [`durable_name`]`(group)`: JetStream consumer names may not
//! contain `.`, `*`, `>`, whitespace or path separators, so a group name made only of
//! `[A-Za-z0-9_-]` (`KN_TRIGGER_<ns>_<name>` for most names) is used as it is, and
//! any other has each other character replaced by `_` and `_<16 hex digits>` of a hash of the
//! original name appended, so two groups never share a durable. Retry counts live in the
//! stream `KNIT_RETRY_<stream>`, subject `_KNIT.retry.<stream>.<durable>.<stream sequence>`
//! ([`retries`]).
//!
//! # Delivery
//!
//! - Appends publish each event to the subject with `Nats-Msg-Id` = [`binding::message_id`]
//!   (a hash of `source` and `id`, so a retried publish is dropped inside the stream's
//!   duplicate window) and resolve once every PubAck arrived; no PubAck within the request
//!   timeout is [`crate::AppendError::Unavailable`] (503).
//! - A consumer is a durable pull consumer with `AckExplicit`, `max_deliver` unlimited (the
//!   retry limit is ours), `max_ack_pending` twice the group's in-flight limit (what the
//!   dispatcher reads ahead), `ack_wait` its ack deadline (at most 6 s) plus a second,
//!   `DeliverNew` for `StartAt::Latest` and `DeliverAll` for `Earliest`. See [`consumer`] for
//!   settling, heartbeats and retry counts.
//! - Connections reconnect forever; a consumer whose pull stream fails (a server restart, a
//!   missed heartbeat, a consumer deleted with a memory-storage server) re-creates its durable
//!   and pulls again, so a JetStream restart never makes events fail for good.

pub mod binding;
mod connection;
pub(crate) mod consumer;
mod log;
mod replay;
pub(crate) mod retries;

use std::sync::Arc;

use knit_crds::contract::NatsLog as Config;

pub(crate) use connection::Connections;

use crate::backends::Role;
use crate::log::{Log, LogError};

/// Open the log `config` describes (its connection shared through `connections`), creating
/// its stream unless only reading.
pub(crate) async fn open(
    connections: &Connections,
    config: &Config,
    role: Role,
) -> Result<Arc<dyn Log>, LogError> {
    let conn = connections.connection(config).await?;
    log::NatsLog::open(conn, config.clone(), role).await
}

/// Decode a message read from JetStream (its headers as the binding wants them).
pub(crate) fn decode_message(
    m: &async_nats::Message,
) -> Result<crate::event::Event, binding::DecodeError> {
    let headers: Vec<(&str, &str)> = m
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .flat_map(|(n, vs)| vs.iter().map(move |v| (n.as_ref(), v.as_str())))
        .collect();
    binding::decode(&headers, &m.payload)
}

/// The durable consumer name of group `group` (see the module documentation).
pub fn durable_name(group: &str) -> String {
    let clean = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !group.is_empty() && group.len() <= 200 && group.chars().all(clean) {
        return group.to_string();
    }
    let mut out: String = group
        .chars()
        .take(180)
        .map(|c| if clean(c) { c } else { '_' })
        .collect();
    out.push_str(&format!("_{:016x}", binding::fnv1a(&[group.as_bytes()])));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_names_keep_clean_names_and_map_the_rest_without_collisions() {
        assert_eq!(durable_name("KN_TRIGGER_abc-123"), "KN_TRIGGER_abc-123");
        let a = durable_name("kafka.default.ch.sub");
        assert!(a.starts_with("kafka_default_ch_sub_"), "{a}");
        assert!(!a.contains('.'));
        assert_ne!(durable_name("a.b"), durable_name("a_b"));
        assert_ne!(durable_name("a.b"), durable_name("a*b"));
        assert_eq!(durable_name("a.b"), durable_name("a.b"));
        let long = "x".repeat(500);
        assert!(durable_name(&long).len() < 220);
        assert!(!durable_name("").is_empty());
    }
}
