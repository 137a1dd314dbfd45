//! Source statuses: the resolved sink, and the adapter conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knit_crds::api::duck::{CloudEventAttributes, Destination, SourceStatus};
use knit_crds::api::sources::{
    ApiServerSource, CloudPubSubSource, ContainerSource, GitHubSource, KafkaSource,
    KafkaSourceStatus, PingSource,
};
use knit_crds::{Kind, Object, ObjectKey, names};

use knit_crds::contract::{Adapter, Source};

use super::World;
use super::conditions::Conditions;
use super::source_adapters as adapters;

fn sink(
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

/// KafkaSource conditions `Ready` rolls up while its sink does not resolve: the sink alone.
const KAFKA_SOURCE_SINK_ONLY: &[&str] = &["SinkProvided"];
/// KafkaSource conditions `Ready` rolls up once the data plane reports on its consumers
/// (Knative's KafkaSource condition set, less OIDC).
const KAFKA_SOURCE_WITH_CONSUMERS: &[&str] = &[
    "SinkProvided",
    "Deployed",
    "ConnectionEstablished",
    "InitialOffsetsCommitted",
];

/// What the data plane reported of a KafkaSource's consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Consumers {
    /// This many consumers joined the group and committed their initial offsets.
    Joined(i32),
    /// They could not reach Kafka: the data plane's message.
    Failed(String),
}

/// Data-plane hook for KafkaSources: record what the data plane reports about one source's
/// consumer group and return the conditions `Ready` rolls up.
///
/// - `None`: the sink does not resolve (nothing runs), and `Ready` follows `SinkProvided`
///   alone; or the data plane has not reported yet (`Deployed` set Unknown by the caller).
/// - `Some(Joined(n))`: `n` consumers joined the group and committed their initial offsets:
///   `Deployed`, `ConnectionEstablished`, `InitialOffsetsCommitted` are True and
///   `status.consumers` is `n`.
/// - `Some(Failed(why))`: the consumers could not reach Kafka: `ConnectionEstablished` is
///   False with `why`, and `Ready` with it.
pub(crate) fn kafka_source_consumers(
    c: &mut Conditions,
    status: &mut KafkaSourceStatus,
    report: Option<Consumers>,
) -> &'static [&'static str] {
    match report {
        None if c.get("Deployed").is_some() => KAFKA_SOURCE_WITH_CONSUMERS,
        None => KAFKA_SOURCE_SINK_ONLY,
        Some(Consumers::Joined(consumers)) => {
            c.ok("Deployed");
            c.ok("ConnectionEstablished");
            c.ok("InitialOffsetsCommitted");
            status.consumers = Some(consumers);
            KAFKA_SOURCE_WITH_CONSUMERS
        }
        Some(Consumers::Failed(why)) => {
            c.ok("Deployed");
            c.fail("ConnectionEstablished", "ConnectionFailed", why);
            c.unknown(
                "InitialOffsetsCommitted",
                "ConnectionFailed",
                "the consumers are not connected to Kafka",
            );
            status.consumers = Some(0);
            KAFKA_SOURCE_WITH_CONSUMERS
        }
    }
}

/// The log a KafkaSource reads: its topics, which must exist.
fn kafka_source_backend(
    ns: &str,
    name: &str,
    spec: &knit_crds::api::sources::KafkaSourceSpec,
) -> knit_crds::contract::Backend {
    knit_crds::contract::Backend::Kafka(knit_crds::contract::KafkaLog {
        bootstrap_servers: spec.bootstrap_servers.join(","),
        topics: spec.topics.clone(),
        partitions: 1,
        replication_factor: 1,
        retention_ms: None,
        external: true,
        content_mode: knit_crds::contract::ContentMode::Binary,
        foreign_source: format!("/apis/v1/namespaces/{ns}/kafkasources/{name}"),
    })
}

/// The key under which the data plane reports a KafkaSource's topics (its consumer group is
/// reported under the source's UID).
pub(crate) fn kafka_source_log_uid(uid: &str) -> String {
    format!("{uid}/topics")
}

