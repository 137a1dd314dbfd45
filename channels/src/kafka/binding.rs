//! The CloudEvents Kafka protocol binding: how an [`Event`] becomes a Kafka record and back
//! (binary and structured content mode, the record key), and the event Knative makes of a
//! record that is not a CloudEvent ([`wrap_foreign`]). Pure functions over plain Rust types:
//! no Kafka client here, so all of it is testable without a broker.
//!
//! # What this follows, and where it was checked
//!
//! Spec: `cloudevents/spec` `cloudevents/bindings/kafka-protocol-binding.md` (as summarized in
//! `/work/shared/reference/kafka-nats.md` §1.1). Implementations read:
//! `knative-extensions/eventing-kafka-broker` @7d8fe89 (EKB below; `DISP` =
//! `data-plane/dispatcher/src/main/java/dev/knative/eventing/kafka/broker/dispatcher/`) and the
//! CloudEvents Java SDK `cloudevents/sdk-java` @ecde1d4 (the binding EKB runs on).
//!
//! - Binary mode: every attribute except `datacontenttype` is a header `ce_<name>` with the value
//!   as UTF-8 bytes; `datacontenttype` is the `content-type` header; the value is the data
//!   (`sdk-java: kafka/src/main/java/io/cloudevents/kafka/impl/KafkaHeaders.java`,
//!   `.../impl/BaseKafkaMessageWriterImpl.java`). On reading, the name after `ce_` is
//!   lower-cased, a bare `ce_` header is ignored, and values are decoded as UTF-8 with
//!   replacement characters for invalid bytes (Java `new String(bytes, UTF_8)`)
//!   (`.../impl/KafkaBinaryMessageReaderImpl.java`). An empty value means no data (same file).
//! - Mode detection: structured when `content-type` names a CloudEvents format, else binary
//!   when `ce_specversion` is present, else not an event; a `content-type` that starts with
//!   `application/cloudevents` but names an unknown format is an error, not binary
//!   (`sdk-java: core/src/main/java/io/cloudevents/core/message/impl/MessageUtils.java`
//!   `parseStructuredOrBinaryMessage`). Knit matches the prefix case-insensitively, as the spec
//!   says (the SDK is case-sensitive).
//! - Duplicate headers: **last wins**. `content-type` and `ce_specversion` are read with Kafka's
//!   `Headers.lastHeader` (`KafkaHeaders.java` `getParsedKafkaHeader`), and every other `ce_`
//!   header is applied in order onto an event builder, so a later one overwrites an earlier one
//!   (`sdk-java: core/.../message/impl/BaseGenericBinaryMessageReaderImpl.java`). Knit applies
//!   the same rule to the transport headers it restores.
//! - Structured mode: the value is the JSON event format and `content-type` is the format's media
//!   type (`BaseKafkaMessageWriterImpl.java` `setEvent`); Knit writes
//!   `application/cloudevents+json; charset=UTF-8`, the spec's example.
//! - Key: EKB's receiver and the dispatcher's reply producer register the SDK's
//!   `PartitionKeyExtensionInterceptor`, which makes the `partitionkey` extension the record key
//!   and leaves the extension on the event; without it there is no key
//!   (`sdk-java: kafka/src/main/java/io/cloudevents/kafka/PartitionKeyExtensionInterceptor.java`,
//!   EKB `DISP/main/Main.java`). A present but empty `partitionkey` becomes an empty (not null)
//!   key there too.
//! - Trace context: EKB's producer tracer writes the trace headers (`traceparent`, ...) as record
//!   headers under their own names and the consumer tracer reads them back
//!   (EKB `data-plane/core/src/main/java/dev/knative/eventing/kafka/broker/core/observability/tracing/kafka/ProducerTracer.java`,
//!   `ConsumerTracer.java`). Knit carries all its transport headers that way
//!   ([`is_transport_header`]); `retry-after` is among them because the HTTP path propagates it
//!   (eventing-spec E19; `dispatcher/src/binding.rs` `is_propagated_header`), so a Kafka-backed
//!   channel behaves as the in-memory one does.
//! - Foreign records ([`wrap_foreign`]), from EKB
//!   `DISP/impl/consumer/InvalidCloudEventInterceptor.java` (used by the KafkaSource; enabled by
//!   `cloudevent.invalid.transformer.enabled=true` and `cloudevent.invalid.kind.plural=kafkasources`
//!   in `data-plane/config/source/100-config-kafka-source-data-plane.yaml`):
//!   - type `dev.knative.kafka.event`; id `partition:<p>/offset:<o>`; subject
//!     `partition:<p>#<o>`; source `/apis/v1/namespaces/<ns>/<kindPlural>/<name>#<topic>`
//!     (built by the caller here); time = the record timestamp in UTC.
//!   - The key becomes **both** `partitionkey` and `key` extensions. Keys are read with EKB's
//!     `DISP/impl/consumer/KeyDeserializer.java`: an empty key counts as no key, and the default
//!     key type is a UTF-8 string (the `int`/`float`/`byte-array` key types of the
//!     `kafkasources.sources.knative.dev/key-type` label are not implemented here).
//!   - Every header except `content-type` (matched case-insensitively) becomes the extension
//!     `kafkaheader<name>`, the name lower-cased with every character outside `[a-z0-9]` removed
//!     (`replaceBadChars`), the value decoded as UTF-8; a later header with the same cleaned name
//!     overwrites an earlier one.
//!   - The `content-type` header's value, **lower-cased**, becomes `datacontenttype`; with no such
//!     header `datacontenttype` stays unset. EKB does **not** sniff JSON (the long-gone
//!     eventing-contrib Go adapter dropped non-JSON values and always set `application/json`;
//!     that behaviour is not followed). The data is the value's bytes as they are.
//!   - Any record the SDK fails to read is wrapped, including one with `ce_` headers that are
//!     invalid (`DISP/impl/consumer/CloudEventDeserializer.java` catches every error); whether to
//!     wrap a [`DecodeError::Invalid`] record is the caller's choice.
//!
//! Knit's own deviations: headers starting with `knit-` (Knit's bookkeeping) are skipped when
//! decoding and wrapping; a blank `content-type` counts as absent (an empty `datacontenttype`
//! would make the event invalid); `ce_datacontentencoding` (0.3) is ignored in binary mode, the
//! value being the raw data already. In binary mode a `datacontenttype` that itself names a
//! CloudEvents format (an event carried as data) is written as a `ce_datacontenttype` header, not
//! as `content-type`, which would make the record read as structured; the Java SDK's binary
//! reader maps `ce_datacontenttype` to `datacontenttype` as well, and `decode` reads it when there
//! is no `content-type` header.
//!
//! Binary mode carries every attribute as text, so a binary round trip turns integer and boolean
//! extensions into strings, and re-derives the data kind from `datacontenttype` as the HTTP path
//! does ([`Event::set_data_from_body`]); a structured round trip keeps both.

