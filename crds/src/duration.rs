//! Durations as written in manifests: ISO-8601 (`PT0.2S`, Knative delivery fields) and Go
//! (`30s`, `15m`, autoscaling annotations and `config-autoscaler`). This is the one place Knit
//! reads them; neither parser panics, whatever the text.

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest text either parser reads; longer text is refused unread. The longest Go
/// duration, `2562047h47m16.854775807s`, is 24 bytes: 256 leaves room for any honest
/// spelling (many units, long fractions, blanks around).
pub const MAX_DURATION_BYTES: usize = 256;

fn readable(s: &str) -> Result<()> {
    if s.len() > MAX_DURATION_BYTES {
        return Err(Error::DurationTooLongToRead { len: s.len() });
    }
    Ok(())
}

/// Parse an ISO-8601 duration such as `PT0.2S`, `PT1M30S` or `P1D` (days count as 24 hours).
/// Negative durations are refused.
pub fn parse_iso8601(s: &str) -> Result<Duration> {
    readable(s)?;
    let t = s.trim();
    if t.is_empty() {
        return Err(Error::EmptyDuration);
    }
    let not_iso = || Error::NotIso8601 { text: s.into() };
    // jiff also reads its "friendly" format (`1s`); Knative accepts ISO-8601 only.
    if !t.trim_start_matches(['-', '+']).starts_with(['P', 'p']) {
        return Err(not_iso());
    }
    let parsed = t.parse::<jiff::SignedDuration>().or_else(|_| {
        t.parse::<jiff::Span>()
            .and_then(|span| span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()))
    });
    match parsed {
        Ok(d) => Duration::try_from(d).map_err(|_| Error::NegativeDuration { text: s.into() }),
        Err(_) => Err(not_iso()),
    }
}

/// Parse a Go duration (`30s`), else an ISO-8601 one (`PT30S`), as CloudPubSubSource's
/// `ackDeadline` and `retentionDuration` are written either way. The error is the ISO-8601
/// parser's.
pub fn parse_go_or_iso8601(s: &str) -> Result<Duration> {
    parse_go(s).or_else(|_| parse_iso8601(s))
}

/// Go's `time.Duration` limit: an i64 of nanoseconds (about 292 years).
const GO_MAX_NANOS: u64 = i64::MAX as u64;

/// Parse a Go duration such as `30s`, `1h30m`, `1.5h`, `300ms` or `0`, as Go's
/// `time.ParseDuration` does, in whole nanoseconds (fractions are truncated to the
/// nanosecond, as in Go). Beyond Go's range (about 292 years) is an error, as in Go.
///
/// Knit's differences from Go: blanks around the text are ignored, and negative durations
/// (`-1s`) are refused, since no setting that reads this parser takes one. A bare number other
/// than `0` is not a duration, in Go as here (Knative's `config-autoscaler` and annotations
/// refuse `60`, too).
pub fn parse_go(s: &str) -> Result<Duration> {
    readable(s)?;
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let not_go = || Error::NotGoDuration { text: s.into() };
    let too_long = || Error::DurationOutOfRange { text: s.into() };
    if t.is_empty() || t.starts_with('-') {
        return Err(not_go());
    }
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (number, after) = GoNumber::read(rest).ok_or_else(not_go)?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let unit = go_unit_nanos(&after[..unit_len]).ok_or_else(not_go)?;
        rest = &after[unit_len..];
        let nanos = number.times(unit).ok_or_else(too_long)?;
        total = total
            .checked_add(nanos)
            .filter(|&n| n <= GO_MAX_NANOS)
            .ok_or_else(too_long)?;
    }
    Ok(Duration::from_nanos(total))
}

/// Nanoseconds per Go duration unit.
fn go_unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 (micro sign) and U+03BC (Greek mu), as Go accepts both.
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// One number of a Go duration: `[0-9]*(\.[0-9]*)?` with at least one digit. The whole part
/// is `None` when it overflows u64; fraction digits past 18 are read and ignored (they are
/// below a nanosecond of any unit but the hour, as in Go).
struct GoNumber {
    whole: Option<u64>,
    fraction: u64,
    scale: u64,
}

