//! The event journal: the last N journeys, an [`Observer`] behind `knit trace` and
//! `knit get events`. Bounded by events (`--journal-capacity`), by the bytes of the events it
//! keeps (their attributes explain filters on demand) and by steps per delivery; the oldest
//! journey is forgotten first, and a bounded memory of forgotten keys lets an answer say
//! "too old to know" rather than "never seen".
//!
//! What a journey's deliveries add (a trail per egress, a step per attempt) counts towards the
//! bytes too, so a channel fanning each event out to 10,000 Subscriptions keeps fewer of them;
//! and an event's trails are found through an index once it has more than a few, so recording a
//! fan-out costs in proportion to it, not to its square.
//!
//! Entries are found by (namespace, broker-or-channel name, event id) plus the event's source
//! and the ingress kind to tell equal ids apart; several entries may share a key (an id sent
//! twice), the newest wins.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use knit_channels::Event;
use parking_lot::Mutex;

use super::Fate;
use super::journey::{self, Journey, Query};
use super::seam::{Accepted, AttemptSeen, Hop, IngressView, Leg, Mode, Observer, Origin};

/// Keys of maps whose keys are hashes already.
type Prehashed = BuildHasherDefault<Identity>;

/// Passes a `u64` hash through.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A fast hash of the journal's keys (multiply-rotate, as rustc's FxHasher); not for
/// untrusted keys in general, but a flooded bucket only slows the journal's own lookups,
/// which walk a chain bounded by the journal's capacity.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
}

/// Default number of journeys kept.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Most bytes of events kept (their sizes as received).
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Most steps kept per delivery (a dead-letter sink held for hours retries forever).
pub const MAX_STEPS: usize = 64;

/// What happened at the ingress.
#[derive(Debug, Clone)]
pub(crate) struct AcceptedRec {
    pub(crate) at_ms: i64,
    pub(crate) size: usize,
    pub(crate) mode: Mode,
    /// Set when the append failed afterwards.
    pub(crate) refused: Option<u16>,
}

/// One step of a delivery.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Attempt {
        at_ms: i64,
        leg: Leg,
        url: Arc<str>,
        status: Option<u16>,
        error: Option<String>,
        latency: Duration,
    },
    Retry {
        wait: Duration,
    },
}

/// The journey of an event at one egress.
#[derive(Debug, Clone)]
pub(crate) struct Trail {
    pub(crate) egress: Arc<str>,
    pub(crate) steps: Vec<Step>,
    /// Steps not kept past [`MAX_STEPS`].
    pub(crate) omitted: u32,
    pub(crate) reply: Option<String>,
    pub(crate) fate: Option<Fate>,
}

/// One event's journey.
pub(crate) struct Entry {
    seq: u64,
    hash: u64,
    /// The previous entry with the same hash (older), if any.
    prev: Option<u64>,
    pub(crate) origin: Arc<Origin>,
    pub(crate) event: Arc<Event>,
    pub(crate) accepted: Option<AcceptedRec>,
    pub(crate) view: Option<Arc<IngressView>>,
    pub(crate) trails: Vec<Trail>,
    /// Where each egress's trail is in `trails`, once there are more than [`SCAN_TRAILS`].
    /// (Egress names come from the configuration, not from events: the fast hash will do.)
    trail_index: HashMap<Arc<str>, usize, BuildHasherDefault<Fx>>,
    bytes: usize,
}

/// Trails looked for by a scan; past this many, through `trail_index`.
const SCAN_TRAILS: usize = 8;
/// What a new trail is counted as in the journal's bytes (the trail and its index slot).
const TRAIL_BYTES: usize = std::mem::size_of::<Trail>() + 32;
/// What one more step (or a fate, or a reply) is counted as.
const STEP_BYTES: usize = std::mem::size_of::<Step>();

