//! A Pub/Sub message as the CloudEvent knative-gcp's CloudPubSubSource emits:
//! `type=google.cloud.pubsub.topic.v1.messagePublished`,
//! `source=//pubsub.googleapis.com/projects/<p>/topics/<t>`, `id` = messageId,
//! `time` = publishTime, Google's `dataschema`, and as data the message in push format:
//! `{"subscription":"<subscription ID>","message":{"messageId","data","attributes","publishTime"}}`
//! (`attributes` omitted when empty, `data` when the message has none).
//!
//! Messages are read in either spelling of their fields (`messageId` / `message_id`,
//! `publishTime` / `publish_time`), as pull answers and push bodies carry them.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use knit_channels::Event;
use serde::{Deserialize, Serialize};

/// `type` of every event.
pub const EVENT_TYPE: &str = "google.cloud.pubsub.topic.v1.messagePublished";
/// `dataschema` of every event.
pub const DATA_SCHEMA: &str = "https://raw.githubusercontent.com/googleapis/google-cloudevents/master/proto/google/events/cloud/pubsub/v1/data.proto";

/// `source` of the events of topic `topic` in `project`.
pub fn event_source(project: &str, topic: &str) -> String {
    format!("//pubsub.googleapis.com/projects/{project}/topics/{topic}")
}

/// Why a message cannot become an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    /// Not a `PubsubMessage` object.
    #[error("not a Pub/Sub message: {0}")]
    Shape(String),
    /// It has no message ID.
    #[error("the message has no messageId")]
    NoId,
    /// `data` is not base64.
    #[error("the message data is not base64: {0}")]
    Data(String),
}

/// A `PubsubMessage` in either field spelling.
#[derive(Debug, Default, Deserialize)]
struct Incoming {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
}

/// The message part of the push format.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushMessage {
    /// Message ID.
    pub message_id: String,
    /// Payload, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// When the service received it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<String>,
}

/// The event's data: the push format.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushData {
    /// The subscription's ID (its last path segment).
    pub subscription: String,
    /// The message.
    pub message: PushMessage,
}

fn nonempty(a: Option<String>, b: Option<String>) -> Option<String> {
    a.filter(|s| !s.is_empty())
        .or_else(|| b.filter(|s| !s.is_empty()))
}

/// Read a `PubsubMessage` (JSON, either spelling) into the push format's message. Its data is
/// checked to be base64 and written back in the standard alphabet with padding.
pub fn push_message(message: &serde_json::Value) -> Result<PushMessage, ConvertError> {
    let m = Incoming::deserialize(message).map_err(|e| ConvertError::Shape(e.to_string()))?;
    let message_id = nonempty(m.message_id_camel, m.message_id_snake).ok_or(ConvertError::NoId)?;
    let data = match m.data.filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => {
            let bytes = decode_base64(&d)?;
            (!bytes.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    };
    Ok(PushMessage {
        message_id,
        data,
        attributes: m.attributes.unwrap_or_default(),
        publish_time: nonempty(m.publish_time_camel, m.publish_time_snake),
    })
}

/// Decode base64 in the standard or URL-safe alphabet, padded or not.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, ConvertError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
        .ok_or_else(|| ConvertError::Data(format!("{} characters", s.len())))
}

