//! `knit send`: publish one CloudEvent, like `kn event send`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use knit_channels::{Event, ExtValue};
use knit_dispatcher::binding;
use serde_json::Value;

use super::{Mode, ServerArgs, client::Client};

/// Flags of `knit send`.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// Where to: a URL, `broker:NAMESPACE/NAME` or `channel:NAMESPACE/NAME` (resolved through
    /// the admin API of a running server).
    #[arg(long)]
    pub to: String,
    /// CloudEvent `type`.
    #[arg(long = "type")]
    pub ty: String,
    /// CloudEvent `source`.
    #[arg(long)]
    pub source: String,
    /// CloudEvent `id` (a random UUID by default).
    #[arg(long)]
    pub id: Option<String>,
    /// CloudEvent `subject`.
    #[arg(long)]
    pub subject: Option<String>,
    /// Data: JSON text, or `@FILE`.
    #[arg(long)]
    pub data: Option<String>,
    /// `datacontenttype` (default `application/json` when the data is JSON, else `text/plain`).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Extension attribute `NAME=VALUE` (repeatable).
    #[arg(long = "extension", short = 'e')]
    pub extensions: Vec<String>,
    /// Content mode.
    #[arg(long, value_enum, default_value = "binary")]
    pub mode: Mode,
    #[command(flatten)]
    pub server: ServerArgs,
}

async fn resolve(to: &str, server: &ServerArgs) -> Result<String> {
    let (kind, rest) = match to.split_once(':') {
        Some((k @ ("broker" | "channel"), rest)) => (k, rest),
        _ => return Ok(to.to_string()),
    };
    let (ns, name) = rest
        .split_once('/')
        .context("expected broker:NAMESPACE/NAME or channel:NAMESPACE/NAME")?;
    let plural = if kind == "broker" {
        "brokers"
    } else {
        "channels"
    };
    let client = Client::new(server)?;
    let obj = match client.get(&format!("/api/v1/{plural}/{ns}/{name}")).await {
        Ok(o) => o,
        // A channel may be an InMemoryChannel rather than a generic Channel.
        Err(_) if kind == "channel" => {
            client
                .get(&format!("/api/v1/inmemorychannels/{ns}/{name}"))
                .await?
        }
        Err(e) => return Err(e),
    };
    obj.pointer("/status/address/url")
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{kind} {ns}/{name} has no address yet (is it Ready?)"))
}

/// Send the event and print the response; fails on a non-2xx answer.
pub async fn run(args: SendArgs) -> Result<()> {
    let url = resolve(&args.to, &args.server).await?;
    let mut ev = Event::new(
        args.id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        &args.source,
        &args.ty,
    );
    ev.subject = args.subject.clone();
    ev.time = Some(jiff::Timestamp::now().to_string());
    for e in &args.extensions {
        let (k, v) = e
            .split_once('=')
            .with_context(|| format!("--extension {e:?}: expected NAME=VALUE"))?;
        ev.set_extension(k, ExtValue::String(v.to_string()));
    }
    if let Some(d) = &args.data {
        let bytes: Bytes = match d.strip_prefix('@') {
            Some(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {path}"))?
                .into(),
            None => Bytes::from(d.clone()),
        };
        let json = serde_json::from_slice::<&serde_json::value::RawValue>(&bytes).is_ok();
        ev.datacontenttype = Some(args.content_type.clone().unwrap_or_else(|| {
            if json {
                "application/json".into()
            } else {
                "text/plain".into()
            }
        }));
        ev.set_data_from_body(bytes);
    } else {
        ev.datacontenttype = args.content_type.clone();
    }
    ev.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut headers = http::HeaderMap::new();
    let body = match args.mode {
        Mode::Binary => binding::encode_binary(&ev, &mut headers, &[]),
        Mode::Structured => binding::encode_structured(&ev, &mut headers, &[]),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = client
        .post(&url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if !text.trim().is_empty() {
        println!("{}", text.trim_end());
    }
    if !status.is_success() {
        bail!("the event was not accepted ({status})");
    }
    Ok(())
}
