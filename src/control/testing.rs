//! Fixtures the control plane's unit tests share: manifests admitted as the loader admits
//! them, and objects as the store holds them.

use knit_crds::Object;
use knit_crds::admission::{Hooks, admit_file};

/// Two Brokers, `a` and `b`, in the default namespace.
pub(crate) const TWO_BROKERS: &str = "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: a}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: b}
";

/// The objects of `yaml` as admission hands them on; any admission error fails the test.
pub(crate) fn admitted(yaml: &str) -> Vec<Object> {
    let v = admit_file("test.yaml", yaml, &Hooks::default());
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    v.objects.into_iter().map(|(_, o)| o).collect()
}

/// The objects of `yaml` as the store holds them: uid `uid-NAME` and `generation`.
pub(crate) fn stored(yaml: &str, generation: i64) -> Vec<Object> {
    admitted(yaml)
        .into_iter()
        .map(|mut o| {
            let m = o.meta_mut();
            m.uid = Some(format!("uid-{}", m.name.clone().unwrap_or_default()));
            m.generation = Some(generation);
            o
        })
        .collect()
}
