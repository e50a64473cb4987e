//! `--gpio`/`--input` values (`linespec::parse`).
//!
//! Properties: any text is a line spec or an error; a spec is written back
//! (`Display`) as text that parses to the same spec; a name is at most
//! `MAX_NAME_LEN` bytes with no white space and not a bare number;
//! `FromStr` is `parse`; a text with a control character is refused as
//! such, and no message has one; well-formed `CHIP:OFFSET` and `file:PATH`
//! texts read as what they say.
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use updlock::linespec::{self, ChipRef, LineSpec, LineSpecError, MAX_NAME_LEN};

fn check_text(text: &str) {
    let got = linespec::parse(text);
    assert_eq!(text.parse::<LineSpec>(), got);
    match &got {
        Ok(spec) => {
            let written = spec.to_string();
            assert_eq!(
                linespec::parse(&written).as_ref(),
                Ok(spec),
                "{text:?} -> {written:?}"
            );
            match spec {
                LineSpec::Name(n) => {
                    assert_eq!(n, text);
                    assert!(n.len() <= MAX_NAME_LEN, "{text:?}");
                    assert!(!n.chars().any(char::is_whitespace), "{text:?}");
                    assert!(!n.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
                }
                LineSpec::File(p) => assert!(!p.as_os_str().is_empty(), "{text:?}"),
                LineSpec::Chip { chip, .. } => {
                    let c = chip.to_string();
                    assert!(!c.is_empty() && c.trim() == c, "{text:?}");
                    assert_eq!(
                        matches!(chip, ChipRef::Path(_)),
                        c.starts_with('/'),
                        "{text:?}"
                    );
                }
            }
        }
        Err(e) => {
            let m = e.to_string();
            assert!(!m.is_empty());
            assert!(!m.chars().any(char::is_control), "{text:?}: {m:?}");
        }
    }
    let control = !text.trim().is_empty() && text.chars().any(char::is_control);
    assert_eq!(
        control,
        matches!(got, Err(LineSpecError::ControlChar(_))),
        "{text:?}: {got:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    let mut u = Unstructured::new(data);
    let (Ok(chip), Ok(offset)) = (String::arbitrary(&mut u), u32::arbitrary(&mut u)) else {
        return;
    };
    check_text(&chip);
    // CHIP:OFFSET with a chip that is neither empty, padded, relative nor
    // a `file:` prefix reads as that chip and offset.
    let text = format!("{chip}:{offset}");
    check_text(&text);
    let control = chip.chars().any(char::is_control);
    let plain = !chip.is_empty()
        && !control
        && chip.trim() == chip
        && (chip.starts_with('/') || !chip.contains('/'))
        && !text.starts_with("file:");
    if plain {
        match linespec::parse(&text) {
            Ok(LineSpec::Chip { chip: c, offset: o }) => {
                assert_eq!((c.to_string(), o), (chip.clone(), offset), "{text:?}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    if !chip.is_empty() {
        let text = format!("file:{chip}");
        let want = if control {
            Err(LineSpecError::ControlChar(text.clone()))
        } else {
            Ok(LineSpec::File(chip.into()))
        };
        assert_eq!(linespec::parse(&text), want, "{text:?}");
    }
});
