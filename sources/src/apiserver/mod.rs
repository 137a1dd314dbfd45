//! ApiServerSource: watches Kubernetes objects through `kube` watchers and emits Knative's
//! `dev.knative.apiserver.*` events for what is added, updated and deleted after the watch
//! started (objects that exist at the first list emit nothing, as Knative).
//!
//! One watcher runs per watched resource and namespace (or one over all namespaces, with the
//! namespaces picked by `namespaceSelector` tracked by a Namespace watcher). Each watch sends
//! its events in order, awaiting each send; the dispatcher retries, dead-letters or drops.
//! The API server comes from `knit run --kubeconfig FILE` or `KUBECONFIG`.

pub mod events;
pub mod track;
mod watch;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use knit_crds::contract::{Adapter, ApiServerAdapter, Source};
use kube::api::{ApiResource, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Scope;
use parking_lot::RwLock;
use tokio::task::JoinSet;

use crate::emit::Emitter;
use crate::runtime::{Ctx, Stop, StopSignal};
use crate::{Error, Result};

use watch::{Readiness, Shared, Target};

/// How long one discovery request may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence on a response (a hung list): above the watcher's server-side watch
/// timeout (290 s) and its idle margin, so quiet watches are never cut by it.
const READ_TIMEOUT: Duration = Duration::from_secs(330);

/// A client for the API server of `kubeconfig`, with that server's URL as written there
/// (the events' `source`, as Knative's `rest.Config.Host`).
pub async fn client(kubeconfig: &Path) -> Result<(kube::Client, String)> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", kubeconfig.display())))?;
    let server = current_server(&kc);
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Config(format!("invalid kubeconfig {}: {e}", kubeconfig.display())))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    let server = server.unwrap_or_else(|| {
        config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string()
    });
    let client = kube::Client::try_from(config)
        .map_err(|e| Error::Config(format!("cannot build a Kubernetes client: {e}")))?;
    Ok((client, server))
}

/// The `server` of the current context's cluster.
fn current_server(kc: &Kubeconfig) -> Option<String> {
    let ctx_name = kc.current_context.as_deref()?;
    let cluster = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)?
        .context
        .as_ref()?
        .cluster
        .clone();
    kc.clusters
        .iter()
        .find(|c| c.name == cluster)?
        .cluster
        .as_ref()?
        .server
        .clone()
}

/// `apiVersion` and `kind` as a GroupVersionKind.
fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((group, version)) => GroupVersionKind::gvk(group, version, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

/// Resolve a resource through discovery: its plural and whether it is namespaced.
async fn discover(client: &kube::Client, gvk: &GroupVersionKind) -> Result<(ApiResource, bool)> {
    let found = tokio::time::timeout(DISCOVERY_TIMEOUT, kube::discovery::pinned_kind(client, gvk))
        .await
        .map_err(|_| Error::Upstream("discovery timed out".into()))?;
    match found {
        Ok((ar, caps)) => Ok((ar, caps.scope == Scope::Namespaced)),
        Err(kube::Error::Discovery(e)) => Err(Error::Config(format!(
            "the API server has no {}/{}: {e}",
            gvk.api_version(),
            gvk.kind
        ))),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::Config(format!(
            "the API server has no {}/{}",
            gvk.api_version(),
            gvk.kind
        ))),
        Err(e) => Err(Error::Upstream(format!(
            "discovery of {}/{} failed: {e}",
            gvk.api_version(),
            gvk.kind
        ))),
    }
}

/// The watches `cfg` asks for.
async fn targets(client: &kube::Client, cfg: &ApiServerAdapter) -> Result<Vec<Target>> {
    let selector = cfg.namespace_selector.as_deref();
    let mut out = Vec::new();
    for res in &cfg.resources {
        let (ar, namespaced) = discover(client, &gvk(&res.api_version, &res.kind)).await?;
        let label_selector = res.label_selector.clone().filter(|s| !s.is_empty());
        if !namespaced || selector.is_some() {
            out.push(Target {
                resource: ar,
                namespace: None,
                label_selector,
                filter_namespaces: namespaced && selector.is_some_and(|s| !s.is_empty()),
            });
        } else {
            for ns in &cfg.namespaces {
                out.push(Target {
                    resource: ar.clone(),
                    namespace: Some(ns.clone()),
                    label_selector: label_selector.clone(),
                    filter_namespaces: false,
                });
            }
        }
    }
    Ok(out)
}

/// Discovery retries while the API server cannot be reached: 0.2 s doubling to 30 s, with
/// jitter, for as long as it takes.
const DISCOVERY_RETRIES: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(200))
    .with_max_delay(Duration::from_secs(30))
    .without_max_times()
    .with_jitter();

/// Why an adapter cannot run until its source changes: the reason and message it reports.
struct Blocked {
    reason: &'static str,
    message: String,
}

