//! `GET /metrics`: Prometheus text (format 0.0.4), read at each scrape from the fate record
//! (`knit_dispatcher::Stats`: the same counters `/api/v1/stats` shows, the attempt latencies,
//! the ingress counts), the consumer groups' lag and in-flight counts (refreshed about every
//! second), the journal, and serving's reports (cold starts). Names follow Knative's
//! OpenTelemetry names where one exists (`kn.eventing.dispatch.duration` →
//! `kn_eventing_dispatch_duration_seconds`); the README's "Seeing what happens" lists them.
//! Every series carries the label `replica` (`--replica-id`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use knit_crds::Kind;
use knit_crds::contract::{Backend, Contract, Report};
use knit_dispatcher::observe::HistogramSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{AdminState, error};
use crate::control::Snapshot;

/// The metrics route.
pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/metrics", get(metrics))
}

type Labels = Vec<(&'static str, String)>;

/// Everything one scrape shows, read up front.
#[derive(Debug, Default)]
struct Scrape {
    ingress: Vec<(Labels, u64)>,
    deliveries: Vec<(Labels, u64)>,
    latency: Vec<(Labels, HistogramSnapshot)>,
    lag: Vec<(Labels, u64)>,
    in_flight: Vec<(Labels, u64)>,
    fill: Vec<(Labels, f64)>,
    unmatched: u64,
    journal: (usize, usize),
    cold_starts: Vec<(Labels, u64)>,
    last_cold_start: Vec<(Labels, f64)>,
}

/// `Kind/namespace/name` as labels.
fn object(reference: &str) -> Labels {
    let mut parts = reference.splitn(3, '/');
    let kind = parts.next().unwrap_or_default().to_string();
    let namespace = parts.next().unwrap_or_default().to_string();
    let name = parts.next().unwrap_or_default().to_string();
    vec![("namespace", namespace), ("kind", kind), ("name", name)]
}

fn with(mut labels: Labels, key: &'static str, value: impl Into<String>) -> Labels {
    labels.push((key, value.into()));
    labels
}

/// Read everything one scrape shows.
fn read(s: &AdminState) -> Scrape {
    let mut out = Scrape::default();
    let snapshot = s.control.snapshot();
    out.ingresses(&s.stats);
    out.egresses(
        &s.stats,
        &snapshot.contract,
        s.dataplane.memory_capacity().max(1) as f64,
    );
    out.unmatched = s.stats.unmatched.load(Ordering::Relaxed);
    let journal = s.dataplane.journal();
    out.journal = (journal.len(), journal.capacity());
    let report = s.dataplane.report().borrow().clone();
    out.cold_starts(&snapshot, &report);
    out
}

impl Scrape {
    /// Events accepted by each ingress, by type and answer.
    fn ingresses(&mut self, stats: &knit_dispatcher::Stats) {
        for (origin, counters) in stats.ingresses() {
            let base: Labels = vec![
                ("namespace", origin.namespace.clone()),
                ("kind", origin.kind.clone()),
                ("name", origin.name.clone()),
            ];
            for (status, ty, n) in counters.snapshot() {
                let l = with(base.clone(), "cloudevents_type", ty);
                self.ingress
                    .push((with(l, "http_response_status_code", status.to_string()), n));
            }
        }
    }

    /// Each Trigger's and Subscription's outcomes, latencies, lag and in-flight count, and how
    /// full the memory log is for those reading one (`capacity` events).
    fn egresses(&mut self, stats: &knit_dispatcher::Stats, contract: &Contract, capacity: f64) {
        let memory: HashSet<&str> = contract
            .ingresses
            .iter()
            .filter(|i| i.backend == Backend::Memory)
            .flat_map(|i| i.egresses.iter().map(|e| e.reference.as_str()))
            .collect();
        for (reference, c) in stats.egress_counters() {
            let base = object(&reference);
            let l = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            for (outcome, n) in [
                ("delivered", l(&c.delivered)),
                ("filtered", l(&c.filtered)),
                ("retried", l(&c.retries)),
                ("deferred", l(&c.deferred)),
                ("deadLettered", l(&c.dead_lettered)),
                ("dropped", l(&c.dropped)),
                ("shed", l(&c.shed)),
            ] {
                self.deliveries
                    .push((with(base.clone(), "outcome", outcome), n));
            }
            for (status, h) in c.latency.snapshot() {
                let l = with(
                    base.clone(),
                    "http_response_status_code",
                    status.to_string(),
                );
                self.latency.push((l, h));
            }
            let lag = l(&c.lag);
            self.lag.push((base.clone(), lag));
            self.in_flight.push((base.clone(), l(&c.in_flight)));
            if memory.contains(reference.as_str()) {
                self.fill.push((base, lag as f64 / capacity));
            }
        }
    }

    /// Serving: cold starts from the Revisions' reports.
    fn cold_starts(&mut self, snapshot: &Snapshot, report: &Report) {
        let revisions: BTreeMap<String, (&str, &str)> = snapshot
            .objects
            .iter()
            .filter(|(k, _)| k.kind == Kind::Revision)
            .filter_map(|(k, v)| {
                let uid = uid_of(v)?;
                Some((uid, (k.namespace.as_str(), k.name.as_str())))
            })
            .collect();
        for (uid, r) in &report.objects {
            let Some((ns, name)) = revisions.get(uid) else {
                continue;
            };
            let labels: Labels = vec![
                ("namespace", ns.to_string()),
                ("revision", name.to_string()),
            ];
            if let Some(n) = r.annotations.get("coldStarts").and_then(|v| v.parse().ok()) {
                self.cold_starts.push((labels.clone(), n));
            }
            if let Some(ms) = r
                .annotations
                .get("lastColdStartMs")
                .and_then(|v| v.parse::<f64>().ok())
            {
                self.last_cold_start.push((labels, ms / 1000.0));
            }
        }
    }
}

/// `metadata.uid` of an object's JSON.
fn uid_of(json: &serde_json::value::RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        uid: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Object {
        metadata: Meta,
    }
    serde_json::from_str::<Object>(json.get())
        .ok()?
        .metadata
        .uid
}

fn counters(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: &[(Labels, V)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        counters(
            &mut enc,
            "kn_eventing_ingress_events",
            "Events posted to a Broker's or channel's ingress, by response status and event type (types past 100 per ingress count as \"other\"; a request refused before decoding has an empty type)",
            &self.ingress,
        )?;
        counters(
            &mut enc,
            "knit_deliveries",
            "Fates at each Trigger, Subscription or source: delivered, filtered, retried (attempts beyond the first), deferred (stored on a durable retry stream), deadLettered, dropped, shed",
            &self.deliveries,
        )?;
        let mut m = enc.encode_descriptor(
            "kn_eventing_dispatch_duration",
            "Duration of each delivery attempt (subscriber, reply, dead-letter sink), by response status (0: no answer)",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (labels, h) in &self.latency {
            m.encode_family(labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        gauges(
            &mut enc,
            "knit_egress_lag",
            "Events of a Trigger or Subscription not yet finished (waiting in its log plus in flight)",
            None,
            &self.lag,
        )?;
        gauges(
            &mut enc,
            "knit_egress_in_flight",
            "Deliveries in flight at a Trigger or Subscription",
            None,
            &self.in_flight,
        )?;
        gauges(
            &mut enc,
            "knit_egress_log_fill_ratio",
            "How full a memory log is for a Trigger or Subscription (lag / --log-capacity; past 1 the oldest events are shed)",
            None,
            &self.fill,
        )?;
        let none: &[(Labels, u64)] = &[(Vec::new(), self.unmatched)];
        counters(
            &mut enc,
            "knit_unmatched_events",
            "Events no Trigger of their Broker wanted (memory logs)",
            none,
        )?;
        let journal: &[(Labels, u64)] = &[
            (vec![("state", "kept".to_string())], self.journal.0 as u64),
            (
                vec![("state", "capacity".to_string())],
                self.journal.1 as u64,
            ),
        ];
        gauges(
            &mut enc,
            "knit_journal_events",
            "Journeys the event journal keeps (knit trace), and its capacity",
            None,
            journal,
        )?;
        counters(
            &mut enc,
            "knit_serving_cold_starts",
            "Cold starts of a Revision (a request waited for its first replica)",
            &self.cold_starts,
        )?;
        gauges(
            &mut enc,
            "knit_serving_last_cold_start",
            "Duration of a Revision's last cold start",
            Some(&Unit::Seconds),
            &self.last_cold_start,
        )
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    // Every series says which replica it is from (`--replica-id`), so the replicas' scrapes
    // can be told apart and summed.
    let replica = (Cow::Borrowed("replica"), Cow::Owned(s.coordination.id()));
    let mut registry = Registry::with_labels(std::iter::once(replica));
    registry.register_collector(Box::new(read(&s)));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    r
}
