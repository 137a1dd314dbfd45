//! `knit send`: publish one CloudEvent, like `kn event send`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use knit_channels::{Event, ExtValue};
use knit_dispatcher::binding;
use serde_json::Value;

use super::reference::{self, Reference, Target};
use super::{Mode, ServerArgs, client::Client};

/// Flags of `knit send`.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// Where to: a URL, `broker:NAMESPACE/NAME` or `channel:NAMESPACE/NAME` (`broker:NAME`
    /// with `-n`), resolved through the admin API of a running server.
    #[arg(long)]
    pub to: String,
    /// Namespace of a `--to broker:NAME` or `channel:NAME` (default `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
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
    /// Send `Authorization: Bearer TOKEN` (a Broker or channel with `authentication-oidc` on
    /// answers 401 without one; mint one with `POST /api/v1/oidc/token` on the admin API).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KNIT_OIDC_TOKEN",
        hide_env_values = true,
        conflicts_with = "oidc_token_file"
    )]
    pub oidc_token: Option<String>,
    /// Read the bearer token from FILE (read at each send, as Knative's `/oidc/token`).
    #[arg(long, value_name = "FILE")]
    pub oidc_token_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Where an event goes: a URL, or a Broker or channel of a running server.
enum Destination {
    /// A URL given as is.
    Url(String),
    /// A Broker or channel, with the address it has on the server.
    Object {
        /// `broker` or `channel`.
        kind: &'static str,
        /// Its namespace and name.
        at: Reference,
        /// Its `status.address.url`.
        url: String,
    },
}

impl Destination {
    fn url(&self) -> &str {
        match self {
            Destination::Url(u) | Destination::Object { url: u, .. } => u,
        }
    }
}

/// The object's address; an unknown Broker or channel is an error naming the ones there are.
async fn address(client: &Client, kind: &str, target: Target, at: &Reference) -> Result<String> {
    let plurals: &[&str] = match target {
        Target::Channel => &["channels", "inmemorychannels", "kafkachannels"],
        _ => &["brokers"],
    };
    for plural in plurals {
        let path = format!("/api/v1/{plural}/{}/{}", at.namespace, at.name);
        let (status, obj) = client.get_with_status(&path).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            continue;
        }
        if !status.is_success() {
            bail!("{}", obj["error"].as_str().unwrap_or(status.as_str()));
        }
        return obj
            .pointer("/status/address/url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("{kind} {at} has no address yet (is it Ready?)"));
    }
    reference::must_exist(client, target, at).await?;
    bail!("{kind} {at} has no address")
}

async fn resolve(args: &SendArgs) -> Result<Destination> {
    let (kind, target, rest) = match args.to.split_once(':') {
        Some(("broker", rest)) => ("broker", Target::Broker, rest),
        Some(("channel", rest)) => ("channel", Target::Channel, rest),
        _ => return Ok(Destination::Url(args.to.clone())),
    };
    let at = reference::parse(&format!("--to {kind}:"), rest, args.namespace.as_deref())?;
    let url = address(&Client::new(&args.server)?, kind, target, &at).await?;
    Ok(Destination::Object { kind, at, url })
}

/// What `knit send` prints on an answer: `202 Accepted: event ID to broker NS/NAME (follow it:
/// knit trace ID --broker NS/NAME)`, or `... to URL`.
fn answer_line(status: reqwest::StatusCode, id: &str, to: &Destination) -> String {
    let answer = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    match to {
        Destination::Url(url) => format!("{answer}: event {id} to {url}"),
        Destination::Object { kind, at, .. } if status.is_success() => format!(
            "{answer}: event {id} to {kind} {at} (follow it: knit trace {id} --{kind} {at})"
        ),
        Destination::Object { kind, at, .. } => format!("{answer}: event {id} to {kind} {at}"),
    }
}

/// The event the flags describe, with a random UUID as id unless `--id` is given.
async fn event(args: &SendArgs) -> Result<Event> {
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
    Ok(ev)
}

/// The bearer token of `--oidc-token` or `--oidc-token-file`, trimmed.
fn oidc_token(args: &SendArgs) -> Result<Option<String>> {
    let token = match (&args.oidc_token, &args.oidc_token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the OIDC token file {}", f.display()))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(token.trim().to_string()).filter(|t| !t.is_empty()))
}

/// Send the event and print the answer with the event's id; fails on a non-2xx answer.
pub async fn run(args: SendArgs) -> Result<()> {
    let to = resolve(&args).await?;
    let ev = event(&args).await?;
    let mut headers = http::HeaderMap::new();
    let body = match args.mode {
        Mode::Binary => binding::encode_binary(&ev, &mut headers, &[]),
        Mode::Structured => binding::encode_structured(&ev, &mut headers, &[]),
    };
    if let Some(token) = oidc_token(&args)? {
        let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the OIDC token is not a valid header value")?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    let url = to.url();
    let client = args.server.http_client(Duration::from_secs(30))?;
    let resp = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("{}", answer_line(status, &ev.id, &to));
    if !text.trim().is_empty() {
        println!("{}", text.trim_end());
    }
    if !status.is_success() {
        bail!("the event was not accepted ({status})");
    }
    Ok(())
}
