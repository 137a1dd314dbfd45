//! The CloudEvents NATS protocol binding: how an [`Event`] becomes a NATS message (headers and
//! payload) and back, in binary and structured content mode, and the `Nats-Msg-Id` a publish
//! carries. Pure functions over plain Rust types: no NATS client here, so all of it is
//! testable without a server.
//!
//! # What this follows
//!
//! Spec: `cloudevents/spec` `cloudevents/bindings/nats-protocol-binding.md` (summarized in
//! `/work/shared/reference/kafka-nats.md` §1.2):
//!
//! - Binary mode (needs message headers, NATS ≥ 2.2): every attribute, extensions and
//!   `datacontenttype` included, is a header `ce-<name>`; the payload is the data (empty
//!   without data). Header names are case-insensitive when read.
//! - Header values are percent-encoded: space, `"`, `%` and every byte outside `0x21..=0x7E`
//!   (the UTF-8 bytes of other characters) as `%XX` with upper-case hex. A reader first
//!   un-escapes an RFC 7230 quoted string (older senders), then percent-decodes once, and
//!   rejects invalid or overlong UTF-8 (and malformed `%` escapes).
//! - Structured mode: the payload is the JSON event format; a `Content-Type` header starting
//!   (case-insensitively) with `application/cloudevents` marks it. A message with no headers at
//!   all is read as structured too (senders without header support write only structured).
//! - Mode detection when reading: structured by `Content-Type` (an unknown format is an error,
//!   not binary), binary when a `ce-specversion` header is present, structured when there are no
//!   headers, else not a CloudEvent. Of duplicate headers the last wins. A `Content-Type`
//!   header in a binary message is taken as `datacontenttype` when there is no
//!   `ce-datacontenttype` (lenient reading of HTTP-style senders).
//!
//! Transport headers (`traceparent`, `tracestate`, `x-request-id`, `retry-after`, `knative-*`,
//! `x-b3-*`; [`is_transport_header`]) travel as headers under their own lower-case names in
//! both modes, as on Kafka; headers starting with `knit-` and `Nats-` are bookkeeping, never
//! part of the event.
//!
//! The message id ([`message_id`]) is a hash of the event's `source` and `id`, so a publish
//! retried by a client (the same event sent again) is dropped by JetStream inside the stream's
//! duplicate window, while two events that share an `id` but not a `source` are both kept
//! (eventing-natss uses the `id` alone).

use std::borrow::Cow;

use bytes::Bytes;

use crate::event::{Event, ExtValue, MalformedEscape, SpecVersion, percent_decode};

/// Prefix of binary-mode attribute headers.
const CE_PREFIX: &str = "ce-";
/// The content-type header.
const CONTENT_TYPE: &str = "Content-Type";
/// What a structured message's content type starts with.
const CLOUDEVENTS_MEDIA_PREFIX: &str = "application/cloudevents";
/// The one event format read.
const JSON_FORMAT: &str = "application/cloudevents+json";
/// The content type structured messages are written with.
const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// How an event is written to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ContentMode {
    /// Attributes in percent-encoded `ce-<attr>` headers, the data as the payload.
    #[default]
    Binary,
    /// The whole event as a JSON event format document in the payload (eventing-natss's way).
    Structured,
}

/// A message to publish: headers in the order to write them, and the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutMessage {
    /// Header names and (already encoded) values.
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub payload: Bytes,
}

/// Why a message could not be read as a CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Headers, but neither a structured `Content-Type` nor `ce-specversion`.
    #[error("the message is not a CloudEvent")]
    NotCloudEvent,
    /// It claims to be a CloudEvent but is not a valid one; the message says why.
    #[error("invalid CloudEvent in the message: {0}")]
    Invalid(String),
}

