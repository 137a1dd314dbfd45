//! The table view of `knit get`, with kn's READY, REASON and URL columns.

use serde_json::Value;

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The condition named `type_` of an object.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// The URL an object is best known by: its address, its URL, or where it sends events (a
/// Knative Service or Route by its public URL, as `kn` shows it).
pub fn url_of(obj: &Value) -> String {
    let serving = obj["apiVersion"]
        .as_str()
        .is_some_and(|a| a.starts_with("serving.knative.dev/"));
    if serving && let Some(u) = str_at(obj, "/status/url") {
        return u.to_string();
    }
    [
        "/status/address/url",
        "/status/url",
        "/status/subscriberUri",
        "/status/sinkUri",
        "/status/physicalSubscription/subscriberUri",
    ]
    .iter()
    .find_map(|p| str_at(obj, p))
    .unwrap_or_default()
    .to_string()
}

/// Age since creation, like kubectl (`45s`, `3m`, `2h`, `4d`).
pub fn age(obj: &Value) -> String {
    let Some(ts) =
        str_at(obj, "/metadata/creationTimestamp").and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - ts.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn conditions_summary(obj: &Value) -> String {
    let Some(list) = obj.pointer("/status/conditions").and_then(Value::as_array) else {
        return String::new();
    };
    let ok = list
        .iter()
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .count();
    format!("{ok} OK / {}", list.len())
}

/// Render objects as a table.
pub fn render(items: &[Value], all_namespaces: bool, wide: bool) -> String {
    let triggers = items
        .first()
        .and_then(|o| o.get("kind"))
        .and_then(Value::as_str)
        == Some("Trigger");
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    if triggers {
        header.push("BROKER");
    }
    header.extend(["URL", "AGE"]);
    if wide {
        header.push("CONDITIONS");
    }
    header.extend(["READY", "REASON"]);
    if wide {
        header.push("MESSAGE");
    }
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for o in items {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(
                str_at(o, "/metadata/namespace")
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        row.push(str_at(o, "/metadata/name").unwrap_or_default().to_string());
        if triggers {
            row.push(
                str_at(o, "/spec/broker")
                    .or(str_at(o, "/spec/brokerRef/name"))
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        row.push(url_of(o));
        row.push(age(o));
        if wide {
            row.push(conditions_summary(o));
        }
        let ready = condition(o, "Ready");
        row.push(
            ready
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
        row.push(
            ready
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
        if wide {
            row.push(
                ready
                    .and_then(|c| c.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        rows.push(row);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == cols {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}
