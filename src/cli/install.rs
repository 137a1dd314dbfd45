//! `knit install --print`: Kubernetes manifests running Knit as replicas of one system, without
//! CRDs: a ConfigMap holding the Knit manifests (mounted as the folder `knit run -f` watches), a
//! Deployment of `knit run` on `--kafka` or `--nats` (the replica id is the pod's name, probes on
//! `/healthz` and `/readyz`, SIGTERM drains within the grace period), a Service for the ingress
//! and a PodDisruptionBudget. Printed as multi-document YAML for `kubectl apply -f -`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The image run when `--image` is not given: this version of Knit.
pub const DEFAULT_IMAGE: &str = concat!("knit:", env!("CARGO_PKG_VERSION"));

/// Where the ConfigMap is mounted in the pod.
const MANIFESTS: &str = "/etc/knit/manifests";
/// Where Knit keeps its state (the OIDC key) in the pod.
const STATE: &str = "/var/lib/knit";
const ADMIN_PORT: u16 = 8090;
const INGRESS_PORT: u16 = 8080;
const GATEWAY_PORT: u16 = 8081;
/// Seconds the Service's endpoints get to forget a stopping pod before it drains.
const PRE_STOP_SECONDS: u32 = 5;
/// Seconds from SIGTERM to SIGKILL: the pre-stop pause, then up to 8 s each for the sources,
/// serving and the data plane to finish and commit (`knit run`'s shutdown), and a margin.
const GRACE_SECONDS: u32 = 45;
/// ConfigMaps hold at most 1 MiB.
const CONFIG_MAP_LIMIT: usize = 1024 * 1024;

/// Flags of `knit install`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("engine").required(true).args(["kafka", "nats"]))]
pub struct InstallArgs {
    /// Print the manifests on stdout (for `kubectl apply -f -`); the only mode there is.
    #[arg(long, required = true)]
    pub print: bool,
    /// Kafka bootstrap servers the replicas share (`knit run --kafka`).
    #[arg(long, value_name = "BOOTSTRAP")]
    pub kafka: Option<String>,
    /// NATS server URL(s) the replicas share (`knit run --nats`).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub replicas: u32,
    /// The container image with `knit` as its entrypoint.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// A folder of Knit manifests to put into the ConfigMap (one key per `.yaml`, `.yml` or
    /// `.json` file); checked as `knit validate` does. Without it the ConfigMap is empty.
    #[arg(short = 'f', long = "filename", value_name = "DIR")]
    pub files: Option<PathBuf>,
    /// Kubernetes namespace of the objects.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Name of the objects (the pods are named after it).
    #[arg(long, default_value = "knit")]
    pub name: String,
}

/// `knit install --print`: exit status 2 when the manifests of `-f` are not valid.
pub fn run(args: &InstallArgs) -> Result<bool> {
    if !args.print {
        bail!(
            "knit install only prints the manifests: give --print (and pipe to kubectl apply -f -)"
        );
    }
    let data = match &args.files {
        Some(dir) => match config_map_data(dir)? {
            Some(d) => d,
            None => return Ok(false),
        },
        None => serde_json::Map::new(),
    };
    print!("{}", render(args, data)?);
    Ok(true)
}

/// Every document, as multi-document YAML.
pub fn render(args: &InstallArgs, data: serde_json::Map<String, Value>) -> Result<String> {
    let docs = [
        config_map(args, data),
        deployment(args)?,
        service(args),
        disruption_budget(args),
    ];
    Ok(serde_saphyr::to_string_multiple(&docs)?)
}

/// The files of `dir` as ConfigMap data (file name → text); `None` (the problems printed)
/// when one is not a valid manifest.
fn config_map_data(dir: &Path) -> Result<Option<serde_json::Map<String, Value>>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            bail!(
                "{}: a ConfigMap holds no folders; put its manifests in {} itself",
                path.display(),
                dir.display()
            );
        }
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push((name, path));
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "no manifest files (.yaml, .yml, .json) in {}",
            dir.display()
        );
    }
    let (mut data, mut ok, mut size) = (serde_json::Map::new(), true, 0);
    for (name, path) in files {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            bail!(
                "{}: a ConfigMap key is letters, digits, '-', '_' and '.' only; rename the file",
                path.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let verdict =
            knit_crds::admission::admit_file(&path.display().to_string(), &text, &crate::hooks());
        for e in &verdict.errors {
            eprintln!("{e}");
        }
        ok &= verdict.errors.is_empty();
        size += name.len() + text.len();
        data.insert(name, Value::String(text));
    }
    if size > CONFIG_MAP_LIMIT {
        bail!(
            "the manifests of {} take {size} bytes; a ConfigMap holds at most 1 MiB",
            dir.display()
        );
    }
    Ok(ok.then_some(data))
}

