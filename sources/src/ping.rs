//! PingSource: a fixed event on a cron schedule. The schedule is read in its time zone; each
//! tick's time is computed from the schedule (never from when the previous send finished), so
//! ticks do not drift; a tick missed while Knit was down is not replayed (as Knative). An
//! event's id is derived from the source and the tick ([`event_id`]). With replicas, only the
//! leader ticks ([`crate::lead`]).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use knit_channels::Event;
use knit_crds::contract::{Adapter, PingAdapter, Source};
use tokio::task::JoinSet;

use crate::emit::Emitter;
use crate::runtime::{Ctx, Stop, StopSignal};
use crate::{Error, Result};

/// `type` of every PingSource event.
pub const EVENT_TYPE: &str = "dev.knative.sources.ping";
/// Most sends of one source in flight at once; a tick that finds them all busy is skipped
/// (and logged), so a slow sink never builds an unbounded backlog.
const MAX_IN_FLIGHT: usize = 64;

/// `source` of a PingSource's events.
pub fn event_source(namespace: &str, name: &str) -> String {
    format!("/apis/v1/namespaces/{namespace}/pingsources/{name}")
}

/// `id` of the event of the tick at `at`: a UUIDv5 of the tick's time (RFC 3339) in a namespace
/// made from the source's `namespace/name`. Every replica gives a tick the same id, so a tick
/// sent twice around a failover of the leader is recognisable as one.
pub fn event_id(namespace: &str, name: &str, at: Timestamp) -> String {
    let space = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{namespace}/{name}").as_bytes(),
    );
    uuid::Uuid::new_v5(&space, at.to_string().as_bytes()).to_string()
}

/// A parsed schedule.
pub struct Schedule {
    cron: croner::Cron,
    zone: TimeZone,
}

impl Schedule {
    /// Parse `pattern` (five fields, or six with seconds first) in time zone `tz`.
    pub fn new(pattern: &str, tz: &str) -> Result<Self> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|source| Error::Schedule {
                pattern: pattern.to_string(),
                source,
            })?;
        let zone = TimeZone::get(tz).map_err(|source| Error::TimeZone {
            zone: tz.to_string(),
            source,
        })?;
        Ok(Self { cron, zone })
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|n| n.timestamp())
    }
}

/// The event of one tick at `at`.
pub fn event(source: &Source, cfg: &PingAdapter, at: Timestamp) -> Result<Event> {
    let mut ev = Event::new(
        event_id(&source.namespace, &source.name, at),
        event_source(&source.namespace, &source.name),
        EVENT_TYPE,
    );
    ev.time = Some(at.to_string());
    ev.datacontenttype = cfg.content_type.clone();
    let data = match (&cfg.data, &cfg.data_base64) {
        (Some(d), _) => Some(Bytes::from(d.clone())),
        (None, Some(b)) => Some(Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(Error::DataBase64)?,
        )),
        (None, None) => None,
    };
    if let Some(d) = data {
        ev.set_data_from_body(d);
    }
    Ok(ev)
}

