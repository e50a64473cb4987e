//! Durations as people type them on a command line: `500ms`, `10s`, `1.5s`, `5m`, `2h`.
//!
//! A bare number is seconds, as in `lockfile -r` and `flock -w`. `forever` is
//! accepted only where a limit makes sense to lift (`--wait`).

use std::time::Duration;

/// Why a duration was not understood. Each message but [`Empty`]'s quotes
/// the text as given and says what is wrong with it.
///
/// [`Empty`]: DurationError::Empty
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration (examples: 500ms, 10s, 5m, 1h)")]
    Empty,
    /// `-1`, `-5s`: a minus sign.
    #[error("'{0}': a duration cannot be negative (examples: 500ms, 10s, 5m, 1h)")]
    Negative(String),
    /// `+5s`: a plus sign, which no duration is written with.
    #[error("'{text}': no '+' sign before a duration (write {unsigned})")]
    Plus {
        /// The whole text.
        text: String,
        /// The text without its sign.
        unsigned: String,
    },
    /// `soon`, `s`, `.`: no digits before the unit.
    #[error(
        "'{0}': not a duration: it does not start with a number (examples: 500ms, 10s, 5m, 1h)"
    )]
    NoNumber(String),
    /// `forever` where a duration must end.
    #[error("'{0}': only --wait (UPDLOCK_WAIT) can be forever; give a duration (examples: 500ms, 10s, 5m, 1h)")]
    Forever(String),
    /// `1.2.3s`.
    #[error("'{0}': more than one decimal point")]
    TwoPoints(String),
    /// `1,5s`: a decimal comma.
    #[error("'{text}': a fraction takes a decimal point, not a comma (write {written})")]
    Comma {
        /// The whole text.
        text: String,
        /// The text with the comma as a point.
        written: String,
    },
    /// `5 s`: white space between the number and its unit.
    #[error("'{text}': no space between the number and its unit (write {written})")]
    Space {
        /// The whole text.
        text: String,
        /// The text without the space.
        written: String,
    },
    /// A unit other than ms, s, min, m, h.
    #[error("'{0}': unknown unit '{1}' (use ms, s, m or h)")]
    Unit(String, String),
    /// `1h30m`, `1s2`: something after the unit.
    #[error(
        "'{text}': '{rest}' after the unit: a duration is one number and one unit (90m, not 1h30m)"
    )]
    AfterUnit {
        /// The whole text.
        text: String,
        /// What follows the unit.
        rest: String,
    },
    /// Larger than a year: almost certainly a typo, and it would overflow deadlines.
    #[error("'{0}' is too long (at most 8760h)")]
    TooLong(String),
}

/// The longest duration accepted: one year.
const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// How many milliseconds a unit is.
fn unit_ms(unit: &str) -> Option<u128> {
    match unit {
        "ms" => Some(1),
        "" | "s" => Some(1_000),
        "m" | "min" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    }
}