use bytes::Bytes;

use crate::event::{Event, ExtValue, SpecVersion, rules};

/// The `content-type` header Knit writes on structured-mode records.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// The type of the events made of records that are not CloudEvents ([`wrap_foreign`]).
pub const FOREIGN_EVENT_TYPE: &str = "dev.knative.kafka.event";

/// The prefix of binary-mode attribute headers.
const CE_PREFIX: &str = "ce_";
/// The header that carries `datacontenttype` (binary) or the event format (structured).
const CONTENT_TYPE: &str = "content-type";
/// The media type prefix shared by all CloudEvents event formats.
const CLOUDEVENTS_MEDIA_PREFIX: &str = "application/cloudevents";
/// The one event format Knit reads.
const JSON_FORMAT: &str = "application/cloudevents+json";
/// Headers of Knit's own bookkeeping: never part of the event.
const KNIT_PREFIX: &str = "knit-";
/// The extension-name prefix of a foreign record's headers.
const KAFKA_HEADER_EXTENSION_PREFIX: &str = "kafkaheader";

/// How an event is written to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentMode {
    /// Attributes in `ce_<attr>` headers, `content-type` from `datacontenttype`, the data as the
    /// value (Knative's default).
    #[default]
    Binary,
    /// The whole event as a JSON event format document in the value.
    Structured,
}

/// A record to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutRecord {
    /// The record key: the `partitionkey` extension, if the event has one.
    pub key: Option<Vec<u8>>,
    /// Record headers, in the order to write them.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The value; `None` (a null value) for a binary-mode event without data.
    pub value: Option<Vec<u8>>,
}

/// A consumed record, as borrowed from the client.
#[derive(Clone, Debug)]
pub struct InRecord<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp in milliseconds since the Unix epoch, when the record has one.
    pub timestamp_ms: Option<i64>,
    /// The key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The headers in record order. A header with a null value should be left out (the Java
    /// SDK's binary reader skips such headers).
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The value; `None` for a null value.
    pub value: Option<&'a [u8]>,
}

/// Why a record could not be read as a CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Neither a structured-mode `content-type` nor a `ce_specversion` header: a plain record
    /// (see [`wrap_foreign`]).
    #[error("the record is not a CloudEvent")]
    NotCloudEvent,
    /// The record claims to be a CloudEvent but is not a valid one; the message says why and
    /// names the attribute.
    #[error("invalid CloudEvent in the record: {0}")]
    Invalid(String),
}

