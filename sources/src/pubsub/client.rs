//! A small client of the Pub/Sub REST API (`/v1/projects/*/topics`, `/v1/projects/*/subscriptions`)
//! over reqwest: the calls the adapter needs (create a topic, create / read / update / delete a
//! subscription, pull, acknowledge, modify ack deadlines) and `publish` for tests and demos.
//! Every call has a timeout. `pull` is a long poll that the server may hold for a long time
//! (the emulator holds an empty pull for about 90 s, even after its subscription was deleted),
//! so its timeout is shorter: the adapter then pulls again, and notices a deleted subscription
//! within [`PULL_TIMEOUT`]. A message the server hands out just as a pull times out is not lost:
//! it is redelivered once its ack deadline passes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

/// Timeout of every call except `pull`.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of a `pull` (a long poll): an empty pull ends after this long at the latest.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer (connection refused, timeout, ...).
    #[error("{call}: {source}")]
    Transport {
        /// The call, e.g. `pull projects/p/subscriptions/s`.
        call: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with an error.
    #[error("{call}: {status} {code}: {message}")]
    Api {
        /// The call.
        call: String,
        /// HTTP status.
        status: u16,
        /// The API's status name, e.g. `NOT_FOUND`.
        code: String,
        /// The API's message.
        message: String,
    },
    /// The answer could not be read.
    #[error("{call}: unreadable answer: {reason}")]
    Decode {
        /// The call.
        call: String,
        /// Why.
        reason: String,
    },
    /// The client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

impl Error {
    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The resource exists already (409 `ALREADY_EXISTS`).
    pub fn already_exists(&self) -> bool {
        self.status() == Some(409)
    }

    /// The resource does not exist (404 `NOT_FOUND`).
    pub fn not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The call ran out of time.
    pub fn timed_out(&self) -> bool {
        matches!(self, Error::Transport { source, .. } if source.is_timeout())
    }
}

/// Settings of a subscription Knit creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// Full topic name, `projects/P/topics/T`.
    pub topic: String,
    /// `ackDeadlineSeconds`.
    pub ack_deadline_seconds: u32,
    /// `retainAckedMessages`.
    pub retain_acked_messages: bool,
    /// `messageRetentionDuration` in seconds (the service's default when `None`).
    pub retention_seconds: Option<u64>,
}

/// A subscription as the API returns it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Full name.
    #[serde(default)]
    pub name: String,
    /// Full topic name (`_deleted-topic_` when its topic was deleted).
    #[serde(default)]
    pub topic: String,
    /// Ack deadline.
    #[serde(default)]
    pub ack_deadline_seconds: u32,
    /// Whether acked messages are kept.
    #[serde(default)]
    pub retain_acked_messages: bool,
    /// Retention, e.g. `"604800s"`.
    #[serde(default)]
    pub message_retention_duration: Option<String>,
}

/// One pulled message: its ack ID and the message as JSON (read by [`super::event`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// What acknowledges this delivery.
    pub ack_id: String,
    /// The `PubsubMessage`.
    pub message: serde_json::Value,
    /// How many times it was delivered (set only with dead-letter policies).
    #[serde(default)]
    pub delivery_attempt: Option<u32>,
}

/// A message to publish.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// Payload (base64-encoded by [`Client::publish`]).
    pub data: Vec<u8>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A Pub/Sub REST endpoint.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// e.g. `http://127.0.0.1:8085/v1`.
    base: String,
}

impl Client {
    /// A client of the emulator at `host:port` (plain HTTP, no credentials).
    pub fn emulator(host: &str) -> Result<Self, Error> {
        let host = host
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        Self::new(&format!("http://{host}/v1"))
    }