impl GoNumber {
    /// The number at the start of `s` and the text after it.
    fn read(s: &str) -> Option<(Self, &str)> {
        let whole_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let digits = &s[..whole_len];
        let whole = digits.bytes().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        let mut n = GoNumber {
            whole,
            fraction: 0,
            scale: 1,
        };
        let Some(after_dot) = s[whole_len..].strip_prefix('.') else {
            return (whole_len > 0).then_some((n, &s[whole_len..]));
        };
        let frac_len = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        if whole_len == 0 && frac_len == 0 {
            return None;
        }
        for d in after_dot[..frac_len].bytes().take(18) {
            n.fraction = n.fraction * 10 + u64::from(d - b'0');
            n.scale *= 10;
        }
        Some((n, &after_dot[frac_len..]))
    }

    /// The number times `unit` nanoseconds, truncated to the nanosecond; `None` past u64.
    fn times(&self, unit: u64) -> Option<u64> {
        let whole = self.whole?.checked_mul(unit)?;
        let fraction = u128::from(self.fraction) * u128::from(unit) / u128::from(self.scale);
        whole.checked_add(u64::try_from(fraction).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(s: &str) -> Option<Duration> {
        parse_iso8601(s).ok()
    }

    fn go(s: &str) -> Option<Duration> {
        parse_go(s).ok()
    }

    #[test]
    fn iso8601() {
        assert_eq!(iso("PT0.2S"), Some(Duration::from_millis(200)));
        assert_eq!(iso("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(iso("PT168H"), Some(Duration::from_secs(168 * 3600)));
        assert_eq!(iso("P1D"), Some(Duration::from_secs(86400)));
        assert!(parse_iso8601("1s").is_err());
        assert!(parse_iso8601("-PT1S").is_err());
        assert!(parse_iso8601("").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go("15m"), Some(Duration::from_secs(900)));
        assert_eq!(go("380s"), Some(Duration::from_secs(380)));
        assert_eq!(go("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(go("0"), Some(Duration::ZERO));
        assert!(parse_go("15").is_err());
        assert!(parse_go("abc").is_err());
        assert!(parse_go("-1s").is_err());
    }

    /// What the serving scaler's own parser (now gone) read the same way.
    #[test]
    fn go_durations_the_scaler_reads() {
        assert_eq!(go("6s"), Some(Duration::from_secs(6)));
        assert_eq!(go("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go("x"), None);
        // The scaler's parser read a bare number as seconds; Go and Knative do not.
        assert_eq!(go("2"), None);
    }

    #[test]
    fn go_durations_as_go_reads_them() {
        assert_eq!(go("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go("+5s"), Some(Duration::from_secs(5)));
        assert_eq!(go(" 5s "), Some(Duration::from_secs(5)));
        assert_eq!(go("5.s"), Some(Duration::from_secs(5)));
        assert_eq!(go("1h1m1s1ms1us1ns"), Some(Duration::new(3661, 1_001_001)));
        assert_eq!(go("1µs"), Some(Duration::from_micros(1)));
        assert_eq!(go("1μs"), Some(Duration::from_micros(1)));
        // Exact to the nanosecond, fractions truncated.
        assert_eq!(go("0.1s"), Some(Duration::from_millis(100)));
        assert_eq!(go("1.0000000001s"), Some(Duration::from_secs(1)));
        assert_eq!(go("0.3333333333s"), Some(Duration::from_nanos(333_333_333)));
        assert_eq!(
            go("1.00000000000000000000000001h"),
            Some(Duration::from_secs(3600))
        );
        for bad in [
            "", " ", "s", "1", "1x", "1S", "1sec", "h1", "1.", "1..s", "-0s", "- 1s",
        ] {
            assert_eq!(go(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_go_durations_are_errors() {
        // Go's limit: 2562047h47m16.854775807s.
        assert_eq!(go("2562047h"), Some(Duration::from_secs(2_562_047 * 3600)));
        assert_eq!(
            go("2562047h47m16.854775807s"),
            Some(Duration::from_nanos(i64::MAX as u64))
        );
        assert_eq!(
            go("9223372036854775807ns"),
            Some(Duration::from_nanos(i64::MAX as u64))
        );
        assert!(parse_go("2562047h47m16.854775808s").is_err());
        assert!(parse_go("2562048h").is_err());
        assert!(parse_go("9223372037s").is_err());
        assert!(parse_go("9223372036854775808ns").is_err());
        assert!(parse_go("99999999999999999999999999999h").is_err());
        assert!(
            parse_go(&format!("{}s", "9".repeat(400))).is_err(),
            "infinite as f64"
        );
        assert!(
            parse_go(&"1000000h".repeat(3)).is_err(),
            "the sum overflows"
        );
        assert!(parse_go(".s").is_err());
        assert!(parse_go("1.2.3s").is_err());
        assert_eq!(go(".5s"), Some(Duration::from_millis(500)));
    }

    /// Values a hostile or careless manifest carries: each is refused with a clear error,
    /// never a panic.
    #[test]
    fn hostile_go_durations_are_refused_clearly() {
        for (text, fits) in [
            ("inf", "not"),
            ("+inf", "not"),
            ("Infinity", "not"),
            ("NaN", "not"),
            ("nan", "not"),
            ("-1", "not"),
            ("-1s", "not"),
            ("1e400", "not"),
            ("1e400s", "not"),
            ("0x10s", "not"),
            ("9223372036854775808s", "range"),
            ("18446744073709551616ns", "range"),
            ("99999999999999999999999999999999999999999h", "range"),
        ] {
            let e = match parse_go(text) {
                Ok(d) => panic!("{text:?} read as {d:?}"),
                Err(e) => e,
            };
            match (fits, &e) {
                ("not", Error::NotGoDuration { text: t })
                | ("range", Error::DurationOutOfRange { text: t }) => {
                    assert_eq!(t, text)
                }
                _ => panic!("{text:?}: unexpected {e:?}"),
            }
            assert!(e.to_string().contains(text), "{e}");
        }
    }

    #[test]
    fn texts_past_the_limit_are_refused_unread() {
        let many = "1s".repeat(32 * 1024);
        assert_eq!(many.len(), 64 * 1024);
        for parse in [parse_go, parse_iso8601] {
            match parse(&many) {
                Err(Error::DurationTooLongToRead { len }) => assert_eq!(len, 64 * 1024),
                other => panic!("{other:?}"),
            }
            let e = parse(&many)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("65536 bytes"), "{e}");
        }
        // Up to the limit, text is read.
        let padded = format!("{:>width$}", "1s", width = MAX_DURATION_BYTES);
        assert_eq!(go(&padded), Some(Duration::from_secs(1)));
        let iso_padded = format!("{:>width$}", "PT1S", width = MAX_DURATION_BYTES);
        assert_eq!(iso(&iso_padded), Some(Duration::from_secs(1)));
    }

    #[test]
    fn hostile_iso8601_durations_are_refused_clearly() {
        for text in ["inf", "NaN", "-1", "1e400", "PT1e400S", "PTinfS", "PT-1S"] {
            assert!(parse_iso8601(text).is_err(), "{text}");
        }
        assert!(matches!(
            parse_iso8601("-PT1S"),
            Err(Error::NegativeDuration { .. })
        ));
        assert!(matches!(parse_iso8601(" "), Err(Error::EmptyDuration)));
    }

    #[test]
    fn huge_iso8601_durations_are_errors() {
        for s in [
            "PT99999999999999999999S",
            "PT9223372036854775808S",
            "P99999999999D",
            "P106751991167300DT15H30M8S",
            "P9999999999999999999999Y",
            "PT-1S",
        ] {
            assert!(parse_iso8601(s).is_err(), "{s}");
        }
        // The largest accepted are far beyond any delivery setting, and still exact.
        assert_eq!(
            iso("PT9223372036854775807S"),
            Some(Duration::from_secs(i64::MAX as u64))
        );
    }
}
