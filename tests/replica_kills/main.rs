//! Duplicates per kill (issue #22 §2), with real processes: `knit run --kafka` on a real
//! Kafka-protocol broker (nisshi), and `knit run --nats` on a private nats-server, killed while
//! numbered events flow through a Broker to a Trigger's recording sink. Every event that got a
//! 202 must arrive (nothing lost), and a kill may repeat at most 1% of the stream: what a
//! process finished before it died is not delivered again, only what it had in flight. Each
//! scenario is written once and run on both engines (on JetStream what a killed process held
//! comes back after the consumer's `ack_wait`, 7 s).
//!
//! - Three replicas (one consumer group: each event is delivered once by the system, whichever
//!   replica delivers it), 12,000 events posted round-robin to their ingresses; one replica
//!   killed (SIGKILL) and restarted at 30% delivered, another at 60%, each time while the sink
//!   holds 20 deliveries and the stream goes on past them. After each kill: every event
//!   accepted before it arrived, the restarted replica delivers again (the group rebalanced),
//!   every event accepted by then arrived and the stream moved on; the duplicates that showed
//!   meanwhile are that kill's.
//! - One replica killed three times 2 s apart from 25% of 20,000 events delivered, the sink
//!   holding 20 deliveries unanswered before each kill (in flight when the process dies).
//! - Three replicas, 6,000 events, one stopped with SIGTERM mid-stream (taken out of service
//!   first, as a load balancer does).
//!
//! The figures are printed (`--nocapture`). A sender whose post got no answer (the replica was
//! killed while it held the request) posts the event again, to the next replica: that event may
//! have been accepted twice, and its second copy counts as a duplicate too (counted apart in
//! the figures; a handful at most).
//!
//! These tests start several knit processes: nextest runs them one at a time (test group
//! `multi-process` in .config/nextest.toml).

#![cfg(any(feature = "kafka", feature = "nats"))]

mod arrivals;
#[path = "../common/mod.rs"]
mod common;
mod evidence;
mod stream;

use std::time::{Duration, Instant};

use arrivals::{Arrivals, Hold, since, until_none_missing};
use common::crash::{RECOVERY, duplicates, within_recovery};
use common::replicas::{Engine, PATIENCE, counter, members};
use common::sink::Sink;
use common::{Knit, trigger};
use evidence::Evidence;
use stream::Stream;

const TRIGGER: &str = "Trigger/default/t";

/// The replicas' `RUST_LOG`: warnings, and what their consumers did with their partitions
/// (a few debug lines per rebalance), for a failure message.
const LOG: &str = "warn,knit_channels=info,knit_channels::kafka=debug,knit_dispatcher::engine=info";

/// Deliveries after a kill's recovery before its duplicates are counted (the replay of what the
/// killed process held comes before them).
const MOVE_ON: usize = 300;

/// The broker address of a replica once its Broker and Trigger are Ready.
async fn in_service(k: &Knit) -> String {
    k.ready_within("triggers", "t", PATIENCE).await;
    let o = k.ready_within("brokers", "b", PATIENCE).await;
    o["status"]["address"]["url"]
        .as_str()
        .expect("address")
        .to_string()
}

/// `n` replicas on `engine` with a Broker `b` of its backend and a Trigger `t` to `sink`, listing each
/// other; their Broker addresses.
async fn replicas_on(engine: &Engine, n: usize, sink: &Sink) -> (Vec<Knit>, Vec<String>) {
    let broker = engine.backend().broker("b", "");
    let t = trigger("t", "b", &sink.url, "");
    let files = [("b.yaml", broker.as_str()), ("t.yaml", t.as_str())];
    let replicas = engine.replicas_logging(n, &files, LOG);
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    members(&replicas.iter().collect::<Vec<_>>(), &ids).await;
    let mut urls = Vec::new();
    for k in &replicas {
        urls.push(in_service(k).await);
    }
    (replicas, urls)
}

