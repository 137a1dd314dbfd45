//! A JetStream stream as a [`Log`]: appends publish with `Nats-Msg-Id` and resolve on the
//! PubAcks; each consumer group is a [`NatsConsumer`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream;
use futures::future::join_all;
use knit_crds::contract::{self, NatsLog as Config, NatsStorage};
use tokio::sync::OnceCell;

use super::binding::{self, ContentMode};
use super::connection::Conn;
use super::consumer::{ConsumerShared, NatsConsumer};
use super::retries::{RetryStore, retry_stream};
use crate::backends::Role;
use crate::event::Event;
use crate::lifecycle::Lifecycle;
use crate::log::{AppendError, BoxFuture, Consumer, GroupSpec, Log, LogError};
use crate::replay::{Bound, Replay};

/// A log on a JetStream stream.
pub(crate) struct NatsLog {
    pub(crate) conn: Arc<Conn>,
    pub(crate) config: Config,
    role: Role,
    mode: ContentMode,
    lifecycle: Lifecycle<ConsumerShared>,
    retries: OnceCell<RetryStore>,
}

fn storage(s: NatsStorage) -> stream::StorageType {
    match s {
        NatsStorage::File => stream::StorageType::File,
        NatsStorage::Memory => stream::StorageType::Memory,
    }
}

fn millis(ms: Option<i64>) -> Duration {
    ms.and_then(|m| u64::try_from(m).ok())
        .map(Duration::from_millis)
        .unwrap_or_default()
}

/// The stream `config` asks for.
fn stream_config(config: &Config) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.subject.clone()],
        storage: storage(config.storage),
        num_replicas: config.replicas.unwrap_or(1).max(1) as usize,
        max_age: millis(config.max_age_ms),
        max_messages: config.max_msgs.unwrap_or(-1),
        max_bytes: config.max_bytes.unwrap_or(-1),
        duplicate_window: millis(config.duplicate_window_ms),
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

pub(crate) fn backend(doing: impl Into<String>, e: impl std::fmt::Display) -> LogError {
    LogError::backend(doing, e.to_string())
}

impl NatsLog {
    /// Open the log: create its stream (owners and writers) or check that it exists (readers).
    pub(crate) async fn open(
        conn: Arc<Conn>,
        config: Config,
        role: Role,
    ) -> Result<Arc<dyn Log>, LogError> {
        let doing = format!("opening stream {} on {}", config.stream, conn.servers);
        if role == Role::Reader {
            conn.js.get_stream(&config.stream).await.map_err(|e| {
                tracing::debug!(stream = %config.stream, error = %e, "stream not found");
                LogError::NoTopic(config.stream.clone())
            })?;
        } else {
            conn.js
                .get_or_create_stream(stream_config(&config))
                .await
                .map_err(|e| backend(doing, e))?;
        }
        let mode = match config.content_mode {
            contract::ContentMode::Binary => ContentMode::Binary,
            contract::ContentMode::Structured => ContentMode::Structured,
        };
        Ok(Arc::new(NatsLog {
            conn,
            config,
            role,
            mode,
            lifecycle: Lifecycle::default(),
            retries: OnceCell::new(),
        }))
    }

    /// This stream's retry counts, their stream created on first use.
    async fn retries(&self) -> Result<RetryStore, LogError> {
        self.retries
            .get_or_try_init(|| {
                RetryStore::open(
                    &self.conn.js,
                    &self.config.stream,
                    self.config.storage,
                    self.config.replicas.unwrap_or(1).max(1) as usize,
                )
            })
            .await
            .cloned()
    }

    async fn append_all(&self, events: &[Arc<Event>]) -> Result<(), AppendError> {
        if self.lifecycle.is_closed() || self.role == Role::Reader {
            return Err(AppendError::Closed);
        }
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let publish = publish_message(e, self.mode);
            let ack = self
                .conn
                .js
                .send_publish(self.config.subject.clone(), publish)
                .await
                .map_err(append_error)?;
            pending.push(ack.into_future());
        }
        for r in join_all(pending).await {
            r.map_err(append_error)?;
        }
        Ok(())
    }
}

/// The publish of `event`: binding headers, `Nats-Msg-Id`, payload.
pub(crate) fn publish_message(event: &Event, mode: ContentMode) -> PublishMessage {
    let out = binding::encode(event, mode);
    let mut headers = HeaderMap::new();
    for (name, value) in &out.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_str(name), HeaderValue::from_str(value)) {
            headers.append(n, v);
        }
    }
    PublishMessage::build()
        .payload(out.payload)
        .headers(headers)
        .message_id(binding::message_id(event))
}

fn append_error(e: async_nats::jetstream::context::PublishError) -> AppendError {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => AppendError::TooLarge(Box::new(e)),
        PublishErrorKind::MaxAckPending => AppendError::Full,
        _ => AppendError::Unavailable(Box::new(e)),
    }
}

impl Log for NatsLog {
    fn append<'a>(&'a self, events: &'a [Arc<Event>]) -> BoxFuture<'a, Result<(), AppendError>> {
        Box::pin(self.append_all(events))
    }

    fn open(&self, spec: GroupSpec) -> BoxFuture<'_, Result<Arc<dyn Consumer>, LogError>> {
        Box::pin(async move {
            self.lifecycle.check_open()?;
            let retries = if spec.durable_retries {
                Some(self.retries().await?)
            } else {
                None
            };
            let consumer =
                NatsConsumer::open(self.conn.clone(), &self.config, spec, retries).await?;
            self.lifecycle.track(&consumer.shared());
            Ok(Arc::new(consumer) as Arc<dyn Consumer>)
        })
    }

    fn delete_group(&self, name: &str) -> BoxFuture<'_, Result<(), LogError>> {
        let durable = super::durable_name(name);
        Box::pin(async move {
            let stream = self
                .conn
                .js
                .get_stream(&self.config.stream)
                .await
                .map_err(|e| backend("deleting a consumer", e))?;
            match stream.delete_consumer(&durable).await {
                Ok(_) => Ok(()),
                Err(e) if e.to_string().contains("not found") => Ok(()),
                Err(e) => Err(backend(format!("deleting the consumer {durable}"), e)),
            }
        })
    }

    fn close(&self) {
        self.lifecycle.close();
    }

    fn durable(&self) -> bool {
        true
    }

    fn annotations(&self) -> Vec<(String, String)> {
        vec![
            ("stream".to_string(), self.config.stream.clone()),
            ("subject".to_string(), self.config.subject.clone()),
        ]
    }

    fn group_annotations(&self, group: &str) -> Vec<(String, String)> {
        vec![
            ("group.id".to_string(), group.to_string()),
            ("stream".to_string(), self.config.stream.clone()),
            ("consumer".to_string(), super::durable_name(group)),
        ]
    }

    fn replay<'a>(
        &'a self,
        from: &'a Bound,
        to: Option<&'a Bound>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Replay>, LogError>> {
        Box::pin(async move {
            let reader = super::replay::NatsReplay::open(self, from, to, name).await?;
            Ok(Box::new(reader) as Box<dyn Replay>)
        })
    }

    fn destroy(&self) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            if self.role != Role::Owner {
                return Ok(());
            }
            let js = &self.conn.js;
            for name in [
                self.config.stream.clone(),
                retry_stream(&self.config.stream),
            ] {
                if let Err(e) = js.delete_stream(&name).await
                    && !e.to_string().contains("not found")
                {
                    return Err(backend(format!("deleting the stream {name}"), e));
                }
            }
            Ok(())
        })
    }
}
