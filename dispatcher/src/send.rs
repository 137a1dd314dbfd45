//! The one delivery entry for events that are not read from a log: what sources emit. It runs
//! the same [`crate::deliver::deliver`] as every Trigger and Subscription (attempts, backoff,
//! timeout, dead letter) and records the fate under the source's reference, so a source never
//! opens an HTTP client of its own nor counts on the side.

use std::sync::Arc;

use knit_channels::{
    BoxFuture, Consumer, Event, GroupStats, LogError, PartitionId, Polled, Record, RecordId,
    Settle, Settling,
};
use knit_crds::contract::{DeliveryPolicy, Egress};

use crate::deliver::Obs;
use crate::egress::EgressRuntime;
use crate::engine::Shared;
use crate::observe::{Fate, Hop, Origin};
use crate::sender::Session;

/// Where one producer's events go: a sink, its delivery policy and dead-letter sink.
pub struct Destination {
    runtime: EgressRuntime,
}

impl Destination {
    /// A destination for the producer `reference` (`Kind/namespace/name`, the key of its
    /// fates, and the origin of its events in the journal) in `namespace`.
    pub fn new(
        reference: &str,
        namespace: &str,
        sink: &str,
        dead_letter_sink: Option<&str>,
        delivery: DeliveryPolicy,
        auth: Option<knit_crds::contract::EgressAuth>,
    ) -> Self {
        let config = Egress {
            uid: String::new(),
            group: String::new(),
            reference: reference.to_string(),
            namespace: namespace.to_string(),
            filter: None,
            subscriber: Some(sink.to_string()),
            subscriber_ca_certs: None,
            reply: None,
            dead_letter_sink: dead_letter_sink.map(str::to_string),
            dead_letter_sink_ca_certs: None,
            delivery,
            max_in_flight: 1,
            rate_limit: None,
            ordering: Default::default(),
            overflow: Default::default(),
            start: Default::default(),
            auth,
        };
        let mut parts = reference.splitn(3, '/');
        let origin = Origin::new(
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or(namespace),
            parts.next().unwrap_or_default(),
        );
        Self {
            runtime: EgressRuntime::new(Arc::new(config), None, None, false)
                .with_origin(Arc::new(origin)),
        }
    }

    /// The producer's reference.
    pub fn reference(&self) -> &str {
        &self.runtime.config.reference
    }
}

/// A stand-in consumer for deliveries that are not read by a consumer group (sources, a
/// replay): it declines every `Retry` (retries happen in memory), and nothing is committed.
pub struct Direct;

impl Consumer for Direct {
    fn poll(&self, _max: usize) -> BoxFuture<'_, Option<Polled>> {
        Box::pin(async { None })
    }
    fn settle<'a>(&'a self, _record: &Record, how: Settle) -> Settling<'a> {
        match how {
            Settle::Retry(_) => Settling::kept(),
            Settle::Ack | Settle::DeadLettered => Settling::done(),
        }
    }
    fn commit(&self) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async { Ok(()) })
    }
    fn pause(&self) {}
    fn resume(&self) {}
    fn stats(&self) -> GroupStats {
        GroupStats::default()
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Send `event` to `dest` with its retries and dead letter; the fate is recorded under the
/// destination's reference and returned. Replies from the sink are discarded (as Knative's
/// source adapters do).
pub async fn send(
    shared: &Shared,
    dest: &Destination,
    event: Event,
    session: &mut Session,
) -> Fate {
    let record = Record {
        id: RecordId {
            partition: PartitionId(0),
            offset: 0,
            handle: 0,
        },
        event: Arc::new(event),
        key: None,
        retry: None,
    };
    let counters = shared.stats.egress(dest.reference());
    let obs = Obs {
        stats: &shared.stats,
        counters: &counters,
    };
    let fate = crate::deliver::deliver_observed(
        &shared.sender,
        &dest.runtime,
        &record,
        &Direct,
        session,
        Some(obs),
    )
    .await;
    let rt = &dest.runtime;
    let hop = Hop {
        origin: rt.origin.as_ref(),
        egress: &rt.reference,
        event: &record.event,
    };
    shared.stats.fate(&counters, &hop, &fate);
    fate
}
