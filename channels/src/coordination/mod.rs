//! Replicas of one system, and leadership of work that must run once, held through the engine
//! itself: Knit never runs a consensus of its own.
//!
//! - **Membership.** Each replica heartbeats every [`HEARTBEAT`]: on Kafka a record keyed by its
//!   id on the one-partition topic [`REPLICAS_TOPIC`], which every replica reads from its end;
//!   on NATS a put into the KV bucket [`REPLICAS_BUCKET`], whose `max_age` drops a replica that
//!   stopped putting (nats-server 2.9 has no per-key TTL). A replica not heard of for
//!   [`MEMBER_EXPIRY`] is gone. Without Kafka or NATS the cluster is this process alone.
//! - **Leadership** of a name (`PingSource/ns/name`): on Kafka a consumer group per name
//!   (`knit.lead.<name>`) on the one-partition topic [`COORDINATION_TOPIC`]; the member assigned
//!   partition 0 leads, and losing the assignment (a revoke, or the session timing out) is losing
//!   the lead. On NATS the leader creates the key in the KV bucket [`LEADERS_BUCKET`] (a create
//!   fails while the key exists) and refreshes it with a revision-checked update; the bucket's
//!   `max_age` lets the key lapse when the leader dies, and the others keep trying to create it.
//!   In memory the process always leads.
//!
//! Failover after a leader is killed takes the engine's detection time: Kafka's
//! `session.timeout.ms` (6 s) or the leaders bucket's `max_age` (6 s), plus a second or two.

#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::log::LogError;

/// How often a replica says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A replica not heard of for this long has left.
pub const MEMBER_EXPIRY: Duration = Duration::from_secs(5);
/// The Kafka topic replicas heartbeat on.
pub const REPLICAS_TOPIC: &str = "knit.replicas";
/// The one-partition Kafka topic whose consumer groups hold leaderships.
pub const COORDINATION_TOPIC: &str = "knit.coordination";
/// The NATS KV bucket replicas heartbeat into.
pub const REPLICAS_BUCKET: &str = "knit_replicas";
/// The NATS KV bucket leaders hold their keys in.
pub const LEADERS_BUCKET: &str = "knit_leaders";

/// Where the replicas meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Nowhere: the cluster is this process.
    Memory,
    /// A Kafka cluster (`bootstrap.servers`).
    Kafka(String),
    /// A NATS server: URL(s), credentials file, CA file.
    Nats {
        /// Server URL(s), comma-separated.
        url: String,
        /// A credentials file.
        creds_file: Option<String>,
        /// A CA file.
        ca_file: Option<String>,
    },
}

impl Engine {
    /// Its name, as `/api/v1/cluster` gives it.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Memory => "memory",
            Engine::Kafka(_) => "kafka",
            Engine::Nats { .. } => "nats",
        }
    }
}

/// One replica as the others see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// `--replica-id`.
    pub id: String,
    /// Its admin API.
    pub admin_url: String,
    /// When it started (RFC 3339).
    pub since: String,
    /// When it last said it is alive (RFC 3339).
    pub last_seen: String,
    /// The leaderships it holds.
    #[serde(default)]
    pub leads: BTreeSet<String>,
}

/// The members and who leads what.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// This replica's id.
    pub replica: String,
    /// Where the replicas meet (`memory`, `kafka`, `nats`).
    pub engine: &'static str,
    /// Every live member, by id.
    pub members: Vec<Member>,
    /// Each leadership held, and by whom.
    pub leaders: BTreeMap<String, String>,
}

/// What the engine-specific tasks share.
pub(crate) struct Shared {
    pub(crate) me: Mutex<Member>,
    /// Other members, with when they were last heard of here.
    pub(crate) seen: Mutex<HashMap<String, (Member, Instant)>>,
}

impl Shared {
    /// This replica's heartbeat, stamped now.
    pub(crate) fn heartbeat(&self) -> Member {
        let mut me = self.me.lock();
        me.last_seen = jiff::Timestamp::now().to_string();
        me.clone()
    }

    /// A member was heard of.
    #[cfg(any(feature = "kafka", feature = "nats"))]
    pub(crate) fn saw(&self, m: Member) {
        if m.id != self.me.lock().id {
            self.seen.lock().insert(m.id.clone(), (m, Instant::now()));
        }
    }

