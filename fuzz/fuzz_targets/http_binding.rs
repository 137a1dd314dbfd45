//! The CloudEvents HTTP binding: headers and body as a client sends them.
//!
//! Input (text, so seeds stay readable): a mode line, header lines `name: value`, an empty
//! line, then the body. The mode line picks the content type so every mode is reached:
//! `S` structured, `A` batch, `B` binary (a `ce-specversion` header added when missing and
//! any cloudevents content type dropped), anything else the headers as given.
#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header::CONTENT_TYPE};
use knit_dispatcher::binding::{self, Decoded, Lines};
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8]) -> (u8, &[u8], &[u8]) {
    let (mode, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (data.first().copied().unwrap_or(0), &data[i + 1..]),
        None => (0, data),
    };
    let end = rest.windows(2).position(|w| w == b"\n\n");
    match end {
        Some(i) => (mode, &rest[..i], &rest[i + 2..]),
        None => (mode, rest, &[]),
    }
}

fn headers(block: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(i) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = &line[i + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..i]),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

fn exercise_encoders(ev: &knit_channels::Event) {
    let mut lines = Lines::new();
    let _ = binding::encode_binary(ev, &mut lines, &[]);
    let _ = lines.to_header_map();
    let mut map = HeaderMap::new();
    let _ = binding::encode_structured(ev, &mut map, &["knativebrokerttl".to_string()]);
}

fuzz_target!(|data: &[u8]| {
    let (mode, block, body) = split(data);
    let mut map = headers(block);
    match mode {
        b'S' => {
            map.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/cloudevents+json; charset=utf-8"),
            );
        }
        b'A' => {
            map.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/cloudevents-batch+json"),
            );
        }
        b'B' => {
            let structured = map
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim()
                        .to_ascii_lowercase()
                        .starts_with("application/cloudevents")
                });
            if structured {
                map.remove(CONTENT_TYPE);
            }
            if !map.contains_key("ce-specversion") {
                map.insert("ce-specversion", HeaderValue::from_static("1.0"));
            }
        }
        _ => {}
    }
    let _ = binding::propagated_headers(&map);
    match binding::decode(&map, Bytes::copy_from_slice(body)) {
        Ok(Decoded::One(ev)) => {
            let _ = ev.validate();
            let _ = ev.size();
            exercise_encoders(&ev);
        }
        Ok(Decoded::Batch(events)) => {
            for ev in &events {
                exercise_encoders(ev);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
