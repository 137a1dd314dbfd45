//! Where a group starts: a committed offset for every partition before the consumer joins,
//! and the retry state a record of the retry topic carries.

use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::super::cluster::{ADMIN_TIMEOUT, Cluster, backend};
use super::{ATTEMPTS, LAST_DEST, LAST_STATUS, NOT_BEFORE, offsets};
use crate::log::{GroupSpec, LogError, RetryState, StartAt};

pub(super) fn retry_state(headers: &[(&str, &[u8])]) -> RetryState {
    let text = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    RetryState {
        attempts: text(ATTEMPTS).and_then(|v| v.parse().ok()).unwrap_or(0),
        not_before_ms: text(NOT_BEFORE).and_then(|v| v.parse().ok()).unwrap_or(0),
        last_dest: text(LAST_DEST).unwrap_or_default().to_string(),
        last_status: text(LAST_STATUS).and_then(|v| v.parse().ok()),
    }
}

/// Give the group a committed offset on every partition that has none: the end of the log's
/// topics (or their beginning for `Earliest`), the beginning of the retry topic.
pub(super) async fn position(
    cluster: &Arc<Cluster>,
    spec: &GroupSpec,
    streams: &[String],
    retry: Option<&str>,
) -> Result<(), LogError> {
    let mut cfg = cluster.base_config();
    cfg.set("group.id", &spec.name)
        .set("enable.auto.commit", "false");
    let streams = streams.to_vec();
    let retry = retry.map(str::to_string);
    let start = spec.start;
    let group = spec.name.clone();
    tokio::task::spawn_blocking(move || -> Result<(), LogError> {
        let c: BaseConsumer = cfg
            .create()
            .map_err(|e| backend("cannot create a consumer", e))?;
        let mut all = TopicPartitionList::new();
        for topic in &streams {
            let md = c
                .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
                .map_err(|e| backend(format!("reading the metadata of {topic}"), e))?;
            for t in md.topics() {
                if let Some(err) = t.error() {
                    return Err(backend(
                        format!("topic {topic}"),
                        RDKafkaErrorCode::from(err),
                    ));
                }
                for p in t.partitions() {
                    all.add_partition(topic, p.id());
                }
            }
        }
        let committed = c
            .committed_offsets(all, ADMIN_TIMEOUT)
            .map_err(|e| backend("reading the group's committed offsets", e))?;
        let mut set = TopicPartitionList::new();
        for e in committed.elements() {
            if matches!(e.offset(), Offset::Offset(o) if o >= 0) {
                continue;
            }
            if let Err(err) = e.error() {
                // Not "no committed offset": positioning it at the end could skip records.
                return Err(backend(
                    format!("reading the committed offset of {}:{}", e.topic(), e.partition()),
                    err,
                ));
            }
            let (low, high) = c
                .fetch_watermarks(e.topic(), e.partition(), ADMIN_TIMEOUT)
                .map_err(|err| backend(format!("reading the end offsets of {}", e.topic()), err))?;
            let from_start = retry.as_deref() == Some(e.topic()) || start == StartAt::Earliest;
            let offset = if from_start { low } else { high };
            let _ = set.add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset));
        }
        if set.count() > 0 {
            tracing::debug!(group = %group, partitions = %offsets(&set), "positioning partitions without a committed offset");
            c.assign(&set)
                .map_err(|e| backend("positioning the consumer group", e))?;
            c.commit(&set, CommitMode::Sync)
                .map_err(|e| backend("positioning the consumer group", e))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| backend("positioning the consumer group", e))?
}
