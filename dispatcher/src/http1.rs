//! A small HTTP/1.1 client for plain `http://` egress, owned by one dispatcher worker.
//!
//! Each worker keeps its own keep-alive connections (a few, by `host:port`), so a delivery is
//! one write and one read on the worker's own task: no shared pool, no connection task, no
//! channels between them. Measured against hyper-util's pooled client, that removes two task
//! hand-offs per event, which on the benchmark machine was most of what the dispatcher spent
//! beyond the system calls themselves.
//!
//! What it speaks: `POST` with `Content-Length`; responses with `Content-Length`, `chunked`
//! as the final transfer coding, or delimited by close (RFC 9112 §6.3); `1xx` interim
//! responses skipped; `Connection: close` honoured, HTTP/1.0 kept alive only with
//! `keep-alive`. A connection that was idle in the cache and fails before any byte of a response
//! arrives is replaced and the request sent once more (the server closed it while idle, as
//! hyper does for such requests). Response headers and bodies are bounded.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use knit_wire::{Chunked, ConnectionOptions, TransferEncoding};
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binding::Lines;
use crate::hosts::{Dial, LocalHosts, NotServed};

/// Most connections a worker keeps open (by `host:port`).
const MAX_CONNECTIONS: usize = 4;
/// Largest response header section (and trailer line).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest chunk-size line of a chunked response (size and extensions).
const MAX_CHUNK_SIZE_LINE: usize = 1024;
/// Most response headers.
const MAX_HEADERS: usize = 128;
/// Bodies up to this size are sent in the same write as the headers.
const COALESCE_BODY: usize = 64 * 1024;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// A response: status, headers, body.
pub(crate) type Response = (u16, HeaderMap, Bytes);