    fn hold(&self, name: &str, held: bool) {
        let mut me = self.me.lock();
        if held {
            me.leads.insert(name.to_string());
        } else {
            me.leads.remove(name);
        }
    }
}

/// Asks to stop a background task, and stops it when dropped.
struct Stopper(watch::Sender<bool>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Resolves once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The replicas of this system, and the leaderships this one campaigns for.
pub struct Coordination {
    engine: Engine,
    shared: Arc<Shared>,
    /// The engine's side, once joined.
    joined: watch::Receiver<Option<Arc<Backend>>>,
    _heartbeat: Stopper,
}

enum Backend {
    Memory,
    #[cfg(feature = "kafka")]
    Kafka(kafka::Kafka),
    #[cfg(feature = "nats")]
    Nats(Box<nats::Nats>),
}

/// Waits between attempts at joining the engine: 1 s, doubling up to 10 s, forever.
const JOIN_RETRIES: backon::ExponentialBuilder = backon::ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(1))
    .with_max_delay(Duration::from_secs(10))
    .without_max_times();

impl Coordination {
    /// Join the system on `engine` as replica `id` (admin API at `admin_url`). Returns at once:
    /// joining (creating the topics or buckets, heartbeating) goes on in the background and is
    /// retried until the engine answers; campaigns start once it has.
    pub fn start(engine: Engine, id: &str, admin_url: &str) -> Self {
        let now = jiff::Timestamp::now().to_string();
        let shared = Arc::new(Shared {
            me: Mutex::new(Member {
                id: id.to_string(),
                admin_url: admin_url.to_string(),
                since: now.clone(),
                last_seen: now,
                leads: BTreeSet::new(),
            }),
            seen: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = watch::channel(false);
        let (joined_tx, joined) = watch::channel(None);
        if engine == Engine::Memory {
            joined_tx.send_replace(Some(Arc::new(Backend::Memory)));
        } else {
            tokio::spawn(join(engine.clone(), shared.clone(), rx, joined_tx));
        }
        Self {
            engine,
            shared,
            joined,
            _heartbeat: Stopper(tx),
        }
    }

    /// Whether other replicas may share the engine (Kafka or NATS): leaderships are then
    /// contested; in memory this process always leads.
    pub fn shared(&self) -> bool {
        self.engine != Engine::Memory
    }

    /// This replica's id.
    pub fn id(&self) -> String {
        self.shared.me.lock().id.clone()
    }

    /// The live members (this one included) and who leads what.
    pub fn view(&self) -> ClusterView {
        let me = self.shared.heartbeat();
        let mut members: Vec<Member> = {
            let mut seen = self.shared.seen.lock();
            seen.retain(|_, (_, at)| at.elapsed() < MEMBER_EXPIRY);
            seen.values().map(|(m, _)| m.clone()).collect()
        };
        members.push(me.clone());
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let mut leaders = BTreeMap::new();
        // Others first, this replica last: what it knows of itself is the freshest.
        for m in members.iter().filter(|m| m.id != me.id).chain([&me]) {
            for name in &m.leads {
                leaders.insert(name.clone(), m.id.clone());
            }
        }
        ClusterView {
            replica: me.id,
            engine: self.engine.name(),
            members,
            leaders,
        }
    }

    /// The replica leading `name`, as far as the heartbeats tell.
    pub fn leader_of(&self, name: &str) -> Option<String> {
        self.view().leaders.remove(name)
    }

    /// Campaign for the leadership of `name` until the returned handle is dropped (which
    /// hands the leadership back).
    pub fn lead(&self, name: &str) -> Leadership {
        let (lead_tx, lead_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = self.shared.clone();
        let held = name.to_string();
        // The engine's task says whether this replica leads; this one records it for the
        // heartbeats.
        let (engine_tx, mut engine_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let leads = *engine_rx.borrow_and_update();
                shared.hold(&held, leads);
                lead_tx.send_replace(leads);
                if engine_rx.changed().await.is_err() {
                    shared.hold(&held, false);
                    lead_tx.send_replace(false);
                    return;
                }
            }
        });
        let mut joined = self.joined.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut stop = stop_rx;
            let backend = tokio::select! {
                () = stopped(&mut stop) => return,
                b = joined.wait_for(Option::is_some) => match b {
                    Ok(b) => b.clone(),
                    Err(_) => return,
                },
            };
            match backend.as_deref() {
                Some(Backend::Memory) | None => {
                    let _ = name;
                    engine_tx.send_replace(true);
                    stopped(&mut stop).await;
                    drop(engine_tx);
                }
                #[cfg(feature = "kafka")]
                Some(Backend::Kafka(k)) => k.campaign(&name, engine_tx, stop),
                #[cfg(feature = "nats")]
                Some(Backend::Nats(n)) => n.campaign(&name, engine_tx, stop),
            }
        });
        Leadership {
            leads: lead_rx,
            _stop: Stopper(stop_tx),
        }
    }
}

