//! CloudPubSubSource (events.cloud.google.com/v1, as knative-gcp): Knit's own pull
//! subscription on `topic` in `project`, each message sent to the sink as knative-gcp's
//! `google.cloud.pubsub.topic.v1.messagePublished` event ([`event`]).
//!
//! **What it does.** It creates the topic when absent (an existing one is fine), creates Knit's
//! subscription on it with the source's `ackDeadline`, `retainAckedMessages` and
//! `retentionDuration` (an existing one is reused: its settings are updated, and it is
//! recreated if it points at another topic), and reports Ready with `subscriptionId` and
//! `projectId`. Then it pulls (a long poll, up to [`MAX_PULL`] messages, never more than the
//! free send slots, at most [`MAX_IN_FLIGHT`] sends at once) and sends each message through the
//! dispatcher's delivery entry (retries, backoff, dead letter per `spec.delivery`).
//!
//! **Acknowledgement.** A message is acknowledged only after the sink (or its dead-letter sink)
//! accepted its event. While a send is retrying its ack deadline is extended, so Pub/Sub does
//! not hand the message out twice. A message whose delivery was given up is *nacked*
//! (`modifyAckDeadline`): Pub/Sub redelivers it, again and again, until the sink takes it
//! or the subscription's retention (`retentionDuration`, 7 days by default) expires it. Each
//! give-up is logged. The first nack after a success is immediate (deadline 0); while the sink
//! keeps dropping, nacks ask for redelivery after a growing delay (1 s, 2 s, ... up to
//! [`MAX_BACKOFF`]) and new pulls pause too, so a sink that is down is not flooded with
//! redeliveries. Nothing is lost inside retention, and a message may arrive more than once
//! (at-least-once: an ack that fails after the sink took it means one redelivery).
//!
//! **Errors.** When the topic or subscription cannot be set up, or a pull fails, the source is
//! Ready=False with the API's reason and retries with exponential backoff, Ready again once a
//! call succeeds. A subscription deleted behind Knit's back is recreated (noticed at the next
//! pull, within [`client::PULL_TIMEOUT`]).
//!
//! **Stopping.** `Removed` (the source was deleted): sends in flight are abandoned and Knit's
//! subscription is deleted (the topic is kept: others may publish to it or read it).
//! `Replaced`: sends in flight are abandoned and their messages nacked so the new adapter gets
//! them at once; the subscription is kept. `Shutdown`: sends in flight finish and are
//! acknowledged; the subscription is kept, so messages published while Knit is down wait there.
//!
//! **Client choice.** Pub/Sub is reached through its REST API ([`client`]) over the workspace's
//! reqwest, not a client crate. The two maintained Rust clients are gRPC: `gcloud-pubsub` 1.8
//! (yoshidan) honours `PUBSUB_EMULATOR_HOST` itself but brings tonic, prost and generated
//! googleapis code (a large build for the 8 calls used here); Google's `google-cloud-pubsub`
//! 1.7 needs an explicit endpoint and anonymous credentials for the emulator, and the same
//! heavy stack. The emulator serves the same REST API as the service on its gRPC port, and
//! the calls are small JSON requests, so a ~300-line client with per-call timeouts is the
//! cheaper dependency.
//!
//! **Credentials.** Only the emulator is supported: `PUBSUB_EMULATOR_HOST` (`host:port`, as
//! Google's clients read it) must be set, and `spec.secret` is ignored (the emulator checks no
//! credentials). Without it the source is Ready=False `CredentialsNotSupported`: talking to
//! Google Cloud needs an OAuth2 access token from the service-account key in the secret,
//! which Knit does not implement yet.

pub mod client;
pub mod event;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBackoff, ExponentialBuilder, Retryable};
use knit_crds::contract::{Adapter, Source};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::client::{Client, Received, SubscriptionSpec};
use crate::backoff::restart_delays;
use crate::emit::{Emitter, accepted};
use crate::runtime::{Ctx, Stop, StopSignal};

/// Most messages asked for by one pull.
pub const MAX_PULL: usize = 100;
/// Most sends of one source in flight at once.
pub const MAX_IN_FLIGHT: usize = 100;
/// Longest delay between retries (of setup, of pulls, after the sink dropped a message): the
/// cap of the sources' restart schedule ([`crate::backoff`]), which these retries follow.
pub const MAX_BACKOFF: Duration = crate::backoff::MAX_DELAY;
/// Acknowledging one message: three attempts, 0.1 s then 0.4 s apart.
const ACK_RETRIES: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(100))
    .with_factor(4.0)
    .with_max_times(2);