/// Parses `NUMBER[.FRACTION][ms|s|m|h]`; no unit means seconds.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    let starts_number = |s: &str| s.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if let Some(rest) = t.strip_prefix('-') {
        if starts_number(rest) {
            return Err(DurationError::Negative(text.to_string()));
        }
    }
    if let Some(rest) = t.strip_prefix('+') {
        if starts_number(rest) {
            return Err(DurationError::Plus {
                text: text.to_string(),
                unsigned: rest.to_string(),
            });
        }
    }
    if matches!(t, "forever" | "inf" | "infinity") {
        return Err(DurationError::Forever(text.to_string()));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, after) = t.split_at(split);
    if !number.contains(|c: char| c.is_ascii_digit()) {
        return Err(DurationError::NoNumber(text.to_string()));
    }
    if number.matches('.').count() > 1 {
        return Err(DurationError::TwoPoints(text.to_string()));
    }
    if let Some(frac) = after.strip_prefix(',') {
        if !number.contains('.') && frac.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(DurationError::Comma {
                text: text.to_string(),
                written: format!("{number}.{frac}"),
            });
        }
    }
    let spaced = after.trim_start();
    let letters = spaced
        // Units are ASCII; Unicode's alphabetic table is 2 KiB of binary.
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(spaced.len());
    let (unit, rest) = spaced.split_at(letters);
    let unit_ms = match unit_ms(unit) {
        Some(_) if unit.is_empty() && !rest.is_empty() => {
            return Err(DurationError::Unit(text.to_string(), spaced.to_string()))
        }
        Some(_) if !rest.is_empty() => {
            return Err(DurationError::AfterUnit {
                text: text.to_string(),
                rest: rest.to_string(),
            })
        }
        Some(_) if spaced.len() != after.len() => {
            return Err(DurationError::Space {
                text: text.to_string(),
                written: format!("{number}{unit}"),
            })
        }
        Some(ms) => ms,
        None => return Err(DurationError::Unit(text.to_string(), spaced.to_string())),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
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
        assert!(matches!(parse("ten"), Err(DurationError::NoNumber(..))));
        assert!(matches!(parse("-1s"), Err(DurationError::Negative(..))));
        assert!(matches!(parse("1.2.3s"), Err(DurationError::TwoPoints(..))));
        assert!(matches!(parse("."), Err(DurationError::NoNumber(..))));
        assert!(matches!(parse("5d"), Err(DurationError::Unit(..))));
        assert!(matches!(parse("9000h"), Err(DurationError::TooLong(..))));
        assert!(matches!(
            parse("99999999999999999999999999999999999999999s"),
            Err(DurationError::TooLong(..))
        ));
    }

    /// Each odd form is refused with a message that says what is wrong
    /// with it, never "unknown unit" for what is not a unit.
    #[test]
    fn each_refusal_says_what_is_wrong() {
        const EX: &str = "(examples: 500ms, 10s, 5m, 1h)";
        for (text, message) in [
            ("-1", format!("'-1': a duration cannot be negative {EX}")),
            ("-5s", format!("'-5s': a duration cannot be negative {EX}")),
            (" -.5m", format!("' -.5m': a duration cannot be negative {EX}")),
            ("+5s", "'+5s': no '+' sign before a duration (write 5s)".into()),
            (
                "xyz",
                format!("'xyz': not a duration: it does not start with a number {EX}"),
            ),
            (
                "s",
                format!("'s': not a duration: it does not start with a number {EX}"),
            ),
            (
                "forever",
                format!("'forever': only --wait (UPDLOCK_WAIT) can be forever; give a duration {EX}"),
            ),
            ("1.2.3s", "'1.2.3s': more than one decimal point".into()),
            (
                "1,5s",
                "'1,5s': a fraction takes a decimal point, not a comma (write 1.5s)".into(),
            ),
            (
                "5 s",
                "'5 s': no space between the number and its unit (write 5s)".into(),
            ),
            (
                "1 fortnight",
                "'1 fortnight': unknown unit 'fortnight' (use ms, s, m or h)".into(),
            ),
            ("5x", "'5x': unknown unit 'x' (use ms, s, m or h)".into()),
            ("1/2", "'1/2': unknown unit '/2' (use ms, s, m or h)".into()),
            (
                "1s2",
                "'1s2': '2' after the unit: a duration is one number and one unit (90m, not 1h30m)"
                    .into(),
            ),
            (
                "1h30m",
                "'1h30m': '30m' after the unit: a duration is one number and one unit (90m, not 1h30m)"
                    .into(),
            ),
        ] {
            assert_eq!(
                parse(text).map_err(|e| e.to_string()),
                Err(message),
                "{text:?}"
            );
        }
        // A decimal fraction is fine.
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn wait_values() {
        assert_eq!(Wait::parse("forever"), Ok(Wait::Forever));
        assert!(Wait::parse("0").unwrap().is_zero());
        assert_eq!(Wait::parse("3s"), Ok(Wait::For(Duration::from_secs(3))));
        assert!(Wait::parse("soon").is_err());
    }
}
