//! Crash tests of the NATS JetStream backend with real processes: a private `nats-server -js`
//! (file storage), the `knit` binary killed with SIGKILL mid-stream and restarted, the NATS
//! server itself killed and restarted on its storage, and plain HTTP sinks. What must hold
//! (kafka-nats.md §5.5, issue #21 §4): every event that got a 202 arrives at least once, and
//! each knit kill replays at most 1% of the stream; a poison event reaches the dead-letter sink
//! after exactly `retry + 1` attempts although knit dies during its backoff; a dead-letter
//! sink that is down holds the event across a kill; and while NATS is down events get 503,
//! never 202, and knit reconnects by itself. The counts are printed (`--nocapture`).
//!
//! The Triggers and Subscriptions of the kill tests set `timeout: PT3S`: JetStream hands a
//! killed process's records out again after `ack_wait`, which knit derives from the delivery
//! timeout (twice it, at most 6 s, plus a second), so recovery takes 7 s.

mod common;

use common::crash::{
    dead_letter_sink_down, dead_lettered_after, kill_9_three_times, log_server_killed_mid_stream,
    post_until_accepted, the_dead_letter_sink_back_after_a_kill, within_recovery,
};
use common::nats::NatsServer;
use common::route::{Backend, Via};
use common::sink::{Reply, Sink};
use common::{Knit, http};

/// The stream of the Broker `b` the tests use, and its retry counts' stream.
const STREAM: &str = "KN_BROKER_DEFAULT__B";
const RETRY_STREAM: &str = "KNIT_RETRY_KN_BROKER_DEFAULT__B";

fn nats(knit: &Knit) -> &NatsServer {
    knit.nats.as_ref().expect("a NATS-backed knit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_while_20000_events_flow_through_a_broker_loses_nothing() {
    let counts = kill_9_three_times(Via::Trigger(Backend::Nats), "delivery: {timeout: PT3S}").await;
    assert_eq!(counts.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_while_20000_events_flow_through_a_channel_loses_nothing() {
    let counts = kill_9_three_times(
        Via::Subscription(Backend::Nats),
        "delivery: {timeout: PT3S}",
    )
    .await;
    assert_eq!(counts.lost, 0);
}

/// A poison event (its subscriber always answers 500) with `retry: 3` reaches the dead-letter
/// sink after exactly 4 attempts although knit is killed during the backoff before the third:
/// the attempt count is stored in the stream's retry-count stream before the nak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_reaches_the_dead_letter_sink_after_exactly_the_configured_attempts() {
    let subscriber = Sink::start().await;
    subscriber.default_reply(Reply::status(500));
    let dls = Sink::start().await;
    let delivery = format!(
        "delivery: {{retry: 3, backoffPolicy: linear, backoffDelay: PT2S, timeout: PT3S, deadLetterSink: {{uri: '{}'}}}}",
        dls.url
    );
    let (mut knit, url) = Via::Trigger(Backend::Nats)
        .start(&subscriber, &delivery, &[])
        .await;
    post_until_accepted(&http(), &url, "poison", None).await;
    // Attempt 2 failed and its count was stored (the second count stored) for attempt 3, 4 s
    // later.
    within_recovery("attempt 2's count stored", || async {
        let s = nats(&knit).stream(RETRY_STREAM).await?;
        (subscriber.received().len() >= 2 && s["state"]["last_seq"] == 2).then_some(())
    })
    .await;
    assert_eq!(subscriber.received().len(), 2);
    knit.kill_and_restart();
    dead_lettered_after(&dls, &subscriber, 4).await;
}

/// A dead-letter sink that is down holds the event: it stays unacknowledged on the Trigger's
/// consumer (even across a kill), and once the sink is back the event arrives and is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_sink_that_is_down_holds_the_event() {
    let (mut knit, _subscriber, dls) =
        dead_letter_sink_down(Via::Trigger(Backend::Nats), ", timeout: PT3S").await;
    let c = within_recovery("the event held, not acked", || held(&knit, 1)).await;
    assert_eq!(c["num_ack_pending"], 1, "{c}");
    the_dead_letter_sink_back_after_a_kill(&mut knit, &dls).await;
    within_recovery("the event acked", || held(&knit, 0)).await;
}

/// The Trigger's consumer when it holds `unacked` records and has none waiting.
async fn held(knit: &Knit, unacked: u64) -> Option<serde_json::Value> {
    let s = nats(knit).stream(STREAM).await?;
    let c = s["consumer_detail"].as_array()?.first()?.clone();
    (c["num_ack_pending"] == unacked && c["num_pending"] == 0).then_some(c)
}

/// The NATS server killed (-9) mid-stream and restarted on its storage (file storage, same
/// port): knit reconnects by itself, every event accepted (202) before, during and after is
/// delivered, and every event sent and answered while NATS was down got 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_server_killed_mid_stream_loses_nothing_that_was_accepted() {
    let sink = Sink::start().await;
    let (mut knit, url) = Via::Trigger(Backend::Nats).start(&sink, "", &[]).await;
    log_server_killed_mid_stream(
        "NATS server",
        &mut knit,
        &url,
        &sink,
        |k: &mut Knit| k.nats.as_mut().expect("NATS").kill(),
        |k: &mut Knit| k.nats.as_mut().expect("NATS").run(),
    )
    .await;
}
