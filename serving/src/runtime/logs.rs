//! Replica output, kept per revision in a bounded ring of lines for `knit logs ksvc/NAME`.
//! Sequence numbers come from one counter shared by every revision, so the lines of a
//! Service's revisions merge in order and a follower (`-f`) asks for what came after the last
//! one it saw, whichever revision it came from.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Lines kept per revision.
pub(crate) const MAX_LINES: usize = 2000;
/// Longest line kept, in bytes (longer lines are cut).
pub(crate) const MAX_LINE_BYTES: usize = 8 * 1024;

/// One line of replica output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// Sequence number, increasing across all revisions.
    pub seq: u64,
    /// The revision's name.
    pub revision: String,
    /// The replica's number within the revision (from 1).
    pub replica: u64,
    /// `stdout`, `stderr`, or `knit` for the supervisor's own notes.
    pub stream: &'static str,
    /// The text, without its newline.
    pub text: String,
}

/// The output of one revision's replicas.
pub(crate) struct Ring {
    revision: String,
    seq: Arc<AtomicU64>,
    lines: Mutex<VecDeque<LogLine>>,
}

impl Ring {
    pub(crate) fn new(revision: &str, seq: Arc<AtomicU64>) -> Self {
        Self {
            revision: revision.to_string(),
            seq,
            lines: Mutex::new(VecDeque::new()),
        }
    }

    /// Add a line (cut to [`MAX_LINE_BYTES`]).
    pub(crate) fn push(&self, replica: u64, stream: &'static str, text: &str) {
        let mut text = text.trim_end_matches(['\n', '\r']).to_string();
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let mut lines = self.lines.lock();
        // Taken under the lock so a ring's lines stay in sequence order.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if lines.len() >= MAX_LINES {
            lines.pop_front();
        }
        lines.push_back(LogLine {
            seq,
            revision: self.revision.clone(),
            replica,
            stream,
            text,
        });
    }

    /// Lines after sequence number `after`, at most `max`.
    pub(crate) fn since(&self, after: u64, max: usize) -> Vec<LogLine> {
        self.lines
            .lock()
            .iter()
            .filter(|l| l.seq > after)
            .take(max)
            .cloned()
            .collect()
    }

    /// The last line a replica wrote (stdout or stderr), for an exit reason.
    pub(crate) fn last_output(&self, replica: u64) -> Option<String> {
        self.lines
            .lock()
            .iter()
            .rev()
            .find(|l| l.replica == replica && l.stream != "knit" && !l.text.trim().is_empty())
            .map(|l| l.text.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_ordered() {
        let ring = Ring::new("r", Arc::new(AtomicU64::new(0)));
        for i in 0..(MAX_LINES + 5) {
            ring.push(1, "stdout", &format!("line {i}\n"));
        }
        let all = ring.since(0, usize::MAX);
        assert_eq!(all.len(), MAX_LINES);
        assert_eq!(all[0].text, "line 5");
        assert_eq!(ring.since(all[all.len() - 2].seq, 10).len(), 1);
        assert_eq!(ring.last_output(1).as_deref(), Some("line 2004"));
    }
}
