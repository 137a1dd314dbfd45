//! The NATS JetStream scenarios, with a NATS server only (`--nats URL`):
//!
//! - (n) load → JetStream broker (`knit run --nats`, broker class `NatsJetStreamBroker`, file
//!   storage) → trigger → sink, as (b);
//! - (o) its baseline on the same server: a raw async-nats publish → consume loop with no HTTP
//!   and no Knit, on a stream of its own with file storage, set up as Knit sets up a broker's
//!   (publishes with the CloudEvents binding's `ce-` headers and a 32-digit `Nats-Msg-Id`,
//!   each awaited to its PubAck, as many outstanding as the load
//!   has connections; a durable pull consumer with explicit acks, `max_ack_pending` 200 and
//!   batches of 100, acking each message); the ratio (n)/(o);
//! - what storage costs: (p) and (p′) load → NatsJetStreamChannel → subscription → sink with
//!   `storage: File` and `storage: Memory`, and (o′) the raw loop on a memory stream.
//!
//! The send time travels in the payload of the raw loop, so its latency is measured end to end
//! as the sink measures it for the Knit paths.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, stream};
use futures::StreamExt;

use crate::knit::Knit;
use crate::raw::{self, RawLoop, Reading};
use crate::servers::{self, Counters, Mode, now_nanos};
use crate::{
    BROKER, BrokerSpec, Measured, Options, broker_manifests, median, raw_loop, through_knit,
};

/// How long a publish may wait for its PubAck (Knit's JetStream request timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A stream, a publisher and a consumer task counting what it reads.
pub(crate) struct Raw {
    js: jetstream::Context,
    subject: String,
    /// The next message id.
    next: AtomicU64,
    reading: Reading,
}

/// Connect to `url` (JetStream requests time out after [`REQUEST_TIMEOUT`]).
async fn connect(url: &str) -> Result<jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name("knit-bench")
        .connection_timeout(REQUEST_TIMEOUT)
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    Ok(jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client))
}

