//! The Contract entries of sources: each kind's adapter configuration from its spec (secrets
//! resolved, selectors in string form, SinkBindings applied to the ContainerSources they name).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use knit_crds::api::duck::{CloudEventOverrides, SecretValueFromSource};
use knit_crds::api::sources::{
    ApiServerSourceSpec, CloudPubSubSourceSpec, ContainerSourceSpec, GitHubSourceSpec,
    PingSourceSpec,
};
use knit_crds::contract::{
    Adapter, ApiServerAdapter, ApiServerMode, Backoff, ContainerAdapter, DeliveryPolicy,
    GitHubAdapter, PingAdapter, Process, PubSubAdapter, Source, WatchedResource,
};
use knit_crds::{Kind, Object, ObjectKey};

use super::World;

/// How sources without a `spec.delivery` send (Knative's source kinds have none): a few
/// retries with exponential backoff (0.5 s, 1 s, 2 s), 10 s per attempt, so a GitHub delivery
/// is answered within GitHub's patience in the common case.
pub(crate) fn default_delivery() -> DeliveryPolicy {
    DeliveryPolicy {
        retry: 3,
        backoff: Some(Backoff::Exponential),
        backoff_delay_ms: 500,
        backoff_max_ms: Some(5_000),
        timeout_ms: Some(10_000),
        retry_after_max_ms: Some(30_000),
        format: None,
    }
}

/// A source's Contract entry.
pub(crate) fn entry(
    kind: Kind,
    meta: &ObjectMeta,
    sink: String,
    overrides: Option<&CloudEventOverrides>,
    adapter: Adapter,
) -> Source {
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    Source {
        uid: meta.uid.clone().unwrap_or_default(),
        reference: format!("{kind}/{ns}/{name}"),
        namespace: ns,
        name,
        sink,
        dead_letter_sink: None,
        delivery: default_delivery(),
        overrides: overrides.map(|o| o.extensions.clone()).unwrap_or_default(),
        adapter,
        auth: None,
    }
}

/// Why a Secret value a source needs cannot be read; its text is the `SecretsProvided`
/// message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// The field names no Secret key.
    #[error("no secretKeyRef")]
    NoKeyRef,
    /// The Secret does not exist.
    #[error("Secret {namespace}/{name} does not exist")]
    Missing { namespace: String, name: String },
    /// The key's value is not text.
    #[error("Secret {namespace}/{name} key {key:?} is not UTF-8 text")]
    NotText {
        namespace: String,
        name: String,
        key: String,
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// The Secret has no such key.
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    NoKey {
        namespace: String,
        name: String,
        key: String,
    },
}

/// The value of a Secret key in `ns`.
pub(crate) fn secret_value(
    world: &World<'_>,
    s: Option<&SecretValueFromSource>,
    ns: &str,
) -> Result<String, SecretError> {
    let Some(k) = s.and_then(|s| s.secret_key_ref.as_ref()) else {
        return Err(SecretError::NoKeyRef);
    };
    let name = k.name.clone().unwrap_or_default();
    let key = k.key.clone().unwrap_or_default();
    let Some(Object::Secret(sec)) = world.objects.get(&ObjectKey::new(Kind::Secret, ns, &name))
    else {
        return Err(SecretError::Missing {
            namespace: ns.to_string(),
            name,
        });
    };
    if let Some(v) = sec.string_data.as_ref().and_then(|d| d.get(&key)) {
        return Ok(v.clone());
    }
    match sec.data.as_ref().and_then(|d| d.get(&key)) {
        Some(v) => String::from_utf8(v.0.clone())
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|source| SecretError::NotText {
                namespace: ns.to_string(),
                name,
                key,
                source,
            }),
        None => Err(SecretError::NoKey {
            namespace: ns.to_string(),
            name,
            key,
        }),
    }
}

/// A label selector in the API's string form (`a=b,c in (d,e),!f`).
pub(crate) fn selector_string(s: &LabelSelector) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Whether `labels` satisfy `s`.
pub(crate) fn selects(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let has = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => has.is_some_and(|v| values.contains(v)),
            "NotIn" => has.is_none_or(|v| !values.contains(v)),
            "Exists" => has.is_some(),
            _ => has.is_none(),
        }
    });
    labels_ok && exprs_ok
}