/// Whether a header travels with the event as a transport header (record header ↔
/// [`Event::headers`]): `traceparent`, `tracestate`, `x-request-id`, `retry-after`, `knative-*`
/// and `x-b3-*`, names compared case-insensitively.
pub fn is_transport_header(name: &str) -> bool {
    ["traceparent", "tracestate", "x-request-id", "retry-after"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        || starts_with_ignore_case(name, "knative-")
        || starts_with_ignore_case(name, "x-b3-")
}

/// Encode `event` (binary: `ce_<attr>` headers + `content-type` header from datacontenttype +
/// value = data bytes, None when no data; structured: value = `event.to_json()`, header
/// `content-type: application/cloudevents+json; charset=UTF-8`). Key = the `partitionkey`
/// extension's value as bytes when present, else None. The event's transport `headers`
/// (traceparent, tracestate, x-request-id, knative-*, x-b3-*) are written as record headers
/// under their own (lower-case) names in both modes.
///
/// Headers in [`Event::headers`] that are not transport headers ([`is_transport_header`]) are
/// not written, so they cannot be mistaken for `content-type` or `ce_` headers. The event is not
/// validated here.
pub fn encode(event: &Event, mode: ContentMode) -> OutRecord {
    let mut headers = Vec::with_capacity(8 + event.extensions.len() + event.headers.len());
    let value = match mode {
        ContentMode::Binary => {
            binary_headers(event, &mut headers);
            event.data.as_ref().map(|d| d.bytes.to_vec())
        }
        ContentMode::Structured => {
            headers.push((
                CONTENT_TYPE.to_string(),
                STRUCTURED_CONTENT_TYPE.as_bytes().to_vec(),
            ));
            Some(event.to_json())
        }
    };
    for (name, value) in &event.headers {
        if is_transport_header(name) {
            headers.push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        }
    }
    OutRecord {
        key: event
            .extension("partitionkey")
            .map(|v| v.to_string().into_bytes()),
        headers,
        value,
    }
}

/// The binary-mode attribute headers of `event`.
fn binary_headers(event: &Event, headers: &mut Vec<(String, Vec<u8>)>) {
    let mut put = |name: &str, value: &str| {
        headers.push((format!("{CE_PREFIX}{name}"), value.as_bytes().to_vec()));
    };
    event.for_each_binary_attribute(&mut put);
    if let Some(ct) = &event.datacontenttype {
        // A `content-type` naming a CloudEvents format would make the record read as
        // structured; such a datacontenttype (an event carried as data) goes as a `ce_` header,
        // which the Java SDK and `decode` read as datacontenttype too.
        let name = if starts_with_ignore_case(ct.trim_start(), CLOUDEVENTS_MEDIA_PREFIX) {
            "ce_datacontenttype"
        } else {
            CONTENT_TYPE
        };
        headers.push((name.to_string(), ct.as_bytes().to_vec()));
    }
}

/// Decode a record in either mode (structured when the `content-type` header starts,
/// case-insensitively, with `application/cloudevents`; binary when `ce_specversion` is present).
/// Transport headers named as above are restored into `event.headers`; headers starting with
/// `knit-` are ignored (they are Knit's own bookkeeping). A record that is neither is
/// `Err(NotCloudEvent)`.
///
/// A structured record in a format other than `application/cloudevents+json` (Avro, a batch) is
/// `Invalid`, not binary. Of duplicate headers the last one wins. Attribute values that are not
/// UTF-8 are read with replacement characters, as Knative does; transport headers that are not
/// UTF-8 are dropped. The event is validated ([`Event::validate`]).
pub fn decode(record: &InRecord<'_>) -> Result<Event, DecodeError> {
    let content_type = last_header(record, CONTENT_TYPE).map(String::from_utf8_lossy);
    if let Some(ct) = &content_type
        && starts_with_ignore_case(ct.trim_start(), CLOUDEVENTS_MEDIA_PREFIX)
    {
        return decode_structured(record, ct);
    }
    let has_specversion = record.headers.iter().any(|(name, _)| {
        ce_attribute(name).is_some_and(|attr| attr.eq_ignore_ascii_case("specversion"))
    });
    if !has_specversion {
        return Err(DecodeError::NotCloudEvent);
    }
    decode_binary(record)
}

fn decode_structured(record: &InRecord<'_>, content_type: &str) -> Result<Event, DecodeError> {
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
    let Some(value) = record.value else {
        return Err(DecodeError::Invalid(
            "structured-mode record has no value".to_string(),
        ));
    };
    let mut event = Event::from_json(value).map_err(|e| DecodeError::Invalid(e.0))?;
    event.headers = transport_headers(record);
    Ok(event)
}

fn decode_binary(record: &InRecord<'_>) -> Result<Event, DecodeError> {
    let mut event = Event::new("", "", "");
    let mut specversion = None;
    let mut content_type = None;
    let mut ce_content_type = None;
    for &(name, value) in &record.headers {
        if starts_with_ignore_case(name, KNIT_PREFIX) {
            continue;
        }
        if name.eq_ignore_ascii_case(CONTENT_TYPE) {
            content_type = Some(text(value));
            continue;
        }
        if is_transport_header(name) {
            if let Ok(v) = std::str::from_utf8(value) {
                set_header(&mut event.headers, name, v);
            }
            continue;
        }
        let Some(attr) = ce_attribute(name) else {
            continue;
        };
        let attr = attr.to_ascii_lowercase();
        let value = text(value);
        match attr.as_str() {
            "specversion" => specversion = Some(value),
            "id" => event.id = value,
            "source" => event.source = value,
            "type" => event.ty = value,
            "datacontenttype" => ce_content_type = Some(value),
            "dataschema" | "schemaurl" => event.dataschema = Some(value),
            "subject" => event.subject = Some(value),
            "time" => event.time = Some(value),
            "datacontentencoding" => {}
            _ => event.set_extension(&attr, ExtValue::String(value)),
        }
    }
    let specversion = specversion.unwrap_or_default();
    event.spec_version = SpecVersion::parse(&specversion).ok_or_else(|| {
        DecodeError::Invalid(format!(
            "unsupported specversion {specversion:?} (use 1.0 or 0.3)"
        ))
    })?;
    event.datacontenttype = content_type
        .filter(|ct| !ct.trim().is_empty())
        .or(ce_content_type);
    if let Some(value) = record.value {
        event.set_data_from_body(Bytes::copy_from_slice(value));
    }
    event.validate().map_err(|e| DecodeError::Invalid(e.0))?;
    Ok(event)
}

/// A record that is not a CloudEvent (external topics, KafkaSource): the event Knative's
/// KafkaSource / Kafka broker dispatcher make of it.
///
/// Type `dev.knative.kafka.event`, id `partition:<p>/offset:<o>`, subject `partition:<p>#<o>`,
/// `source` as given (e.g. `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`), time from
/// the record timestamp (RFC 3339, UTC) when there is one, a non-empty key as both the
/// `partitionkey` and the `key` extension (UTF-8, invalid bytes replaced), each header but
/// `content-type` as the extension `kafkaheader<name>` (name lower-cased, keeping only
/// `[a-z0-9]`), `datacontenttype` from the `content-type` header lower-cased (unset without
/// one), and the value as the data. Transport headers are also restored into `event.headers`,
/// so the trace continues; `knit-` headers are skipped. See the module documentation for the
/// sources.
pub fn wrap_foreign(record: &InRecord<'_>, source: &str) -> Event {
    let mut event = Event::new(
        format!("partition:{}/offset:{}", record.partition, record.offset),
        source,
        FOREIGN_EVENT_TYPE,
    );
    event.subject = Some(format!("partition:{}#{}", record.partition, record.offset));
    event.time = record
        .timestamp_ms
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string());
    if let Some(key) = record.key.filter(|k| !k.is_empty()) {
        let key = text(key);
        event.set_extension("partitionkey", ExtValue::String(key.clone()));
        event.set_extension("key", ExtValue::String(key));
    }
    let mut content_type = None;
    for &(name, value) in &record.headers {
        if starts_with_ignore_case(name, KNIT_PREFIX) {
            continue;
        }
        if name.eq_ignore_ascii_case(CONTENT_TYPE) {
            content_type = Some(value);
            continue;
        }
        // Only what makes a valid event: no empty values, at most as many extensions as an
        // event may carry (the rest of the headers are not kept).
        if !value.is_empty() && event.extensions.len() < rules::MAX_EXTENSIONS {
            event.set_extension(
                &foreign_header_extension(name),
                ExtValue::String(text(value)),
            );
        }
        if is_transport_header(name)
            && let Ok(v) = std::str::from_utf8(value)
        {
            set_header(&mut event.headers, name, v);
        }
    }
    event.datacontenttype = content_type
        .map(|ct| String::from_utf8_lossy(ct).to_lowercase())
        .filter(|ct| rules::is_media_type(ct));
    if let Some(value) = record.value {
        event.set_data_from_body(Bytes::copy_from_slice(value));
    }
    event
}

