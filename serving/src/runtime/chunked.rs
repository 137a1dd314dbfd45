//! Finding the end of a chunked body (RFC 9112 §7.1) in bytes that pass through unchanged: the
//! gateway's fast path forwards a chunked response verbatim and only needs to know where it ends.

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
}

/// Why the bytes are not a chunked body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed chunked body")]
pub(crate) struct Malformed;

/// A chunked body's end finder.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    last: bool,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            last: false,
        }
    }
}

impl Chunked {
    /// Feed the next bytes: `Ok(Some(n))` when the body ends after the first `n` of them,
    /// `Ok(None)` when all belong to the body and more are needed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, Malformed> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Data {
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match self.state {
                State::Size { digits } => match (b as char).to_digit(16) {
                    Some(d) if digits < 16 => {
                        self.size = self.size * 16 + u64::from(d);
                        State::Size { digits: digits + 1 }
                    }
                    Some(_) => return Err(Malformed),
                    None if digits == 0 => return Err(Malformed),
                    None if b == b'\r' => State::SizeLf,
                    None if b == b';' || b == b' ' || b == b'\t' => State::Ext,
                    None => return Err(Malformed),
                },
                State::Ext => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(Malformed),
                    _ => State::Ext,
                },
                State::SizeLf if b == b'\n' => {
                    if self.size == 0 {
                        self.last = true;
                        State::TrailerStart
                    } else {
                        State::Data
                    }
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => {
                    self.size = 0;
                    State::Size { digits: 0 }
                }
                State::TrailerStart if b == b'\r' => State::EndLf,
                State::TrailerStart | State::Trailer if b != b'\r' && b != b'\n' => State::Trailer,
                State::Trailer if b == b'\r' => State::TrailerLf,
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::EndLf if b == b'\n' => return Ok(Some(i)),
                _ => return Err(Malformed),
            };
        }
        Ok(None)
    }

    /// Whether the last (zero-size) chunk has been seen.
    #[cfg(test)]
    fn after_last(&self) -> bool {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Chunked::default().feed(b"zz\r\n"), Err(Malformed));
        assert_eq!(Chunked::default().feed(b"5\r\nhelloXY"), Err(Malformed));
        assert_eq!(
            Chunked::default().feed(b"11111111111111111\r\n"),
            Err(Malformed)
        );
    }
}