/// How one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Delivered and acknowledged.
    Acked,
    /// Delivered, but the ack failed: Pub/Sub will redeliver it (a duplicate).
    AckFailed,
    /// Not delivered: handed back to Pub/Sub for redelivery.
    Nacked,
    /// Not a readable message: acknowledged and dropped (logged).
    Unreadable,
}

type PullFuture = Pin<Box<dyn Future<Output = Result<Vec<Received>, client::Error>> + Send>>;

/// One source's subscription and sends.
struct Puller {
    ctx: Arc<Ctx>,
    source: Arc<Source>,
    client: Client,
    emitter: Arc<Emitter>,
    project: String,
    topic_id: String,
    /// `projects/P/subscriptions/S`.
    subscription: String,
    spec: SubscriptionSpec,
    /// Deliveries given up since the last one the sink took.
    drops: Arc<AtomicU32>,
}

/// Seconds until Pub/Sub redelivers a message after the `drops`-th consecutive give-up.
fn nack_delay(drops: u32) -> u32 {
    match drops {
        0 | 1 => 0,
        n => 1u32
            .checked_shl(n - 2)
            .unwrap_or(u32::MAX)
            .min(MAX_BACKOFF.as_secs() as u32),
    }
}

/// What the pull loop of one source keeps between turns.
struct Turns {
    /// Waits between attempts at setting up or pulling, after a failure.
    retries: ExponentialBackoff,
    /// Pauses of the pulls after the sink dropped a message.
    sink_pauses: ExponentialBackoff,
    sends: JoinSet<Outcome>,
    /// The ack id of each send in flight.
    in_flight: HashMap<tokio::task::Id, String>,
    /// The pull running, if any.
    pulling: Option<PullFuture>,
    /// Whether the topic and the subscription are set up.
    set_up: bool,
    /// Whether the source was last reported Ready.
    ready: bool,
    /// Pulls wait until then (after a failure, or after the sink dropped a message).
    pause_until: Instant,
}

impl Turns {
    fn new() -> Self {
        Self {
            retries: restart_delays(),
            sink_pauses: restart_delays(),
            sends: JoinSet::new(),
            in_flight: HashMap::new(),
            pulling: None,
            set_up: false,
            ready: false,
            pause_until: Instant::now(),
        }
    }

    /// A send finished: a message the sink dropped pauses the pulls, one it took ends the
    /// pause schedule.
    fn sent(&mut self, done: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        let outcome = match done {
            Ok((id, o)) => {
                self.in_flight.remove(&id);
                o
            }
            Err(e) => {
                self.in_flight.remove(&e.id());
                return;
            }
        };
        match outcome {
            Outcome::Nacked => {
                self.pause_until = Instant::now() + self.sink_pauses.next().unwrap_or(MAX_BACKOFF);
            }
            Outcome::Acked => self.sink_pauses = restart_delays(),
            Outcome::AckFailed | Outcome::Unreadable => {}
        }
    }
}

