//! A replica's environment and argv: the container's `env`, then the runtime contract's
//! `PORT`, `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION` (reserved names win), and `$(VAR)`
//! references in `command`/`args` (and in env values, from the variables defined before them)
//! expanded as Kubernetes does: `$$(VAR)` is the literal `$(VAR)`, an unknown `$(VAR)` stays as
//! written.

use std::collections::HashMap;

use knit_crds::contract::serving::Revision;
use knit_crds::expand::{expand, expand_argv};

/// The environment of one replica listening on `port`, in order.
pub(crate) fn environment(rev: &Revision, port: u16) -> Vec<(String, String)> {
    const RESERVED: [&str; 4] = ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in &rev.container.env {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        let v = expand(v, &seen);
        seen.insert(k.clone(), v.clone());
        out.push((k.clone(), v));
    }
    let mut reserved = vec![
        ("PORT".to_string(), port.to_string()),
        ("K_CONFIGURATION".to_string(), rev.configuration.clone()),
        ("K_REVISION".to_string(), rev.name.clone()),
    ];
    if let Some(svc) = &rev.service {
        reserved.push(("K_SERVICE".to_string(), svc.clone()));
    }
    out.extend(reserved);
    out
}

/// The argv with `$(VAR)` expanded from `env`.
pub(crate) fn argv(rev: &Revision, env: &[(String, String)]) -> Vec<String> {
    expand_argv(&rev.container.argv, env)
}
