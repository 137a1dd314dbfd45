//! `knit run`: the standalone mode. Binds every listener, loads and watches the manifests,
//! and runs the control plane, the data plane and the admin API in one process.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use knit_broker::DataPlane;
use knit_crds::contract::Contract;
use tokio::net::TcpListener;

use crate::cli::RunArgs;
use crate::control::{self, Applier, reconcile::Env};

/// How long deliveries in flight may take to finish when knit is stopped.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

struct DataPlaneApplier {
    dataplane: Arc<DataPlane>,
    sources: Arc<knit_sources::Runtime>,
    serving: knit_serving::runtime::Serving,
    /// Where deliveries reach the hosts this process serves.
    listeners: knit_dispatcher::Listeners,
    /// Which of the ingress's listeners answer (the Contract's transport encryption).
    encryption: knit_broker::ingress::Encryption,
}

/// Serving reports per Revision into the same report as the eventing data plane.
struct ServingReport(Arc<knit_broker::dataplane::Reporter>);

impl knit_serving::runtime::ReportSink for ServingReport {
    fn set(&self, uid: &str, state: knit_crds::contract::ObjectReport) {
        self.0.set(uid, state);
    }
    fn forget(&self, uid: &str) {
        self.0.forget(uid);
    }
}

impl Applier for DataPlaneApplier {
    fn apply<'a>(
        &'a self,
        contract: &'a Contract,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // Before the egresses start: their first deliveries may go to these hosts.
            self.dataplane
                .dispatch()
                .sender
                .serve_hosts(knit_dispatcher::LocalHosts::standalone(
                    contract,
                    self.listeners,
                ));
            self.encryption.set(contract.transport_encryption);
            self.dataplane.apply(contract);
            self.sources.apply(&contract.sources);
            self.serving.apply(&contract.serving);
        })
    }
}

/// ApiServerSource filters use the Trigger filter dialects of the broker crate.
struct BrokerFilters;

impl knit_sources::FilterFactory for BrokerFilters {
    fn build(
        &self,
        filters: &[knit_crds::api::eventing::SubscriptionsApiFilter],
    ) -> knit_sources::Result<Arc<dyn knit_dispatcher::EventFilter>> {
        let spec = knit_crds::contract::EgressFilter {
            attributes: None,
            filters: filters.to_vec(),
        };
        Ok(Arc::new(knit_broker::filter::compile(Some(&spec))))
    }
}

/// The URL clients use for a bound address, with `scheme` (`http` or `https`).
fn url_of(scheme: &str, addr: SocketAddr) -> String {
    format!("{scheme}://{}", reachable(addr))
}

/// Where clients connect to a bound address (an unspecified IP is reached on loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    }
}

async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what})"))
}

fn serve<L>(name: &'static str, listener: L, router: axum::Router)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(listener = name, error = %e, "server stopped");
        }
    });
}

/// The admin API's listener once TLS is on (it then speaks HTTPS only: it carries the token).
struct AdminTls(knit_tls::TlsListener);

impl axum::serve::Listener for AdminTls {
    type Io = <knit_tls::TlsListener as knit_tls::Accept>::Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            match knit_tls::Accept::accept(&mut self.0).await {
                Ok(conn) => return conn,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.0.local_addr())
    }
}

/// TLS from `--tls-cert`/`--tls-key`: the certificate (watched for changes) and the server
/// settings, the CA of `--ca-file`; `None` without a certificate.
struct Tls {
    config: Arc<rustls::ServerConfig>,
    ca_certs: Option<String>,
}

/// How often the certificate files are looked at.
const CERT_RELOAD: std::time::Duration = std::time::Duration::from_secs(1);

/// The PEM text of `--ca-file`, if given.
fn ca_certs(args: &RunArgs) -> Result<Option<String>> {
    Ok(args
        .ca_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(knit_tls::read_ca_file)
        .transpose()?)
}

