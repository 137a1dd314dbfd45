//! The OIDC token of a ContainerSource's processes (`authentication-oidc` on). Knative mounts
//! it at `/oidc/token` in every container; a local process gets the file's path in
//! `K_OIDC_TOKEN_FILE` instead. The file holds a token for the source's subject and its sink's
//! audience, in a folder only this user can read, and is rewritten (whole, by rename) every
//! half hour; a token lives an hour, so a process that reads the file before each request, as
//! Knative asks of a workload, always has a valid one. The folder goes when the source stops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use knit_dispatcher::Sender;

/// The variable naming the token file.
pub const TOKEN_FILE_ENV: &str = "K_OIDC_TOKEN_FILE";
/// How often the token is replaced (half its lifetime, as Knative's resync).
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(30 * 60);

/// A token file kept for one source.
pub(crate) struct TokenFile {
    dir: tempfile::TempDir,
    subject: String,
    audience: String,
}

impl TokenFile {
    /// A folder of its own holding a token for `subject` and `audience`.
    pub(crate) fn create(sender: &Sender, subject: &str, audience: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("knit-oidc-")
            .tempdir()
            .map_err(|e| format!("cannot create the token folder: {e}"))?;
        let file = Self {
            dir,
            subject: subject.to_string(),
            audience: audience.to_string(),
        };
        file.refresh(sender)?;
        Ok(file)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    /// Write a fresh token (a temporary file renamed over the old one).
    pub(crate) fn refresh(&self, sender: &Sender) -> Result<(), String> {
        let token = sender.token(&self.subject, &self.audience)?;
        write_replacing(&self.path(), token.as_bytes())
            .map_err(|e| format!("cannot write the token file: {e}"))
    }
}

fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