/// The deliveries counted by each replica (since its last start).
async fn delivered(replicas: &[Knit]) -> Vec<u64> {
    counter(&replicas.iter().collect::<Vec<_>>(), TRIGGER, "delivered").await
}

/// Three replicas, 12,000 events round-robin over their ingresses; r1 killed (SIGKILL) and
/// restarted at 30% delivered, r2 at 60%, each time while the sink holds 20 deliveries (until
/// the kill) and 1,200 more passed them: nothing accepted is lost, and each kill repeats at most
/// 1% of the stream.
async fn three_replicas_two_kills_repeat_at_most_one_percent_each(engine: Engine) {
    const EVENTS: usize = 12_000;
    const HOLD: usize = 20;
    // Seconds of the stream, about a third of it delivered by the replica about to be killed: a
    // kill repeating what that replica finished after the first held delivery on each of its
    // partitions (not only what was held or in flight) repeats more than 1% (on main: 180 and
    // 127 with 600 here).
    const PAST: usize = 1_200;
    // On JetStream what the killed replica held comes back after `ack_wait` (about 7 s): the
    // stream goes slower there, so that it outlasts both recoveries, and it need not pass the
    // held deliveries by as much (each event is acknowledged on its own).
    let (pause, past) = match engine.name() {
        "nats" => (Duration::from_millis(20), 300),
        _ => (Duration::from_millis(10), PAST),
    };
    let began = Instant::now();
    let sink = Sink::start().await;
    // The held deliveries are answered right after the kill (those of the killed replica died
    // with it), before the group notices it died (6 s) and moves the others' partitions.
    let hold = Hold::start(&sink, RECOVERY);
    let (mut replicas, urls) = replicas_on(&engine, 3, &sink).await;
    let arrivals = Arrivals::new(&sink);
    // About 250 events a second in all on Kafka, 125 on JetStream: the stream outlasts both
    // recoveries.
    let mut stream = Stream::start(&urls, EVENTS, 4, pause);
    let evidence = Evidence {
        arrivals: &arrivals,
        via: stream.via.clone(),
        engine: &engine,
        began,
    };
    eprintln!(
        "{:>6.1?} three replicas in service, stream started",
        began.elapsed()
    );
    let mut dups_before = 0;
    let mut per_kill = Vec::new();
    let mut unanswered_before = 0;
    for (k, victim, percent) in [(1, 1, 30), (2, 2, 60)] {
        let at = EVENTS * percent / 100;
        within_recovery(&format!("{at} deliveries before kill {k}"), || async {
            (arrivals.count() >= at).then_some(())
        })
        .await;
        if k == 1 {
            dups_before = duplicates(&sink);
            eprintln!("before the kills: {dups_before} duplicates");
        }
        let stalled = Instant::now();
        hold.stall(&arrivals, HOLD, past).await;
        let each = delivered(&replicas).await;
        assert!(
            each.iter().filter(|d| **d > 0).count() > 1,
            "the replicas share the deliveries (one consumer group): {each:?}"
        );
        let count = arrivals.count();
        replicas[victim].kill();
        let killed = Instant::now();
        let held = hold.disarm();
        hold.release();
        eprintln!(
            "{:>6.1?} kill {k}: SIGKILL to r{victim} at {count} deliveries, {} accepted, {held} deliveries held by the sink (by any replica) since {} before; delivered by r0, r1, r2 since their start: {each:?}",
            began.elapsed(),
            stream.accepted_count(),
            since(stalled, killed)
        );
        let before = stream.accepted();
        replicas[victim].kill_and_restart();
        let restarted = Instant::now();
        let missing = until_none_missing(|| arrivals.missing(&before)).await;
        evidence
            .none_missing(
                missing,
                &format!("events accepted before kill {k}"),
                &before,
                &replicas,
            )
            .await;
        let caught_up = arrivals.last_of(&before).expect("they arrived");
        within_recovery(
            &format!("r{victim} to deliver again after kill {k}"),
            || async {
                let back = counter(&[&replicas[victim]], TRIGGER, "delivered").await[0] > 0;
                (back || stream.all_accepted()).then_some(())
            },
        )
        .await;
        let back = Instant::now();
        // What the killed replica had finished but not committed is read again after the
        // rebalance, before what was accepted since the kill (later in the same partitions):
        // once all of that arrived and the stream moved on, this kill's duplicates showed.
        let by_then = stream.accepted();
        let missing = until_none_missing(|| arrivals.missing(&by_then)).await;
        evidence
            .none_missing(
                missing,
                &format!("events accepted before r{victim} delivered again after kill {k}"),
                &by_then,
                &replicas,
            )
            .await;
        let after = (arrivals.count() + MOVE_ON).min(EVENTS);
        within_recovery(&format!("the stream to move on after kill {k}"), || async {
            (arrivals.count() >= after).then_some(())
        })
        .await;
        let dups = duplicates(&sink);
        let unanswered = stream.unanswered.lock().len();
        eprintln!(
            "{:>6.1?} kill {k}: the restart took {}; everything accepted before the kill ({} events) arrived {} after the restart ({} after the kill); r{victim} delivers again ({} after the restart); {} duplicates ({} posts without answer meanwhile)",
            began.elapsed(),
            since(killed, restarted),
            before.len(),
            since(restarted, caught_up),
            since(killed, caught_up),
            since(restarted, back),
            dups - dups_before,
            unanswered - unanswered_before,
        );
        per_kill.push(dups - dups_before);
        dups_before = dups;
        unanswered_before = unanswered;
    }
    let (accepted, unanswered) = stream.finish().await;
    assert_eq!(accepted.len(), EVENTS, "every event was accepted");
    let lost = until_none_missing(|| arrivals.missing(&accepted)).await;
    let total = duplicates(&sink);
    eprintln!(
        "{:>6.1?} three replicas, two kills, {EVENTS} events: lost {lost}, duplicates per kill {per_kill:?}, after the kills {}, in all {total} ({} of events posted again after a post without answer); delivered by r0, r1, r2 since their start: {:?}",
        began.elapsed(),
        total - dups_before,
        arrivals.duplicates_among(&unanswered),
        delivered(&replicas).await
    );
    evidence
        .none_missing(lost, "accepted events", &accepted, &replicas)
        .await;
    for (k, d) in per_kill.iter().enumerate() {
        assert!(
            *d <= EVENTS / 100,
            "kill {} repeated {d} events (more than 1% of {EVENTS})",
            k + 1
        );
    }
}

