//! DomainMapping: a reference (kind, name, apiVersion) in the mapping's own namespace.

use super::common::{Errors, kreference};
use crate::api::serving::DomainMapping;

/// Knative's DomainMapping rules: the reference is required and may not leave the namespace.
pub(crate) fn validate(d: &DomainMapping, errs: &mut Errors) {
    let r = &d.spec.reference;
    kreference(r, "spec.ref", errs);
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(other) = r.namespace.as_deref().filter(|n| !n.is_empty() && *n != ns) {
        errs.add(
            "spec.ref.namespace",
            format!("mismatched namespace {other:?}: must be the DomainMapping's, {ns:?}"),
        );
    }
}
