//! Reading a range of a log again (a replay), backend-neutral: the positions a range is given
//! in, and the reader a durable [`Log`](crate::Log) hands out ([`Log::replay`](crate::Log::replay)).
//!
//! Bounds (`--from`, `--to`), as [`Bound::parse`] reads them:
//!
//! - `earliest` / `latest`: a partition's first retained record / its end;
//! - `N`: position `N` on every partition (a Kafka offset, a JetStream stream sequence);
//! - `P:N[,P:N...]`: position `N` on partition `P` (as `--from`, only the partitions listed are
//!   read; as `--to`, partitions not listed end where the log ended when the replay started);
//! - an RFC 3339 time (`2025-01-31T12:00:00Z`): the first record stored at or after it.
//!
//! The start is inclusive, the end exclusive, and the end never lies beyond the log's end when
//! the replay started (events appended during a replay are not replayed).

use std::collections::BTreeMap;
use std::fmt;

use crate::event::Event;
use crate::log::{BoxFuture, LogError};

/// One end of a replay range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The first record the log retains.
    Earliest,
    /// The log's end when the replay starts.
    Latest,
    /// This position on every partition.
    Offset(i64),
    /// These positions on these partitions.
    Partitions(BTreeMap<i32, i64>),
    /// The first record at or after this time.
    Time(jiff::Timestamp),
}

/// Why a bound was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a position: give an RFC 3339 time (2025-01-31T12:00:00Z), an offset (0), partition:offset pairs (0:12,1:40), earliest or latest ({why})"
)]
pub struct BoundError {
    text: String,
    why: String,
}

impl Bound {
    /// Read a bound (see the module documentation).
    pub fn parse(text: &str) -> Result<Bound, BoundError> {
        let t = text.trim();
        let fail = |why: &str| BoundError {
            text: text.to_string(),
            why: why.to_string(),
        };
        match t {
            "" => return Err(fail("empty")),
            "earliest" => return Ok(Bound::Earliest),
            "latest" => return Ok(Bound::Latest),
            _ => {}
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse()
                .map(Bound::Offset)
                .map_err(|_| fail("offset out of range"));
        }
        if t.bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b',')
        {
            let mut map = BTreeMap::new();
            for pair in t.split(',') {
                let (p, o) = pair
                    .split_once(':')
                    .ok_or_else(|| fail("expected partition:offset"))?;
                let p: i32 = p.parse().map_err(|_| fail("bad partition"))?;
                let o: i64 = o.parse().map_err(|_| fail("bad offset"))?;
                if map.insert(p, o).is_some() {
                    return Err(fail("a partition is given twice"));
                }
            }
            return Ok(Bound::Partitions(map));
        }
        t.parse::<jiff::Timestamp>()
            .map(Bound::Time)
            .map_err(|e| fail(&e.to_string()))
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Earliest => f.write_str("earliest"),
            Bound::Latest => f.write_str("latest"),
            Bound::Offset(o) => write!(f, "{o}"),
            Bound::Partitions(m) => {
                let parts: Vec<String> = m.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                f.write_str(&parts.join(","))
            }
            Bound::Time(t) => write!(f, "{t}"),
        }
    }
}

/// The positions one partition is read between: `from` inclusive, `to` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionRange {
    /// The partition.
    pub partition: i32,
    /// The first position read.
    pub from: i64,
    /// The position reading stops at (not read).
    pub to: i64,
}

/// A record read by a replay.
#[derive(Debug)]
pub struct ReplayRecord {
    /// Its partition.
    pub partition: i32,
    /// Its position in the partition.
    pub offset: i64,
    /// The event (a record that is not a CloudEvent is wrapped as the log's consumers wrap it).
    pub event: Event,
}

/// Reads a log's records in a range, then ends. Dropping it releases the backend's reader
/// (which may block briefly: drop it off the async runtime's threads).
pub trait Replay: Send {
    /// The range of each partition.
    fn ranges(&self) -> &[PartitionRange];

    /// How many positions the ranges span (an upper bound of the records read).
    fn span(&self) -> u64 {
        self.ranges()
            .iter()
            .map(|r| u64::try_from(r.to.saturating_sub(r.from)).unwrap_or(0))
            .sum()
    }

    /// Up to `max` records (at least one); `Ok(None)` once every partition was read to its
    /// end. Fails when nothing arrives for too long while records are still due.
    fn next(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Vec<ReplayRecord>>, LogError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse() {
        assert_eq!(Bound::parse("0"), Ok(Bound::Offset(0)));
        assert_eq!(Bound::parse(" 42 "), Ok(Bound::Offset(42)));
        assert_eq!(Bound::parse("earliest"), Ok(Bound::Earliest));
        assert_eq!(Bound::parse("latest"), Ok(Bound::Latest));
        assert_eq!(
            Bound::parse("0:5,2:7"),
            Ok(Bound::Partitions(BTreeMap::from([(0, 5), (2, 7)])))
        );
        let t = Bound::parse("2025-01-31T12:00:00Z");
        assert!(matches!(t, Ok(Bound::Time(_))), "{t:?}");
        assert_eq!(
            t.map(|b| b.to_string()).ok().as_deref(),
            Some("2025-01-31T12:00:00Z")
        );
        for bad in [
            "",
            "-1",
            "0:",
            "0:1,0:2",
            "yesterday",
            "1:2:3",
            "99999999999999999999",
        ] {
            assert!(Bound::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_print_as_parsed() {
        for text in ["0", "12", "0:5,2:7", "earliest", "latest"] {
            assert_eq!(
                Bound::parse(text).map(|b| b.to_string()).ok().as_deref(),
                Some(text)
            );
        }
    }
}