    /// A client of the API at `base` (ending in `/v1`).
    pub fn new(base: &str) -> Result<Self, Error> {
        knit_dispatcher::sender::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::Build)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<serde_json::Value, Error> {
        let call = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|source| Error::Transport {
            call: call.clone(),
            source,
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|source| Error::Transport {
            call: call.clone(),
            source,
        })?;
        let value: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) if status.is_success() => {
                    return Err(Error::Decode {
                        call,
                        reason: e.to_string(),
                    });
                }
                Err(_) => serde_json::Value::Null,
            }
        };
        if status.is_success() {
            return Ok(value);
        }
        let err = &value["error"];
        Err(Error::Api {
            call,
            status: status.as_u16(),
            code: err["status"]
                .as_str()
                .unwrap_or(status.canonical_reason().unwrap_or(""))
                .to_string(),
            message: err["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string()),
        })
    }

    /// Create topic `projects/P/topics/T`; `Ok(false)` when it existed.
    pub async fn create_topic(&self, topic: &str) -> Result<bool, Error> {
        match self
            .call(reqwest::Method::PUT, topic, Some(json!({})), CALL_TIMEOUT)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.already_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create subscription `projects/P/subscriptions/S`; `Ok(false)` when it existed (its
    /// settings are left as they are: see [`Self::update_subscription`]).
    pub async fn create_subscription(
        &self,
        name: &str,
        spec: &SubscriptionSpec,
    ) -> Result<bool, Error> {
        let mut body = json!({
            "topic": spec.topic,
            "ackDeadlineSeconds": spec.ack_deadline_seconds,
            "retainAckedMessages": spec.retain_acked_messages,
        });
        if let Some(s) = spec.retention_seconds {
            body["messageRetentionDuration"] = json!(format!("{s}s"));
        }
        match self
            .call(reqwest::Method::PUT, name, Some(body), CALL_TIMEOUT)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.already_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Read a subscription.
    pub async fn get_subscription(&self, name: &str) -> Result<Subscription, Error> {
        let v = self
            .call(reqwest::Method::GET, name, None, CALL_TIMEOUT)
            .await?;
        serde_json::from_value(v).map_err(|e| Error::Decode {
            call: format!("GET {name}"),
            reason: e.to_string(),
        })
    }

    /// Set the ack deadline and retention settings of an existing subscription.
    pub async fn update_subscription(
        &self,
        name: &str,
        spec: &SubscriptionSpec,
    ) -> Result<(), Error> {
        let mut sub = json!({
            "ackDeadlineSeconds": spec.ack_deadline_seconds,
            "retainAckedMessages": spec.retain_acked_messages,
        });
        let mut mask = "ackDeadlineSeconds,retainAckedMessages".to_string();
        if let Some(s) = spec.retention_seconds {
            sub["messageRetentionDuration"] = json!(format!("{s}s"));
            mask.push_str(",messageRetentionDuration");
        }
        self.call(
            reqwest::Method::PATCH,
            name,
            Some(json!({ "subscription": sub, "updateMask": mask })),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Delete a subscription; `Ok(false)` when it did not exist.
    pub async fn delete_subscription(&self, name: &str) -> Result<bool, Error> {
        match self
            .call(reqwest::Method::DELETE, name, None, CALL_TIMEOUT)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Pull up to `max` messages, waiting for some (a long poll; empty when none came).
    pub async fn pull(&self, subscription: &str, max: usize) -> Result<Vec<Received>, Error> {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("{subscription}:pull"),
                Some(json!({ "maxMessages": max })),
                PULL_TIMEOUT,
            )
            .await?;
        match v.get("receivedMessages") {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(list) => serde_json::from_value(list.clone()).map_err(|e| Error::Decode {
                call: format!("POST {subscription}:pull"),
                reason: e.to_string(),
            }),
        }
    }

    /// Acknowledge deliveries: the messages are done.
    pub async fn acknowledge(&self, subscription: &str, ack_ids: &[&str]) -> Result<(), Error> {
        self.call(
            reqwest::Method::POST,
            &format!("{subscription}:acknowledge"),
            Some(json!({ "ackIds": ack_ids })),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Set the ack deadline of deliveries: 0 hands them back for redelivery at once (a nack),
    /// more extends the lease of messages still being sent.
    pub async fn modify_ack_deadline(
        &self,
        subscription: &str,
        ack_ids: &[&str],
        seconds: u32,
    ) -> Result<(), Error> {
        self.call(
            reqwest::Method::POST,
            &format!("{subscription}:modifyAckDeadline"),
            Some(json!({ "ackIds": ack_ids, "ackDeadlineSeconds": seconds })),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Publish messages to `projects/P/topics/T`; returns their message IDs.
    pub async fn publish(&self, topic: &str, messages: &[Outgoing]) -> Result<Vec<String>, Error> {
        use base64::Engine;
        let msgs: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let mut v = json!({
                    "data": base64::engine::general_purpose::STANDARD.encode(&m.data),
                });
                if !m.attributes.is_empty() {
                    v["attributes"] = json!(m.attributes);
                }
                v
            })
            .collect();
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("{topic}:publish"),
                Some(json!({ "messages": msgs })),
                CALL_TIMEOUT,
            )
            .await?;
        Ok(v["messageIds"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}
