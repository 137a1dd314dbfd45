//! Source statuses: the resolved sink, and the adapter conditions.

use knit_crds::api::duck::{
    CloudEventAttributes, Destination, SecretValueFromSource, SourceStatus,
};
use knit_crds::api::sources::KafkaSourceStatus;
use knit_crds::{Kind, Object, ObjectKey, names};

use super::World;
use super::conditions::Conditions;

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
            c.fail("SinkProvided", "NotFound", e);
            None
        }
        None => {
            c.fail("SinkProvided", "NotFound", "spec.sink is not set");
            None
        }
    }
}

fn adapter_missing(c: &mut Conditions, condition: &str, kind: Kind) {
    c.fail(
        condition,
        "AdapterNotAvailable",
        format!("{kind} adapters are not part of this Knit build yet; the resource is stored and its sink resolved"),
    );
}

fn secret_ok(world: &World<'_>, s: Option<&SecretValueFromSource>, ns: &str) -> Result<(), String> {
    let Some(k) = s.and_then(|s| s.secret_key_ref.as_ref()) else {
        return Err("no secretKeyRef".into());
    };
    let name = k.name.clone().unwrap_or_default();
    let key = k.key.clone().unwrap_or_default();
    match world.objects.get(&ObjectKey::new(Kind::Secret, ns, &name)) {
        Some(Object::Secret(sec)) => {
            let has = sec.data.as_ref().is_some_and(|d| d.contains_key(&key))
                || sec
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&key));
            if has {
                Ok(())
            } else {
                Err(format!("Secret {ns}/{name} has no key {key:?}"))
            }
        }
        _ => Err(format!("Secret {ns}/{name} does not exist")),
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

