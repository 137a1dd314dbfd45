//! Several `knit run` processes on one engine are one system (issue #22 §1 and §3), with real
//! processes: three replicas with the same manifests on one nisshi, and on one private
//! nats-server. `/api/v1/cluster` and `knit get replicas` list all three; a PingSource firing
//! every second is delivered once per tick while they all run (only its leader ticks, and the
//! others' status says who leads); its leader is killed with SIGKILL and another replica goes
//! on ticking within 15 s, each tick still delivered once outside the failover, a double within
//! it recognisable by its id (derived from the source and the tick). The failover time and the
//! tick counts are printed (`--nocapture`).
//!
//! These tests start several knit processes: nextest runs them one at a time (test group
//! `multi-process` in .config/nextest.toml).

// Without a durable backend only the lone-process test runs.
#![cfg_attr(
    not(any(feature = "kafka", feature = "nats")),
    allow(dead_code, unused_imports)
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::sink::{Received, Sink};
use common::{Knit, condition, eventually_for};

const REPLICAS: usize = 3;
/// How long a step with several processes may take on a busy machine.
const PATIENCE: Duration = Duration::from_secs(90);
/// The longest failover the issue allows (between the last tick before the kill and the first
/// after it).
const FAILOVER_SECONDS: i64 = 15;
/// The leadership of the PingSource.
const SOURCE: &str = "PingSource/default/tick";
/// Ticks counted while all replicas run, and again after the failover.
const TICKS: usize = 8;

fn manifest(sink: &Sink) -> String {
    format!(
        "apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: tick
  namespace: default
spec:
  schedule: '* * * * * *'
  contentType: application/json
  data: '{{\"hello\": \"replicas\"}}'
  sink:
    uri: {}
",
        sink.url
    )
}

/// Three replicas `r0`, `r1`, `r2` on `engine` (its flags), each with the same manifest.
fn start(engine: &[&str], sink: &Sink) -> Vec<Knit> {
    let manifest = manifest(sink);
    (0..REPLICAS)
        .map(|i| {
            let id = format!("r{i}");
            let mut flags = engine.to_vec();
            flags.extend(["--replica-id", id.as_str()]);
            Knit::start_with(&[("ping.yaml", manifest.as_str())], &flags)
        })
        .collect()
}

/// The tick an event is of (its `time`).
fn tick(r: &Received) -> String {
    r.header("ce-time").unwrap_or_default()
}

fn time(t: &str) -> jiff::Timestamp {
    t.parse().unwrap_or_else(|e| panic!("tick time {t:?}: {e}"))
}

/// Deliveries by tick: the ids each tick arrived with.
fn by_tick(received: &[Received]) -> BTreeMap<String, Vec<String>> {
    let mut ticks = BTreeMap::<String, Vec<String>>::new();
    for r in received {
        ticks.entry(tick(r)).or_default().push(r.id());
    }
    ticks
}

/// Wait until each of `live` lists exactly `ids` as members and all agree on who leads the
/// PingSource; that leader.
async fn agreed(live: &[&Knit], ids: &BTreeSet<String>) -> String {
    eventually_for(
        &format!("replicas {ids:?} to list each other and agree on a leader"),
        PATIENCE,
        || async {
            let mut leader: Option<String> = None;
            for k in live {
                let v = k.api("/api/v1/cluster").await;
                let members: BTreeSet<String> = v["members"]
                    .as_array()?
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(String::from))
                    .collect();
                let l = v["leaders"][SOURCE].as_str()?.to_string();
                if &members != ids || leader.get_or_insert_with(|| l.clone()) != &l {
                    return None;
                }
            }
            leader
        },
    )
    .await
}

/// The index of replica `id` (`rN`).
fn index(id: &str) -> usize {
    id.trim_start_matches('r')
        .parse()
        .unwrap_or_else(|e| panic!("replica id {id:?}: {e}"))
}

/// The PingSource's status on a replica that does not lead says who does.
async fn follower_says_who_leads(follower: &Knit, leader: &str) {
    eventually_for(
        "the follower's status to name the leader",
        PATIENCE,
        || async {
            let o = follower.object("pingsources", "tick").await?;
            let c = condition(&o, "Leader")?;
            let ready = condition(&o, "Ready")?;
            (c["status"] == "False"
                && c["reason"] == "Standby"
                && c["message"].as_str()?.contains(leader)
                && ready["status"] == "True")
                .then_some(())
        },
    )
    .await;
}

