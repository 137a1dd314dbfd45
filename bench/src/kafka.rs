//! Scenario (g): the Kafka baseline. A raw rdkafka produce → consume loop on the same Kafka
//! cluster as scenario (f), with no HTTP and no Knit: a topic with the partition count Knit gives
//! a broker's topic, a producer configured like Knit's, as many deliveries outstanding as the
//! HTTP load has connections, and a consumer in its own group reading the topic. The send time
//! travels in the payload, so latency is measured end to end as the sink measures it for (f).

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::raw::{self, RawLoop, Reading};

/// Partitions of a Kafka broker's topic in Knit (Knative's `default.topic.partitions`).
pub(crate) const BROKER_PARTITIONS: i32 = 10;

/// How long a produced record may wait for its acknowledgement (Knit's `message.timeout.ms`).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A topic, a producer and a consumer task counting what it reads.
pub(crate) struct Raw {
    topic: String,
    producer: FutureProducer,
    reading: Reading,
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
        let reading = Reading::spawn(|c| async move {
            loop {
                if let Ok(m) = consumer.recv().await {
                    raw::consumed(&c, m.payload().unwrap_or_default());
                }
            }
        });
        let raw = Raw {
            topic,
            producer,
            reading,
        };
        raw::wait_positioned(&raw).await?;
        Ok(raw)
    }
}

impl RawLoop for Raw {
    /// Send one record stamped with the time now and wait for its acknowledgement.
    async fn send(&self) -> Result<()> {
        let payload = raw::stamped();
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).payload(&payload);
        self.producer
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing to {}: {e}", self.topic))?;
        Ok(())
    }

    fn reading(&self) -> &Reading {
        &self.reading
    }

    fn target(&self) -> &str {
        &self.topic
    }
}
