//! The object store: objects as the user wrote them (admitted and defaulted), with the
//! metadata the system owns (uid, generation, resourceVersion, creationTimestamp) and where
//! each came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use knit_crds::admission::{FieldError, validate_update};
use knit_crds::{Object, ObjectKey};

/// Where an object came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A manifest file watched by `knit run -f`.
    File {
        /// The file.
        path: String,
        /// Document index within it.
        doc: usize,
    },
    /// `knit apply` (the admin API).
    Api,
}

/// A stored object.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The object (no status).
    pub object: Object,
    /// Where it came from.
    pub origin: Origin,
}

/// What applying did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new object.
    Created,
    /// Content or metadata changed.
    Configured,
    /// Nothing changed.
    Unchanged,
}

impl Action {
    /// kubectl's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
        }
    }
}

/// All stored objects.
#[derive(Default)]
pub struct Store {
    entries: BTreeMap<ObjectKey, Entry>,
    /// The keys of the objects each file holds.
    by_file: HashMap<String, BTreeSet<ObjectKey>>,
    resource_version: u64,
}

impl Store {
    /// Every stored object.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.entries.values().map(|e| &e.object)
    }

    /// One entry.
    pub fn get(&self, key: &ObjectKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Check that `object` may replace what is stored under its key (immutable fields).
    pub fn check(&self, object: &Object) -> Vec<FieldError> {
        match self.entries.get(&object.key()) {
            Some(old) => validate_update(&old.object, object),
            None => Vec::new(),
        }
    }

    /// Store `object`, assigning system metadata. The caller has run [`Store::check`].
    pub fn put(&mut self, mut object: Object, origin: Origin, now: jiff::Timestamp) -> Action {
        let key = object.key();
        let action = match self.entries.get(&key) {
            Some(old) if old.origin == origin && same_as_stored(&old.object, &object) => {
                return Action::Unchanged;
            }
            Some(old) => {
                let om = old.object.meta();
                let content_changed = old.object.content() != object.content();
                let meta_changed = om.labels != object.meta().labels
                    || om.annotations != object.meta().annotations;
                let (uid, created, generation) = (
                    om.uid.clone(),
                    om.creation_timestamp.clone(),
                    om.generation.unwrap_or(1),
                );
                let m = object.meta_mut();
                m.uid = uid;
                m.creation_timestamp = created;
                m.generation = Some(if content_changed {
                    generation + 1
                } else {
                    generation
                });
                if !content_changed && !meta_changed && old.origin == origin {
                    m.resource_version = om.resource_version.clone();
                    return Action::Unchanged;
                }
                if content_changed || meta_changed {
                    Action::Configured
                } else {
                    Action::Unchanged
                }
            }
            None => {
                let m = object.meta_mut();
                m.uid = Some(uuid::Uuid::new_v4().to_string());
                m.creation_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
                m.generation = Some(1);
                Action::Created
            }
        };
        self.resource_version += 1;
        object.meta_mut().resource_version = Some(self.resource_version.to_string());
        if let Origin::File { path, .. } = &origin {
            self.by_file
                .entry(path.clone())
                .or_default()
                .insert(key.clone());
        }
        if let Some(old) = self.entries.insert(key.clone(), Entry { object, origin }) {
            self.unfile(&key, &old.origin);
        }
        action
    }

    /// Remove one object.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Entry> {
        let old = self.entries.remove(key)?;
        self.unfile(key, &old.origin);
        Some(old)
    }

    /// Forget that `key` came from `origin`'s file, unless it still does.
    fn unfile(&mut self, key: &ObjectKey, origin: &Origin) {
        let Origin::File { path, .. } = origin else {
            return;
        };
        let still = self
            .entries
            .get(key)
            .is_some_and(|e| matches!(&e.origin, Origin::File { path: p, .. } if p == path));
        if still {
            return;
        }
        if let Some(keys) = self.by_file.get_mut(path) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_file.remove(path);
            }
        }
    }

    /// Keys of objects loaded from `path`.
    pub fn keys_from_file(&self, path: &str) -> Vec<ObjectKey> {
        self.by_file
            .get(path)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Whether `new`, as admitted, is `stored` again: equal once the metadata the store assigns is
/// copied over (the common case of the unchanged objects of an edited file, decided without
/// rendering either).
fn same_as_stored(stored: &Object, new: &Object) -> bool {
    let (sm, nm) = (stored.meta(), new.meta());
    let assigned_unset = nm.uid.is_none()
        && nm.creation_timestamp.is_none()
        && nm.generation.is_none()
        && nm.resource_version.is_none();
    if !assigned_unset {
        return false;
    }
    let mut candidate = new.clone();
    let m = candidate.meta_mut();
    m.uid = sm.uid.clone();
    m.creation_timestamp = sm.creation_timestamp.clone();
    m.generation = sm.generation;
    m.resource_version = sm.resource_version.clone();
    candidate == *stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::testing::{TWO_BROKERS as TWO, admitted as objects};

    fn file(path: &str, doc: usize) -> Origin {
        Origin::File {
            path: path.into(),
            doc,
        }
    }

    #[test]
    fn objects_are_found_by_file_until_they_leave_it() {
        let mut store = Store::default();
        let now = jiff::Timestamp::UNIX_EPOCH;
        for (doc, o) in objects(TWO).into_iter().enumerate() {
            assert_eq!(store.put(o, file("x.yaml", doc), now), Action::Created);
        }
        assert_eq!(store.keys_from_file("x.yaml").len(), 2);
        let mut again = objects(TWO);
        let b = again.pop().expect("b");
        let a = again.pop().expect("a");
        assert_eq!(
            store.put(a.clone(), file("x.yaml", 0), now),
            Action::Unchanged
        );
        let rv = store
            .get(&a.key())
            .and_then(|e| e.object.meta().resource_version.clone());
        assert_eq!(
            rv.as_deref(),
            Some("1"),
            "an unchanged object keeps its version"
        );
        // `knit apply` takes one over: it no longer belongs to the file.
        store.put(a.clone(), Origin::Api, now);
        assert_eq!(store.keys_from_file("x.yaml"), vec![b.key()]);
        store.remove(&b.key());
        assert!(store.keys_from_file("x.yaml").is_empty());
    }

    #[test]
    fn a_changed_object_is_configured_and_its_generation_moves() {
        let mut store = Store::default();
        let now = jiff::Timestamp::UNIX_EPOCH;
        let yaml = "
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec: {broker: a, subscriber: {uri: 'http://x.example/'}}
";
        let t = objects(yaml).pop().expect("t");
        store.put(t, file("x.yaml", 0), now);
        let edited = objects(&yaml.replace("x.example", "y.example"))
            .pop()
            .expect("t");
        assert_eq!(
            store.put(edited.clone(), file("x.yaml", 0), now),
            Action::Configured
        );
        let generation = store
            .get(&edited.key())
            .and_then(|e| e.object.meta().generation);
        assert_eq!(generation, Some(2));
    }
}
