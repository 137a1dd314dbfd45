//! Kubernetes' `$(VAR)` expansion in a container's `command`, `args` and `env` values:
//! `$(NAME)` is the variable's value, `$$` one literal `$` (so `$$(VAR)` stays `$(VAR)`), and an
//! unknown `$(NAME)` stays as written. Env values see the variables defined before them.

use std::collections::HashMap;

/// Kubernetes' `$(VAR)` expansion.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
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

/// `env` in order, each value expanded from the variables before it.
pub fn expand_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut seen: HashMap<String, String> = HashMap::new();
    env.iter()
        .map(|(k, v)| {
            let v = expand(v, &seen);
            seen.insert(k.clone(), v.clone());
            (k.clone(), v)
        })
        .collect()
}

/// `argv` expanded from `env` (a later definition of a name wins).
pub fn expand_argv(argv: &[String], env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    argv.iter().map(|a| expand(a, &vars)).collect()
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

    #[test]
    fn env_values_see_earlier_variables_and_argv_sees_all() {
        let env = vec![
            ("A".to_string(), "a".to_string()),
            ("B".to_string(), "$(A)-$(C)".to_string()),
            ("C".to_string(), "c".to_string()),
        ];
        let env = expand_env(&env);
        assert_eq!(env[1].1, "a-$(C)");
        let argv = expand_argv(&["--b=$(B)".to_string(), "$(C)$$".to_string()], &env);
        assert_eq!(argv, ["--b=a-$(C)", "c$"]);
    }
}