/// Whether a header travels with the event (see the module documentation).
pub fn is_transport_header(name: &str) -> bool {
    ["traceparent", "tracestate", "x-request-id", "retry-after"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        || starts_with_ignore_case(name, "knative-")
        || starts_with_ignore_case(name, "x-b3-")
}

/// Encode `event` in `mode` (see the module documentation). Not validated here.
pub fn encode(event: &Event, mode: ContentMode) -> OutMessage {
    let mut headers = Vec::with_capacity(8 + event.extensions.len() + event.headers.len());
    let payload = match mode {
        ContentMode::Binary => {
            binary_headers(event, &mut headers);
            event
                .data
                .as_ref()
                .map(|d| d.bytes.clone())
                .unwrap_or_default()
        }
        ContentMode::Structured => {
            headers.push((
                CONTENT_TYPE.to_string(),
                STRUCTURED_CONTENT_TYPE.to_string(),
            ));
            Bytes::from(event.to_json())
        }
    };
    for (name, value) in &event.headers {
        if is_transport_header(name) && value.bytes().all(|b| b != b'\r' && b != b'\n') {
            headers.push((name.to_ascii_lowercase(), value.clone()));
        }
    }
    OutMessage { headers, payload }
}

fn binary_headers(event: &Event, headers: &mut Vec<(String, String)>) {
    let mut put = |name: &str, value: &str| {
        headers.push((format!("{CE_PREFIX}{name}"), percent_encode(value)));
    };
    event.for_each_binary_attribute(&mut put);
    if let Some(v) = &event.datacontenttype {
        put("datacontenttype", v);
    }
}

/// Decode a message (`headers` in message order, names as received) in either mode; see the
/// module documentation. The event is validated.
pub fn decode(headers: &[(&str, &str)], payload: &[u8]) -> Result<Event, DecodeError> {
    let content_type = last_header(headers, CONTENT_TYPE);
    if let Some(ct) = content_type
        && starts_with_ignore_case(ct.trim_start(), CLOUDEVENTS_MEDIA_PREFIX)
    {
        return decode_structured(headers, ct, payload);
    }
    let binary = headers
        .iter()
        .any(|(n, _)| ce_attribute(n).is_some_and(|a| a.eq_ignore_ascii_case("specversion")));
    if binary {
        return decode_binary(headers, payload);
    }
    if headers.is_empty() {
        return decode_structured(headers, JSON_FORMAT, payload);
    }
    Err(DecodeError::NotCloudEvent)
}

fn decode_structured(
    headers: &[(&str, &str)],
    content_type: &str,
    payload: &[u8],
) -> Result<Event, DecodeError> {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type != JSON_FORMAT {
        return Err(DecodeError::Invalid(format!(
            "unsupported event format {media_type:?}: only {JSON_FORMAT} is read"
        )));
    }
    let mut event = Event::from_json(payload).map_err(|e| DecodeError::Invalid(e.0))?;
    event.headers = transport_headers(headers);
    Ok(event)
}

fn decode_binary(headers: &[(&str, &str)], payload: &[u8]) -> Result<Event, DecodeError> {
    let mut event = Event::new("", "", "");
    let mut specversion = None;
    let mut content_type = None;
    let mut ce_content_type = None;
    for &(name, raw) in headers {
        if name.eq_ignore_ascii_case(CONTENT_TYPE) {
            content_type = Some(raw.to_string());
            continue;
        }
        if is_transport_header(name) {
            set_header(&mut event.headers, name, raw);
            continue;
        }
        let Some(attr) = ce_attribute(name) else {
            continue;
        };
        let attr = attr.to_ascii_lowercase();
        let value = header_value(raw)
            .map_err(|why| DecodeError::Invalid(format!("header {name}: {why}")))?;
        match attr.as_str() {
            "specversion" => specversion = Some(value),
            "id" => event.id = value,
            "source" => event.source = value,
            "type" => event.ty = value,
            "datacontenttype" => ce_content_type = Some(value),
            "dataschema" | "schemaurl" => event.dataschema = Some(value),
            "subject" => event.subject = Some(value),
            "time" => event.time = Some(value),
            _ => event.set_extension(&attr, ExtValue::String(value)),
        }
    }
    let specversion = specversion.unwrap_or_default();
    event.spec_version = SpecVersion::parse(&specversion).ok_or_else(|| {
        DecodeError::Invalid(format!(
            "unsupported specversion {specversion:?} (use 1.0 or 0.3)"
        ))
    })?;
    event.datacontenttype = ce_content_type.or(content_type.filter(|ct| !ct.trim().is_empty()));
    if !payload.is_empty() {
        event.set_data_from_body(Bytes::copy_from_slice(payload));
    }
    event.validate().map_err(|e| DecodeError::Invalid(e.0))?;
    Ok(event)
}

/// The `Nats-Msg-Id` of `event`: 32 hex digits hashing its `source` and `id` (see the module
/// documentation).
pub fn message_id(event: &Event) -> String {
    let a = fnv1a(&[event.source.as_bytes(), b"\0", event.id.as_bytes()]);
    let b = fnv1a(&[event.id.as_bytes(), b"\0", event.source.as_bytes()]);
    format!("{a:016x}{b:016x}")
}

/// 64-bit FNV-1a over the concatenation of `parts` (stable across builds and platforms).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Percent-encode a header value: space, `"`, `%` and bytes outside `0x21..=0x7E`.
pub fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Why a header value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderValueError {
    /// A quoted string whose last character is an escaping backslash.
    #[error("a quoted string ends in a backslash")]
    TrailingBackslash,
    /// A `"` inside a quoted string that no backslash escapes.
    #[error("an unescaped quote inside a quoted string")]
    UnescapedQuote,
    /// A `%` not followed by two hex digits.
    #[error(transparent)]
    MalformedEscape(#[from] MalformedEscape),
    /// The decoded bytes are not (or overlong) UTF-8.
    #[error("the value is not valid UTF-8")]
    NotUtf8,
}

/// Read a header value: un-quote an RFC 7230 quoted string, then percent-decode once; the
/// result must be valid UTF-8.
pub fn header_value(raw: &str) -> Result<String, HeaderValueError> {
    let unquoted = unquote(raw.trim())?;
    let bytes = percent_decode(&unquoted)?;
    String::from_utf8(bytes).map_err(|_| HeaderValueError::NotUtf8)
}

/// The content of an RFC 7230 quoted string (`"..."` with `\`-escapes), or the text as is.
fn unquote(s: &str) -> Result<Cow<'_, str>, HeaderValueError> {
    let Some(inner) = s
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|_| s.len() >= 2)
    else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or(HeaderValueError::TrailingBackslash)?),
            '"' => return Err(HeaderValueError::UnescapedQuote),
            c => out.push(c),
        }
    }
    Ok(Cow::Owned(out))
}

fn last_header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

fn ce_attribute(name: &str) -> Option<&str> {
    if !starts_with_ignore_case(name, CE_PREFIX) {
        return None;
    }
    name.get(CE_PREFIX.len()..).filter(|a| !a.is_empty())
}

fn transport_headers(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for &(name, value) in headers {
        if is_transport_header(name) {
            set_header(&mut out, name, value);
        }
    }
    out
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    let name = name.to_ascii_lowercase();
    match headers.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => *v = value.to_string(),
        None => headers.push((name, value.to_string())),
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
#[path = "binding_tests.rs"]
mod tests;
