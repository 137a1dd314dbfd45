//! A Kafka topic as a [`Log`]: appends are produced with the shared idempotent producer and
//! resolve on the broker's acknowledgement; each consumer group is a [`KafkaConsumer`].

use std::sync::Arc;

use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};

use super::binding::{self, OutRecord};
use super::cluster::{Cluster, TopicSpec};
use super::consumer::{ConsumerShared, KafkaConsumer};
use super::progress::progress_topic;
use crate::event::Event;
use crate::lifecycle::Lifecycle;
use crate::log::{AppendError, BoxFuture, Consumer, GroupSpec, Log, LogError};
use crate::replay::{Bound, Replay};

/// The retry topic of a consumer group: `<group>.retry`, with characters Kafka does not take
/// in topic names replaced by `_`.
pub(crate) fn retry_topic(group: &str) -> String {
    group_topic(group, "retry")
}

/// A topic of a consumer group's own: `<group>.<suffix>`, with characters Kafka does not take
/// in topic names replaced by `_`.
pub(crate) fn group_topic(group: &str, suffix: &str) -> String {
    let clean: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut t = format!("{clean}.{suffix}");
    t.truncate(249);
    t
}

/// Headers of a record as rdkafka takes them.
pub(crate) fn owned_headers(headers: &[(String, Vec<u8>)]) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(headers.len());
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    h
}

/// Produce one record; `Err` when it cannot even be queued.
pub(crate) fn produce(
    cluster: &Cluster,
    topic: &str,
    record: &OutRecord,
    extra: &[(String, Vec<u8>)],
) -> Result<DeliveryFuture, AppendError> {
    let mut headers = record.headers.clone();
    headers.extend_from_slice(extra);
    let mut fr: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(topic).headers(owned_headers(&headers));
    if let Some(k) = &record.key {
        fr = fr.key(k.as_slice());
    }
    if let Some(v) = &record.value {
        fr = fr.payload(v.as_slice());
    }
    cluster
        .producer
        .send_result(fr)
        .map_err(|(e, _)| append_error(e))
}

/// An acknowledgement, or why there is none.
pub(crate) async fn acked(f: DeliveryFuture) -> Result<(), AppendError> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(append_error(e)),
        Err(_) => Err(AppendError::Unavailable(
            "the producer was shut down".into(),
        )),
    }
}

fn append_error(e: KafkaError) -> AppendError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => AppendError::Full,
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => AppendError::TooLarge(Box::new(e)),
        _ => AppendError::Unavailable(Box::new(e)),
    }
}

/// A log on Kafka topics.
pub(crate) struct KafkaLog {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) spec: TopicSpec,
    lifecycle: Lifecycle<ConsumerShared>,
}

impl KafkaLog {
    pub(crate) fn new(cluster: Arc<Cluster>, spec: TopicSpec) -> Self {
        Self {
            cluster,
            spec,
            lifecycle: Lifecycle::default(),
        }
    }

    fn topic(&self) -> Option<&str> {
        self.spec.topics.first().map(String::as_str)
    }

    async fn append_all(&self, events: &[Arc<Event>]) -> Result<(), AppendError> {
        if self.lifecycle.is_closed() || !self.spec.writable {
            return Err(AppendError::Closed);
        }
        let Some(topic) = self.topic() else {
            return Err(AppendError::Closed);
        };
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let record = binding::encode(e, self.spec.content_mode);
            pending.push(produce(&self.cluster, topic, &record, &[])?);
        }
        for r in join_all(pending.into_iter().map(acked)).await {
            r?;
        }
        Ok(())
    }
}

impl Log for KafkaLog {
    fn append<'a>(&'a self, events: &'a [Arc<Event>]) -> BoxFuture<'a, Result<(), AppendError>> {
        Box::pin(self.append_all(events))
    }

    fn open(&self, spec: GroupSpec) -> BoxFuture<'_, Result<Arc<dyn Consumer>, LogError>> {
        Box::pin(async move {
            self.lifecycle.check_open()?;
            let consumer = KafkaConsumer::open(self.cluster.clone(), &self.spec, spec).await?;
            self.lifecycle.track(&consumer.shared());
            Ok(Arc::new(consumer) as Arc<dyn Consumer>)
        })
    }

    fn delete_group(&self, name: &str) -> BoxFuture<'_, Result<(), LogError>> {
        let name = name.to_string();
        Box::pin(async move {
            self.cluster.delete_group(&name).await?;
            self.cluster
                .delete_topics(&[retry_topic(&name), progress_topic(&name)])
                .await
        })
    }

    fn close(&self) {
        self.lifecycle.close();
    }

    fn durable(&self) -> bool {
        true
    }

    fn annotations(&self) -> Vec<(String, String)> {
        vec![("topic".to_string(), self.spec.topics.join(","))]
    }

    fn replay<'a>(
        &'a self,
        from: &'a Bound,
        to: Option<&'a Bound>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Replay>, LogError>> {
        Box::pin(async move {
            let Some(topic) = self.topic() else {
                return Err(LogError::backend("replaying", "the log has no topic"));
            };
            let reader = self
                .cluster
                .replay(topic, &self.spec.foreign_source, from, to, name)
                .await?;
            Ok(Box::new(reader) as Box<dyn Replay>)
        })
    }

    fn destroy(&self) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            if self.spec.owned {
                self.cluster.delete_topics(&self.spec.topics).await
            } else {
                Ok(())
            }
        })
    }
}
