//! Publishing: reconcile the stored objects with the data plane's report, hand a changed
//! Contract to the data plane, and show the statuses in a snapshot.
//!
//! Reconciling is one pure pass over all objects (O(n log n)); what follows it costs in
//! proportion to what changed: the Contract is handed on only when it differs (and the data
//! plane diffs it entry by entry), and an object's JSON is rendered again only when the
//! object or its status changed since the previous pass. Reports from the data plane arrive
//! in bursts (one per consumer group opened); the passes they cause are spaced by at least
//! the time the previous pass took, so they never take more than about half a core.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use knit_crds::contract::{Contract, Egress};
use knit_crds::{Object, ObjectKey};
use serde_json::value::RawValue;

use super::reconcile::{self, Before, Previous, Remembered};
use super::{ControlPlane, Snapshot, now};

/// The least time a burst of data-plane reports is given to gather before a pass.
const REPORT_SETTLE: Duration = Duration::from_millis(20);
/// The most a report waits for a pass, however long passes take.
const REPORT_SETTLE_MAX: Duration = Duration::from_secs(1);

/// One object as the admin API shows it: its JSON (with `status`), rendered once per change.
pub type Json = Arc<RawValue>;

/// An object as the last pass left it: what tells whether it changed, what the next pass needs
/// of its conditions, and its JSON. Not the object itself: with 10,000 Triggers that was a
/// third of the process's memory.
pub(super) struct Shown {
    /// [`Object::fingerprint`] of the object, status included.
    fingerprint: u64,
    /// Its conditions' types, statuses and transition times (no reasons or messages).
    conditions: Box<[Remembered]>,
    json: Json,
}

/// The objects of the last pass, by key.
#[derive(Default)]
pub(super) struct Published {
    objects: BTreeMap<ObjectKey, Shown>,
    /// Increases whenever an object's JSON changes, or one comes or goes.
    version: u64,
}

impl Previous for Published {
    fn conditions(&self, key: &ObjectKey) -> Option<Before<'_>> {
        self.objects
            .get(key)
            .map(|s| Before::Remembered(&s.conditions))
    }
}

/// The JSON the admin API shows for `o`.
fn render(o: &Object) -> Json {
    match serde_json::value::to_raw_value(&o.to_json()) {
        Ok(raw) => Arc::from(raw),
        // Serializing a Value cannot fail; were it ever to, the object shows as null.
        Err(_) => Arc::from(RawValue::NULL.to_owned()),
    }
}

/// The strings of one pass's remembered conditions, each kept once.
#[derive(Default)]
struct Interned(HashSet<Arc<str>>);

impl Interned {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(kept) = self.0.get(s) {
            return kept.clone();
        }
        let kept: Arc<str> = Arc::from(s);
        self.0.insert(kept.clone());
        kept
    }
}

/// What the next pass reads of `o`'s conditions.
fn remembered(o: &Object, strings: &mut Interned) -> Box<[Remembered]> {
    reconcile::conditions_of(o)
        .iter()
        .map(|c| Remembered {
            type_: strings.get(&c.type_),
            status: strings.get(&c.status),
            since: c.last_transition_time.as_deref().map(|t| strings.get(t)),
        })
        .collect()
}

impl Published {
    /// Take `objects` (sorted by key) as the new state, rendering the JSON of those that
    /// changed; true when any did, or one came or went.
    fn replace(&mut self, objects: Vec<Object>) -> bool {
        let mut old = std::mem::take(&mut self.objects);
        let mut strings = Interned::default();
        let mut changed = false;
        for object in objects {
            let key = object.key();
            let fingerprint = object.fingerprint();
            let shown = match old.remove(&key) {
                Some(s) if s.fingerprint == fingerprint => s,
                _ => {
                    changed = true;
                    Shown {
                        fingerprint,
                        conditions: remembered(&object, &mut strings),
                        json: render(&object),
                    }
                }
            };
            self.objects.insert(key, shown);
        }
        changed |= !old.is_empty();
        if changed {
            self.version += 1;
        }
        changed
    }

    /// Every object's JSON, by key.
    fn jsons(&self) -> BTreeMap<ObjectKey, Json> {
        self.objects
            .iter()
            .map(|(k, s)| (k.clone(), s.json.clone()))
            .collect()
    }
}

impl ControlPlane {
    /// How long data-plane reports gather before they cause a pass: as long as the last pass
    /// took, within bounds.
    pub(super) fn report_settle(&self) -> Duration {
        self.last_pass.clamp(REPORT_SETTLE, REPORT_SETTLE_MAX)
    }