/// `knit get replicas` lists every replica, and the leader with what it leads; the status of
/// the PingSource says who leads, on the leader and on a follower.
async fn members_and_leader_are_shown(replicas: &[Knit], ids: &BTreeSet<String>, leader: &str) {
    let (code, out, err) = replicas[0].cli(&["get", "replicas"]);
    assert_eq!(code, 0, "{err}");
    for id in ids {
        assert!(out.contains(id.as_str()), "{out}");
    }
    assert!(
        out.contains(SOURCE),
        "the leader's row lists its leadership: {out}"
    );
    let follower = (index(leader) + 1) % REPLICAS;
    follower_says_who_leads(&replicas[follower], leader).await;
    eventually_for("the leader's status to say it leads", PATIENCE, || async {
        let o = replicas[index(leader)]
            .object("pingsources", "tick")
            .await?;
        (condition(&o, "Leader")?["reason"] == "Leading").then_some(())
    })
    .await;
}

/// [`TICKS`] deliveries from now on: each tick once, each with its own id. Where they started
/// in the sink's list, and how many ticks.
async fn each_tick_once(sink: &Sink) -> (usize, usize) {
    let from = sink.received().len();
    let window = eventually_for("ticks while all replicas run", PATIENCE, || async {
        let r = sink.received();
        (r.len() >= from + TICKS).then(|| r[from..].to_vec())
    })
    .await;
    let ticks = by_tick(&window);
    assert!(
        ticks.values().all(|ids| ids.len() == 1),
        "a tick delivered twice while all replicas ran: {ticks:?}"
    );
    let distinct: BTreeSet<&String> = ticks.values().flatten().collect();
    assert_eq!(distinct.len(), ticks.len(), "each tick has its own id");
    (from, ticks.len())
}

/// What a failover looked like.
struct Failover {
    /// The last tick delivered before the kill.
    last_before: String,
    /// The first tick of a time after the kill (the dead leader cannot have made it).
    first_after: Received,
    /// From the kill to that tick's arrival.
    took: Duration,
    /// The replica that leads now.
    successor: String,
}

/// SIGKILL the leader (asked again: a rebalance may have moved the lead meanwhile); wait for
/// a tick from another replica, and for the survivors to agree on the new leader.
async fn kill_the_leader(replicas: &mut [Knit], ids: &BTreeSet<String>, sink: &Sink) -> Failover {
    let leader = agreed(&replicas.iter().collect::<Vec<_>>(), ids).await;
    let last_before = sink.received().iter().map(tick).max().unwrap_or_default();
    let (killed_at, killed_wall) = (Instant::now(), jiff::Timestamp::now());
    replicas[index(&leader)].kill();
    let first_after = eventually_for("another replica to tick", PATIENCE, || async {
        sink.received()
            .into_iter()
            .filter(|r| time(&tick(r)) > killed_wall)
            .min_by_key(|r| time(&tick(r)))
    })
    .await;
    let survivors: Vec<&Knit> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index(&leader))
        .map(|(_, k)| k)
        .collect();
    let mut left = ids.clone();
    left.remove(&leader);
    let successor = agreed(&survivors, &left).await;
    assert_ne!(successor, leader);
    Failover {
        last_before,
        took: first_after.at.saturating_duration_since(killed_at),
        first_after,
        successor,
    }
}

