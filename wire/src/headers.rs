//! The header values HTTP/1.1 framing reads: comma-separated lists (RFC 9110 §5.6.1),
//! `Connection` options (RFC 9110 §7.6.1, RFC 9112 §9.3) and `Transfer-Encoding` (RFC 9112
//! §6.1, §6.3). Values are read as bytes where they lie: nothing is copied or allocated.
//!
//! A message may carry a list header on several lines; it means the same as one line with
//! the values joined by commas, so each accumulator here takes the lines one by one, in order.

/// The elements of a comma-separated list value, blanks around them trimmed, empty elements
/// skipped (a recipient must accept `a, , b` and `a,` as the list `a, b`; RFC 9110 §5.6.1.2).
pub fn list(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether the list `value` has the element `token` (ASCII case-insensitive).
pub fn lists(value: &[u8], token: &[u8]) -> bool {
    list(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// What a message's `Connection` lines say about its connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// The `close` option: the connection ends after this message.
    pub close: bool,
    /// The `keep-alive` option (HTTP/1.0's way of asking to keep the connection).
    pub keep_alive: bool,
}

impl ConnectionOptions {
    /// Read one `Connection` line.
    pub fn add(&mut self, value: &[u8]) {
        for t in list(value) {
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            }
        }
    }

    /// Whether the connection persists after a message of HTTP/1.`minor` with these options
    /// (RFC 9112 §9.3): never after `close`; by default in HTTP/1.1; in HTTP/1.0 only with
    /// `keep-alive`.
    pub fn persists(&self, minor: u8) -> bool {
        !self.close && (minor >= 1 || self.keep_alive)
    }
}

/// What a message's `Transfer-Encoding` lines say about its body's framing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransferEncoding {
    present: bool,
    chunked_last: bool,
}

impl TransferEncoding {
    /// Read one `Transfer-Encoding` line.
    pub fn add(&mut self, value: &[u8]) {
        self.present = true;
        if let Some(last) = list(value).next_back() {
            self.chunked_last = last.eq_ignore_ascii_case(b"chunked");
        }
    }

    /// Whether the message has a `Transfer-Encoding` at all: then it, not `Content-Length`,
    /// frames the body (RFC 9112 §6.3).
    pub fn present(&self) -> bool {
        self.present
    }

    /// Whether the body is chunked: `chunked` is the final coding (RFC 9112 §6.3; a coding
    /// after `chunked`, or `chunked` applied twice, leaves it not the final one). A response
    /// with a `Transfer-Encoding` whose final coding is not `chunked` ends at the close of the
    /// connection; a request with one cannot be framed (RFC 9112 §6.3, item 4).
    pub fn chunked(&self) -> bool {
        self.chunked_last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_trimmed_and_skip_empty_elements() {
        let items: Vec<&[u8]> = list(b" a ,, b\t,c ,").collect();
        assert_eq!(items, [&b"a"[..], b"b", b"c"]);
        assert_eq!(list(b"").count(), 0);
        assert_eq!(list(b" , ,").count(), 0);
        assert!(lists(b"Upgrade, CLOSE", b"close"));
        assert!(!lists(b"closed, x-close", b"close"));
    }

    #[test]
    fn connection_options_decide_persistence() {
        let opts = |lines: &[&[u8]]| {
            let mut o = ConnectionOptions::default();
            lines.iter().for_each(|l| o.add(l));
            o
        };
        assert!(opts(&[]).persists(1));
        assert!(!opts(&[]).persists(0));
        assert!(opts(&[b"Keep-Alive"]).persists(0));
        assert!(!opts(&[b"close"]).persists(1));
        // `close` wins, wherever it is and whatever else is listed.
        assert!(!opts(&[b"keep-alive, close"]).persists(0));
        assert!(!opts(&[b"close, keep-alive"]).persists(0));
        assert!(!opts(&[b"te", b"Close"]).persists(1));
        assert!(opts(&[b"upgrade, x-closed"]).persists(1));
    }

    #[test]
    fn only_a_final_chunked_coding_frames_a_chunked_body() {
        let te = |lines: &[&[u8]]| {
            let mut t = TransferEncoding::default();
            lines.iter().for_each(|l| t.add(l));
            (t.present(), t.chunked())
        };
        assert_eq!(te(&[]), (false, false));
        assert_eq!(te(&[b"chunked"]), (true, true));
        assert_eq!(te(&[b"gzip, Chunked"]), (true, true));
        assert_eq!(te(&[b"gzip, chunked ,"]), (true, true));
        assert_eq!(te(&[b"chunked, gzip"]), (true, false));
        assert_eq!(te(&[b"gzip"]), (true, false));
        // Several lines are one list: the last line's last coding is the final one.
        assert_eq!(te(&[b"gzip", b"chunked"]), (true, true));
        assert_eq!(te(&[b"chunked", b"gzip"]), (true, false));
        assert_eq!(te(&[b"gzip, chunked", b""]), (true, true));
        assert_eq!(te(&[b"xchunked"]), (true, false));
    }
}
