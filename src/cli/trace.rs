//! `knit trace EVENT_ID`: one event's journey from the event journal on the admin API
//! (`/api/v1/events/...`), printed for people.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde_json::Value;

use super::ServerArgs;
use super::client::Client;
use super::reference::{self, Reference, Target};

/// Flags of `knit trace`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("ingress").required(true).args(["broker", "channel"]))]
pub struct TraceArgs {
    /// The event's id.
    pub id: String,
    /// The Broker it was posted to (or the source that sent it): `NAMESPACE/NAME`, or `NAME`
    /// with `-n`.
    #[arg(long)]
    pub broker: Option<String>,
    /// The channel it was posted to: `NAMESPACE/NAME`, or `NAME` with `-n`.
    #[arg(long)]
    pub channel: Option<String>,
    /// Namespace of a `--broker` or `--channel` given as `NAME` (default `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The event's source, when several events share the id.
    #[arg(long)]
    pub source: Option<String>,
    /// Print the journey as JSON.
    #[arg(long)]
    pub json: bool,
    /// Ask every replica (`knit get replicas`) and merge what each saw of the event (the one
    /// that accepted it, the ones that delivered it).
    #[arg(long)]
    pub all_replicas: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl TraceArgs {
    /// The flag given, what it may name, and the reference.
    fn target(&self) -> Result<(&'static str, Target, Reference)> {
        let ns = self.namespace.as_deref();
        match (&self.broker, &self.channel) {
            (Some(b), _) => Ok((
                "--broker",
                Target::BrokerOrSender,
                reference::parse("--broker", b, ns)?,
            )),
            (_, Some(c)) => Ok((
                "--channel",
                Target::Channel,
                reference::parse("--channel", c, ns)?,
            )),
            _ => bail!("give --broker NAMESPACE/NAME or --channel NAMESPACE/NAME"),
        }
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `knit trace`: prints the journey; `Ok(false)` when the journal does not know the event. An
/// unknown Broker or channel is an error naming the ones there are.
pub async fn trace(args: &TraceArgs) -> Result<bool> {
    let (flag, target, at) = args.target()?;
    let mut path = format!(
        "/api/v1/events/{}/{}/{}",
        encode(&at.namespace),
        encode(&at.name),
        encode(&args.id)
    );
    if let Some(s) = &args.source {
        let _ = write!(path, "?source={}", encode(s));
    }
    let c = Client::new(&args.server)?;
    let (status, journey) = if args.all_replicas {
        every_replica(&args.server, &path).await?
    } else {
        c.get_with_status(&path).await?
    };
    if status == reqwest::StatusCode::NOT_FOUND && journey.get("tooOld").is_some() {
        reference::must_exist(&c, target, &at).await?;
        eprintln!("{}", str_of(&journey, "error"));
        return Ok(false);
    }
    if !status.is_success() {
        bail!("{}", str_of(&journey, "error"));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&journey)?);
    } else {
        print!("{}", render(&journey, &format!("{flag} {at}")));
    }
    Ok(true)
}

/// The journey at `path` as every replica that knows it saw it, merged; else a 404 (`tooOld`
/// when one of them knew it and forgot it).
async fn every_replica(
    server: &super::ServerArgs,
    path: &str,
) -> Result<(reqwest::StatusCode, Value)> {
    let answers = super::fanout::ask_all(server, path).await?;
    let mut seen = Vec::new();
    let mut unknown: Option<Value> = None;
    for a in answers {
        if a.status.is_success() {
            match serde_json::from_value(a.body) {
                Ok(j) => seen.push((a.replica, j)),
                Err(e) => eprintln!("warning: replica {}: not a journey: {e}", a.replica),
            }
        } else if unknown.is_none() || a.body["tooOld"] == Value::Bool(true) {
            unknown = Some(a.body);
        }
    }
    Ok(match super::merge::journey(seen) {
        Some(j) => (reqwest::StatusCode::OK, j),
        None => (
            reqwest::StatusCode::NOT_FOUND,
            unknown.unwrap_or_else(
                || serde_json::json!({"error": "no replica knows the event", "tooOld": false}),
            ),
        ),
    })
}

fn attempt_line(a: &Value, n: usize) -> String {
    let target = match str_of(a, "target") {
        "reply" => "reply to".to_string(),
        "deadLetter" => "dead letter to".to_string(),
        _ => format!("attempt {n}"),
    };
    let answer = match (a.get("status").and_then(Value::as_u64), a.get("error")) {
        (Some(s), _) => s.to_string(),
        (None, Some(e)) => format!("failed: {}", e.as_str().unwrap_or_default()),
        _ => "no answer".into(),
    };
    let latency = a.get("latencyMs").and_then(Value::as_f64).unwrap_or(0.0);
    let mut line = format!(
        "    {target:<14} {}  {} → {answer} in {latency:.1} ms",
        str_of(a, "at"),
        str_of(a, "destination")
    );
    if let Some(w) = a.get("retryInMs").and_then(Value::as_u64) {
        let _ = write!(line, "; retry in {w} ms");
    }
    line
}

/// The journey for people: times, each Trigger or Subscription, each attempt, the reply.
pub fn render(j: &Value, ingress_flag: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "event {} (type {}, source {})",
        str_of(j, "id"),
        str_of(j, "type"),
        str_of(j, "source")
    );
    if let Some(replicas) = j["replicas"].as_array() {
        let ids: Vec<&str> = replicas.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "  seen on        replicas {}", ids.join(", "));
    }
    out.push_str(&accepted(j));
    let egresses = j["egresses"].as_array().cloned().unwrap_or_default();
    if egresses.is_empty() {
        let _ = writeln!(out, "  (no Trigger or Subscription)");
    }
    for e in &egresses {
        out.push_str(&egress(e, ingress_flag));
    }
    out
}

