//! Reading a range of a stream again, for a replay ([`crate::replay`]): an ordered ephemeral
//! consumer of its own (no acknowledgements, no durable moves), starting by sequence or by
//! time and stopping at the range's end. The stream has one partition, `0`; a position is a
//! stream sequence. An end given as a time stops at the first message stored at or after it.

use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{self, Ordered};
use futures::StreamExt;

use super::log::{NatsLog, backend};
use crate::log::{BoxFuture, LogError};
use crate::replay::{Bound, PartitionRange, Replay, ReplayRecord};

/// A replay that receives nothing for this long while records are still due fails.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// Reads a stream's messages in a range, then ends.
pub(crate) struct NatsReplay {
    stream: String,
    ranges: Vec<PartitionRange>,
    /// `None` once the range was read (or is empty).
    messages: Option<Ordered>,
    /// Stop at the first message stored at or after this time (unix nanoseconds).
    until_nanos: Option<i128>,
}

/// The first sequence `bound` names, or `None` for a time (`ByStartTime`).
fn start_sequence(bound: &Bound, first: u64, end: u64) -> Result<Option<u64>, LogError> {
    Ok(match bound {
        Bound::Earliest => Some(first),
        Bound::Latest => Some(end),
        Bound::Offset(n) => Some(u64::try_from(*n).unwrap_or(0).max(first)),
        Bound::Partitions(map) => Some(partition_zero(map)?.max(first)),
        Bound::Time(_) => None,
    })
}

fn partition_zero(map: &std::collections::BTreeMap<i32, i64>) -> Result<u64, LogError> {
    if let Some((&p, _)) = map.iter().find(|(p, _)| **p != 0) {
        return Err(LogError::NoPartition {
            topic: String::new(),
            partition: p,
            partitions: 1,
        });
    }
    Ok(map
        .get(&0)
        .and_then(|o| u64::try_from(*o).ok())
        .unwrap_or(0))
}

impl NatsReplay {
    pub(crate) async fn open(
        log: &NatsLog,
        from: &Bound,
        to: Option<&Bound>,
        name: &str,
    ) -> Result<Self, LogError> {
        let name_of = &log.config.stream;
        let mut stream = log
            .conn
            .js
            .get_stream(name_of)
            .await
            .map_err(|e| backend(format!("replaying the stream {name_of}"), e))?;
        let state = stream
            .info()
            .await
            .map_err(|e| backend(format!("reading the stream {name_of}"), e))?
            .state
            .clone();
        let first = state.first_sequence.max(1);
        let end = state.last_sequence.saturating_add(1);
        let no_partition = |e: LogError| match e {
            LogError::NoPartition {
                partition,
                partitions,
                ..
            } => LogError::NoPartition {
                topic: name_of.clone(),
                partition,
                partitions,
            },
            other => other,
        };
        let start = start_sequence(from, first, end).map_err(no_partition)?;
        let (stop, until_nanos) = match to {
            None | Some(Bound::Latest) => (end, None),
            Some(Bound::Time(t)) => (end, Some(t.as_nanosecond())),
            Some(b) => (
                start_sequence(b, first, end)
                    .map_err(no_partition)?
                    .unwrap_or(end)
                    .min(end),
                None,
            ),
        };
        let from_seq = start.unwrap_or(first);
        let ranges = vec![PartitionRange {
            partition: 0,
            from: i64::try_from(from_seq).unwrap_or(i64::MAX),
            to: i64::try_from(stop).unwrap_or(i64::MAX),
        }];
        let messages = if from_seq >= stop {
            None
        } else {
            Some(ordered_messages(&stream, start, from, name).await?)
        };
        Ok(Self {
            stream: name_of.clone(),
            ranges,
            messages,
            until_nanos,
        })
    }

    async fn read(&mut self, max: usize) -> Result<Option<Vec<ReplayRecord>>, LogError> {
        let to = self
            .ranges
            .first()
            .and_then(|r| u64::try_from(r.to).ok())
            .unwrap_or(0);
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            let Some(messages) = self.messages.as_mut() else {
                break;
            };
            let wait = if out.is_empty() {
                STALL_LIMIT
            } else {
                Duration::ZERO
            };
            let m = match tokio::time::timeout(wait, messages.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(backend("reading the replay", e)),
                Ok(None) => {
                    self.messages = None;
                    break;
                }
                Err(_) if out.is_empty() => {
                    return Err(LogError::Stalled {
                        topic: self.stream.clone(),
                        after: STALL_LIMIT,
                    });
                }
                Err(_) => break,
            };
            let Ok(info) = m.info() else { continue };
            let past_time = self
                .until_nanos
                .is_some_and(|t| info.published.unix_timestamp_nanos() >= t);
            if info.stream_sequence >= to || past_time {
                self.messages = None;
                break;
            }
            let seq = info.stream_sequence;
            match super::decode_message(&m) {
                Ok(event) => out.push(ReplayRecord {
                    partition: 0,
                    offset: i64::try_from(seq).unwrap_or(i64::MAX),
                    event,
                }),
                Err(e) => {
                    tracing::debug!(stream = %self.stream, sequence = seq, error = %e, "not a CloudEvent: not replayed")
                }
            }
            if seq.saturating_add(1) >= to {
                self.messages = None;
            }
        }
        if out.is_empty() && self.messages.is_none() {
            return Ok(None);
        }
        Ok(Some(out))
    }
}

impl Replay for NatsReplay {
    fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }

    fn next(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Vec<ReplayRecord>>, LogError>> {
        Box::pin(self.read(max))
    }
}

/// The messages of an ordered ephemeral consumer starting at sequence `start`, or at `from`.
async fn ordered_messages(
    stream: &async_nats::jetstream::stream::Stream,
    start: Option<u64>,
    from: &Bound,
    name: &str,
) -> Result<pull::Ordered, LogError> {
    let deliver_policy = match (start, from) {
        (Some(s), _) => DeliverPolicy::ByStartSequence { start_sequence: s },
        (None, Bound::Time(t)) => DeliverPolicy::ByStartTime {
            start_time: async_nats::datetime::parse_rfc3339(&t.to_string())
                .map_err(|e| backend("replaying from a time", e))?,
        },
        (None, _) => DeliverPolicy::All,
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            description: Some(format!("knit replay {name}")),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| backend("creating the replay consumer", e))?;
    consumer
        .messages()
        .await
        .map_err(|e| backend("reading the replay", e))
}