/// The subscription ID of `projects/P/subscriptions/S` (or `S` itself).
pub fn subscription_id(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The event of `message` (a `PubsubMessage` as JSON) pulled through `subscription` from
/// `topic` in `project`.
pub fn event(
    project: &str,
    topic: &str,
    subscription: &str,
    message: &serde_json::Value,
) -> Result<Event, ConvertError> {
    let message = push_message(message)?;
    let mut ev = Event::new(
        message.message_id.clone(),
        event_source(project, topic),
        EVENT_TYPE,
    );
    ev.time = message
        .publish_time
        .clone()
        .filter(|t| t.parse::<jiff::Timestamp>().is_ok());
    ev.dataschema = Some(DATA_SCHEMA.to_string());
    ev.datacontenttype = Some("application/json".to_string());
    let data = PushData {
        subscription: subscription_id(subscription).to_string(),
        message,
    };
    let body = serde_json::to_vec(&data).map_err(|e| ConvertError::Shape(e.to_string()))?;
    ev.set_data_from_body(Bytes::from(body));
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data_of(ev: &Event) -> serde_json::Value {
        let bytes = ev
            .data
            .as_ref()
            .map(|d| d.bytes.clone())
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn a_pulled_message_becomes_knative_gcp_s_event() {
        let msg = json!({
            "data": "aGVsbG8=",
            "attributes": {"color": "red", "size": "L"},
            "messageId": "42",
            "publishTime": "2026-11-29T22:11:48.130Z",
        });
        let ev = event(
            "proj",
            "orders",
            "projects/proj/subscriptions/knit-sub",
            &msg,
        )
        .expect("converts");
        assert_eq!(ev.ty, EVENT_TYPE);
        assert_eq!(
            ev.source,
            "//pubsub.googleapis.com/projects/proj/topics/orders"
        );
        assert_eq!(ev.id, "42");
        assert_eq!(ev.time.as_deref(), Some("2026-11-29T22:11:48.130Z"));
        assert_eq!(ev.dataschema.as_deref(), Some(DATA_SCHEMA));
        assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
        assert!(ev.validate().is_ok());
        assert_eq!(
            data_of(&ev),
            json!({
                "subscription": "knit-sub",
                "message": {
                    "messageId": "42",
                    "data": "aGVsbG8=",
                    "attributes": {"color": "red", "size": "L"},
                    "publishTime": "2026-11-29T22:11:48.130Z",
                }
            })
        );
    }

    #[test]
    fn both_spellings_are_read_and_one_is_written() {
        // A push body's message carries both spellings (Google's duplicatedFields fixture).
        let both = json!({
            "data": "eA==",
            "messageId": "7", "message_id": "7",
            "publishTime": "2021-02-05T04:54:32.227Z", "publish_time": "2021-02-05T04:54:32.227Z",
        });
        let snake = json!({
            "data": "eA==",
            "message_id": "7",
            "publish_time": "2021-02-05T04:54:32.227Z",
        });
        let a = push_message(&both).expect("both");
        let b = push_message(&snake).expect("snake");
        assert_eq!(a, b);
        assert_eq!(a.message_id, "7");
        assert_eq!(a.publish_time.as_deref(), Some("2021-02-05T04:54:32.227Z"));
        let written = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(
            written,
            json!({"messageId": "7", "data": "eA==", "publishTime": "2021-02-05T04:54:32.227Z"})
        );
    }

    #[test]
    fn empty_attributes_and_data_are_omitted() {
        let msg =
            json!({"attributes": {}, "messageId": "1", "publishTime": "2026-01-01T00:00:00Z"});
        let ev = event("p", "t", "s", &msg).expect("converts");
        assert_eq!(
            data_of(&ev)["message"],
            json!({"messageId": "1", "publishTime": "2026-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn data_survives_the_base64_round_trip() {
        let payloads: [&[u8]; 4] = [
            b"plain text",
            b"{\"a\":1}",
            &[0, 255, 128, 7, 1],
            &[0xfb; 301],
        ];
        for bytes in payloads {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let ev = event("p", "t", "s", &json!({"data": b64, "messageId": "1"})).expect("ok");
            let d = data_of(&ev);
            let back = decode_base64(d["message"]["data"].as_str().unwrap_or("")).expect("b64");
            assert_eq!(back, bytes);
        }
        // URL-safe or unpadded input is accepted and written in the standard form.
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff]);
        let m = push_message(&json!({"data": url, "messageId": "1"})).expect("ok");
        assert_eq!(m.data.as_deref(), Some("+/8="));
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        assert_eq!(
            push_message(&json!({"data": "eA=="})),
            Err(ConvertError::NoId)
        );
        assert!(matches!(
            push_message(&json!({"data": "***", "messageId": "1"})),
            Err(ConvertError::Data(_))
        ));
        assert!(matches!(
            push_message(&json!("x")),
            Err(ConvertError::Shape(_))
        ));
    }

    #[test]
    fn an_unreadable_publish_time_is_kept_in_data_but_not_as_time() {
        let ev = event(
            "p",
            "t",
            "s",
            &json!({"messageId": "1", "data": "eA==", "publishTime": "yesterday"}),
        )
        .expect("ok");
        assert_eq!(ev.time, None);
        assert!(ev.validate().is_ok());
        assert_eq!(data_of(&ev)["message"]["publishTime"], "yesterday");
    }
}
