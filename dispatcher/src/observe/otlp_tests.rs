//! Unit tests of the OTLP exporter's span model (no network).

use std::sync::Arc;
use std::time::Duration;

use knit_channels::Event;

use super::*;

fn event(id: &str, traceparent: Option<&str>) -> Arc<Event> {
    let mut e = Event::new(id, "/test", "t");
    if let Some(tp) = traceparent {
        e.headers.push(("traceparent".into(), tp.into()));
    }
    Arc::new(e)
}

#[test]
fn traceparent_parses_and_rejects() {
    let ctx = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_eq!(
        ctx.map(|c| (hex::encode(c.trace), hex::encode(c.span))),
        Some((
            "0af7651916cd43dd8448eb211c80319c".to_string(),
            "b7ad6b7169203331".to_string()
        ))
    );
    for bad in [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-01",
    ] {
        assert_eq!(parse_traceparent(bad), None, "{bad}");
    }
}

#[test]
fn spans_of_a_delivery_link_up() {
    let otlp = Otlp::unstarted();
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let ev = event("e1", Some(tp));
    let origin = Arc::new(Origin::new("Broker", "default", "b"));
    let view = Arc::new(super::super::IngressView::default());
    otlp.accepted(&Accepted {
        origin: &origin,
        view: &view,
        event: &ev,
        size: 10,
        mode: Mode::Binary,
        at_ms: 1_000,
    });
    let egress: Arc<str> = Arc::from("Trigger/default/t");
    let hop = Hop {
        origin: Some(&origin),
        egress: &egress,
        event: &ev,
    };
    let url: Arc<str> = Arc::from("http://x");
    let seen = |status| AttemptSeen {
        leg: Leg::Subscriber,
        url: &url,
        shared_url: &url,
        status: Some(status),
        error: None,
        latency: Duration::from_millis(2),
        at_ms: 1_001,
    };
    otlp.attempt(&hop, &seen(500));
    otlp.retry(&hop, 1, Duration::from_millis(50));
    otlp.attempt(&hop, &seen(200));
    otlp.replied(&hop, "r1");
    otlp.fate(
        &hop,
        &Fate::Delivered {
            attempts: 2,
            replied: true,
        },
    );
    otlp.accepted(&Accepted {
        origin: &origin,
        view: &view,
        event: &event("r1", None),
        size: 10,
        mode: Mode::Binary,
        at_ms: 1_010,
    });
    let spans: Vec<Span> = otlp.queue.lock().drain(..).collect();
    assert_eq!(spans.len(), 5);
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id == "0af7651916cd43dd8448eb211c80319c")
    );
    let ingress = &spans[0];
    assert_eq!(ingress.parent_span_id, "b7ad6b7169203331");
    let deliver = &spans[3];
    assert_eq!(deliver.name, "deliver Trigger/default/t");
    assert_eq!(deliver.parent_span_id, ingress.span_id);
    assert_eq!(spans[1].parent_span_id, deliver.span_id);
    assert_eq!(spans[2].parent_span_id, deliver.span_id);
    assert_ne!(spans[1].span_id, spans[2].span_id);
    let names: Vec<&str> = deliver
        .events
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["retry", "reply"]);
    assert_eq!(spans[4].parent_span_id, deliver.span_id);
    let body = body(&spans);
    assert_eq!(
        body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "knit"
    );
}

#[test]
fn the_queue_drops_its_oldest_when_full() {
    let otlp = Otlp::unstarted();
    let origin = Arc::new(Origin::new("Broker", "default", "b"));
    let view = Arc::new(super::super::IngressView::default());
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for i in 0..QUEUE + 3 {
        otlp.accepted(&Accepted {
            origin: &origin,
            view: &view,
            event: &event(&format!("e{i}"), Some(tp)),
            size: 1,
            mode: Mode::Binary,
            at_ms: 1,
        });
    }
    assert_eq!(otlp.dropped(), 3);
    let q = otlp.queue.lock();
    assert_eq!(q.len(), QUEUE);
    assert!(q.iter().all(|s| s.parent_span_id == "b7ad6b7169203331"));
}

#[test]
fn roots_are_held_in_case_they_are_replies() {
    let otlp = Otlp::unstarted();
    let origin = Arc::new(Origin::new("Broker", "default", "b"));
    let view = Arc::new(super::super::IngressView::default());
    for i in 0..QUEUE + 3 {
        otlp.accepted(&Accepted {
            origin: &origin,
            view: &view,
            event: &event(&format!("e{i}"), None),
            size: 1,
            mode: Mode::Binary,
            at_ms: 1,
        });
    }
    // Held, but bounded: the oldest go out as roots of their derived traces.
    assert_eq!(otlp.held.lock().0.len(), QUEUE);
    let q = otlp.queue.lock();
    assert_eq!(q.len(), 3);
    assert!(q.iter().all(|s| s.parent_span_id.is_empty()));
    assert_eq!(q[0].trace_id.len(), 32);
}
