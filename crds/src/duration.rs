//! Durations as written in manifests: ISO-8601 (`PT0.2S`, Knative delivery fields) and Go
//! (`30s`, `15m`, autoscaling annotations).

use std::time::Duration;

/// Parse an ISO-8601 duration such as `PT0.2S`, `PT1M30S` or `P1D` (days count as 24 hours).
/// Negative durations are returned as `Err` unless `allow_negative`.
pub fn parse_iso8601(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    // jiff also reads its "friendly" format (`1s`); Knative accepts ISO-8601 only.
    if !t.trim_start_matches(['-', '+']).starts_with(['P', 'p']) {
        return Err(format!(
            "{s:?} is not an ISO-8601 duration (e.g. PT0.2S, PT1M)"
        ));
    }
    let parsed = t
        .parse::<jiff::SignedDuration>()
        .map_err(|e| e.to_string())
        .or_else(|_| {
            let span: jiff::Span = t.parse().map_err(|e: jiff::Error| e.to_string())?;
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .map_err(|e| e.to_string())
        });
    match parsed {
        Ok(d) if d.is_negative() => Err(format!("{s:?} is negative")),
        Ok(d) => Duration::try_from(d).map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "{s:?} is not an ISO-8601 duration (e.g. PT0.2S, PT1M)"
        )),
    }
}

/// The longest Go duration: `time.Duration` is an i64 of nanoseconds (about 292 years);
/// `time.ParseDuration` refuses anything longer.
const GO_MAX_SECS: f64 = 9_223_372_036.854_775;

/// Parse a Go duration such as `30s`, `1h30m`, `1.5h` or `300ms`; beyond Go's range (about
/// 292 years) is an error, as in Go.
pub fn parse_go(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 30s, 15m, 1h)");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += n * factor;
    }
    if !total.is_finite() || total > GO_MAX_SECS {
        return Err(format!(
            "{s:?} is longer than a Go duration can be (about 292 years)"
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601() {
        assert_eq!(parse_iso8601("PT0.2S"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_iso8601("PT1M30S"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_iso8601("PT168H"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse_iso8601("P1D"), Ok(Duration::from_secs(86400)));
        assert!(parse_iso8601("1s").is_err());
        assert!(parse_iso8601("-PT1S").is_err());
        assert!(parse_iso8601("").is_err());
    }

    #[test]
    fn go() {
        assert_eq!(parse_go("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_go("380s"), Ok(Duration::from_secs(380)));
        assert_eq!(parse_go("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go("0"), Ok(Duration::ZERO));
        assert!(parse_go("15").is_err());
        assert!(parse_go("abc").is_err());
        assert!(parse_go("-1s").is_err());
    }

    #[test]
    fn huge_go_durations_are_errors() {
        // Go's limit: 2562047h47m16.854775807s.
        assert_eq!(
            parse_go("2562047h"),
            Ok(Duration::from_secs(2_562_047 * 3600))
        );
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
        assert_eq!(parse_go(".5s"), Ok(Duration::from_millis(500)));
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
            parse_iso8601("PT9223372036854775807S"),
            Ok(Duration::from_secs(i64::MAX as u64))
        );
    }
}
