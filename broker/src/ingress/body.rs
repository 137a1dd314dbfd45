//! Reading a request body within the size and time limits, and discarding what a refused
//! request still sends so that the client can read the refusal.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the limit; the rest is still unread.
    TooLarge,
    /// Not complete within the body timeout.
    TimedOut,
    /// The connection broke or the framing was invalid.
    Broken(String),
}

/// Read `body` whole, up to `limit` bytes and within `timeout`. `expected` (the
/// `Content-Length`) sizes the buffer. The bytes are the request's own copy: they never pin
/// the connection's read buffer, since events outlive the request in the log.
pub(crate) async fn read<B>(
    body: &mut B,
    limit: usize,
    expected: Option<usize>,
    timeout: Duration,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut buf = BytesMut::with_capacity(expected.unwrap_or(0).min(limit));
    let reading = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len().saturating_add(data.len()) > limit {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(())) => Ok(buf.freeze()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyError::TimedOut),
    }
}

/// Read and discard the rest of `body` in the background, up to `bytes` and for at most
/// `time`, so a client that writes its whole request before reading sees the answer instead of
/// a reset connection. The connection stays usable if the body ends within the budget; hyper
/// closes it otherwise.
pub(crate) fn drain<B>(mut body: B, bytes: usize, time: Duration)
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
{
    if body.is_end_stream() || bytes == 0 {
        return;
    }
    tokio::spawn(async move {
        let discard = async {
            let mut left = bytes;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    left = left.saturating_sub(data.len());
                    if left == 0 {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(time, discard).await;
    });
}