/// Join `engine` (retried until it answers) and publish the engine's side on `joined`.
async fn join(
    engine: Engine,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    joined: watch::Sender<Option<Arc<Backend>>>,
) {
    use backon::Retryable as _;
    let attempt = || async { connect(&engine, &shared, &stop).await };
    let backend = attempt
        .retry(JOIN_RETRIES)
        .notify(|e, wait| {
            tracing::warn!(engine = engine.name(), error = %e, retry_in = ?wait, "cannot join the other replicas yet");
        })
        .await;
    if let Ok(b) = backend {
        tracing::info!(engine = engine.name(), "joined the other replicas");
        joined.send_replace(Some(Arc::new(b)));
    }
}

async fn connect(
    engine: &Engine,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) -> Result<Backend, LogError> {
    match engine {
        Engine::Memory => Ok(Backend::Memory),
        #[cfg(feature = "kafka")]
        Engine::Kafka(bootstrap) => Ok(Backend::Kafka(
            kafka::Kafka::start(bootstrap, shared.clone(), stop.clone()).await?,
        )),
        #[cfg(feature = "nats")]
        Engine::Nats {
            url,
            creds_file,
            ca_file,
        } => {
            let config = nats::config(url, creds_file.clone(), ca_file.clone());
            Ok(Backend::Nats(Box::new(
                nats::Nats::start(&config, shared.clone(), stop.clone()).await?,
            )))
        }
        #[allow(unreachable_patterns)]
        _ => {
            let _ = (shared, stop);
            let kind = match engine {
                Engine::Kafka(_) => crate::BackendKind::Kafka,
                _ => crate::BackendKind::Nats,
            };
            Err(crate::NotBuilt(kind).into())
        }
    }
}

/// A campaign for one leadership; dropping it hands the leadership back.
pub struct Leadership {
    leads: watch::Receiver<bool>,
    _stop: Stopper,
}

impl Leadership {
    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.leads.borrow()
    }

    /// Resolves once this replica leads.
    pub async fn acquired(&mut self) {
        if self.leads.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once this replica no longer leads.
    pub async fn lost(&mut self) {
        let _ = self.leads.wait_for(|l| !*l).await;
    }
}

/// `name` with every character a NATS KV key or a Kafka group id may not hold replaced by `_`.
#[cfg(any(feature = "kafka", feature = "nats"))]
pub(crate) fn key_of(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '=' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn alone_in_memory_this_replica_leads_and_hands_back_when_dropped() {
        let c = Coordination::start(Engine::Memory, "r1", "http://127.0.0.1:1");
        let mut lead = c.lead("PingSource/ns/p");
        tokio::time::timeout(Duration::from_secs(5), lead.acquired())
            .await
            .expect("leads at once");
        assert!(lead.is_leader());
        let mut view = c.view();
        for _ in 0..100 {
            if !view.leaders.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
            view = c.view();
        }
        assert_eq!(view.members.len(), 1);
        assert_eq!(
            view.leaders.get("PingSource/ns/p").map(String::as_str),
            Some("r1")
        );
        drop(lead);
        for _ in 0..100 {
            if c.view().leaders.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(c.view().leaders.is_empty());
    }

    #[cfg(any(feature = "kafka", feature = "nats"))]
    #[test]
    fn names_become_keys_an_engine_accepts() {
        assert_eq!(key_of("PingSource/ns/p"), "PingSource/ns/p");
        assert_eq!(key_of("a b:c*"), "a_b_c_");
    }
}
