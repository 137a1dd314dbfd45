//! The gateway's fast path: plain HTTP/1.1 exchanges forwarded without building requests and
//! responses. A request head is parsed in place (httparse), routed, admitted like any other
//! (activator, proxy slot, meter), rewritten (forwarding headers added, hop-by-hop headers
//! dropped) and sent with its body on one of the replica's pooled keep-alive connections
//! ([`super::pool`]); the response head is parsed for its framing, its status line normalised to
//! HTTP/1.1 without hop-by-hop headers, and its body copied as it comes (Content-Length, chunked
//! or up to the replica's close). On a 2-core machine this halves the gateway's CPU per request
//! against hyper server + pooled hyper client (`knit-bench --only-serving`).
//!
//! Anything else (HTTP/1.0, upgrades, `Expect`, a chunked or large request body, a head hyper
//! should judge) hands the connection, with the bytes read so far, to the hyper path for the
//! rest of its life. Deadlines are the same as there: `timeoutSeconds` over the whole
//! exchange, `responseStartTimeoutSeconds` until the response head, `idleTimeoutSeconds`
//! between body reads; an answer the gateway makes itself closes the connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use knit_wire::Chunked;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Inner;
use super::activator;
use super::gateway::{Deadlines, HEADER_READ_TIMEOUT};
use super::proxy::{Admitted, Client};

mod request;
mod response;

use request::{Parse, Plain, parse_request};
use response::{Framing, Head, ReadError, parse_response, rewrite_response};

/// Most headers in a head (hyper's default too).
pub(super) const MAX_HEADERS: usize = 100;
/// Longest request or response head.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body the fast path forwards (it is written whole before the response is
/// read, so it must fit the socket buffers); larger ones go to the hyper path.
pub(super) const MAX_BODY: u64 = 64 * 1024;

/// What the fast path left of a client connection.
pub(crate) enum Left<S> {
    /// Done: closed or answered for the last time.
    Done,
    /// Continue with the hyper path: the stream and the bytes already read from it.
    Hyper(S, BytesMut),
}

/// One client connection (TCP or TLS) on the fast path and its buffers.
struct Conn<'a, S> {
    inner: &'a Arc<Inner>,
    client: &'a Client,
    stream: S,
    /// Bytes read from the client and not yet forwarded.
    buf: BytesMut,
    /// What is written next: the request for the replica, then the response head.
    out: Vec<u8>,
    /// Bytes read from the replica.
    resp: BytesMut,
    /// The current request's host, normalised.
    host: String,
}