fn tls(args: &RunArgs, ca_certs: Option<String>) -> Result<Option<Tls>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    if ca_certs.is_none() {
        tracing::warn!(
            "TLS without --ca-file: https addresses carry no CACerts, and Knit's own deliveries to them (replies, references to Brokers and channels) trust only the system's roots"
        );
    }
    let store = knit_tls::CertStore::load(cert, key)?;
    store.watch(CERT_RELOAD);
    let config = knit_tls::server_config(store, args.tls_min_version.into())?;
    Ok(Some(Tls { config, ca_certs }))
}

/// What Knit's own `https://` deliveries trust besides the system's roots.
fn trust(args: &RunArgs, ca_certs: Option<String>) -> knit_dispatcher::Trust {
    knit_dispatcher::Trust {
        ca_certs,
        min_version: args.tls_min_version.into(),
    }
}

/// The HTTPS listeners of the ingress and the gateway, serving; their URLs.
async fn serve_https(
    args: &RunArgs,
    tls: &Tls,
    dataplane: &Arc<DataPlane>,
    serving: &knit_serving::runtime::Serving,
    encryption: &knit_broker::ingress::Encryption,
) -> Result<crate::control::reconcile::TlsEnv> {
    let ingress = knit_tls::TlsListener::new(
        bind("--ingress-tls", args.ingress_tls).await?,
        tls.config.clone(),
    )?;
    let gateway = knit_tls::TlsListener::new(
        bind("--gateway-tls", args.gateway_tls).await?,
        tls.config.clone(),
    )?;
    let env = crate::control::reconcile::TlsEnv {
        ingress_url: url_of("https", ingress.local_addr()),
        gateway_url: url_of("https", gateway.local_addr()),
        ca_certs: tls.ca_certs.clone(),
    };
    let (dp, encryption) = (dataplane.clone(), encryption.clone());
    tokio::spawn(async move { dp.serve_ingress_on(ingress, encryption).await });
    let serving = serving.clone();
    tokio::spawn(async move { serving.serve_gateway_on(gateway).await });
    Ok(env)
}

/// Flags `knit run` refuses before binding anything: the exit status to stop with, if any.
fn preflight(args: &RunArgs) -> Result<Option<ExitCode>> {
    if !args.admin.ip().is_loopback() && args.admin_token.as_deref().is_none_or(str::is_empty) {
        eprintln!(
            "error: the admin API would listen on {} beyond loopback; give it a bearer token with --admin-token or KNIT_TOKEN",
            args.admin
        );
        return Ok(Some(ExitCode::from(2)));
    }
    if args.kafka.as_deref().is_some_and(|k| !k.trim().is_empty()) {
        knit_channels::NotBuilt::check(knit_channels::BackendKind::Kafka)
            .map_err(|e| anyhow::anyhow!("--kafka (or KNIT_KAFKA): {e}"))?;
    }
    if args.nats.as_deref().is_some_and(|n| !n.trim().is_empty()) {
        knit_channels::NotBuilt::check(knit_channels::BackendKind::Nats)
            .map_err(|e| anyhow::anyhow!("--nats (or KNIT_NATS): {e}"))?;
    }
    Ok(None)
}

/// Print what is wrong with the manifests; exit status 2.
fn refuse_manifests(issues: &[knit_crds::admission::Issue]) -> ExitCode {
    for i in issues {
        eprintln!("{i}");
    }
    eprintln!(
        "error: {} problem(s) in the manifests; nothing was started",
        issues.len()
    );
    ExitCode::from(2)
}

/// Serve the admin API: HTTPS only when Knit has a certificate.
fn serve_admin(admin: TcpListener, tls: Option<&Tls>, router: axum::Router) -> Result<()> {
    match tls {
        Some(t) => serve(
            "admin",
            AdminTls(knit_tls::TlsListener::new(admin, t.config.clone())?),
            router,
        ),
        None => serve("admin", admin, router),
    }
    Ok(())
}