/// The extension a foreign record's header becomes: `kafkaheader` + the name lower-cased with
/// everything outside `[a-z0-9]` removed.
fn foreign_header_extension(name: &str) -> String {
    let mut out = String::with_capacity(KAFKA_HEADER_EXTENSION_PREFIX.len() + name.len());
    out.push_str(KAFKA_HEADER_EXTENSION_PREFIX);
    out.extend(
        name.chars()
            .flat_map(char::to_lowercase)
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
    );
    out.truncate(rules::MAX_ATTRIBUTE_NAME);
    out
}

/// The value of the last header named `name` (case-insensitively).
fn last_header<'a>(record: &InRecord<'a>, name: &str) -> Option<&'a [u8]> {
    record
        .headers
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

/// The attribute name of a `ce_<name>` header (prefix matched case-insensitively), if it is one
/// with a non-empty name.
fn ce_attribute(name: &str) -> Option<&str> {
    if !starts_with_ignore_case(name, CE_PREFIX) {
        return None;
    }
    name.get(CE_PREFIX.len()..).filter(|attr| !attr.is_empty())
}

/// The transport headers of a record, lower-case names, last one of a name winning.
fn transport_headers(record: &InRecord<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for &(name, value) in &record.headers {
        if is_transport_header(name)
            && let Ok(v) = std::str::from_utf8(value)
        {
            set_header(&mut out, name, v);
        }
    }
    out
}

/// Set a header by lower-cased name, replacing an earlier one of the same name in place.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    let name = name.to_ascii_lowercase();
    match headers.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => *v = value.to_string(),
        None => headers.push((name, value.to_string())),
    }
}

