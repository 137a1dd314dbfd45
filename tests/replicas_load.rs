//! Replicas come and go while events flow (issue #22 §1), with real processes: a Broker and a
//! Trigger on one engine (nisshi; a private nats-server too), two replicas taking events on
//! their ingresses from two senders that spread the posts over the replicas in service. A third
//! replica joins during the flow and takes a share of the deliveries; then the replica leading
//! `knit/deletions` is stopped with SIGTERM (taken out of service first, as a load balancer
//! does) and exits cleanly, then another with SIGKILL. Every event that got a 202 from any replica is delivered;
//! every other answer came from a replica on its way out. The duplicates are counted per phase
//! and printed (`--nocapture`); only the joining and the graceful stop are held to a loose
//! bound (1%), the SIGKILL's replay is reported.
//!
//! These tests start several knit processes: nextest runs them one at a time (test group
//! `multi-process` in .config/nextest.toml).
#![cfg(any(feature = "kafka", feature = "nats"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::crash::{duplicates, event_request};
use common::replicas::{Engine, PATIENCE, counter, members};
use common::sink::Sink;
use common::{Knit, eventually_for, http, trigger};

/// Events accepted in each phase before the next step.
const PER_PHASE: usize = 400;
/// How long the replayed or held records of a stopped replica may take to arrive (Kafka: the
/// killed member's session, 6 s, then a rebalance; JetStream: its records' `ack_wait`, 7 s).
const RECOVERY: Duration = Duration::from_secs(180);
const TRIGGER: &str = "Trigger/default/t";

/// One POST: which replica it went to, its answer (none: no answer), when it was sent and
/// answered.
struct Posted {
    id: String,
    via: String,
    status: Option<u16>,
    end: Instant,
}

/// Answers by replica and status (none: no answer).
type Answers = BTreeMap<(String, Option<u16>), usize>;

/// Senders posting numbered events, each once, round-robin over the replicas in service.
struct Load {
    in_service: Arc<parking_lot::Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<parking_lot::Mutex<BTreeSet<String>>>,
    /// Answers so far by replica and status (none: no answer), for the messages.
    answers: Arc<parking_lot::Mutex<Answers>>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Posted>>>,
}

impl Load {
    fn start(in_service: Vec<(String, String)>, senders: usize) -> Load {
        let in_service = Arc::new(parking_lot::Mutex::new(in_service));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
        let answers = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = (0..senders)
            .map(|_| {
                let (in_service, stop) = (in_service.clone(), stop.clone());
                let (accepted, next) = (accepted.clone(), next.clone());
                let answers = answers.clone();
                tokio::spawn(async move {
                    let client = http();
                    let mut posted = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let (via, url) = {
                            let s = in_service.lock();
                            s[n % s.len()].clone()
                        };
                        let id = format!("n{n:06}");
                        let status = event_request(&client, &url, &id)
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await
                            .ok()
                            .map(|r| r.status().as_u16());
                        if status == Some(202) {
                            accepted.lock().insert(id.clone());
                        }
                        *answers.lock().entry((via.clone(), status)).or_default() += 1;
                        posted.push(Posted {
                            id,
                            via,
                            status,
                            end: Instant::now(),
                        });
                        // A steady stream (a few hundred a second), not a flood.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    posted
                })
            })
            .collect();
        Load {
            in_service,
            stop,
            accepted,
            answers,
            tasks,
        }
    }

    fn accepted(&self) -> BTreeSet<String> {
        self.accepted.lock().clone()
    }

    /// Wait until `more` events beyond those accepted now were accepted.
    async fn more_accepted(&self, more: usize) {
        let from = self.accepted.lock().len();
        let what = format!(
            "{more} more events accepted (answers so far by replica and status: {:?})",
            self.answers.lock()
        );
        eventually_for(&what, PATIENCE, || async {
            (self.accepted.lock().len() >= from + more).then_some(())
        })
        .await;
    }

    fn add(&self, id: &str, url: &str) {
        self.in_service.lock().push((id.into(), url.into()));
    }

    /// Take replica `id` out of service; when.
    fn remove(&self, id: &str) -> Instant {
        self.in_service.lock().retain(|(r, _)| r != id);
        Instant::now()
    }

    async fn finish(self) -> Vec<Posted> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("sender"));
        }
        all
    }
}

/// Wait until every event in `accepted` arrived at `sink`; then the duplicates so far.
async fn all_arrived(sink: &Sink, accepted: &BTreeSet<String>, what: &str) -> usize {
    eventually_for(what, RECOVERY, || async {
        let got: BTreeSet<String> = sink.received().iter().map(|r| r.id()).collect();
        accepted.is_subset(&got).then_some(())
    })
    .await;
    duplicates(sink)
}

/// The broker address of a replica once its Broker and Trigger are Ready.
async fn in_service(k: &Knit) -> String {
    k.ready_within("triggers", "t", PATIENCE).await;
    let o = k.ready_within("brokers", "b", PATIENCE).await;
    o["status"]["address"]["url"]
        .as_str()
        .expect("address")
        .to_string()
}

