//! Idle keep-alive connections to one replica, for the gateway's fast path: shared by every
//! client connection (a client that opens a connection per request does not make the replica
//! accept one per request either), most recently used first, at most [`MAX_IDLE`], each closed
//! after [`IDLE_TIMEOUT`] unused (the scaler's tick sweeps), and dropped with the replica.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use parking_lot::Mutex;
use tokio::net::TcpStream;

/// Idle connections kept per replica.
const MAX_IDLE: usize = 256;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A replica's idle connections.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    /// The replica is stopping: nothing is kept any more.
    closed: AtomicBool,
}

impl Pool {
    /// The most recently used idle connection that is still open.
    pub(crate) fn take(&self) -> Option<TcpStream> {
        loop {
            let (stream, _) = self.idle.lock().pop()?;
            if still_open(&stream) {
                return Some(stream);
            }
        }
    }

    /// Keep `stream` (idle, its last response read whole) for the next request.
    pub(crate) fn put(&self, stream: TcpStream) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE && !self.closed.load(Ordering::Acquire) {
            idle.push((stream, Instant::now()));
        }
    }

    /// Close every idle connection and keep none from now on (the replica is stopping).
    pub(crate) fn clear(&self) {
        let mut idle = self.idle.lock();
        self.closed.store(true, Ordering::Release);
        idle.clear();
    }

    /// Close the connections idle for longer than [`IDLE_TIMEOUT`].
    pub(crate) fn sweep(&self, now: Instant) {
        let mut idle = self.idle.lock();
        idle.retain(|(_, since)| now.saturating_duration_since(*since) < IDLE_TIMEOUT);
    }
}

/// Whether an idle connection is still open: no syscall unless the socket became readable
/// (then the replica closed it, or sent bytes nobody asked for; either way it is not reused).
fn still_open(stream: &TcpStream) -> bool {
    match stream.ready(tokio::io::Interest::READABLE).now_or_never() {
        Some(Ok(r)) if r.is_readable() || r.is_read_closed() => {
            let mut b = [0u8; 1];
            matches!(stream.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
        Some(Err(_)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn closed_and_stale_connections_are_not_reused() -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let pool = Pool::default();
        let a = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server_a, _) = listener.accept().await?;
        let b = TcpStream::connect(listener.local_addr()?).await?;
        let (_server_b, _) = listener.accept().await?;
        pool.put(b);
        pool.put(a);
        // `a`'s peer closes: the pool skips it and hands out `b`.
        server_a.shutdown().await?;
        drop(server_a);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = None;
        while got.is_none() && Instant::now() < deadline {
            tokio::task::yield_now().await;
            if let Some(s) = pool.take() {
                got = Some(s);
            }
        }
        let Some(s) = got else {
            panic!("no connection handed out");
        };
        assert!(pool.take().is_none());
        pool.put(s);
        pool.sweep(Instant::now() + IDLE_TIMEOUT);
        assert!(pool.take().is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_cleared_pool_keeps_nothing_handed_back_later() -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let pool = Pool::default();
        let a = TcpStream::connect(listener.local_addr()?).await?;
        let (_server_a, _) = listener.accept().await?;
        // A request that outlived the drain's wait hands `a` back after the pool was cleared.
        pool.clear();
        pool.put(a);
        assert!(pool.take().is_none());
        Ok(())
    }
}
