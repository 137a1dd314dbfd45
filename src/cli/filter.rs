//! `knit filter test`: which Triggers take an event, and which clause of each decided —
//! offline from Trigger manifests, or against a running server's Broker.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use knit_broker::explain::{Verdict, explain};
use knit_channels::Event;
use knit_crds::Object;
use knit_crds::admission::admit_file;
use knit_crds::contract::EgressFilter;
use knit_dispatcher::binding::{self, Decoded};
use serde_json::{Value, json};

use super::ServerArgs;
use super::client::Client;
use crate::control::files;

/// Read a CloudEvent in structured JSON mode (`{"specversion": ..., "data": ...}`) from `path`
/// (`-` for standard input).
pub fn read_event(path: &str) -> Result<(Event, Value)> {
    let bytes = if path == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {path}"))?
    };
    let json: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{path}: not JSON (give the event in structured mode)"))?;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/cloudevents+json"),
    );
    match binding::decode(&headers, Bytes::from(bytes)) {
        Ok(Decoded::One(e)) => Ok((*e, json)),
        Ok(Decoded::Batch(_)) => bail!("{path}: give one event, not a batch"),
        Err(e) => bail!("{path}: not a valid CloudEvent: {e}"),
    }
}

fn print(name: &str, v: &Verdict) {
    let word = if v.matched { "matched" } else { "no match" };
    println!("{name}: {word} — {}: {}", v.clause, v.reason);
}

/// Offline: the Triggers in `paths` against the event in `event`. Returns whether any matched.
pub fn offline(paths: &[PathBuf], event: &str) -> Result<bool> {
    let (ev, _) = read_event(event)?;
    let mut any = false;
    let mut seen = 0;
    for path in files::list(paths) {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {name}"))?;
        let verdict = admit_file(&name, &text, &crate::hooks());
        if !verdict.errors.is_empty() {
            for e in &verdict.errors {
                eprintln!("{e}");
            }
            bail!("{name}: invalid manifests");
        }
        for o in &verdict.objects {
            let (_, Object::Trigger(t)) = o else { continue };
            seen += 1;
            let filter = EgressFilter {
                attributes: t.spec.filter.clone(),
                filters: t.spec.filters.clone(),
            };
            let v = explain(Some(&filter), &ev);
            any |= v.matched;
            print(
                &format!("trigger/{}", t.metadata.name.clone().unwrap_or_default()),
                &v,
            );
        }
    }
    if seen == 0 {
        bail!("no Trigger in the given files");
    }
    Ok(any)
}

/// Against a running server: every Trigger of `broker` (`NS/NAME`). Returns whether any matched.
pub async fn online(server: &ServerArgs, broker: &str, event: &str) -> Result<bool> {
    let Some((ns, name)) = broker.split_once('/') else {
        bail!("give the broker as NAMESPACE/NAME");
    };
    let (_, json) = read_event(event)?;
    let client = Client::new(server)?;
    let answer = client
        .post(
            &format!("/api/v1/filter-test/{ns}/{name}"),
            &json!({ "event": json }),
        )
        .await?;
    let mut any = false;
    for t in answer["triggers"].as_array().into_iter().flatten() {
        let v: Verdict = serde_json::from_value(t["verdict"].clone())
            .context("unexpected answer from the server")?;
        any |= v.matched;
        print(
            &format!("trigger/{}", t["name"].as_str().unwrap_or_default()),
            &v,
        );
    }
    if answer["triggers"].as_array().is_none_or(Vec::is_empty) {
        println!("broker {ns}/{name} has no Triggers");
    }
    Ok(any)
}
