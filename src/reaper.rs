//! Stops what `knit run` started when knit itself dies without stopping it.
//!
//! Replicas and ContainerSource processes each lead their own process group, and a graceful
//! shutdown stops those groups. A SIGKILL, a crash or a closed terminal (SIGHUP) runs no
//! shutdown, and the groups would run on, holding ports and CPU. So `knit run` starts one more child, this binary as
//! `knit __reaper`, in a process group of its own (a Ctrl-C at the terminal does not reach
//! it), and writes it the PID of every process it starts, one per line. The reaper reads until
//! end of file, which comes when knit exits however it exits, then stops each group that is
//! still the one it was told of: TERM, and KILL after a grace. A PID's start time, read when it
//! is told of it, tells a group still running from a later one that reused the number.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

/// The argument that runs this binary as the reaper.
pub const ARG: &str = "__reaper";

/// How long the groups get between TERM and KILL.
const GRACE: Duration = Duration::from_secs(2);

/// The reaper as `knit run` sees it: the pipe to tell it of processes.
pub struct Reaper {
    pipe: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Reaper {
    /// Start the reaper; `None` (and a warning) when it cannot start, and knit runs without.
    pub fn start() -> Option<Arc<Reaper>> {
        let started = std::env::current_exe().and_then(|exe| {
            let mut cmd = Command::new(exe);
            cmd.arg(ARG)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            cmd.spawn()
        });
        match started {
            Ok(mut child) => Some(Arc::new(Reaper {
                pipe: Mutex::new(child.stdin.take()),
                child: Mutex::new(child),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the reaper: processes knit starts may outlive a knit that is killed");
                None
            }
        }
    }

    /// Tell the reaper of a process group knit started (its leader's PID).
    pub fn watch(&self, pid: u32) {
        let mut pipe = self.pipe.lock();
        // A line is far below PIPE_BUF and the reaper reads all the time: this does not block.
        if let Some(p) = pipe.as_mut()
            && p.write_all(format!("{pid}\n").as_bytes()).is_err()
        {
            tracing::warn!(
                pid,
                "the reaper is gone: this process may outlive a knit that is killed"
            );
            *pipe = None;
        }
    }

    /// After a graceful shutdown: close the pipe and wait for the reaper (it finds nothing
    /// left to stop).
    pub fn finish(&self) {
        drop(self.pipe.lock().take());
        let _ = self.child.lock().wait();
    }
}

/// `knit __reaper`: read PIDs until end of file, then stop the groups still running.
pub fn run() -> ExitCode {
    let mut groups: HashMap<i32, Option<u64>> = HashMap::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(pid) = line.trim().parse::<i32>() else {
            continue;
        };
        // Forget groups that ended, so the map stays as small as what runs.
        groups.retain(|&p, started| alive(p, *started));
        groups.insert(pid, start_time(pid));
    }
    let left: Vec<Pid> = groups
        .into_iter()
        .filter(|&(p, started)| alive(p, started))
        .filter_map(|(p, _)| Pid::from_raw(p))
        .collect();
    for &pid in &left {
        let _ = kill_process_group(pid, Signal::TERM);
    }
    let deadline = Instant::now() + GRACE;
    let running = |pid: &Pid| test_kill_process_group(*pid).is_ok();
    while left.iter().any(running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in left.iter().filter(|p| running(p)) {
        let _ = kill_process_group(*pid, Signal::KILL);
    }
    ExitCode::SUCCESS
}

/// The group led by `pid` runs and is the one told of: same start time where it can be read.
fn alive(pid: i32, started: Option<u64>) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    test_kill_process_group(p).is_ok() && (started.is_none() || start_time(pid) == started)
}

/// The start time of `pid` (field 22 of `/proc/PID/stat`, in clock ticks since boot); `None`
/// where there is no `/proc` or the process is gone.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_reads_this_process_and_not_a_missing_one() {
        let me = i32::try_from(std::process::id()).expect("pid");
        let t = start_time(me).expect("this process has a start time");
        assert!(t > 0);
        assert_eq!(start_time(me), Some(t), "a start time does not change");
        assert_eq!(start_time(i32::MAX), None);
        assert!(!alive(i32::MAX, None));
    }
}
