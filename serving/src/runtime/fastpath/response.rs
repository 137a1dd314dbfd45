//! The response side of the fast path: a replica's response head, its framing, and the head
//! the client gets.

use knit_wire::{ConnectionOptions, TransferEncoding};

use super::MAX_HEADERS;

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Up to the replica's close.
    Close,
}

/// A response head read from a replica.
pub(super) struct Head {
    /// Its length in the buffer.
    pub(super) len: usize,
    pub(super) status: u16,
    pub(super) framing: Framing,
    /// The replica keeps the connection open after this response.
    pub(super) keep_alive: bool,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the replica closed the connection before answering")]
    Closed,
    #[error("the replica's response head is malformed or too large")]
    BadHead,
    #[error("the replica switched protocols unasked")]
    Switched,
}

pub(super) fn parse_response(resp: &[u8], is_head: bool) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(resp) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ReadError::BadHead),
    };
    let status = r.code.ok_or(ReadError::BadHead)?;
    let mut connection = ConnectionOptions::default();
    let mut coding = TransferEncoding::default();
    let mut length = None;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| ReadError::BadHead)?;
            let n = v.trim().parse::<u64>().map_err(|_| ReadError::BadHead)?;
            if length.is_some_and(|l| l != n) {
                return Err(ReadError::BadHead);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coding.add(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection.add(h.value);
        }
    }
    let keep_alive = connection.persists(r.version.unwrap_or(0));
    let framing = if is_head || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if coding.present() {
        if coding.chunked() {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive: keep_alive && framing != Framing::Close,
    }))
}

/// The response head the client gets: HTTP/1.1, without the replica's hop-by-hop headers;
/// `connection: close` when the connection ends after it.
pub(super) fn rewrite_response(head: &[u8], status: u16, close: bool, out: &mut Vec<u8>) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    // Parsed before, so it parses again.
    let _ = r.parse(head);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in r.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("keep-alive")
            || name.eq_ignore_ascii_case("proxy-connection")
        {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing() {
        let f = |r: &[u8], is_head| match parse_response(r, is_head) {
            Ok(Some(h)) => (h.framing, h.keep_alive),
            _ => panic!("{}", String::from_utf8_lossy(r)),
        };
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            (Framing::Length(5), true)
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            (Framing::Empty, true)
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            (Framing::Chunked, true)
        );
        // `chunked` must be the final coding (RFC 9112 §6.3); otherwise the body ends at close.
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            (Framing::Close, false)
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            (Framing::Chunked, true)
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\n\r\n", false),
            (Framing::Close, false)
        );
        assert_eq!(
            f(
                b"HTTP/1.0 200 OK\r\nConnection: close, keep-alive\r\nContent-Length: 1\r\n\r\n",
                false
            ),
            (Framing::Length(1), false)
        );
        assert_eq!(
            f(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false),
            (Framing::Length(1), false)
        );
        assert_eq!(
            f(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                false
            ),
            (Framing::Length(1), true)
        );
        assert_eq!(
            f(
                b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
                false
            ),
            (Framing::Empty, false)
        );
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            ),
            Err(ReadError::BadHead)
        ));
    }

    #[test]
    fn the_client_gets_http_1_1_without_hop_by_hop_headers() {
        let head =
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\r\n";
        let mut out = Vec::new();
        rewrite_response(head, 200, false, &mut out);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n");
        out.clear();
        rewrite_response(head, 200, true, &mut out);
        assert!(out.ends_with(b"connection: close\r\n\r\n"));
    }
}
