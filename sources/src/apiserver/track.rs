//! What one watch knows: every object it has seen (keyed by namespace and name), turned from
//! the watcher's events into the changes Knative reports. Objects in the first list are
//! learnt silently; after a re-list (a watch that ended with 410 Gone), the new list is
//! diffed against what was known, so objects that did not change emit nothing (no duplicate
//! `add`s) while what changed during the gap is reported.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, TypeMeta};
use kube::runtime::watcher;

use super::events::Change;

type Key = (String, String);

fn key(obj: &DynamicObject) -> Key {
    (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

fn same_version(a: &DynamicObject, b: &DynamicObject) -> bool {
    a.metadata.resource_version.is_some()
        && a.metadata.resource_version == b.metadata.resource_version
}

/// The objects of one watch.
pub struct Tracker {
    resource: ApiResource,
    known: BTreeMap<Key, DynamicObject>,
    relist: Option<BTreeMap<Key, DynamicObject>>,
    primed: bool,
    whole: bool,
}

impl Tracker {
    /// Nothing known yet; objects without `apiVersion`/`kind` (list items) get `resource`'s.
    /// Unless `whole` (Resource mode, where a delete found by a re-list sends the last known
    /// object), only what references and filters need is kept: identity, labels, owners
    /// and resourceVersion.
    pub fn new(resource: ApiResource, whole: bool) -> Self {
        Self {
            resource,
            known: BTreeMap::new(),
            relist: None,
            primed: false,
            whole,
        }
    }

    fn kept(&self, obj: &DynamicObject) -> DynamicObject {
        if self.whole {
            return obj.clone();
        }
        let mut light = DynamicObject {
            types: obj.types.clone(),
            metadata: Default::default(),
            data: serde_json::Value::Null,
        };
        let m = &obj.metadata;
        light.metadata.name = m.name.clone();
        light.metadata.namespace = m.namespace.clone();
        light.metadata.uid = m.uid.clone();
        light.metadata.resource_version = m.resource_version.clone();
        light.metadata.labels = m.labels.clone();
        light.metadata.owner_references = m.owner_references.clone();
        light
    }

    /// Whether the first list is complete.
    pub fn primed(&self) -> bool {
        self.primed
    }

    /// How many objects are known.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no object is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    fn typed(&self, mut obj: DynamicObject) -> DynamicObject {
        let missing = obj
            .types
            .as_ref()
            .is_none_or(|t| t.api_version.is_empty() || t.kind.is_empty());
        if missing {
            obj.types = Some(TypeMeta {
                api_version: self.resource.api_version.clone(),
                kind: self.resource.kind.clone(),
            });
        }
        obj
    }

    /// The changes `event` means, in order.
    pub fn on(&mut self, event: watcher::Event<DynamicObject>) -> Vec<(Change, DynamicObject)> {
        match event {
            watcher::Event::Init => {
                self.relist = Some(BTreeMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                let obj = self.kept(&self.typed(obj));
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&obj), obj);
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.known, listed);
                if !self.primed {
                    self.primed = true;
                    return Vec::new();
                }
                let mut out = Vec::new();
                for (k, obj) in &self.known {
                    match old.get(k) {
                        None => out.push((Change::Add, obj.clone())),
                        Some(prev) if !same_version(prev, obj) => {
                            out.push((Change::Update, obj.clone()))
                        }
                        Some(_) => {}
                    }
                }
                for (k, obj) in old {
                    if !self.known.contains_key(&k) {
                        out.push((Change::Delete, obj));
                    }
                }
                out
            }
            watcher::Event::Apply(obj) => {
                let obj = self.typed(obj);
                let change = match self.known.get(&key(&obj)) {
                    None => Some(Change::Add),
                    Some(prev) if same_version(prev, &obj) => None,
                    Some(_) => Some(Change::Update),
                };
                self.known.insert(key(&obj), self.kept(&obj));
                change.map(|c| vec![(c, obj)]).unwrap_or_default()
            }
            watcher::Event::Delete(obj) => {
                let obj = self.typed(obj);
                self.known.remove(&key(&obj));
                vec![(Change::Delete, obj)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::GroupVersionKind;

    fn pod(name: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}
        }))
        .expect("pod")
    }

    fn tracker() -> Tracker {
        Tracker::new(
            ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod")),
            true,
        )
    }

    fn names(out: &[(Change, DynamicObject)]) -> Vec<(Change, String)> {
        out.iter()
            .map(|(c, o)| (*c, o.metadata.name.clone().unwrap_or_default()))
            .collect()
    }

    fn list(t: &mut Tracker, objs: Vec<DynamicObject>) -> Vec<(Change, String)> {
        let mut out = t.on(watcher::Event::Init);
        for o in objs {
            out.extend(t.on(watcher::Event::InitApply(o)));
        }
        out.extend(t.on(watcher::Event::InitDone));
        names(&out)
    }

    #[test]
    fn the_first_list_is_silent_and_list_items_get_their_kind() {
        let mut t = tracker();
        assert!(list(&mut t, vec![pod("a", "1"), pod("b", "2")]).is_empty());
        assert!(t.primed());
        assert_eq!(t.len(), 2);
        let out = t.on(watcher::Event::Apply(pod("c", "3")));
        let types = out[0].1.types.clone().expect("types filled");
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("v1", "Pod")
        );
    }

    #[test]
    fn applies_are_adds_then_updates_and_deletes_are_deletes() {
        let mut t = tracker();
        list(&mut t, vec![pod("a", "1")]);
        assert_eq!(
            names(&t.on(watcher::Event::Apply(pod("b", "2")))),
            vec![(Change::Add, "b".into())]
        );
        assert_eq!(
            names(&t.on(watcher::Event::Apply(pod("a", "3")))),
            vec![(Change::Update, "a".into())]
        );
        // The same version again (a resumed watch replaying it): nothing.
        assert!(t.on(watcher::Event::Apply(pod("a", "3"))).is_empty());
        assert_eq!(
            names(&t.on(watcher::Event::Delete(pod("b", "4")))),
            vec![(Change::Delete, "b".into())]
        );
    }

    #[test]
    fn a_relist_reports_only_what_changed_while_the_watch_was_down() {
        let mut t = tracker();
        list(
            &mut t,
            vec![pod("same", "1"), pod("changed", "2"), pod("gone", "3")],
        );
        let out = list(
            &mut t,
            vec![pod("same", "1"), pod("changed", "9"), pod("new", "10")],
        );
        assert_eq!(
            out,
            vec![
                (Change::Update, "changed".into()),
                (Change::Add, "new".into()),
                (Change::Delete, "gone".into()),
            ]
        );
        // And a re-list with nothing changed is silent.
        assert!(
            list(
                &mut t,
                vec![pod("same", "1"), pod("changed", "9"), pod("new", "10")]
            )
            .is_empty()
        );
    }

    #[test]
    fn reference_mode_keeps_only_what_references_need() {
        let mut t = Tracker::new(
            ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod")),
            false,
        );
        let mut big = pod("a", "1");
        big.data = serde_json::json!({"spec": {"containers": []}});
        list(&mut t, vec![big]);
        // `a` vanished while the watch was down: its delete still names it and its kind.
        let out = {
            t.on(watcher::Event::Init);
            t.on(watcher::Event::InitDone)
        };
        let (change, obj) = &out[0];
        assert_eq!(*change, Change::Delete);
        assert_eq!(obj.metadata.name.as_deref(), Some("a"));
        assert_eq!(obj.types.as_ref().map(|t| t.kind.as_str()), Some("Pod"));
        assert!(obj.data.is_null());
    }
}
