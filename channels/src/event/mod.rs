//! The CloudEvent as Knit stores and forwards it.
//!
//! Knit keeps `data` as the bytes it received (a JSON text, a UTF-8 text, or opaque bytes), so
//! an event passes through brokers and channels byte-for-byte (eventing-spec E18) without being
//! parsed and re-serialized; cloudevents-sdk's `Event` re-encodes JSON data, which is why it is
//! not used on the data path. Attribute values are kept as text as received.

use std::fmt;

use bytes::Bytes;
use serde_json::value::RawValue;

/// CloudEvents spec versions Knit accepts (and forwards unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecVersion {
    /// 0.3
    V03,
    /// 1.0
    V10,
}

impl SpecVersion {
    /// Parse `specversion`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1.0" => Some(SpecVersion::V10),
            "0.3" => Some(SpecVersion::V03),
            _ => None,
        }
    }

    /// As written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V03 => "0.3",
            SpecVersion::V10 => "1.0",
        }
    }
}

/// The value of an extension attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtValue {
    /// String (and URI, timestamp, binary as text).
    String(String),
    /// Integer.
    Integer(i64),
    /// Boolean.
    Boolean(bool),
}

impl fmt::Display for ExtValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtValue::String(s) => f.write_str(s),
            ExtValue::Integer(i) => write!(f, "{i}"),
            ExtValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// How an event's data bytes are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// A JSON text (written as the `data` member in structured mode).
    Json,
    /// UTF-8 text of a non-JSON media type (written as a JSON string).
    Text,
    /// Opaque bytes (written as `data_base64`).
    Binary,
}

/// An event's data: the bytes as received and how to read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    /// The bytes.
    pub bytes: Bytes,
    /// How to read them.
    pub kind: DataKind,
}

/// A CloudEvent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `specversion`.
    pub spec_version: SpecVersion,
    /// `id`.
    pub id: String,
    /// `source`.
    pub source: String,
    /// `type`.
    pub ty: String,
    /// `datacontenttype`.
    pub datacontenttype: Option<String>,
    /// `dataschema` (`schemaurl` in 0.3).
    pub dataschema: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `time`, as received (RFC 3339).
    pub time: Option<String>,
    /// Extension attributes in the order received.
    pub extensions: Vec<(String, ExtValue)>,
    /// `data`.
    pub data: Option<Data>,
    /// Transport headers that travel with the event (`x-request-id`, `knative-*`, `x-b3-*`,
    /// `traceparent`, `tracestate`), lower-case names.
    pub headers: Vec<(String, String)>,
}

/// Why an event is invalid; the message names the attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

fn err(msg: impl Into<String>) -> EventError {
    EventError(msg.into())
}

/// Whether a media type carries JSON (`application/json`, `text/json`, `*/*+json`).
pub fn is_json_media_type(ct: &str) -> bool {
    let mt = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mt == "application/json" || mt == "text/json" || mt.ends_with("+json")
}

fn is_text_media_type(ct: &str) -> bool {
    let mt = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mt.starts_with("text/") || mt == "application/xml" || mt.ends_with("+xml")
}

/// The names of context attributes (not extensions), per spec version.
pub fn is_context_attribute(name: &str) -> bool {
    matches!(
        name,
        "specversion"
            | "id"
            | "source"
            | "type"
            | "datacontenttype"
            | "dataschema"
            | "subject"
            | "time"
            | "schemaurl"
            | "datacontentencoding"
    )
}

fn check_timestamp(name: &str, value: &str) -> Result<(), EventError> {
    if rules::is_rfc3339(value) && value.parse::<jiff::Timestamp>().is_ok() {
        Ok(())
    } else {
        Err(err(format!(
            "invalid attribute {name}: {value:?} is not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.frac] with Z or an offset)"
        )))
    }
}

fn check_datacontenttype(ct: &str) -> Result<(), EventError> {
    if ct.is_empty() {
        return Err(err("invalid attribute datacontenttype: must not be empty"));
    }
    if !rules::is_media_type(ct) {
        return Err(err(format!(
            "invalid attribute datacontenttype: {ct:?} is not a media type (RFC 2046)"
        )));
    }
    Ok(())
}

