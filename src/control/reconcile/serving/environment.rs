//! A Revision's environment as Kubernetes builds it: `envFrom` (ConfigMaps, Secrets) then
//! `env`, with `configMapKeyRef` and `secretKeyRef` resolved in the Revision's namespace.

use std::collections::BTreeMap;

use knit_crds::api::serving::RevisionSpec;
use knit_crds::{Kind, Object, ObjectKey};

use super::super::World;
use super::revisions::serving_container;

/// Reason of a Revision whose environment names a ConfigMap or Secret key that is missing
/// (Kubernetes' container reason).
pub(crate) const CONFIG_ERROR: &str = "CreateContainerConfigError";

fn config_map_value(world: &World<'_>, ns: &str, name: &str, key: &str) -> Option<String> {
    match world
        .objects
        .get(&ObjectKey::new(Kind::ConfigMap, ns, name))
    {
        Some(Object::ConfigMap(cm)) => cm.data.as_ref()?.get(key).cloned(),
        _ => None,
    }
}

fn secret_data(world: &World<'_>, ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let Some(Object::Secret(sec)) = world.objects.get(&ObjectKey::new(Kind::Secret, ns, name))
    else {
        return None;
    };
    let mut out: BTreeMap<String, String> = sec
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    out.extend(sec.string_data.clone().unwrap_or_default());
    Some(out)
}

/// Why a Revision's environment cannot be built; its text is the `CONFIG_ERROR` message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvError {
    /// `envFrom` names a ConfigMap that does not exist.
    #[error("configmap {0:?} not found")]
    ConfigMapMissing(String),
    /// `envFrom` names a Secret that does not exist.
    #[error("secret {0:?} not found")]
    SecretMissing(String),
    /// `configMapKeyRef` names a key (or ConfigMap) that does not exist.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        namespace: String,
        name: String,
        key: String,
    },
    /// `secretKeyRef` names a key (or Secret) that does not exist.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
}

/// The serving container's environment: `envFrom` (ConfigMaps, Secrets) then `env`, literal
/// values and `configMapKeyRef`/`secretKeyRef` resolved in `ns` (`fieldRef` and
/// `resourceFieldRef` are skipped). A required reference that does not resolve is an error.
pub(crate) fn environment(
    world: &World<'_>,
    ns: &str,
    spec: &RevisionSpec,
) -> Result<Vec<(String, String)>, EnvError> {
    let Some(c) = serving_container(spec) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        out.retain(|(n, _)| *n != k);
        out.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            let name = r.name.clone();
            match world
                .objects
                .get(&ObjectKey::new(Kind::ConfigMap, ns, &name))
            {
                Some(Object::ConfigMap(cm)) => Some(cm.data.clone().unwrap_or_default()),
                _ if r.optional == Some(true) => None,
                _ => return Err(EnvError::ConfigMapMissing(name)),
            }
        } else if let Some(r) = &from.secret_ref {
            match secret_data(world, ns, &r.name) {
                Some(d) => Some(d),
                None if r.optional == Some(true) => None,
                None => return Err(EnvError::SecretMissing(r.name.clone())),
            }
        } else {
            None
        };
        for (k, v) in data.into_iter().flatten() {
            set(&mut out, format!("{prefix}{k}"), v);
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(e.value.clone().unwrap_or_default()),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    match config_map_value(world, ns, &r.name, &r.key) {
                        Some(v) => Some(v),
                        None if r.optional == Some(true) => None,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                namespace: ns.to_string(),
                                name: r.name.clone(),
                                key: r.key.clone(),
                            });
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match secret_data(world, ns, &r.name).and_then(|d| d.get(&r.key).cloned()) {
                        Some(v) => Some(v),
                        None if r.optional == Some(true) => None,
                        None => {
                            return Err(EnvError::SecretKey {
                                namespace: ns.to_string(),
                                name: r.name.clone(),
                                key: r.key.clone(),
                            });
                        }
                    }
                } else {
                    None
                }
            }
        };
        if let Some(v) = value {
            set(&mut out, e.name.clone(), v);
        }
    }
    Ok(out)
}
