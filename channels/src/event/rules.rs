//! The CloudEvents type system's rules for attribute values (CloudEvents 1.0.2 "Type System"):
//! URI and URI-reference (RFC 3986), Timestamp (RFC 3339, seconds required), media types
//! (RFC 2046 / RFC 9110 syntax), Integer (signed 32-bit), and attribute names.
//!
//! Every check is a plain scan over the text: no allocation, no arithmetic that can overflow.

/// Longest attribute name accepted. CloudEvents says names SHOULD NOT exceed 20 characters; Knit
/// accepts longer ones up to this bound.
pub const MAX_ATTRIBUTE_NAME: usize = 64;

/// Most extension attributes one event may carry.
pub const MAX_EXTENSIONS: usize = 64;

/// Extensions Knit knows to be Timestamps (Knative's arrival time, the `recordedtime`
/// extension of the CloudEvents spec).
pub const TIMESTAMP_EXTENSIONS: &[&str] = &["knativearrivaltime", "recordedtime"];

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether `s` uses only characters RFC 3986 allows in a URI (with `%` only as `%XX`).
fn uri_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(c)
            || is_sub_delim(c)
            || matches!(c, b':' | b'@' | b'/' | b'?' | b'#' | b'[' | b']'))
        {
            return false;
        }
        i += 1;
    }
    true
}

/// The scheme of `s` when it starts with one (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`).
fn scheme(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let name = &s[..colon];
    let mut bytes = name.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(name)
}

/// Whether `s` is a URI-reference (RFC 3986 §4.1): a URI or a relative reference. A relative
/// reference's first segment has no `:` (else it would be read as a scheme).
pub fn is_uri_reference(s: &str) -> bool {
    if !uri_chars(s) {
        return false;
    }
    if scheme(s).is_some() {
        return true;
    }
    let first_segment = s.split(['/', '?', '#']).next().unwrap_or("");
    s.starts_with('/') || !first_segment.contains(':')
}

/// Whether `s` is an absolute URI (RFC 3986 §4.3 allows no fragment; CloudEvents' `URI` type is
/// "absolute URI", and producers do send fragments, so a fragment is allowed).
pub fn is_uri(s: &str) -> bool {
    uri_chars(s) && scheme(s).is_some()
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at.checked_add(n)?)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        part.iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')),
    )
}

/// Whether `s` is an RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, seconds
/// present, fields and offset in range (the calendar check is left to the parser that reads it).
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = (|| {
        let _year = digits(b, 0, 4)?;
        let month = digits(b, 5, 2)?;
        let day = digits(b, 8, 2)?;
        let hour = digits(b, 11, 2)?;
        let minute = digits(b, 14, 2)?;
        let second = digits(b, 17, 2)?;
        let seps = b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && matches!(b.get(10), Some(b'T' | b't'))
            && b.get(13) == Some(&b':')
            && b.get(16) == Some(&b':');
        let ranges = (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour <= 23
            && minute <= 59
            && second <= 60;
        if !(seps && ranges) {
            return None;
        }
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        match b.get(i) {
            Some(b'Z' | b'z') if b.len() == i + 1 => Some(()),
            Some(b'+' | b'-') if b.len() == i + 6 => {
                let oh = digits(b, i + 1, 2)?;
                let om = digits(b, i + 4, 2)?;
                (b.get(i + 3) == Some(&b':') && oh <= 23 && om <= 59).then_some(())
            }
            _ => None,
        }
    })();
    ok.is_some()
}

/// An RFC 9110 `token` character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Whether `s` is a media type: `type/subtype *( OWS ";" OWS name=value )`, value a token or a
/// quoted string (RFC 2046, with the syntax of RFC 9110 §8.3.1).
pub fn is_media_type(s: &str) -> bool {
    let (essence, mut rest) = match s.find(';') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let Some((ty, sub)) = essence.trim_end().split_once('/') else {
        return false;
    };
    if !is_token(ty) || !is_token(sub) {
        return false;
    }
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return true;
        }
        let Some(after) = rest.strip_prefix(';') else {
            return false;
        };
        let after = after.trim_start_matches([' ', '\t']);
        if after.is_empty() {
            // A trailing `;` is tolerated, as most parsers do.
            return true;
        }
        let Some((name, value)) = after.split_once('=') else {
            return false;
        };
        if !is_token(name) {
            return false;
        }
        rest = match value.strip_prefix('"') {
            Some(quoted) => match closing_quote(quoted) {
                Some(end) => &quoted[end + 1..],
                None => return false,
            },
            None => {
                let end = value.find([';', ' ', '\t']).unwrap_or(value.len());
                if !is_token(&value[..end]) {
                    return false;
                }
                &value[end..]
            }
        };
    }
}

/// The index of the quote closing a quoted string whose opening quote was just consumed.
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            c if c < 0x20 && c != b'\t' => return None,
            _ => i += 1,
        }
    }
    None
}

/// The value of a CloudEvents Integer written as text: optional sign, decimal digits, in the
/// signed 32-bit range.
pub fn parse_integer(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i32>().ok()
}

/// A valid attribute name: lower-case ASCII letters and digits, at most
/// [`MAX_ATTRIBUTE_NAME`] long.
pub fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ATTRIBUTE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_references() {
        for ok in [
            "/s",
            "s",
            "https://github.com/knative/eventing",
            "urn:event:from:myapi/resource/123",
            "//example.com/x?y=1#z",
            "mailto:a@b.c",
            "/a%20b",
            "./x:y",
        ] {
            assert!(is_uri_reference(ok), "{ok}");
        }
        for bad in ["a b", "x:y z", "/%zz", "/%2", "{id}", "1a:b", "/\n", "ü"] {
            assert!(!is_uri_reference(bad), "{bad}");
        }
        assert!(is_uri("https://x/y#f"));
        assert!(!is_uri("/relative"));
        assert!(!is_uri("no-scheme"));
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2018-04-05T17:31:00Z",
            "1985-04-12T23:20:50.52Z",
            "1996-12-19T16:39:57-08:00",
            "1990-12-31T23:59:60Z",
            "2024-01-01t00:00:00z",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2018-04-05T17:31Z",
            "2018-04-05",
            "2018-04-05T17:31:00",
            "2018-04-05T17:31:00+24:00",
            "2018-04-05T17:31:00+01:60",
            "2018-13-05T17:31:00Z",
            "2018-04-05T25:31:00Z",
            "2018-04-05T17:31:00.Z",
            "2018-04-05 17:31:00Z",
            "2018-04-05T17:31:00Zjunk",
            "",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn media_types() {
        for ok in [
            "application/json",
            "text/plain; charset=utf-8",
            "text/plain;charset=\"utf-8\"",
            "application/cloudevents+json",
            "multipart/form-data; boundary=\"a b\"",
            "text/plain;",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "json",
            "application/",
            "/json",
            "text/plain; charset",
            "text/plain; charset=\"utf-8",
            "text/pl ain",
            "a/b; c=d e",
        ] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_integer("255"), Some(255));
        assert_eq!(parse_integer("-2147483648"), Some(i32::MIN));
        assert_eq!(parse_integer("+7"), Some(7));
        for bad in [
            "abc",
            "",
            "-",
            "2147483648",
            "-9223372036854775808",
            "1.5",
            " 1",
            "0x10",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad}");
        }
    }
}
