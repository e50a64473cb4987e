//! Durations as people type them on a command line: `500ms`, `10s`, `1.5s`, `5m`, `2h`.
//!
//! A bare number is seconds, as in `lockfile -r` and `flock -w`. `forever` is
//! accepted only where a limit makes sense to lift (`--wait`).

use std::time::Duration;

/// Why a duration was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration (examples: 500ms, 10s, 5m, 1h)")]
    Empty,
    /// Not of the form `NUMBER[UNIT]`.
    #[error("'{0}' is not a duration (examples: 500ms, 10s, 5m, 1h)")]
    Malformed(String),
    /// A unit other than ms, s, m, h.
    #[error("'{0}': unknown unit '{1}' (use ms, s, m or h)")]
    Unit(String, String),
    /// Larger than a year: almost certainly a typo, and it would overflow deadlines.
    #[error("'{0}' is too long (at most 8760h)")]
    TooLong(String),
}

/// The longest duration accepted: one year.
const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `NUMBER[.FRACTION][ms|s|m|h]`; no unit means seconds.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit_ms: u128 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => return Err(DurationError::Unit(text.to_string(), other.to_string())),
    };
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let malformed = || DurationError::Malformed(text.to_string());
    if whole.is_empty() && frac.is_empty() {
        return Err(malformed());
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(malformed());
    }
    // Keep everything in integers (microseconds) so "0.1s" is exactly 100 ms.
    let too_long = || DurationError::TooLong(text.to_string());
    let whole_v: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_long())?
    };
    let mut micros = whole_v.checked_mul(unit_ms * 1000).ok_or_else(too_long)?;
    let mut scale = unit_ms * 1000;
    for d in frac.chars().take(9) {
        scale /= 10;
        micros += u128::from(d as u8 - b'0') * scale;
    }
    let d = Duration::from_micros(u64::try_from(micros).map_err(|_| too_long())?);
    if d > MAX {
        return Err(too_long());
    }
    Ok(d)
}

/// How long to wait for a lock held by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Give up after this long (zero: fail at once).
    For(Duration),
    /// Wait until the lock is free or a signal arrives.
    Forever,
}

impl Wait {
    /// Parses a `--wait` value: a duration, `0`, or `forever`.
    pub fn parse(text: &str) -> Result<Wait, DurationError> {
        match text.trim() {
            "forever" | "inf" | "infinity" => Ok(Wait::Forever),
            other => parse(other).map(Wait::For),
        }
    }

    /// True when no waiting at all is wanted.
    pub fn is_zero(self) -> bool {
        self == Wait::For(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(parse("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(".25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5m"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(parse("ten"), Err(DurationError::Unit(..))));
        assert!(matches!(parse("-1s"), Err(DurationError::Unit(..))));
        assert!(matches!(parse("1.2.3s"), Err(DurationError::Malformed(..))));
        assert!(matches!(parse("."), Err(DurationError::Malformed(..))));
        assert!(matches!(parse("5d"), Err(DurationError::Unit(..))));
        assert!(matches!(parse("9000h"), Err(DurationError::TooLong(..))));
        assert!(matches!(
            parse("99999999999999999999999999999999999999999s"),
            Err(DurationError::TooLong(..))
        ));
    }

    #[test]
    fn wait_values() {
        assert_eq!(Wait::parse("forever"), Ok(Wait::Forever));
        assert!(Wait::parse("0").unwrap().is_zero());
        assert_eq!(Wait::parse("3s"), Ok(Wait::For(Duration::from_secs(3))));
        assert!(Wait::parse("soon").is_err());
    }
}