/// A header value as text; invalid UTF-8 is replaced, as Java's `new String(bytes, UTF_8)` does.
fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Whether `s` starts with the ASCII `prefix`, ignoring ASCII case.
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Data, DataKind};

    /// Borrow an [`OutRecord`] as the consumer would see it.
    fn consumed(out: &OutRecord) -> InRecord<'_> {
        InRecord {
            topic: "t",
            partition: 3,
            offset: 42,
            timestamp_ms: Some(1_700_000_000_123),
            key: out.key.as_deref(),
            headers: out
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect(),
            value: out.value.as_deref(),
        }
    }

    fn record<'a>(headers: &[(&'a str, &'a [u8])], value: Option<&'a [u8]>) -> InRecord<'a> {
        InRecord {
            topic: "orders",
            partition: 2,
            offset: 17,
            timestamp_ms: Some(1_700_000_000_123),
            key: None,
            headers: headers.to_vec(),
            value,
        }
    }

    fn header<'a>(out: &'a OutRecord, name: &str) -> Option<&'a [u8]> {
        out.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn base_event() -> Event {
        let mut ev = Event::new("id-1", "/my/source", "com.example.thing");
        ev.subject = Some("sub ject".into());
        ev.time = Some("2024-05-06T07:08:09.123Z".into());
        ev.dataschema = Some("https://example.com/schema".into());
        ev.extensions = vec![
            ("myext".into(), ExtValue::String("hello, wörld".into())),
            ("partitionkey".into(), ExtValue::String("order-7".into())),
        ];
        ev.headers = vec![
            (
                "traceparent".into(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            ),
            ("x-request-id".into(), "req-1".into()),
            ("knative-foo".into(), "bar".into()),
            ("x-b3-traceid".into(), "abc".into()),
        ];
        ev
    }

    fn with_data(mut ev: Event, ct: Option<&str>, bytes: &[u8], kind: DataKind) -> Event {
        ev.datacontenttype = ct.map(str::to_string);
        ev.data = Some(Data {
            bytes: Bytes::copy_from_slice(bytes),
            kind,
        });
        ev
    }

    /// Events with JSON, text, binary and no data, each with extensions and transport headers.
    fn sample_events() -> Vec<Event> {
        vec![
            with_data(
                base_event(),
                Some("application/json"),
                br#"{"b": 1,  "a":[1,2]}"#,
                DataKind::Json,
            ),
            with_data(
                base_event(),
                Some("text/plain; charset=utf-8"),
                "hi \"there\"\n".as_bytes(),
                DataKind::Text,
            ),
            with_data(
                base_event(),
                Some("application/octet-stream"),
                &[0, 1, 2, 0xff, 0xfe],
                DataKind::Binary,
            ),
            base_event(),
        ]
    }

    #[test]
    fn binary_layout() {
        let ev = with_data(
            base_event(),
            Some("application/json"),
            b"{\"a\":1}",
            DataKind::Json,
        );
        let out = encode(&ev, ContentMode::Binary);
        assert_eq!(out.key.as_deref(), Some(&b"order-7"[..]));
        assert_eq!(out.value.as_deref(), Some(&b"{\"a\":1}"[..]));
        for (name, value) in [
            ("ce_specversion", "1.0"),
            ("ce_id", "id-1"),
            ("ce_source", "/my/source"),
            ("ce_type", "com.example.thing"),
            ("ce_subject", "sub ject"),
            ("ce_time", "2024-05-06T07:08:09.123Z"),
            ("ce_dataschema", "https://example.com/schema"),
            ("ce_myext", "hello, wörld"),
            ("ce_partitionkey", "order-7"),
            ("content-type", "application/json"),
            ("x-request-id", "req-1"),
            ("knative-foo", "bar"),
        ] {
            assert_eq!(header(&out, name), Some(value.as_bytes()), "{name}");
        }
        assert_eq!(header(&out, "ce_datacontenttype"), None);
        // No data: a null value, not an empty one.
        let out = encode(&base_event(), ContentMode::Binary);
        assert_eq!(out.value, None);
        assert_eq!(header(&out, "content-type"), None);
        // No partitionkey: no key.
        let mut ev = base_event();
        ev.remove_extension("partitionkey");
        assert_eq!(encode(&ev, ContentMode::Binary).key, None);
        assert_eq!(encode(&ev, ContentMode::Structured).key, None);
    }

    #[test]
    fn structured_layout() {
        let ev = with_data(
            base_event(),
            Some("application/json"),
            b"{\"a\":1}",
            DataKind::Json,
        );
        let out = encode(&ev, ContentMode::Structured);
        assert_eq!(
            header(&out, "content-type"),
            Some(STRUCTURED_CONTENT_TYPE.as_bytes())
        );
        assert_eq!(out.key.as_deref(), Some(&b"order-7"[..]));
        assert_eq!(out.value.as_deref(), Some(ev.to_json().as_slice()));
        assert!(out.headers.iter().all(|(n, _)| !n.starts_with("ce_")));
        assert_eq!(header(&out, "traceparent").map(<[u8]>::len), Some(55));
        // No data is still a document, not a tombstone.
        assert!(
            encode(&base_event(), ContentMode::Structured)
                .value
                .is_some()
        );
    }

    #[test]
    fn round_trip_both_modes() {
        for mode in [ContentMode::Binary, ContentMode::Structured] {
            for ev in sample_events() {
                let out = encode(&ev, mode);
                let back = decode(&consumed(&out)).expect("decodes");
                assert_eq!(back, ev, "{mode:?}");
            }
        }
    }

    #[test]
    fn round_trip_v03() {
        let mut ev = with_data(
            base_event(),
            Some("application/octet-stream"),
            &[9, 8, 7],
            DataKind::Binary,
        );
        ev.spec_version = SpecVersion::V03;
        let out = encode(&ev, ContentMode::Binary);
        assert_eq!(
            header(&out, "ce_schemaurl"),
            Some(&b"https://example.com/schema"[..])
        );
        for mode in [ContentMode::Binary, ContentMode::Structured] {
            assert_eq!(decode(&consumed(&encode(&ev, mode))), Ok(ev.clone()));
        }
    }

    #[test]
    fn event_as_data_round_trips_in_binary_mode() {
        let inner = br#"{"specversion":"1.0","id":"in","source":"s","type":"t"}"#;
        let ev = with_data(
            base_event(),
            Some("application/cloudevents+json"),
            inner,
            DataKind::Json,
        );
        let out = encode(&ev, ContentMode::Binary);
        assert_eq!(header(&out, "content-type"), None);
        assert_eq!(
            header(&out, "ce_datacontenttype"),
            Some(&b"application/cloudevents+json"[..])
        );
        assert_eq!(decode(&consumed(&out)), Ok(ev.clone()));
        assert_eq!(
            decode(&consumed(&encode(&ev, ContentMode::Structured))),
            Ok(ev)
        );
    }

    #[test]
    fn typed_extensions_survive_structured_only() {
        let mut ev = base_event();
        ev.extensions.push(("count".into(), ExtValue::Integer(-5)));
        ev.extensions.push(("flag".into(), ExtValue::Boolean(true)));
        let back = decode(&consumed(&encode(&ev, ContentMode::Structured))).expect("decodes");
        assert_eq!(back, ev);
        // Binary mode carries attributes as text: the values survive, their types do not.
        let out = encode(&ev, ContentMode::Binary);
        assert_eq!(header(&out, "ce_count"), Some(&b"-5"[..]));
        let back = decode(&consumed(&out)).expect("decodes");
        assert_eq!(
            back.extension("count"),
            Some(&ExtValue::String("-5".into()))
        );
        assert_eq!(
            back.extension("flag"),
            Some(&ExtValue::String("true".into()))
        );
        assert_eq!(back.attribute("count"), ev.attribute("count"));
        // An integer partitionkey is a key all the same.
        let mut ev = Event::new("1", "s", "t");
        ev.set_extension("partitionkey", ExtValue::Integer(12));
        assert_eq!(
            encode(&ev, ContentMode::Binary).key.as_deref(),
            Some(&b"12"[..])
        );
    }

    #[test]
    fn data_kind_follows_the_http_path() {
        let cases: [(Option<&str>, &[u8]); 6] = [
            (Some("application/json"), b"{\"a\":1}"),
            (Some("application/json"), b"{not json"),
            (Some("application/xml"), b"<a/>"),
            (Some("text/csv"), b"a,b"),
            (None, b"plain"),
            (None, b"\xff\x00"),
        ];
        for (ct, body) in cases {
            let mut headers: Vec<(&str, &[u8])> = vec![
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"t"),
            ];
            if let Some(ct) = ct {
                headers.push(("content-type", ct.as_bytes()));
            }
            let ev = decode(&record(&headers, Some(body))).expect("decodes");
            let mut want = Event::new("1", "s", "t");
            want.datacontenttype = ct.map(str::to_string);
            want.set_data_from_body(Bytes::copy_from_slice(body));
            assert_eq!(ev, want, "{ct:?}");
        }
        // An empty value is no data, as in the Java SDK.
        let headers: [(&str, &[u8]); 4] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"s"),
            ("ce_type", b"t"),
        ];
        assert_eq!(decode(&record(&headers, Some(b""))).expect("ok").data, None);
    }

    #[test]
    fn mode_detection() {
        let plain = record(&[("content-type", b"application/json")], Some(b"{}"));
        assert_eq!(decode(&plain), Err(DecodeError::NotCloudEvent));
        assert_eq!(decode(&record(&[], None)), Err(DecodeError::NotCloudEvent));
        // A record with some ce_ headers but no ce_specversion is not an event.
        let partial = record(&[("ce_id", b"1"), ("ce_type", b"t")], Some(b"x"));
        assert_eq!(decode(&partial), Err(DecodeError::NotCloudEvent));

        let doc = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"x":1}}"#;
        for ct in [
            "application/cloudevents+json",
            "Application/CloudEvents+JSON; charset=utf-8",
            " application/cloudevents+json",
        ] {
            let ev =
                decode(&record(&[("content-type", ct.as_bytes())], Some(doc))).expect("structured");
            assert_eq!(ev.id, "1");
            assert_eq!(ev.data.map(|d| d.kind), Some(DataKind::Json));
        }
        // A header name in another case is still content-type.
        let ev = decode(&record(
            &[("Content-Type", b"application/cloudevents+json")],
            Some(doc),
        ));
        assert!(ev.is_ok(), "{ev:?}");
        // Structured wins over ce_ headers.
        let ev = decode(&record(
            &[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"other"),
                ("content-type", b"application/cloudevents+json"),
            ],
            Some(doc),
        ))
        .expect("structured");
        assert_eq!(ev.id, "1");
        // Other event formats are errors, not binary.
        for ct in [
            "application/cloudevents+avro",
            "application/cloudevents-batch+json",
        ] {
            let r = record(
                &[("content-type", ct.as_bytes()), ("ce_specversion", b"1.0")],
                Some(b"[]"),
            );
            assert!(
                matches!(decode(&r), Err(DecodeError::Invalid(m)) if m.contains("format")),
                "{ct}"
            );
        }
        let r = record(&[("content-type", b"application/cloudevents+json")], None);
        assert!(matches!(decode(&r), Err(DecodeError::Invalid(_))));
        let r = record(
            &[("content-type", b"application/cloudevents+json")],
            Some(b"{\"id\":"),
        );
        assert!(matches!(decode(&r), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn invalid_events_name_the_attribute() {
        let full: [(&str, &[u8]); 4] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"s"),
            ("ce_type", b"t"),
        ];
        for (missing, attr) in [(1, "id"), (2, "source"), (3, "type")] {
            let headers: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, h)| *h)
                .collect();
            match decode(&record(&headers, None)) {
                Err(DecodeError::Invalid(m)) => assert!(m.contains(attr), "{m}"),
                other => panic!("{attr}: {other:?}"),
            }
        }
        let mut headers = full.to_vec();
        headers[0] = ("ce_specversion", b"2.0");
        assert!(
            matches!(decode(&record(&headers, None)), Err(DecodeError::Invalid(m)) if m.contains("specversion"))
        );
        let mut headers = full.to_vec();
        headers.push(("ce_time", b"yesterday"));
        assert!(
            matches!(decode(&record(&headers, None)), Err(DecodeError::Invalid(m)) if m.contains("time"))
        );
        let mut headers = full.to_vec();
        headers.push(("ce_bad-name", b"x"));
        assert!(matches!(
            decode(&record(&headers, None)),
            Err(DecodeError::Invalid(_))
        ));
        let e = DecodeError::Invalid("missing required attribute: id".into());
        assert_eq!(
            e.to_string(),
            "invalid CloudEvent in the record: missing required attribute: id"
        );
    }

    #[test]
    fn headers_duplicates_case_and_bookkeeping() {
        let headers: [(&str, &[u8]); 16] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"first"),
            ("ce_source", b"s"),
            ("CE_Type", b"t"),
            ("ce_MyExt", b"a"),
            ("ce_myext", b"b"),
            ("ce_", b"ignored"),
            ("ce_datacontenttype", b"text/csv"),
            ("content-type", b"text/plain"),
            ("content-type", b"application/json"),
            ("ce_id", b"second"),
            ("Traceparent", b"tp1"),
            ("traceparent", b"tp2"),
            ("knit-attempt", b"3"),
            ("x-other", b"dropped"),
            ("Knative-Foo", b"bar"),
        ];
        let ev = decode(&record(&headers, Some(b"{}"))).expect("decodes");
        assert_eq!(ev.id, "second");
        assert_eq!(ev.ty, "t");
        assert_eq!(
            ev.extensions,
            vec![("myext".into(), ExtValue::String("b".into()))]
        );
        assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(
            ev.headers,
            vec![
                ("traceparent".to_string(), "tp2".to_string()),
                ("knative-foo".to_string(), "bar".to_string()),
            ]
        );
        // ce_datacontenttype is used when there is no content-type header, or a blank one.
        let headers: [(&str, &[u8]); 6] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"s"),
            ("ce_type", b"t"),
            ("ce_datacontenttype", b"text/csv"),
            ("content-type", b" "),
        ];
        let ev = decode(&record(&headers, None)).expect("decodes");
        assert_eq!(ev.datacontenttype.as_deref(), Some("text/csv"));
        // Non-transport headers on the event are not written.
        let mut ev = Event::new("1", "s", "t");
        ev.headers = vec![
            ("content-type".into(), "application/cloudevents+json".into()),
            ("ce_id".into(), "evil".into()),
            ("X-Request-Id".into(), "r".into()),
        ];
        let out = encode(&ev, ContentMode::Binary);
        assert_eq!(header(&out, "x-request-id"), Some(&b"r"[..]));
        let back = decode(&consumed(&out)).expect("decodes");
        assert_eq!(back.id, "1");
        assert_eq!(back.headers, vec![("x-request-id".into(), "r".into())]);
    }

    #[test]
    fn non_utf8_values() {
        let headers: [(&str, &[u8]); 6] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"a\xffb"),
            ("ce_source", b"s"),
            ("ce_type", b"t"),
            ("traceparent", b"\xc3\x28"),
            ("x-request-id", b"ok"),
        ];
        let ev = decode(&record(&headers, None)).expect("decodes");
        assert_eq!(ev.id, "a\u{fffd}b");
        assert_eq!(ev.headers, vec![("x-request-id".into(), "ok".into())]);
    }

    #[test]
    fn foreign_record() {
        let headers: [(&str, &[u8]); 7] = [
            ("Content-Type", b"Application/JSON"),
            ("X-My_Header.1", b"v1"),
            ("x-my-header-1", b"v2"),
            ("traceparent", b"tp"),
            ("knit-attempt", b"2"),
            ("ÜberKey", b"\xff"),
            ("", b"empty-name"),
        ];
        let mut r = record(&headers, Some(b"{\"a\": 1}"));
        r.key = Some(b"user-9");
        let source = "/apis/v1/namespaces/ns/kafkasources/src#orders";
        let ev = wrap_foreign(&r, source);
        assert_eq!(ev.spec_version, SpecVersion::V10);
        assert_eq!(ev.ty, "dev.knative.kafka.event");
        assert_eq!(ev.id, "partition:2/offset:17");
        assert_eq!(ev.subject.as_deref(), Some("partition:2#17"));
        assert_eq!(ev.source, source);
        assert_eq!(ev.time.as_deref(), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(
            ev.data,
            Some(Data {
                bytes: Bytes::from_static(b"{\"a\": 1}"),
                kind: DataKind::Json
            })
        );
        let s = |v: &str| ExtValue::String(v.into());
        assert_eq!(
            ev.extensions,
            vec![
                ("partitionkey".into(), s("user-9")),
                ("key".into(), s("user-9")),
                ("kafkaheaderxmyheader1".into(), s("v2")),
                ("kafkaheadertraceparent".into(), s("tp")),
                ("kafkaheaderberkey".into(), s("\u{fffd}")),
                ("kafkaheader".into(), s("empty-name")),
            ]
        );
        assert_eq!(ev.headers, vec![("traceparent".into(), "tp".into())]);
        ev.validate().expect("valid");

        // Bare record: no key, no headers, no timestamp, no value.
        let mut r = record(&[], None);
        r.timestamp_ms = None;
        r.key = Some(b"");
        let ev = wrap_foreign(&r, "/s");
        assert_eq!(ev.time, None);
        assert_eq!(ev.datacontenttype, None);
        assert_eq!(ev.data, None);
        assert!(ev.extensions.is_empty());
        ev.validate().expect("valid");

        // No content-type: left unset, the data kind read as on the HTTP path.
        let ev = wrap_foreign(&record(&[], Some(b"{\"a\":1}")), "/s");
        assert_eq!(ev.datacontenttype, None);
        assert_eq!(ev.data.map(|d| d.kind), Some(DataKind::Text));
        let ev = wrap_foreign(&record(&[], Some(b"\x00\xff")), "/s");
        assert_eq!(ev.data.map(|d| d.kind), Some(DataKind::Binary));

        // The epoch prints with whole seconds; out-of-range timestamps are dropped.
        let mut r = record(&[], None);
        r.timestamp_ms = Some(0);
        assert_eq!(
            wrap_foreign(&r, "/s").time.as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        r.timestamp_ms = Some(i64::MAX);
        assert_eq!(wrap_foreign(&r, "/s").time, None);
    }

    #[test]
    fn content_mode_serde() {
        assert_eq!(ContentMode::default(), ContentMode::Binary);
        assert_eq!(
            serde_json::to_string(&ContentMode::Structured).expect("serializes"),
            "\"structured\""
        );
        assert_eq!(
            serde_json::from_str::<ContentMode>("\"binary\"").expect("parses"),
            ContentMode::Binary
        );
    }

    /// A small deterministic generator, so the garbage is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> usize {
            usize::try_from(self.next() % n).expect("small")
        }

        fn bytes(&mut self, max: u64) -> Vec<u8> {
            let n = self.below(max + 1);
            (0..n).map(|_| self.next().to_le_bytes()[0]).collect()
        }

        fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
            items[self.below(items.len() as u64)]
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        let names = [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_",
            "CE_SUBJECT",
            "ce_ÿ",
            "ce_x-y",
            "content-type",
            "Content-Type",
            "traceparent",
            "knative-x",
            "knit-state",
            "ü",
            "",
        ];
        let values: [&[u8]; 14] = [
            b"",
            b"1.0",
            b"0.3",
            b"application/cloudevents+json",
            b"APPLICATION/CLOUDEVENTS",
            b"application/json",
            b"text/plain",
            b"\xff\xfe\xfd",
            b"\xc3",
            b"2024-01-01T00:00:00Z",
            b"  ",
            b"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}",
            b"\x00",
            b"\xe2\x82",
        ];
        let huge = vec![0xffu8; 1 << 20];
        let valid: [(&str, &[u8]); 4] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"s"),
            ("ce_type", b"t"),
        ];
        let (mut ok, mut invalid, mut not_event) = (0, 0, 0);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..3000 {
            // Half the records start as a valid binary event, then get garbage added.
            let start = if rng.below(2) == 0 { &valid[..] } else { &[] };
            let owned: Vec<(&str, Vec<u8>)> = start
                .iter()
                .map(|(n, v)| (*n, v.to_vec()))
                .collect::<Vec<_>>()
                .into_iter()
                .chain((0..rng.below(6)).map(|_| {
                    let name = names[rng.below(names.len() as u64)];
                    let value = if rng.below(3) == 0 {
                        rng.bytes(40)
                    } else {
                        rng.pick(&values).to_vec()
                    };
                    (name, value)
                }))
                .collect();
            let value = match rng.below(4) {
                0 => None,
                1 => Some(rng.bytes(64)),
                _ => Some(rng.pick(&values).to_vec()),
            };
            let key = match rng.below(4) {
                0 => None,
                1 => Some(huge.clone()),
                _ => Some(rng.bytes(16)),
            };
            let r = InRecord {
                topic: "g",
                partition: i32::try_from(rng.below(1 << 30)).expect("fits") - (1 << 29),
                offset: i64::try_from(rng.next() >> 1).expect("fits") - (1 << 62),
                timestamp_ms: (rng.below(2) == 0).then(|| rng.next().cast_signed()),
                key: key.as_deref(),
                headers: owned.iter().map(|(n, v)| (*n, v.as_slice())).collect(),
                value: value.as_deref(),
            };
            match decode(&r) {
                Ok(ev) => {
                    ok += 1;
                    ev.validate().expect("decode returns only valid events");
                    // A decoded event encodes and decodes again to itself, up to types.
                    for mode in [ContentMode::Binary, ContentMode::Structured] {
                        let out = encode(&ev, mode);
                        let again = decode(&consumed(&out));
                        assert!(again.is_ok(), "{i} {mode:?}: {again:?} from {ev:?}");
                    }
                }
                Err(DecodeError::NotCloudEvent) => not_event += 1,
                Err(DecodeError::Invalid(_)) => invalid += 1,
            }
            let ev = wrap_foreign(&r, "/apis/v1/namespaces/ns/kafkasources/k#g");
            ev.validate().expect("wrapped events are valid");
        }
        // The garbage reaches every outcome.
        assert!(
            ok > 100 && invalid > 100 && not_event > 100,
            "{ok} {invalid} {not_event}"
        );
    }
}
