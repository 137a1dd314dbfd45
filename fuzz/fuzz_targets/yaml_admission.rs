//! Manifests: the YAML loader plus admission, as `knit validate` and `knit apply` run them;
//! then every admitted ConfigMap through the parsers the control and data planes read it
//! with (the reconciler itself lives in the binary, which has no library target).
#![no_main]

use knit_crds::admission::{Hooks, admit_file};
use knit_crds::configmap::ChannelDefaults;
use knit_crds::configmap::autoscaler::AutoscalerConfig;
use knit_crds::{Object, contract::TransportEncryption};
use libfuzzer_sys::fuzz_target;

/// What Knit does with an admitted ConfigMap: a `config-autoscaler` admission accepted is one
/// the KPA's parser accepts too.
fn read_config_map(object: &Object) {
    let Object::ConfigMap(cm) = object else {
        return;
    };
    let Some(data) = cm.data.as_ref() else {
        return;
    };
    let ns = cm.metadata.namespace.as_deref().unwrap_or_default();
    let name = cm.metadata.name.as_deref().unwrap_or_default();
    let autoscaler = AutoscalerConfig::from_map(data);
    if (ns, name) == ("knative-serving", "config-autoscaler") {
        assert!(autoscaler.is_ok(), "admitted but refused: {autoscaler:?}");
    }
    if let Some(text) = data.get("default-ch-config") {
        let _ = ChannelDefaults::parse(text);
    }
    if let Some(mode) = data.get("transport-encryption") {
        let _ = TransportEncryption::parse(mode);
    }
}

fuzz_target!(|data: &[u8]| {
    // `knit validate` reads files lossily; the admin API takes a JSON string (UTF-8).
    let text = String::from_utf8_lossy(data);
    let hooks = Hooks {
        cesql: Some(|text| knit_broker::cesql::check(text).map_err(knit_crds::Error::expression)),
    };
    let verdict = admit_file("fuzz.yaml", &text, &hooks);
    for e in verdict.errors.iter().chain(&verdict.warnings) {
        let _ = e.to_string();
    }
    for (_, object) in &verdict.objects {
        read_config_map(object);
    }
    let _ = knit_crds::yaml::parse_documents(&text);
});
