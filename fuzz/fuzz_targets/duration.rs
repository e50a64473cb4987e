//! Durations (`duration::parse`) and `--wait` values (`Wait::parse`).
//!
//! Properties: any text is a duration of at most a year in whole
//! microseconds, or an error quoting the text; `Wait::parse` is
//! `duration::parse` of the trimmed text unless it says forever; a duration
//! written in any of the forms the README gives (`1.5s`, `500ms`, `5m`,
//! `1h`, a bare number) reads back exactly, and one over a year is refused.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use updlock::duration::{self, DurationError, Wait};

const YEAR_US: u64 = 365 * 24 * 3600 * 1_000_000;

fn check_text(text: &str) {
    match duration::parse(text) {
        Ok(d) => {
            assert!(d <= Duration::from_micros(YEAR_US), "{text:?}: {d:?}");
            assert_eq!(d.subsec_nanos() % 1000, 0, "{text:?}: {d:?}");
        }
        Err(DurationError::Empty) => assert!(text.trim().is_empty(), "{text:?}"),
        Err(e) => {
            assert!(!text.trim().is_empty(), "{text:?}");
            assert!(
                e.to_string().contains(&format!("'{text}'")),
                "{text:?}: {e}"
            );
        }
    }
    let wait = Wait::parse(text);
    match text.trim() {
        "forever" | "inf" | "infinity" => assert_eq!(wait, Ok(Wait::Forever)),
        t => assert_eq!(wait, duration::parse(t).map(Wait::For), "{text:?}"),
    }
}

fn check_written(us: u64, ws: &str) {
    let d = Duration::from_micros(us);
    let want = if us <= YEAR_US { Ok(d) } else { Err(()) };
    let read = |s: String| {
        let got = duration::parse(&s);
        if want.is_err() {
            assert!(
                matches!(got, Err(DurationError::TooLong(_))),
                "{s:?}: {got:?}"
            );
        } else {
            assert_eq!(got, Ok(d), "{s:?}");
            assert_eq!(Wait::parse(&s), Ok(Wait::For(d)), "{s:?}");
        }
    };
    let (secs, frac) = (us / 1_000_000, us % 1_000_000);
    read(format!("{ws}{secs}.{frac:06}s{ws}"));
    read(format!("{secs}.{frac:06}"));
    if us.is_multiple_of(1000) {
        read(format!("{}ms", us / 1000));
    }
    if frac == 0 {
        read(format!("{secs}"));
        read(format!("{secs}s"));
        if secs % 60 == 0 {
            read(format!("{}m", secs / 60));
            read(format!("{}min", secs / 60));
        }
        if secs % 3600 == 0 {
            read(format!("{}h", secs / 3600));
        }
    }
    // A leading zero and a fraction with trailing zeros change nothing.
    if want.is_ok() {
        read(format!("0{secs}.{frac:06}000s"));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    let mut u = Unstructured::new(data);
    let (Ok(us), Ok(pick), Ok(space)) = (
        u64::arbitrary(&mut u),
        u8::arbitrary(&mut u),
        bool::arbitrary(&mut u),
    ) else {
        return;
    };
    // Mostly durations a user could mean, sometimes just over a year.
    let us = match pick % 4 {
        0 => us,
        1 => us % (YEAR_US + 1),
        2 => us % (YEAR_US + 1) / 1_000_000 * 1_000_000,
        _ => YEAR_US + us % 2_000_000,
    };
    check_written(us, if space { " " } else { "" });
});
