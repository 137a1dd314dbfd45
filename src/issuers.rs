//! `knit run --oidc-issuer URL` (and `--oidc-jwks-uri ISSUER=URL`): other OIDC issuers whose
//! tokens the ingresses accept besides Knit's own. Here is the HTTP side knit-oidc leaves to
//! its caller: discovery documents and JWKS fetched with reqwest (system roots plus
//! `--ca-file`, a timeout, a size bound), loaded in the background at start (retried with
//! backoff while the issuer cannot be reached; `knit run` does not wait) and again every
//! [`REFRESH_EVERY`]. A token naming an unknown `kid` fetches on demand (knit-oidc).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use backon::{ExponentialBuilder, Retryable};
use knit_oidc::{Fetch, Fetched, Issuer};

/// How often the keys of every issuer are fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// How long one GET may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or JWKS read.
const MAX_BODY: usize = 1024 * 1024;
/// The backoff while an issuer cannot be reached: 1 s doubling to 5 minutes.
const RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(1))
    .with_factor(2.0)
    .with_max_delay(Duration::from_secs(300))
    .without_max_times();

/// GETs with reqwest.
struct HttpFetch {
    client: reqwest::Client,
}

impl Fetch for HttpFetch {
    fn get<'a>(&'a self, url: &'a str) -> Fetched<'a> {
        Box::pin(async move { get(&self.client, url).await })
    }
}

/// The body of `url` (200 only, at most [`MAX_BODY`] bytes), or why not.
async fn get(client: &reqwest::Client, url: &str) -> std::result::Result<Vec<u8>, String> {
    let mut r = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if r.status() != reqwest::StatusCode::OK {
        return Err(format!("answered {}", r.status()));
    }
    if r.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("larger than {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `e` with its sources (reqwest's own text hides the TLS or connection reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The issuers of `--oidc-issuer` and `--oidc-jwks-uri`, fetched with a client that trusts
/// `ca_certs` (PEM) besides the system's roots. Nothing is fetched yet (see [`keep_fresh`]).
pub fn configured(
    issuers: &[String],
    jwks_uris: &[String],
    ca_certs: Option<&str>,
) -> Result<Vec<Arc<Issuer>>> {
    let mut wanted: Vec<(String, Option<String>)> = Vec::new();
    for url in issuers.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
        wanted.push((http_url("--oidc-issuer", url)?, None));
    }
    for pair in jwks_uris {
        let Some((issuer, uri)) = pair.split_once('=') else {
            bail!("--oidc-jwks-uri {pair:?}: expected ISSUER=URL");
        };
        let issuer = http_url("--oidc-jwks-uri", issuer.trim())?;
        let uri = http_url("--oidc-jwks-uri", uri.trim())?;
        match wanted.iter_mut().find(|(i, _)| *i == issuer) {
            Some(w) => w.1 = Some(uri),
            None => wanted.push((issuer, Some(uri))),
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let fetch: Arc<dyn Fetch> = Arc::new(HttpFetch {
        client: client(ca_certs)?,
    });
    Ok(wanted
        .iter()
        .map(|(url, jwks)| Arc::new(Issuer::new(url, jwks.as_deref(), fetch.clone())))
        .collect())
}

/// `url` without a trailing `/` once it is an `http(s)://` URL with a host.
fn http_url(flag: &str, url: &str) -> Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("{flag} {url:?}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        bail!("{flag} {url:?}: not an http:// or https:// URL");
    }
    if parsed.scheme() == "http" {
        tracing::warn!(
            url,
            "{flag} over plain http: its keys can be forged in transit"
        );
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn client(ca_certs: Option<&str>) -> Result<reqwest::Client> {
    let roots = match ca_certs {
        Some(pem) => reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .context("--ca-file (for --oidc-issuer)")?,
        None => Vec::new(),
    };
    Ok(reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .tls_certs_merge(roots)
        .build()?)
}

/// Load every issuer's keys in the background, retrying with backoff until they load, then
/// again every [`REFRESH_EVERY`] (a failed refresh keeps the keys loaded before).
pub fn keep_fresh(issuers: &[Arc<Issuer>]) {
    for issuer in issuers {
        let issuer = issuer.clone();
        tokio::spawn(async move {
            loop {
                let _ = (|| issuer.refresh())
                    .retry(RETRY)
                    .notify(|e, wait| {
                        tracing::warn!(issuer = %issuer.url(), error = %e, retry_in = ?wait, "OIDC issuer: cannot load its keys; its tokens are refused until it can");
                    })
                    .await;
                tokio::time::sleep(REFRESH_EVERY).await;
            }
        });
    }
}
