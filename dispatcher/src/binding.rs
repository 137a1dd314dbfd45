//! The CloudEvents HTTP binding: binary and structured mode, and batches, for requests and
//! responses alike. Header values are written as received (as sdk-go, which Knative runs on,
//! does) and read with lenient percent-decoding.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use knit_channels::event::{Event, ExtValue, SpecVersion, percent_decode, rules};

/// The structured-mode media type.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The batch media type.
pub const BATCH: &str = "application/cloudevents-batch+json";

/// Whether an HTTP header travels with the event from ingress to egress, and from a
/// subscriber's response onto its reply (eventing-spec E19, E20): `x-request-id`,
/// `retry-after`, `knative-*`, `x-b3-*`, and the W3C trace context.
pub fn is_propagated_header(name: &str) -> bool {
    let starts = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    ["x-request-id", "retry-after", "traceparent", "tracestate"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        || starts("knative-")
        || starts("x-b3-")
}

/// The propagated headers of a message, lower-case.
pub fn propagated_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| is_propagated_header(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// Why a message is not a CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The message does not carry a CloudEvent in a format Knit reads (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The event is malformed or misses attributes (400); the message says which.
    #[error("{0}")]
    Invalid(String),
    /// No event at all: no `ce-specversion` header and no CloudEvents media type.
    #[error("not a CloudEvent: no ce-specversion header and no application/cloudevents media type")]
    NotAnEvent,
}

/// What a message carried.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// One event (binary or structured mode).
    One(Box<Event>),
    /// A batch (`application/cloudevents-batch+json`).
    Batch(Vec<Event>),
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decode a message (request or response) into events.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<Decoded, BindingError> {
    let mt = media_type(headers);
    if mt == BATCH {
        return decode_batch(&body).map(Decoded::Batch);
    }
    if mt == STRUCTURED {
        return Event::from_json(&body)
            .map(|e| Decoded::One(Box::new(e)))
            .map_err(|e| BindingError::Invalid(e.0));
    }
    if mt.starts_with("application/cloudevents") {
        return Err(BindingError::UnsupportedMediaType(format!(
            "unsupported event format {mt:?}: use binary mode or {STRUCTURED}"
        )));
    }
    if !headers.contains_key("ce-specversion") {
        return Err(BindingError::NotAnEvent);
    }
    decode_binary(headers, body).map(|e| Decoded::One(Box::new(e)))
}

/// Decode a batch: every entry must be a valid event; the error names the first bad one.
pub fn decode_batch(body: &[u8]) -> Result<Vec<Event>, BindingError> {
    let entries: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| BindingError::Invalid(format!("invalid batch: {e}")))?;
    entries
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            Event::from_json(raw.get().as_bytes())
                .map_err(|e| BindingError::Invalid(format!("batch entry {i}: {e}")))
        })
        .collect()
}

/// Percent-decode a header value when it is validly encoded (and UTF-8); otherwise keep it as
/// is.
fn lenient_decode(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_string();
    }
    percent_decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| raw.to_string())
}

fn header_text(name: &str, v: &HeaderValue) -> Result<String, BindingError> {
    let s = std::str::from_utf8(v.as_bytes())
        .map_err(|_| BindingError::Invalid(format!("invalid attribute {name}: not UTF-8")))?;
    Ok(lenient_decode(s.trim()))
}

/// Decode binary mode: attributes from `ce-` headers, data from the body.
pub fn decode_binary(headers: &HeaderMap, body: Bytes) -> Result<Event, BindingError> {
    let mut ev = Event::new("", "", "");
    let mut specversion = None;
    // A header map yields a name's values one after the other: a repeat is the previous name.
    let mut previous: Option<&str> = None;
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if previous == Some(attr) {
            return Err(BindingError::Invalid(format!(
                "attribute {attr} is given twice"
            )));
        }
        previous = Some(attr);
        let text = header_text(attr, value)?;
        match attr {
            "specversion" => specversion = Some(text),
            "id" => ev.id = text,
            "source" => ev.source = text,
            "type" => ev.ty = text,
            "dataschema" | "schemaurl" => ev.dataschema = Some(text),
            "subject" => ev.subject = Some(text),
            "time" => ev.time = Some(text),
            "datacontenttype" => ev.datacontenttype = Some(text),
            _ => {
                if ev.extensions.len() >= rules::MAX_EXTENSIONS {
                    return Err(BindingError::Invalid(format!(
                        "too many extension attributes (at most {})",
                        rules::MAX_EXTENSIONS
                    )));
                }
                ev.extensions
                    .push((attr.to_string(), ExtValue::String(text)));
            }
        }
    }
    let sv = specversion.unwrap_or_default();
    ev.spec_version = SpecVersion::parse(&sv).ok_or_else(|| {
        BindingError::Invalid(format!("unsupported specversion {sv:?} (use 1.0 or 0.3)"))
    })?;
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        ev.datacontenttype = Some(header_text("datacontenttype", ct)?);
    }
    ev.set_data_from_body(body);
    ev.validate().map_err(|e| BindingError::Invalid(e.0))?;
    Ok(ev)
}

