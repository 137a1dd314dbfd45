//! An event's attributes as protocol headers, shared by the bindings that carry them that way
//! (HTTP in `knit-dispatcher`, Kafka and NATS here): the one walk over the attributes binary
//! content mode writes, and the percent-encoding the HTTP and NATS bindings use for values.
//! Which prefix, which escaping and where `datacontenttype` goes stay with each binding.

use std::borrow::Cow;

use super::{Event, ExtValue, SpecVersion, is_context_attribute};

impl Event {
    /// Call `put(name, value)` for every attribute binary content mode writes as a header but
    /// `datacontenttype` (each binding places that one its own way): `specversion`, `id`,
    /// `source`, `type`, `dataschema` (`schemaurl` in 0.3), `subject`, `time`, then the
    /// extensions in order (typed ones as text; one named like a context attribute is skipped).
    pub fn for_each_binary_attribute(&self, mut put: impl FnMut(&str, &str)) {
        put("specversion", self.spec_version.as_str());
        put("id", &self.id);
        put("source", &self.source);
        put("type", &self.ty);
        if let Some(v) = &self.dataschema {
            let name = match self.spec_version {
                SpecVersion::V03 => "schemaurl",
                SpecVersion::V10 => "dataschema",
            };
            put(name, v);
        }
        if let Some(v) = &self.subject {
            put("subject", v);
        }
        if let Some(v) = &self.time {
            put("time", v);
        }
        for (name, value) in &self.extensions {
            if is_context_attribute(name) {
                continue;
            }
            let text = match value {
                ExtValue::String(s) => Cow::Borrowed(s.as_str()),
                other => Cow::Owned(other.to_string()),
            };
            put(name, &text);
        }
    }
}

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a malformed percent escape at byte {at}")]
pub struct MalformedEscape {
    /// Where the `%` is, in bytes from the start.
    pub at: usize,
}

/// Percent-decode `s` once (`%XX`, either case of hex). The bytes may not be UTF-8: the caller
/// decides what that means.
pub fn percent_decode(s: &str) -> Result<Vec<u8>, MalformedEscape> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digit = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
            let (Some(high), Some(low)) = (digit(i + 1), digit(i + 2)) else {
                return Err(MalformedEscape { at: i });
            };
            out.push(u8::try_from(high * 16 + low).map_err(|_| MalformedEscape { at: i })?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_attributes_in_order() {
        let mut ev = Event::new("1", "/s", "t");
        ev.spec_version = SpecVersion::V03;
        ev.dataschema = Some("http://schema".into());
        ev.time = Some("2026-12-07T00:00:00Z".into());
        ev.set_extension("count", ExtValue::Integer(3));
        ev.datacontenttype = Some("text/plain".into());
        let mut seen = Vec::new();
        ev.for_each_binary_attribute(|n, v| seen.push(format!("{n}={v}")));
        assert_eq!(
            seen,
            [
                "specversion=0.3",
                "id=1",
                "source=/s",
                "type=t",
                "schemaurl=http://schema",
                "time=2026-12-07T00:00:00Z",
                "count=3"
            ]
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%e2%82%AC").as_deref(), Ok("a b€".as_bytes()));
        assert_eq!(percent_decode("%4"), Err(MalformedEscape { at: 0 }));
        assert_eq!(percent_decode("ab%zz"), Err(MalformedEscape { at: 2 }));
        assert_eq!(percent_decode("%+1"), Err(MalformedEscape { at: 0 }));
    }
}
