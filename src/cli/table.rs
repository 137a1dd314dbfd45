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

/// The column that says where an object is or sends, as Knative's printer columns name it:
/// a Trigger's `SUBSCRIBER_URI`, a source's `SINK`, everything else's `URL`.
fn where_column(kind: &str) -> &'static str {
    match kind {
        "Trigger" | "Subscription" => "SUBSCRIBER_URI",
        "PingSource" | "ApiServerSource" | "ContainerSource" | "GitHubSource" | "KafkaSource"
        | "CloudPubSubSource" | "SinkBinding" => "SINK",
        _ => "URL",
    }
}

/// The value of [`where_column`] for one object.
fn where_value(obj: &Value, column: &str) -> String {
    let pointers: &[&str] = match column {
        "SUBSCRIBER_URI" => &[
            "/status/subscriberUri",
            "/status/physicalSubscription/subscriberUri",
        ],
        "SINK" => &["/status/sinkUri"],
        _ => return url_of(obj),
    };
    pointers
        .iter()
        .find_map(|p| str_at(obj, p))
        .unwrap_or_default()
        .to_string()
}

/// The columns of one listing (all objects are of one kind), kubectl's order: NAMESPACE, NAME,
/// the kind's own (BROKER), where it is or sends, AGE, READY, REASON; `wide` adds CONDITIONS and
/// MESSAGE.
struct Columns {
    all_namespaces: bool,
    broker: bool,
    place: &'static str,
    wide: bool,
}

impl Columns {
    fn header(&self) -> Vec<String> {
        let mut h = Vec::new();
        if self.all_namespaces {
            h.push("NAMESPACE");
        }
        h.push("NAME");
        if self.broker {
            h.push("BROKER");
        }
        h.extend([self.place, "AGE"]);
        if self.wide {
            h.push("CONDITIONS");
        }
        h.extend(["READY", "REASON"]);
        if self.wide {
            h.push("MESSAGE");
        }
        h.into_iter().map(str::to_string).collect()
    }

    fn row(&self, o: &Value) -> Vec<String> {
        let at = |p: &str| str_at(o, p).unwrap_or_default().to_string();
        let mut row = Vec::new();
        if self.all_namespaces {
            row.push(at("/metadata/namespace"));
        }
        row.push(at("/metadata/name"));
        if self.broker {
            let broker = str_at(o, "/spec/broker").or(str_at(o, "/spec/brokerRef/name"));
            row.push(broker.unwrap_or_default().to_string());
        }
        row.push(where_value(o, self.place));
        row.push(age(o));
        if self.wide {
            row.push(conditions_summary(o));
        }
        let ready = |field: &str| {
            condition(o, "Ready")
                .and_then(|c| c.get(field))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        row.extend([ready("status"), ready("reason")]);
        if self.wide {
            row.push(ready("message"));
        }
        row
    }
}

/// Rows padded to their columns' widths, three spaces apart, the last column unpadded.
fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
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

/// Render objects (of one kind) as a table.
pub fn render(items: &[Value], all_namespaces: bool, wide: bool) -> String {
    let kind = items
        .first()
        .and_then(|o| o.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let columns = Columns {
        all_namespaces,
        broker: kind == "Trigger",
        place: where_column(kind),
        wide,
    };
    let mut rows = vec![columns.header()];
    rows.extend(items.iter().map(|o| columns.row(o)));
    align(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn triggers_show_their_subscriber_uri_as_kubectl_does() {
        let t = json!({"kind": "Trigger", "metadata": {"name": "t"}, "spec": {"broker": "b"},
            "status": {"subscriberUri": "http://sub/", "conditions": [
                {"type": "Ready", "status": "True"}]}});
        let out = render(&[t], false, false);
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            ["NAME", "BROKER", "SUBSCRIBER_URI", "AGE", "READY", "REASON"]
        );
        let row: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(row[..3], ["t", "b", "http://sub/"]);
        assert_eq!(row[4], "True");
    }

    #[test]
    fn sources_show_their_sink_and_brokers_their_url() {
        let p = json!({"kind": "PingSource", "metadata": {"name": "p"},
            "status": {"sinkUri": "http://sink/"}});
        let out = render(&[p], true, true);
        assert!(out.starts_with("NAMESPACE   NAME   SINK"), "{out}");
        assert!(out.contains("http://sink/"), "{out}");
        let b = json!({"kind": "Broker", "metadata": {"name": "b"},
            "status": {"address": {"url": "http://in/default/b"}}});
        let out = render(&[b], false, false);
        assert!(out.starts_with("NAME   URL"), "{out}");
        assert!(out.contains("http://in/default/b"), "{out}");
    }
}
