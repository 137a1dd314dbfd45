//! `knit trace EVENT_ID` and `knit get events`: clients of the event journal on the admin API
//! (`/api/v1/events`), printing journeys for people.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde_json::Value;

use super::ServerArgs;
use super::client::Client;

/// Flags of `knit trace`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("ingress").required(true).args(["broker", "channel"]))]
pub struct TraceArgs {
    /// The event's id.
    pub id: String,
    /// The Broker it was posted to: `NAMESPACE/NAME`, or `NAME` in `default`.
    #[arg(long)]
    pub broker: Option<String>,
    /// The channel it was posted to: `NAMESPACE/NAME`, or `NAME` in `default`.
    #[arg(long)]
    pub channel: Option<String>,
    /// The event's source, when several events share the id.
    #[arg(long)]
    pub source: Option<String>,
    /// Print the journey as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `knit get events`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EventsArgs {
    /// (`get events`) Journeys through this Broker.
    #[arg(long)]
    pub broker: Option<String>,
    /// (`get events`) Journeys through this channel.
    #[arg(long, conflicts_with = "broker")]
    pub channel: Option<String>,
    /// (`get events`) Only events of this type.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// (`get events`) Only journeys where something failed (a failed attempt, a dead letter,
    /// a drop, a refusal).
    #[arg(long)]
    pub failed: bool,
    /// (`get events`) Most journeys listed, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

fn split(reference: &str) -> (&str, &str) {
    match reference.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => ("default", reference),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `knit trace`: prints the journey; `Ok(false)` when the journal does not know the event.
pub async fn trace(args: &TraceArgs) -> Result<bool> {
    let (flag, reference) = match (&args.broker, &args.channel) {
        (Some(b), _) => ("--broker", b.as_str()),
        (_, Some(c)) => ("--channel", c.as_str()),
        _ => bail!("give --broker NAMESPACE/NAME or --channel NAMESPACE/NAME"),
    };
    let (ns, name) = split(reference);
    let mut path = format!(
        "/api/v1/events/{}/{}/{}",
        encode(ns),
        encode(name),
        encode(&args.id)
    );
    if let Some(s) = &args.source {
        path.push_str(&format!("?source={}", encode(s)));
    }
    let c = Client::new(&args.server)?;
    let (status, journey) = c.get_with_status(&path).await?;
    if status == reqwest::StatusCode::NOT_FOUND && journey.get("tooOld").is_some() {
        eprintln!("{}", str_of(&journey, "error"));
        return Ok(false);
    }
    if !status.is_success() {
        bail!("{}", str_of(&journey, "error"));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&journey)?);
    } else {
        print!("{}", render(&journey, &format!("{flag} {ns}/{name}")));
    }
    Ok(true)
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
    let ingress = &j["ingress"];
    let at = format!(
        "{} {}/{}",
        str_of(ingress, "kind"),
        str_of(ingress, "namespace"),
        str_of(ingress, "name")
    );
    match j.get("accepted").filter(|a| !a.is_null()) {
        Some(a) => {
            let _ = writeln!(
                out,
                "  accepted       {}  at {at} ({} bytes, {} mode)",
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
        }
        None => {
            let _ = writeln!(
                out,
                "  accepted       (too old to know: the journal forgot its start) at {at}"
            );
        }
    }
    let egresses = j["egresses"].as_array().cloned().unwrap_or_default();
    if egresses.is_empty() {
        let _ = writeln!(out, "  (no Trigger or Subscription)");
    }
    for e in &egresses {
        let who = format!("{}/{}", str_of(e, "kind").to_lowercase(), str_of(e, "name"));
        if e["matched"] == Value::Bool(false) {
            let _ = writeln!(
                out,
                "  {who}: no match — {}: {}",
                str_of(e, "clause"),
                str_of(e, "reason")
            );
            continue;
        }
        let _ = writeln!(out, "  {who}: matched");
        let attempts = e["attempts"].as_array().cloned().unwrap_or_default();
        let mut n = 0;
        for a in &attempts {
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
        let retries = e["retries"].as_u64().unwrap_or(0);
        let after = match retries {
            0 => String::new(),
            1 => " after 1 retry".into(),
            r => format!(" after {r} retries"),
        };
        let outcome = match str_of(e, "outcome") {
            "delivered" => format!("delivered{after}"),
            "deadLettered" => format!("dead-lettered{after}"),
            "dropped" => format!("dropped{after}: {}", str_of(e, "reason")),
            "inFlight" => "still in flight".into(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "    outcome        {outcome}");
    }
    out
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

/// `knit get events`: recent journeys as a table.
pub async fn list(server: &ServerArgs, namespace: &str, args: &EventsArgs) -> Result<()> {
    let mut path = format!(
        "/api/v1/events?namespace={}&limit={}",
        encode(namespace),
        args.limit
    );
    match (&args.broker, &args.channel) {
        (Some(b), _) => path.push_str(&format!("&broker={}", encode(b))),
        (_, Some(c)) => path.push_str(&format!("&channel={}", encode(c))),
        _ => bail!("give --broker NAME or --channel NAME"),
    }
    if let Some(t) = &args.event_type {
        path.push_str(&format!("&type={}", encode(t)));
    }
    if args.failed {
        path.push_str("&failed=true");
    }
    let v = Client::new(server)?.get(&path).await?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("No events found in {namespace} namespace.");
        return Ok(());
    }
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
        s
    };
    println!("{}", line(header));
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    Ok(())
}