/// Two replicas on `engine` under load, a third joins, one leaves with SIGTERM, one with
/// SIGKILL: nothing accepted is lost.
async fn replicas_join_and_leave_under_load(engine: Engine) {
    let name = engine.name();
    let began = Instant::now();
    let step = |what: &str, load: Option<&Load>| {
        let answers = load.map(|l| l.answers.lock().clone()).unwrap_or_default();
        eprintln!("{name}: {:>6.1?} {what} {answers:?}", began.elapsed());
    };
    let sink = Sink::start().await;
    let broker = engine.backend().broker("b", "");
    let t = trigger("t", "b", &sink.url, "");
    let files = [("b.yaml", broker.as_str()), ("t.yaml", t.as_str())];
    let mut replicas = engine.replicas(2, &files);
    members(&replicas.iter().collect::<Vec<_>>(), &["r0", "r1"]).await;
    let mut urls = Vec::new();
    for (i, k) in replicas.iter().enumerate() {
        urls.push((format!("r{i}"), in_service(k).await));
    }
    let load = Load::start(urls, 2);
    step("r0 and r1 in service, load started", Some(&load));
    load.more_accepted(PER_PHASE).await;

    // A third replica joins: once in service, it takes posts, and deliveries once the group
    // gave it a share.
    step("r2 starting", Some(&load));
    replicas.push(engine.replica("r2", &files));
    members(&replicas.iter().collect::<Vec<_>>(), &["r0", "r1", "r2"]).await;
    let url = in_service(&replicas[2]).await;
    load.add("r2", &url);
    step("r2 in service", Some(&load));
    eventually_for("the new replica to deliver", PATIENCE, || async {
        (counter(&[&replicas[2]], TRIGGER, "delivered").await[0] > 0).then_some(())
    })
    .await;
    load.more_accepted(PER_PHASE).await;
    let joined = all_arrived(
        &sink,
        &load.accepted(),
        "every event accepted before the SIGTERM",
    )
    .await;

    // The replica leading the deletions leaves gracefully (the one whose mistakes would cost
    // the others their streams and groups): out of service, then SIGTERM; it exits 0.
    let lead = eventually_for("a leader of the deletions", PATIENCE, || async {
        let v = replicas[2].api("/api/v1/cluster").await;
        v["leaders"]["knit/deletions"].as_str().map(String::from)
    })
    .await;
    let graceful: usize = lead
        .trim_start_matches('r')
        .parse()
        .unwrap_or_else(|e| panic!("replica id {lead:?}: {e}"));
    let (killed, survivor) = match graceful {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let id = |i: usize| format!("r{i}");
    step(
        &format!(
            "r2 delivers; every event accepted so far arrived; SIGTERM to {lead} (leads the deletions)"
        ),
        Some(&load),
    );
    let mut stopped = BTreeMap::new();
    stopped.insert(id(graceful), load.remove(&id(graceful)));
    let status = replicas[graceful].terminate(PATIENCE).await;
    assert!(status.success(), "{lead} after SIGTERM: {status}");
    step(&format!("{lead} exited"), Some(&load));
    members(
        &[&replicas[killed], &replicas[survivor]],
        &[id(killed).as_str(), id(survivor).as_str()],
    )
    .await;
    load.more_accepted(PER_PHASE).await;
    let termed = all_arrived(
        &sink,
        &load.accepted(),
        "every event accepted before the SIGKILL",
    )
    .await;
    step(
        &format!(
            "every event accepted so far arrived; SIGKILL to {}",
            id(killed)
        ),
        Some(&load),
    );

    // Another dies: out of service, then SIGKILL.
    stopped.insert(id(killed), load.remove(&id(killed)));
    replicas[killed].kill();
    members(&[&replicas[survivor]], &[id(survivor).as_str()]).await;
    load.more_accepted(PER_PHASE).await;
    let posted = load.finish().await;
    step("load stopped", None);
    let accepted: BTreeSet<String> = posted
        .iter()
        .filter(|p| p.status == Some(202))
        .map(|p| p.id.clone())
        .collect();
    let all = all_arrived(&sink, &accepted, "every accepted event at the sink").await;
    step("every accepted event arrived", None);

    let refused: Vec<(&str, &str, Option<u16>)> = posted
        .iter()
        .filter(|p| p.status != Some(202))
        .map(|p| (p.id.as_str(), p.via.as_str(), p.status))
        .collect();
    let by_r2 = counter(&[&replicas[2]], TRIGGER, "delivered").await[0];
    eprintln!(
        "{name}: {} posted, {} accepted, {} not ({refused:?}); {} deliveries ({by_r2} by r2); \
         duplicates: {joined} after r2 joined, {} after {lead}'s SIGTERM, {} after r{killed}'s SIGKILL",
        posted.len(),
        accepted.len(),
        refused.len(),
        sink.received().len(),
        termed - joined,
        all - termed
    );
    // Only a replica on its way out may have failed to accept: a post it answered (or did
    // not) after it was taken out of service.
    for p in posted.iter().filter(|p| p.status != Some(202)) {
        let out = stopped.get(p.via.as_str());
        assert!(
            out.is_some_and(|at| p.end >= *at),
            "{} through {} answered {:?} while that replica was in service",
            p.id,
            p.via,
            p.status
        );
    }
    let got: BTreeSet<String> = sink.received().iter().map(|r| r.id()).collect();
    assert!(accepted.is_subset(&got), "an accepted event was lost");
    assert!(
        got.is_subset(&posted.iter().map(|p| p.id.clone()).collect()),
        "an event nobody posted was delivered"
    );
    // A join or a graceful leave is a rebalance: on Kafka a record in flight on a member
    // losing its partition is read again by the new owner (kafka/consumer.rs drops the revoked
    // trackers), so a few doubles happen (0-4 seen of ~1,000 in flight); a loose bound only,
    // the SIGKILL's replay is reported, not bounded.
    let bound = accepted.len() / 100;
    assert!(
        joined <= bound,
        "a replica joining made {joined} duplicates (more than 1%)"
    );
    assert!(
        termed - joined <= bound,
        "a replica stopped with SIGTERM made {} duplicates (more than 1%)",
        termed - joined
    );
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_replicas_join_and_leave_under_load_and_nothing_accepted_is_lost() {
    replicas_join_and_leave_under_load(Engine::kafka()).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_replicas_join_and_leave_under_load_and_nothing_accepted_is_lost() {
    replicas_join_and_leave_under_load(Engine::nats()).await;
}