impl Blocked {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the watches of one source need before discovery.
struct Setup {
    filter: Option<Arc<dyn knit_dispatcher::EventFilter>>,
    client: kube::Client,
    server: String,
}

/// Run the adapter until told to stop.
pub(crate) async fn run(ctx: Arc<Ctx>, source: Arc<Source>, mut stop: StopSignal) {
    let Adapter::ApiServer(cfg) = &source.adapter else {
        return;
    };
    let setup = match set_up(&ctx, cfg).await {
        Ok(s) => s,
        Err(b) => {
            ctx.report.not_ready(&source.uid, b.reason, b.message);
            stop.stopped().await;
            return;
        }
    };
    let Some(targets) = discover_all(&ctx, &source, cfg, &setup.client, &mut stop).await else {
        return;
    };
    watch_all(&ctx, &source, cfg, setup, targets, stop).await;
}

/// The filter, the client and the server URL, or why the source cannot run.
async fn set_up(ctx: &Ctx, cfg: &ApiServerAdapter) -> Result<Setup, Blocked> {
    let Some(kubeconfig) = ctx.config.kubeconfig.clone() else {
        return Err(Blocked::new(
            "NoKubernetesAPI",
            "set knit run --kubeconfig FILE or KUBECONFIG",
        ));
    };
    let filter = if cfg.filters.is_empty() {
        None
    } else {
        let f = ctx
            .filters
            .build(&cfg.filters)
            .map_err(|e| Blocked::new("InvalidFilters", e.to_string()))?;
        Some(f)
    };
    let (client, server) = client(&kubeconfig)
        .await
        .map_err(|e| Blocked::new("InvalidKubeconfig", e.to_string()))?;
    Ok(Setup {
        filter,
        client,
        server,
    })
}

/// The watch targets, discovery retried with backoff while the API server cannot be reached.
/// `None` once stopped; a kind the server does not serve is reported and waits for the stop
/// (the source stays not ready until it changes).
async fn discover_all(
    ctx: &Ctx,
    source: &Source,
    cfg: &ApiServerAdapter,
    client: &kube::Client,
    stop: &mut StopSignal,
) -> Option<Vec<Target>> {
    let mut backoff = DISCOVERY_RETRIES.build();
    loop {
        let attempt = tokio::select! {
            _ = stop.stopped() => return None,
            t = targets(client, cfg) => t,
        };
        match attempt {
            Ok(t) => return Some(t),
            Err(Error::Config(e)) => {
                ctx.report.not_ready(&source.uid, "ResourceNotFound", e);
                stop.stopped().await;
                return None;
            }
            Err(e) => {
                tracing::warn!(source = %source.reference, error = %e, "API server discovery failed; retrying");
                ctx.report
                    .not_ready(&source.uid, "KubernetesAPIUnreachable", e.to_string());
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                tokio::select! {
                    _ = stop.stopped() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One watch per target (and the Namespace watch `namespaceSelector` needs) until stopped.
async fn watch_all(
    ctx: &Ctx,
    source: &Arc<Source>,
    cfg: &ApiServerAdapter,
    setup: Setup,
    targets: Vec<Target>,
    mut stop: StopSignal,
) {
    let Setup {
        filter,
        client,
        server,
    } = setup;
    let namespace_watch = cfg
        .namespace_selector
        .as_deref()
        .filter(|s| !s.is_empty())
        .filter(|_| targets.iter().any(|t| t.filter_namespaces))
        .map(str::to_string);
    let pending = targets.len() + usize::from(namespace_watch.is_some());
    let shared = Arc::new(Shared {
        source: source.clone(),
        mode: cfg.mode,
        owner: cfg.owner.clone(),
        server: server.clone(),
        emitter: Emitter::new(&ctx.dispatch, source),
        filter,
        namespaces: RwLock::new(HashSet::new()),
        readiness: Readiness::new(ctx.report.clone(), source.uid.clone(), server, pending),
    });
    if pending == 0 {
        shared.readiness.check();
    }
    let mut tasks = JoinSet::new();
    if let Some(sel) = namespace_watch {
        tasks.spawn(watch::namespaces(
            shared.clone(),
            client.clone(),
            sel,
            stop.clone(),
        ));
    }
    for t in targets {
        tasks.spawn(watch::objects(
            shared.clone(),
            client.clone(),
            t,
            stop.clone(),
        ));
    }
    let why = stop.stopped().await;
    if why != Stop::Shutdown {
        tasks.abort_all();
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_split_into_group_and_version() {
        let g = gvk("apps/v1", "Deployment");
        assert_eq!((g.group.as_str(), g.version.as_str()), ("apps", "v1"));
        let g = gvk("v1", "Pod");
        assert_eq!((g.group.as_str(), g.version.as_str()), ("", "v1"));
    }

    #[test]
    fn the_server_is_read_from_the_current_context() {
        let kc = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- name: ca\n  cluster: {server: 'https://a:6443'}\n- name: cb\n  cluster: {server: 'https://10.96.0.1:443'}\ncontexts:\n- name: a\n  context: {cluster: ca}\n- name: b\n  context: {cluster: cb}\nusers: []\n",
        )
        .expect("kubeconfig");
        assert_eq!(
            current_server(&kc).as_deref(),
            Some("https://10.96.0.1:443")
        );
    }
}