pub(crate) fn ping(spec: &PingSourceSpec) -> PingAdapter {
    let schedule = spec.schedule.clone().unwrap_or_default();
    let (tz, pattern) = knit_crds::admission::split_schedule(&schedule);
    PingAdapter {
        schedule: pattern.to_string(),
        timezone: tz
            .map(str::to_string)
            .or_else(|| spec.timezone.clone())
            .unwrap_or_else(|| "UTC".into()),
        content_type: spec.content_type.clone(),
        data: spec.data.clone(),
        data_base64: spec.data_base64.clone(),
    }
}

/// The path of a GitHubSource's receiver on the ingress listener.
pub(crate) fn github_path(ns: &str, name: &str) -> String {
    format!("/github/{ns}/{name}")
}

pub(crate) fn github(
    world: &World<'_>,
    ns: &str,
    name: &str,
    spec: &GitHubSourceSpec,
) -> Result<GitHubAdapter, SecretError> {
    let path = github_path(ns, name);
    Ok(GitHubAdapter {
        url: format!("{}{path}", world.ingress_base()),
        path,
        owner_and_repository: spec.owner_and_repository.clone().unwrap_or_default(),
        event_types: spec.event_types.clone(),
        secret_token: secret_value(world, spec.secret_token.as_ref(), ns)?,
        access_token: secret_value(world, spec.access_token.as_ref(), ns)?,
        api_url: spec
            .github_api_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "https://api.github.com".into())
            .trim_end_matches('/')
            .to_string(),
        secure: spec.secure.unwrap_or(false),
        auth: None,
    })
}

pub(crate) fn api_server(spec: &ApiServerSourceSpec, ns: &str) -> ApiServerAdapter {
    ApiServerAdapter {
        resources: spec
            .resources
            .iter()
            .map(|r| WatchedResource {
                api_version: r.api_version.clone().unwrap_or_default(),
                kind: r.kind.clone().unwrap_or_default(),
                label_selector: r.selector.as_ref().map(selector_string),
            })
            .collect(),
        owner: spec.owner.as_ref().map(|o| {
            (
                o.api_version.clone().unwrap_or_default(),
                o.kind.clone().unwrap_or_default(),
            )
        }),
        mode: match spec.mode.as_deref() {
            Some("Resource") => ApiServerMode::Resource,
            _ => ApiServerMode::Reference,
        },
        namespaces: if spec.namespace_selector.is_some() {
            Vec::new()
        } else {
            vec![ns.to_string()]
        },
        namespace_selector: spec.namespace_selector.as_ref().map(selector_string),
        filters: spec.filters.clone(),
    }
}

/// Whole seconds of a duration written the Go way (`30s`) or in ISO-8601 (`PT30S`), as
/// CloudPubSubSource's `ackDeadline` and `retentionDuration` are (admission refused others).
fn seconds(v: &str) -> Option<u64> {
    knit_crds::duration::parse_go_or_iso8601(v)
        .ok()
        .map(|d| d.as_secs())
}

/// The pull subscription Knit creates for a CloudPubSubSource: `knit_<ns>_<name>_<uid>`,
/// within Pub/Sub's naming rules (letters, digits, `-_.~+%`, starting with a letter, at most
/// 255 characters).
pub(crate) fn pubsub_subscription(ns: &str, name: &str, uid: &str) -> String {
    let raw = format!("knit_{ns}_{name}_{uid}");
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.~+%".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(255)
        .collect();
    clean
}

/// A CloudPubSubSource without `spec.project`; its text is the `PullSubscriptionReady`
/// message.
#[derive(Debug, thiserror::Error)]
#[error("spec.project is not set (Knit has no metadata server to ask for a default project)")]
pub(crate) struct NoProject;

pub(crate) fn pubsub(
    ns: &str,
    name: &str,
    uid: &str,
    spec: &CloudPubSubSourceSpec,
) -> Result<PubSubAdapter, NoProject> {
    let project = spec
        .project
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or(NoProject)?;
    Ok(PubSubAdapter {
        project,
        topic: spec.topic.clone().unwrap_or_default(),
        subscription: pubsub_subscription(ns, name, uid),
        ack_deadline_seconds: spec
            .ack_deadline
            .as_deref()
            .and_then(seconds)
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(30),
        retain_acked_messages: spec.retain_acked_messages.unwrap_or(false),
        retention_seconds: spec.retention_duration.as_deref().and_then(seconds),
    })
}