/// An extension's name (lower-case letters and digits), and its value: not empty, a timestamp
/// where the extension is one, a 32-bit integer.
fn check_extension(name: &str, value: &ExtValue) -> Result<(), EventError> {
    if !valid_attribute_name(name) {
        return Err(err(format!(
            "invalid attribute name {name:?}: must be 1 to {} lower-case letters and digits",
            rules::MAX_ATTRIBUTE_NAME
        )));
    }
    match value {
        ExtValue::String(s) if s.is_empty() => {
            Err(err(format!("invalid attribute {name}: must not be empty")))
        }
        ExtValue::String(s) if rules::TIMESTAMP_EXTENSIONS.contains(&name) => {
            check_timestamp(name, s)
        }
        ExtValue::Integer(i) if i32::try_from(*i).is_err() => Err(err(format!(
            "invalid attribute {name}: {i} is outside the 32-bit integer range"
        ))),
        _ => Ok(()),
    }
}

impl Event {
    /// A new 1.0 event with the required attributes.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Event {
            spec_version: SpecVersion::V10,
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: Vec::new(),
            data: None,
            headers: Vec::new(),
        }
    }

    /// An extension's value.
    pub fn extension(&self, name: &str) -> Option<&ExtValue> {
        self.extensions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Set (replace or add) an extension.
    pub fn set_extension(&mut self, name: &str, value: ExtValue) {
        match self.extensions.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.extensions.push((name.to_string(), value)),
        }
    }

    /// Remove an extension, returning it.
    pub fn remove_extension(&mut self, name: &str) -> Option<ExtValue> {
        let i = self.extensions.iter().position(|(k, _)| k == name)?;
        Some(self.extensions.remove(i).1)
    }

    /// Any attribute (context or extension) as text, as filters see it.
    pub fn attribute(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match name {
            "specversion" => Some(Cow::Borrowed(self.spec_version.as_str())),
            "id" => Some(Cow::Borrowed(&self.id)),
            "source" => Some(Cow::Borrowed(&self.source)),
            "type" => Some(Cow::Borrowed(&self.ty)),
            "datacontenttype" => self.datacontenttype.as_deref().map(Cow::Borrowed),
            "dataschema" | "schemaurl" => self.dataschema.as_deref().map(Cow::Borrowed),
            "subject" => self.subject.as_deref().map(Cow::Borrowed),
            "time" => self.time.as_deref().map(Cow::Borrowed),
            _ => self.extension(name).map(|v| match v {
                ExtValue::String(s) => Cow::Borrowed(s.as_str()),
                other => Cow::Owned(other.to_string()),
            }),
        }
    }

    /// Set data from a body received with media type `content_type`.
    pub fn set_data_from_body(&mut self, body: Bytes) {
        if body.is_empty() {
            self.data = None;
            return;
        }
        let ct = self.datacontenttype.as_deref().unwrap_or("");
        let kind = if is_json_media_type(ct) && serde_json::from_slice::<&RawValue>(&body).is_ok() {
            DataKind::Json
        } else if (ct.is_empty() || is_text_media_type(ct)) && std::str::from_utf8(&body).is_ok() {
            DataKind::Text
        } else {
            DataKind::Binary
        };
        self.data = Some(Data { bytes: body, kind });
    }

    /// Check the attributes every event must have, naming the first problem.
    pub fn validate(&self) -> Result<(), EventError> {
        self.check_required()?;
        if let Some(t) = &self.time {
            check_timestamp("time", t)?;
        }
        if let Some(ct) = &self.datacontenttype {
            check_datacontenttype(ct)?;
        }
        if let Some(ds) = &self.dataschema {
            self.check_dataschema(ds)?;
        }
        if self.subject.as_deref() == Some("") {
            return Err(err("invalid attribute subject: must not be empty"));
        }
        self.check_extensions()
    }

    /// `id`, `source` (a URI-reference) and `type` are present.
    fn check_required(&self) -> Result<(), EventError> {
        if self.id.is_empty() {
            return Err(err("missing required attribute: id"));
        }
        if self.source.is_empty() {
            return Err(err("missing required attribute: source"));
        }
        if !rules::is_uri_reference(&self.source) {
            return Err(err(format!(
                "invalid attribute source: {:?} is not a URI-reference (RFC 3986)",
                self.source
            )));
        }
        if self.ty.is_empty() {
            return Err(err("missing required attribute: type"));
        }
        Ok(())
    }

    /// `dataschema` (1.0: an absolute URI) or `schemaurl` (0.3: a URI-reference).
    fn check_dataschema(&self, ds: &str) -> Result<(), EventError> {
        let name = match self.spec_version {
            SpecVersion::V03 => "schemaurl",
            SpecVersion::V10 => "dataschema",
        };
        if ds.is_empty() {
            return Err(err(format!("invalid attribute {name}: must not be empty")));
        }
        // 1.0 types `dataschema` as an absolute URI; 0.3's `schemaurl` was a URI-reference.
        let ok = match self.spec_version {
            SpecVersion::V03 => rules::is_uri_reference(ds),
            SpecVersion::V10 => rules::is_uri(ds),
        };
        if !ok {
            return Err(err(format!(
                "invalid attribute {name}: {ds:?} is not {} (RFC 3986)",
                if self.spec_version == SpecVersion::V03 {
                    "a URI-reference"
                } else {
                    "an absolute URI"
                }
            )));
        }
        Ok(())
    }

    /// At most [`rules::MAX_EXTENSIONS`] extensions, each with a valid name and value.
    fn check_extensions(&self) -> Result<(), EventError> {
        if self.extensions.len() > rules::MAX_EXTENSIONS {
            return Err(err(format!(
                "too many extension attributes: {} (at most {})",
                self.extensions.len(),
                rules::MAX_EXTENSIONS
            )));
        }
        self.extensions
            .iter()
            .try_for_each(|(name, value)| check_extension(name, value))
    }

    /// Approximate size in memory, for bounding logs by bytes.
    pub fn size(&self) -> usize {
        self.id.len()
            + self.source.len()
            + self.ty.len()
            + self
                .extensions
                .iter()
                .map(|(k, _)| k.len() + 16)
                .sum::<usize>()
            + self.data.as_ref().map_or(0, |d| d.bytes.len())
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 128
    }
}

