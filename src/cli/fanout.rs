//! `--all-replicas`: ask every member `/api/v1/cluster` lists (at its admin URL, with the same
//! token and trusted CAs) at once. A member that does not answer is a warning line on stderr
//! naming it; the answers of the others still count.

use std::time::Duration;

use anyhow::{Result, bail};
use reqwest::StatusCode;
use serde_json::Value;

use super::ServerArgs;
use super::client::Client;

/// How long one member may take to answer.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);

/// One member's answer.
#[derive(Debug)]
pub struct Answer {
    /// Its `--replica-id`.
    pub replica: String,
    /// The HTTP status (2xx, or 404).
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
}

/// A member: its id and admin URL.
#[derive(Debug, Clone)]
pub struct Member {
    /// `--replica-id`.
    pub id: String,
    /// Where its admin API is.
    pub url: String,
}

/// The members of the cluster `--server` belongs to; the replica `--server` reached is asked
/// at `--server` itself (the address that worked), the others at their `adminUrl`.
pub async fn members(server: &ServerArgs) -> Result<Vec<Member>> {
    let home = Client::new(server)?;
    let cluster = home.get("/api/v1/cluster").await?;
    let me = cluster["replica"].as_str().unwrap_or_default();
    let members = cluster["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let id = m["id"].as_str()?.to_string();
            let url = if id == me {
                home.base().to_string()
            } else {
                m["adminUrl"].as_str()?.to_string()
            };
            Some(Member { id, url })
        })
        .collect();
    Ok(members)
}

/// GET `path` from each of `members` at once: the answers (2xx and 404), and a warning for
/// each member that did not give one.
pub async fn gather(
    server: &ServerArgs,
    members: &[Member],
    path: &str,
) -> (Vec<Answer>, Vec<String>) {
    let asks = members.iter().map(|m| async move {
        let client = Client::at(server, &m.url, MEMBER_TIMEOUT)?;
        client.get_with_status(path).await
    });
    let results = futures::future::join_all(asks).await;
    let (mut answers, mut warnings) = (Vec::new(), Vec::new());
    for (m, r) in members.iter().zip(results) {
        let why = match r {
            Ok((status, body)) if status.is_success() || status == StatusCode::NOT_FOUND => {
                answers.push(Answer {
                    replica: m.id.clone(),
                    status,
                    body,
                });
                continue;
            }
            Ok((status, body)) => format!(
                "answered {status}: {}",
                body["error"].as_str().unwrap_or_default()
            ),
            Err(e) => format!("{e:#}"),
        };
        warnings.push(format!(
            "warning: replica {} ({}) did not answer, shown without it: {why}",
            m.id, m.url
        ));
    }
    (answers, warnings)
}

/// GET `path` from every member of the cluster: the answers of those that gave one (each
/// silent member a warning on stderr); an error when none did.
pub async fn ask_all(server: &ServerArgs, path: &str) -> Result<Vec<Answer>> {
    let members = members(server).await?;
    let (answers, warnings) = gather(server, &members, path).await;
    for w in &warnings {
        eprintln!("{w}");
    }
    if answers.is_empty() {
        bail!("no replica answered");
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerArgs {
        ServerArgs {
            server: String::new(),
            token: None,
            ca_file: None,
        }
    }

    #[tokio::test]
    async fn a_silent_member_is_a_warning_naming_it_and_the_others_still_answer() {
        knit_dispatcher::sender::install_crypto_provider();
        let up = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let up_url = format!("http://{}", up.local_addr().expect("addr"));
        let app = axum::Router::new().route(
            "/x",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"items": [1]})) }),
        );
        tokio::spawn(async move { axum::serve(up, app).await });
        let down = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let down_url = format!("http://{}", down.local_addr().expect("addr"));
        drop(down);
        let members = [
            Member {
                id: "a".into(),
                url: up_url,
            },
            Member {
                id: "b".into(),
                url: down_url.clone(),
            },
        ];
        let (answers, warnings) = gather(&server(), &members, "/x").await;
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].replica, "a");
        assert_eq!(answers[0].body["items"][0], 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("warning: replica b ({down_url}) did not answer")),
            "{warnings:?}"
        );
    }
}
