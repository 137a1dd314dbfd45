//! Where servers get their connections: [`Accept`], over plain TCP or TLS. A [`TlsListener`]
//! accepts TCP connections and runs each handshake in a task of its own (bounded in number and
//! in time), so a slow or silent client never holds up the accept loop; finished handshakes
//! queue for the server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes under way at once; the next connection waits in the accept queue.
const MAX_HANDSHAKES: usize = 1024;
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// A source of client connections: each with TCP_NODELAY set, and its peer address.
pub trait Accept: Send + 'static {
    /// The connection's byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// `http` or `https`: what the client spoke, for forwarding headers.
    const SCHEME: &'static str;
    /// The next connection, or the error accepting gave (the caller waits a moment and asks
    /// again).
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    const SCHEME: &'static str = "http";

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        accept_tcp(self).await
    }
}

async fn accept_tcp(tcp: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = tcp.accept().await?;
    let _ = stream.set_nodelay(true);
    Ok((stream, peer))
}

/// Connections of a TCP listener after their TLS handshake. The accept loop runs in a task
/// that ends when this is dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serve TLS with `config` on `tcp`; must be called inside a Tokio runtime.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(Self { ready, local, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            r = accept_tcp(&tcp) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, addr = ?tcp.local_addr().ok(), "TLS listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                    drop(slot);
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl Accept for TlsListener {
    type Stream = TlsStream<TcpStream>;
    const SCHEME: &'static str = "https";

    async fn accept(&mut self) -> io::Result<(TlsStream<TcpStream>, SocketAddr)> {
        self.ready
            .recv()
            .await
            .ok_or_else(|| io::Error::other("the TLS listener stopped"))
    }
}