/// What the data plane reported of a KafkaSource: `Joined(1)` once its consumer group is
/// positioned, `Failed(why)` when its topics or group failed; `None` (with `Deployed`
/// Unknown) before any report.
fn kafka_source_report(world: &World<'_>, uid: &str, c: &mut Conditions) -> Option<Consumers> {
    let log = world.report.objects.get(&kafka_source_log_uid(uid));
    let group = world.report.objects.get(uid);
    match (log, group) {
        (Some(l), _) if !l.ready => Some(Consumers::Failed(l.message.clone())),
        (_, Some(g)) if g.ready => Some(Consumers::Joined(1)),
        (_, Some(g)) => Some(Consumers::Failed(g.message.clone())),
        _ => {
            c.unknown(
                "Deployed",
                "ConsumerGroupNotReady",
                "waiting for the data plane",
            );
            None
        }
    }
}

/// The `ceAttributes` of a KafkaSource: one per topic, as Knative names them.
fn kafka_source_ce_attributes(
    ns: &str,
    name: &str,
    topics: &[String],
) -> Vec<CloudEventAttributes> {
    topics
        .iter()
        .map(|topic| CloudEventAttributes {
            type_: Some(names::KAFKA_SOURCE_EVENT_TYPE.into()),
            source: Some(names::kafka_source_event_source(ns, name, topic)),
        })
        .collect()
}

/// Set the adapter condition from what the data plane reported under `uid`: True once it
/// runs, False with its reason, Unknown before it reported. Returns the report's annotations.
fn adapter_condition(
    world: &World<'_>,
    uid: &str,
    condition: &str,
    c: &mut Conditions,
) -> std::collections::BTreeMap<String, String> {
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
                if let Some(url) = &st.sink_uri {
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
                    kafka_source(world, &key, k);
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
fn uid_of(meta: &ObjectMeta) -> String {
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
    let processes =
        adapters::container(&cs.spec, st.sink_uri.as_deref().unwrap_or_default(), bound);
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

/// A KafkaSource runs as an ingress of the data plane (its topics as a log, with one egress),
/// not as a source adapter: it gets a backend here and its egress in the Contract.
fn kafka_source(world: &mut World<'_>, key: &ObjectKey, k: &mut KafkaSource) {
    let ns = &key.namespace;
    world
        .backends
        .insert(key.clone(), kafka_source_backend(ns, &key.name, &k.spec));
    let mut c = Conditions::new();
    let mut st = SourceStatus {
        sink_uri: sink(world, k.spec.sink.as_ref(), ns, &mut c),
        ce_attributes: kafka_source_ce_attributes(ns, &key.name, &k.spec.topics),
        ..Default::default()
    };
    let mut status = KafkaSourceStatus::default();
    let report = if st.sink_uri.is_some() {
        kafka_source_report(world, &uid_of(&k.metadata), &mut c)
    } else {
        None
    };
    let dependents = kafka_source_consumers(&mut c, &mut status, report);
    st.status.conditions = c.roll_up(dependents);
    status.source = st;
    k.status = Some(status);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::reconcile::conditions::ready_of;

    #[test]
    fn kafka_source_ready_follows_the_sink_until_the_data_plane_reports() {
        let mut c = Conditions::new();
        c.ok("SinkProvided");
        let mut status = KafkaSourceStatus::default();
        let set = kafka_source_consumers(&mut c, &mut status, None);
        let conds = c.roll_up(set);
        assert_eq!(ready_of(&conds).map(|r| r.status.as_str()), Some("True"));
        assert_eq!(status.consumers, None);

        let mut c = Conditions::new();
        c.ok("SinkProvided");
        let set = kafka_source_consumers(&mut c, &mut status, Some(Consumers::Joined(2)));
        let conds = c.roll_up(set);
        assert_eq!(ready_of(&conds).map(|r| r.status.as_str()), Some("True"));
        assert_eq!(status.consumers, Some(2));

        let mut c = Conditions::new();
        c.ok("SinkProvided");
        let set = kafka_source_consumers(
            &mut c,
            &mut status,
            Some(Consumers::Failed("no brokers".into())),
        );
        let conds = c.roll_up(set);
        let ready = ready_of(&conds).cloned().unwrap_or_default();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message.as_deref(), Some("no brokers"));
    }

    #[test]
    fn kafka_source_ce_attributes_name_each_topic() {
        let attrs = kafka_source_ce_attributes("ns", "src", &["a".into(), "b".into()]);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].type_.as_deref(), Some("dev.knative.kafka.event"));
        assert_eq!(
            attrs[1].source.as_deref(),
            Some("/apis/v1/namespaces/ns/kafkasources/src#b")
        );
    }
}
