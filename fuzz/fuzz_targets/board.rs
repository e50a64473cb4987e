//! Board profiles (`board::Board::parse`).
//!
//! Properties: any text is a board or an error; a line's error carries the
//! number of a real, non-blank, non-comment line, and the profile cut just
//! before that line has no line error (the first bad line is the one
//! named); every message starts with the origin; a board has pins 1 to its
//! last (at most `MAX_PIN`), a chip label, no offset or name twice, and
//! `Board::line` agrees with its pins; a board written back as a profile
//! (with comments and blank lines) reads as the same board. The built-in
//! profiles (`board/*.board`) are the seed corpus.
#![no_main]

use std::collections::BTreeSet;
use std::fmt::Write;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use updlock::board::{Board, BoardError, HeaderPin, Problem, MAX_PIN};

const ORIGIN: &str = "fuzz.board";

fn content(raw: &str) -> &str {
    raw.split_once('#').map_or(raw, |(before, _)| before).trim()
}

/// A board as a profile, with a comment and a blank line between lines.
fn write_profile(b: &Board, noise: bool) -> String {
    let mut t = String::new();
    let sep = if noise { "  # noise = 1\n\n" } else { "\n" };
    write!(t, "id = {}{sep}model = {}{sep}", b.id(), b.model()).unwrap();
    for label in b.chip_labels() {
        write!(t, "chip={label}{sep}").unwrap();
    }
    // Pins in reverse order: the order of lines does not matter.
    for (pin, p) in b.pins().iter().rev() {
        match p {
            HeaderPin::Ground => write!(t, "pin {pin} = ground{sep}"),
            HeaderPin::Power(label) => write!(t, "pin {pin} = power {label}{sep}"),
            HeaderPin::Line { offset, name: None } => write!(t, "pin\t{pin} = {offset}{sep}"),
            HeaderPin::Line {
                offset,
                name: Some(n),
            } => {
                write!(t, " pin {pin}={offset}   {n}{sep}")
            }
        }
        .unwrap();
    }
    t
}

fn check_board(b: &Board) {
    let last = b.last_pin();
    assert!((1..=MAX_PIN).contains(&last), "{b:?}");
    assert!(b.pins().keys().copied().eq(1..=last), "{b:?}");
    assert!(!b.chip_labels().is_empty() && !b.id().is_empty() && !b.model().is_empty());
    let (mut offsets, mut names) = (BTreeSet::new(), BTreeSet::new());
    for (&pin, p) in b.pins() {
        match (p, b.line(pin)) {
            (HeaderPin::Line { offset, name }, Ok((o, n))) => {
                assert_eq!((*offset, name.as_deref()), (o, n));
                assert!(offsets.insert(o), "offset {o} twice in {b:?}");
                if let Some(n) = n {
                    assert!(names.insert(n.to_string()), "name {n} twice in {b:?}");
                }
            }
            (HeaderPin::Power(_), Err(BoardError::Power { .. }))
            | (HeaderPin::Ground, Err(BoardError::Ground { .. })) => {}
            (p, got) => panic!("pin {pin} is {p:?} but line() says {got:?}"),
        }
    }
    for pin in [0, last + 1, u32::MAX] {
        assert!(
            matches!(b.line(pin), Err(BoardError::NoSuchPin { .. })),
            "{pin}"
        );
    }
    for noise in [false, true] {
        let text = write_profile(b, noise);
        assert_eq!(Board::parse(ORIGIN, &text).as_ref(), Ok(b), "{text}");
    }
}

fn check_text(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    match Board::parse(ORIGIN, text) {
        Ok(b) => check_board(&b),
        Err(e) => {
            let msg = e.to_string();
            match &e {
                BoardError::Syntax { origin, line, .. } => {
                    assert_eq!(origin, ORIGIN);
                    assert!(
                        (1..=lines.len()).contains(line),
                        "{e:?} of {} lines",
                        lines.len()
                    );
                    assert!(!content(lines[line - 1]).is_empty(), "{e:?}");
                    assert!(msg.starts_with(&format!("{ORIGIN}:{line}: ")), "{msg}");
                    let before = lines[..line - 1].join("\n");
                    let earlier = Board::parse(ORIGIN, &before);
                    assert!(
                        !matches!(earlier, Err(BoardError::Syntax { .. })),
                        "{earlier:?}"
                    );
                }
                BoardError::Missing { .. } | BoardError::NoPins { .. } => {
                    assert!(msg.starts_with(&format!("{ORIGIN}: ")), "{msg}")
                }
                BoardError::Gap { pin, last, .. } => {
                    assert!(msg.starts_with(&format!("{ORIGIN}: ")), "{msg}");
                    assert!(*pin >= 1 && pin < last && *last <= MAX_PIN, "{e:?}");
                }
                other => panic!("parse gave {other:?}"),
            }
            assert!(!msg.contains('\n'), "{msg:?}");
        }
    }
}

/// A valid board, picked by the input.
fn arbitrary_board(u: &mut Unstructured) -> libfuzzer_sys::arbitrary::Result<String> {
    let word = |u: &mut Unstructured, alphabet: &[u8], max: usize| {
        let n = u.int_in_range(1..=max)?;
        (0..n)
            .map(|_| u.choose(alphabet).map(|&b| b as char))
            .collect::<libfuzzer_sys::arbitrary::Result<String>>()
    };
    let graphic: Vec<u8> = (b'!'..=b'~').filter(|&b| b != b'#').collect();
    let id_chars = b"abcz09-_.";
    let mut t = format!(
        "id = {}\nmodel = M{}\n",
        word(u, id_chars, 8)?,
        word(u, b"Pi 4 =", 12)?
    );
    for _ in 0..u.int_in_range(1..=3)? {
        t += &format!("chip = {}\n", word(u, &graphic, 12)?);
    }
    let last = u.int_in_range(1..=MAX_PIN)?;
    for pin in 1..=last {
        match u.int_in_range(0..=3)? {
            0 => t += &format!("pin {pin} = ground\n"),
            1 => t += &format!("pin {pin} = power {}\n", word(u, &graphic, 4)?),
            2 => {
                t += &format!(
                    "pin {pin} = {}\n",
                    u32::from(u8::arbitrary(u)?) * 1000 + pin
                )
            }
            _ => t += &format!("pin {pin} = {} N{pin}{}\n", 100 + pin, word(u, b"xy", 3)?),
        }
    }
    Ok(t)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    let mut u = Unstructured::new(data);
    if let Ok(text) = arbitrary_board(&mut u) {
        // Offsets and names are made distinct, so the whole profile is valid,
        // except that random chip labels may repeat.
        match Board::parse(ORIGIN, &text) {
            Ok(b) => check_board(&b),
            Err(BoardError::Syntax {
                problem: Problem::RepeatedChip(_),
                ..
            }) => {}
            Err(e) => panic!("{e}\n{text}"),
        }
        check_text(&text);
    }
});
