use super::*;
use crate::event::{Data, DataKind};

fn sample() -> Event {
    let mut e = Event::new("id 1", "/src", "t.created");
    e.datacontenttype = Some("application/json".into());
    e.subject = Some("a \"quoted\" 100% subject ü".into());
    e.time = Some("2025-01-31T12:00:00Z".into());
    e.set_extension("partitionkey", ExtValue::String("k1".into()));
    e.set_extension("count", ExtValue::Integer(3));
    e.data = Some(Data {
        bytes: Bytes::from_static(br#"{"a":1}"#),
        kind: DataKind::Json,
    });
    e.headers = vec![("traceparent".into(), "00-abc-def-01".into())];
    e
}

fn borrowed(m: &OutMessage) -> Vec<(&str, &str)> {
    m.headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

#[test]
fn binary_mode_writes_percent_encoded_ce_headers_and_reads_them_back() {
    let e = sample();
    let m = encode(&e, ContentMode::Binary);
    let h = borrowed(&m);
    assert!(h.contains(&("ce-specversion", "1.0")));
    assert!(h.contains(&("ce-id", "id%201")));
    assert!(h.contains(&("ce-source", "/src")));
    assert!(h.contains(&("ce-datacontenttype", "application/json")));
    assert!(h.contains(&("ce-subject", "a%20%22quoted%22%20100%25%20subject%20%C3%BC")));
    assert!(h.contains(&("ce-count", "3")));
    assert!(h.contains(&("traceparent", "00-abc-def-01")));
    assert_eq!(m.payload.as_ref(), br#"{"a":1}"#);
    let back = decode(&h, &m.payload).expect("decodes");
    assert_eq!(back.id, "id 1");
    assert_eq!(back.source, "/src");
    assert_eq!(back.subject, e.subject);
    assert_eq!(back.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(back.extension("count"), Some(&ExtValue::String("3".into())));
    assert_eq!(back.data, e.data);
    assert_eq!(back.headers, e.headers);
}

#[test]
fn structured_mode_round_trips_the_json_format() {
    let e = sample();
    let m = encode(&e, ContentMode::Structured);
    let h = borrowed(&m);
    assert!(
        h.iter()
            .any(|(n, v)| *n == "Content-Type" && v.starts_with("application/cloudevents+json"))
    );
    assert!(!h.iter().any(|(n, _)| n.starts_with("ce-")));
    let back = decode(&h, &m.payload).expect("decodes");
    assert_eq!(back.id, e.id);
    assert_eq!(back.source, e.source);
    assert_eq!(back.data, e.data);
    assert_eq!(back.headers, e.headers);
}

#[test]
fn header_names_are_case_insensitive_and_the_last_duplicate_wins() {
    let h = [
        ("CE-SpecVersion", "1.0"),
        ("Ce-Id", "first"),
        ("ce-id", "second"),
        ("CE-SOURCE", "/s"),
        ("ce-type", "t"),
        ("content-type", "text/plain"),
    ];
    let e = decode(&h, b"hello").expect("decodes");
    assert_eq!(e.id, "second");
    assert_eq!(e.datacontenttype.as_deref(), Some("text/plain"));
    assert_eq!(e.data.map(|d| d.bytes), Some(Bytes::from_static(b"hello")));
}

#[test]
fn a_message_without_headers_is_structured_and_one_without_ce_headers_is_not_an_event() {
    let json = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
    assert_eq!(decode(&[], json).map(|e| e.id).ok().as_deref(), Some("1"));
    assert_eq!(
        decode(&[("x-other", "1")], b"x"),
        Err(DecodeError::NotCloudEvent)
    );
    let avro = decode(&[("Content-Type", "application/cloudevents+avro")], b"x");
    assert!(matches!(avro, Err(DecodeError::Invalid(_))), "{avro:?}");
}

#[test]
fn quoted_strings_are_unescaped_before_percent_decoding() {
    assert_eq!(header_value(r#""a\"b%20c""#).as_deref(), Ok("a\"b c"));
    assert_eq!(header_value("plain").as_deref(), Ok("plain"));
    assert!(header_value(r#""x\""#).is_err(), "a trailing backslash");
}

#[test]
fn invalid_or_overlong_utf8_and_bad_escapes_are_rejected() {
    // An overlong encoding of '/' (C0 AF), a lone continuation byte, a truncated sequence.
    for bad in ["%C0%AF", "%80", "%E2%82", "%ZZ", "%4", "%"] {
        assert!(header_value(bad).is_err(), "{bad}");
        let h = [
            ("ce-specversion", "1.0"),
            ("ce-id", bad),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ];
        assert!(
            matches!(decode(&h, b""), Err(DecodeError::Invalid(_))),
            "{bad}"
        );
    }
    assert_eq!(header_value("%E2%82%AC").as_deref(), Ok("€"));
}

#[test]
fn percent_encoding_covers_exactly_the_spec_set() {
    assert_eq!(percent_encode("a b\"c%d~!"), "a%20b%22c%25d~!");
    assert_eq!(percent_encode("\t\u{7f}é"), "%09%7F%C3%A9");
    for s in ["", "x", "ü € 😀", "%%", "\"\""] {
        assert_eq!(header_value(&percent_encode(s)).as_deref(), Ok(s));
    }
}

#[test]
fn the_message_id_hashes_source_and_id() {
    let a = Event::new("1", "/a", "t");
    let b = Event::new("1", "/b", "t");
    assert_eq!(message_id(&a), message_id(&a.clone()));
    assert_ne!(message_id(&a), message_id(&b));
    assert_eq!(message_id(&a).len(), 32);
}

#[test]
fn bookkeeping_headers_are_not_part_of_the_event() {
    let h = [
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
        ("Nats-Msg-Id", "abc"),
        ("knit-attempts", "2"),
    ];
    let e = decode(&h, b"").expect("decodes");
    assert!(e.extensions.is_empty(), "{:?}", e.extensions);
    assert!(e.headers.is_empty(), "{:?}", e.headers);
    assert!(e.data.is_none());
}
