//! What the crash tests of every durable backend share (kafka-nats.md §5.5): posting until an
//! event is accepted while knit is down or restarting, counting duplicates at a sink, the
//! stream of 20,000 numbered events during which knit is killed (SIGKILL) three times, and
//! the stream during which the log's own server (nats-server, nisshi) is killed and restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::route::Via;
use super::sink::{Reply, Sink};
use super::{Knit, eventually_for, http};

/// How long recovery after a kill may take (a new process rejoins the Kafka consumer group
/// once the killed member's session expires; JetStream hands the killed process's records out
/// again once their `ack_wait` passes).
pub const RECOVERY: Duration = Duration::from_secs(120);

/// Poll `check` until it returns `Some`, up to [`RECOVERY`].
pub async fn within_recovery<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_for(what, RECOVERY, check).await
}

/// The POST of event `id` (binary mode, type `crash.test`).
pub fn event_request(client: &reqwest::Client, url: &str, id: &str) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/crash")
        .header("ce-type", "crash.test")
        .header("content-type", "application/json")
        .body(format!("{{\"id\":\"{id}\"}}"))
}

/// Wait for the poison event (its subscriber answered 500) at the dead-letter sink `dls`;
/// the subscriber must have had exactly `attempts` attempts. Prints the count.
pub async fn dead_lettered_after(dls: &Sink, subscriber: &Sink, attempts: usize) {
    let dead = within_recovery("the dead letter", || async {
        let r = dls.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(dead[0].id(), "poison");
    assert_eq!(dead[0].ext("knativeerrorcode").as_deref(), Some("500"));
    let got = subscriber.received().len();
    eprintln!("poison event across a kill: {got} attempts, {attempts} wanted");
    assert_eq!(got, attempts, "retry + 1 attempts");
}

/// Through `via` to a subscriber that always answers 500, with `retry: 1` (backoff 0.1 s,
/// and `delivery` lines of its own) and a dead-letter sink answering 503: the event `held` is
/// accepted and refused by the dead-letter sink three times. Returns knit, the subscriber and
/// the dead-letter sink.
pub async fn dead_letter_sink_down(via: Via, delivery: &str) -> (Knit, Sink, Sink) {
    let subscriber = Sink::start().await;
    subscriber.default_reply(Reply::status(500));
    let dls = Sink::start().await;
    dls.default_reply(Reply::status(503));
    let delivery = format!(
        "delivery: {{retry: 1, backoffPolicy: linear, backoffDelay: PT0.1S, deadLetterSink: {{uri: '{}'}}{delivery}}}",
        dls.url
    );
    let (knit, url) = via.start(&subscriber, &delivery, &[]).await;
    post_until_accepted(&http(), &url, "held", None).await;
    within_recovery("the dead-letter sink to refuse it a few times", || async {
        (dls.received().len() >= 3).then_some(())
    })
    .await;
    (knit, subscriber, dls)
}

/// Kill knit (SIGKILL) and restart it while the dead-letter sink `dls` refuses `held`; once
/// the restarted knit tried it again, the sink takes events: `held` must arrive.
pub async fn the_dead_letter_sink_back_after_a_kill(knit: &mut Knit, dls: &Sink) {
    knit.kill_and_restart();
    let before = dls.received().len();
    within_recovery(
        "the restarted knit to try the dead-letter sink again",
        || async { (dls.received().len() > before).then_some(()) },
    )
    .await;
    dls.default_reply(Reply::status(202));
    let refused = dls.received().len();
    within_recovery("the event to reach the dead-letter sink", || async {
        let r = dls.received();
        r.iter()
            .skip(refused)
            .any(|r| r.id() == "held")
            .then_some(())
    })
    .await;
}

/// POST one event until it gets a 202 (knit may be down, or restarting); returns the status
/// answers seen before the 202.
pub async fn post_until_accepted(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    key: Option<&str>,
) -> usize {
    let mut failures = 0;
    let deadline = Instant::now() + RECOVERY;
    loop {
        let mut req = event_request(client, url, id);
        if let Some(k) = key {
            req = req.header("ce-partitionkey", k);
        }
        match req.send().await {
            Ok(r) if r.status() == 202 => return failures,
            Ok(r) => assert!(
                matches!(r.status().as_u16(), 404 | 429 | 503),
                "unexpected {} for {id}",
                r.status()
            ),
            Err(_) => {}
        }
        failures += 1;
        assert!(Instant::now() < deadline, "{id} never accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deliveries at `sink` beyond the first of each event id.
pub fn duplicates(sink: &Sink) -> usize {
    let mut seen = BTreeMap::<String, usize>::new();
    for r in sink.received() {
        *seen.entry(r.id()).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

/// What [`kill_9_three_times`] counted.
#[derive(Debug)]
pub struct KillCounts {
    /// Events accepted (202) and never delivered.
    pub lost: usize,
    /// Duplicates that showed after each kill (once everything accepted before it arrived and
    /// the stream moved on).
    pub per_kill: Vec<usize>,
    /// Duplicates in all.
    pub total: usize,
}

/// 20,000 numbered events through `via` (`extra` on its Trigger or Subscription) from four
/// senders at about 1,000 a second, while knit is killed (SIGKILL) and restarted after a
/// quarter, half and three quarters of them arrived. After each kill it waits until every
/// event accepted before the kill arrived and 500 more came, then counts the duplicates that
/// kill caused. Panics when an accepted event never arrives or a kill replayed more than 1%.
pub async fn kill_9_three_times(via: Via, extra: &str) -> KillCounts {
    const EVENTS: usize = 20_000;
    const SENDERS: usize = 4;
    let sink = Sink::start().await;
    let (mut knit, url) = via.start(&sink, extra, &[]).await;
    let accepted = Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (next, url, accepted) = (next.clone(), url.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            let client = http();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= EVENTS {
                    return;
                }
                let id = format!("n{i:05}");
                post_until_accepted(&client, &url, &id, None).await;
                accepted.lock().insert(id);
                // About 1,000 events a second in all: a steady stream, not a flood.
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        }));
    }
    let arrived = |wanted: &BTreeSet<String>| {
        let got: BTreeSet<String> = sink.received().iter().map(|r| r.id()).collect();
        wanted.difference(&got).count()
    };
    let mut duplicates_before = 0;
    let mut per_kill = Vec::new();
    for k in 1..=3 {
        let at = EVENTS * k / 4;
        within_recovery(&format!("{at} deliveries before kill {k}"), || async {
            (sink.received().len() >= at).then_some(())
        })
        .await;
        knit.kill_and_restart();
        let before_kill = accepted.lock().clone();
        // Duplicates caused by this kill show once what it held came back and the stream has
        // moved on past the replay.
        let after = sink.received().len() + 500;
        within_recovery("the stream to move on after the restart", || async {
            (sink.received().len() >= after.min(EVENTS) && arrived(&before_kill) == 0).then_some(())
        })
        .await;
        let dups = duplicates(&sink);
        per_kill.push(dups - duplicates_before);
        duplicates_before = dups;
    }
    for s in senders {
        s.await.expect("sender");
    }
    let accepted = accepted.lock().clone();
    assert_eq!(
        accepted.len(),
        EVENTS,
        "every event was eventually accepted"
    );
    let lost = within_recovery("every accepted event at the sink", || async {
        let missing = arrived(&accepted);
        (missing == 0).then_some(missing)
    })
    .await;
    let total = duplicates(&sink);
    let counts = KillCounts {
        lost,
        per_kill,
        total,
    };
    eprintln!("kill -9 ×3 via {via:?}, {EVENTS} events: {counts:?}");
    for (k, d) in counts.per_kill.iter().enumerate() {
        assert!(
            *d <= EVENTS / 100,
            "kill {} replayed {d} events (more than 1%)",
            k + 1
        );
    }
    counts
}

/// One POST, its answer and when it was sent and answered.
struct Sent {
    id: String,
    status: Option<u16>,
    start: Instant,
    end: Instant,
}

/// Senders posting numbered events, each once, until stopped.
struct Senders {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sent>>>,
    accepted: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Senders {
    fn start(url: &str, n: usize) -> Senders {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let tasks = (0..n)
            .map(|_| {
                let (stop, next, url) = (stop.clone(), next.clone(), url.to_string());
                let (accepted, done) = (accepted.clone(), done.clone());
                tokio::spawn(async move {
                    let client = http();
                    let mut sent = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("n{:06}", next.fetch_add(1, Ordering::Relaxed));
                        let start = Instant::now();
                        let status = send_once(&client, &url, &id).await;
                        if status == Some(202) {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                        let end = Instant::now();
                        sent.push(Sent {
                            id,
                            status,
                            start,
                            end,
                        });
                        tokio::time::sleep(Duration::from_millis(4)).await;
                    }
                    sent
                })
            })
            .collect();
        Senders {
            stop,
            tasks,
            accepted,
            done,
        }
    }

    async fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("sender"));
        }
        all
    }
}

async fn send_once(client: &reqwest::Client, url: &str, id: &str) -> Option<u16> {
    let r = event_request(client, url, id)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    Some(r.status().as_u16())
}

/// Four senders post numbered events to `url` (each once) while the log's server (`what`) is
/// killed (-9) by `kill` after 2,000 were accepted, and started again on its storage by `run`
/// after 8 more answers: knit reconnects by itself (2,000 more accepted), every event accepted
/// (202) before, during and after is delivered to `sink`, and every event sent and answered
/// while the server was down got 503. Prints the counts.
pub async fn log_server_killed_mid_stream(
    what: &str,
    knit: &mut Knit,
    url: &str,
    sink: &Sink,
    kill: impl FnOnce(&mut Knit),
    run: impl FnOnce(&mut Knit),
) {
    let senders = Senders::start(url, 4);
    within_recovery("2,000 events accepted before the kill", || async {
        (senders.accepted.load(Ordering::Relaxed) >= 2_000).then_some(())
    })
    .await;
    kill(knit);
    let killed = Instant::now();
    let done_at_kill = senders.done.load(Ordering::Relaxed);
    within_recovery(&format!("8 answers while the {what} is down"), || async {
        (senders.done.load(Ordering::Relaxed) >= done_at_kill + 8).then_some(())
    })
    .await;
    let restarted = Instant::now();
    run(knit);
    let accepted_at_restart = senders.accepted.load(Ordering::Relaxed);
    within_recovery("2,000 events accepted after the restart", || async {
        (senders.accepted.load(Ordering::Relaxed) >= accepted_at_restart + 2_000).then_some(())
    })
    .await;
    let sent = senders.finish().await;
    let accepted: BTreeSet<String> = sent
        .iter()
        .filter(|s| s.status == Some(202))
        .map(|s| s.id.clone())
        .collect();
    let down: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.start >= killed && s.end <= restarted)
        .collect();
    let not_refused: Vec<(&str, Option<u16>)> = down
        .iter()
        .filter(|s| s.status != Some(503))
        .map(|s| (s.id.as_str(), s.status))
        .collect();
    assert!(
        not_refused.is_empty(),
        "answered while the {what} was down: {not_refused:?}"
    );
    let missing = within_recovery("every accepted event at the sink", || async {
        let got: BTreeSet<String> = sink.received().iter().map(|r| r.id()).collect();
        let missing = accepted.difference(&got).count();
        (missing == 0).then_some(missing)
    })
    .await;
    let before = sent
        .iter()
        .filter(|s| s.end <= killed && s.status == Some(202))
        .count();
    eprintln!(
        "{what} kill -9 and restart: {} accepted ({before} before the kill), {} answered 503 while it was down, {} other refusals, lost {missing}, duplicates {}",
        accepted.len(),
        down.len(),
        sent.len() - accepted.len() - down.len(),
        duplicates(sink)
    );
    assert!(
        !down.is_empty(),
        "some events were sent while the {what} was down"
    );
}