/// The result of the pull running (never resolves when none is).
async fn next_pull(pulling: &mut Option<PullFuture>) -> Result<Vec<Received>, client::Error> {
    match pulling {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn run(ctx: Arc<Ctx>, source: Arc<Source>, mut stop: StopSignal) {
    let Adapter::PubSub(cfg) = &source.adapter else {
        return;
    };
    let Some(host) = ctx.config.pubsub_emulator_host.clone() else {
        ctx.report.not_ready(
            &source.uid,
            "CredentialsNotSupported",
            "Knit reaches Pub/Sub only through the emulator: set PUBSUB_EMULATOR_HOST \
             (authenticating to Google Cloud with spec.secret is not implemented)",
        );
        stop.stopped().await;
        return;
    };
    let client = match Client::emulator(&host) {
        Ok(c) => c,
        Err(e) => {
            ctx.report
                .not_ready(&source.uid, "ClientFailed", e.to_string());
            stop.stopped().await;
            return;
        }
    };
    let topic = format!("projects/{}/topics/{}", cfg.project, cfg.topic);
    let puller = Puller {
        emitter: Arc::new(Emitter::new(&ctx.dispatch, &source)),
        client,
        project: cfg.project.clone(),
        topic_id: cfg.topic.clone(),
        subscription: format!(
            "projects/{}/subscriptions/{}",
            cfg.project, cfg.subscription
        ),
        spec: SubscriptionSpec {
            topic,
            ack_deadline_seconds: cfg.ack_deadline_seconds.clamp(10, 600),
            retain_acked_messages: cfg.retain_acked_messages,
            retention_seconds: cfg.retention_seconds,
        },
        drops: Arc::new(AtomicU32::new(0)),
        ctx,
        source,
    };
    puller.run(stop).await;
}

impl Puller {
    /// Create the topic and the subscription, or bring an existing subscription in line.
    async fn ensure(&self) -> Result<(), client::Error> {
        if self.client.create_topic(&self.spec.topic).await? {
            tracing::info!(source = %self.source.reference, topic = %self.spec.topic, "topic created");
        }
        if self
            .client
            .create_subscription(&self.subscription, &self.spec)
            .await?
        {
            tracing::info!(source = %self.source.reference, subscription = %self.subscription, "subscription created");
            return Ok(());
        }
        let existing = self.client.get_subscription(&self.subscription).await?;
        if existing.topic != self.spec.topic {
            tracing::warn!(source = %self.source.reference, subscription = %self.subscription,
                old_topic = %existing.topic, topic = %self.spec.topic,
                "the subscription reads another topic: recreated");
            self.client.delete_subscription(&self.subscription).await?;
            self.client
                .create_subscription(&self.subscription, &self.spec)
                .await?;
            return Ok(());
        }
        let retention = self.spec.retention_seconds.map(|s| format!("{s}s"));
        if existing.ack_deadline_seconds != self.spec.ack_deadline_seconds
            || existing.retain_acked_messages != self.spec.retain_acked_messages
            || (retention.is_some() && existing.message_retention_duration != retention)
        {
            self.client
                .update_subscription(&self.subscription, &self.spec)
                .await?;
            tracing::info!(source = %self.source.reference, subscription = %self.subscription, "subscription updated");
        }
        Ok(())
    }

    fn report_ready(&self) {
        self.ctx.report.ready(
            &self.source.uid,
            &[
                ("subscriptionId", event::subscription_id(&self.subscription)),
                ("projectId", &self.project),
            ],
            0,
        );
    }

    fn pull(&self, max: usize) -> PullFuture {
        let client = self.client.clone();
        let sub = self.subscription.clone();
        Box::pin(async move { client.pull(&sub, max).await })
    }

    async fn run(self, mut stop: StopSignal) {
        let mut t = Turns::new();
        let why = loop {
            if !t.set_up {
                if let Some(why) = self.set_up(&mut t, &mut stop).await {
                    break why;
                }
                if !t.set_up {
                    continue;
                }
            }
            let free = MAX_IN_FLIGHT.saturating_sub(t.sends.len());
            if t.pulling.is_none() && free > 0 && Instant::now() >= t.pause_until {
                t.pulling = Some(self.pull(free.min(MAX_PULL)));
            }
            let paused = t.pulling.is_none() && free > 0;
            tokio::select! {
                why = stop.stopped() => break why,
                Some(done) = t.sends.join_next_with_id(), if !t.sends.is_empty() => t.sent(done),
                () = tokio::time::sleep_until(t.pause_until), if paused => {}
                r = next_pull(&mut t.pulling), if t.pulling.is_some() => {
                    t.pulling = None;
                    self.pulled(&mut t, r);
                }
            }
        };
        t.pulling = None;
        self.finish(why, t.sends, t.in_flight).await;
    }

    /// Set up the topic and the subscription once: Ready when done, else not ready and a
    /// wait on the restart schedule. `Some` when told to stop meanwhile.
    async fn set_up(&self, t: &mut Turns, stop: &mut StopSignal) -> Option<Stop> {
        let result = tokio::select! {
            why = stop.stopped() => return Some(why),
            r = self.ensure() => r,
        };
        match result {
            Ok(()) => {
                t.set_up = true;
                t.ready = true;
                t.retries = restart_delays();
                self.report_ready();
                None
            }
            Err(e) => {
                tracing::warn!(source = %self.source.reference, error = %e, "cannot set up the subscription");
                self.ctx
                    .report
                    .not_ready(&self.source.uid, "SubscriptionFailed", e.to_string());
                t.ready = false;
                let delay = t.retries.next().unwrap_or(MAX_BACKOFF);
                tokio::select! {
                    why = stop.stopped() => Some(why),
                    () = tokio::time::sleep(delay) => None,
                }
            }
        }
    }

    /// Start a send per message pulled, or take a failed pull into account.
    fn pulled(&self, t: &mut Turns, r: Result<Vec<Received>, client::Error>) {
        match r {
            Ok(messages) => {
                if !t.ready {
                    t.ready = true;
                    self.report_ready();
                }
                t.retries = restart_delays();
                for m in messages {
                    let ack_id = m.ack_id.clone();
                    let handle = t.sends.spawn(self.deliver(m));
                    t.in_flight.insert(handle.id(), ack_id);
                }
            }
            // An empty long poll that reached `PULL_TIMEOUT`: pull again.
            Err(e) if e.timed_out() => {}
            Err(e) if e.not_found() => {
                tracing::warn!(source = %self.source.reference, subscription = %self.subscription, "the subscription is gone: recreating it");
                t.set_up = false;
            }
            Err(e) => {
                tracing::warn!(source = %self.source.reference, error = %e, "pull failed");
                self.ctx
                    .report
                    .not_ready(&self.source.uid, "PullFailed", e.to_string());
                t.ready = false;
                t.pause_until = Instant::now() + t.retries.next().unwrap_or(MAX_BACKOFF);
            }
        }
    }

    async fn finish(
        &self,
        why: Stop,
        mut sends: JoinSet<Outcome>,
        in_flight: HashMap<tokio::task::Id, String>,
    ) {
        match why {
            Stop::Shutdown => {
                // Let sends in flight finish and ack (the runtime bounds the wait).
                while sends.join_next().await.is_some() {}
            }
            Stop::Replaced => {
                sends.abort_all();
                let ids: Vec<&str> = in_flight.values().map(String::as_str).collect();
                if !ids.is_empty()
                    && let Err(e) = self
                        .client
                        .modify_ack_deadline(&self.subscription, &ids, 0)
                        .await
                {
                    tracing::debug!(source = %self.source.reference, error = %e,
                        "cannot hand back messages in flight: redelivered after their ack deadline");
                }
            }
            Stop::Removed => {
                sends.abort_all();
                match self.client.delete_subscription(&self.subscription).await {
                    Ok(_) => {
                        tracing::info!(source = %self.source.reference, subscription = %self.subscription, "subscription deleted")
                    }
                    Err(e) => {
                        tracing::warn!(source = %self.source.reference, subscription = %self.subscription,
                            error = %e, "cannot delete the subscription")
                    }
                }
            }
        }
    }

    /// Send one message, keep its lease while the send runs, then ack or nack it.
    fn deliver(&self, m: Received) -> impl Future<Output = Outcome> + Send + 'static {
        let client = self.client.clone();
        let emitter = self.emitter.clone();
        let reference = self.source.reference.clone();
        let subscription = self.subscription.clone();
        let deadline = self.spec.ack_deadline_seconds;
        let drops = self.drops.clone();
        let converted = event::event(&self.project, &self.topic_id, &subscription, &m.message);
        async move {
            let ack_id = m.ack_id.as_str();
            let ev = match converted {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(source = %reference, error = %e, "message dropped: it cannot become an event");
                    let _ = client.acknowledge(&subscription, &[ack_id]).await;
                    return Outcome::Unreadable;
                }
            };
            let id = ev.id.clone();
            let every = Duration::from_secs(u64::from(deadline / 2).max(1));
            let mut lease = tokio::time::interval_at(Instant::now() + every, every);
            let send = emitter.emit(ev);
            tokio::pin!(send);
            let fate = loop {
                tokio::select! {
                    fate = &mut send => break fate,
                    _ = lease.tick() => {
                        if let Err(e) = client.modify_ack_deadline(&subscription, &[ack_id], deadline).await {
                            tracing::debug!(source = %reference, message_id = %id, error = %e, "cannot extend the ack deadline");
                        }
                    }
                }
            };
            if !accepted(&fate) {
                let delay = nack_delay(drops.fetch_add(1, Ordering::Relaxed).saturating_add(1));
                tracing::warn!(source = %reference, message_id = %id, fate = ?fate, redeliver_in_s = delay,
                    "the sink did not take the message: nacked, Pub/Sub redelivers it");
                if let Err(e) = client
                    .modify_ack_deadline(&subscription, &[ack_id], delay)
                    .await
                {
                    tracing::debug!(source = %reference, message_id = %id, error = %e,
                        "nack failed: redelivered after the ack deadline");
                }
                return Outcome::Nacked;
            }
            drops.store(0, Ordering::Relaxed);
            let ids = [ack_id];
            match (|| client.acknowledge(&subscription, &ids))
                .retry(ACK_RETRIES)
                .await
            {
                Ok(()) => Outcome::Acked,
                Err(e) => {
                    tracing::warn!(source = %reference, message_id = %id, error = %e,
                        "delivered but not acknowledged: Pub/Sub will deliver it again");
                    Outcome::AckFailed
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nacks_are_immediate_at_first_then_delayed_more_and_more() {
        let delays: Vec<u32> = (1..=9).map(nack_delay).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(nack_delay(u32::MAX), 30);
    }
}