/// The one line `knit run` prints once it serves (scripts and tests read the URLs from it).
fn announce(
    admin_url: &str,
    ingress_url: &str,
    gateway_url: &str,
    tls: Option<&crate::control::reconcile::TlsEnv>,
) {
    let https = tls
        .map(|t| {
            format!(
                " ingress-tls={} gateway-tls={}",
                t.ingress_url, t.gateway_url
            )
        })
        .unwrap_or_default();
    println!("knit: admin={admin_url} ingress={ingress_url} gateway={gateway_url}{https}");
    tracing::info!(admin = %admin_url, ingress = %ingress_url, gateway = %gateway_url, https = %https.trim(), "knit is running");
}

/// The NATS server `--nats` names, with its credentials and CA.
fn nats_env(args: &RunArgs) -> Option<crate::control::reconcile::NatsEnv> {
    args.nats
        .clone()
        .filter(|n| !n.trim().is_empty())
        .map(|url| crate::control::reconcile::NatsEnv {
            url,
            creds_file: args.nats_creds.clone(),
            ca_file: args.nats_ca.clone(),
        })
}

/// Where the replicas of this system meet: the `--kafka` cluster, else the `--nats` server,
/// else nowhere (this process alone).
fn engine(args: &RunArgs) -> knit_channels::coordination::Engine {
    use knit_channels::coordination::Engine;
    if let Some(k) = args.kafka.as_deref().filter(|k| !k.trim().is_empty()) {
        return Engine::Kafka(k.to_string());
    }
    match nats_env(args) {
        Some(n) => Engine::Nats {
            url: n.url,
            creds_file: n.creds_file,
            ca_file: n.ca_file,
        },
        None => Engine::Memory,
    }
}

/// `--replica-id`, or `HOSTNAME:ADMIN-PORT`.
fn replica_id(args: &RunArgs, admin_port: u16) -> String {
    if let Some(id) = args
        .replica_id
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        return id.to_string();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "knit".into());
    format!("{host}:{admin_port}")
}

/// The leadership under which topics, streams and consumer groups of removed objects are
/// deleted.
const DELETIONS: &str = "knit/deletions";

/// The replicas of this system, joined as `--replica-id` (admin API on `admin_port`, at
/// `--admin-url`, else `admin_url`) on the engine of `--kafka` or `--nats`.
fn join_replicas(
    args: &RunArgs,
    admin_port: u16,
    admin_url: &str,
) -> Arc<knit_channels::coordination::Coordination> {
    let advertised = args
        .admin_url
        .as_deref()
        .map(|u| u.trim().trim_end_matches('/'))
        .filter(|u| !u.is_empty())
        .unwrap_or(admin_url);
    Arc::new(knit_channels::coordination::Coordination::start(
        engine(args),
        &replica_id(args, admin_port),
        advertised,
    ))
}

/// Serve the broker and channel ingress on `listener`.
fn serve_ingress(
    dataplane: &Arc<DataPlane>,
    listener: TcpListener,
    encryption: &knit_broker::ingress::Encryption,
) {
    let (dp, encryption) = (dataplane.clone(), encryption.clone());
    tokio::spawn(async move { dp.serve_ingress_on(listener, encryption).await });
}

