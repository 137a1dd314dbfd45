//! Where a log's retry counts are kept: a stream of its own, `KNIT_RETRY_<stream>`, with one
//! subject per record and group, `_KNIT.retry.<stream>.<durable>.<stream sequence>`, keeping
//! the last message of each subject for at most a week (a record not seen again in that long
//! has left the stream or its group). Storing is a publish awaited to its PubAck, reading is
//! a get of the subject's last message, forgetting a purge of the subject — a key-value
//! bucket in all but name, made from plain stream calls because nats-server 2.9 and
//! async-nats 0.51 disagree on the answer to a bucket's creation.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self as js};
use bytes::Bytes;
use futures::StreamExt;
use knit_crds::contract::NatsStorage;

use super::log::backend;
use crate::log::LogError;

/// How long a retry count is kept.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// The stream of `stream`'s retry counts.
pub(crate) fn retry_stream(stream: &str) -> String {
    format!("KNIT_RETRY_{stream}")
}

/// A log's retry counts.
#[derive(Clone)]
pub(crate) struct RetryStore {
    js: js::Context,
    stream: stream::Stream,
    prefix: String,
}

impl RetryStore {
    /// Open (creating if needed) the retry counts of `stream`.
    pub(crate) async fn open(
        js: &js::Context,
        stream: &str,
        storage: NatsStorage,
        replicas: usize,
    ) -> Result<Self, LogError> {
        let name = retry_stream(stream);
        let prefix = format!("_KNIT.retry.{stream}");
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            max_messages_per_subject: 1,
            max_age: KEEP,
            storage: match storage {
                NatsStorage::File => stream::StorageType::File,
                NatsStorage::Memory => stream::StorageType::Memory,
            },
            num_replicas: replicas,
            ..Default::default()
        };
        let s = js
            .get_or_create_stream(config)
            .await
            .map_err(|e| backend(format!("creating the stream {name}"), e))?;
        Ok(Self {
            js: js.clone(),
            stream: s,
            prefix,
        })
    }

    fn subject(&self, key: &str) -> String {
        format!("{}.{key}", self.prefix)
    }

    /// Store `value` under `key` (resolves on the PubAck).
    pub(crate) async fn put(&self, key: &str, value: Bytes) -> Result<(), LogError> {
        let ack = self
            .js
            .publish(self.subject(key), value)
            .await
            .map_err(|e| backend("storing a retry count", e))?;
        ack.await.map_err(|e| backend("storing a retry count", e))?;
        Ok(())
    }

    /// The value under `key`, if any.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, LogError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.subject(key))
            .await
        {
            Ok(m) => Ok(Some(m.payload)),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(backend("reading a retry count", e)),
        }
    }

    /// The stream sequences `durable` has a stored count for (keys `<durable>.<sequence>`).
    pub(crate) async fn sequences(&self, durable: &str) -> Result<HashSet<u64>, LogError> {
        let mut subjects = self
            .stream
            .info_with_subjects(format!("{}.{durable}.*", self.prefix))
            .await
            .map_err(|e| backend("listing retry counts", e))?;
        let mut out = HashSet::new();
        while let Some(s) = subjects.next().await {
            let (subject, _) = s.map_err(|e| backend("listing retry counts", e))?;
            if let Some(seq) = subject.rsplit('.').next().and_then(|t| t.parse().ok()) {
                out.insert(seq);
            }
        }
        Ok(out)
    }

    /// Remove what is under `key`.
    pub(crate) async fn forget(&self, key: &str) -> Result<(), LogError> {
        self.stream
            .purge()
            .filter(self.subject(key))
            .await
            .map_err(|e| backend("removing a retry count", e))?;
        Ok(())
    }
}
