//! KafkaSource statuses: a KafkaSource runs as an ingress of the data plane (its topics as an
//! external log, with one egress to its sink), not as a source adapter. Its conditions follow
//! Knative's KafkaSource condition set from what the data plane reports of its topics and
//! consumer group.

use knit_crds::api::duck::{CloudEventAttributes, SourceStatus};
use knit_crds::api::sources::{KafkaSource, KafkaSourceStatus};
use knit_crds::{ObjectKey, names};

use super::World;
use super::conditions::Conditions;
use super::sources::{sink, uid_of};

/// KafkaSource conditions `Ready` rolls up while its sink does not resolve: the sink alone.
const SINK_ONLY: &[&str] = &["SinkProvided"];
/// KafkaSource conditions `Ready` rolls up once the data plane reports on its consumers
/// (Knative's KafkaSource condition set, less OIDC).
const WITH_CONSUMERS: &[&str] = &[
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
pub(crate) fn consumers(
    c: &mut Conditions,
    status: &mut KafkaSourceStatus,
    report: Option<Consumers>,
) -> &'static [&'static str] {
    match report {
        None if c.get("Deployed").is_some() => WITH_CONSUMERS,
        None => SINK_ONLY,
        Some(Consumers::Joined(consumers)) => {
            c.ok("Deployed");
            c.ok("ConnectionEstablished");
            c.ok("InitialOffsetsCommitted");
            status.consumers = Some(consumers);
            WITH_CONSUMERS
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
            WITH_CONSUMERS
        }
    }
}

/// The log a KafkaSource reads: its topics, which must exist.
fn backend(
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
pub(crate) fn log_uid(uid: &str) -> String {
    format!("{uid}/topics")
}

/// What the data plane reported of a KafkaSource: `Joined(1)` once its consumer group is
/// positioned, `Failed(why)` when its topics or group failed; `None` (with `Deployed`
/// Unknown) before any report.
fn consumer_report(world: &World<'_>, uid: &str, c: &mut Conditions) -> Option<Consumers> {
    let log = world.report.objects.get(&log_uid(uid));
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
fn ce_attributes(ns: &str, name: &str, topics: &[String]) -> Vec<CloudEventAttributes> {
    topics
        .iter()
        .map(|topic| CloudEventAttributes {
            type_: Some(names::KAFKA_SOURCE_EVENT_TYPE.into()),
            source: Some(names::kafka_source_event_source(ns, name, topic)),
        })
        .collect()
}

/// A KafkaSource runs as an ingress of the data plane (its topics as a log, with one egress),
/// not as a source adapter: it gets a backend here and its egress in the Contract.
pub(crate) fn status(world: &mut World<'_>, key: &ObjectKey, k: &mut KafkaSource) {
    let ns = &key.namespace;
    let built = super::backends::not_built(knit_channels::BackendKind::Kafka);
    if built.is_ok() {
        world
            .backends
            .insert(key.clone(), backend(ns, &key.name, &k.spec));
    }
    let mut c = Conditions::new();
    let mut st = SourceStatus {
        sink_uri: sink(world, k.spec.sink.as_ref(), ns, &mut c),
        ce_attributes: ce_attributes(ns, &key.name, &k.spec.topics),
        ..Default::default()
    };
    let mut status = KafkaSourceStatus::default();
    let report = if let Err(nb) = built {
        c.fail("Deployed", nb.reason, nb.message);
        None
    } else if st.sink_uri.is_some() {
        consumer_report(world, &uid_of(&k.metadata), &mut c)
    } else {
        None
    };
    let dependents = consumers(&mut c, &mut status, report);
    st.status.conditions = c.roll_up(dependents);
    status.source = st;
    k.status = Some(status);
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
        let set = consumers(&mut c, &mut status, None);
        let conds = c.roll_up(set);
        assert_eq!(ready_of(&conds).map(|r| r.status.as_str()), Some("True"));
        assert_eq!(status.consumers, None);

        let mut c = Conditions::new();
        c.ok("SinkProvided");
        let set = consumers(&mut c, &mut status, Some(Consumers::Joined(2)));
        let conds = c.roll_up(set);
        assert_eq!(ready_of(&conds).map(|r| r.status.as_str()), Some("True"));
        assert_eq!(status.consumers, Some(2));

        let mut c = Conditions::new();
        c.ok("SinkProvided");
        let set = consumers(
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
        let attrs = ce_attributes("ns", "src", &["a".into(), "b".into()]);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].type_.as_deref(), Some("dev.knative.kafka.event"));
        assert_eq!(
            attrs[1].source.as_deref(),
            Some("/apis/v1/namespaces/ns/kafkasources/src#b")
        );
    }
}
