//! The output of local processes (ContainerSource), kept per source in a bounded ring of lines
//! for `knit logs`. Oldest lines are forgotten first; every line has a sequence number so a
//! follower (`-f`) asks for what came after the last one it saw.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// Lines kept per source.
pub const MAX_LINES: usize = 2000;
/// Longest line kept, in bytes (longer lines are cut).
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    /// Sequence number, increasing from 1.
    pub seq: u64,
    /// Which process (the container's name).
    pub process: String,
    /// `stdout`, `stderr`, or `knit` for the supervisor's own notes.
    pub stream: &'static str,
    /// The text, without its newline.
    pub text: String,
}

#[derive(Default)]
struct Ring {
    next: u64,
    lines: VecDeque<Line>,
}

/// The output of one source's processes.
#[derive(Default)]
pub struct Buffer {
    ring: Mutex<Ring>,
}

impl Buffer {
    /// Add a line.
    pub fn push(&self, process: &str, stream: &'static str, text: &str) {
        let mut text = text.trim_end_matches(['\n', '\r']).to_string();
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let mut ring = self.ring.lock();
        ring.next += 1;
        let seq = ring.next;
        if ring.lines.len() >= MAX_LINES {
            ring.lines.pop_front();
        }
        ring.lines.push_back(Line {
            seq,
            process: process.to_string(),
            stream,
            text,
        });
    }

    /// Lines after sequence number `after` (0: all kept), at most `max`.
    pub fn since(&self, after: u64, max: usize) -> Vec<Line> {
        self.ring
            .lock()
            .lines
            .iter()
            .filter(|l| l.seq > after)
            .take(max)
            .cloned()
            .collect()
    }
}

/// Buffers by key (`containersource/<namespace>/<name>`).
#[derive(Default)]
pub struct Logs {
    by_key: Mutex<HashMap<String, Arc<Buffer>>>,
}

impl Logs {
    /// No output yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer of `key`, created on first use.
    pub fn buffer(&self, key: &str) -> Arc<Buffer> {
        self.by_key
            .lock()
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// The buffer of `key`, if anything was ever logged there.
    pub fn get(&self, key: &str) -> Option<Arc<Buffer>> {
        self.by_key.lock().get(key).cloned()
    }

    /// Forget `key`.
    pub fn forget(&self, key: &str) {
        self.by_key.lock().remove(key);
    }
}

/// The key of a source's logs: lower-case kind, namespace, name.
pub fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", kind.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_forgets_the_oldest_and_followers_resume_by_sequence() {
        let b = Buffer::default();
        for i in 0..(MAX_LINES + 5) {
            b.push("main", "stdout", &format!("line {i}\n"));
        }
        let all = b.since(0, usize::MAX);
        assert_eq!(all.len(), MAX_LINES);
        assert_eq!(all[0].text, "line 5");
        let last = all.last().map(|l| l.seq).unwrap_or_default();
        b.push("main", "stderr", "tail");
        let more = b.since(last, 10);
        assert_eq!(more.len(), 1);
        assert_eq!((more[0].stream, more[0].text.as_str()), ("stderr", "tail"));
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let b = Buffer::default();
        b.push("p", "stdout", &"é".repeat(MAX_LINE_BYTES));
        let l = &b.since(0, 1)[0];
        assert!(l.text.len() <= MAX_LINE_BYTES && l.text.chars().all(|c| c == 'é'));
    }
}
