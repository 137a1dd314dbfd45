//! CloudEvents SQL: lexer, parser and checker on any text; what parses is evaluated against a
//! few fixed events (evaluation is total: it must return, never panic).
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use knit_broker::cesql::{self, Expression};
use knit_channels::{Event, ExtValue};
use libfuzzer_sys::fuzz_target;

static EVENTS: LazyLock<Vec<Event>> = LazyLock::new(|| {
    let plain = Event::new("myId", "localhost.localdomain", "myType");
    let mut full = Event::new("42", "/sources/a/b", "com.example.object.deleted.v2");
    full.subject = Some("2147483647".into());
    full.time = Some("2018-04-26T14:48:09+02:00".into());
    full.datacontenttype = Some("application/json".into());
    full.dataschema = Some("https://example.com/schema".into());
    full.set_extension("myint", ExtValue::Integer(i64::from(i32::MIN)));
    full.set_extension("mybig", ExtValue::Integer(i64::MAX));
    full.set_extension("mybool", ExtValue::Boolean(true));
    full.set_extension("mystring", ExtValue::String("-2147483648".into()));
    full.set_extension("myutf8", ExtValue::String("ÄéΩ😀 \\%_".into()));
    full.set_data_from_body(Bytes::from_static(b"{\"a\":1}"));
    let mut weird = Event::new("", "", "");
    weird.subject = Some(String::new());
    weird.set_extension("empty", ExtValue::String(String::new()));
    weird.set_extension("true", ExtValue::String("TRUE".into()));
    weird.set_extension("zero", ExtValue::Integer(0));
    vec![plain, full, weird]
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = cesql::check(text);
    let Ok(expr) = Expression::parse(text) else {
        assert!(checked.is_err(), "check and parse disagree on {text:?}");
        return;
    };
    assert!(checked.is_ok(), "check and parse disagree on {text:?}");
    for ev in EVENTS.iter() {
        let first = expr.evaluate(ev);
        let _ = expr.matches(ev);
        if let Some(e) = &first.1 {
            let _ = e.to_string();
        }
        assert_eq!(first, expr.evaluate(ev), "evaluation is not deterministic");
    }
});
