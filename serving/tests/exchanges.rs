//! What passes through the gateway, byte for byte: the fast path's plain exchanges (keep-alive,
//! pipelining, chunked and unframed responses, the shared connection pool) and the requests it
//! hands to the hyper path (chunked and large uploads, HTTP/1.0), with `tests/app.py` as the
//! replica.

mod common;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use common::{Harness, get, revision, route, spec};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use knit_serving::runtime::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const START: Duration = Duration::from_secs(20);
const HOST: &str = "x.default.localhost";

/// Raw bytes in, everything the gateway answers until it closes.
async fn raw(h: &Harness, request: &[u8]) -> anyhow::Result<String> {
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut s = tokio::net::TcpStream::connect(h.gateway).await?;
        s.write_all(request).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf).to_string())
    })
    .await
    .context("no answer in time")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_pass_through_both_paths() -> anyhow::Result<()> {
    let h = Harness::one_revision("x", "x-00001", START).await?;

    // Pipelined requests on one connection are answered in order.
    let text = raw(
        &h,
        format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\nGET /stats HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    ensure!(text.matches("HTTP/1.1 200").count() == 2, "{text}");
    ensure!(text.find("x-00001") < text.rfind("HTTP/1.1 200"), "{text}");

    // Keep-alive over a real client: chunked and plain responses alternate on one connection.
    let stream = tokio::net::TcpStream::connect(h.gateway).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    for (method, path, body, want) in [
        ("GET", "/chunked", "", "one two three"),
        ("GET", "/", "", "x-00001"),
        ("POST", "/echo", "a small body", "a small body"),
        ("GET", "/chunked", "", "one two three"),
    ] {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST)
            .body(Full::new(Bytes::from(body)))?;
        sender
            .ready()
            .await
            .with_context(|| format!("before {path}"))?;
        let resp = sender.send_request(req).await?;
        ensure!(resp.status() == 200, "{path}: {}", resp.status());
        let got = resp.into_body().collect().await?.to_bytes();
        ensure!(got == want.as_bytes(), "{path}: {got:?}");
    }

    // A body without length ends with the replica's close, and so does the client connection.
    let text = raw(
        &h,
        format!("GET /unframed HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
    )
    .await?;
    ensure!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("\r\n\r\nuntil close"),
        "{text}"
    );
    ensure!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );

    // Clients that close after each request still share the replica's keep-alive connections.
    let (_, first) = get(h.gateway, HOST, "/peer", &[]).await?;
    let (_, second) = get(h.gateway, HOST, "/peer", &[]).await?;
    ensure!(
        first == second,
        "a new replica connection per request: {first} then {second}"
    );

    // The hyper path: a chunked upload, a large one, HTTP/1.0.
    let text = raw(
        &h,
        format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    ensure!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello world"),
        "{text}"
    );
    let big = "z".repeat(200 * 1024);
    let text = raw(
        &h,
        format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len())
            .as_bytes(),
    )
    .await?;
    ensure!(
        text.starts_with("HTTP/1.1 200") && text.ends_with(&big),
        "{}",
        &text[..200.min(text.len())]
    );
    let text = raw(
        &h,
        format!("GET / HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes(),
    )
    .await?;
    ensure!(
        text.contains(" 200 ") && text.ends_with("x-00001"),
        "{text}"
    );

    // Hostile heads get an answer, not a hang: garbage, and a head past the limit.
    let text = raw(&h, b"\x16\x03\x01garbage\r\n\r\n").await?;
    ensure!(text.starts_with("HTTP/1.1 400"), "{text}");
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {}\r\n\r\n",
        "b".repeat(600 * 1024)
    );
    let text = raw(&h, huge.as_bytes()).await.unwrap_or_default();
    ensure!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(200)]
    );
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// A replica that stops accepting for a while (its backlog of 5 full, the kernel dropping SYNs
/// and sending them again after 1 s and 3 s) slows a burst of new connections down; none of
/// the requests fails for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_waits_for_a_replica_slow_to_accept() -> anyhow::Result<()> {
    let h = Harness::one_revision("x", "x-00001", START).await?;
    let (status, _) = get(h.gateway, HOST, "/pause-accepts?ms=2500", &[]).await?;
    ensure!(status == 200, "pause: {status}");
    let burst: Vec<_> = (0..20)
        .map(|_| tokio::spawn(get(h.gateway, HOST, "/slow?ms=100", &[])))
        .collect();
    for (i, answer) in burst.into_iter().enumerate() {
        let (status, body) = answer.await??;
        ensure!(status == 200, "request {i}: {status} {body}");
    }
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// A kept-alive client connection follows the routes as they change: its next request goes to
/// the revision the route names now, and to nowhere once the route is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_follows_route_changes() -> anyhow::Result<()> {
    let h = Harness::start(Config::default()).await?;
    let one = revision("x", "x-00001", &[]);
    let two = revision("x", "x-00002", &[]);
    h.serving.apply(&spec(
        vec![one.clone()],
        vec![route("x", &[("x-00001", 100)])],
    ));
    h.wait_report("uid-x-00001", START, |r| r.ready).await?;
    let stream = tokio::net::TcpStream::connect(h.gateway).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut ask = async move || -> anyhow::Result<(u16, Bytes)> {
        sender.ready().await?;
        let req = http::Request::builder()
            .uri("/")
            .header("host", HOST)
            .body(Full::new(Bytes::new()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    };
    ensure!(ask().await? == (200, Bytes::from("x-00001")));

    h.serving.apply(&spec(
        vec![one.clone(), two.clone()],
        vec![route("x", &[("x-00002", 100)])],
    ));
    h.wait_report("uid-x-00002", START, |r| r.ready).await?;
    ensure!(ask().await? == (200, Bytes::from("x-00002")));

    h.serving.apply(&spec(vec![one, two], Vec::new()));
    let (status, _) = ask().await?;
    ensure!(status == 404, "after the route went: {status}");
    h.serving.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
