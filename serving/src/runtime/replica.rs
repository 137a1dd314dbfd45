//! One replica: a local process supervised for its revision. It gets a free loopback `PORT`,
//! the contract's environment and the container's argv/env/workingDir, runs in its own process
//! group with stdin piped (an app that exits when stdin closes never outlives Knit), and its
//! output goes to the revision's log ring. Startup then readiness probes decide when it takes
//! traffic; a process that exits is restarted with backoff and the revision says why. Stopping
//! drains: no new requests, wait for the in-flight ones, SIGTERM to the group, SIGKILL after the
//! revision's `timeoutSeconds`.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::logs::MAX_LINE_BYTES;
use super::proxy::Proxy;
use super::revision::Rev;
use super::{env, probe};
use crate::Error;

/// The first restart delay.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// The longest restart delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long resets the backoff.
const RUN_THAT_LASTED: Duration = Duration::from_secs(10);

/// The delays before each restart of a replica that exited or failed its startup probe:
/// 0.5 s, 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s for ever (doubling from [`BACKOFF_START`],
/// capped at [`BACKOFF_MAX`], no jitter: one supervisor restarts one process). A run that
/// lasted [`RUN_THAT_LASTED`] starts the schedule over.
///
/// This is the shape of Kubernetes' CrashLoopBackOff (doubling to a cap, reset after a run
/// that lasted), not its numbers: the kubelet waits 10 s doubling to 5 min and resets after
/// 10 min of running; a local process starts in milliseconds and a developer is waiting for
/// it, so Knit's steps are shorter.
fn restart_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(BACKOFF_START)
        .with_max_delay(BACKOFF_MAX)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Starting, restarting or failing its readiness probe: no traffic.
    Starting,
    /// Takes traffic.
    Ready,
    /// Stopping: no new traffic.
    Draining,
}

impl Phase {
    fn of(v: u8) -> Phase {
        match v {
            x if x == Phase::Ready as u8 => Phase::Ready,
            x if x == Phase::Draining as u8 => Phase::Draining,
            _ => Phase::Starting,
        }
    }
}

/// One replica of a revision.
pub(crate) struct Replica {
    pub(crate) id: u64,
    pub(crate) proxy: Arc<Proxy>,
    phase: AtomicU8,
    pub(crate) stop: CancellationToken,
    pub(crate) since: Instant,
}

impl Replica {
    pub(crate) fn new(id: u64, container_concurrency: u32) -> Arc<Self> {
        Arc::new(Self {
            id,
            proxy: Proxy::new(container_concurrency),
            phase: AtomicU8::new(Phase::Starting as u8),
            stop: CancellationToken::new(),
            since: Instant::now(),
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::of(self.phase.load(Ordering::Acquire))
    }

    /// Set the phase (a draining replica stays draining).
    pub(crate) fn set_phase(&self, phase: Phase) -> bool {
        self.phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                let p = Phase::of(p);
                (p != Phase::Draining && p != phase).then_some(phase as u8)
            })
            .is_ok()
    }

    /// Stop taking traffic and stop.
    pub(crate) fn drain(&self) {
        self.phase.store(Phase::Draining as u8, Ordering::Release);
        self.stop.cancel();
    }
}

/// A free loopback port.
fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

enum Ended {
    Exited(String),
    ProbeFailed(String),
    Stopped,
}

/// Supervise `rep` until it is stopped, then remove it from the revision.
pub(crate) async fn run(rev: Arc<Rev>, rep: Arc<Replica>) {
    let mut delays = restart_delays();
    loop {
        let started = Instant::now();
        let ended = match spawn(&rev, &rep) {
            Err(e) => Ended::Exited(e.to_string()),
            Ok(mut child) => {
                let stdin = child.stdin.take();
                let pumps = [
                    child.stdout.take().map(|o| pump(&rev, rep.id, o, "stdout")),
                    child.stderr.take().map(|e| pump(&rev, rep.id, e, "stderr")),
                ];
                let ended = tokio::select! {
                    status = child.wait() => {
                        for p in pumps.into_iter().flatten() {
                            // Whatever the process wrote before exiting is kept.
                            let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
                        }
                        let last = rev.logs.last_output(rep.id);
                        let status = match status {
                            Ok(s) => s.to_string(),
                            Err(e) => format!("cannot wait for it: {e}"),
                        };
                        Ended::Exited(match last {
                            Some(l) => format!("replica {} {status}; last output: {l}", rep.id),
                            None => format!("replica {} {status}", rep.id),
                        })
                    }
                    e = probing(&rev, &rep) => Ended::ProbeFailed(e),
                    () = rep.stop.cancelled() => Ended::Stopped,
                };
                match ended {
                    Ended::Stopped => {
                        drain(&rev, &rep, &mut child).await;
                        drop(stdin);
                        rev.note(rep.id, "stopped");
                        rev.remove(&rep);
                        return;
                    }
                    Ended::ProbeFailed(_) => terminate(&mut child, Duration::from_secs(1)).await,
                    Ended::Exited(_) => {}
                }
                drop(stdin);
                ended
            }
        };
        if rep.set_phase(Phase::Starting) {
            rev.changed();
        }
        match ended {
            Ended::Exited(why) => rev.fail(rep.id, "ExitCode", &why),
            Ended::ProbeFailed(why) => rev.fail(rep.id, "ProbeFailed", &why),
            Ended::Stopped => {}
        }
        if started.elapsed() >= RUN_THAT_LASTED {
            delays = restart_delays();
        }
        let delay = delays.next().unwrap_or(BACKOFF_MAX);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = rep.stop.cancelled() => {
                rev.remove(&rep);
                return;
            }
        }
    }
}

