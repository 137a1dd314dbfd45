//! Scenario (g): the Kafka baseline. A raw rdkafka produce → consume loop on the same Kafka
//! cluster as scenario (f), with no HTTP and no Knit: a topic with the partition count Knit gives
//! a broker's topic, a producer configured like Knit's, as many deliveries outstanding as the
//! HTTP load has connections, and a consumer in its own group reading the topic. The send time
//! travels in the payload, so latency is measured end to end as the sink measures it for (f).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::servers::{Counters, now_nanos};

/// Partitions of a Kafka broker's topic in Knit (Knative's `default.topic.partitions`).
pub(crate) const BROKER_PARTITIONS: i32 = 10;

/// How long a produced record may wait for its acknowledgement (Knit's `message.timeout.ms`).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of every record after the send time; the same bytes the HTTP load posts.
const BODY: &[u8] = br#"{"message":"Hello, Knit! This is a small benchmark event.","n":42}"#;

/// A topic, a producer and a consumer task counting what it reads; the task stops on drop.
pub(crate) struct Raw {
    topic: String,
    producer: FutureProducer,
    /// Records consumed, and their end-to-end latencies while recording.
    pub(crate) consumed: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

/// What one measurement of the raw loop saw.
pub(crate) struct RawMeasured {
    /// Records consumed per second during the load.
    pub(crate) rate: f64,
    /// End-to-end latencies in microseconds (send → consume).
    pub(crate) latencies_us: Vec<u32>,
    /// Sends the cluster did not acknowledge.
    pub(crate) failed: u64,
}

/// Settings every client starts from (as Knit's clients do).
fn base(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "knit-bench")
        .set("socket.nagle.disable", "true");
    c
}

impl Raw {
    /// Create a fresh topic named after `tag`, join a fresh group on it and wait until a record
    /// makes the round trip.
    pub(crate) async fn start(bootstrap: &str, tag: &str) -> Result<Raw> {
        let topic = format!("knit-bench-raw-{tag}");
        let admin: AdminClient<DefaultClientContext> = base(bootstrap).create()?;
        let opts = AdminOptions::new().operation_timeout(Some(DELIVERY_TIMEOUT));
        let created = tokio::time::timeout(
            DELIVERY_TIMEOUT,
            admin.create_topics(
                &[NewTopic::new(
                    &topic,
                    BROKER_PARTITIONS,
                    TopicReplication::Fixed(1),
                )],
                &opts,
            ),
        )
        .await
        .with_context(|| format!("creating topic {topic} on {bootstrap} timed out"))??;
        for r in created {
            r.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
        }

        let mut producer = base(bootstrap);
        producer
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            );
        let producer: FutureProducer = producer.create()?;

        // The consumer settings Knit's trigger consumers use, where they bear on throughput.
        let consumer: StreamConsumer = base(bootstrap)
            .set("group.id", &topic)
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "16384")
            .set("enable.partition.eof", "false")
            .create()?;
        consumer.subscribe(&[&topic])?;
        let consumed = Arc::new(Counters::default());
        let c = consumed.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok(m) = consumer.recv().await else {
                    continue;
                };
                c.requests.fetch_add(1, Ordering::Relaxed);
                if !c.recording.load(Ordering::Relaxed) {
                    continue;
                }
                let sent = m
                    .payload()
                    .and_then(|p| p.split(|b| *b == b' ').next())
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(sent) = sent {
                    let us = now_nanos().saturating_sub(sent) / 1000;
                    c.latencies_us
                        .lock()
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
        });
        let raw = Raw {
            topic,
            producer,
            consumed,
            task,
        };
        raw.wait_positioned().await?;
        Ok(raw)
    }

    /// Produce until the consumer has read something: the group has joined and is positioned.
    async fn wait_positioned(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.consumed.requests.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                bail!("the raw consumer of {} read nothing in 60 s", self.topic);
            }
            self.send().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Send one record stamped with the time now and wait for its acknowledgement.
    async fn send(&self) -> Result<()> {
        let mut payload = now_nanos().to_string().into_bytes();
        payload.push(b' ');
        payload.extend_from_slice(BODY);
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).payload(&payload);
        self.producer
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing to {}: {e}", self.topic))?;
        Ok(())
    }

    /// `concurrency` senders, each with one delivery outstanding, for `duration`; returns the
    /// acknowledged and failed sends.
    async fn load(self: &Arc<Self>, concurrency: usize, duration: Duration) -> Result<(u64, u64)> {
        let start = Instant::now();
        let senders: Vec<_> = (0..concurrency)
            .map(|_| {
                let me = self.clone();
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while start.elapsed() < duration {
                        match me.send().await {
                            Ok(()) => ok += 1,
                            Err(_) => failed += 1,
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let (mut ok, mut failed) = (0, 0);
        for s in senders {
            let (o, f) = s.await?;
            ok += o;
            failed += f;
        }
        Ok((ok, failed))
    }

    /// Warm up for `warmup`, then measure for `duration`: records consumed per second and
    /// end-to-end latencies.
    pub(crate) async fn measure(
        self: &Arc<Self>,
        concurrency: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Result<RawMeasured> {
        self.load(concurrency, warmup).await?;
        let c = &self.consumed;
        c.latencies_us.lock().clear();
        let before = c.requests.load(Ordering::Relaxed);
        c.recording.store(true, Ordering::Relaxed);
        let start = Instant::now();
        let (acked, failed) = self.load(concurrency, duration).await?;
        let elapsed = start.elapsed();
        c.recording.store(false, Ordering::Relaxed);
        let after = c.requests.load(Ordering::Relaxed);
        if acked == 0 {
            bail!("no record produced to {} was acknowledged", self.topic);
        }
        Ok(RawMeasured {
            rate: (after - before) as f64 / elapsed.as_secs_f64(),
            latencies_us: std::mem::take(&mut *c.latencies_us.lock()),
            failed,
        })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}
