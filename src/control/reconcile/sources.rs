//! Source statuses: the resolved sink, and the adapter conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knit_crds::api::duck::{CloudEventAttributes, Destination, SourceStatus};
use knit_crds::api::sources::{
    ApiServerSource, CloudPubSubSource, ContainerSource, GitHubSource, PingSource,
};
use knit_crds::{Kind, Object, ObjectKey};

use knit_crds::contract::{Adapter, Source};

use super::World;
use super::conditions::Conditions;
use super::kafka_source;
use super::resolve::Caller;
use super::source_adapters as adapters;

/// The sink's URL, into `SinkProvided`.
pub(super) fn sink(
    world: &World<'_>,
    sink: Option<&Destination>,
    ns: &str,
    c: &mut Conditions,
) -> Option<String> {
    match sink.map(|s| world.resolve(s, ns)) {
        Some(Ok(u)) => {
            c.ok("SinkProvided");
            Some(u)
        }
        Some(Err(e)) => {
            c.fail("SinkProvided", "NotFound", e.to_string());
            None
        }
        None => {
            c.fail("SinkProvided", "NotFound", "spec.sink is not set");
            None
        }
    }
}

/// `K_SINK` for the local processes of a source whose `status.sinkUri` is resolved: a URL they
/// can reach (see [`Caller::Process`]).
fn process_sink(
    world: &World<'_>,
    sink: Option<&Destination>,
    ns: &str,
    st: &SourceStatus,
) -> Option<String> {
    st.sink_uri.as_ref()?;
    world.resolve_for(sink?, ns, Caller::Process).ok()
}

/// Set the adapter condition from what the data plane reported under `uid`: True once it
/// runs, False with its reason, Unknown before it reported. Returns the report's annotations.
///
/// With replicas sharing an engine, work that must run once runs on the source's leader: the
/// `Leader` condition (informational) says which replica leads, and on the others the adapter
/// condition is True with reason `Standby`.
fn adapter_condition(
    world: &World<'_>,
    uid: &str,
    condition: &str,
    c: &mut Conditions,
) -> std::collections::BTreeMap<String, String> {
    if let Some(lead) = world
        .report
        .objects
        .get(&knit_sources::lead::report_key(uid))
    {
        c.warning("Leader", lead.ready, &lead.reason, lead.message.clone());
        if !lead.ready {
            c.ok_because(condition, &lead.reason, lead.message.clone());
            return lead.annotations.clone();
        }
    }
    match world.report.objects.get(uid) {
        Some(r) if r.ready => {
            c.ok(condition);
            r.annotations.clone()
        }
        Some(r) => {
            let reason = if r.reason.is_empty() {
                "AdapterFailed"
            } else {
                r.reason.as_str()
            };
            c.fail(condition, reason, r.message.clone());
            r.annotations.clone()
        }
        None => {
            c.unknown(
                condition,
                "AdapterStarting",
                "waiting for the adapter to start",
            );
            Default::default()
        }
    }
}

/// The SinkBindings whose subject is a ContainerSource, by that source; each binding's status.
fn sink_bindings(
    world: &mut World<'_>,
) -> std::collections::HashMap<ObjectKey, Vec<adapters::Binding>> {
    let mut by_subject: std::collections::HashMap<ObjectKey, Vec<adapters::Binding>> =
        Default::default();
    for key in world.keys_of(Kind::SinkBinding) {
        let Some(Object::SinkBinding(mut b)) = world.objects.get(&key).cloned() else {
            continue;
        };
        let ns = key.namespace.clone();
        let mut c = Conditions::new();
        let mut st = SourceStatus {
            sink_uri: sink(world, b.spec.sink.as_ref(), &ns, &mut c),
            ..Default::default()
        };
        let subject = b.spec.subject.clone().unwrap_or_default();
        let subject_ns = subject.namespace.clone().unwrap_or_else(|| ns.clone());
        let kind = subject.kind.clone().unwrap_or_default();
        if kind == "ContainerSource" {
            let targets: Vec<ObjectKey> = world
                .keys_of(Kind::ContainerSource)
                .into_iter()
                .filter(|k| k.namespace == subject_ns)
                .filter(|k| match (&subject.name, &subject.selector) {
                    (Some(n), _) => &k.name == n,
                    (None, Some(sel)) => world.objects.get(k).is_some_and(|o| {
                        adapters::selects(sel, &o.meta().labels.clone().unwrap_or_default())
                    }),
                    (None, None) => false,
                })
                .collect();
            if targets.is_empty() {
                c.fail(
                    "BindingAvailable",
                    "SubjectMissing",
                    format!("no ContainerSource in {subject_ns} matches spec.subject"),
                );
            } else {
                if let Some(url) = process_sink(world, b.spec.sink.as_ref(), &ns, &st) {
                    for t in targets {
                        by_subject.entry(t).or_default().push(adapters::Binding {
                            sink: url.clone(),
                            overrides: b.spec.ce_overrides.clone(),
                        });
                    }
                }
                c.ok("BindingAvailable");
            }
        } else {
            c.fail(
                "BindingAvailable",
                "SubjectNotSupported",
                format!("a {kind} runs in a cluster; in standalone mode a SinkBinding binds ContainerSources (and, once serving runs, Knative Services)"),
            );
        }
        st.status.conditions = c.roll_up(&["SinkProvided", "BindingAvailable"]);
        b.status = Some(st);
        world.objects.insert(key, Object::SinkBinding(b));
    }
    by_subject
}