impl Entry {
    /// `egress`'s trail, made if new; and the bytes it added.
    fn trail(&mut self, egress: &Arc<str>) -> (&mut Trail, usize) {
        let found = if self.trails.len() <= SCAN_TRAILS {
            self.trails
                .iter()
                .position(|t| Arc::ptr_eq(&t.egress, egress) || t.egress == *egress)
        } else {
            self.trail_index.get(egress).copied()
        };
        let (i, added) = match found {
            Some(i) => (i, STEP_BYTES),
            None => {
                self.trails.push(Trail {
                    egress: egress.clone(),
                    steps: Vec::new(),
                    omitted: 0,
                    reply: None,
                    fate: None,
                });
                if self.trails.len() > SCAN_TRAILS {
                    if self.trail_index.is_empty() {
                        let index = self.trails.iter().enumerate();
                        self.trail_index = index.map(|(i, t)| (t.egress.clone(), i)).collect();
                    } else {
                        self.trail_index
                            .insert(egress.clone(), self.trails.len() - 1);
                    }
                }
                (self.trails.len() - 1, TRAIL_BYTES + STEP_BYTES)
            }
        };
        (&mut self.trails[i], added)
    }
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`.
    first: u64,
    /// key hash → newest entry's sequence number.
    index: HashMap<u64, u64, Prehashed>,
    bytes: usize,
    /// Hashes of forgotten keys, oldest first (bounded to 4 × capacity), and how many times
    /// each is in there.
    forgotten: VecDeque<u64>,
    forgotten_set: HashMap<u64, u32, Prehashed>,
    /// When the newest forgotten entry was accepted.
    forgotten_until_ms: Option<i64>,
}

/// Why a journey is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The journal knew it and forgot it (it is older than what it keeps).
    pub too_old: bool,
    /// Journeys kept at most.
    pub capacity: usize,
    /// When the oldest journey still known started, unix milliseconds.
    pub oldest_ms: Option<i64>,
}

/// The journal.
pub struct Journal {
    capacity: usize,
    max_bytes: usize,
    hasher: BuildHasherDefault<Fx>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// A journal keeping `capacity` journeys (at least one) and [`MAX_BYTES`] of events.
    pub fn new(capacity: usize) -> Self {
        Self::with_bytes(capacity, MAX_BYTES)
    }

    /// A journal keeping `capacity` journeys and `max_bytes` of events.
    pub fn with_bytes(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            hasher: BuildHasherDefault::default(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Journeys kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn hash(&self, namespace: &str, name: &str, id: &str) -> u64 {
        self.hasher.hash_one((namespace, name, id))
    }

    /// The newest entry for a key matching `accept`.
    fn find<'a>(
        &self,
        inner: &'a mut Inner,
        hash: u64,
        accept: impl Fn(&Entry) -> bool,
    ) -> Option<&'a mut Entry> {
        let mut seq = inner.index.get(&hash).copied();
        let mut found = None;
        while let Some(s) = seq {
            let Some(i) = s
                .checked_sub(inner.first)
                .and_then(|i| usize::try_from(i).ok())
            else {
                break;
            };
            let Some(e) = inner.entries.get(i) else { break };
            if accept(e) {
                found = Some(i);
                break;
            }
            seq = e.prev;
        }
        found.and_then(move |i| inner.entries.get_mut(i))
    }

    fn push(&self, inner: &mut Inner, mut entry: Entry) -> u64 {
        let seq = inner.first + inner.entries.len() as u64;
        entry.seq = seq;
        entry.prev = inner.index.insert(entry.hash, seq);
        inner.bytes = inner.bytes.saturating_add(entry.bytes);
        inner.entries.push_back(entry);
        self.evict(inner);
        seq
    }

    /// Forget the oldest journeys while there are too many, or they take too many bytes.
    fn evict(&self, inner: &mut Inner) {
        while inner.entries.len() > self.capacity
            || (inner.bytes > self.max_bytes && inner.entries.len() > 1)
        {
            let Some(old) = inner.entries.pop_front() else {
                break;
            };
            inner.first += 1;
            inner.bytes = inner.bytes.saturating_sub(old.bytes);
            if inner.index.get(&old.hash) == Some(&old.seq) {
                inner.index.remove(&old.hash);
            }
            inner.forgotten.push_back(old.hash);
            *inner.forgotten_set.entry(old.hash).or_default() += 1;
            if inner.forgotten.len() > self.capacity.saturating_mul(4)
                && let Some(h) = inner.forgotten.pop_front()
                && let Some(n) = inner.forgotten_set.get_mut(&h)
            {
                *n -= 1;
                if *n == 0 {
                    inner.forgotten_set.remove(&h);
                }
            }
            if let Some(a) = &old.accepted {
                inner.forgotten_until_ms = Some(a.at_ms);
            }
        }
    }

    /// Apply `f` to the journey of `hop`'s event, creating one (without an acceptance) when
    /// the journal never knew it: sent by a source, or accepted by another process. The steps
    /// of a journey it forgot are dropped (it stays "too old to know").
    fn with_trail(&self, hop: &Hop<'_>, f: impl FnOnce(&mut Trail)) {
        let Some(origin) = hop.origin else { return };
        let event = hop.event;
        let hash = self.hash(&origin.namespace, &origin.name, &event.id);
        let mut inner = self.inner.lock();
        let same = |e: &Entry| {
            e.event.source == event.source && e.event.id == event.id && *e.origin == **origin
        };
        if let Some(e) = self.find(&mut inner, hash, same) {
            let (trail, added) = e.trail(hop.egress);
            f(trail);
            e.bytes = e.bytes.saturating_add(added);
            inner.bytes = inner.bytes.saturating_add(added);
            self.evict(&mut inner);
            return;
        }
        if inner.forgotten_set.contains_key(&hash) {
            return;
        }
        let mut entry = Entry {
            seq: 0,
            hash,
            prev: None,
            origin: origin.clone(),
            event: event.clone(),
            accepted: None,
            view: None,
            trails: Vec::new(),
            trail_index: HashMap::default(),
            bytes: event.size().min(64 * 1024),
        };
        let (trail, added) = entry.trail(hop.egress);
        f(trail);
        entry.bytes = entry.bytes.saturating_add(added);
        self.push(&mut inner, entry);
    }

    /// The journey of event `id` at the Broker or channel `namespace/name` (with `source`,
    /// the newest with that source).
    pub fn journey(
        &self,
        namespace: &str,
        name: &str,
        id: &str,
        source: Option<&str>,
    ) -> Result<Journey, Unknown> {
        let hash = self.hash(namespace, name, id);
        let mut inner = self.inner.lock();
        let matches = |e: &Entry| {
            e.event.id == id
                && e.origin.namespace == namespace
                && e.origin.name == name
                && source.is_none_or(|s| e.event.source == s)
        };
        if let Some(e) = self.find(&mut inner, hash, matches) {
            return Ok(journey::render(e));
        }
        Err(Unknown {
            too_old: inner.forgotten_set.contains_key(&hash),
            capacity: self.capacity,
            oldest_ms: inner
                .entries
                .iter()
                .find_map(|e| e.accepted.as_ref().map(|a| a.at_ms)),
        })
    }

    /// Recent journeys matching `q`, newest first.
    pub fn recent(&self, q: &Query<'_>) -> Vec<Journey> {
        let inner = self.inner.lock();
        inner
            .entries
            .iter()
            .rev()
            .filter(|e| journey::selected(e, q))
            .take(q.limit)
            .map(journey::render)
            .collect()
    }

    /// Journeys kept now.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When journeys older than this were forgotten (unix milliseconds), if any were.
    pub fn forgotten_until(&self) -> Option<i64> {
        self.inner.lock().forgotten_until_ms
    }
}

impl Observer for Journal {
    fn accepted(&self, a: &Accepted<'_>) {
        let origin = a.origin;
        let hash = self.hash(&origin.namespace, &origin.name, &a.event.id);
        let entry = Entry {
            seq: 0,
            hash,
            prev: None,
            origin: origin.clone(),
            event: a.event.clone(),
            accepted: Some(AcceptedRec {
                at_ms: a.at_ms,
                size: a.size,
                mode: a.mode,
                refused: None,
            }),
            view: Some(a.view.clone()),
            trails: Vec::new(),
            trail_index: HashMap::default(),
            bytes: a.size,
        };
        let mut inner = self.inner.lock();
        self.push(&mut inner, entry);
    }

    fn refused(&self, origin: &Arc<Origin>, events: &[Arc<Event>], status: u16) {
        let mut inner = self.inner.lock();
        for ev in events {
            let hash = self.hash(&origin.namespace, &origin.name, &ev.id);
            let same = |e: &Entry| e.event.id == ev.id && e.event.source == ev.source;
            if let Some(e) = self.find(&mut inner, hash, same)
                && let Some(a) = &mut e.accepted
            {
                a.refused = Some(status);
            }
        }
    }

    fn attempt(&self, hop: &Hop<'_>, a: &AttemptSeen<'_>) {
        self.with_trail(hop, |t| {
            push_step(
                t,
                Step::Attempt {
                    at_ms: a.at_ms,
                    leg: a.leg,
                    url: a.shared_url.clone(),
                    status: a.status,
                    error: a.error.map(str::to_string),
                    latency: a.latency,
                },
            )
        });
    }

    fn retry(&self, hop: &Hop<'_>, _attempts: u32, wait: Duration) {
        self.with_trail(hop, |t| push_step(t, Step::Retry { wait }));
    }

    fn replied(&self, hop: &Hop<'_>, reply_id: &str) {
        self.with_trail(hop, |t| t.reply = Some(reply_id.to_string()));
    }

    fn fate(&self, hop: &Hop<'_>, fate: &Fate) {
        self.with_trail(hop, |t| t.fate = Some(fate.clone()));
    }
}

fn push_step(t: &mut Trail, step: Step) {
    if t.steps.len() < MAX_STEPS {
        t.steps.push(step);
    } else {
        t.omitted = t.omitted.saturating_add(1);
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
