//! `knit validate`: admission only, offline (with the checks across files `knit run` makes:
//! an EventPolicy needs `authentication-oidc` enabled).

use std::path::PathBuf;

use knit_crds::admission::admit_file;

use knit_crds::Object;

use crate::control::{feature_gate, files};

/// Validate every manifest under `paths`; print every error and warning. Returns whether all
/// documents are valid.
pub fn run(paths: &[PathBuf]) -> bool {
    let mut ok = true;
    let mut policies = Vec::new();
    let mut oidc = false;
    let files = files::list(paths);
    if files.is_empty() {
        eprintln!("error: no manifest files (.yaml, .yml, .json) under the given paths");
        return false;
    }
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                ok = false;
                continue;
            }
        };
        let verdict = admit_file(&name, &text, &crate::hooks());
        for w in &verdict.warnings {
            eprintln!("warning: {w}");
        }
        for e in &verdict.errors {
            eprintln!("{e}");
        }
        for (doc, o) in &verdict.objects {
            if let Object::EventPolicy(_) = o {
                policies.push(format!("{name}:{doc}: EventPolicy/{}", o.name()));
            } else if o.key() == feature_gate::features_key() {
                oidc = feature_gate::oidc_enabled(Some(o));
            }
        }
        if verdict.errors.is_empty() {
            println!("{name}: valid ({} objects)", verdict.objects.len());
        } else {
            ok = false;
        }
    }
    if !oidc {
        for p in &policies {
            eprintln!("{p}: {}", feature_gate::refusal());
        }
        ok &= policies.is_empty();
    }
    ok
}
