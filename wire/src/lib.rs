//! knit-wire: HTTP/1.1 wire framing shared by the dispatcher's client and the serving gateway;
//! no I/O, no knowledge of events or Knative.
//!
//! It holds the chunked transfer coding ([`Chunked`]): finding where a chunked body ends in
//! bytes forwarded unchanged (the gateway's fast path), and decoding it (the dispatcher's
//! client reading a response); and the header values framing reads ([`headers`]: lists,
//! `Connection` options, `Transfer-Encoding`). It must not depend on any other Knit crate, so
//! that serving can use it and still stand apart from eventing.

pub mod chunked;
pub mod headers;

pub use chunked::Chunked;
pub use headers::{ConnectionOptions, TransferEncoding};

/// Why bytes are not valid HTTP/1.1 framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A chunk-size line does not start with 1 to 16 hex digits, or breaks a line early (a
    /// bare LF).
    #[error("invalid chunk size")]
    ChunkSize,
    /// A chunk-size line (size and extensions) is longer than the decoder's bound.
    #[error("invalid chunk size line")]
    ChunkSizeLine,
    /// A chunk's data is not followed by CRLF.
    #[error("invalid chunk")]
    ChunkEnd,
    /// A trailer line (or the final CRLF) is broken: a bare CR or LF.
    #[error("invalid trailer")]
    Trailer,
    /// The trailer section is longer than the decoder's bound.
    #[error("trailers too large")]
    TrailersTooLarge,
}

/// Result with the framing [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
