//! `knit get replicas`: the `knit run` processes that form this system (`/api/v1/cluster`),
//! what each leads, as a table or as JSON/YAML.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde_json::Value;

use super::client::Client;
use super::{GetArgs, Output};

/// `knit get replicas`.
pub async fn list(args: &GetArgs) -> Result<()> {
    if let Some(flag) = args.events.given().first() {
        bail!("{flag} is for knit get events");
    }
    let c = Client::new(&args.server)?;
    let cluster = c.get("/api/v1/cluster").await?;
    match args.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&cluster)?),
        Some(Output::Yaml) => print!("{}", serde_saphyr::to_string(&cluster)?),
        Some(Output::Wide) | None => print!("{}", render(&cluster)),
    }
    Ok(())
}

/// The members as a table: this replica marked with `*`, what each leads.
pub fn render(cluster: &Value) -> String {
    let me = cluster
        .get("replica")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let s = |m: &Value, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut rows = vec![[
        "REPLICA".to_string(),
        "ADMIN".into(),
        "SINCE".into(),
        "LAST SEEN".into(),
        "LEADS".into(),
    ]];
    for m in cluster
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = s(m, "id");
        let mark = if id == me { " *" } else { "" };
        let leads: Vec<&str> = m
            .get("leads")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        rows.push([
            format!("{id}{mark}"),
            s(m, "adminUrl"),
            s(m, "since"),
            s(m, "lastSeen"),
            if leads.is_empty() {
                "-".into()
            } else {
                leads.join(",")
            },
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("   ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_listed_with_what_they_lead_and_this_one_marked() {
        let v = serde_json::json!({
            "replica": "a:1",
            "engine": "kafka",
            "members": [
                {"id": "a:1", "adminUrl": "http://a", "since": "s", "lastSeen": "l", "leads": ["PingSource/ns/p"]},
                {"id": "b:2", "adminUrl": "http://b", "since": "s", "lastSeen": "l", "leads": []}
            ],
            "leaders": {"PingSource/ns/p": "a:1"}
        });
        let t = render(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("REPLICA"), "{t}");
        assert!(
            lines[1].starts_with("a:1 *") && lines[1].ends_with("PingSource/ns/p"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("b:2") && lines[2].ends_with('-'),
            "{t}"
        );
    }
}