/// One replica, 20,000 events; from 25% delivered it is killed (SIGKILL) and restarted three
/// times 2 s apart, the sink holding 20 deliveries unanswered before each kill (the first
/// kill comes once 2,000 more deliveries passed them; the restarted processes hold what they
/// delivered in the 2 s): nothing accepted is lost, and the three kills repeat at most 3 × 1%
/// of the stream.
async fn one_replica_killed_three_times_with_deliveries_held_repeats_at_most_one_percent_each(
    engine: Engine,
) {
    const EVENTS: usize = 20_000;
    const KILLS: usize = 3;
    const HOLD: usize = 20;
    const APART: Duration = Duration::from_secs(2);
    // Seconds of the stream: a kill repeating what was finished after the first held delivery
    // on its partition (not only what was held or in flight) repeats about 1% or more for
    // each partition holding one (on main: 341 with 1,000 here, about a third of them).
    const PAST: usize = 2_000;
    let began = Instant::now();
    let sink = Sink::start().await;
    // Longer than the processes that sent them live.
    let hold = Hold::start(&sink, Duration::from_secs(60));
    let (mut replicas, urls) = replicas_on(&engine, 1, &sink).await;
    let knit = &mut replicas[0];
    let arrivals = Arrivals::new(&sink);
    // Up to about 1,000 events a second (as `kill_9_three_times`; fewer on a busy machine).
    let mut stream = Stream::start(&urls, EVENTS, 4, Duration::from_millis(4));
    let evidence = Evidence {
        arrivals: &arrivals,
        via: stream.via.clone(),
        engine: &engine,
        began,
    };
    let at = EVENTS / 4;
    within_recovery(
        &format!("{at} deliveries before the first kill"),
        || async { (arrivals.count() >= at).then_some(()) },
    )
    .await;
    let dups_before = duplicates(&sink);
    eprintln!(
        "{:>6.1?} {} deliveries, {dups_before} duplicates; the sink holds the next {HOLD}",
        began.elapsed(),
        arrivals.count()
    );
    hold.stall(&arrivals, HOLD, PAST).await;
    let mut kills: Vec<Instant> = Vec::new();
    let mut restarts: Vec<Instant> = Vec::new();
    for k in 1..=KILLS {
        if let Some(last) = kills.last() {
            // The scenario's spacing (kills 2 s apart), not a wait for something to happen.
            tokio::time::sleep_until((*last + APART).into()).await;
        }
        let count = arrivals.count();
        knit.kill();
        kills.push(Instant::now());
        let held = hold.disarm();
        let accepted = stream.accepted_count();
        if k < KILLS {
            hold.arm(HOLD);
        }
        knit.kill_and_restart();
        restarts.push(Instant::now());
        eprintln!(
            "{:>6.1?} kill {k}: SIGKILL at {count} deliveries, {accepted} accepted, {held} deliveries held by the sink; the restart took {}",
            began.elapsed(),
            since(kills[k - 1], restarts[k - 1])
        );
    }
    let last = restarts[KILLS - 1];
    let backlog = stream.accepted();
    let first = within_recovery("a delivery after the last restart", || async {
        arrivals.first_after(last)
    })
    .await;
    let missing = until_none_missing(|| arrivals.missing(&backlog)).await;
    evidence
        .none_missing(
            missing,
            "events accepted before the last restart",
            &backlog,
            &replicas,
        )
        .await;
    let drained = arrivals.last_of(&backlog).expect("they arrived");
    eprintln!(
        "{:>6.1?} after the last restart: first delivery {}, the backlog ({} events accepted before it) delivered {}",
        began.elapsed(),
        since(last, first),
        backlog.len(),
        since(last, drained)
    );
    let (accepted, unanswered) = stream.finish().await;
    assert_eq!(accepted.len(), EVENTS, "every event was accepted");
    let lost = until_none_missing(|| arrivals.missing(&accepted)).await;
    let total = duplicates(&sink);
    let by_window = arrivals.duplicates_by_first_arrival(&kills);
    eprintln!(
        "{:>6.1?} one replica, {KILLS} kills 2 s apart, {EVENTS} events: lost {lost}, duplicates {total} ({dups_before} before the kills; by the first delivery of their event: before kill 1, between kills 1 and 2, 2 and 3, after kill 3: {by_window:?}; {} of events posted again after a post without answer)",
        began.elapsed(),
        arrivals.duplicates_among(&unanswered)
    );
    evidence
        .none_missing(lost, "accepted events", &accepted, &replicas)
        .await;
    assert!(
        total <= KILLS * EVENTS / 100,
        "{KILLS} kills repeated {total} events (more than {KILLS} × 1% of {EVENTS})"
    );
}