fn spawn(rev: &Rev, rep: &Replica) -> crate::Result<Child> {
    let port = free_port().map_err(|source| Error::NoFreePort { source })?;
    rep.proxy.set_port(port);
    let env = env::environment(&rev.spec, port);
    let argv = env::argv(&rev.spec, &env);
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::NoCommand);
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so stopping reaches what it started too.
        .process_group(0);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    if let Some(dir) = &rev.spec.container.working_dir {
        cmd.current_dir(dir);
    }
    let child = cmd.spawn().map_err(|source| Error::Start {
        program: program.clone(),
        source,
    })?;
    rev.config.on_spawn.call(child.id());
    tracing::info!(revision = %rev.spec.name, namespace = %rev.spec.namespace, replica = rep.id, port, pid = child.id().unwrap_or(0), "replica started");
    rev.note(
        rep.id,
        &format!("started (pid {}, PORT {port})", child.id().unwrap_or(0)),
    );
    Ok(child)
}

/// Startup probe, then readiness probes for ever; returns only when the startup probe fails.
async fn probing(rev: &Rev, rep: &Replica) -> String {
    let port = rep.proxy.port();
    let c = &rev.spec.container;
    if let Some(startup) = c.startup.as_ref() {
        tokio::time::sleep(Duration::from_secs(startup.initial_delay_seconds)).await;
        let mut failures = 0;
        loop {
            match probe::once(port, Some(startup)).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    if startup.period_seconds > 0
                        && failures >= probe::failure_threshold(Some(startup))
                    {
                        return format!("startup probe failed {failures} times: {e}");
                    }
                }
            }
            tokio::time::sleep(probe::initial_period(Some(startup))).await;
        }
    }
    let readiness = c.readiness.as_ref();
    if let Some(r) = readiness {
        tokio::time::sleep(Duration::from_secs(r.initial_delay_seconds)).await;
    }
    let mut failures = 0;
    let mut ready = false;
    loop {
        match probe::once(port, readiness).await {
            Ok(()) => {
                failures = 0;
                if !ready {
                    ready = true;
                    if rep.set_phase(Phase::Ready) {
                        rev.on_ready(rep.id);
                    }
                }
            }
            Err(e) => {
                failures += 1;
                if ready && failures >= probe::failure_threshold(readiness) {
                    ready = false;
                    if rep.set_phase(Phase::Starting) {
                        rev.changed();
                    }
                    rev.fail(rep.id, "ProbeFailed", &format!("readiness probe: {e}"));
                }
            }
        }
        let wait = if ready {
            probe::period(readiness)
        } else {
            probe::initial_period(readiness)
        };
        tokio::time::sleep(wait).await;
    }
}

/// Wait for the in-flight requests (up to the revision timeout), then stop the process.
async fn drain(rev: &Rev, rep: &Replica, child: &mut Child) {
    let grace = rev.grace();
    if tokio::time::timeout(grace, rep.proxy.meter.idle())
        .await
        .is_err()
    {
        tracing::warn!(revision = %rev.spec.name, replica = rep.id, "requests still in flight after the drain timeout");
    }
    rep.proxy.pool.clear();
    terminate(child, grace).await;
}

/// SIGTERM to the process group, SIGKILL after `grace`.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            return;
        }
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

/// Copy `out` into the revision's log ring, line by line (over-long lines are cut).
fn pump<R>(rev: &Rev, replica: u64, mut out: R, stream: &'static str) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let logs = rev.logs.clone();
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
                    logs.push(replica, stream, &String::from_utf8_lossy(&pending));
                    pending.clear();
                } else if pending.len() < MAX_LINE_BYTES {
                    pending.push(b);
                }
            }
        }
        if !pending.is_empty() {
            logs.push(replica, stream, &String::from_utf8_lossy(&pending));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_doubling_to_the_cap() {
        let ms = |n: u64| Duration::from_millis(n);
        let delays: Vec<_> = restart_delays().take(9).collect();
        assert_eq!(
            delays,
            [
                ms(500),
                ms(1_000),
                ms(2_000),
                ms(4_000),
                ms(8_000),
                ms(16_000),
                ms(30_000),
                ms(30_000),
                ms(30_000)
            ]
        );
    }
}
