//! `knit stats`: every event's fate (`/api/v1/stats`), per Trigger, Subscription and source and
//! in total, as a table or as JSON/YAML; with `--all-replicas`, summed over the replicas of the
//! system, with each replica's totals.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::client::Client;
use super::{Output, ServerArgs};

/// Flags of `knit stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Ask every replica (`knit get replicas`) and sum their counters per object; the JSON
    /// keeps each replica's own answer under `replicas`.
    #[arg(long)]
    pub all_replicas: bool,
    /// Output format (`wide` is the table).
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// The counters, in the table's order, with their column titles.
const COLUMNS: [(&str, &str); 7] = [
    ("delivered", "DELIVERED"),
    ("filtered", "FILTERED"),
    ("retries", "RETRIES"),
    ("deferred", "DEFERRED"),
    ("deadLettered", "DEAD-LETTERED"),
    ("dropped", "DROPPED"),
    ("shed", "SHED"),
];

/// `knit stats`.
pub async fn run(args: &StatsArgs) -> Result<()> {
    let stats = if args.all_replicas {
        let answers = super::fanout::ask_all(&args.server, "/api/v1/stats").await?;
        super::merge::stats(
            answers
                .into_iter()
                .filter(|a| a.status.is_success())
                .map(|a| (a.replica, a.body))
                .collect(),
        )
    } else {
        Client::new(&args.server)?.get("/api/v1/stats").await?
    };
    match args.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&stats)?),
        Some(Output::Yaml) => print!("{}", serde_saphyr::to_string(&stats)?),
        Some(Output::Wide) | None => print!("{}", render(&stats)),
    }
    Ok(())
}

fn count(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_u64).unwrap_or(0).to_string()
}

/// One row: a name, then each counter of `v`.
fn row(name: &str, v: &Value) -> Vec<String> {
    std::iter::once(name.to_string())
        .chain(COLUMNS.iter().map(|(k, _)| count(v, k)))
        .collect()
}

/// Rows as aligned columns.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("   ").trim_end());
    }
    out
}

fn header(first: &str) -> Vec<String> {
    std::iter::once(first.to_string())
        .chain(COLUMNS.iter().map(|(_, t)| t.to_string()))
        .collect()
}

/// The counters per egress and in total, then `unmatched`, then (merged answers) each
/// replica's totals.
pub fn render(stats: &Value) -> String {
    let mut rows = vec![header("OBJECT")];
    for (name, v) in stats["egresses"].as_object().into_iter().flatten() {
        rows.push(row(name, v));
    }
    rows.push(row("total", stats));
    let mut out = columns(&rows);
    let _ = writeln!(
        out,
        "unmatched (no Trigger wanted it): {}",
        count(stats, "unmatched")
    );
    if let Some(each) = stats["replicas"].as_object() {
        let mut rows = vec![header("REPLICA")];
        rows.extend(each.iter().map(|(id, v)| row(id, v)));
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_then_the_total_then_each_replica() {
        let v = serde_json::json!({
            "delivered": 5, "unmatched": 1,
            "egresses": {"Trigger/default/t": {"delivered": 5, "retries": 2}},
            "replicas": {"r0": {"delivered": 2}, "r1": {"delivered": 3}}
        });
        let t = render(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("OBJECT") && lines[0].contains("DEAD-LETTERED"),
            "{t}"
        );
        assert!(lines[1].starts_with("Trigger/default/t   5"), "{t}");
        assert!(lines[2].starts_with("total"), "{t}");
        assert!(t.contains("unmatched (no Trigger wanted it): 1"), "{t}");
        assert!(
            lines.iter().any(|l| l.starts_with("r1") && l.contains('3')),
            "{t}"
        );
    }
}
