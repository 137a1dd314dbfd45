//! The chunked transfer coding (RFC 9112 §7.1), read as the bytes arrive: a state machine fed
//! whatever the socket gave, which says where the body ends and hands each run of chunk data
//! to the caller as it passes. It never buffers nor allocates: the gateway's fast path only
//! needs the end (it forwards the coded bytes verbatim), the dispatcher's client copies the
//! data into the response body.
//!
//! The grammar is read strictly: a chunk size is 1 to 16 hex digits, extensions may follow
//! after `;` or whitespace, chunk data ends with CRLF, trailer lines and the final CRLF have no
//! bare CR or LF. Line lengths are unbounded unless the decoder was made with
//! [`Chunked::bounded`].

use crate::{Error, Result};

/// Where a chunked body's parse is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk size's hex digits (`digits` seen so far).
    Size { digits: u8 },
    /// After the size: extensions or whitespace, up to CR.
    Ext,
    /// After the size line's CR.
    SizeLf,
    /// In a chunk's data.
    Data,
    /// After a chunk's data: its CR.
    DataCr,
    /// After a chunk's data: its LF.
    DataLf,
    /// After the last chunk: the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// A trailer line's CR seen.
    TrailerLf,
    /// The final CR seen.
    EndLf,
    /// The body has ended.
    Done,
}

/// A chunked body's decoder (see the module doc).
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// Data bytes left in the current chunk (its size, while the size line is read).
    size: u64,
    /// Bytes of the current size or trailer line so far.
    line: usize,
    /// Longest chunk-size line (size and extensions).
    max_size_line: usize,
    /// Longest trailer line.
    max_trailer_line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::bounded(usize::MAX, usize::MAX)
    }
}

