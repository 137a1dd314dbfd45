//! The request side of the fast path: which heads it takes, and the head the replica gets.

use super::super::gateway::normalize_host;
use super::super::proxy::Client;
use super::{MAX_BODY, MAX_HEADERS};

/// A request the fast path takes.
pub(super) struct Plain {
    /// Request head length in the buffer.
    pub(super) head: usize,
    /// Body length (Content-Length).
    pub(super) body: usize,
    pub(super) is_head: bool,
    /// The client asked to close after this exchange.
    pub(super) close: bool,
    pub(super) tag: Option<String>,
}

/// What parsing the buffered bytes gave.
pub(super) enum Parse {
    /// A head the fast path takes.
    Plain(Plain),
    /// A head for the hyper path (or bytes it should judge).
    Hyper,
    /// Not a whole head yet.
    Partial,
}

/// Parse the request head at the start of `buf`; when the fast path takes it, write the head
/// the replica gets into `out`.
pub(super) fn parse_request(
    buf: &[u8],
    client: &Client,
    out: &mut Vec<u8>,
    host: &mut String,
) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head)) => match take(&req, head, client, out, host) {
            Some(plain) => Parse::Plain(plain),
            None => Parse::Hyper,
        },
        Ok(httparse::Status::Partial) => Parse::Partial,
        Err(_) => Parse::Hyper,
    }
}

/// The request `req` (a head of `head` bytes) when the fast path takes it, its head for the
/// replica written into `out`.
fn take(
    req: &httparse::Request<'_, '_>,
    head: usize,
    client: &Client,
    out: &mut Vec<u8>,
    host_out: &mut String,
) -> Option<Plain> {
    let (method, path) = (req.method?, req.path?);
    if req.version != Some(1) || method == "CONNECT" {
        return None;
    }
    let path = origin_form(path);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut host, mut tag, mut length, mut close, mut proto) = (None, None, None, false, false);
    let (mut xff, mut forwarded): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
    // Hop-by-hop (RFC 9110 §7.6.1): `Connection`, the headers it names, `Keep-Alive` and
    // `Proxy-Connection` stay here; the replica connection is the gateway's to keep open.
    let listed: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| knit_wire::headers::list(h.value))
        // `close` and `keep-alive` name no header to drop (`Keep-Alive` is dropped anyway);
        // without them the common request allocates nothing here.
        .filter(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
        .collect();
    for h in req.headers.iter() {
        let name = h.name;
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("transfer-encoding") || is("upgrade") || is("expect") {
            return None;
        }
        let hop = is("keep-alive")
            || is("proxy-connection")
            || listed
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes()));
        if is("host") {
            if host.is_some() {
                return None;
            }
            host = Some(std::str::from_utf8(h.value).ok()?);
        } else if is("content-length") {
            let v = std::str::from_utf8(h.value).ok()?.trim();
            if length.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            length = Some(v.parse::<u64>().ok()?);
        } else if is("connection") {
            close |= knit_wire::headers::lists(h.value, b"close");
            continue;
        } else if hop {
            continue;
        } else if is("x-forwarded-for") {
            xff.push(h.value);
            continue;
        } else if is("forwarded") {
            forwarded.push(h.value);
            continue;
        } else if is("knative-serving-tag") {
            tag = std::str::from_utf8(h.value).ok().map(str::to_string);
            continue;
        } else if is("x-forwarded-proto") {
            proto = true;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let host = host?;
    let body = length.unwrap_or(0);
    if body > MAX_BODY {
        return None;
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for prev in &xff {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.ip.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !proto {
        out.extend_from_slice(b"x-forwarded-proto: ");
        out.extend_from_slice(client.proto.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"forwarded: ");
    for prev in &forwarded {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.forwarded.as_bytes());
    if !host.contains(['"', ';', ',']) {
        out.extend_from_slice(b";host=\"");
        out.extend_from_slice(host.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n\r\n");
    host_out.clear();
    host_out.push_str(&normalize_host(host));
    Some(Plain {
        head,
        body: usize::try_from(body).ok()?,
        is_head: method == "HEAD",
        close,
        tag,
    })
}

/// The origin-form of a request target (an absolute-form one loses its scheme and authority).
fn origin_form(path: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if path.len() > scheme.len() && path[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &path[scheme.len()..];
            return rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new(
            "127.0.0.1"
                .parse()
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            "http",
        )
    }

    #[test]
    fn a_plain_request_is_rewritten_with_forwarding_headers() {
        let req = b"POST http://h.ns.localhost/p?q=1 HTTP/1.1\r\nHost: H.ns.localhost:8081\r\nX-Forwarded-For: 10.0.0.1\r\nKnative-Serving-Tag: t\r\nContent-Length: 2\r\n\r\nhiNEXT";
        let mut out = Vec::new();
        let mut host = String::new();
        let Parse::Plain(p) = parse_request(req, &client(), &mut out, &mut host) else {
            panic!("not taken");
        };
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("POST /p?q=1 HTTP/1.1\r\n"), "{text}");
        assert!(
            text.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1\r\n"),
            "{text}"
        );
        assert!(text.contains("x-forwarded-proto: http\r\n"), "{text}");
        assert!(
            text.contains("forwarded: for=127.0.0.1;proto=http;host=\"H.ns.localhost:8081\"\r\n"),
            "{text}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("knative-serving-tag"),
            "{text}"
        );
        assert_eq!(
            (p.body, host.as_str(), p.tag.as_deref()),
            (2, "h.ns.localhost", Some("t"))
        );
        assert_eq!(&req[p.head..p.head + p.body], b"hi");
    }

    #[test]
    fn anything_unusual_goes_to_hyper() {
        for req in [
            &b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"\x00\x01garbage\r\n\r\n",
        ] {
            assert!(
                !matches!(
                    parse_request(req, &client(), &mut Vec::new(), &mut String::new()),
                    Parse::Plain(_)
                ),
                "{}",
                String::from_utf8_lossy(req)
            );
        }
    }
}