mod headers;
mod json;
pub mod rules;

pub use headers::{MalformedEscape, percent_decode};
pub use json::json_string;
pub use rules::valid_attribute_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_round_trip_keeps_data_bytes() {
        let input = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","myext":"v","num":5,"flag":true,"data":{"b": 1,  "a":[1,2]}}"#;
        let ev = Event::from_json(input).expect("valid");
        assert_eq!(
            ev.data.as_ref().map(|d| &d.bytes[..]),
            Some(&br#"{"b": 1,  "a":[1,2]}"#[..])
        );
        assert_eq!(ev.extension("num"), Some(&ExtValue::Integer(5)));
        let again = Event::from_json(&ev.to_json()).expect("valid");
        assert_eq!(again, ev);
    }

    #[test]
    fn text_and_base64_data() {
        let ev = Event::from_json(br#"{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"hi \"there\""}"#).expect("valid");
        assert_eq!(ev.data.as_ref().map(|d| d.kind), Some(DataKind::Text));
        assert_eq!(
            ev.data.as_ref().map(|d| &d.bytes[..]),
            Some(&b"hi \"there\""[..])
        );
        let ev = Event::from_json(
            br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AAEC"}"#,
        )
        .expect("valid");
        assert_eq!(
            ev.data.as_ref().map(|d| &d.bytes[..]),
            Some(&[0u8, 1, 2][..])
        );
        assert_eq!(Event::from_json(&ev.to_json()).expect("valid"), ev);
    }

    #[test]
    fn missing_attributes_are_named() {
        let e = Event::from_json(br#"{"specversion":"1.0","source":"s","type":"t"}"#).unwrap_err();
        assert!(e.0.contains("id"), "{e}");
        let e = Event::from_json(br#"{"specversion":"9.9","id":"1","source":"s","type":"t"}"#)
            .unwrap_err();
        assert!(e.0.contains("specversion"), "{e}");
        let e = Event::from_json(br#"{"id":"1","source":"s","type":"t"}"#).unwrap_err();
        assert!(e.0.contains("specversion"), "{e}");
    }

    #[test]
    fn v03_base64_encoding() {
        let ev = Event::from_json(br#"{"specversion":"0.3","id":"1","source":"s","type":"t","datacontentencoding":"base64","data":"AAEC"}"#).expect("valid");
        assert_eq!(ev.spec_version, SpecVersion::V03);
        assert_eq!(
            ev.data.as_ref().map(|d| &d.bytes[..]),
            Some(&[0u8, 1, 2][..])
        );
        assert_eq!(Event::from_json(&ev.to_json()).expect("valid"), ev);
    }

    #[test]
    fn garbage_does_not_panic() {
        for input in [
            &b""[..],
            b"[]",
            b"null",
            b"{",
            b"{\"data\":}",
            b"\xff\xfe",
            b"{\"specversion\":1}",
        ] {
            assert!(Event::from_json(input).is_err());
        }
    }
}
