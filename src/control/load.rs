//! Loading a watched manifest file into the store, all of it or nothing: on any error the
//! file keeps what it had before.
//!
//! An edit reads only what changed: the control plane remembers, per file, a hash of each
//! document's text and the object it holds. A document whose text is unchanged (and whose
//! object is still stored from this file) is neither parsed nor admitted again; admission is
//! pure, so it would give the same object. Editing one Trigger of a 10,000-document file
//! parses and admits one document. Should a changed document name the same object as an
//! unchanged one, the whole file is admitted again, so that the later document wins as
//! `kubectl apply` has it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

use knit_crds::admission::{FieldError, Issue, Severity, admit_file_skipping, validate_update};
use knit_crds::{Object, ObjectKey};

use super::store::Origin;
use super::{ControlPlane, display, feature_gate, now};

/// What a file's documents held at its last good load: the object of each document's text, by
/// the text's hash (texts seen twice in the file are left out).
#[derive(Default)]
pub(super) struct KnownDocuments(HashMap<u64, ObjectKey>);

fn hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// A file's documents after admission: those admitted, those unchanged since the last load,
/// and each document's hash.
struct Read {
    admitted: Vec<(usize, Object)>,
    /// Document index → the stored object it still holds.
    unchanged: Vec<(usize, ObjectKey)>,
    hashes: Vec<(usize, u64)>,
}

impl ControlPlane {
    /// Load one file's documents; on any error keep what the file had before.
    pub(super) fn load_file(&mut self, path: &Path, text: &str) -> Result<(), Vec<Issue>> {
        let name = display(path);
        let known = self.documents.remove(&name).unwrap_or_default();
        let checked = self.read(&name, text, &known).and_then(|read| {
            let seen = self.check(&name, &read)?;
            Ok((read, seen))
        });
        let (read, seen) = match checked {
            Ok(done) => done,
            Err(errors) => {
                // The file keeps what it had, and so does what is known of it.
                self.documents.insert(name, known);
                return Err(errors);
            }
        };
        let stale: Vec<ObjectKey> = self
            .store
            .keys_from_file(&name)
            .into_iter()
            .filter(|k| !seen.contains(k))
            .collect();
        for key in stale {
            self.store.remove(&key);
        }
        self.documents.insert(name.clone(), remembered(&read));
        for (doc, key) in read.unchanged {
            self.moved(&name, doc, &key);
        }
        for (doc, object) in read.admitted {
            let origin = Origin::File {
                path: name.clone(),
                doc,
            };
            self.store.put(object, origin, now());
        }
        Ok(())
    }

    /// Admit the documents of `text` that `known` does not hold unchanged. Should a changed
    /// document name an unchanged one's object, which of them wins depends on their order: the
    /// whole file is admitted then.
    fn read(&self, name: &str, text: &str, known: &KnownDocuments) -> Result<Read, Vec<Issue>> {
        let read = self.read_skipping(name, text, known)?;
        let unchanged: HashSet<&ObjectKey> = read.unchanged.iter().map(|(_, k)| k).collect();
        if read
            .admitted
            .iter()
            .any(|(_, o)| unchanged.contains(&o.key()))
        {
            return self.read_skipping(name, text, &KnownDocuments::default());
        }
        Ok(read)
    }

    fn read_skipping(
        &self,
        name: &str,
        text: &str,
        known: &KnownDocuments,
    ) -> Result<Read, Vec<Issue>> {
        let mut unchanged = Vec::new();
        let mut hashes = Vec::new();
        let verdict = admit_file_skipping(name, text, &self.hooks, |doc| {
            let h = hash(doc.text);
            hashes.push((doc.index, h));
            let still_stored = known.0.get(&h).filter(|key| {
                self.store
                    .get(key)
                    .is_some_and(|e| matches!(&e.origin, Origin::File { path, .. } if path == name))
            });
            match still_stored {
                Some(key) => {
                    unchanged.push((doc.index, key.clone()));
                    true
                }
                None => false,
            }
        });
        for w in &verdict.warnings {
            tracing::warn!(file = %name, "{w}");
        }
        if !verdict.errors.is_empty() {
            return Err(verdict.errors);
        }
        Ok(Read {
            admitted: verdict.objects,
            unchanged,
            hashes,
        })
    }

