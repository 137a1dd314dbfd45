//! Membership and leadership on Kafka.
//!
//! Heartbeats are records keyed by replica id on [`REPLICAS_TOPIC`] (one partition, short
//! retention); every replica reads that partition from its end without a group. A leadership is
//! a consumer group `knit.lead.<name>` subscribed to [`COORDINATION_TOPIC`] (one partition, no
//! records): the member assigned partition 0 leads. `session.timeout.ms` is 6 s (Kafka's
//! smallest by default), so a killed leader's group rebalances about 6–8 s later; a leader that
//! stops leaves the group at once.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientContext, Message as _, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{COORDINATION_TOPIC, HEARTBEAT, Member, REPLICAS_TOPIC, Shared, key_of, stopped};
use crate::kafka::cluster::{Cluster, Clusters, backend};
use crate::log::LogError;

/// How long the heartbeat topic keeps records.
const REPLICAS_RETENTION_MS: &str = "600000";

/// The cluster the replicas meet on.
pub(super) struct Kafka {
    cluster: Arc<Cluster>,
    client_id: String,
}

impl Kafka {
    /// Create the topics and start heartbeating and reading the others' heartbeats.
    pub(super) async fn start(
        bootstrap: &str,
        shared: Arc<Shared>,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, LogError> {
        let client_id = format!("knit-{}", key_of(&shared.me.lock().id));
        let cluster = Clusters::new(client_id.clone()).cluster(bootstrap)?;
        cluster
            .create_topics(
                &[REPLICAS_TOPIC.to_string()],
                1,
                1,
                &[("retention.ms", REPLICAS_RETENTION_MS)],
            )
            .await?;
        cluster
            .create_topics(&[COORDINATION_TOPIC.to_string()], 1, 1, &[])
            .await?;
        let reader = heartbeat_reader(&cluster, &client_id)?;
        tokio::spawn(read_heartbeats(reader, shared.clone(), stop.clone()));
        tokio::spawn(heartbeat(cluster.clone(), shared, stop));
        Ok(Self { cluster, client_id })
    }

    /// Campaign for `name`: `leads` follows whether this replica holds partition 0 of the
    /// coordination topic in the group of `name`, until `stop`.
    pub(super) fn campaign(
        &self,
        name: &str,
        leads: watch::Sender<bool>,
        stop: watch::Receiver<bool>,
    ) {
        let group = format!("knit.lead.{}", key_of(name));
        let mut cfg = self.cluster.base_config();
        cfg.set("group.id", &group)
            .set("client.id", &self.client_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("enable.partition.eof", "false");
        let leads = Arc::new(leads);
        let consumer: Result<StreamConsumer<LeadCtx>, _> =
            cfg.create_with_context(LeadCtx(leads.clone()));
        let consumer = match consumer.and_then(|c| c.subscribe(&[COORDINATION_TOPIC]).map(|()| c)) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(group = %group, error = %e, "cannot join the leadership group");
                return;
            }
        };
        tokio::spawn(hold(consumer, group, leads, stop));
    }
}

/// Poll the group's consumer (rebalances are served while it is polled) until `stop`; then
/// leave the group so another replica takes over at once.
async fn hold(
    consumer: StreamConsumer<LeadCtx>,
    group: String,
    leads: Arc<watch::Sender<bool>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            m = consumer.recv() => if let Err(e) = m {
                tracing::debug!(group = %group, error = %e, "leadership group");
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
        }
    }
    leads.send_replace(false);
    // Closing blocks while the group is left.
    let _ = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    })
    .await;
}

/// Says whether this member holds partition 0 of the coordination topic.
struct LeadCtx(Arc<watch::Sender<bool>>);

impl ClientContext for LeadCtx {}

impl ConsumerContext for LeadCtx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Stop leading before the partition is handed over.
        if let Rebalance::Revoke(_) = rebalance {
            self.0.send_replace(false);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let held = tpl
                .elements_for_topic(COORDINATION_TOPIC)
                .iter()
                .any(|e| e.partition() == 0);
            tracing::info!(leads = held, "leadership group rebalanced");
            self.0.send_replace(held);
        }
    }
}

/// A consumer of the heartbeat partition from its end, in no group.
fn heartbeat_reader(cluster: &Cluster, client_id: &str) -> Result<StreamConsumer, LogError> {
    let mut cfg = cluster.base_config();
    cfg.set("group.id", format!("{client_id}.replicas"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "200");
    let consumer: StreamConsumer = cfg
        .create()
        .map_err(|e| backend("cannot create the heartbeat reader", e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(REPLICAS_TOPIC, 0, Offset::End)
        .map_err(|e| backend("reading heartbeats", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| backend("reading heartbeats", e))?;
    Ok(consumer)
}

async fn read_heartbeats(
    consumer: StreamConsumer,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            m = consumer.recv() => match m {
                Ok(m) => match m.payload().map(serde_json::from_slice::<Member>) {
                    Some(Ok(member)) => shared.saw(member),
                    Some(Err(e)) => tracing::debug!(error = %e, "not a heartbeat"),
                    None => {}
                },
                Err(e) => {
                    tracing::debug!(error = %e, "reading heartbeats");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
}

async fn heartbeat(cluster: Arc<Cluster>, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = every.tick() => {}
        }
        let me = shared.heartbeat();
        let Ok(body) = serde_json::to_vec(&me) else {
            continue;
        };
        let record = FutureRecord::to(REPLICAS_TOPIC).key(&me.id).payload(&body);
        if let Err((e, _)) = cluster.producer.send(record, HEARTBEAT * 5).await {
            tracing::warn!(error = %e, "heartbeat not sent");
        }
    }
}
