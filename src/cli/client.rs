//! `knit get`, `describe`, `apply`, `delete`: clients of a running server's admin API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use knit_crds::Kind;
use serde_json::{Value, json};

use super::{GetArgs, Output, ServerArgs, reference, table};
use crate::control::files;

/// A client of the admin API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of `server`.
    pub fn new(server: &ServerArgs) -> Result<Self> {
        let http = server.http_client(Duration::from_secs(30))?;
        Ok(Self {
            http,
            base: server.server.trim_end_matches('/').to_string(),
            token: server.token.clone(),
        })
    }

    /// A client of the admin API at `base` with `server`'s token and trusted CAs, giving up
    /// on each request after `timeout`.
    pub fn at(server: &ServerArgs, base: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            http: server.http_client(timeout)?,
            base: base.trim_end_matches('/').to_string(),
            token: server.token.clone(),
        })
    }

    /// The admin API's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(reqwest::StatusCode, Value)> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the Knit server at {}", self.base))?;
        let status = resp.status();
        let body = resp.bytes().await?;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"error": String::from_utf8_lossy(&body)}));
        Ok((status, value))
    }

    /// POST JSON to a path of the admin API, failing on any non-2xx answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let (status, v) = self
            .send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await?;
        if !status.is_success() {
            bail!(
                "{}",
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or(status.as_str())
            );
        }
        Ok(v)
    }

    /// GET a path of the admin API: the status and the JSON answer, whatever the status.
    pub async fn get_with_status(&self, path: &str) -> Result<(reqwest::StatusCode, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// GET a path of the admin API, failing on any non-2xx answer.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let (status, v) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        if !status.is_success() {
            bail!(
                "{}",
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or(status.as_str())
            );
        }
        Ok(v)
    }
}

fn kind(name: &str) -> Result<Kind> {
    Kind::lookup(name).with_context(|| format!("the server doesn't have a resource type {name:?}"))
}