/// Every source's status, and the Contract entry of each one whose adapter can run.
pub(crate) fn sources(world: &mut World<'_>) {
    let bindings = sink_bindings(world);
    let kinds = [
        Kind::PingSource,
        Kind::ApiServerSource,
        Kind::ContainerSource,
        Kind::GitHubSource,
        Kind::KafkaSource,
        Kind::CloudPubSubSource,
    ];
    for kind in kinds {
        for key in world.keys_of(kind) {
            let Some(mut o) = world.objects.get(&key).cloned() else {
                continue;
            };
            let entry = match &mut o {
                Object::PingSource(p) => ping_source(world, &key, p),
                Object::ApiServerSource(a) => api_server_source(world, &key, a),
                Object::ContainerSource(cs) => {
                    let bound = bindings.get(&key).cloned().unwrap_or_default();
                    container_source(world, &key, cs, &bound)
                }
                Object::GitHubSource(g) => github_source(world, &key, g),
                Object::KafkaSource(k) => {
                    kafka_source::status(world, &key, k);
                    None
                }
                Object::CloudPubSubSource(p) => pubsub_source(world, &key, p),
                _ => continue,
            };
            if let Some(e) = entry {
                world.sources.push(e);
            }
            world.objects.insert(key, o);
        }
    }
}

/// The UID of a source.
pub(super) fn uid_of(meta: &ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_default()
}

fn ping_source(world: &World<'_>, key: &ObjectKey, p: &mut PingSource) -> Option<Source> {
    let ns = &key.namespace;
    let mut c = Conditions::new();
    let mut st = SourceStatus {
        sink_uri: sink(world, p.spec.sink.as_ref(), ns, &mut c),
        ce_attributes: vec![CloudEventAttributes {
            type_: Some(knit_sources::ping::EVENT_TYPE.into()),
            source: Some(knit_sources::ping::event_source(ns, &key.name)),
        }],
        ..Default::default()
    };
    let entry = match st.sink_uri.clone() {
        Some(url) => {
            let adapter = Adapter::Ping(adapters::ping(&p.spec));
            adapter_condition(world, &uid_of(&p.metadata), "Deployed", &mut c);
            Some(adapters::entry(
                Kind::PingSource,
                &p.metadata,
                url,
                p.spec.ce_overrides.as_ref(),
                adapter,
            ))
        }
        None => {
            c.unknown(
                "Deployed",
                "SinkNotResolved",
                "the adapter starts once the sink resolves",
            );
            None
        }
    };
    st.status.conditions = c.roll_up(&["SinkProvided", "Deployed"]);
    p.status = Some(st);
    entry
}

