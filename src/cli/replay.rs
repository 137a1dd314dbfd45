//! `knit replay trigger NAME --from POS [--to POS]`: re-deliver a Kafka Broker's events in a
//! range to one Trigger, following the run until it ends (or only starting it, `--detach`).
//! Exit 0 when every matching event was delivered, 1 when the replay was refused or failed,
//! 2 when some events were not delivered (dead-lettered or dropped).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::ServerArgs;
use super::client::Client;

/// How often a running replay is polled.
const POLL: Duration = Duration::from_millis(250);

/// Arguments of `knit replay trigger`.
#[derive(clap::Args, Debug)]
pub struct TriggerArgs {
    /// The Trigger.
    pub name: String,
    /// Its namespace.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Where to start (inclusive): an RFC 3339 time, an offset on every partition (`0`),
    /// `partition:offset` pairs (`0:12,1:40`; only those partitions), or `earliest`.
    #[arg(long)]
    pub from: String,
    /// Where to stop (exclusive), in the same forms; default: the topic's end when the replay
    /// starts.
    #[arg(long)]
    pub to: Option<String>,
    /// Start the replay, print its id and return without following it.
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_default()
}

fn progress(run: &Value) -> String {
    format!(
        "read {} of {}, matched {}, delivered {}, failed {}",
        n(run, "read"),
        n(run, "span"),
        n(run, "matched"),
        n(run, "delivered"),
        n(run, "failed")
    )
}

/// Run `knit replay trigger`.
pub async fn trigger(args: TriggerArgs) -> Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let mut body = json!({ "from": args.from });
    if let Some(to) = &args.to {
        body["to"] = json!(to);
    }
    let run = client
        .post(
            &format!("/api/v1/replay/{}/{}", args.namespace, args.name),
            &body,
        )
        .await
        .context("replay refused")?;
    let id = run["id"].as_str().unwrap_or_default().to_string();
    let ranges: Vec<String> = run["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}:[{}, {})", p["partition"], p["from"], p["to"]))
        .collect();
    println!(
        "replay {id}: trigger/{} of broker {}, from {} to {} (partition:[from, to) {})",
        args.name,
        run["broker"].as_str().unwrap_or_default(),
        run["from"].as_str().unwrap_or_default(),
        run["to"].as_str().unwrap_or_default(),
        if ranges.is_empty() {
            "none".to_string()
        } else {
            ranges.join(" ")
        }
    );
    println!("events carry the extension knitreplay={id}");
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let mut last = String::new();
    let mut run = run;
    loop {
        let line = progress(&run);
        if line != last {
            println!("{line}");
            last = line;
        }
        if run["done"].as_bool().unwrap_or(false) {
            break;
        }
        tokio::time::sleep(POLL).await;
        run = client
            .get(&format!("/api/v1/replay/{id}"))
            .await
            .context("cannot follow the replay")?;
    }
    if let Some(e) = run["error"].as_str() {
        anyhow::bail!("replay {id} failed: {e} ({})", progress(&run));
    }
    let word = if run["cancelled"].as_bool().unwrap_or(false) {
        "cancelled"
    } else {
        "done"
    };
    println!(
        "replay {id} {word}: read {}, matched {}, delivered {}, failed {} (dead-lettered {})",
        n(&run, "read"),
        n(&run, "matched"),
        n(&run, "delivered"),
        n(&run, "failed"),
        n(&run, "deadLettered")
    );
    Ok(if n(&run, "failed") > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
