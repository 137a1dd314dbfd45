//! `knit get events`: the recent journeys through one Broker or channel, from the event
//! journal on the admin API (`/api/v1/events`), as a table or as JSON/YAML.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::client::Client;
use super::reference::{self, Reference, Target};
use super::{GetArgs, Output};

/// Journeys listed when `--limit` is not given.
const DEFAULT_LIMIT: usize = 50;

/// Flags of `knit get events`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EventsArgs {
    /// (`get events`) Journeys through this Broker: `NAMESPACE/NAME`, or `NAME` with `-n`.
    #[arg(long)]
    pub broker: Option<String>,
    /// (`get events`) Journeys through this channel: `NAMESPACE/NAME`, or `NAME` with `-n`.
    #[arg(long, conflicts_with = "broker")]
    pub channel: Option<String>,
    /// (`get events`) Only events of this type.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// (`get events`) Only journeys where something failed (a failed attempt, a dead letter,
    /// a drop, a refusal).
    #[arg(long)]
    pub failed: bool,
    /// (`get events`) Most journeys listed, newest first [default: 50].
    #[arg(long)]
    pub limit: Option<usize>,
    /// (`get events`) Ask every replica (`knit get replicas`) and merge: each event once, with
    /// what each replica saw of it.
    #[arg(long)]
    pub all_replicas: bool,
}

impl EventsArgs {
    /// The flags given, for refusing them where they mean nothing.
    pub fn given(&self) -> Vec<&'static str> {
        [
            (self.broker.is_some(), "--broker"),
            (self.channel.is_some(), "--channel"),
            (self.event_type.is_some(), "--type"),
            (self.failed, "--failed"),
            (self.limit.is_some(), "--limit"),
            (self.all_replicas, "--all-replicas"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }

    /// The Broker or channel asked for.
    fn target(&self, namespace: Option<&str>) -> Result<(Target, Reference)> {
        match (&self.broker, &self.channel) {
            (Some(b), _) => Ok((Target::Broker, reference::parse("--broker", b, namespace)?)),
            (_, Some(c)) => Ok((
                Target::Channel,
                reference::parse("--channel", c, namespace)?,
            )),
            _ => bail!("give --broker NAME or --channel NAME (NAMESPACE/NAME, or NAME with -n)"),
        }
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The journal query for these flags.
fn query(args: &EventsArgs, target: Target, at: &Reference) -> String {
    let param = if target == Target::Channel {
        "channel"
    } else {
        "broker"
    };
    let mut path = format!(
        "/api/v1/events?namespace={}&{param}={}&limit={}",
        encode(&at.namespace),
        encode(&at.name),
        args.limit.unwrap_or(DEFAULT_LIMIT)
    );
    if let Some(t) = &args.event_type {
        let _ = write!(path, "&type={}", encode(t));
    }
    if args.failed {
        path.push_str("&failed=true");
    }
    path
}

/// `knit get events`: recent journeys as a table, or as `{"items": [...]}` with `-o json|yaml`.
/// An unknown Broker or channel is an error naming the ones there are.
pub async fn list(args: &GetArgs) -> Result<()> {
    if let Some(name) = &args.name {
        bail!(
            "knit get events takes no NAME ({name:?}): to follow one event, use knit trace {name} --broker NAMESPACE/NAME"
        );
    }
    if args.all_namespaces {
        bail!("knit get events lists one Broker or channel: give --broker or --channel, not -A");
    }
    let (target, at) = args.events.target(args.namespace.as_deref())?;
    let client = Client::new(&args.server)?;
    let path = query(&args.events, target, &at);
    let items = if args.events.all_replicas {
        every_replica(
            &args.server,
            &path,
            args.events.limit.unwrap_or(DEFAULT_LIMIT),
        )
        .await?
    } else {
        let answer = client.get(&path).await?;
        answer["items"].as_array().cloned().unwrap_or_default()
    };
    if items.is_empty() {
        reference::must_exist(&client, target, &at).await?;
    }
    match args.output {
        Some(Output::Json) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"items": items}))?
            );
        }
        Some(Output::Yaml) => print!("{}", serde_saphyr::to_string(&json!({"items": items}))?),
        Some(Output::Wide) | None if items.is_empty() => {
            eprintln!("No events found at {at}.");
        }
        Some(Output::Wide) | None => print!("{}", table(&items)),
    }
    Ok(())
}

/// The journeys every replica lists at `path`, merged: each event once, newest first, at most
/// `limit`.
async fn every_replica(server: &super::ServerArgs, path: &str, limit: usize) -> Result<Vec<Value>> {
    let mut lists = Vec::new();
    for a in super::fanout::ask_all(server, path).await? {
        if !a.status.is_success() {
            eprintln!(
                "warning: replica {} answered {}, shown without it: {}",
                a.replica,
                a.status,
                str_of(&a.body, "error")
            );
            continue;
        }
        let items: Vec<knit_dispatcher::observe::Journey> =
            serde_json::from_value(a.body["items"].clone()).unwrap_or_default();
        lists.push((a.replica, items));
    }
    Ok(super::merge::journeys(lists, limit))
}

/// A journey's outcomes in one cell: `orders=delivered audit=filtered`.
fn outcomes(j: &Value) -> String {
    let egresses = j["egresses"].as_array().cloned().unwrap_or_default();
    if egresses.is_empty() {
        return match j.pointer("/accepted/refused") {
            Some(s) if !s.is_null() => format!("refused {s}"),
            _ => "-".into(),
        };
    }
    egresses
        .iter()
        .map(|e| format!("{}={}", str_of(e, "name"), str_of(e, "outcome")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Journeys as a table: ACCEPTED, ID, TYPE, SOURCE, OUTCOMES.
fn table(items: &[Value]) -> String {
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|j| {
            [
                j.pointer("/accepted/at")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                str_of(j, "id").to_string(),
                str_of(j, "type").to_string(),
                str_of(j, "source").to_string(),
                outcomes(j),
            ]
        })
        .collect();
    let header = ["ACCEPTED", "ID", "TYPE", "SOURCE", "OUTCOMES"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<w$}   ");
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}