/// Whether a byte may appear in a header value as is (visible ASCII, space, tab, obs-text).
fn value_byte_ok(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

/// A header value that is valid HTTP: control characters are percent-encoded (with `%`
/// itself, so a percent-decoding receiver reads the original); anything else goes as is.
fn escaped(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().all(value_byte_ok) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        if ch.is_control() || ch == '%' {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Where encoding writes headers: a [`HeaderMap`], or HTTP/1.1 header lines ([`Lines`]).
pub trait HeaderSink {
    /// Add a header named `prefix` + `name` (lower-case ASCII) with `value` (escaped here).
    fn put(&mut self, prefix: &str, name: &str, value: &str);
}

impl HeaderSink for HeaderMap {
    fn put(&mut self, prefix: &str, name: &str, value: &str) {
        let full = format!("{prefix}{name}");
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(full.as_bytes()),
            HeaderValue::from_str(&escaped(value)),
        ) {
            self.insert(n, v);
        }
    }
}

/// Request header lines (`name: value\r\n`...), built once per delivery and written to the
/// wire as they are: no header map is built for plain `http://` egress.
#[derive(Clone, Debug, Default)]
pub struct Lines(Vec<u8>);

impl Lines {
    /// No headers.
    pub fn new() -> Self {
        Self(Vec::with_capacity(256))
    }

    /// The lines, each ending in `\r\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The same headers as a map (for clients that want one).
    pub fn to_header_map(&self) -> HeaderMap {
        let mut m = HeaderMap::new();
        for line in self.0.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(i) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let value = line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..]);
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(&line[..i]),
                HeaderValue::from_bytes(value),
            ) {
                m.append(n, v);
            }
        }
        m
    }
}

impl HeaderSink for Lines {
    fn put(&mut self, prefix: &str, name: &str, value: &str) {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid_name {
            return;
        }
        self.0.extend_from_slice(prefix.as_bytes());
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(escaped(value).as_bytes());
        self.0.extend_from_slice(b"\r\n");
    }
}

/// Encode in binary mode: `ce-` headers plus `Content-Type`, data as the body. Extensions named
/// in `skip` are left out.
pub fn encode_binary<H: HeaderSink>(ev: &Event, headers: &mut H, skip: &[String]) -> Bytes {
    // `skip` names extensions only: no context attribute is ever in it.
    ev.for_each_binary_attribute(|name, value| {
        if !skip.iter().any(|s| s == name) {
            headers.put("ce-", name, value);
        }
    });
    if let Some(ct) = &ev.datacontenttype {
        headers.put("", "content-type", ct);
    }
    ev.data
        .as_ref()
        .map(|d| d.bytes.clone())
        .unwrap_or_default()
}

/// Encode in structured mode; extensions named in `skip` are left out.
pub fn encode_structured<H: HeaderSink>(ev: &Event, headers: &mut H, skip: &[String]) -> Bytes {
    headers.put("", "content-type", STRUCTURED);
    if skip.iter().any(|s| ev.extension(s).is_some()) {
        let mut copy = ev.clone();
        for s in skip {
            copy.remove_extension(s);
        }
        return Bytes::from(copy.to_json());
    }
    Bytes::from(ev.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn binary_round_trip() {
        let headers = h(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-myext", "v%20x"),
            ("content-type", "application/json"),
        ]);
        let Decoded::One(ev) = decode(&headers, Bytes::from_static(b"{\"a\": 1}")).expect("valid")
        else {
            panic!()
        };
        assert_eq!(ev.extension("myext"), Some(&ExtValue::String("v x".into())));
        let mut out = HeaderMap::new();
        let body = encode_binary(&ev, &mut out, &[]);
        let Decoded::One(again) = decode(&out, body).expect("valid") else {
            panic!()
        };
        assert_eq!(again, ev);
    }

    #[test]
    fn missing_header_is_named() {
        let headers = h(&[
            ("ce-specversion", "1.0"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ]);
        let e = decode(&headers, Bytes::new()).unwrap_err();
        assert!(e.to_string().contains("id"), "{e}");
    }

    #[test]
    fn batch_names_the_bad_entry() {
        let body = br#"[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"specversion":"1.0","source":"s","type":"t"}]"#;
        let e = decode(&h(&[("content-type", BATCH)]), Bytes::from_static(body)).unwrap_err();
        assert!(e.to_string().contains("entry 1"), "{e}");
    }

    #[test]
    fn control_characters_survive() {
        let mut ev = Event::new("1", "s", "t");
        ev.subject = Some("a\nb 100%".into());
        let mut out = HeaderMap::new();
        let body = encode_binary(&ev, &mut out, &[]);
        let again = decode_binary(&out, body).expect("valid");
        assert_eq!(again.subject.as_deref(), Some("a\nb 100%"));
    }
}
