//! Throwaway certificates for the TLS tests, made by the `openssl` command line: a CA, and
//! server certificates it signs (for 127.0.0.1, localhost and `*.default.localhost` unless
//! told otherwise), expired ones among them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The names a server certificate is valid for by default.
pub const LOCAL_NAMES: &str = "DNS:localhost,IP:127.0.0.1,DNS:*.default.localhost";

/// A CA in a temp folder; the certificates it issues live beside it.
pub struct Ca {
    dir: tempfile::TempDir,
    /// Its name, also the file stem of `NAME.crt`.
    name: String,
}

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Its serial number.
    pub serial: u32,
    /// Its subject's common name.
    pub cn: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (apt-get install openssl) runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    /// A new CA named `name` (its subject's CN).
    pub fn new(name: &str) -> Ca {
        let dir = tempfile::tempdir().expect("temp dir");
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &crt,
                "-days",
                "3650",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Ca {
            dir,
            name: name.into(),
        }
    }

    /// The CA certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join(format!("{}.crt", self.name))
    }

    /// The CA certificate's PEM text.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(self.cert()).expect("CA PEM")
    }

    /// A path in its folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A server certificate with subject CN `cn`, `serial`, valid for `names` (an openssl
    /// `subjectAltName` value) for `days` (negative: expired that many days ago).
    pub fn issue(&self, cn: &str, serial: u32, names: &str, days: i32) -> Pair {
        let (crt, key, csr, ext) = (
            format!("{cn}.crt"),
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.ext"),
        );
        std::fs::write(
            self.path(&ext),
            format!(
                "subjectAltName={names}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write ext");
        openssl(
            self.dir.path(),
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{}.crt", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-set_serial",
                &serial.to_string(),
                "-days",
                &days.to_string(),
                "-out",
                &crt,
                "-extfile",
                &ext,
            ],
        );
        Pair {
            cert: self.path(&crt),
            key: self.path(&key),
            serial,
            cn: cn.into(),
        }
    }

    /// A server certificate for [`LOCAL_NAMES`], valid for 30 days.
    pub fn server(&self, cn: &str, serial: u32) -> Pair {
        self.issue(cn, serial, LOCAL_NAMES, 30)
    }
}

impl Pair {
    /// Copy it to `cert` and `key` (each replaced by a rename, as a Secret volume does; the
    /// certificate first, so for a moment the two do not match).
    pub fn install(&self, cert: &Path, key: &Path) {
        for (from, to) in [(&self.cert, cert), (&self.key, key)] {
            let tmp = to.with_extension("tmp");
            std::fs::copy(from, &tmp).expect("copy");
            std::fs::rename(&tmp, to).expect("rename");
        }
    }
}
