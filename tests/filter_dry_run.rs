//! `knit filter test`: offline from Trigger manifests, and against a running Broker; the
//! clause that decided is named (inside a CESQL expression, the sub-expression and the
//! attributes it reads), CESQL errors show their position, exit 0/1 says matched.

mod common;

use common::{Knit, broker, cli, trigger};

const EVENT: &str = r#"{"specversion": "1.0", "id": "1", "source": "/orders", "type": "order.created",
  "subject": "eu/123", "datacontenttype": "application/json", "data": {"total": 12}}"#;

/// An event `by-bar`'s expression refuses for its source alone.
const BAR_EVENT: &str =
    r#"{"specversion": "1.0", "id": "2", "source": "/elsewhere", "type": "com.bar.created"}"#;

/// What `knit filter test` says of `by-bar` on [`BAR_EVENT`].
const BAR_VERDICT: &str = r#"trigger/by-bar: no match — filters[0].cesql: source = '/bar' is false (source is "/elsewhere")"#;

fn triggers() -> String {
    [
        trigger("by-type", "default", "http://127.0.0.1:9/", "filter:\n  attributes:\n    type: order.created"),
        trigger(
            "by-region",
            "default",
            "http://127.0.0.1:9/",
            "filters:\n  - exact:\n      type: order.created\n  - any:\n      - prefix:\n          subject: us/\n      - suffix:\n          source: /payments",
        ),
        trigger(
            "by-sql",
            "default",
            "http://127.0.0.1:9/",
            "filters:\n  - cesql: \"subject LIKE 'eu/%' AND type = 'order.created'\"",
        ),
        trigger(
            "by-bar",
            "default",
            "http://127.0.0.1:9/",
            "filters:\n  - cesql: \"type LIKE 'com.bar.%' AND source = '/bar'\"",
        ),
    ]
    .join("---\n")
}

#[test]
fn offline_names_the_deciding_clause_of_every_trigger() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = dir.path().join("triggers.yaml");
    std::fs::write(&t, triggers()).expect("write");
    let e = dir.path().join("event.json");
    std::fs::write(&e, EVENT).expect("write");
    let (code, out, err) = cli(&[
        "filter",
        "test",
        "-f",
        &t.to_string_lossy(),
        "--event",
        &e.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("trigger/by-type: matched — filter.attributes"),
        "{out}"
    );
    assert!(
        out.contains("trigger/by-region: no match — filters[1].any: none matched (filters[1].any[0].prefix.subject: subject is \"eu/123\""),
        "{out}"
    );
    assert!(
        out.contains("trigger/by-sql: matched — filters: all 1 matched"),
        "{out}"
    );
    assert!(
        out.contains(r#"trigger/by-bar: no match — filters[0].cesql: type LIKE 'com.bar.%' is false (type is "order.created")"#),
        "{out}"
    );

    // The sub-expression that refused the event, with the attribute's value.
    let bar = dir.path().join("bar.json");
    std::fs::write(&bar, BAR_EVENT).expect("write");
    let (code, out, err) = cli(&[
        "filter",
        "test",
        "-f",
        &t.to_string_lossy(),
        "--event",
        &bar.to_string_lossy(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(BAR_VERDICT), "{out}");

    // No Trigger takes it: exit 1. A CESQL error shows its position.
    let other = dir.path().join("other.json");
    std::fs::write(&other, EVENT.replace("order.created", "order.paid")).expect("write");
    let (code, out, _) = cli(&[
        "filter",
        "test",
        "-f",
        &t.to_string_lossy(),
        "--event",
        &other.to_string_lossy(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("trigger/by-type: no match — filter.attributes.type: type is \"order.paid\", not \"order.created\""), "{out}");
    assert!(
        out.contains(r#"trigger/by-sql: no match — filters[0].cesql: type = 'order.created' is false (type is "order.paid")"#),
        "{out}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        trigger(
            "bad",
            "default",
            "http://127.0.0.1:9/",
            "filters:\n  - cesql: \"type = 'x' AND\"",
        ),
    )
    .expect("write");
    let (code, _, err) = cli(&[
        "filter",
        "test",
        "-f",
        &bad.to_string_lossy(),
        "--event",
        &e.to_string_lossy(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("position"), "{err}");
}

#[tokio::test]
async fn against_a_running_broker_every_trigger_is_judged() {
    let knit = Knit::start(&[
        ("broker.yaml", &broker("default", "")),
        ("triggers.yaml", &triggers()),
    ]);
    knit.ready("brokers", "default").await;
    for t in ["by-type", "by-region", "by-sql", "by-bar"] {
        knit.ready("triggers", t).await;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let e = dir.path().join("event.json");
    std::fs::write(&e, EVENT).expect("write");
    let (code, out, err) = knit.cli(&[
        "filter",
        "test",
        "--broker",
        "default/default",
        "--event",
        &e.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("trigger/")).count(),
        4,
        "{out}"
    );
    assert!(
        out.contains("trigger/by-region: no match — filters[1].any"),
        "{out}"
    );
    let bar = dir.path().join("bar.json");
    std::fs::write(&bar, BAR_EVENT).expect("write");
    let (code, out, err) = knit.cli(&[
        "filter",
        "test",
        "--broker",
        "default/default",
        "--event",
        &bar.to_string_lossy(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(BAR_VERDICT), "{out}");
    let (code, _, err) = knit.cli(&[
        "filter",
        "test",
        "--broker",
        "default/missing",
        "--event",
        &e.to_string_lossy(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no running Broker default/missing"), "{err}");
}
