//! Kinds that exist only while a feature is on, refused at admission as Knative's webhook
//! refuses them: an EventPolicy is not created, nor its spec changed, while
//! `authentication-oidc` is off in `knative-eventing/config-features` (security.md §3.1).
//!
//! Manifests are files, so the flag is read from what the store will hold once the document's
//! file (or `knit apply` request) is in: the batch's own `config-features` if it has one, else
//! the stored one. Turning the flag off later keeps the policies; they then show
//! `AuthenticationEnabled` False and are not Ready, as in Knative.

use knit_crds::admission::FieldError;
use knit_crds::{Kind, Object, ObjectKey};

use super::store::{Origin, Store};

/// Whether `config-features` enables `authentication-oidc`.
pub(crate) fn oidc_enabled(features: Option<&Object>) -> bool {
    let Some(Object::ConfigMap(cm)) = features else {
        return false;
    };
    cm.data
        .as_ref()
        .and_then(|d| d.get("authentication-oidc"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("enabled"))
}

/// The key of `knative-eventing/config-features`.
pub(crate) fn features_key() -> ObjectKey {
    ObjectKey::new(Kind::ConfigMap, "knative-eventing", "config-features")
}

/// The refusal of each EventPolicy of `batch` that is new or whose spec changed while OIDC is
/// off once the batch is in. `file` is the batch's manifest file (its earlier
/// `config-features` no longer counts when the batch does not keep it); `kept` says whether an
/// unchanged document of the batch keeps the stored object of a key.
pub(crate) fn refusals<'a>(
    store: &Store,
    batch: impl Iterator<Item = &'a Object> + Clone,
    file: Option<&str>,
    kept: impl Fn(&ObjectKey) -> bool,
) -> Vec<(ObjectKey, FieldError)> {
    let policies: Vec<&Object> = batch
        .clone()
        .filter(|o| matches!(o, Object::EventPolicy(_)))
        .filter(|o| match (o, store.get(&o.key()).map(|e| &e.object)) {
            (Object::EventPolicy(new), Some(Object::EventPolicy(old))) => new.spec != old.spec,
            _ => true,
        })
        .collect();
    if policies.is_empty() {
        return Vec::new();
    }
    let key = features_key();
    let features = batch.filter(|o| o.key() == key).last().or_else(|| {
        store
            .get(&key)
            .filter(|e| {
                let from_batch =
                    matches!((&e.origin, file), (Origin::File { path, .. }, Some(f)) if path == f);
                !from_batch || kept(&key)
            })
            .map(|e| &e.object)
    });
    if oidc_enabled(features) {
        return Vec::new();
    }
    policies.into_iter().map(|p| (p.key(), refusal())).collect()
}

/// The refusal of an EventPolicy while OIDC is off.
pub(crate) fn refusal() -> FieldError {
    FieldError::new(
        "spec",
        "an EventPolicy needs sender identity: set `authentication-oidc: enabled` in ConfigMap \
         knative-eventing/config-features first (Knative's webhook refuses it too)",
    )
}