fn labels(args: &InstallArgs) -> Value {
    json!({"app.kubernetes.io/name": "knit", "app.kubernetes.io/instance": args.name})
}

fn metadata(args: &InstallArgs, name: &str) -> Value {
    json!({"name": name, "namespace": args.namespace, "labels": labels(args)})
}

fn config_map(args: &InstallArgs, data: serde_json::Map<String, Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(args, &format!("{}-manifests", args.name)),
        "data": data,
    })
}

/// `knit run`'s arguments in the pod.
fn run_args(args: &InstallArgs) -> Result<Vec<String>> {
    let mut out: Vec<String> = vec!["run".into(), "-f".into(), MANIFESTS.into()];
    for (flag, port) in [
        ("--admin", ADMIN_PORT),
        ("--ingress", INGRESS_PORT),
        ("--gateway", GATEWAY_PORT),
    ] {
        out.push(flag.into());
        out.push(format!("0.0.0.0:{port}"));
    }
    match (&args.kafka, &args.nats) {
        (Some(k), _) if !k.trim().is_empty() => {
            out.extend(["--kafka".into(), k.trim().to_string()])
        }
        (_, Some(n)) if !n.trim().is_empty() => out.extend(["--nats".into(), n.trim().to_string()]),
        _ => bail!("give --kafka BOOTSTRAP or --nats URL: the replicas meet there"),
    }
    Ok(out)
}

/// The environment: the replica id is the pod's name, the admin URL the others reach is the
/// pod's IP, the admin token comes from the Secret `NAME-admin`.
fn env(args: &InstallArgs) -> Value {
    json!([
        {"name": "KNIT_REPLICA_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "KNIT_ADMIN_URL", "value": format!("http://$(POD_IP):{ADMIN_PORT}")},
        {"name": "KNIT_TOKEN", "valueFrom": {"secretKeyRef": {"name": format!("{}-admin", args.name), "key": "token"}}},
        {"name": "KNIT_STATE_DIR", "value": STATE},
    ])
}

fn probe(path: &str, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": {"path": path, "port": "admin"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    })
}

fn container(args: &InstallArgs) -> Result<Value> {
    Ok(json!({
        "name": "knit",
        "image": args.image,
        "args": run_args(args)?,
        "env": env(args),
        "ports": [
            {"name": "ingress", "containerPort": INGRESS_PORT, "protocol": "TCP"},
            {"name": "gateway", "containerPort": GATEWAY_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        // The admin API listens once the manifests are loaded; give it a minute.
        "startupProbe": probe("/healthz", 2, 30),
        "livenessProbe": probe("/healthz", 10, 3),
        "readinessProbe": probe("/readyz", 5, 2),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "manifests", "mountPath": MANIFESTS, "readOnly": true},
            {"name": "state", "mountPath": STATE},
        ],
    }))
}

fn deployment(args: &InstallArgs) -> Result<Value> {
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(args, &args.name),
        "spec": {
            "replicas": args.replicas,
            "selector": {"matchLabels": labels(args)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(args)},
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": labels(args)},
                    }],
                    "containers": [container(args)?],
                    "volumes": [
                        {"name": "manifests", "configMap": {"name": format!("{}-manifests", args.name)}},
                        {"name": "state", "emptyDir": {}},
                    ],
                },
            },
        },
    }))
}

fn service(args: &InstallArgs) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(args, &args.name),
        "spec": {
            "selector": labels(args),
            "ports": [{"name": "http", "port": 80, "targetPort": "ingress", "protocol": "TCP"}],
        },
    })
}

fn disruption_budget(args: &InstallArgs) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(args, &args.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(args)}},
    })
}