fn wait_until(t: Timestamp) -> Duration {
    let now = Timestamp::now();
    if t <= now {
        return Duration::ZERO;
    }
    let d = t.duration_since(now);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

pub(crate) async fn run(ctx: Arc<Ctx>, source: Arc<Source>, mut stop: StopSignal) {
    let Adapter::Ping(cfg) = &source.adapter else {
        return;
    };
    let schedule = match Schedule::new(&cfg.schedule, &cfg.timezone) {
        Ok(s) => s,
        Err(e) => {
            ctx.report
                .not_ready(&source.uid, "InvalidSchedule", e.to_string());
            stop.stopped().await;
            return;
        }
    };
    // Checked once: a bad payload fails every tick the same way.
    if let Err(e) = event(&source, cfg, Timestamp::now()) {
        ctx.report
            .not_ready(&source.uid, "InvalidData", e.to_string());
        stop.stopped().await;
        return;
    }
    let emitter = Arc::new(Emitter::new(&ctx.dispatch, &source));
    ctx.report.ready(&source.uid, &[], 0);
    let mut sends = JoinSet::new();
    let mut last = Timestamp::now();
    loop {
        let Some(tick) = schedule.next_after(last) else {
            tracing::warn!(source = %source.reference, "the schedule has no next tick");
            stop.stopped().await;
            break;
        };
        tokio::select! {
            why = stop.stopped() => {
                if why != Stop::Shutdown {
                    sends.abort_all();
                }
                break;
            }
            () = tokio::time::sleep(wait_until(tick)) => {}
            Some(_) = sends.join_next(), if !sends.is_empty() => continue,
        }
        // A sleep can end a hair early on a coarse clock: never emit before the tick.
        if Timestamp::now() < tick {
            continue;
        }
        last = tick;
        if sends.len() >= MAX_IN_FLIGHT {
            tracing::warn!(source = %source.reference, tick = %tick, "tick skipped: {MAX_IN_FLIGHT} sends still in flight");
            continue;
        }
        match event(&source, cfg, tick) {
            Ok(ev) => {
                let emitter = emitter.clone();
                sends.spawn(async move {
                    emitter.emit(ev).await;
                });
            }
            Err(e) => tracing::warn!(source = %source.reference, error = %e, "tick skipped"),
        }
    }
    // On shutdown, let sends in flight finish (the runtime bounds the wait).
    while sends.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn five_fields_are_minutes_and_six_have_seconds_first() {
        let every_minute = Schedule::new("* * * * *", "UTC").expect("parses");
        assert_eq!(
            every_minute.next_after(ts("2026-11-29T10:00:30Z")),
            Some(ts("2026-11-29T10:01:00Z"))
        );
        let every_two_seconds = Schedule::new("*/2 * * * * *", "UTC").expect("parses");
        assert_eq!(
            every_two_seconds.next_after(ts("2026-11-29T10:00:01Z")),
            Some(ts("2026-11-29T10:00:02Z"))
        );
        // Strictly after: a tick at exactly `t` is not returned again (no double fire).
        assert_eq!(
            every_two_seconds.next_after(ts("2026-11-29T10:00:02Z")),
            Some(ts("2026-11-29T10:00:04Z"))
        );
    }

    #[test]
    fn ticks_are_read_in_the_schedule_time_zone() {
        // 09:00 in Tokyo (UTC+9) is midnight UTC.
        let s = Schedule::new("0 9 * * *", "Asia/Tokyo").expect("parses");
        assert_eq!(
            s.next_after(ts("2026-11-29T10:00:00Z")),
            Some(ts("2026-11-30T00:00:00Z"))
        );
        // Across a DST change the wall-clock hour holds: 09:00 New York is 14:00Z in winter
        // and 13:00Z in summer.
        let ny = Schedule::new("0 9 * * *", "America/New_York").expect("parses");
        assert_eq!(
            ny.next_after(ts("2026-03-07T15:00:00Z")),
            Some(ts("2026-03-08T13:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_are_refused_with_the_reason() {
        assert!(Schedule::new("61 * * * *", "UTC").is_err());
        let e = Schedule::new("* * * * *", "Mars/Olympus")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn the_event_carries_the_tick_time_and_the_payload() {
        let source = Source {
            uid: "u".into(),
            reference: "PingSource/ns/p".into(),
            namespace: "ns".into(),
            name: "p".into(),
            sink: "http://127.0.0.1:1/".into(),
            dead_letter_sink: None,
            delivery: Default::default(),
            overrides: Default::default(),
            adapter: Adapter::Ping(PingAdapter {
                schedule: "* * * * *".into(),
                timezone: "UTC".into(),
                content_type: Some("application/json".into()),
                data: None,
                data_base64: Some("eyJhIjoxfQ==".into()),
            }),
            auth: None,
        };
        let Adapter::Ping(cfg) = &source.adapter else {
            unreachable!()
        };
        let at = ts("2026-11-29T10:01:00Z");
        let ev = event(&source, cfg, at).expect("event");
        assert_eq!(ev.ty, EVENT_TYPE);
        assert_eq!(ev.source, "/apis/v1/namespaces/ns/pingsources/p");
        assert_eq!(ev.time.as_deref(), Some("2026-11-29T10:01:00Z"));
        // The id is the tick's: the same for every replica, another for another tick.
        assert_eq!(ev.id, event_id("ns", "p", at));
        assert_eq!(ev.id, event(&source, cfg, at).expect("event").id);
        assert_ne!(ev.id, event_id("ns", "p", ts("2026-11-29T10:02:00Z")));
        assert_ne!(ev.id, event_id("ns", "q", at));
        assert!(ev.validate().is_ok());
        assert_eq!(
            ev.data.map(|d| d.bytes),
            Some(Bytes::from_static(br#"{"a":1}"#))
        );
    }
}