fn api_server_source(
    world: &World<'_>,
    key: &ObjectKey,
    a: &mut ApiServerSource,
) -> Option<Source> {
    let ns = &key.namespace;
    let mut c = Conditions::new();
    let cfg = adapters::api_server(&a.spec, ns);
    let mut st = SourceStatus {
        sink_uri: sink(world, a.spec.sink.as_ref(), ns, &mut c),
        ce_attributes: api_server_attributes(&cfg),
        ..Default::default()
    };
    let mut status = a.status.clone().unwrap_or_default();
    let entry = match st.sink_uri.clone() {
        Some(url) => {
            let entry = adapters::entry(
                Kind::ApiServerSource,
                &a.metadata,
                url,
                a.spec.ce_overrides.as_ref(),
                Adapter::ApiServer(cfg.clone()),
            );
            let notes = adapter_condition(world, &uid_of(&a.metadata), "Deployed", &mut c);
            if let Some(server) = notes.get("source") {
                for attr in &mut st.ce_attributes {
                    attr.source = Some(server.clone());
                }
            }
            permissions(&mut c);
            Some(entry)
        }
        None => {
            c.unknown(
                "Deployed",
                "SinkNotResolved",
                "the adapter starts once the sink resolves",
            );
            c.unknown("SufficientPermissions", "NotChecked", "");
            None
        }
    };
    st.status.conditions = c.roll_up(&["SinkProvided", "Deployed", "SufficientPermissions"]);
    status.source = st;
    status.namespaces = if cfg.namespaces.is_empty() {
        vec![]
    } else {
        cfg.namespaces.clone()
    };
    a.status = Some(status);
    entry
}

/// An ApiServerSource's `SufficientPermissions`, from its `Deployed`: True once the watches
/// run, False when the API server forbade them.
fn permissions(c: &mut Conditions) {
    if c.is_true("Deployed") {
        c.ok("SufficientPermissions");
    } else if c
        .get("Deployed")
        .is_some_and(|d| d.reason.as_deref() == Some("WatchForbidden"))
    {
        let msg = c
            .get("Deployed")
            .and_then(|d| d.message.clone())
            .unwrap_or_default();
        c.fail("SufficientPermissions", "WatchForbidden", msg);
    } else {
        c.unknown(
            "SufficientPermissions",
            "NotChecked",
            "checked once the watches run",
        );
    }
}

fn container_source(
    world: &World<'_>,
    key: &ObjectKey,
    cs: &mut ContainerSource,
    bound: &[adapters::Binding],
) -> Option<Source> {
    let mut c = Conditions::new();
    let mut st = SourceStatus {
        sink_uri: sink(world, cs.spec.sink.as_ref(), &key.namespace, &mut c),
        ..Default::default()
    };
    let k_sink = process_sink(world, cs.spec.sink.as_ref(), &key.namespace, &st);
    let processes = adapters::container(&cs.spec, k_sink.as_deref().unwrap_or_default(), bound);
    let entry = match (&st.sink_uri, processes) {
        (_, Err(why)) => {
            c.fail(
                "ReceiveAdapterReady",
                "ImageNotRunnableLocally",
                why.to_string(),
            );
            None
        }
        (Some(url), Ok(cfg)) => {
            adapter_condition(world, &uid_of(&cs.metadata), "ReceiveAdapterReady", &mut c);
            Some(adapters::entry(
                Kind::ContainerSource,
                &cs.metadata,
                url.clone(),
                cs.spec.ce_overrides.as_ref(),
                Adapter::Container(cfg),
            ))
        }
        (None, Ok(_)) => {
            c.unknown(
                "ReceiveAdapterReady",
                "SinkNotResolved",
                "the processes start once the sink resolves",
            );
            None
        }
    };
    st.status.conditions = c.roll_up(&["SinkProvided", "ReceiveAdapterReady"]);
    cs.status = Some(st);
    entry
}

