//! The JSON event format (structured mode), written for byte-exact pass-through: `data` is
//! kept as the raw JSON text it arrived as.

use std::fmt;

use base64::Engine;
use bytes::Bytes;
use serde_json::value::RawValue;

use super::{Data, DataKind, Event, EventError, ExtValue, SpecVersion, is_json_media_type};

fn err(msg: impl Into<String>) -> EventError {
    EventError(msg.into())
}

/// An extension attribute's value: a string, an integer or a boolean (`None`: null, as if
/// absent).
fn extension_value(name: &str, raw: &RawValue) -> Result<Option<ExtValue>, EventError> {
    let v: serde_json::Value = serde_json::from_str(raw.get())
        .map_err(|e| err(format!("invalid attribute {name}: {e}")))?;
    let value = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) => ExtValue::String(s),
        serde_json::Value::Bool(b) => ExtValue::Boolean(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ExtValue::Integer(i),
            None => {
                return Err(err(format!(
                    "invalid attribute {name}: {n} is not an integer (CloudEvents numbers are 32-bit integers)"
                )));
            }
        },
        _ => {
            return Err(err(format!(
                "invalid attribute {name}: extension values must be strings, integers or booleans"
            )));
        }
    };
    Ok(Some(value))
}

/// The event's data from `data` (its JSON text kept as is; a string of a non-JSON media type
/// `ct` taken as text; a base64 string with 0.3's `datacontentencoding: base64`) or
/// `data_base64`.
fn data_of(
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
    encoding_base64: bool,
    ct: &str,
) -> Result<Option<Data>, EventError> {
    match (data, data_base64) {
        (Some(_), Some(_)) => Err(err("data and data_base64 are both set")),
        (None, Some(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| err(format!("invalid data_base64: {e}")))?;
            Ok(Some(Data {
                bytes: bytes.into(),
                kind: DataKind::Binary,
            }))
        }
        (Some(raw), None) if raw.get() == "null" => Ok(None),
        (Some(raw), None) => {
            let text = raw.get();
            if encoding_base64 {
                // CloudEvents 0.3: `datacontentencoding: base64` with `data` a base64 string.
                let s: String = serde_json::from_str(text)
                    .map_err(|_| err("invalid data: expected a base64 string"))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|e| err(format!("invalid data: {e}")))?;
                Ok(Some(Data {
                    bytes: bytes.into(),
                    kind: DataKind::Binary,
                }))
            } else if !is_json_media_type(ct) && text.starts_with('"') {
                let s: String =
                    serde_json::from_str(text).map_err(|e| err(format!("invalid data: {e}")))?;
                Ok(Some(Data {
                    bytes: s.into_bytes().into(),
                    kind: DataKind::Text,
                }))
            } else {
                Ok(Some(Data {
                    bytes: Bytes::copy_from_slice(text.as_bytes()),
                    kind: DataKind::Json,
                }))
            }
        }
        (None, None) => Ok(None),
    }
}

impl Event {
    /// Decode the JSON event format (structured mode).
    pub fn from_json(bytes: &[u8]) -> Result<Event, EventError> {
        match serde_json::from_slice::<RawMap>(bytes) {
            Ok(RawMap(entries)) => Self::from_raw(entries),
            Err(e) => Err(err(format!("invalid JSON event: {e}"))),
        }
    }

