//! Why a TLS peer was refused, in words: a client's error (reqwest's, hyper's, an I/O error)
//! holds a rustls error somewhere down its chain of causes; [`refusal`] finds it and says what
//! it means for the one who reads an event's journey.

use std::error::Error as StdError;

use rustls::{CertificateError, Error};

/// The TLS reason behind `err`, if a rustls error is among its causes: e.g. `TLS: certificate
/// not trusted (UnknownIssuer)`, `TLS: certificate expired`, `TLS: certificate not valid for
/// this host`.
pub fn refusal(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<Error>() {
            return Some(describe(tls));
        }
        // An io::Error's `source()` skips the error it wraps (hyper wraps tokio-rustls' io
        // error in another); look at that one itself.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(c) => format!("TLS: {}", certificate(c)),
        Error::AlertReceived(alert) => format!("TLS: the peer refused the handshake ({alert:?})"),
        Error::PeerIncompatible(why) => format!("TLS: no common protocol with the peer ({why:?})"),
        Error::NoApplicationProtocol => {
            "TLS: no common application protocol (ALPN) with the peer".into()
        }
        other => format!("TLS: {other}"),
    }
}

fn certificate(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "certificate not trusted (UnknownIssuer)".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "certificate not valid for this host (NotValidForName)".into()
        }
        CertificateError::Revoked => "certificate revoked".into(),
        CertificateError::BadSignature => "certificate badly signed (BadSignature)".into(),
        other => format!("invalid certificate ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Box<dyn StdError + Send + Sync>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn finds_the_rustls_error_inside_an_io_error() {
        // As hyper-util reports a refused handshake: an io error around tokio-rustls' one.
        let io = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        ));
        let chain = Wrapper(Box::new(io));
        assert_eq!(
            refusal(&chain).as_deref(),
            Some("TLS: certificate not trusted (UnknownIssuer)")
        );
        let expired = Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(
            refusal(&expired).as_deref(),
            Some("TLS: certificate expired")
        );
        let name = Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(refusal(&name).is_some_and(|r| r.contains("not valid for this host")));
    }

    #[test]
    fn other_errors_have_no_tls_reason() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(refusal(&Wrapper(Box::new(io))), None);
    }
}
