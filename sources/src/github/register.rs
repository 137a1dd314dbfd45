//! The webhook's registration through the GitHub REST API: find the repository's (or the
//! organisation's) hook whose `config.url` is our receiver and update it, or create one; delete
//! it when the source is deleted. One [`reqwest::Client`] per adapter, every call with a
//! timeout; list pages are bounded.

use std::time::Duration;

use knit_crds::contract::GitHubAdapter;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// Timeout of each API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Hooks per list page (GitHub's maximum).
const PAGE_SIZE: usize = 100;
/// Most list pages read when looking for our hook.
const MAX_PAGES: usize = 10;
/// Most bytes of an error body quoted back in a condition message.
const MAX_QUOTE: usize = 300;

/// Why a call to the GitHub API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The client could not be built.
    #[error("cannot build the GitHub API client: {0}")]
    Client(String),
    /// `ownerAndRepository` is neither `owner/repo` nor `org`.
    #[error("ownerAndRepository {0:?} is neither owner/repository nor an organisation")]
    Target(String),
    /// No answer (connection, timeout).
    #[error("{method} {url}: {reason}")]
    Transport {
        /// The method.
        method: Method,
        /// The URL called.
        url: String,
        /// What failed.
        reason: String,
    },
    /// GitHub answered with an error status.
    #[error("{method} {url}: GitHub answered {status}: {message}")]
    Status {
        /// The method.
        method: Method,
        /// The URL called.
        url: String,
        /// The status.
        status: StatusCode,
        /// GitHub's `message` (or the start of the body).
        message: String,
    },
    /// GitHub's answer could not be read.
    #[error("{method} {url}: unexpected answer: {reason}")]
    Body {
        /// The method.
        method: Method,
        /// The URL called.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// A hook as GitHub lists it (only what we read).
#[derive(Debug, Deserialize)]
struct Hook {
    id: u64,
    #[serde(default)]
    config: HookConfig,
}

#[derive(Debug, Default, Deserialize)]
struct HookConfig {
    #[serde(default)]
    url: Option<String>,
}

/// Talks to the GitHub API for one source.
pub struct Registrar {
    client: reqwest::Client,
    hooks_url: String,
    token: String,
    url: String,
    events: Vec<String>,
    secret: String,
    insecure_ssl: &'static str,
}

impl Registrar {
    /// A registrar for `cfg`.
    pub fn new(cfg: &GitHubAdapter) -> Result<Self, ApiError> {
        knit_dispatcher::sender::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("knit-github-source/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Client(e.to_string()))?;
        Ok(Self {
            client,
            hooks_url: hooks_url(&cfg.api_url, &cfg.owner_and_repository)?,
            token: cfg.access_token.clone(),
            url: cfg.url.clone(),
            events: if cfg.event_types.is_empty() {
                vec!["*".to_string()]
            } else {
                cfg.event_types.clone()
            },
            secret: cfg.secret_token.clone(),
            insecure_ssl: if cfg.secure { "0" } else { "1" },
        })
    }

    /// Create our hook, or update the one already pointing at our URL; its id.
    pub async fn register(&self) -> Result<u64, ApiError> {
        let body = json!({
            "name": "web",
            "active": true,
            "events": self.events,
            "config": {
                "url": self.url,
                "content_type": "json",
                "secret": self.secret,
                "insecure_ssl": self.insecure_ssl,
            },
        });
        if let Some(id) = self.find().await? {
            let url = format!("{}/{id}", self.hooks_url);
            let hook: Hook = self.call(Method::PATCH, &url, Some(&body)).await?;
            tracing::info!(hook = hook.id, url = %self.url, "GitHub webhook updated");
            return Ok(hook.id);
        }
        let hook: Hook = self
            .call(Method::POST, &self.hooks_url, Some(&body))
            .await?;
        tracing::info!(hook = hook.id, url = %self.url, "GitHub webhook created");
        Ok(hook.id)
    }

    /// Delete hook `id`, or, when it is not known, the hook pointing at our URL. A hook already
    /// gone is fine.
    pub async fn unregister(&self, id: Option<u64>) -> Result<(), ApiError> {
        let id = match id {
            Some(id) => id,
            None => match self.find().await? {
                Some(id) => id,
                None => return Ok(()),
            },
        };
        let url = format!("{}/{id}", self.hooks_url);
        match self.send(Method::DELETE, &url, None).await {
            Ok(_) => {
                tracing::info!(hook = id, url = %self.url, "GitHub webhook deleted");
                Ok(())
            }
            Err(ApiError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The id of the hook whose `config.url` is ours.
    async fn find(&self) -> Result<Option<u64>, ApiError> {
        for page in 1..=MAX_PAGES {
            let url = format!("{}?per_page={PAGE_SIZE}&page={page}", self.hooks_url);
            let hooks: Vec<Hook> = self.call(Method::GET, &url, None).await?;
            if let Some(h) = hooks
                .iter()
                .find(|h| h.config.url.as_deref() == Some(&self.url))
            {
                return Ok(Some(h.id));
            }
            if hooks.len() < PAGE_SIZE {
                return Ok(None);
            }
        }
        Ok(None)
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ApiError> {
        let bytes = self.send(method.clone(), url, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Body {
            method,
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<bytes::Bytes, ApiError> {
        let mut req = self
            .client
            .request(method.clone(), url)
            .bearer_auth(&self.token)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |e: reqwest::Error| ApiError::Transport {
            method: method.clone(),
            url: url.to_string(),
            reason: chain(&e),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ApiError::Status {
                method,
                url: url.to_string(),
                status,
                message: github_message(&bytes),
            });
        }
        Ok(bytes)
    }
}

/// The hooks collection of `owner_and_repository` under `api_url`.
fn hooks_url(api_url: &str, owner_and_repository: &str) -> Result<String, ApiError> {
    let base = api_url.trim_end_matches('/');
    let target = owner_and_repository.trim();
    let ok = |s: &str| {
        !s.is_empty()
            && !s.bytes().all(|b| b == b'.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match target.split_once('/') {
        Some((owner, repo)) if ok(owner) && ok(repo) => {
            Ok(format!("{base}/repos/{owner}/{repo}/hooks"))
        }
        None if ok(target) => Ok(format!("{base}/orgs/{target}/hooks")),
        _ => Err(ApiError::Target(owner_and_repository.to_string())),
    }
}

/// An error with its causes (reqwest's own message omits them: "error sending request").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    truncate(&out)
}

/// GitHub's `message` of an error body, or the start of the body.
fn github_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Msg {
        message: String,
    }
    if let Ok(m) = serde_json::from_slice::<Msg>(body) {
        return truncate(&m.message);
    }
    truncate(String::from_utf8_lossy(body).trim())
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_QUOTE {
        return s.to_string();
    }
    let mut end = MAX_QUOTE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_urls() {
        assert_eq!(
            hooks_url("https://api.github.com", "knit/knit")
                .ok()
                .as_deref(),
            Some("https://api.github.com/repos/knit/knit/hooks")
        );
        assert_eq!(
            hooks_url("http://127.0.0.1:9/api/v3/", "my-org")
                .ok()
                .as_deref(),
            Some("http://127.0.0.1:9/api/v3/orgs/my-org/hooks")
        );
        for bad in ["", "a/b/c", "a/", "a b/c", "a/../b", "../x", ".."] {
            assert!(hooks_url("https://api.github.com", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            github_message(br#"{"message":"Bad credentials","documentation_url":"x"}"#),
            "Bad credentials"
        );
        assert_eq!(github_message(b"  oops "), "oops");
        assert!(github_message("é".repeat(400).as_bytes()).ends_with('…'));
    }
}