    fn from_raw(entries: Vec<(String, Box<RawValue>)>) -> Result<Event, EventError> {
        let mut ev = Event::new("", "", "");
        let mut specversion = None;
        let mut data: Option<Box<RawValue>> = None;
        let mut data_base64: Option<String> = None;
        let mut encoding_base64 = false;
        let string = |name: &str, raw: &RawValue| -> Result<Option<String>, EventError> {
            if raw.get() == "null" {
                return Ok(None);
            }
            serde_json::from_str::<String>(raw.get())
                .map(Some)
                .map_err(|_| err(format!("invalid attribute {name}: must be a string")))
        };
        for (name, raw) in entries {
            match name.as_str() {
                "specversion" => specversion = string(&name, &raw)?,
                "id" => ev.id = string(&name, &raw)?.unwrap_or_default(),
                "source" => ev.source = string(&name, &raw)?.unwrap_or_default(),
                "type" => ev.ty = string(&name, &raw)?.unwrap_or_default(),
                "datacontenttype" => ev.datacontenttype = string(&name, &raw)?,
                "dataschema" | "schemaurl" => ev.dataschema = string(&name, &raw)?,
                "subject" => ev.subject = string(&name, &raw)?,
                "time" => ev.time = string(&name, &raw)?,
                "data" => data = Some(raw),
                "data_base64" => data_base64 = string(&name, &raw)?,
                "datacontentencoding" => {
                    encoding_base64 =
                        string(&name, &raw)?.is_some_and(|e| e.eq_ignore_ascii_case("base64"))
                }
                _ => {
                    if let Some(value) = extension_value(&name, &raw)? {
                        ev.extensions.push((name, value));
                    }
                }
            }
        }
        let Some(sv) = specversion else {
            return Err(err("missing required attribute: specversion"));
        };
        ev.spec_version = SpecVersion::parse(&sv)
            .ok_or_else(|| err(format!("unsupported specversion {sv:?} (use 1.0 or 0.3)")))?;
        let ct = ev.datacontenttype.as_deref().unwrap_or("application/json");
        ev.data = data_of(data, data_base64, encoding_base64, ct)?;
        ev.validate()?;
        Ok(ev)
    }

    /// Encode in the JSON event format (structured mode).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(256 + self.data.as_ref().map_or(0, |d| d.bytes.len() * 4 / 3));
        out.push(b'{');
        let field = |out: &mut Vec<u8>, name: &str, value: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            json_string(out, name);
            out.push(b':');
            json_string(out, value);
        };
        field(&mut out, "specversion", self.spec_version.as_str());
        field(&mut out, "id", &self.id);
        field(&mut out, "source", &self.source);
        field(&mut out, "type", &self.ty);
        if let Some(v) = &self.datacontenttype {
            field(&mut out, "datacontenttype", v);
        }
        if let Some(v) = &self.dataschema {
            let name = if self.spec_version == SpecVersion::V03 {
                "schemaurl"
            } else {
                "dataschema"
            };
            field(&mut out, name, v);
        }
        if let Some(v) = &self.subject {
            field(&mut out, "subject", v);
        }
        if let Some(v) = &self.time {
            field(&mut out, "time", v);
        }
        for (name, value) in &self.extensions {
            match value {
                ExtValue::String(s) => field(&mut out, name, s),
                other => {
                    out.push(b',');
                    json_string(&mut out, name);
                    out.push(b':');
                    out.extend_from_slice(other.to_string().as_bytes());
                }
            }
        }
        if let Some(d) = &self.data {
            out.push(b',');
            match d.kind {
                DataKind::Json => {
                    json_string(&mut out, "data");
                    out.push(b':');
                    out.extend_from_slice(&d.bytes);
                }
                DataKind::Text => {
                    json_string(&mut out, "data");
                    out.push(b':');
                    json_string(&mut out, &String::from_utf8_lossy(&d.bytes));
                }
                DataKind::Binary => {
                    if self.spec_version == SpecVersion::V03 {
                        json_string(&mut out, "datacontentencoding");
                        out.extend_from_slice(b":\"base64\",");
                        json_string(&mut out, "data");
                    } else {
                        json_string(&mut out, "data_base64");
                    }
                    out.push(b':');
                    json_string(
                        &mut out,
                        &base64::engine::general_purpose::STANDARD.encode(&d.bytes),
                    );
                }
            }
        }
        out.push(b'}');
        out
    }
}

/// Keeps the members of a JSON object in order, values unparsed.
struct RawMap(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for RawMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    if out
                        .iter()
                        .any(|(name, _): &(String, Box<RawValue>)| *name == k)
                    {
                        return Err(serde::de::Error::custom(format!("duplicate member {k:?}")));
                    }
                    out.push((k, v));
                }
                Ok(RawMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Append `s` as a JSON string literal.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