impl Chunked {
    /// A decoder that refuses a chunk-size line longer than `max_size_line` bytes
    /// ([`Error::ChunkSizeLine`]) and a trailer line longer than `max_trailer_line` bytes
    /// ([`Error::TrailersTooLarge`]), line ends included.
    pub fn bounded(max_size_line: usize, max_trailer_line: usize) -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            line: 0,
            max_size_line,
            max_trailer_line,
        }
    }

    /// Feed the next bytes: `Ok(Some(n))` when the body ends after the first `n` of them,
    /// `Ok(None)` when all belong to the body and more are needed.
    #[inline]
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>> {
        self.decode(bytes, |_| {})
    }

    /// [`Chunked::feed`], handing each run of chunk data in `bytes` to `data`, in order.
    #[inline]
    pub fn decode(&mut self, bytes: &[u8], mut data: impl FnMut(&[u8])) -> Result<Option<usize>> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Data {
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                data(&bytes[i..i + take]);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            if self.state == State::Done {
                return Ok(Some(i));
            }
            let b = bytes[i];
            i += 1;
            self.step(b)?;
            if self.state == State::Done {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Whether the last (zero-size) chunk has been seen.
    pub fn after_last(&self) -> bool {
        matches!(
            self.state,
            State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf | State::Done
        )
    }

    /// Take one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<()> {
        self.line = self.line.saturating_add(1);
        self.state = match self.state {
            State::Size { .. } | State::Ext | State::SizeLf if self.line > self.max_size_line => {
                return Err(Error::ChunkSizeLine);
            }
            State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf
                if self.line > self.max_trailer_line =>
            {
                return Err(Error::TrailersTooLarge);
            }
            State::Size { digits } => match (b as char).to_digit(16) {
                Some(d) if digits < 16 => {
                    self.size = self.size * 16 + u64::from(d);
                    State::Size { digits: digits + 1 }
                }
                Some(_) => return Err(Error::ChunkSize),
                None if digits == 0 => return Err(Error::ChunkSize),
                None if b == b'\r' => State::SizeLf,
                None if b == b';' || b == b' ' || b == b'\t' => State::Ext,
                None => return Err(Error::ChunkSize),
            },
            State::Ext => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(Error::ChunkSize),
                _ => State::Ext,
            },
            State::SizeLf if b == b'\n' => {
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            State::SizeLf => return Err(Error::ChunkSize),
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => {
                self.size = 0;
                State::Size { digits: 0 }
            }
            State::DataCr | State::DataLf => return Err(Error::ChunkEnd),
            State::TrailerStart if b == b'\r' => State::EndLf,
            State::TrailerStart | State::Trailer if b != b'\r' && b != b'\n' => State::Trailer,
            State::Trailer if b == b'\r' => State::TrailerLf,
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::EndLf if b == b'\n' => State::Done,
            State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf => {
                return Err(Error::Trailer);
            }
            // Handled by `decode`.
            State::Data | State::Done => self.state,
        };
        if b == b'\n' {
            self.line = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `body` fed in pieces of `piece` bytes: the data, and where the body ended.
    fn decode_in_pieces(c: &mut Chunked, body: &[u8], piece: usize) -> (Vec<u8>, Result<usize>) {
        let mut data = Vec::new();
        let mut at = 0;
        for part in body.chunks(piece) {
            match c.decode(part, |d| data.extend_from_slice(d)) {
                Ok(Some(n)) => return (data, Ok(at + n)),
                Ok(None) => at += part.len(),
                Err(e) => return (data, Err(e)),
            }
        }
        panic!("no end found in {:?}", String::from_utf8_lossy(body));
    }

    #[test]
    fn finds_the_end_in_one_piece_and_byte_by_byte() {
        let body =
            b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        assert_eq!(Chunked::default().feed(body), Ok(Some(end)));
        let mut c = Chunked::default();
        for (i, b) in body.iter().enumerate() {
            match c.feed(std::slice::from_ref(b)) {
                Ok(None) => assert!(i < end - 1),
                Ok(Some(1)) => {
                    assert_eq!(i, end - 1);
                    assert!(c.after_last());
                    return;
                }
                other => panic!("{other:?} at {i}"),
            }
        }
        panic!("no end found");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Chunked::default().feed(b"zz\r\n"), Err(Error::ChunkSize));
        assert_eq!(
            Chunked::default().feed(b"5\r\nhelloXY"),
            Err(Error::ChunkEnd)
        );
        assert_eq!(
            Chunked::default().feed(b"11111111111111111\r\n"),
            Err(Error::ChunkSize)
        );
        assert_eq!(Chunked::default().feed(b"5;x\n"), Err(Error::ChunkSize));
        assert_eq!(
            Chunked::default().feed(b"0\r\nX-T: 1\nmore"),
            Err(Error::Trailer)
        );
    }

    /// The dispatcher's case: extensions, two chunks and a trailer, decoded whole and in
    /// pieces of every size.
    #[test]
    fn decodes_the_data_whatever_the_pieces() {
        let body = b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\nHTTP/1.1 200";
        let end = body.len() - b"HTTP/1.1 200".len();
        for piece in 1..=body.len() {
            let (data, ended) = decode_in_pieces(&mut Chunked::default(), body, piece);
            assert_eq!((&data[..], ended), (&b"abcde"[..], Ok(end)), "{piece}");
        }
        let (data, ended) = decode_in_pieces(&mut Chunked::default(), b"0\r\n\r\n", 5);
        assert_eq!((data.len(), ended), (0, Ok(5)));
    }

    #[test]
    fn bounds_the_size_and_trailer_lines() {
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'x', 2000));
        long_ext.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        let bounded = || Chunked::bounded(1024, 64);
        assert_eq!(
            decode_in_pieces(&mut bounded(), &long_ext, 100).1,
            Err(Error::ChunkSizeLine)
        );
        assert_eq!(
            decode_in_pieces(&mut Chunked::default(), &long_ext, 100).1,
            Ok(long_ext.len())
        );
        let mut long_trailer = b"0\r\nt: ".to_vec();
        long_trailer.extend(std::iter::repeat_n(b'y', 100));
        long_trailer.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            decode_in_pieces(&mut bounded(), &long_trailer, 7).1,
            Err(Error::TrailersTooLarge)
        );
        // Each line is bounded, not the section.
        let many =
            b"0\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\nf: 6\r\ng: 7\r\nh: 8\r\ni: 9\r\n\r\n";
        assert_eq!(
            decode_in_pieces(&mut Chunked::bounded(1024, 8), many, 3).1,
            Ok(many.len())
        );
    }

    #[test]
    fn large_chunks_pass_in_runs() {
        let mut body = b"10000\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'z', 0x10000));
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut runs = 0;
        let mut c = Chunked::default();
        let mut total = 0;
        for part in body.chunks(4096) {
            let _ = c
                .decode(part, |d| {
                    runs += 1;
                    total += d.len();
                })
                .expect("valid");
        }
        assert_eq!(total, 0x10000);
        assert!(runs <= 0x10000 / 4096 + 1, "{runs}");
    }
}
