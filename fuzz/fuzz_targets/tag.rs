//! The lock tag reader (`tag::Tag::parse`) and the tag writer.
//!
//! Properties: any bytes parse to nothing or to a tag whose fields are
//! tokens and whose rendering parses back to it; only the first
//! `tag::MAX_LEN` bytes matter; a tag written from token fields parses back
//! to the same fields; `rfc3339_utc` gives a real calendar date that maps
//! back to the same second.
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use updlock::tag::{self, Tag};

/// What the reader accepts as a field value (tag.rs's `is_token`).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'=')
}

/// Days since 1970-01-01 of a proleptic Gregorian date: the inverse of the
/// writer's date, by another route (Hinnant's days_from_civil).
fn days_from_civil(y: u128, m: u128, d: u128) -> u128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: u128, m: u128) -> u128 {
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn check_date(secs: u64) {
    let s = tag::rfc3339_utc(secs);
    assert!(is_token(&s), "{secs}: {s:?} is not a token");
    // YYYY...-MM-DDTHH:MM:SSZ: the year may be longer than 4 digits.
    let (date, time) = s.split_once('T').expect("a 'T'");
    let mut parts = date.rsplitn(3, '-');
    let (d, m, y) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert!(y.len() >= 4 && m.len() == 2 && d.len() == 2, "{s}");
    let num = |t: &str| -> u128 { t.parse().unwrap_or_else(|_| panic!("{s}: {t:?}")) };
    let (y, m, d) = (num(y), num(m), num(d));
    assert!(
        (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m),
        "{s}"
    );
    let time = time.strip_suffix('Z').expect("a 'Z'");
    let hms: Vec<u128> = time.split(':').map(num).collect();
    assert!(
        hms.len() == 3 && hms[0] < 24 && hms[1] < 60 && hms[2] < 60,
        "{s}"
    );
    let back = days_from_civil(y, m, d) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    assert_eq!(back, u128::from(secs), "{s}");
}

fuzz_target!(|data: &[u8]| {
    // Any bytes, as the start of a file found at a lock path.
    if let Some(t) = Tag::parse(data) {
        assert!(t.pid > 0, "{t:?}");
        assert!(is_token(&t.boot) && is_token(&t.since), "{t:?}");
        assert_eq!(Tag::parse(t.render().as_bytes()).as_ref(), Some(&t));
    }
    if data.len() > tag::MAX_LEN {
        assert_eq!(Tag::parse(data), Tag::parse(&data[..tag::MAX_LEN]));
    }

    // A tag as the writer writes it, from fields picked by the input.
    let mut u = Unstructured::new(data);
    let (Ok(pid), Ok(boot), Ok(since), Ok(secs)) = (
        u32::arbitrary(&mut u),
        String::arbitrary(&mut u),
        String::arbitrary(&mut u),
        u64::arbitrary(&mut u),
    ) else {
        return;
    };
    let t = Tag { pid, boot, since };
    let back = Tag::parse(t.render().as_bytes());
    if pid > 0 && is_token(&t.boot) && is_token(&t.since) {
        assert_eq!(back.as_ref(), Some(&t));
    } else if let Some(b) = back {
        // Fields that are not tokens can only make a tag of other fields.
        assert!(
            b.pid > 0 && is_token(&b.boot) && is_token(&b.since),
            "{b:?}"
        );
        assert_ne!(b, t);
    }
    check_date(secs);
    // The writer's own dates are tokens that round-trip in a tag.
    let t = Tag {
        pid: pid.max(1),
        boot: "unknown".into(),
        since: tag::rfc3339_utc(secs),
    };
    assert_eq!(Tag::parse(t.render().as_bytes()), Some(t));
});
