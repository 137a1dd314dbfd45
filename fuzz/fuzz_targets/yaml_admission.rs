//! Manifests: the YAML loader plus admission, as `knit validate` and `knit apply` run them.
#![no_main]

use knit_crds::admission::{Hooks, admit_file};
use libfuzzer_sys::fuzz_target;

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
    let _ = knit_crds::yaml::parse_documents(&text);
});
