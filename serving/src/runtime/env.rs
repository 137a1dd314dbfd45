//! A replica's environment and argv: the container's `env`, then the runtime contract's
//! `PORT`, `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION` (reserved names win), and `$(VAR)`
//! references in `command`/`args` (and in env values, from the variables defined before them)
//! expanded as Kubernetes does: `$$(VAR)` is the literal `$(VAR)`, an unknown `$(VAR)` stays as
//! written.

use std::collections::HashMap;

use knit_crds::contract::serving::Revision;

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
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    rev.container
        .argv
        .iter()
        .map(|a| expand(a, &vars))
        .collect()
}

/// Kubernetes' `$(VAR)` expansion.
pub(crate) fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            // `$$` is one literal `$` (so `$$(VAR)` stays `$(VAR)`).
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_expansion_rules() {
        let vars: HashMap<String, String> = [("PORT".to_string(), "8080".to_string())].into();
        assert_eq!(expand("--port=$(PORT)", &vars), "--port=8080");
        assert_eq!(expand("$$(PORT)", &vars), "$(PORT)");
        assert_eq!(expand("$(NOPE)x", &vars), "$(NOPE)x");
        assert_eq!(expand("a$b $(PORT", &vars), "a$b $(PORT");
        assert_eq!(expand("$$$(PORT)", &vars), "$8080");
    }
}