/// Run until interrupted. Exit status 2 when the manifests are invalid.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    if let Some(refused) = preflight(&args)? {
        return Ok(refused);
    }
    let ca_certs = ca_certs(&args)?;
    let tls = tls(&args, ca_certs.clone())?;
    let admin = bind("--admin", args.admin).await?;
    let ingress = bind("--ingress", args.ingress).await?;
    let gateway = bind("--gateway", args.gateway).await?;
    let admin_scheme = if tls.is_some() { "https" } else { "http" };
    let (admin_url, ingress_url, gateway_url) = (
        url_of(admin_scheme, admin.local_addr()?),
        url_of("http", ingress.local_addr()?),
        url_of("http", gateway.local_addr()?),
    );
    let listeners = knit_dispatcher::Listeners {
        ingress: Some(reachable(ingress.local_addr()?)),
        gateway: Some(reachable(gateway.local_addr()?)),
    };

    let (dataplane, oidc) = data_plane(&args, ca_certs, &admin_url)?;
    let encryption = knit_broker::ingress::Encryption::default();
    serve_ingress(&dataplane, ingress, &encryption);

    let coordination = join_replicas(&args, admin.local_addr()?.port(), &admin_url);
    // Creating a topic or stream is idempotent and every replica does it; deleting what a
    // removed object owned is led, so one replica's manifests dropping an object do not take
    // it from the others unless that replica leads.
    let deletions = coordination.lead(DELETIONS);
    let (view, me) = (coordination.clone(), coordination.id());
    dataplane.delete_owned_when(Arc::new(move || {
        if deletions.is_leader() {
            Some(true)
        } else {
            view.leader_of(DELETIONS).map(|leader| leader == me)
        }
    }));
    let reaper = crate::reaper::Reaper::start();
    let logs = Arc::new(knit_sources::logs::Logs::new());
    let sources = Arc::new(knit_sources::Runtime::new(sources_ctx(
        &args,
        &dataplane,
        logs.clone(),
        reaper.as_ref(),
        coordination.clone(),
    )));
    let serving = serving(&dataplane, reaper.as_ref());
    {
        let serving = serving.clone();
        tokio::spawn(async move { serving.serve_gateway(gateway).await });
    }
    let tls_env = match &tls {
        Some(t) => Some(serve_https(&args, t, &dataplane, &serving, &encryption).await?),
        None => None,
    };
    let env = Env {
        ingress_url: ingress_url.clone(),
        gateway_url: gateway_url.clone(),
        kafka: args.kafka.clone().filter(|k| !k.trim().is_empty()),
        nats: nats_env(&args),
        tls: tls_env.clone(),
    };
    let applier = Arc::new(DataPlaneApplier {
        dataplane: dataplane.clone(),
        sources: sources.clone(),
        serving: serving.clone(),
        listeners,
        encryption,
    });
    let report = dataplane.report();
    let handle =
        match control::start(args.files.clone(), env, crate::hooks(), applier, report).await {
            Ok(h) => h,
            Err(issues) => return Ok(refuse_manifests(&issues)),
        };
    let router = crate::admin::router(crate::admin::AdminState {
        control: handle,
        token: args.admin_token.as_deref().map(Arc::from),
        stats: dataplane.stats(),
        logs,
        serving: serving.clone(),
        dataplane: dataplane.clone(),
        coordination,
        oidc: oidc.own().clone(),
        oidc_issuers: oidc.external().to_vec(),
    });
    serve_admin(admin, tls.as_ref(), router)?;
    announce(&admin_url, &ingress_url, &gateway_url, tls_env.as_ref());
    shutdown_signal().await;
    shut_down(&sources, &serving, &dataplane, reaper).await;
    Ok(ExitCode::SUCCESS)
}

/// The data plane, trusting what `--ca-file` and the system trust, its deliveries signed by
/// the OIDC issuer of `admin_url` and its ingresses' tokens checked against that issuer and
/// the `--oidc-issuer`s (whose keys start loading in the background).
fn data_plane(
    args: &RunArgs,
    ca_certs: Option<String>,
    admin_url: &str,
) -> Result<(Arc<DataPlane>, Arc<knit_oidc::Trust>)> {
    let dataplane = Arc::new(DataPlane::new(data_plane_config(args))?);
    dataplane
        .dispatch()
        .sender
        .trust(trust(args, ca_certs.clone()))?;
    let signer = oidc_signer(args, admin_url)?;
    dataplane
        .dispatch()
        .sender
        .sign_with(Arc::new(knit_oidc::Tokens::new(signer.clone())));
    let issuers = crate::issuers::configured(
        &args.oidc_issuers,
        &args.oidc_jwks_uris,
        ca_certs.as_deref(),
    )?;
    crate::issuers::keep_fresh(&issuers);
    let trust = Arc::new(knit_oidc::Trust::new(signer.clone(), issuers));
    dataplane.verify_tokens_with(trust.clone());
    Ok((dataplane, trust))
}

