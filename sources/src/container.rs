//! ContainerSource in standalone mode: each container of the template runs as a supervised
//! local process (its `command` + `args`, `env`, `workingDir`) with `K_SINK` and
//! `K_CE_OVERRIDES` set, and any SinkBinding naming the source applied on top. A process that
//! exits is restarted on the sources' restart schedule ([`crate::backoff`]: 0.5 s doubling to
//! 30 s), which starts over after a run of 10 s or more; its output goes to the source's log
//! ring (`knit logs containersource/NAME`).
//! Stopping sends SIGTERM to the process group, then SIGKILL after 5 s.
//!
//! The process itself posts to `$K_SINK` (as a container would): its events do not pass
//! through the dispatcher, so their fates are the process's own. With OIDC on it finds a token
//! for its sink in the file `$K_OIDC_TOKEN_FILE` ([`crate::token_file`]).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use knit_crds::contract::{Adapter, Process, Source};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::{MAX_DELAY, restart_delays};
use crate::logs::{Buffer, MAX_LINE_BYTES};
use crate::runtime::{Ctx, Stop, StopSignal};
use crate::token_file::{REFRESH_EVERY, TOKEN_FILE_ENV, TokenFile};

/// A run at least this long starts the restart schedule over.
const RUN_THAT_LASTED: Duration = Duration::from_secs(10);
/// How long a process has to exit after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// What one process is doing, for the source's report.
#[derive(Debug, Clone)]
enum State {
    Starting,
    Running,
    Waiting(String),
}

pub(crate) async fn run(ctx: Arc<Ctx>, source: Arc<Source>, mut stop: StopSignal) {
    let Adapter::Container(cfg) = &source.adapter else {
        return;
    };
    let key = crate::logs::key("ContainerSource", &source.namespace, &source.name);
    let buffer = ctx.logs.buffer(&key);
    let token = match token_file(&ctx, &source) {
        Ok(t) => t,
        Err(why) => {
            ctx.report
                .not_ready(&source.uid, "OIDCTokenNotCreated", why);
            stop.stopped().await;
            return;
        }
    };
    let states = Arc::new(Mutex::new(vec![State::Starting; cfg.processes.len()]));
    let (changed_tx, mut changed) = watch::channel(());
    let mut tasks = Vec::new();
    for (i, p) in cfg.processes.iter().enumerate() {
        let mut process = p.clone();
        if let Some(t) = &token {
            let path = t.path().display().to_string();
            process.env.push((TOKEN_FILE_ENV.into(), path));
        }
        let sup = Supervisor {
            process,
            buffer: buffer.clone(),
            states: states.clone(),
            index: i,
            changed: changed_tx.clone(),
            on_spawn: ctx.on_spawn.clone(),
        };
        tasks.push(tokio::spawn(sup.run(stop.clone())));
    }
    drop(changed_tx);
    let mut refresh = tokio::time::interval_at(Instant::now() + REFRESH_EVERY, REFRESH_EVERY);
    loop {
        report(&ctx, &source, &states.lock(), &key);
        tokio::select! {
            _ = refresh.tick(), if token.is_some() => {
                if let Some(Err(why)) = token.as_ref().map(|t| t.refresh(&ctx.dispatch.sender)) {
                    tracing::warn!(source = %source.reference, why, "the OIDC token was not renewed");
                }
            }
            why = stop.stopped() => {
                futures::future::join_all(tasks).await;
                if why == Stop::Removed {
                    ctx.logs.forget(&key);
                }
                return;
            }
            r = changed.changed() => if r.is_err() {
                stop.stopped().await;
                return;
            },
        }
    }
}

/// The token file of `source`'s processes: `Some` with OIDC on and a sink with an audience
/// (as Knative, no token otherwise).
fn token_file(ctx: &Ctx, source: &Source) -> Result<Option<TokenFile>, String> {
    let Some((subject, Some(audience))) = source
        .auth
        .as_ref()
        .map(|a| (&a.subject, a.subscriber_audience.as_ref()))
    else {
        return Ok(None);
    };
    TokenFile::create(&ctx.dispatch.sender, subject, audience).map(Some)
}

