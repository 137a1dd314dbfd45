//! Unit tests of the journal ring.

use std::sync::Arc;
use std::time::Duration;

use knit_channels::Event;

use super::*;
use crate::observe::{Explain, Verdict, ViewEntry};

struct TypeIs(&'static str);

impl Explain for TypeIs {
    fn explain(&self, event: &Event) -> Verdict {
        Verdict {
            matched: event.ty == self.0,
            clause: "filters[0].exact.type".into(),
            reason: format!("type is {:?}", event.ty),
        }
    }
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::new("Broker", "default", "b"))
}

fn view() -> Arc<IngressView> {
    Arc::new(IngressView {
        egresses: vec![
            ViewEntry {
                reference: Arc::from("Trigger/default/yes"),
                filter: Some(Arc::new(TypeIs("t"))),
            },
            ViewEntry {
                reference: Arc::from("Trigger/default/no"),
                filter: Some(Arc::new(TypeIs("other"))),
            },
        ],
    })
}

fn accept(j: &Journal, o: &Arc<Origin>, v: &Arc<IngressView>, id: &str) -> Arc<Event> {
    let e = Arc::new(Event::new(id, "/s", "t"));
    j.accepted(&Accepted {
        origin: o,
        view: v,
        event: &e,
        size: 10,
        mode: Mode::Binary,
        at_ms: 1_700_000_000_000,
    });
    e
}

#[test]
fn a_journey_with_a_retry_a_reply_and_a_non_match() {
    let j = Journal::new(10);
    let (o, v) = (origin(), view());
    let e = accept(&j, &o, &v, "1");
    let egress: Arc<str> = Arc::from("Trigger/default/yes");
    let hop = Hop {
        origin: Some(&o),
        egress: &egress,
        event: &e,
    };
    let url: Arc<str> = Arc::from("http://sink");
    let attempt = |status| AttemptSeen {
        leg: Leg::Subscriber,
        url: "http://sink",
        shared_url: &url,
        status: Some(status),
        error: None,
        latency: Duration::from_millis(3),
        at_ms: 1_700_000_000_001,
    };
    j.attempt(&hop, &attempt(500));
    j.retry(&hop, 1, Duration::from_millis(50));
    j.attempt(&hop, &attempt(200));
    j.replied(&hop, "reply-1");
    j.fate(
        &hop,
        &Fate::Delivered {
            attempts: 2,
            replied: true,
        },
    );
    let journey = j.journey("default", "b", "1", None).expect("known");
    assert!(!journey.too_old);
    assert_eq!(journey.egresses.len(), 2);
    let yes = &journey.egresses[0];
    assert_eq!((yes.name.as_str(), yes.matched), ("yes", true));
    assert_eq!(yes.attempts.len(), 2);
    assert_eq!(yes.attempts[0].retry_in_ms, Some(50));
    assert_eq!(yes.retries, 1);
    assert_eq!(yes.reply.as_ref().map(|r| r.id.as_str()), Some("reply-1"));
    assert_eq!(yes.outcome, "delivered");
    let no = &journey.egresses[1];
    assert!(!no.matched);
    assert_eq!(no.clause.as_deref(), Some("filters[0].exact.type"));
    assert_eq!(no.outcome, "filtered");
    // Failed attempts make it a failed journey.
    let q = Query {
        failed: true,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(j.recent(&q).len(), 1);
}

#[test]
fn the_oldest_is_forgotten_first_and_said_too_old() {
    let j = Journal::new(3);
    let (o, v) = (origin(), view());
    for i in 0..5 {
        accept(&j, &o, &v, &i.to_string());
    }
    assert_eq!(j.len(), 3);
    let gone = j.journey("default", "b", "0", None).expect_err("forgotten");
    assert!(gone.too_old);
    let never = j
        .journey("default", "b", "never", None)
        .expect_err("unknown");
    assert!(!never.too_old);
    assert!(j.journey("default", "b", "4", None).is_ok());
    let q = Query {
        limit: 10,
        ..Default::default()
    };
    let ids: Vec<String> = j.recent(&q).into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["4", "3", "2"], "newest first");
}

