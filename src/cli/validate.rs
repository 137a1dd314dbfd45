//! `knit validate`: admission only, offline.

use std::path::PathBuf;

use knit_crds::admission::admit_file;

use crate::control::files;

/// Validate every manifest under `paths`; print every error and warning. Returns whether all
/// documents are valid.
pub fn run(paths: &[PathBuf]) -> bool {
    let mut ok = true;
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
        if verdict.errors.is_empty() {
            println!("{name}: valid ({} objects)", verdict.objects.len());
        } else {
            ok = false;
        }
    }
    ok
}