/// Where and how the event was accepted (or refused by the log).
fn accepted(j: &Value) -> String {
    let ingress = &j["ingress"];
    let at = format!(
        "{} {}/{}",
        str_of(ingress, "kind"),
        str_of(ingress, "namespace"),
        str_of(ingress, "name")
    );
    let Some(a) = j.get("accepted").filter(|a| !a.is_null()) else {
        return format!(
            "  accepted       (too old to know: the journal forgot its start) at {at}\n"
        );
    };
    let mut out = format!(
        "  accepted       {}  at {at} ({} bytes, {} mode)\n",
        str_of(a, "at"),
        a["size"],
        str_of(a, "mode")
    );
    if let Some(s) = a.get("refused").and_then(Value::as_u64) {
        let _ = writeln!(
            out,
            "  refused        the log did not take it: answered {s}"
        );
    }
    out
}

/// One Trigger's or Subscription's part: its filter's verdict, each attempt, the reply, the
/// outcome.
fn egress(e: &Value, ingress_flag: &str) -> String {
    let who = format!("{}/{}", str_of(e, "kind").to_lowercase(), str_of(e, "name"));
    if e["matched"] == Value::Bool(false) {
        return format!(
            "  {who}: no match — {}: {}\n",
            str_of(e, "clause"),
            str_of(e, "reason")
        );
    }
    let mut out = format!("  {who}: matched\n");
    let mut n = 0;
    for a in e["attempts"].as_array().into_iter().flatten() {
        if str_of(a, "target") == "subscriber" {
            n += 1;
        }
        let _ = writeln!(out, "{}", attempt_line(a, n));
    }
    if let Some(k) = e.get("omitted").and_then(Value::as_u64) {
        let _ = writeln!(out, "    ({k} more steps not kept)");
    }
    if let Some(id) = e.pointer("/reply/id").and_then(Value::as_str) {
        let _ = writeln!(
            out,
            "    reply          new event {id} (follow it: knit trace {id} {ingress_flag})"
        );
    }
    let _ = writeln!(out, "    outcome        {}", outcome(e));
    out
}

/// `delivered after 1 retry`, `dead-lettered`, `dropped: REASON`, `still in flight`.
fn outcome(e: &Value) -> String {
    let after = match e["retries"].as_u64().unwrap_or(0) {
        0 => String::new(),
        1 => " after 1 retry".into(),
        r => format!(" after {r} retries"),
    };
    match str_of(e, "outcome") {
        "delivered" => format!("delivered{after}"),
        "deadLettered" => format!("dead-lettered{after}"),
        "dropped" => format!("dropped{after}: {}", str_of(e, "reason")),
        "inFlight" => "still in flight".into(),
        other => other.to_string(),
    }
}
