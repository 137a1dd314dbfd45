//! Connections to NATS servers, one per server list and credentials, shared by every log on
//! them. A connection reconnects forever (every 100 ms at first, then at most every 2 s) and
//! is made even while the servers are down (`retry_on_initial_connect`), so a log opened then
//! works once they are back; JetStream requests time out after [`REQUEST_TIMEOUT`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use knit_crds::contract::NatsLog as Config;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::backends::redact_url;
use crate::log::LogError;

/// How long a JetStream request (a PubAck included) may take before it fails.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection and its JetStream context.
pub(crate) struct Conn {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    /// The servers, without credentials (for messages).
    pub(crate) servers: String,
}

type Key = (String, Option<String>, Option<String>);

/// The connections, by server list and credentials.
pub(crate) struct Connections {
    client_id: String,
    conns: Mutex<HashMap<Key, Arc<OnceCell<Arc<Conn>>>>>,
}

impl Connections {
    pub(crate) fn new(client_id: String) -> Self {
        Self {
            client_id,
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// The connection for `config`'s servers and credentials, made on first use.
    pub(crate) async fn connection(&self, config: &Config) -> Result<Arc<Conn>, LogError> {
        let key = (
            config.url.clone(),
            config.creds_file.clone(),
            config.ca_file.clone(),
        );
        let cell = self.conns.lock().entry(key).or_default().clone();
        cell.get_or_try_init(|| connect(&self.client_id, config))
            .await
            .cloned()
    }
}

async fn connect(client_id: &str, config: &Config) -> Result<Arc<Conn>, LogError> {
    let servers = redact_url(&config.url);
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
        LogError::backend(format!("connecting to NATS at {servers}"), e)
    };
    let mut options = async_nats::ConnectOptions::new()
        .name(client_id)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(REQUEST_TIMEOUT)
        .reconnect_delay_callback(|attempts| {
            let ms = 100u64.saturating_mul(attempts as u64).min(2000);
            Duration::from_millis(ms)
        })
        .event_callback(|event| async move {
            tracing::info!(event = %event, "NATS connection");
        });
    if let Some(path) = &config.creds_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| fail(format!("reading the credentials file {path}: {e}").into()))?;
    }
    if let Some(path) = &config.ca_file {
        options = options.add_root_certificates(path.into()).require_tls(true);
    }
    let urls: Vec<&str> = config
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(fail("no server URL".into()));
    }
    let client = options.connect(urls).await.map_err(|e| fail(e.into()))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client.clone());
    Ok(Arc::new(Conn {
        client,
        js,
        servers,
    }))
}