/// Data-plane hook for KafkaSources: record what the data plane reports about one source's
/// consumer group and return the conditions `Ready` rolls up.
///
/// - `None`: the sink does not resolve (nothing runs), and `Ready` follows `SinkProvided`
///   alone; or the data plane has not reported yet (`Deployed` set Unknown by the caller).
/// - `Some(Ok(n))`: `n` consumers joined the group and committed their initial offsets:
///   `Deployed`, `ConnectionEstablished`, `InitialOffsetsCommitted` are True and
///   `status.consumers` is `n`.
/// - `Some(Err(why))`: the consumers could not reach Kafka: `ConnectionEstablished` is False
///   with `why`, and `Ready` with it.
pub(crate) fn kafka_source_consumers(
    c: &mut Conditions,
    status: &mut KafkaSourceStatus,
    report: Option<Result<i32, String>>,
) -> &'static [&'static str] {
    match report {
        None if c.get("Deployed").is_some() => KAFKA_SOURCE_WITH_CONSUMERS,
        None => KAFKA_SOURCE_SINK_ONLY,
        Some(Ok(consumers)) => {
            c.ok("Deployed");
            c.ok("ConnectionEstablished");
            c.ok("InitialOffsetsCommitted");
            status.consumers = Some(consumers);
            KAFKA_SOURCE_WITH_CONSUMERS
        }
        Some(Err(why)) => {
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

/// What the data plane reported of a KafkaSource: `Some(Ok(1))` once its consumer group is
/// positioned, `Some(Err(why))` when its topics or group failed; `None` (with `Deployed`
/// Unknown) before any report.
fn kafka_source_report(
    world: &World<'_>,
    uid: &str,
    c: &mut Conditions,
) -> Option<Result<i32, String>> {
    let log = world.report.objects.get(&kafka_source_log_uid(uid));
    let group = world.report.objects.get(uid);
    match (log, group) {
        (Some(l), _) if !l.ready => Some(Err(l.message.clone())),
        (_, Some(g)) if g.ready => Some(Ok(1)),
        (_, Some(g)) => Some(Err(g.message.clone())),
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

pub(crate) fn sources(world: &mut World<'_>) {
    let kinds = [
        Kind::PingSource,
        Kind::ApiServerSource,
        Kind::SinkBinding,
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
            let ns = key.namespace.clone();
            let mut c = Conditions::new();
            let mut st = SourceStatus::default();
            match &mut o {
                Object::PingSource(p) => {
                    st.sink_uri = sink(world, p.spec.sink.as_ref(), &ns, &mut c);
                    st.ce_attributes = vec![CloudEventAttributes {
                        type_: Some("dev.knative.sources.ping".into()),
                        source: Some(format!("/apis/v1/namespaces/{ns}/pingsources/{}", key.name)),
                    }];
                    adapter_missing(&mut c, "Deployed", kind);
                    st.status.conditions = c.roll_up(&["SinkProvided", "Deployed"]);
                    p.status = Some(st);
                }
                Object::ApiServerSource(a) => {
                    st.sink_uri = sink(world, a.spec.sink.as_ref(), &ns, &mut c);
                    c.fail(
                        "Deployed",
                        "NoKubernetesAPI",
                        "ApiServerSource watches a Kubernetes API server; it runs in cluster mode",
                    );
                    c.unknown("SufficientPermissions", "NoKubernetesAPI", "");
                    let mut status = a.status.clone().unwrap_or_default();
                    st.status.conditions =
                        c.roll_up(&["SinkProvided", "Deployed", "SufficientPermissions"]);
                    status.source = st;
                    status.namespaces = vec![ns.clone()];
                    a.status = Some(status);
                }
                Object::SinkBinding(b) => {
                    st.sink_uri = sink(world, b.spec.sink.as_ref(), &ns, &mut c);
                    c.fail(
                        "BindingAvailable",
                        "SubjectNotSupported",
                        "SinkBinding subjects are Kubernetes workloads; they are bound in cluster mode",
                    );
                    st.status.conditions = c.roll_up(&["SinkProvided", "BindingAvailable"]);
                    b.status = Some(st);
                }
                Object::ContainerSource(cs) => {
                    st.sink_uri = sink(world, cs.spec.sink.as_ref(), &ns, &mut c);
                    adapter_missing(&mut c, "ReceiveAdapterReady", kind);
                    st.status.conditions = c.roll_up(&["SinkProvided", "ReceiveAdapterReady"]);
                    cs.status = Some(st);
                }
                Object::GitHubSource(g) => {
                    match secret_ok(world, g.spec.access_token.as_ref(), &ns)
                        .and_then(|_| secret_ok(world, g.spec.secret_token.as_ref(), &ns))
                    {
                        Ok(()) => {
                            c.ok("SecretsProvided");
                        }
                        Err(e) => {
                            c.fail("SecretsProvided", "SecretNotFound", e);
                        }
                    }
                    st.sink_uri = sink(world, g.spec.sink.as_ref(), &ns, &mut c);
                    adapter_missing(&mut c, "WebhookConfigured", kind);
                    let mut status = g.status.clone().unwrap_or_default();
                    st.status.conditions =
                        c.roll_up(&["SecretsProvided", "SinkProvided", "WebhookConfigured"]);
                    status.source = st;
                    g.status = Some(status);
                }
                Object::KafkaSource(k) => {
                    st.sink_uri = sink(world, k.spec.sink.as_ref(), &ns, &mut c);
                    st.ce_attributes = kafka_source_ce_attributes(&ns, &key.name, &k.spec.topics);
                    let mut status = KafkaSourceStatus::default();
                    let uid = k.metadata.uid.clone().unwrap_or_default();
                    world
                        .backends
                        .insert(key.clone(), kafka_source_backend(&ns, &key.name, &k.spec));
                    let report = if st.sink_uri.is_some() {
                        kafka_source_report(world, &uid, &mut c)
                    } else {
                        None
                    };
                    let dependents = kafka_source_consumers(&mut c, &mut status, report);
                    st.status.conditions = c.roll_up(dependents);
                    status.source = st;
                    k.status = Some(status);
                }
                Object::CloudPubSubSource(p) => {
                    st.sink_uri = sink(world, p.spec.sink.as_ref(), &ns, &mut c);
                    adapter_missing(&mut c, "PullSubscriptionReady", kind);
                    st.status.conditions = c.roll_up(&["SinkProvided", "PullSubscriptionReady"]);
                    p.status = Some(st);
                }
                _ => continue,
            }
            world.objects.insert(key, o);
        }
    }
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
        let set = kafka_source_consumers(&mut c, &mut status, Some(Ok(2)));
        let conds = c.roll_up(set);
        assert_eq!(ready_of(&conds).map(|r| r.status.as_str()), Some("True"));
        assert_eq!(status.consumers, Some(2));

        let mut c = Conditions::new();
        c.ok("SinkProvided");
        let set = kafka_source_consumers(&mut c, &mut status, Some(Err("no brokers".into())));
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