/// `knit get` (not `get events`).
pub async fn get(args: &GetArgs) -> Result<()> {
    if let Some(flag) = args.events.given().first() {
        bail!("{flag} is for knit get events");
    }
    let namespace = args
        .namespace
        .as_deref()
        .unwrap_or(reference::DEFAULT_NAMESPACE);
    let c = Client::new(&args.server)?;
    let k = kind(&args.kind)?;
    let one = match &args.name {
        Some(n) => Some(
            c.get(&format!("/api/v1/{}/{namespace}/{n}", k.plural()))
                .await?,
        ),
        None => None,
    };
    let items: Vec<Value> = match &one {
        Some(o) => vec![o.clone()],
        None => {
            let q = if args.all_namespaces {
                String::new()
            } else {
                format!("?namespace={namespace}")
            };
            let list = c.get(&format!("/api/v1/{}{q}", k.plural())).await?;
            list.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
    };
    match args.output {
        Some(Output::Json) => {
            let v = one.unwrap_or_else(|| json!({"items": items}));
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Some(Output::Yaml) => {
            let v =
                one.unwrap_or_else(|| json!({"apiVersion": "v1", "kind": "List", "items": items}));
            print!("{}", serde_saphyr::to_string(&v)?);
        }
        Some(Output::Wide) | None if items.is_empty() => {
            let ns = if args.all_namespaces {
                String::new()
            } else {
                format!(" in {namespace} namespace")
            };
            eprintln!("No resources found{ns}.");
        }
        Some(Output::Wide) | None => {
            let wide = args.output == Some(Output::Wide);
            print!("{}", table::render(&items, args.all_namespaces, wide));
        }
    }
    Ok(())
}

/// `knit describe`.
pub async fn describe(
    server: &ServerArgs,
    kind_name: &str,
    name: &str,
    namespace: &str,
) -> Result<()> {
    let c = Client::new(server)?;
    let k = kind(kind_name)?;
    let o = c
        .get(&format!("/api/v1/{}/{namespace}/{name}", k.plural()))
        .await?;
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    println!("Name:         {}", s("/metadata/name"));
    println!("Namespace:    {}", s("/metadata/namespace"));
    println!("Kind:         {} ({})", s("/kind"), s("/apiVersion"));
    println!("UID:          {}", s("/metadata/uid"));
    println!("Age:          {}", table::age(&o));
    println!(
        "Generation:   {}",
        o.pointer("/metadata/generation")
            .cloned()
            .unwrap_or(Value::Null)
    );
    let url = table::url_of(&o);
    if !url.is_empty() {
        println!("URL:          {url}");
    }
    if let Some(spec) = o.get("spec") {
        println!("\nSpec:");
        for line in serde_saphyr::to_string(spec)?.lines() {
            println!("  {line}");
        }
    }
    println!("\nConditions:");
    println!("  {:<24} {:<8} {:<32} MESSAGE", "TYPE", "STATUS", "REASON");
    for c in o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let f = |k: &str| {
            c.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        println!(
            "  {:<24} {:<8} {:<32} {}",
            f("type"),
            f("status"),
            f("reason"),
            f("message")
        );
    }
    // Everything else the status says (replica counts, revision names, the last cold start,
    // a source's subscription), as YAML.
    if let Some(Value::Object(status)) = o.get("status") {
        let mut rest = status.clone();
        for k in ["conditions", "observedGeneration"] {
            rest.remove(k);
        }
        if !rest.is_empty() {
            println!("\nStatus:");
            for line in serde_saphyr::to_string(&Value::Object(rest))?.lines() {
                println!("  {line}");
            }
        }
    }
    Ok(())
}

/// `knit apply`.
pub async fn apply(server: &ServerArgs, paths: &[PathBuf]) -> Result<bool> {
    let c = Client::new(server)?;
    let files = files::list(paths);
    if files.is_empty() {
        bail!("no manifest files (.yaml, .yml, .json) under the given paths");
    }
    let mut ok = true;
    for path in files {
        let text = String::from_utf8_lossy(
            &tokio::fs::read(&path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
        .into_owned();
        let body = json!({"file": path.display().to_string(), "manifest": text});
        let (status, v) = c
            .send(
                c.http
                    .post(format!("{}/api/v1/apply", c.base))
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await?;
        for w in v
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            eprintln!("warning: {}", w.as_str().unwrap_or_default());
        }
        if status.is_success() {
            for a in v
                .get("applied")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let f = |k: &str| {
                    a.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                println!("{} {}", f("object"), f("action"));
            }
        } else {
            ok = false;
            match v.get("errors").and_then(Value::as_array) {
                Some(errs) => errs
                    .iter()
                    .for_each(|e| eprintln!("{}", e.as_str().unwrap_or_default())),
                None => eprintln!(
                    "error: {}",
                    v.get("error")
                        .and_then(Value::as_str)
                        .unwrap_or(status.as_str())
                ),
            }
        }
    }
    Ok(ok)
}

/// `knit delete`.
pub async fn delete(
    server: &ServerArgs,
    kind_name: &str,
    name: &str,
    namespace: &str,
) -> Result<()> {
    let c = Client::new(server)?;
    let k = kind(kind_name)?;
    let (status, v) = c
        .send(c.http.delete(format!(
            "{}/api/v1/{}/{namespace}/{name}",
            c.base,
            k.plural()
        )))
        .await?;
    if !status.is_success() {
        bail!(
            "{}",
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or(status.as_str())
        );
    }
    println!("{}.{} \"{name}\" deleted", k.plural(), k.group());
    Ok(())
}

/// How often `knit logs -f` asks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// `knit logs KIND/NAME [--revision R] [-f]`.
pub async fn logs(
    server: &ServerArgs,
    target: &str,
    namespace: &str,
    revision: Option<&str>,
    follow: bool,
) -> Result<()> {
    let Some((k, name)) = target.split_once('/') else {
        bail!("give the source as KIND/NAME, e.g. containersource/heartbeats");
    };
    let k = kind(k)?;
    let client = Client::new(server)?;
    let mut after = 0u64;
    loop {
        let v = client
            .get(&format!(
                "/api/v1/logs/{}/{namespace}/{name}?after={after}",
                k.plural()
            ))
            .await?;
        for line in v["lines"].as_array().into_iter().flatten() {
            // Replicas are named `revision/replica`; a source's processes by container name.
            let process = match line["revision"].as_str() {
                Some(rev) if revision.is_some_and(|r| r != rev) => continue,
                Some(rev) => format!("{rev}/{}", line["replica"].as_u64().unwrap_or(0)),
                None => line["process"].as_str().unwrap_or_default().to_string(),
            };
            let stream = line["stream"].as_str().unwrap_or_default();
            let text = line["text"].as_str().unwrap_or_default();
            if stream == "knit" {
                println!("[{process}] knit: {text}");
            } else {
                println!("[{process}] {text}");
            }
        }
        after = v["next"].as_u64().unwrap_or(after);
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}
