//! The crate's [`Error`]: why a value written in a manifest (a duration, a cron pattern, an
//! expression checked by a hook) is refused. Admission turns these into [`FieldError`]s with
//! the field's path; other callers match on the variants.
//!
//! [`FieldError`]: crate::admission::FieldError

use crate::duration::MAX_DURATION_BYTES;

/// Why a value is refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A duration that is empty (or only blanks).
    #[error("empty duration")]
    EmptyDuration,
    /// Text longer than any duration is written: refused unread.
    #[error("a duration of {len} bytes is refused unread (at most {MAX_DURATION_BYTES})")]
    DurationTooLongToRead {
        /// The text's length in bytes.
        len: usize,
    },
    /// Not an ISO-8601 duration (`PT0.2S`, `P1D`).
    #[error("{text:?} is not an ISO-8601 duration (e.g. PT0.2S, PT1M)")]
    NotIso8601 {
        /// The text as given.
        text: String,
    },
    /// Not a Go duration (`30s`, `1h30m`).
    #[error("{text:?} is not a duration (e.g. 30s, 15m, 1h)")]
    NotGoDuration {
        /// The text as given.
        text: String,
    },
    /// A negative duration where only non-negative ones make sense.
    #[error("{text:?} is negative")]
    NegativeDuration {
        /// The text as given.
        text: String,
    },
    /// Longer than Go's `time.Duration` (an i64 of nanoseconds, about 292 years).
    #[error("{text:?} is longer than a Go duration can be (about 292 years)")]
    DurationOutOfRange {
        /// The text as given.
        text: String,
    },
    /// A cron pattern croner refuses.
    #[error("{source}")]
    Cron {
        /// croner's reason.
        #[source]
        source: croner::errors::CronError,
    },
    /// A value that holds YAML (a ConfigMap key such as `default-ch-config`) that does not read
    /// as what it should be.
    #[error("{source}")]
    Yaml {
        /// The YAML reader's reason, with the position.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// An expression (e.g. CloudEvents SQL) that the injected checker refuses; the message is
    /// the checker's, with the position.
    #[error(transparent)]
    Expression(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// An expression checker's error (a message or any error type).
    pub fn expression(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Expression(e.into())
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