    /// Reconcile everything with the latest report, apply a changed Contract, then show the
    /// statuses (after the Contract they depend on is applied).
    pub(super) async fn publish(&mut self) {
        let started = tokio::time::Instant::now();
        // History first: a stored object of the same key wins.
        let input: Vec<Object> = self
            .history
            .iter()
            .chain(self.store.objects())
            .cloned()
            .collect();
        let stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let report = self.report.borrow_and_update().clone();
        let mut out =
            reconcile::reconcile_owned(input, &self.published, &self.env, &report, &stamp);
        drop(report);
        self.history = std::mem::take(&mut out.history);
        let applied = self.apply_contract(out.contract).await;
        let changed = self.published.replace(out.objects);
        if changed || applied {
            self.snapshot.send_replace(Arc::new(Snapshot {
                objects: self.published.jsons(),
                contract: self.contract.clone(),
                version: self.published.version,
            }));
        }
        self.last_pass = started.elapsed();
        self.passes += 1;
        tracing::debug!(
            took_ms = self.last_pass.as_millis() as u64,
            objects = self.published.objects.len(),
            "reconciled"
        );
    }

    /// Hand `contract` to the data plane if it differs from the running one; true if it did.
    async fn apply_contract(&mut self, mut contract: Contract) -> bool {
        contract.generation = self.contract.generation;
        share_unchanged(&mut contract, &self.contract);
        if contract == *self.contract {
            return false;
        }
        contract.generation += 1;
        self.applier.apply(&contract).await;
        tracing::info!(
            generation = contract.generation,
            ingresses = contract.ingresses.len(),
            "contract applied"
        );
        self.contract = Arc::new(contract);
        true
    }
}

/// Give `new` the running Contract's egress wherever it is unchanged: the data plane and
/// its egress tasks keep the running ones, so one copy of each is kept, not one per pass.
fn share_unchanged(new: &mut Contract, running: &Contract) {
    let running: HashMap<&str, &Arc<Egress>> = running
        .ingresses
        .iter()
        .flat_map(|i| &i.egresses)
        .map(|e| (e.uid.as_str(), e))
        .collect();
    for e in new.ingresses.iter_mut().flat_map(|i| &mut i.egresses) {
        if let Some(old) = running.get(e.uid.as_str())
            && ***old == **e
        {
            *e = Arc::clone(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::testing::{TWO_BROKERS as TWO, admitted as objects};

    #[test]
    fn only_changes_are_rendered_and_counted() {
        let mut p = Published::default();
        assert!(p.replace(objects(TWO)));
        assert_eq!(p.version, 1);
        assert!(!p.replace(objects(TWO)), "nothing changed");
        assert_eq!(p.version, 1);
        let mut changed = objects(TWO);
        changed[1].meta_mut().generation = Some(7);
        let first = p.jsons().into_values().next().expect("a");
        assert!(p.replace(changed.clone()));
        assert_eq!(p.version, 2);
        let jsons = p.jsons();
        let mut values = jsons.values();
        let a = values.next().expect("a");
        assert!(
            Arc::ptr_eq(&first, a),
            "the unchanged object keeps its JSON"
        );
        let b: serde_json::Value =
            serde_json::from_str(values.next().expect("b").get()).expect("valid JSON");
        assert_eq!(b, changed[1].to_json());
        changed.pop();
        assert!(p.replace(changed), "one went");
        assert_eq!(p.jsons().len(), 1);
    }

    /// A pass remembers each condition's type, status and time only, and the next pass reads
    /// them back: an unchanged status keeps its time, a changed one does not.
    #[test]
    fn conditions_are_remembered_for_the_next_pass() {
        use knit_crds::api::duck::Condition;
        use knit_crds::api::eventing::BrokerStatus;
        let mut objects = objects(TWO);
        let key = objects[0].key();
        let Object::Broker(b) = &mut objects[0] else {
            panic!("a Broker");
        };
        let mut status = BrokerStatus::default();
        status.status.conditions = vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("Because".into()),
            message: Some("a message the next pass does not need".into()),
            last_transition_time: Some("2026-12-07T10:00:00Z".into()),
            ..Condition::default()
        }];
        b.status = Some(status);
        let mut p = Published::default();
        p.replace(objects);
        let before = p.conditions(&key).expect("remembered");
        assert_eq!(
            before.unchanged_since("Ready", "True"),
            Some(Some("2026-12-07T10:00:00Z".to_string()))
        );
        assert_eq!(before.unchanged_since("Ready", "False"), None);
        assert_eq!(before.unchanged_since("Other", "True"), None);
    }
}
