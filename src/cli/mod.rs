//! The command line: every subcommand and its flags. This is a contract users and tests script
//! against; the README documents it.

pub mod client;
pub mod display;
pub mod events;
pub mod fanout;
pub mod filter;
pub mod install;
pub mod merge;
pub mod reference;
pub mod replay;
pub mod replicas;
pub mod send;
pub mod stats;
pub mod table;
pub mod trace;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Knit: Knative Eventing and Serving in one binary.
#[derive(Parser, Debug)]
#[command(name = "knit", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of `get` and `get events`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The full object(s) as YAML.
    Yaml,
    /// The full object(s) as JSON (`{"items": [...]}` for a list).
    Json,
    /// The table with extra columns.
    Wide,
}

/// Content mode of `send`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Attributes in `ce-` headers, data as the body.
    Binary,
    /// The whole event as `application/cloudevents+json`.
    Structured,
}

/// Where the admin API of a running `knit run` is.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Admin API URL of a running `knit run`.
    #[arg(long, env = "KNIT_SERVER", default_value = "http://127.0.0.1:8090")]
    pub server: String,
    /// Bearer token for the admin API.
    #[arg(long, env = "KNIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificates trusted (besides the system's) for an `https://` server and
    /// event address, e.g. the CA of `knit run --tls-cert`.
    #[arg(long, env = "KNIT_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ServerArgs {
    /// An HTTP client trusting `--ca-file` too, giving up after `timeout`, following no
    /// redirects.
    pub fn http_client(&self, timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
        let mut roots = Vec::new();
        if let Some(path) = self
            .ca_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let pem = knit_tls::read_ca_file(path)?;
            roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())?;
        }
        Ok(reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(roots)
            .build()?)
    }
}

/// `--tls-min-version`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMinVersion {
    /// TLS 1.2 and 1.3.
    #[value(name = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    V1_3,
}