/// Three replicas, 6,000 events round-robin over their ingresses; at half of them delivered r1
/// is taken out of service and stopped with SIGTERM (it finishes what it holds, commits and
/// leaves the group): nothing accepted is lost, and at most 1% is repeated.
async fn one_of_three_replicas_stopped_with_sigterm_repeats_at_most_one_percent(engine: Engine) {
    const EVENTS: usize = 6_000;
    let began = Instant::now();
    let sink = Sink::start().await;
    let (mut replicas, urls) = replicas_on(&engine, 3, &sink).await;
    let arrivals = Arrivals::new(&sink);
    let mut stream = Stream::start(&urls, EVENTS, 4, Duration::from_millis(20));
    let evidence = Evidence {
        arrivals: &arrivals,
        via: stream.via.clone(),
        engine: &engine,
        began,
    };
    let at = EVENTS / 2;
    within_recovery(&format!("{at} deliveries before the SIGTERM"), || async {
        (arrivals.count() >= at).then_some(())
    })
    .await;
    let dups_before = duplicates(&sink);
    eprintln!(
        "{:>6.1?} SIGTERM to r1 at {} deliveries, {} accepted, {dups_before} duplicates; delivered by r0, r1, r2: {:?}",
        began.elapsed(),
        arrivals.count(),
        stream.accepted_count(),
        delivered(&replicas).await
    );
    stream.remove(&urls[1]);
    let stopping = Instant::now();
    let status = replicas[1].terminate(PATIENCE).await;
    assert!(status.success(), "r1 after SIGTERM: {status}");
    let exited = Instant::now();
    let before = stream.accepted();
    members(&[&replicas[0], &replicas[2]], &["r0", "r2"]).await;
    let missing = until_none_missing(|| arrivals.missing(&before)).await;
    evidence
        .none_missing(
            missing,
            "events accepted before r1 exited",
            &before,
            &replicas,
        )
        .await;
    let caught_up = arrivals.last_of(&before).expect("they arrived");
    let (accepted, unanswered) = stream.finish().await;
    assert_eq!(accepted.len(), EVENTS, "every event was accepted");
    let lost = until_none_missing(|| arrivals.missing(&accepted)).await;
    let total = duplicates(&sink);
    eprintln!(
        "{:>6.1?} SIGTERM to one of three replicas, {EVENTS} events: r1 exited {} after the SIGTERM; everything accepted before it exited arrived {} after; lost {lost}, duplicates {total} ({} after the SIGTERM; {} of events posted again after a post without answer); delivered by r0, r2: {:?}",
        began.elapsed(),
        since(stopping, exited),
        since(exited, caught_up),
        total - dups_before,
        arrivals.duplicates_among(&unanswered),
        counter(&[&replicas[0], &replicas[2]], TRIGGER, "delivered").await
    );
    evidence
        .none_missing(lost, "accepted events", &accepted, &replicas)
        .await;
    assert!(
        total <= EVENTS / 100,
        "a SIGTERM repeated {total} events (more than 1% of {EVENTS})"
    );
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_three_replicas_two_kills_repeat_at_most_one_percent_each() {
    three_replicas_two_kills_repeat_at_most_one_percent_each(Engine::kafka()).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_three_replicas_two_kills_repeat_at_most_one_percent_each() {
    three_replicas_two_kills_repeat_at_most_one_percent_each(Engine::nats()).await;
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_one_replica_killed_three_times_with_deliveries_held_repeats_at_most_one_percent_each()
 {
    one_replica_killed_three_times_with_deliveries_held_repeats_at_most_one_percent_each(
        Engine::kafka(),
    )
    .await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_one_replica_killed_three_times_with_deliveries_held_repeats_at_most_one_percent_each()
{
    one_replica_killed_three_times_with_deliveries_held_repeats_at_most_one_percent_each(
        Engine::nats(),
    )
    .await;
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_one_of_three_replicas_stopped_with_sigterm_repeats_at_most_one_percent() {
    one_of_three_replicas_stopped_with_sigterm_repeats_at_most_one_percent(Engine::kafka()).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_one_of_three_replicas_stopped_with_sigterm_repeats_at_most_one_percent() {
    one_of_three_replicas_stopped_with_sigterm_repeats_at_most_one_percent(Engine::nats()).await;
}