#[test]
fn equal_ids_are_told_apart_by_source_and_the_newest_wins() {
    let j = Journal::new(10);
    let (o, v) = (origin(), view());
    accept(&j, &o, &v, "same");
    let e = Arc::new(Event::new("same", "/other", "t"));
    j.accepted(&Accepted {
        origin: &o,
        view: &v,
        event: &e,
        size: 1,
        mode: Mode::Structured,
        at_ms: 0,
    });
    let newest = j.journey("default", "b", "same", None).expect("known");
    assert_eq!(newest.source, "/other");
    let first = j
        .journey("default", "b", "same", Some("/s"))
        .expect("by source");
    assert_eq!(first.source, "/s");
    assert!(j.journey("default", "other-broker", "same", None).is_err());
}

#[test]
fn steps_of_an_unknown_event_start_a_journey_too_old_to_know() {
    let j = Journal::new(10);
    let o = origin();
    let e = Arc::new(Event::new("late", "/s", "t"));
    let egress: Arc<str> = Arc::from("Trigger/default/yes");
    let hop = Hop {
        origin: Some(&o),
        egress: &egress,
        event: &e,
    };
    j.fate(
        &hop,
        &Fate::Dropped {
            attempts: 1,
            reason: "gone".into(),
        },
    );
    let journey = j.journey("default", "b", "late", None).expect("known");
    assert!(journey.too_old);
    assert_eq!(journey.egresses[0].outcome, "dropped");
}

#[test]
fn steps_per_delivery_and_bytes_are_bounded() {
    let j = Journal::with_bytes(100, 25);
    let (o, v) = (origin(), view());
    let e = accept(&j, &o, &v, "a");
    accept(&j, &o, &v, "b");
    accept(&j, &o, &v, "c");
    assert_eq!(j.len(), 2, "10 bytes each, 25 at most");
    let egress: Arc<str> = Arc::from("Trigger/default/yes");
    let hop = Hop {
        origin: Some(&o),
        egress: &egress,
        event: &e,
    };
    j.retry(&hop, 1, Duration::ZERO);
    let gone = j.journey("default", "b", "a", None).expect_err("forgotten");
    assert!(gone.too_old, "the steps of a forgotten event are dropped");
    let c = j.journey("default", "b", "c", None).expect("kept");
    assert_eq!(c.id, "c");
    let e = Arc::new(Event::new("c", "/s", "t"));
    let hop = Hop {
        origin: Some(&o),
        egress: &egress,
        event: &e,
    };
    for _ in 0..(MAX_STEPS + 5) {
        j.retry(&hop, 1, Duration::ZERO);
    }
    let journey = j.journey("default", "b", "c", None).expect("known");
    let yes = journey
        .egresses
        .iter()
        .find(|e| e.name == "yes")
        .expect("yes");
    assert_eq!(yes.omitted, 5);
}

/// A channel fanning one event out to many Subscriptions: each keeps its own trail (found
/// again through the index, in whatever order they finish), and what the trails take counts
/// towards the journal's bytes, so the journal forgets older journeys for them.
#[test]
fn a_fan_out_keeps_a_trail_per_egress_and_counts_its_bytes() {
    let o = Arc::new(Origin::new("InMemoryChannel", "default", "c"));
    let names: Vec<Arc<str>> = (0..500)
        .map(|i| Arc::from(format!("Subscription/default/s-{i}")))
        .collect();
    let entries = names
        .iter()
        .map(|n| ViewEntry {
            reference: n.clone(),
            filter: None,
        })
        .collect();
    let v = Arc::new(IngressView { egresses: entries });
    let j = Journal::with_bytes(10, 64 * 1024);
    let first = accept(&j, &o, &v, "old");
    let e = accept(&j, &o, &v, "1");
    for round in 0..2 {
        for n in names.iter().rev() {
            let hop = Hop {
                origin: Some(&o),
                egress: n,
                event: &e,
            };
            if round == 0 {
                j.retry(&hop, 1, Duration::from_millis(10));
            } else {
                j.fate(
                    &hop,
                    &Fate::Delivered {
                        attempts: 2,
                        replied: false,
                    },
                );
            }
        }
    }
    let journey = j.journey("default", "c", "1", None).expect("known");
    assert_eq!(journey.egresses.len(), 500);
    assert!(journey.egresses.iter().all(|t| t.outcome == "delivered"));
    assert!(journey.egresses.iter().all(|t| t.retries == 1));
    let _ = first;
    assert!(
        j.journey("default", "c", "old", None)
            .expect_err("forgotten")
            .too_old,
        "500 trails take more than 64 KiB: the older journey made room"
    );
}
