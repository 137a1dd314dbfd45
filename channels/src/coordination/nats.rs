//! Membership and leadership on NATS JetStream key-value buckets.
//!
//! nats-server 2.9 (Debian's) has no per-key TTL, so each bucket's `max_age` is the TTL and
//! holders put again before it runs out: a replica puts its heartbeat into [`REPLICAS_BUCKET`]
//! every second (`max_age` 5 s); a leader creates its key in [`LEADERS_BUCKET`] (a create fails
//! while the key exists) and refreshes it every [`REFRESH`] with an update that expects the
//! revision it last wrote (`max_age` [`LEASE`]). A refresh that fails is a lost lead. The others
//! try to create the key every second, so a killed leader is replaced at most [`LEASE`] plus a
//! second after its last refresh; a leader that stops deletes its key, and is replaced within
//! a second.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::StreamExt as _;
use knit_crds::contract::NatsLog;
use tokio::sync::watch;

use super::{HEARTBEAT, LEADERS_BUCKET, MEMBER_EXPIRY, Member, REPLICAS_BUCKET, Shared};
use super::{key_of, stopped};
use crate::log::LogError;
use crate::nats::Connections;

/// How long a leader's key lives unless refreshed.
const LEASE: Duration = Duration::from_secs(6);
/// How often a leader refreshes its key.
const REFRESH: Duration = Duration::from_secs(2);
/// How often a replica that does not lead tries to.
const RETRY: Duration = Duration::from_secs(1);
/// How long one KV request may take.
const REQUEST: Duration = Duration::from_secs(3);

/// A connection's settings for `url`.
pub(super) fn config(url: &str, creds_file: Option<String>, ca_file: Option<String>) -> NatsLog {
    NatsLog {
        url: url.to_string(),
        stream: String::new(),
        subject: String::new(),
        storage: Default::default(),
        replicas: None,
        max_age_ms: None,
        max_msgs: None,
        max_bytes: None,
        duplicate_window_ms: None,
        content_mode: Default::default(),
        creds_file,
        ca_file,
    }
}

/// The buckets the replicas meet in.
pub(super) struct Nats {
    leaders: kv::Store,
    me: String,
}

impl Nats {
    /// Open (or create) the buckets and start heartbeating and reading the others' heartbeats.
    pub(super) async fn start(
        config: &NatsLog,
        shared: Arc<Shared>,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, LogError> {
        let me = shared.me.lock().id.clone();
        let conn = Connections::new(format!("knit-{}", key_of(&me)))
            .connection(config)
            .await?;
        let replicas = bucket(&conn.js, REPLICAS_BUCKET, MEMBER_EXPIRY).await?;
        let leaders = bucket(&conn.js, LEADERS_BUCKET, LEASE).await?;
        tokio::spawn(heartbeat(replicas, shared, stop));
        Ok(Self { leaders, me })
    }

    /// Campaign for `name` until `stop`.
    pub(super) fn campaign(
        &self,
        name: &str,
        leads: watch::Sender<bool>,
        stop: watch::Receiver<bool>,
    ) {
        let lease = Lease {
            kv: self.leaders.clone(),
            key: key_of(name),
            me: Bytes::from(self.me.clone()),
            revision: None,
        };
        tokio::spawn(lease.hold(leads, stop));
    }
}

/// The bucket `name` with `max_age`, created when missing (by whichever replica is first). Its
/// stream is made as async-nats's `create_key_value` makes it, but directly: that call first
/// asks for the account's limits, whose answer from nats-server 2.9 async-nats cannot read.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, LogError> {
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: jetstream::stream::StorageType::Memory,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| LogError::backend(format!("creating the KV bucket {name}"), e))?;
    js.get_key_value(name)
        .await
        .map_err(|e| LogError::backend(format!("opening the KV bucket {name}"), e))
}

async fn heartbeat(replicas: kv::Store, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            _ = every.tick() => {}
        }
        let me = shared.heartbeat();
        if let Ok(body) = serde_json::to_vec(&me) {
            let put = replicas.put(key_of(&me.id), body.into());
            match tokio::time::timeout(REQUEST, put).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat not put"),
                Err(_) => tracing::warn!("heartbeat not put: timed out"),
            }
        }
        if let Err(e) = tokio::time::timeout(REQUEST, read_members(&replicas, &shared)).await {
            tracing::debug!(error = %e, "reading heartbeats timed out");
        }
    }
    let me = key_of(&shared.me.lock().id);
    let _ = tokio::time::timeout(REQUEST, replicas.delete(me)).await;
}

/// Every heartbeat in the bucket (those older than its `max_age` are gone).
async fn read_members(replicas: &kv::Store, shared: &Shared) {
    let Ok(mut keys) = replicas.keys().await else {
        return;
    };
    let mut names = Vec::new();
    while let Some(Ok(k)) = keys.next().await {
        names.push(k);
    }
    for k in names {
        if let Ok(Some(body)) = replicas.get(k).await
            && let Ok(m) = serde_json::from_slice::<Member>(&body)
        {
            shared.saw(m);
        }
    }
}

/// One leadership key.
struct Lease {
    kv: kv::Store,
    key: String,
    me: Bytes,
    /// The revision this replica last wrote, while it leads.
    revision: Option<u64>,
}

impl Lease {
    async fn hold(mut self, leads: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        loop {
            self.revision = match self.revision {
                None => self.take().await,
                Some(rev) => self.refresh(rev).await,
            };
            leads.send_replace(self.revision.is_some());
            let wait = if self.revision.is_some() {
                REFRESH
            } else {
                RETRY
            };
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        leads.send_replace(false);
        if let Some(rev) = self.revision {
            let delete = self.kv.delete_expect_revision(&self.key, Some(rev));
            let _ = tokio::time::timeout(REQUEST, delete).await;
        }
    }

    /// Create the key; or, when it holds this replica's id already (a create whose answer was
    /// lost), take its revision.
    async fn take(&self) -> Option<u64> {
        let create = self.kv.create(&self.key, self.me.clone());
        if let Ok(Ok(rev)) = tokio::time::timeout(REQUEST, create).await {
            tracing::info!(key = %self.key, "leading");
            return Some(rev);
        }
        match tokio::time::timeout(REQUEST, self.kv.entry(self.key.clone())).await {
            Ok(Ok(Some(e))) if e.value == self.me && e.operation == kv::Operation::Put => {
                Some(e.revision)
            }
            _ => None,
        }
    }

    async fn refresh(&self, rev: u64) -> Option<u64> {
        let update = self.kv.update(&self.key, self.me.clone(), rev);
        match tokio::time::timeout(REQUEST, update).await {
            Ok(Ok(rev)) => Some(rev),
            Ok(Err(e)) => {
                tracing::warn!(key = %self.key, error = %e, "lead lost");
                None
            }
            Err(_) => {
                tracing::warn!(key = %self.key, "lead lost: the refresh timed out");
                None
            }
        }
    }
}
