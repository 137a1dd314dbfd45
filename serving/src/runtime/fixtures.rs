//! What the runtime's unit tests share: a Revision as the Contract carries it.

use std::collections::BTreeMap;

use knit_crds::contract::serving::Revision;

/// Revision `r-00001` of Configuration `r` (a `true` container, routed) with the autoscaling
/// `annotations`.
pub(crate) fn revision(annotations: &[(&str, &str)]) -> Revision {
    let autoscaling: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let value = serde_json::json!({
        "uid": "u", "namespace": "default", "name": "r-00001", "configuration": "r",
        "container": {"name": "c", "argv": ["true"]},
        "containerConcurrency": 0, "timeoutSeconds": 30, "routed": true,
        "autoscaling": autoscaling,
    });
    match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => panic!("revision JSON: {e}"),
    }
}
