//! The Broker hop limit, `knativebrokerttl` (eventing-spec E11): the only thing that ends a
//! reply loop, so it is read strictly.
//!
//! - absent: set to the broker's default (255);
//! - present: must be a CloudEvents Integer (signed 32-bit, decimal); anything else is refused
//!   with 400 naming it. Knative resets an unreadable value to the default instead; a sender
//!   that writes garbage there is broken or hostile, and a clear refusal tells it so;
//! - a value above the default is lowered to the default (Knative keeps it, which lets a sender
//!   buy itself two billion hops), then decremented; nothing left (≤ 0) is refused with 400.

use knit_channels::event::rules;
use knit_channels::{Event, ExtValue};

/// The extension carrying a Broker's remaining hop count.
pub const TTL_EXTENSION: &str = "knativebrokerttl";

/// Why an event may not enter a Broker (the 400's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HopError {
    /// Its hop count is not a CloudEvents Integer.
    #[error(
        "invalid attribute {TTL_EXTENSION} of event {id:?}: {value:?} is not an integer from -2147483648 to 2147483647"
    )]
    Invalid {
        /// The event's id.
        id: String,
        /// The value, as text.
        value: String,
    },
    /// It has no hop left.
    #[error("dropping event {id:?}: hop limit ({TTL_EXTENSION}) reached")]
    Exhausted {
        /// The event's id.
        id: String,
    },
}

/// Apply the hop limit to an event entering a Broker.
pub(crate) fn hop(event: &mut Event, default_ttl: i32) -> Result<(), HopError> {
    let current = match event.extension(TTL_EXTENSION) {
        None => None,
        Some(ExtValue::Integer(i)) => Some(i32::try_from(*i).map_err(|_| invalid(event, i))?),
        Some(ExtValue::String(s)) => {
            Some(rules::parse_integer(s).ok_or_else(|| invalid(event, s))?)
        }
        Some(v @ ExtValue::Boolean(_)) => return Err(invalid(event, v)),
    };
    let next = match current {
        None => default_ttl,
        Some(n) => n.min(default_ttl).saturating_sub(1),
    };
    if next <= 0 {
        return Err(HopError::Exhausted {
            id: event.id.clone(),
        });
    }
    event.set_extension(TTL_EXTENSION, ExtValue::Integer(i64::from(next)));
    Ok(())
}

fn invalid(event: &Event, value: &dyn std::fmt::Display) -> HopError {
    HopError::Invalid {
        id: event.id.clone(),
        value: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl_of(e: &Event) -> Option<&ExtValue> {
        e.extension(TTL_EXTENSION)
    }

    #[test]
    fn absent_gets_the_default_then_counts_down() {
        let mut e = Event::new("1", "s", "t");
        hop(&mut e, 255).expect("fresh event");
        assert_eq!(ttl_of(&e), Some(&ExtValue::Integer(255)));
        let mut e = Event::new("1", "s", "t");
        e.set_extension(TTL_EXTENSION, ExtValue::String("2".into()));
        hop(&mut e, 255).expect("one hop left");
        assert_eq!(ttl_of(&e), Some(&ExtValue::Integer(1)));
        assert!(hop(&mut e, 255).is_err());
    }

    #[test]
    fn hostile_values_are_refused_or_capped() {
        for bad in [
            ExtValue::String("abc".into()),
            ExtValue::String("-9223372036854775808".into()),
            ExtValue::String("2147483648".into()),
            ExtValue::String("1.5".into()),
            ExtValue::String("".into()),
            ExtValue::Integer(i64::MIN),
            ExtValue::Integer(i64::MAX),
            ExtValue::Boolean(true),
        ] {
            let mut e = Event::new("1", "s", "t");
            e.set_extension(TTL_EXTENSION, bad.clone());
            let why = hop(&mut e, 255).expect_err("refused");
            assert!(
                matches!(why, HopError::Invalid { .. }) && why.to_string().contains(TTL_EXTENSION),
                "{bad:?}: {why}"
            );
        }
        for low in ["0", "-1", "-2147483648", "1"] {
            let mut e = Event::new("1", "s", "t");
            e.set_extension(TTL_EXTENSION, ExtValue::String(low.into()));
            assert!(
                matches!(hop(&mut e, 255), Err(HopError::Exhausted { .. })),
                "{low}"
            );
        }
        let mut e = Event::new("1", "s", "t");
        e.set_extension(TTL_EXTENSION, ExtValue::String("2147483647".into()));
        hop(&mut e, 255).expect("capped");
        assert_eq!(ttl_of(&e), Some(&ExtValue::Integer(254)));
    }
}