fn report(ctx: &Ctx, source: &Source, states: &[State], key: &str) {
    if let Some(why) = states.iter().find_map(|s| match s {
        State::Waiting(w) => Some(w.clone()),
        _ => None,
    }) {
        ctx.report.not_ready(
            &source.uid,
            "ProcessExited",
            format!("{why}; see knit logs {key}"),
        );
    } else if states.iter().all(|s| matches!(s, State::Running)) {
        ctx.report.ready(&source.uid, &[], 0);
    } else {
        ctx.report
            .not_ready(&source.uid, "Starting", "the processes are starting");
    }
}

struct Supervisor {
    process: Process,
    buffer: Arc<Buffer>,
    states: Arc<Mutex<Vec<State>>>,
    index: usize,
    changed: watch::Sender<()>,
    on_spawn: Option<Arc<dyn Fn(u32) + Send + Sync>>,
}

impl Supervisor {
    fn set(&self, state: State) {
        if let Some(s) = self.states.lock().get_mut(self.index) {
            *s = state;
        }
        self.changed.send_replace(());
    }

    fn note(&self, text: &str) {
        self.buffer.push(&self.process.name, "knit", text);
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let p = &self.process;
        let Some((program, args)) = p.argv.split_first() else {
            return Err(std::io::Error::other("no command"));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so stopping reaches what it started too.
            .process_group(0);
        for (k, v) in &p.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &p.working_dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn()?;
        if let (Some(f), Some(pid)) = (&self.on_spawn, child.id()) {
            f(pid);
        }
        Ok(child)
    }

    async fn run(self, mut stop: StopSignal) {
        let mut delays = restart_delays();
        loop {
            let started = Instant::now();
            let why = match self.spawn() {
                Ok(mut child) => {
                    self.note(&format!("started (pid {})", child.id().unwrap_or(0)));
                    self.set(State::Running);
                    let pumps = [
                        child.stdout.take().map(|o| self.pump(o, "stdout")),
                        child.stderr.take().map(|e| self.pump(e, "stderr")),
                    ];
                    tokio::select! {
                        status = child.wait() => {
                            for p in pumps.into_iter().flatten() {
                                // Whatever the process wrote before exiting is kept.
                                let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
                            }
                            match status {
                                Ok(s) => format!("exited with {s}"),
                                Err(e) => format!("cannot wait for it: {e}"),
                            }
                        }
                        _ = stop.stopped() => {
                            terminate(&mut child).await;
                            self.note("stopped");
                            return;
                        }
                    }
                }
                Err(e) => format!("cannot start {:?}: {e}", self.process.argv.first()),
            };
            if started.elapsed() >= RUN_THAT_LASTED {
                delays = restart_delays();
            }
            let backoff = delays.next().unwrap_or(MAX_DELAY);
            let msg = format!(
                "process {} {why}; restarting in {:.1} s",
                self.process.name,
                backoff.as_secs_f64()
            );
            tracing::warn!(process = %self.process.name, reason = %why, wait_ms = backoff.as_millis() as u64, "container process ended; restarting");
            self.note(&msg);
            self.set(State::Waiting(msg));
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.stopped() => return,
            }
        }
    }

    /// Copy `out` into the log ring, line by line (over-long lines are cut).
    fn pump<R>(&self, mut out: R, stream: &'static str) -> tokio::task::JoinHandle<()>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let buffer = self.buffer.clone();
        let name = self.process.name.clone();
        tokio::spawn(async move {
            let mut pending: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 8192];
            loop {
                let n = match out.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for &b in &chunk[..n] {
                    if b == b'\n' {
                        buffer.push(&name, stream, &String::from_utf8_lossy(&pending));
                        pending.clear();
                    } else if pending.len() < MAX_LINE_BYTES {
                        pending.push(b);
                    }
                }
            }
            if !pending.is_empty() {
                buffer.push(&name, stream, &String::from_utf8_lossy(&pending));
            }
        })
    }
}

/// SIGTERM to the process group, SIGKILL after [`TERM_GRACE`].
async fn terminate(child: &mut Child) {
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(TERM_GRACE, child.wait()).await.is_ok() {
            return;
        }
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill().await;
}