/// Serve `stream` on the fast path until it closes or needs the hyper path.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    stream: S,
    client: &Client,
) -> Left<S> {
    let mut c = Conn {
        inner,
        client,
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        out: Vec::with_capacity(1024),
        resp: BytesMut::with_capacity(8 * 1024),
        host: String::new(),
    };
    loop {
        let plain = match c.next_request().await {
            Some(Parse::Plain(p)) => p,
            Some(Parse::Hyper | Parse::Partial) => return Left::Hyper(c.stream, c.buf),
            None => return Left::Done,
        };
        match c.exchange(&plain).await {
            Ok(true) if !plain.close => c.buf.advance(plain.head + plain.body),
            Ok(_) | Err(()) => {
                let _ = c.stream.shutdown().await;
                return Left::Done;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<'_, S> {
    /// The next request head, read within [`HEADER_READ_TIMEOUT`] (idle time included, as on
    /// the hyper path); `None`: the client closed or took too long.
    async fn next_request(&mut self) -> Option<Parse> {
        let deadline = Instant::now() + HEADER_READ_TIMEOUT;
        loop {
            if !self.buf.is_empty() {
                self.out.clear();
                match parse_request(&self.buf, self.client, &mut self.out, &mut self.host) {
                    Parse::Partial if self.buf.len() < MAX_HEAD => {}
                    parsed => return Some(parsed),
                }
            }
            self.buf.reserve(4096);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Write an answer the gateway makes itself (the connection closes after it).
    async fn answer(&mut self, status: StatusCode, msg: &str) {
        let body = format!("{msg}\n");
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            self.stream.write_all(head.as_bytes()).await?;
            self.stream.write_all(body.as_bytes()).await
        })
        .await;
    }

    /// One exchange: route, admit, forward, copy the response. `Ok(true)`: the client
    /// connection may carry the next request; `Err(())`: it must close (after an answer, when
    /// one could still be written).
    async fn exchange(&mut self, plain: &Plain) -> Result<bool, ()> {
        let rev = match super::gateway::target(self.inner, &self.host, plain.tag.as_deref()) {
            Ok(rev) => rev,
            Err((status, why)) => {
                self.answer(status, &why).await;
                return Err(());
            }
        };
        let d = Deadlines::of(&rev.spec, Instant::now());
        let name = rev.spec.name.as_str();
        let admitted = match tokio::time::timeout_at(d.start, activator::admit(&rev)).await {
            Ok(Ok(a)) => a,
            Ok(Err(refusal)) => {
                self.answer(StatusCode::SERVICE_UNAVAILABLE, &refusal.to_string())
                    .await;
                return Err(());
            }
            Err(_) => {
                tracing::info!(revision = %name, "request timed out before the response started");
                self.answer(StatusCode::GATEWAY_TIMEOUT, "request timeout")
                    .await;
                return Err(());
            }
        };
        // The body: what is buffered, and the rest from the client.
        let end = plain.head + plain.body;
        while self.buf.len() < end {
            self.buf.reserve(end - self.buf.len());
            match tokio::time::timeout_at(d.start, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(()),
            }
        }
        self.out.extend_from_slice(&self.buf[plain.head..end]);
        let (mut up, head) = match self.forward(&admitted, plain.is_head, d.start).await {
            Ok(x) => x,
            Err(Fail::Timeout) => {
                tracing::info!(revision = %name, "request timed out before the response started");
                self.answer(StatusCode::GATEWAY_TIMEOUT, "request timeout")
                    .await;
                return Err(());
            }
            Err(Fail::Replica(e)) => {
                tracing::warn!(revision = %name, error = %e, "replica did not answer");
                self.answer(
                    StatusCode::BAD_GATEWAY,
                    &format!("replica did not answer: {e}"),
                )
                .await;
                return Err(());
            }
        };
        let close = plain.close || head.framing == Framing::Close;
        self.out.clear();
        rewrite_response(&self.resp[..head.len], head.status, close, &mut self.out);
        self.resp.advance(head.len);
        let done = copy_body(
            &mut up,
            &mut self.stream,
            &mut self.resp,
            &mut self.out,
            head.framing,
            &d,
        )
        .await;
        done?;
        if head.keep_alive && self.resp.is_empty() {
            admitted.pool().put(up);
        }
        // The replica's slot and the meter's count end with the response.
        drop(admitted);
        Ok(!close)
    }

    /// Send `out` (head and body) to the admitted replica and read the response head into
    /// `resp` (1xx heads are skipped), on one of its idle connections when there is one — once
    /// more on a new connection when a reused one turns out closed before any byte of the
    /// answer.
    async fn forward(
        &mut self,
        admitted: &Admitted,
        is_head: bool,
        start: Instant,
    ) -> Result<(TcpStream, Head), Fail> {
        let port = admitted.port();
        let reused = admitted.pool().take();
        let (out, resp) = (&self.out, &mut self.resp);
        let call = async {
            if let Some(mut up) = reused {
                resp.clear();
                match send_and_read(&mut up, out, resp, is_head).await {
                    Ok(head) => return Ok((up, head)),
                    Err(e) if resp.is_empty() => {
                        tracing::debug!(error = %e, port, "reused replica connection closed; reconnecting");
                    }
                    Err(e) => return Err(Fail::Replica(e.to_string())),
                }
            }
            // Bounded by the response-start deadline only: a replica whose accept queue is
            // full drops the SYN, and the kernel sends it again after 1 s, 3 s, ... (a Python
            // app listens with a backlog of 5; a burst of new connections overflows it).
            let mut up = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| Fail::Replica(format!("connecting: {e}")))?;
            let _ = up.set_nodelay(true);
            resp.clear();
            let head = send_and_read(&mut up, out, resp, is_head)
                .await
                .map_err(|e| Fail::Replica(e.to_string()))?;
            Ok((up, head))
        };
        tokio::time::timeout_at(start, call)
            .await
            .map_err(|_| Fail::Timeout)?
    }
}

/// Why the request got no response head.
enum Fail {
    Timeout,
    Replica(String),
}

async fn send_and_read(
    up: &mut TcpStream,
    out: &[u8],
    resp: &mut BytesMut,
    is_head: bool,
) -> Result<Head, ReadError> {
    up.write_all(out).await?;
    loop {
        resp.reserve(4096);
        if up.read_buf(resp).await? == 0 {
            return Err(ReadError::Closed);
        }
        loop {
            match parse_response(resp, is_head)? {
                None => break,
                Some(head) if (100..200).contains(&head.status) => {
                    if head.status == 101 {
                        return Err(ReadError::Switched);
                    }
                    // 1xx (Early Hints and the like) are not forwarded.
                    resp.advance(head.len);
                }
                Some(head) => return Ok(head),
            }
        }
        if resp.len() >= MAX_HEAD {
            return Err(ReadError::BadHead);
        }
    }
}

/// Copy the response body from `up` to the client after the head in `out`; bytes of it already
/// read are in `resp` (what is left there afterwards does not belong to the body).
async fn copy_body(
    up: &mut TcpStream,
    down: &mut (impl AsyncWrite + Unpin),
    resp: &mut BytesMut,
    out: &mut Vec<u8>,
    framing: Framing,
    d: &Deadlines,
) -> Result<(), ()> {
    let mut remaining = match framing {
        Framing::Empty => 0,
        Framing::Length(n) => n,
        Framing::Chunked | Framing::Close => u64::MAX,
    };
    let mut chunked = (framing == Framing::Chunked).then(Chunked::default);
    let mut first = true;
    loop {
        // Take what belongs to the body from `resp`.
        let take = match &mut chunked {
            Some(c) => match c.feed(resp) {
                Ok(Some(n)) => {
                    remaining = 0;
                    n
                }
                Ok(None) => resp.len(),
                Err(_) => return Err(()),
            },
            None => usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(resp.len()),
        };
        if chunked.is_none() && remaining != u64::MAX {
            remaining -= take as u64;
        }
        if first {
            out.extend_from_slice(&resp[..take]);
            write(down, out, d.total).await?;
            first = false;
        } else if take > 0 {
            write(down, &resp[..take], d.total).await?;
        }
        resp.advance(take);
        if remaining == 0 {
            return Ok(());
        }
        resp.clear();
        resp.reserve(16 * 1024);
        let wake = d.idle.map_or(d.total, |i| d.total.min(Instant::now() + i));
        match tokio::time::timeout_at(wake, up.read_buf(resp)).await {
            Ok(Ok(0)) if framing == Framing::Close => return Ok(()),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(()),
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::info!("response cut: request or idle timeout while streaming");
                return Err(());
            }
        }
    }
}

async fn write(
    down: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    deadline: Instant,
) -> Result<(), ()> {
    match tokio::time::timeout_at(deadline, down.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