impl From<TlsMinVersion> for knit_tls::TlsVersion {
    fn from(v: TlsMinVersion) -> Self {
        match v {
            TlsMinVersion::V1_2 => Self::V1_2,
            TlsMinVersion::V1_3 => Self::V1_3,
        }
    }
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run Knit standalone: load manifests, watch them, serve ingress, dispatch, admin API.
    Run(Box<RunArgs>),
    /// List resources of a kind, or show one; `get events` lists the recent journeys through a
    /// Broker or channel.
    Get(GetArgs),
    /// Where did an event go: its journey through a Broker or channel (accepted, each
    /// Trigger matched or not, each attempt, retries, the reply, the outcome).
    Trace(trace::TraceArgs),
    /// Every event's fate per Trigger, Subscription and source and in total (`/api/v1/stats`);
    /// `--all-replicas` sums the replicas'.
    Stats(stats::StatsArgs),
    /// Show one resource in detail: conditions, addresses, spec.
    Describe {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Create or update resources on a running server from manifest files or folders.
    Apply {
        /// Files or folders.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a resource from a running server.
    Delete {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Filter dry-run: which Triggers take an event, and the clause that decided.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// Print the output of a ContainerSource's processes (`containersource/NAME`) or of a
    /// Knative Service's replicas (`ksvc/NAME`).
    Logs {
        /// `KIND/NAME`, e.g. `containersource/heartbeats` or `ksvc/hello`.
        target: String,
        /// Namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Only this revision's replicas (with `ksvc/NAME`).
        #[arg(long)]
        revision: Option<String>,
        /// Keep printing new output until interrupted.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Re-deliver a Kafka Broker's events to one Trigger.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Check manifests offline, as admission would; exit 0 when valid, 2 otherwise.
    Validate {
        /// Files or folders.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Publish one CloudEvent and print the response.
    Send(send::SendArgs),
    /// Receive CloudEvents and print each one (like Knative's event_display).
    EventDisplay {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9080")]
        listen: SocketAddr,
    },
    /// Print Kubernetes manifests running Knit as replicas on Kafka or NATS: a Deployment, its
    /// ConfigMap of manifests, a Service for the ingress, a PodDisruptionBudget.
    Install(install::InstallArgs),
    /// Print the CustomResourceDefinitions of every Knit kind.
    Crds {
        /// Write one file per CRD into this folder instead of printing.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

/// Flags of `knit get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Kind: plural, singular or short name (brokers, trigger, ksvc, ...), `events`, or
    /// `replicas` (the `knit run` processes of this system).
    pub kind: String,
    /// Name of one resource.
    pub name: Option<String>,
    /// Namespace (default `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub events: events::EventsArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl GetArgs {
    /// Whether this is `knit get replicas`.
    pub fn is_replicas(&self) -> bool {
        matches!(self.kind.as_str(), "replicas" | "replica")
    }

    /// Whether this is `knit get events`.
    pub fn is_events(&self) -> bool {
        matches!(self.kind.as_str(), "events" | "event")
    }
}

/// `knit filter ...`.
#[derive(Subcommand, Debug)]
pub enum FilterCommand {
    /// Test an event against Triggers: offline from manifests (`-f`), or every Trigger of a
    /// running server's Broker (`--broker NS/NAME`). Exit 0 when a Trigger matched, 1 when none
    /// did, 2 on errors.
    Test {
        /// Trigger manifests (files or folders).
        #[arg(short = 'f', long = "filename", conflicts_with = "broker")]
        files: Vec<PathBuf>,
        /// A Broker of a running server: `NAMESPACE/NAME`, or `NAME` with `-n`.
        #[arg(long, required_unless_present = "files")]
        broker: Option<String>,
        /// Namespace of a `--broker` given as `NAME` (default `default`).
        #[arg(short, long, requires = "broker")]
        namespace: Option<String>,
        /// The event in structured JSON mode (`-` reads standard input).
        #[arg(long)]
        event: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `knit replay ...`.
#[derive(Subcommand, Debug)]
pub enum ReplayCommand {
    /// Re-deliver the events of the Trigger's Broker between `--from` and `--to` to this
    /// Trigger only (through its filter), each marked with the extension `knitreplay` (the
    /// run's id). Needs a Broker on Kafka. Exit 0 when all matching events were delivered, 1
    /// when refused or failed, 2 when some were not delivered.
    Trigger(replay::TriggerArgs),
}

/// The state folder of `knit run`: `--state-dir`, `$XDG_STATE_HOME/knit`,
/// `$HOME/.local/state/knit`, else `.knit` here.
pub fn state_dir(args: &RunArgs) -> PathBuf {
    if let Some(d) = &args.state_dir {
        return d.clone();
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_STATE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local/state")))
        .map_or_else(|| PathBuf::from(".knit"), |d| d.join("knit"))
}

/// Flags of `knit run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Manifest files or folders to load and watch (repeatable).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Admin API address (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub admin: SocketAddr,
    /// Broker and channel ingress address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub ingress: SocketAddr,
    /// Serving gateway address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub gateway: SocketAddr,
    /// HTTPS ingress address (with `--tls-cert`).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub ingress_tls: SocketAddr,
    /// HTTPS gateway address (with `--tls-cert`).
    #[arg(long, default_value = "127.0.0.1:8444")]
    pub gateway_tls: SocketAddr,
    /// Serve TLS with this PEM certificate chain (leaf first): the HTTPS ingress and gateway,
    /// and the admin API (HTTPS only then). Read again when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1). Read again when the file
    /// changes.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: trusted (besides the system's) for Knit's own `https://`
    /// deliveries, and published as `CACerts` with every `https` address (give the CA that
    /// signed `--tls-cert`).
    #[arg(long, env = "KNIT_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Lowest TLS version, on the listeners and to `https://` destinations (1.3 as Knative).
    #[arg(long, value_enum, default_value = "1.3")]
    pub tls_min_version: TlsMinVersion,
    /// Bearer token required by the admin API; mandatory when it listens beyond loopback.
    #[arg(long, env = "KNIT_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The OIDC issuer's signing key (PEM PKCS#8, P-256), created when missing; tokens Knit's
    /// deliveries carry are signed with it (`authentication-oidc`). Default: `oidc-key.pem`
    /// in the state folder.
    #[arg(long, env = "KNIT_OIDC_KEY", value_name = "FILE")]
    pub oidc_key: Option<PathBuf>,
    /// Another OIDC issuer whose tokens the ingresses accept besides Knit's own, e.g. a
    /// Kubernetes cluster's service-account issuer: its keys come from the `jwks_uri` of
    /// `URL/.well-known/openid-configuration` (HTTPS trusting the system's roots and
    /// `--ca-file`). Repeatable; the variable takes a comma-separated list.
    #[arg(
        long = "oidc-issuer",
        env = "KNIT_OIDC_ISSUER",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub oidc_issuers: Vec<String>,
    /// The JWKS of an issuer, fetched instead of its discovery document (for clusters whose
    /// discovered `jwks_uri` cannot be reached): `ISSUER=URL`; the issuer is trusted as with
    /// `--oidc-issuer`. Repeatable.
    #[arg(long = "oidc-jwks-uri", value_name = "ISSUER=URL")]
    pub oidc_jwks_uris: Vec<String>,
    /// Where Knit keeps its state (the OIDC key). Default: `$XDG_STATE_HOME/knit`, else
    /// `~/.local/state/knit`.
    #[arg(long, env = "KNIT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Largest event accepted by an ingress, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_event_size: usize,
    /// Seconds a client has to send a request's head (request line and headers) before its
    /// connection is closed (slow clients hold connections).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Seconds a client has to send a request's body once its head arrived (408 after).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
    /// Connections one client address may hold open at the ingress; the next is answered 429.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub connections_per_client: u64,
    /// Events an in-memory log holds waiting for one Trigger or Subscription; past that, its
    /// oldest are shed (or, with `knit.dev/overflow: block`, the ingress answers 429).
    #[arg(long, default_value_t = 10_000)]
    pub log_capacity: usize,
    /// Journeys of events kept for `knit trace` and `knit get events`; the oldest are
    /// forgotten first.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub journal_capacity: u64,
    /// Export OpenTelemetry traces of every event's journey to this OTLP/HTTP endpoint
    /// (JSON to `URL/v1/traces`); off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Kafka bootstrap servers: Brokers of the default class and generic Channels use Kafka,
    /// and Kafka objects that name no cluster use this one.
    #[arg(long, env = "KNIT_KAFKA")]
    pub kafka: Option<String>,
    /// NATS server URL(s), comma-separated (a user and password or a token may be in the URL):
    /// Brokers of the default class use NATS JetStream, and `NatsJetStreamBroker` Brokers use
    /// this server.
    #[arg(long, env = "KNIT_NATS", value_name = "URL", conflicts_with = "kafka")]
    pub nats: Option<String>,
    /// A NATS credentials file (JWT and NKey seed) to connect to `--nats` with.
    #[arg(long, env = "KNIT_NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<String>,
    /// A CA file (PEM) to verify the `--nats` servers' TLS certificates with (requires TLS).
    #[arg(long, env = "KNIT_NATS_CA", value_name = "FILE")]
    pub nats_ca: Option<String>,
    /// This process's id among the replicas sharing `--kafka` or `--nats` (they are one
    /// system: work that must run once runs on one of them). Default `HOSTNAME:ADMIN-PORT`.
    #[arg(long, env = "KNIT_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// The admin API's URL as the other replicas (and `--all-replicas` views) reach it, listed
    /// at `/api/v1/cluster`. Default: the `--admin` address (loopback when it is unspecified);
    /// give it when `--admin` listens on every interface, e.g. `http://POD_IP:8090`.
    #[arg(long, env = "KNIT_ADMIN_URL", value_name = "URL")]
    pub admin_url: Option<String>,
    /// Kubeconfig of the API server ApiServerSources watch.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// `host:port` of a Google Pub/Sub emulator for CloudPubSubSources.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pub pubsub_emulator_host: Option<String>,
}