/// Three replicas on `engine`: members, one delivery per tick, the leader SIGKILLed, another
/// takes over within [`FAILOVER_SECONDS`], no tick twice outside the failover.
async fn one_tick_at_a_time_across_a_leader_kill(name: &str, engine: &[&str]) {
    let sink = Sink::start().await;
    let mut replicas = start(engine, &sink);
    let ids: BTreeSet<String> = (0..REPLICAS).map(|i| format!("r{i}")).collect();
    let leader = agreed(&replicas.iter().collect::<Vec<_>>(), &ids).await;
    members_and_leader_are_shown(&replicas, &ids, &leader).await;
    let (from, while_all_ran) = each_tick_once(&sink).await;

    let f = kill_the_leader(&mut replicas, &ids, &sink).await;
    let upto = sink.received().len();
    let after = eventually_for("ticks after the failover", PATIENCE, || async {
        let r = sink.received();
        (r.len() >= upto + TICKS).then_some(r)
    })
    .await;
    let ticks = by_tick(&after[from..]);
    let new_first = tick(&f.first_after);
    let window = time(&f.last_before)..=time(&new_first);
    let mut doubles = 0;
    for (t, ids) in &ticks {
        if ids.len() > 1 {
            assert!(
                window.contains(&time(t)),
                "tick {t} delivered {} times outside the failover",
                ids.len()
            );
            assert!(
                ids.iter().all(|i| *i == ids[0]),
                "a double of tick {t} is recognisable by its id: {ids:?}"
            );
            doubles += ids.len() - 1;
        }
    }
    let gap = time(&new_first)
        .duration_since(time(&f.last_before))
        .as_secs();
    eprintln!(
        "{name}: leader killed; {} ticked {:?} later (ticks {} -> {new_first}: {gap} s); \
         {while_all_ran} ticks while all ran (each once), {} ticks in all, {doubles} doubles in the failover",
        f.successor,
        f.took,
        f.last_before,
        ticks.len()
    );
    assert!(
        gap <= FAILOVER_SECONDS,
        "failover took {gap} s of ticks (at most {FAILOVER_SECONDS})"
    );
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_kafka_tick_once_and_fail_over_when_the_leader_is_killed() {
    let kafka = common::kafka::Kafka::start();
    one_tick_at_a_time_across_a_leader_kill("kafka", &["--kafka", kafka.bootstrap.as_str()]).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_nats_tick_once_and_fail_over_when_the_leader_is_killed() {
    let nats = common::nats::NatsServer::start();
    one_tick_at_a_time_across_a_leader_kill("nats", &["--nats", nats.url.as_str()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_without_an_engine_the_cluster_is_this_process_and_it_leads() {
    let sink = Sink::start().await;
    let knit = Knit::start_with(
        &[("ping.yaml", manifest(&sink).as_str())],
        &["--replica-id", "solo"],
    );
    let v = eventually_for("the lone replica to lead", PATIENCE, || async {
        let v = knit.api("/api/v1/cluster").await;
        (v["leaders"][SOURCE] == "solo").then_some(v)
    })
    .await;
    assert_eq!(v["engine"], "memory");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["members"][0]["id"], "solo");
    let received = sink.wait_for(2).await;
    assert_ne!(received[0].id(), received[1].id());
}

/// The topics of every Kafka cluster `bootstrap` names, read with a plain rdkafka client.
#[cfg(feature = "kafka")]
async fn topics(bootstrap: &str) -> BTreeSet<String> {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        use rdkafka::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("a client");
        let md = c
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        md.topics().iter().map(|t| t.name().to_string()).collect()
    })
    .await
    .expect("metadata task")
}

/// Deleting what a removed object owned is led (#22 §3): a replica whose manifests drop a
/// Broker leaves its topic to the replica leading `knit/deletions`, which goes on using it;
/// once the leader's manifests drop it too, the leader deletes the topic.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_replica_leading_deletions_deletes_a_removed_brokers_topic() {
    use common::route::Backend;
    const TOPIC: &str = "knative-broker-default-b";
    let kafka = common::kafka::Kafka::start();
    let sink = Sink::start().await;
    let broker = Backend::Kafka.broker("b", "");
    let trigger = common::trigger("t", "b", &sink.url, "");
    let files = [("b.yaml", broker.as_str()), ("t.yaml", trigger.as_str())];
    let replicas: Vec<Knit> = ["r0", "r1"]
        .iter()
        .map(|id| {
            let flags = ["--kafka", &kafka.bootstrap, "--replica-id", id];
            Knit::start_logging(&files, &flags, "warn,knit_broker=info")
        })
        .collect();
    let leader = eventually_for(
        "both replicas to agree who leads the deletions",
        PATIENCE,
        || async {
            let mut seen = BTreeSet::new();
            for k in &replicas {
                let v = k.api("/api/v1/cluster").await;
                if v["members"].as_array()?.len() != 2 {
                    return None;
                }
                seen.insert(v["leaders"]["knit/deletions"].as_str()?.to_string());
            }
            (seen.len() == 1).then(|| seen.into_iter().next())?
        },
    )
    .await;
    let (lead, follow) = if leader == "r0" { (0, 1) } else { (1, 0) };
    for k in &replicas {
        k.ready("brokers", "b").await;
    }
    eventually_for("the Broker's topic", PATIENCE, || async {
        topics(&kafka.bootstrap).await.contains(TOPIC).then_some(())
    })
    .await;

    replicas[follow].remove("t.yaml");
    replicas[follow].remove("b.yaml");
    eventually_for(
        "the follower to leave the topic to the leader",
        PATIENCE,
        || async {
            replicas[follow]
                .logs()
                .contains("left to the replica leading the deletions")
                .then_some(())
        },
    )
    .await;
    assert!(
        topics(&kafka.bootstrap).await.contains(TOPIC),
        "the follower deleted the topic"
    );
    let url = replicas[lead].address("brokers", "b").await;
    let status = common::http()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "after-the-follower-dropped-it")
        .header("ce-source", "/replicas")
        .header("ce-type", "t")
        .send()
        .await
        .expect("POST")
        .status();
    assert_eq!(status.as_u16(), 202);
    eventually_for(
        "the leader to deliver through the kept topic",
        PATIENCE,
        || async {
            sink.received()
                .iter()
                .any(|r| r.id() == "after-the-follower-dropped-it")
                .then_some(())
        },
    )
    .await;

    replicas[lead].remove("t.yaml");
    replicas[lead].remove("b.yaml");
    eventually_for("the leader to delete the topic", PATIENCE, || async {
        (!topics(&kafka.bootstrap).await.contains(TOPIC)).then_some(())
    })
    .await;
}