/// The OIDC issuer's key (`--oidc-key`, else `oidc-key.pem` in the state folder; created
/// there when missing), signing for the admin URL.
fn oidc_signer(args: &RunArgs, admin_url: &str) -> Result<Arc<knit_oidc::Signer>> {
    let path = match &args.oidc_key {
        Some(p) => p.clone(),
        None => crate::cli::state_dir(args).join("oidc-key.pem"),
    };
    Ok(Arc::new(knit_oidc::Signer::load_or_create(
        &path, admin_url,
    )?))
}

/// Stop the sources, serving and the data plane (deliveries in flight finish and commit),
/// each within [`SHUTDOWN_GRACE`], then the reaper.
async fn shut_down(
    sources: &knit_sources::Runtime,
    serving: &knit_serving::runtime::Serving,
    dataplane: &DataPlane,
    reaper: Option<Arc<crate::reaper::Reaper>>,
) {
    tracing::info!("shutting down: finishing deliveries in flight and committing");
    sources.shutdown(SHUTDOWN_GRACE).await;
    serving.shutdown(SHUTDOWN_GRACE).await;
    dataplane.shutdown(SHUTDOWN_GRACE).await;
    if let Some(r) = reaper {
        let _ = tokio::task::spawn_blocking(move || r.finish()).await;
    }
}

/// The eventing data plane's settings from the flags.
fn data_plane_config(args: &RunArgs) -> knit_broker::Config {
    knit_broker::Config {
        max_event_size: args.max_event_size,
        memory: knit_channels::MemoryConfig {
            capacity: args.log_capacity,
            ..Default::default()
        },
        journal_capacity: usize::try_from(args.journal_capacity).unwrap_or(usize::MAX),
        otlp_endpoint: args.otlp_endpoint.clone().filter(|e| !e.trim().is_empty()),
        limits: knit_broker::ingress::Limits {
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
            body_timeout: std::time::Duration::from_secs(args.body_timeout),
            connections_per_client: usize::try_from(args.connections_per_client)
                .unwrap_or(usize::MAX),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// What the source adapters share: the data plane's delivery entry, reports and webhooks,
/// the broker's filters, the process-output logs, the reaper told of every process, and the
/// replicas' coordination.
fn sources_ctx(
    args: &RunArgs,
    dataplane: &DataPlane,
    logs: Arc<knit_sources::logs::Logs>,
    reaper: Option<&Arc<crate::reaper::Reaper>>,
    coordination: Arc<knit_channels::coordination::Coordination>,
) -> knit_sources::Ctx {
    knit_sources::Ctx {
        dispatch: dataplane.dispatch(),
        report: dataplane.reporter(),
        webhooks: dataplane.webhooks(),
        filters: Arc::new(BrokerFilters),
        logs,
        config: knit_sources::Config {
            kubeconfig: args
                .kubeconfig
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
            pubsub_emulator_host: args
                .pubsub_emulator_host
                .clone()
                .filter(|h| !h.trim().is_empty()),
        },
        on_spawn: reaper
            .cloned()
            .map(|r| Arc::new(move |pid: u32| r.watch(pid)) as Arc<dyn Fn(u32) + Send + Sync>),
        coordination: Some(coordination),
    }
}

/// Serving, reporting into the data plane's report, its replicas told to the reaper.
fn serving(
    dataplane: &DataPlane,
    reaper: Option<&Arc<crate::reaper::Reaper>>,
) -> knit_serving::runtime::Serving {
    knit_serving::runtime::Serving::new(
        knit_serving::runtime::Config {
            on_spawn: reaper.cloned().map_or_else(Default::default, |r| {
                knit_serving::runtime::OnSpawn::new(move |pid| r.watch(pid))
            }),
            ..Default::default()
        },
        Arc::new(ServingReport(dataplane.reporter())),
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
