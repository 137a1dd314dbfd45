//! When to look at the watched manifest files again: on the operating system's change
//! notifications (inotify, FSEvents, ...) where they work, otherwise every [`POLL_INTERVAL`].
//!
//! Notifications cost nothing while nothing changes, whatever the number of files or objects.
//! They are not used, and the files are polled instead, when the notifier cannot start (no
//! inotify instances left, say), when a watched path cannot be watched (it does not exist yet),
//! when a root lies on a network filesystem (NFS, SMB, FUSE, 9p: changes made on another machine
//! raise no local notification), or when `KNIT_WATCH=poll`. Either way an edit is read within a
//! second, as the README promises.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::Notify;

/// How often watched files are checked where notifications are not used.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long after a first notification the files are read: an editor's save is several
/// events (write, rename, chmod), read once.
const SETTLE: Duration = Duration::from_millis(30);

/// What tells the control plane to look at the files again.
pub enum Wakeup {
    /// Notifications; the watcher is kept alive with them.
    Notified {
        _watcher: notify::RecommendedWatcher,
        signal: Arc<Notify>,
    },
    /// A timer.
    Polling(tokio::time::Interval),
}

impl Wakeup {
    /// Notifications for `roots` where they work, else polling (see the module doc).
    pub fn for_roots(roots: &[PathBuf]) -> Wakeup {
        match notified(roots) {
            Ok(w) => w,
            Err(why) => {
                tracing::info!(reason = %why, interval_ms = POLL_INTERVAL.as_millis() as u64, "manifest files are polled");
                Wakeup::polling()
            }
        }
    }

    fn polling() -> Wakeup {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Wakeup::Polling(tick)
    }

    /// Wait until the files may have changed. Cancel-safe: a notification that arrives while
    /// nobody waits is kept for the next call.
    pub async fn next(&mut self) {
        match self {
            Wakeup::Notified { signal, .. } => signal.notified().await,
            Wakeup::Polling(tick) => {
                tick.tick().await;
            }
        }
    }

    /// After a notification, let the rest of an editor's save arrive before the files are read.
    pub async fn settle(&self) {
        if let Wakeup::Notified { .. } = self {
            tokio::time::sleep(SETTLE).await;
        }
    }
}

/// Why the files are polled instead of watched through notifications.
#[derive(Debug, thiserror::Error)]
enum NotNotified {
    /// `KNIT_WATCH=poll` asked for polling.
    #[error("KNIT_WATCH=poll")]
    Asked,
    /// The notifier could not start (no inotify instances left, say).
    #[error("no notifier: {0}")]
    NoNotifier(#[source] notify::Error),
    /// A root lies on a network filesystem, whose remote changes raise no notification.
    #[error("{} is on a network filesystem ({fs})", path.display())]
    NetworkFilesystem { path: PathBuf, fs: &'static str },
    /// A root could not be watched (it does not exist yet, say).
    #[error("cannot watch {}: {source}", path.display())]
    CannotWatch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Start notifications for `roots`: a folder recursively, a file through its folder (editors
/// replace files by renaming a new one over them, which a watch on the file itself would miss).
fn notified(roots: &[PathBuf]) -> Result<Wakeup, NotNotified> {
    if std::env::var("KNIT_WATCH").is_ok_and(|v| v == "poll") {
        return Err(NotNotified::Asked);
    }
    let signal = Arc::new(Notify::new());
    let on_event = {
        let signal = signal.clone();
        move |_: notify::Result<notify::Event>| signal.notify_one()
    };
    let mut watcher = notify::recommended_watcher(on_event).map_err(NotNotified::NoNotifier)?;
    for root in roots {
        let (path, mode) = if root.is_dir() {
            (root.as_path(), notify::RecursiveMode::Recursive)
        } else {
            let parent = root
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (parent, notify::RecursiveMode::NonRecursive)
        };
        if let Some(fs) = network_filesystem(path) {
            return Err(NotNotified::NetworkFilesystem {
                path: path.to_path_buf(),
                fs,
            });
        }
        watcher
            .watch(path, mode)
            .map_err(|source| NotNotified::CannotWatch {
                path: path.to_path_buf(),
                source,
            })?;
    }
    tracing::debug!("manifest files are watched through change notifications");
    Ok(Wakeup::Notified {
        _watcher: watcher,
        signal,
    })
}

/// The kind of network filesystem `path` lies on, if it does (Linux; elsewhere `None`).
#[cfg(target_os = "linux")]
fn network_filesystem(path: &Path) -> Option<&'static str> {
    // The magic numbers are 32-bit; `f_type` is a signed word.
    let magic = (rustix::fs::statfs(path).ok()?.f_type as u64) & 0xFFFF_FFFF;
    Some(match magic {
        0x6969 => "nfs",
        0x517B => "smb",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x00C3_6400 => "ceph",
        0x0BD0_0BD0 => "lustre",
        0x4741_5346 => "gpfs",
        0x0133_1234 => "afs",
        _ => return None,
    })
}

#[cfg(not(target_os = "linux"))]
fn network_filesystem(_: &Path) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_file_wakes_the_watcher() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut wakeup = Wakeup::for_roots(&[dir.path().to_path_buf()]);
        std::fs::write(dir.path().join("a.yaml"), "kind: Broker\n").expect("written");
        tokio::time::timeout(Duration::from_secs(10), wakeup.next())
            .await
            .expect("woken by the new file");
    }

    #[tokio::test]
    async fn a_file_root_is_watched_through_its_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "kind: Broker\n").expect("written");
        let mut wakeup = Wakeup::for_roots(std::slice::from_ref(&file));
        // Replaced the way editors save: a new file renamed over the old one.
        let new = dir.path().join(".a.yaml.new");
        std::fs::write(&new, "kind: Trigger\n").expect("written");
        std::fs::rename(&new, &file).expect("renamed");
        tokio::time::timeout(Duration::from_secs(10), wakeup.next())
            .await
            .expect("woken by the rename");
    }
}