/// One worker's connections.
#[derive(Default)]
pub(crate) struct Connections {
    idle: Vec<(String, Conn)>,
    out: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The URI names no host.
    #[error("no host in {0}")]
    NoHost(Uri),
    /// Connecting took longer than [`CONNECT_TIMEOUT`].
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    /// The connection was refused or could not be made.
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the request head (with a small body) failed.
    #[error("sending the request: {0}")]
    Send(#[source] std::io::Error),
    /// Writing a large request body failed.
    #[error("sending the request body: {0}")]
    SendBody(#[source] std::io::Error),
    /// Reading the response failed.
    #[error("reading the response: {0}")]
    Read(#[source] std::io::Error),
    /// The connection was closed before any byte of a response.
    #[error("the connection was closed")]
    Closed,
    /// The connection was closed in the middle of the response head or a chunked body.
    #[error("the response ended early")]
    EndedEarly,
    /// The connection was closed before `Content-Length` bytes of body.
    #[error("the response body ended early")]
    BodyEndedEarly,
    /// The response head is not HTTP/1.x.
    #[error("invalid response: {0}")]
    Invalid(#[source] httparse::Error),
    /// The response's `Content-Length` is not a number.
    #[error("invalid Content-Length in the response")]
    ContentLength,
    /// The response head is longer than [`MAX_HEADER_BYTES`].
    #[error("response headers too large")]
    HeadTooLarge,
    /// The response body is longer than the caller's bound.
    #[error("response body too large")]
    BodyTooLarge,
    /// The chunked response body is malformed.
    #[error(transparent)]
    Chunked(#[from] knit_wire::Error),
    /// A cluster-local host nothing in this process serves.
    #[error(transparent)]
    NotServed(#[from] NotServed),
}

enum Failure {
    /// Nothing of a response arrived on a reused connection: worth one more try.
    Stale(Error),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

impl From<knit_wire::Error> for Failure {
    fn from(e: knit_wire::Error) -> Self {
        Failure::Fatal(e.into())
    }
}

impl Connections {
    /// POST `body` with `headers` to `uri`, answering with the response read whole (its body
    /// at most `max_body` bytes); a new connection goes where `hosts` says.
    pub(crate) async fn post(
        &mut self,
        uri: &Uri,
        headers: &Lines,
        body: &Bytes,
        max_body: usize,
        hosts: &RwLock<LocalHosts>,
    ) -> Result<Response, Error> {
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| Error::NoHost(uri.clone()))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        self.out.clear();
        request_head(&mut self.out, path, &authority, headers, body.len());
        let coalesce = body.len() <= COALESCE_BODY;
        if coalesce {
            self.out.extend_from_slice(body);
        }
        let mut reused = self.take(&authority);
        loop {
            let was_reused = reused.is_some();
            let mut conn = match reused.take() {
                Some(c) => c,
                None => connect(uri, &authority, hosts).await?,
            };
            match exchange(&mut conn, &self.out, (!coalesce).then_some(body), max_body).await {
                Ok((response, keep)) => {
                    if keep {
                        self.put(authority, conn);
                    }
                    return Ok(response);
                }
                Err(Failure::Stale(_)) if was_reused => continue,
                Err(Failure::Stale(e) | Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    fn take(&mut self, authority: &str) -> Option<Conn> {
        let i = self.idle.iter().position(|(a, _)| a == authority)?;
        Some(self.idle.swap_remove(i).1)
    }

    fn put(&mut self, authority: String, conn: Conn) {
        if self.idle.len() >= MAX_CONNECTIONS {
            self.idle.remove(0);
        }
        self.idle.push((authority, conn));
    }
}

fn request_head(out: &mut Vec<u8>, path: &str, authority: &str, headers: &Lines, len: usize) {
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    // The lines come from the event's attributes and propagated headers (`Lines` only holds
    // valid names and escaped values); none of them is host, length or framing.
    out.extend_from_slice(headers.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Connect for `uri`, where `hosts` says (the `Host` header keeps the URI's authority).
async fn connect(uri: &Uri, authority: &str, hosts: &RwLock<LocalHosts>) -> Result<Conn, Error> {
    let host = uri.host().ok_or_else(|| Error::NoHost(uri.clone()))?;
    let port = uri.port_u16().unwrap_or(80);
    let dial = hosts.read().dial(host, port)?;
    let connecting = async {
        match dial {
            Dial::Addr(addr) => TcpStream::connect(addr).await,
            Dial::Name(name, port) => TcpStream::connect((name, port)).await,
        }
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| Error::ConnectTimeout(authority.to_string()))?
        .map_err(|source| Error::Connect {
            authority: authority.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
    })
}

/// Send the request and read the response; the bool says whether the connection may be reused.
async fn exchange(
    conn: &mut Conn,
    head: &[u8],
    body: Option<&Bytes>,
    max_body: usize,
) -> Result<(Response, bool), Failure> {
    conn.buf.clear();
    if let Err(e) = conn.stream.write_all(head).await {
        return Err(Failure::Stale(Error::Send(e)));
    }
    if let Some(b) = body
        && let Err(e) = conn.stream.write_all(b).await
    {
        return Err(Error::SendBody(e).into());
    }
    loop {
        let head = read_head(conn).await?;
        conn.buf.advance(head.used);
        if (100..200).contains(&head.status) {
            continue;
        }
        let status = head.status;
        let (body, keep) = match head.framing {
            _ if status == 204 || status == 304 => (Bytes::new(), !head.close),
            Framing::Chunked => (read_chunked(conn, max_body).await?, !head.close),
            Framing::Length(n) if n > max_body => return Err(Error::BodyTooLarge.into()),
            Framing::Length(n) => (read_exact(conn, n).await?, !head.close),
            Framing::Close => (read_to_end(conn, max_body).await?, false),
        };
        return Ok(((status, head.headers, body), keep));
    }
}

/// A response's head: what framing needs, and its headers (left empty for a 202, whose
/// headers nobody reads: a 202 is never a reply nor a failure).
struct Head {
    status: u16,
    headers: HeaderMap,
    used: usize,
    close: bool,
    framing: Framing,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `chunked` is the final transfer coding.
    Chunked,
    /// `Content-Length` bytes.
    Length(usize),
    /// Up to the close of the connection: no length, or a transfer coding other than
    /// `chunked` last.
    Close,
}

/// Read more bytes into the buffer; `Ok(0)` at end of stream.
async fn fill(conn: &mut Conn) -> Result<usize, Error> {
    if conn.buf.capacity() - conn.buf.len() < 4096 {
        conn.buf.reserve(8 * 1024);
    }
    conn.stream
        .read_buf(&mut conn.buf)
        .await
        .map_err(Error::Read)
}

async fn read_head(conn: &mut Conn) -> Result<Head, Failure> {
    let mut got_any = !conn.buf.is_empty();
    loop {
        if !conn.buf.is_empty() {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(&conn.buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut headers = HeaderMap::new();
                    let mut connection = ConnectionOptions::default();
                    let mut coding = TransferEncoding::default();
                    let mut length = None;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("connection") {
                            connection.add(h.value);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            coding.add(h.value);
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|s| s.trim().parse::<usize>().ok())
                                .ok_or(Error::ContentLength)?;
                            length = Some(n);
                        }
                        if status != 202
                            && let (Ok(n), Ok(v)) = (
                                HeaderName::from_bytes(h.name.as_bytes()),
                                HeaderValue::from_bytes(h.value),
                            )
                        {
                            headers.append(n, v);
                        }
                    }
                    let framing = match (coding.present(), coding.chunked(), length) {
                        (true, true, _) => Framing::Chunked,
                        (true, false, _) | (false, _, None) => Framing::Close,
                        (false, _, Some(n)) => Framing::Length(n),
                    };
                    return Ok(Head {
                        status,
                        headers,
                        used,
                        close: !connection.persists(resp.version.unwrap_or(0)),
                        framing,
                    });
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(Error::Invalid(e).into()),
            }
            if conn.buf.len() > MAX_HEADER_BYTES {
                return Err(Error::HeadTooLarge.into());
            }
        }
        match fill(conn).await {
            Ok(0) if !got_any => return Err(Failure::Stale(Error::Closed)),
            Ok(0) => return Err(Error::EndedEarly.into()),
            Ok(_) => got_any = true,
            Err(e) if !got_any => return Err(Failure::Stale(e)),
            Err(e) => return Err(e.into()),
        }
    }
}

async fn read_exact(conn: &mut Conn, n: usize) -> Result<Bytes, Failure> {
    while conn.buf.len() < n {
        match fill(conn).await {
            Ok(0) => return Err(Error::BodyEndedEarly.into()),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(conn.buf.split_to(n).freeze())
}

async fn read_to_end(conn: &mut Conn, max: usize) -> Result<Bytes, Failure> {
    loop {
        if conn.buf.len() > max {
            return Err(Error::BodyTooLarge.into());
        }
        if fill(conn).await? == 0 {
            return Ok(conn.buf.split().freeze());
        }
    }
}

/// Read a chunked body (its data at most `max` bytes); what follows it stays in the buffer.
async fn read_chunked(conn: &mut Conn, max: usize) -> Result<Bytes, Failure> {
    let mut decoder = Chunked::bounded(MAX_CHUNK_SIZE_LINE, MAX_HEADER_BYTES);
    let mut body = BytesMut::new();
    loop {
        let mut too_large = false;
        let end = decoder.decode(&conn.buf, |data| {
            if body.len().saturating_add(data.len()) > max {
                too_large = true;
            } else if !too_large {
                body.extend_from_slice(data);
            }
        })?;
        if too_large {
            return Err(Error::BodyTooLarge.into());
        }
        match end {
            Some(n) => {
                conn.buf.advance(n);
                return Ok(body.freeze());
            }
            None => {
                conn.buf.clear();
                if fill(conn).await? == 0 {
                    return Err(Error::EndedEarly.into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::HeaderSink;
    use tokio::net::TcpListener;

    /// A server answering each request on a connection with the next canned bytes.
    async fn server(answers: Vec<&'static [u8]>, close_after_first: bool) -> Uri {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let Some(a) = answers.next() else { return };
                    let _ = s.write_all(a).await;
                    if close_after_first {
                        break;
                    }
                }
            }
        });
        format!("http://{addr}/p?q=1").parse().expect("uri")
    }

    fn resolver() -> RwLock<LocalHosts> {
        RwLock::new(LocalHosts::default())
    }

    async fn post(c: &mut Connections, uri: &Uri) -> Response {
        let mut h = Lines::new();
        h.put("ce-", "id", "1");
        c.post(uri, &h, &Bytes::from_static(b"{}"), 1024, &resolver())
            .await
            .expect("response")
    }

    #[tokio::test]
    async fn content_length_chunked_and_interim_responses() {
        let uri = server(
            vec![
                b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\nce-id: r\r\n\r\nhello",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n",
            ],
            false,
        )
        .await;
        let mut c = Connections::default();
        assert_eq!(post(&mut c, &uri).await.0, 202);
        let (s, h, b) = post(&mut c, &uri).await;
        assert_eq!((s, &b[..]), (200, &b"hello"[..]));
        assert_eq!(h["ce-id"], "r");
        let (s, _, b) = post(&mut c, &uri).await;
        assert_eq!((s, &b[..]), (200, &b"abcde"[..]));
        assert_eq!(
            c.idle.len(),
            1,
            "one keep-alive connection served all three"
        );
    }

    #[tokio::test]
    async fn a_body_is_chunked_only_when_chunked_is_the_final_coding() {
        // RFC 9112 §6.3: with a coding after `chunked`, the body runs to the close, whatever
        // `Content-Length` says.
        let uri = server(
            vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\ncontent-length: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
            true,
        )
        .await;
        let mut c = Connections::default();
        let (s, _, b) = post(&mut c, &uri).await;
        assert_eq!((s, &b[..]), (200, &b"3\r\nabc\r\n0\r\n\r\n"[..]));
        assert!(c.idle.is_empty(), "delimited by close: not kept");
        let uri = server(
            vec![b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
            false,
        )
        .await;
        let (s, _, b) = post(&mut c, &uri).await;
        assert_eq!((s, &b[..]), (200, &b"ok"[..]));
        assert_eq!(c.idle.len(), 1, "HTTP/1.0 with keep-alive: kept");
    }

    #[tokio::test]
    async fn a_served_cluster_local_host_is_dialled_at_its_listener_with_its_host() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let gateway = l.local_addr().expect("addr");
        let (seen, mut heads) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = seen.send(buf[..n].to_vec()).await;
                let _ = s
                    .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let mut contract = knit_crds::contract::Contract::default();
        contract
            .serving
            .routes
            .push(knit_crds::contract::serving::Route {
                uid: "r".into(),
                namespace: "default".into(),
                name: "hello".into(),
                hosts: vec!["hello.default.svc.cluster.local".into()],
                traffic: Vec::new(),
                tags: Vec::new(),
            });
        let hosts = RwLock::new(LocalHosts::standalone(
            &contract,
            crate::hosts::Listeners {
                ingress: None,
                gateway: Some(gateway),
            },
        ));
        let mut c = Connections::default();
        let uri: Uri = "http://hello.default.svc.cluster.local/e"
            .parse()
            .expect("uri");
        let (status, _, _) = c
            .post(&uri, &Lines::new(), &Bytes::new(), 1024, &hosts)
            .await
            .expect("answered by the listener");
        assert_eq!(status, 202);
        let head = String::from_utf8(heads.recv().await.expect("request")).expect("utf8");
        assert!(
            head.starts_with("POST /e HTTP/1.1\r\nhost: hello.default.svc.cluster.local\r\n"),
            "{head}"
        );
        let uri: Uri = "http://nope.default.svc.cluster.local/"
            .parse()
            .expect("uri");
        let err = c
            .post(&uri, &Lines::new(), &Bytes::new(), 1024, &hosts)
            .await
            .expect_err("not served");
        assert!(matches!(err, Error::NotServed(_)), "{err}");
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        let uri = server(
            vec![
                b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
                b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n",
            ],
            true,
        )
        .await;
        let mut c = Connections::default();
        assert_eq!(post(&mut c, &uri).await.0, 202);
        // The server closed that connection; the next request goes out on a new one.
        assert_eq!(post(&mut c, &uri).await.0, 503);
    }

    #[tokio::test]
    async fn close_delimited_bodies_and_limits() {
        let uri = server(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil close"], true).await;
        let mut c = Connections::default();
        let (s, _, b) = post(&mut c, &uri).await;
        assert_eq!((s, &b[..]), (200, &b"until close"[..]));
        assert!(c.idle.is_empty(), "HTTP/1.0: not kept");
        let uri = server(
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n"],
            false,
        )
        .await;
        let err = c
            .post(&uri, &Lines::new(), &Bytes::new(), 1024, &resolver())
            .await
            .expect_err("too large");
        assert!(matches!(err, Error::BodyTooLarge), "{err}");
        let uri = server(vec![b"garbage\r\n\r\n"], false).await;
        let err = c
            .post(&uri, &Lines::new(), &Bytes::new(), 1024, &resolver())
            .await
            .expect_err("invalid");
        assert!(err.to_string().contains("invalid response"), "{err}");
    }

    #[test]
    fn request_head_carries_host_length_and_headers() {
        let mut out = Vec::new();
        let mut h = Lines::new();
        h.put("ce-", "type", "t\u{1}x");
        h.put("", "bad name", "dropped");
        request_head(&mut out, "/a?b", "example:8080", &h, 2);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "POST /a?b HTTP/1.1\r\nhost: example:8080\r\ncontent-length: 2\r\nce-type: t%01x\r\n\r\n"
        );
    }
}
