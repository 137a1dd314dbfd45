//! Manifest files under the paths given to `knit run -f`: listing, and telling what changed
//! since the last look (size, modification time, then content hash), which works on every
//! filesystem. When to look again is [`super::watch`]'s business.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// A change to one manifest file.
#[derive(Debug, Clone)]
pub enum Change {
    /// New or edited, with its text.
    Changed(PathBuf, String),
    /// Deleted (or no longer readable).
    Removed(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    hash: u64,
}

/// Every manifest file (`.yaml`, `.yml`, `.json`) under `roots`, sorted. A root that is a file
/// is taken whatever its extension.
pub fn list(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in roots {
        if root.is_dir() {
            walk(root, &mut out);
        } else {
            out.push(root.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
}

/// Remembers what each file looked like at the last poll.
#[derive(Debug, Default)]
pub struct Watcher {
    roots: Vec<PathBuf>,
    known: BTreeMap<PathBuf, Stamp>,
}

fn hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Watcher {
    /// Watch `roots`.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            known: BTreeMap::new(),
        }
    }

    /// What changed since the last call (everything, the first time). Blocking file I/O: run
    /// it off the async runtime.
    pub fn poll(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        let files = list(&self.roots);
        for path in &files {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            let (len, modified) = (meta.len(), meta.modified().ok());
            if let Some(k) = self.known.get(path)
                && k.len == len
                && k.modified == modified
            {
                continue;
            }
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let stamp = Stamp {
                len,
                modified,
                hash: hash(&text),
            };
            let same = self.known.get(path).is_some_and(|k| k.hash == stamp.hash);
            self.known.insert(path.clone(), stamp);
            if !same {
                changes.push(Change::Changed(path.clone(), text));
            }
        }
        let listed: std::collections::HashSet<&PathBuf> = files.iter().collect();
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|k| !listed.contains(k))
            .cloned()
            .collect();
        for path in gone {
            self.known.remove(&path);
            changes.push(Change::Removed(path));
        }
        changes
    }
}