/// What a SinkBinding adds to the processes of its subject.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) sink: String,
    pub(crate) overrides: Option<CloudEventOverrides>,
}

/// `K_CE_OVERRIDES` as Knative writes it.
fn ce_overrides_json(o: Option<&CloudEventOverrides>) -> Option<String> {
    let o = o.filter(|o| !o.extensions.is_empty())?;
    Some(serde_json::json!({ "extensions": o.extensions }).to_string())
}

/// Why a ContainerSource cannot run locally; its text is the `ReceiveAdapterReady` message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContainerError {
    /// The template has no container.
    #[error("spec.template.spec.containers is empty")]
    NoContainers,
    /// A container has an image but nothing to run on this machine.
    #[error(
        "container {name:?} has image {image:?} but no command: Knit runs containers as local processes; set command (and args) to a program on this machine"
    )]
    NoCommand { name: String, image: String },
}

/// A ContainerSource's processes, or why they cannot run locally.
pub(crate) fn container(
    spec: &ContainerSourceSpec,
    sink: &str,
    bindings: &[Binding],
) -> Result<ContainerAdapter, ContainerError> {
    let containers = spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    if containers.is_empty() {
        return Err(ContainerError::NoContainers);
    }
    let mut processes = Vec::new();
    for c in containers {
        let mut argv = c.command.clone().unwrap_or_default();
        if argv.is_empty() {
            return Err(ContainerError::NoCommand {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
            });
        }
        argv.extend(c.args.clone().unwrap_or_default());
        // `$(VAR)` in env values, command and args as Kubernetes expands them in the
        // Deployment Knative makes; K_SINK and K_CE_OVERRIDES come after the container's env.
        let declared: Vec<(String, String)> = c
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
            .collect();
        let mut env = knit_crds::expand::expand_env(&declared);
        env.push(("K_SINK".into(), sink.to_string()));
        if let Some(o) = ce_overrides_json(spec.ce_overrides.as_ref()) {
            env.push(("K_CE_OVERRIDES".into(), o));
        }
        for b in bindings {
            env.push(("K_SINK".into(), b.sink.clone()));
            if let Some(o) = ce_overrides_json(b.overrides.as_ref()) {
                env.push(("K_CE_OVERRIDES".into(), o));
            }
        }
        processes.push(Process {
            name: c.name.clone(),
            argv: knit_crds::expand::expand_argv(&argv, &env),
            env,
            working_dir: c.working_dir.clone(),
        });
    }
    Ok(ContainerAdapter { processes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_render_and_match_as_the_api_does() {
        let s = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(selector_string(&s), "app=web,tier in (a,b),!canary");
        let mut labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "b".to_string()),
        ]);
        assert!(selects(&s, &labels));
        labels.insert("canary".into(), "1".into());
        assert!(!selects(&s, &labels));
    }

    #[test]
    fn subscription_names_stay_within_pubsub_rules() {
        let n = pubsub_subscription("default", "my-src", "0a1b");
        assert_eq!(n, "knit_default_my-src_0a1b");
        assert!(pubsub_subscription("ns", &"x".repeat(400), "u").len() <= 255);
    }

    #[test]
    fn container_env_and_args_expand_as_kubernetes_does() {
        let spec: ContainerSourceSpec = serde_json::from_value(serde_json::json!({
            "template": {"spec": {"containers": [{
                "name": "main",
                "command": ["adapter"],
                "args": ["--sink=$(K_SINK)", "$(GREETING_TO)", "$$(K_SINK)", "$(UNSET)", "$$$$"],
                "env": [
                    {"name": "GREETING", "value": "hello"},
                    {"name": "GREETING_TO", "value": "$(GREETING), $(NAME)"},
                    {"name": "NAME", "value": "knit"},
                ],
            }]}},
            "sink": {"uri": "http://sink.example/"},
        }))
        .expect("spec");
        let adapter = container(&spec, "http://sink.example/", &[]).expect("runs locally");
        let p = &adapter.processes[0];
        assert_eq!(
            p.argv,
            [
                "adapter",
                "--sink=http://sink.example/",
                "hello, $(NAME)",
                "$(K_SINK)",
                "$(UNSET)",
                "$$"
            ]
        );
        assert!(
            p.env
                .contains(&("GREETING_TO".to_string(), "hello, $(NAME)".to_string()))
        );
    }
}