fn github_source(world: &World<'_>, key: &ObjectKey, g: &mut GitHubSource) -> Option<Source> {
    let ns = &key.namespace;
    let mut c = Conditions::new();
    let cfg = adapters::github(world, ns, &key.name, &g.spec);
    match &cfg {
        Ok(_) => {
            c.ok("SecretsProvided");
        }
        Err(e) => {
            c.fail("SecretsProvided", "SecretNotFound", e.to_string());
        }
    }
    let mut st = SourceStatus {
        sink_uri: sink(world, g.spec.sink.as_ref(), ns, &mut c),
        ce_attributes: github_attributes(&g.spec),
        ..Default::default()
    };
    let mut status = g.status.clone().unwrap_or_default();
    status.address = None;
    status.webhook_id_key = None;
    let entry = match (cfg, st.sink_uri.clone()) {
        (Ok(cfg), Some(url)) => {
            status.address = Some(knit_crds::api::duck::Addressable {
                name: Some("http".into()),
                url: Some(cfg.url.clone()),
                audience: world.audience_of(key),
                ..Default::default()
            });
            let entry = adapters::entry(
                Kind::GitHubSource,
                &g.metadata,
                url,
                g.spec.ce_overrides.as_ref(),
                Adapter::GitHub(cfg),
            );
            let notes = adapter_condition(world, &uid_of(&g.metadata), "WebhookConfigured", &mut c);
            status.webhook_id_key = notes.get("webhookIDKey").cloned();
            Some(entry)
        }
        _ => {
            c.unknown(
                "WebhookConfigured",
                "NotStarted",
                "the receiver starts once the secrets and the sink resolve",
            );
            None
        }
    };
    st.status.conditions = c.roll_up(&["SecretsProvided", "SinkProvided", "WebhookConfigured"]);
    status.source = st;
    g.status = Some(status);
    entry
}

fn pubsub_source(world: &World<'_>, key: &ObjectKey, p: &mut CloudPubSubSource) -> Option<Source> {
    let ns = &key.namespace;
    let uid = uid_of(&p.metadata);
    let mut c = Conditions::new();
    let project = p.spec.project.clone().unwrap_or_default();
    let topic = p.spec.topic.clone().unwrap_or_default();
    let mut st = SourceStatus {
        sink_uri: sink(world, p.spec.sink.as_ref(), ns, &mut c),
        ce_attributes: vec![CloudEventAttributes {
            type_: Some(PUBSUB_EVENT_TYPE.into()),
            source: Some(format!(
                "//pubsub.googleapis.com/projects/{project}/topics/{topic}"
            )),
        }],
        ..Default::default()
    };
    let mut status = knit_crds::api::sources::CloudPubSubSourceStatus::default();
    let entry = match (
        adapters::pubsub(ns, &key.name, &uid, &p.spec),
        st.sink_uri.clone(),
    ) {
        (Err(why), _) => {
            c.fail("PullSubscriptionReady", "ProjectNotSet", why.to_string());
            None
        }
        (Ok(cfg), Some(url)) => {
            status.project_id = Some(cfg.project.clone());
            status.subscription_id = Some(cfg.subscription.clone());
            adapter_condition(world, &uid, "PullSubscriptionReady", &mut c);
            Some(adapters::entry(
                Kind::CloudPubSubSource,
                &p.metadata,
                url,
                p.spec.ce_overrides.as_ref(),
                Adapter::PubSub(cfg),
            ))
        }
        (Ok(_), None) => {
            c.unknown(
                "PullSubscriptionReady",
                "SinkNotResolved",
                "the subscription is pulled once the sink resolves",
            );
            None
        }
    };
    st.status.conditions = c.roll_up(&["SinkProvided", "PullSubscriptionReady"]);
    status.source = st;
    p.status = Some(status);
    entry
}

/// `type` of CloudPubSubSource events.
const PUBSUB_EVENT_TYPE: &str = "google.cloud.pubsub.topic.v1.messagePublished";

fn github_attributes(
    spec: &knit_crds::api::sources::GitHubSourceSpec,
) -> Vec<CloudEventAttributes> {
    let source = format!(
        "https://github.com/{}",
        spec.owner_and_repository.clone().unwrap_or_default()
    );
    spec.event_types
        .iter()
        .map(|t| CloudEventAttributes {
            type_: Some(format!("dev.knative.source.github.{t}")),
            source: Some(source.clone()),
        })
        .collect()
}

fn api_server_attributes(cfg: &knit_crds::contract::ApiServerAdapter) -> Vec<CloudEventAttributes> {
    let kind = match cfg.mode {
        knit_crds::contract::ApiServerMode::Resource => "resource",
        knit_crds::contract::ApiServerMode::Reference => "ref",
    };
    ["add", "update", "delete"]
        .iter()
        .map(|op| CloudEventAttributes {
            type_: Some(format!("dev.knative.apiserver.{kind}.{op}")),
            source: None,
        })
        .collect()
}
