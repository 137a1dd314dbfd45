//! Probes of a replica on its `PORT`: a TCP connect, or an HTTP GET whose status must be 2xx
//! or 3xx. Probes go straight to the replica, never through its proxy, so they are not counted
//! as traffic.

use std::time::Duration;

use knit_crds::contract::serving::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// How often an aggressive probe (`periodSeconds: 0`) runs until the replica is ready. Its lag
/// adds to every cold start (issue 10's target: first response ≤ the app's start + 20 ms), so
/// it is short; a refused loopback connect costs microseconds.
pub(crate) const AGGRESSIVE_PERIOD: Duration = Duration::from_millis(5);
/// Timeout of one aggressive probe.
const AGGRESSIVE_TIMEOUT: Duration = Duration::from_millis(250);

/// The period between probes once the first passed.
pub(crate) fn period(probe: Option<&Probe>) -> Duration {
    match probe.map(|p| p.period_seconds) {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => Duration::from_secs(1),
    }
}

/// The period between probes before the first passed.
pub(crate) fn initial_period(probe: Option<&Probe>) -> Duration {
    match probe.map(|p| p.period_seconds) {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => AGGRESSIVE_PERIOD,
    }
}

/// Consecutive failures that count (`failureThreshold`, default 3).
pub(crate) fn failure_threshold(probe: Option<&Probe>) -> u32 {
    match probe.map(|p| p.failure_threshold) {
        Some(n) if n > 0 => n,
        _ => 3,
    }
}

/// Run one probe; `Err` says why it failed.
pub(crate) async fn once(port: u16, probe: Option<&Probe>) -> crate::Result<()> {
    let limit = match probe.map(|p| p.timeout_seconds) {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ if probe.is_some_and(|p| p.period_seconds > 0) => Duration::from_secs(1),
        _ => AGGRESSIVE_TIMEOUT,
    };
    match tokio::time::timeout(limit, attempt(port, probe)).await {
        Ok(r) => r,
        Err(_) => Err(Error::ProbeTimeout { limit }),
    }
}

async fn attempt(port: u16, probe: Option<&Probe>) -> crate::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|source| Error::ProbeConnect { port, source })?;
    let Some(path) = probe.and_then(|p| p.http_path.as_deref()) else {
        return Ok(());
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/knit\r\nConnection: close\r\n"
    );
    for (k, v) in probe.map(|p| p.http_headers.as_slice()).unwrap_or(&[]) {
        if !k.contains(['\r', '\n']) && !v.contains(['\r', '\n']) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|source| Error::ProbeWrite { source })?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = stream
            .read(&mut buf[got..])
            .await
            .map_err(|source| Error::ProbeRead { source })?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::ProbeNoStatus {
            path: path.clone(),
            head: head.to_string(),
        })?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(Error::ProbeStatus { path, status })
    }
}
