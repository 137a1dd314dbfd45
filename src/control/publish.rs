//! Publishing: reconcile the stored objects with the data plane's report, hand a changed
//! Contract to the data plane, and show the statuses in a snapshot.
//!
//! Reconciling is one pure pass over all objects (O(n log n)); what follows it costs in
//! proportion to what changed: the Contract is handed on only when it differs (and the data
//! plane diffs it entry by entry), and an object's JSON is rendered again only when the
//! object or its status changed since the previous pass. Reports from the data plane arrive
//! in bursts (one per consumer group opened); the passes they cause are spaced by at least
//! the time the previous pass took, so they never take more than about half a core.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use knit_crds::api::duck::Condition;
use knit_crds::contract::{Contract, Egress};
use knit_crds::{Object, ObjectKey};
use serde_json::value::RawValue;

use super::reconcile::{self, Previous};
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
    conditions: Box<[Condition]>,
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
    fn conditions(&self, key: &ObjectKey) -> Option<&[Condition]> {
        self.objects.get(key).map(|s| &*s.conditions)
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

/// What [`stamp`](reconcile) reads of `o`'s conditions in the next pass.
fn remembered(o: &Object) -> Box<[Condition]> {
    reconcile::conditions_of(o)
        .iter()
        .map(|c| Condition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            last_transition_time: c.last_transition_time.clone(),
            ..Condition::default()
        })
        .collect()
}

impl Published {
    /// Take `objects` (sorted by key) as the new state, rendering the JSON of those that
    /// changed; true when any did, or one came or went.
    fn replace(&mut self, objects: Vec<Object>) -> bool {
        let mut old = std::mem::take(&mut self.objects);
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
                        conditions: remembered(&object),
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
}