    /// Check the admitted objects against the store and each other (an object of another
    /// file, an immutable field changed); the keys the file holds now.
    fn check(&self, name: &str, read: &Read) -> Result<HashSet<ObjectKey>, Vec<Issue>> {
        let mut errors = Vec::new();
        let mut seen: BTreeMap<ObjectKey, &Object> = BTreeMap::new();
        for (doc, object) in &read.admitted {
            let key = object.key();
            let subject = Some(format!("{}/{}", key.kind, key.name));
            let issue = |e: FieldError| Issue {
                file: name.to_string(),
                doc: *doc,
                subject: subject.clone(),
                error: e,
                severity: Severity::Error,
            };
            if let Some(Origin::File { path: other, .. }) = self.store.get(&key).map(|e| &e.origin)
                && other != name
            {
                errors.push(issue(FieldError::new(
                    "",
                    format!("{key} is also defined in {other}"),
                )));
                continue;
            }
            // Later documents of one file update earlier ones, as `kubectl apply` does.
            let update_errors = match seen.get(&key) {
                Some(prev) => validate_update(prev, object),
                None => self.store.check(object),
            };
            errors.extend(update_errors.into_iter().map(issue));
            seen.insert(key, object);
        }
        let kept = |k: &ObjectKey| read.unchanged.iter().any(|(_, u)| u == k);
        let batch = read.admitted.iter().map(|(_, o)| o);
        for (key, e) in feature_gate::refusals(&self.store, batch, Some(name), kept) {
            let doc = read.admitted.iter().rev().find(|(_, o)| o.key() == key);
            errors.push(Issue {
                file: name.to_string(),
                doc: doc.map_or(0, |(d, _)| *d),
                subject: Some(format!("{}/{}", key.kind, key.name)),
                error: e,
                severity: Severity::Error,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut keys: HashSet<ObjectKey> = seen.into_keys().collect();
        keys.extend(read.unchanged.iter().map(|(_, k)| k.clone()));
        Ok(keys)
    }

    /// An unchanged document's object, now at index `doc` of the file (stored again only when
    /// its index moved).
    fn moved(&mut self, name: &str, doc: usize, key: &ObjectKey) {
        let Some(entry) = self.store.get(key) else {
            return;
        };
        if matches!(&entry.origin, Origin::File { doc: d, .. } if *d == doc) {
            return;
        }
        let object = entry.object.clone();
        let origin = Origin::File {
            path: name.to_string(),
            doc,
        };
        self.store.put(object, origin, now());
    }

    /// Forget a file that is gone, and its objects.
    pub(super) fn remove_file(&mut self, path: &Path) {
        let name = display(path);
        self.documents.remove(&name);
        for key in self.store.keys_from_file(&name) {
            self.store.remove(&key);
        }
    }
}

/// What to remember of a file just loaded: each document's hash and the object it holds, for
/// documents whose object no other document of the file names (else the stored object is the
/// later document's, and the earlier one's text no longer says what is stored) and whose text
/// is not repeated in the file.
fn remembered(read: &Read) -> KnownDocuments {
    let by_doc: Vec<(usize, ObjectKey)> = read
        .unchanged
        .iter()
        .cloned()
        .chain(read.admitted.iter().map(|(doc, o)| (*doc, o.key())))
        .collect();
    let mut named: HashMap<&ObjectKey, usize> = HashMap::new();
    for (_, key) in &by_doc {
        *named.entry(key).or_default() += 1;
    }
    let key_of: HashMap<usize, &ObjectKey> = by_doc
        .iter()
        .filter(|(_, key)| named.get(key) == Some(&1))
        .map(|(doc, key)| (*doc, key))
        .collect();
    let mut known: HashMap<u64, ObjectKey> = HashMap::with_capacity(read.hashes.len());
    let mut twice: HashSet<u64> = HashSet::new();
    for (doc, h) in &read.hashes {
        if let Some(key) = key_of.get(doc)
            && known.insert(*h, (*key).clone()).is_some()
        {
            twice.insert(*h);
        }
    }
    for h in twice {
        known.remove(&h);
    }
    KnownDocuments(known)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;

    use knit_crds::Kind;
    use knit_crds::admission::Hooks;
    use knit_crds::contract::{Contract, Report};

    use super::*;
    use crate::control::reconcile::Env;
    use crate::control::{Applier, publish, store::Store};

    struct Nowhere;

    impl Applier for Nowhere {
        fn apply<'a>(
            &'a self,
            _: &'a Contract,
        ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
            Box::pin(std::future::ready(()))
        }
    }

    fn control_plane() -> ControlPlane {
        let (snapshot, _) = tokio::sync::watch::channel(Arc::default());
        let (_, report) = tokio::sync::watch::channel(Arc::new(Report::default()));
        ControlPlane {
            store: Store::default(),
            documents: HashMap::new(),
            published: publish::Published::default(),
            history: Vec::new(),
            env: Env {
                ingress_url: "http://127.0.0.1:1".into(),
                gateway_url: "http://127.0.0.1:2".into(),
                kafka: None,
                nats: None,
                tls: None,
            },
            hooks: Hooks::default(),
            applier: Arc::new(Nowhere),
            contract: Arc::default(),
            snapshot,
            report,
            last_pass: std::time::Duration::ZERO,
            passes: 0,
        }
    }

    fn broker(name: &str, team: &str) -> String {
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {{name: {name}, labels: {{team: {team}}}}}\n"
        )
    }

    fn file(docs: &[String]) -> String {
        docs.join("---\n")
    }

    /// `name`'s uid, resourceVersion, `team` label and document index.
    fn stored(cp: &ControlPlane, name: &str) -> (String, String, String, usize) {
        let key = ObjectKey::new(Kind::Broker, "default", name);
        let Some(e) = cp.store.get(&key) else {
            panic!("{name} is not stored");
        };
        let m = e.object.meta();
        let team = m.labels.as_ref().and_then(|l| l.get("team")).cloned();
        let doc = match &e.origin {
            Origin::File { doc, .. } => *doc,
            Origin::Api => usize::MAX,
        };
        (
            m.uid.clone().unwrap_or_default(),
            m.resource_version.clone().unwrap_or_default(),
            team.unwrap_or_default(),
            doc,
        )
    }

    #[test]
    fn an_edit_reads_only_the_documents_that_changed() {
        let path = Path::new("brokers.yaml");
        let mut cp = control_plane();
        let docs = [broker("a", "x"), broker("b", "x"), broker("c", "x")];
        cp.load_file(path, &file(&docs)).expect("loads");
        let (a, b, c) = (stored(&cp, "a"), stored(&cp, "b"), stored(&cp, "c"));

        cp.load_file(
            path,
            &file(&[docs[0].clone(), broker("b", "blue"), docs[2].clone()]),
        )
        .expect("an edit loads");
        assert_eq!(stored(&cp, "a"), a, "unchanged: not stored again");
        assert_eq!(stored(&cp, "c"), c);
        let b2 = stored(&cp, "b");
        assert_eq!((b2.0.as_str(), b2.2.as_str()), (b.0.as_str(), "blue"));
        assert_ne!(b2.1, b.1, "the edited Broker has a new resourceVersion");

        // A document put in front moves the others; they keep their uid.
        let shifted = [broker("z", "x"), docs[0].clone(), broker("b", "blue")];
        cp.load_file(path, &file(&shifted)).expect("loads");
        assert_eq!((stored(&cp, "a").0, stored(&cp, "a").3), (a.0.clone(), 1));
        assert!(
            cp.store
                .get(&ObjectKey::new(Kind::Broker, "default", "c"))
                .is_none(),
            "c left the file"
        );

        // Invalid YAML keeps everything, and a later edit still reads only what changed.
        let err = cp.load_file(path, "kind: [").expect_err("invalid");
        assert!(!err.is_empty());
        assert_eq!(stored(&cp, "z").3, 0);
        let a_before = stored(&cp, "a");
        cp.load_file(
            path,
            &file(&[shifted[0].clone(), shifted[1].clone(), broker("b", "green")]),
        )
        .expect("loads");
        assert_eq!(stored(&cp, "a"), a_before);
        assert_eq!(stored(&cp, "b").2, "green");
    }

    #[test]
    fn a_changed_document_naming_an_unchanged_ones_object_wins_when_later() {
        let path = Path::new("twice.yaml");
        let mut cp = control_plane();
        cp.load_file(path, &file(&[broker("a", "x"), broker("b", "x")]))
            .expect("loads");
        cp.load_file(
            path,
            &file(&[broker("a", "x"), broker("b", "x"), broker("a", "later")]),
        )
        .expect("loads");
        assert_eq!(stored(&cp, "a").2, "later");
        cp.load_file(path, &file(&[broker("a", "first"), broker("a", "x")]))
            .expect("loads");
        assert_eq!(stored(&cp, "a").2, "x", "the later document wins");
    }

    #[test]
    fn an_object_named_twice_is_read_again_when_one_document_goes() {
        let path = Path::new("two.yaml");
        let mut cp = control_plane();
        cp.load_file(path, &file(&[broker("a", "first"), broker("a", "second")]))
            .expect("loads");
        assert_eq!(stored(&cp, "a").2, "second");
        cp.load_file(path, &broker("a", "first")).expect("loads");
        assert_eq!(stored(&cp, "a").2, "first", "not taken as unchanged");
    }

    #[test]
    fn a_removed_file_forgets_its_documents() {
        let path = Path::new("gone.yaml");
        let mut cp = control_plane();
        let text = broker("a", "x");
        cp.load_file(path, &text).expect("loads");
        cp.remove_file(path);
        assert!(cp.store.objects().next().is_none());
        cp.load_file(path, &text).expect("loads again");
        assert_eq!(
            stored(&cp, "a").2,
            "x",
            "read again, not taken as unchanged"
        );
    }

    fn features(oidc: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config-features, namespace: knative-eventing}}\ndata: {{authentication-oidc: {oidc}}}\n"
        )
    }

    fn policy(sub: &str) -> String {
        format!(
            "apiVersion: eventing.knative.dev/v1alpha1\nkind: EventPolicy\nmetadata: {{name: p}}\nspec: {{from: [{{sub: \"{sub}\"}}]}}\n"
        )
    }

    #[test]
    fn an_event_policy_is_refused_while_oidc_is_off_as_knatives_webhook_does() {
        let mut cp = control_plane();
        let (features_file, policy_file) = (Path::new("features.yaml"), Path::new("p.yaml"));
        let err = cp
            .load_file(policy_file, &policy("a"))
            .expect_err("refused");
        let shown = err[0].to_string();
        assert!(
            shown.starts_with("p.yaml:0: EventPolicy/p: spec: ")
                && shown.contains("authentication-oidc: enabled"),
            "{shown}"
        );
        // In the same file as the ConfigMap turning it on, or once it is on, it loads.
        cp.load_file(policy_file, &file(&[features("enabled"), policy("a")]))
            .expect("the file turns OIDC on itself");
        cp.load_file(policy_file, &policy("z"))
            .expect_err("the file no longer turns it on");
        cp.load_file(features_file, &features("enabled"))
            .expect_err("config-features is still p.yaml's");
        cp.load_file(policy_file, &file(&[features("enabled"), policy("b")]))
            .expect("a changed spec with OIDC on");

        // Turning OIDC off keeps the policy; its spec can then not change, but the rest can.
        cp.load_file(policy_file, &file(&[features("disabled"), policy("b")]))
            .expect("the flag may go off under a policy");
        let key = ObjectKey::new(Kind::EventPolicy, "default", "p");
        assert!(cp.store.get(&key).is_some());
        cp.load_file(policy_file, &file(&[features("disabled"), policy("c")]))
            .expect_err("its spec changed while off");
    }
}