impl Raw {
    /// Create a fresh stream named after `tag` with `storage`, a durable consumer on it, and
    /// wait until a message makes the round trip.
    pub(crate) async fn start(url: &str, tag: &str, storage: stream::StorageType) -> Result<Raw> {
        let js = connect(url).await?;
        let name = format!("KNIT_BENCH_RAW_{tag}_{storage:?}").to_uppercase();
        let subject = format!("knit-bench.raw.{tag}.{storage:?}").to_lowercase();
        let s = js
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                storage,
                max_age: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating the stream {name}"))?;
        let consumer = s
            .create_consumer(pull::Config {
                durable_name: Some("raw".into()),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: 200,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating a consumer on {name}"))?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(100)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .with_context(|| format!("pulling from {name}"))?;
        let reading = Reading::spawn(|c| async move {
            while let Some(m) = messages.next().await {
                if let Ok(m) = m {
                    raw::consumed(&c, &m.payload);
                    // Acknowledged as Knit acknowledges a delivered event (not awaited).
                    let _ = m.ack().await;
                }
            }
        });
        let raw = Raw {
            js,
            subject,
            next: AtomicU64::new(0),
            reading,
        };
        raw::wait_positioned(&raw).await?;
        Ok(raw)
    }
}

impl RawLoop for Raw {
    /// Publish one message stamped with the time now (with a message id, as Knit publishes)
    /// and wait for its PubAck.
    async fn send(&self) -> Result<()> {
        // Like for like with what Knit publishes: the CloudEvents NATS binding's headers in
        // binary mode and a 32-hex-digit message id.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("ce-specversion", "1.0");
        headers.insert("ce-id", format!("bench-{n}").as_str());
        headers.insert("ce-source", "/knit-bench");
        headers.insert("ce-type", "bench.event");
        headers.insert("content-type", "application/json");
        let publish = jetstream::message::PublishMessage::build()
            .payload(raw::stamped().into())
            .headers(headers)
            .message_id(format!("{n:032x}"));
        self.js
            .send_publish(self.subject.clone(), publish)
            .await
            .with_context(|| format!("publishing to {}", self.subject))?
            .await
            .with_context(|| format!("the PubAck from {}", self.subject))?;
        Ok(())
    }

    fn reading(&self) -> &Reading {
        &self.reading
    }

    fn target(&self) -> &str {
        &self.subject
    }
}

/// A path through Knit to a sink of its own (so late deliveries never reach another's sink).
struct Path {
    path: String,
    sink: Arc<Counters>,
}

impl Path {
    /// One measurement of the load through `knit` on this path.
    async fn measure(&self, knit: &Knit, o: &Options) -> Result<Measured> {
        through_knit(knit, &self.path, o, None, &self.sink).await
    }
}

/// Everything (n), (o), (o′), (p) and (p′) need: one Knit on the NATS server with a JetStream
/// broker and two JetStream channels (file, memory storage), and the raw loops.
pub(crate) struct Rig {
    knit: Knit,
    broker: Path,
    channel_file: Path,
    channel_memory: Path,
    raw_file: Arc<Raw>,
    raw_memory: Arc<Raw>,
}

/// A NatsJetStreamChannel `name` with `storage` and its Subscription to `sink`.
fn channel_manifests(name: &str, storage: &str, sink: std::net::SocketAddr) -> String {
    format!(
        "apiVersion: messaging.knative.dev/v1alpha1\nkind: NatsJetStreamChannel\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  stream:\n    config: {{storage: {storage}, maxAge: 10m}}\n---\napiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  channel: {{apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: {name}}}\n  subscriber: {{uri: 'http://{sink}/'}}\n---\n"
    )
}

impl Rig {
    /// Start Knit with `--nats url` and the raw loops; wait until all is Ready.
    pub(crate) async fn start(url: &str) -> Result<Rig> {
        // Fresh names each run: a server reused across runs holds no old streams or
        // consumers for these.
        let tag = format!("{:x}", now_nanos());
        let name = format!("bench-{tag}");
        let trigger = format!("match-{tag}");
        let (broker_sink, broker_counters) = servers::start(Mode::Accept).await?;
        let (file_sink, file_counters) = servers::start(Mode::Accept).await?;
        let (mem_sink, mem_counters) = servers::start(Mode::Accept).await?;
        let (file_ch, mem_ch) = (format!("file-{tag}"), format!("memory-{tag}"));
        let mut manifests = broker_manifests(
            broker_sink,
            &BrokerSpec {
                name: &name,
                trigger: &trigger,
                class: Some("NatsJetStreamBroker"),
                ..BROKER
            },
        );
        manifests.push_str(&channel_manifests(&file_ch, "File", file_sink));
        manifests.push_str(&channel_manifests(&mem_ch, "Memory", mem_sink));
        let knit = Knit::start(&manifests, &["--nats", url])?;
        knit.wait_ready("brokers", &[&name]).await?;
        knit.wait_ready("triggers", &[&trigger]).await?;
        knit.wait_ready("subscriptions", &[&file_ch, &mem_ch])
            .await?;
        let raw_file = Arc::new(Raw::start(url, &tag, stream::StorageType::File).await?);
        let raw_memory = Arc::new(Raw::start(url, &tag, stream::StorageType::Memory).await?);
        let channel = |name: &str, sink| Path {
            path: format!("/channels/default/{name}"),
            sink,
        };
        Ok(Rig {
            knit,
            broker: Path {
                path: format!("/default/{name}"),
                sink: broker_counters,
            },
            channel_file: channel(&file_ch, file_counters),
            channel_memory: channel(&mem_ch, mem_counters),
            raw_file,
            raw_memory,
        })
    }
}

/// One round's measurements of (n), (o), (o′), (p), (p′).
#[derive(Default)]
pub(crate) struct Rounds {
    n: Vec<Measured>,
    o: Vec<Measured>,
    o_memory: Vec<Measured>,
    p_file: Vec<Measured>,
    p_memory: Vec<Measured>,
}

impl Rounds {
    /// Measure one round, alternating the raw loops and the Knit paths.
    pub(crate) async fn round(&mut self, o: &Options, rig: &Rig) -> Result<()> {
        let knit = &rig.knit;
        self.o.push(raw_loop(o, &rig.raw_file).await?);
        self.n.push(rig.broker.measure(knit, o).await?);
        self.o_memory.push(raw_loop(o, &rig.raw_memory).await?);
        self.p_file.push(rig.channel_file.measure(knit, o).await?);
        self.p_memory
            .push(rig.channel_memory.measure(knit, o).await?);
        Ok(())
    }
}

fn suffix(n: u64, what: &str) -> String {
    if n > 0 {
        format!("   {n} {what}")
    } else {
        String::new()
    }
}

/// Print (n), (o), (o′), (p) and (p′); fails when the broker accepted nothing.
pub(crate) fn report(o: &Options, rig: Rig, m: Rounds) -> Result<()> {
    let (n, raw) = (median(m.n), median(m.o));
    let (raw_mem, file, mem) = (median(m.o_memory), median(m.p_file), median(m.p_memory));
    println!(
        "(n) JetStream broker (file) → trigger → sink: {:>7.0} ev/s    p50 {:.2} ms  p99 {:.2} ms end to end   ratio (n)/(o) {:.2}   knit CPU {:.1} µs/event   (ingress accepted {:.0} ev/s){}",
        n.rate,
        n.p50,
        n.p99,
        n.rate / raw.rate,
        n.cpu_us,
        n.accepted_rate,
        suffix(n.rejected, "not accepted")
    );
    println!(
        "(o) raw async-nats publish → consume (file), {} in flight: {:>5.0} msg/s   p50 {:.2} ms  p99 {:.2} ms end to end{}",
        o.concurrency,
        raw.rate,
        raw.p50,
        raw.p99,
        suffix(raw.rejected, "publishes failed")
    );
    println!(
        "(o′) the same on a memory stream:             {:>7.0} msg/s   p50 {:.2} ms  p99 {:.2} ms   file/memory {:.2}",
        raw_mem.rate,
        raw_mem.p50,
        raw_mem.p99,
        raw.rate / raw_mem.rate
    );
    for (label, m) in [("(p) ", &file), ("(p′)", &mem)] {
        let storage = if label == "(p) " { "File  " } else { "Memory" };
        println!(
            "{label} JetStream channel, storage {storage} → subscription → sink: {:>7.0} ev/s    p50 {:.2} ms  p99 {:.2} ms   knit CPU {:.1} µs/event{}",
            m.rate,
            m.p50,
            m.p99,
            m.cpu_us,
            suffix(m.rejected, "not accepted")
        );
    }
    println!(
        "file/memory through Knit (p)/(p′) {:.2}; peak RSS of knit with the JetStream objects: {}",
        file.rate / mem.rate,
        crate::mib(rig.knit.peak_rss())
    );
    anyhow::ensure!(n.accepted > 0, "the JetStream broker accepted nothing");
    Ok(())
}
