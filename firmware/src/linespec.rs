//! `--gpio` and `--input` values: which GPIO line the user means.
//!
//! Only the text is read here; finding the line on the machine's chips is
//! the job of the `gpio` module. Three forms, because no single one is right
//! everywhere:
//!
//! ```text
//! GPIO17                  a line name, looked up on every chip
//! pinctrl-bcm2835:17      CHIP:OFFSET, the chip by its label,
//! gpiochip0:17              by its device name,
//! /dev/gpiochip0:17         or by its path
//! file:/tmp/actuator      a file standing in for a line (tests, dry runs)
//! ```
//!
//! Caveats stated plainly:
//! - Prefer a name or a chip label to a chip number: the Raspberry Pi 5's
//!   header chip was `gpiochip4` on early kernels and `gpiochip0` later, and
//!   a number that silently names another chip drives the wrong line.
//! - `CHIP:OFFSET` is split at the *last* `:`, so a label or a path may
//!   itself contain colons; a line name cannot, and is never a bare number.
//! - A `file:` prefix always means a file, even if some chip were labelled
//!   `file`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The longest line name the kernel reports: its uAPI keeps names in
/// 32-byte buffers with the terminating NUL, so a longer name can never match.
pub const MAX_NAME_LEN: usize = 31;

/// A line as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineSpec {
    /// `GPIO17`: a line name, which must be unique across all chips.
    Name(String),
    /// `CHIP:OFFSET`: a line offset on one chip.
    Chip {
        /// The chip.
        chip: ChipRef,
        /// The line's offset on that chip.
        offset: u32,
    },
    /// `file:PATH`: a file standing in for a line.
    File(PathBuf),
}

/// How a `CHIP:OFFSET` names its chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChipRef {
    /// An absolute path: `/dev/gpiochip0`, or a udev symlink to a chip.
    Path(PathBuf),
    /// A device name, `gpiochip<N>`, meaning `/dev/gpiochip<N>`.
    Device(String),
    /// A chip label, as `gpiodetect` shows it in brackets: `pinctrl-bcm2835`.
    Label(String),
}

/// Why a `--gpio`/`--input` value names no line. Each message quotes the
/// text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineSpecError {
    /// The value is empty or only white space.
    #[error("no line given: name one as GPIO17, as CHIP:OFFSET (pinctrl-bcm2835:17, gpiochip0:17, /dev/gpiochip0:17) or as file:PATH")]
    Empty,
    /// `file:` with nothing after it.
    #[error("'{0}': no path after 'file:'")]
    NoFilePath(String),
    /// `CHIP:` with nothing after the last colon.
    #[error("'{0}': no line offset after the last ':'")]
    NoOffset(String),
    /// The part after the last colon is not a decimal `u32`.
    #[error("'{text}': line offset '{offset}' is not a decimal number from 0 to {max}", max = u32::MAX)]
    BadOffset {
        /// The whole value.
        text: String,
        /// The part after the last colon.
        offset: String,
    },
    /// `:17`: nothing before the colon.
    #[error("'{0}': no chip before the ':'")]
    NoChip(String),
    /// The chip part has white space at either end.
    #[error("'{0}': white space around the chip name")]
    SpaceAroundChip(String),
    /// The chip part contains `/` but does not start with it.
    #[error("'{0}': a chip path must be absolute, as in /dev/gpiochip0:17")]
    RelativeChipPath(String),
    /// A chip alone, without `:OFFSET`.
    #[error("'{0}' is a chip, not a line: add ':OFFSET', as in {0}:17")]
    ChipWithoutOffset(String),
    /// A bare number, probably meant as a BCM GPIO number.
    #[error("'{0}' is a bare number: name the line (GPIO{0}) or give CHIP:OFFSET (gpiochip0:{0})")]
    BareNumber(String),
    /// A control character (a newline, a tab, an escape) anywhere: no line,
    /// chip or stand-in file is named with one, and every message that
    /// quoted it later would break its line or drive the terminal. Shown
    /// escaped.
    #[error("'{}': a line is never named with a control character (a newline, a tab, an escape)", escaped(.0))]
    ControlChar(String),
    /// A line name with white space in it.
    #[error("'{0}': a line name has no white space in it")]
    SpaceInName(String),
    /// A line name longer than the kernel keeps.
    #[error("'{0}': longer than any line name can be ({MAX_NAME_LEN} bytes)")]
    NameTooLong(String),
}

/// `text` with its control characters escaped, as `\n` or `\u{1b}`: for
/// messages that quote what a user or another process wrote. The same
/// text as `char::escape_debug` gives them, without the Unicode tables it
/// brings into the binary (several KiB).
pub fn escaped(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads a `--gpio`/`--input` value.
pub fn parse(text: &str) -> Result<LineSpec, LineSpecError> {
    if text.trim().is_empty() {
        return Err(LineSpecError::Empty);
    }
    if text.chars().any(char::is_control) {
        return Err(LineSpecError::ControlChar(text.to_string()));
    }
    if let Some(path) = text.strip_prefix("file:") {
        if path.is_empty() {
            return Err(LineSpecError::NoFilePath(text.to_string()));
        }
        return Ok(LineSpec::File(PathBuf::from(path)));
    }
    match text.rsplit_once(':') {
        Some((chip, offset)) => Ok(LineSpec::Chip {
            chip: chip_ref(text, chip)?,
            offset: line_offset(text, offset)?,
        }),
        None => line_name(text).map(LineSpec::Name),
    }
}

fn chip_ref(text: &str, chip: &str) -> Result<ChipRef, LineSpecError> {
    if chip.is_empty() {
        return Err(LineSpecError::NoChip(text.to_string()));
    }
    if chip.trim() != chip {
        return Err(LineSpecError::SpaceAroundChip(text.to_string()));
    }
    if chip.starts_with('/') {
        return Ok(ChipRef::Path(PathBuf::from(chip)));
    }
    // A relative path would be looked up as a label and fail later with a
    // confusing "no such chip"; say what is wrong now.
    if chip.contains('/') {
        return Err(LineSpecError::RelativeChipPath(text.to_string()));
    }
    if is_device_name(chip) {
        return Ok(ChipRef::Device(chip.to_string()));
    }
    Ok(ChipRef::Label(chip.to_string()))
}

fn line_offset(text: &str, offset: &str) -> Result<u32, LineSpecError> {
    if offset.is_empty() {
        return Err(LineSpecError::NoOffset(text.to_string()));
    }
    decimal(offset).ok_or_else(|| LineSpecError::BadOffset {
        text: text.to_string(),
        offset: offset.to_string(),
    })
}

fn line_name(text: &str) -> Result<String, LineSpecError> {
    if text.chars().any(char::is_whitespace) {
        return Err(LineSpecError::SpaceInName(text.to_string()));
    }
    // Each of these would otherwise become a name lookup that finds nothing,
    // with a message that hides the real mistake.
    if text.starts_with('/') || is_device_name(text) {
        return Err(LineSpecError::ChipWithoutOffset(text.to_string()));
    }
    // Digits only, whatever their value: one too large for a u32 is a
    // mistyped number all the same, never a name.
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineSpecError::BareNumber(text.to_string()));
    }
    if text.len() > MAX_NAME_LEN {
        return Err(LineSpecError::NameTooLong(text.to_string()));
    }
    Ok(text.to_string())
}

/// `gpiochip` followed by digits only.
fn is_device_name(s: &str) -> bool {
    s.strip_prefix("gpiochip")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A decimal `u32` written with digits only. `str::parse` also takes a
/// leading `+`, which no offset or pin number is written with.
pub(crate) fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for LineSpec {
    type Err = LineSpecError;

    fn from_str(s: &str) -> Result<LineSpec, LineSpecError> {
        parse(s)
    }
}

impl fmt::Display for ChipRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChipRef::Path(path) => write!(f, "{}", path.display()),
            ChipRef::Device(name) | ChipRef::Label(name) => f.write_str(name),
        }
    }
}

/// Written back the way a user writes it, so `parse` reads it again.
impl fmt::Display for LineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineSpec::Name(name) => f.write_str(name),
            LineSpec::Chip { chip, offset } => write!(f, "{chip}:{offset}"),
            LineSpec::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_matches_escape_debug_for_every_control_character() {
        for c in (0u32..0x100).filter_map(char::from_u32) {
            let want = if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            };
            assert_eq!(escaped(&c.to_string()), want, "U+{:04X}", u32::from(c));
        }
        assert_eq!(escaped("GPIO\u{1b}[2J17\n"), "GPIO\\u{1b}[2J17\\n");
    }

    fn chip(chip: ChipRef, offset: u32) -> LineSpec {
        LineSpec::Chip { chip, offset }
    }

    #[test]
    fn names() {
        assert_eq!(parse("GPIO17"), Ok(LineSpec::Name("GPIO17".into())));
        assert_eq!(parse("SPI_CE0_N"), Ok(LineSpec::Name("SPI_CE0_N".into())));
        // Not a device name: the digits are missing.
        assert_eq!(parse("gpiochip"), Ok(LineSpec::Name("gpiochip".into())));
        let longest = "N".repeat(MAX_NAME_LEN);
        assert_eq!(parse(&longest), Ok(LineSpec::Name(longest.clone())));
    }

    #[test]
    fn chip_paths() {
        assert_eq!(
            parse("/dev/gpiochip0:17"),
            Ok(chip(ChipRef::Path("/dev/gpiochip0".into()), 17))
        );
        // Split at the last colon: a path may contain colons.
        assert_eq!(
            parse("/dev/gpio/by-path/platform-3f200000.gpio:x:3"),
            Ok(chip(
                ChipRef::Path("/dev/gpio/by-path/platform-3f200000.gpio:x".into()),
                3
            ))
        );
    }

    #[test]
    fn chip_devices() {
        assert_eq!(
            parse("gpiochip0:17"),
            Ok(chip(ChipRef::Device("gpiochip0".into()), 17))
        );
        assert_eq!(
            parse("gpiochip12:0"),
            Ok(chip(ChipRef::Device("gpiochip12".into()), 0))
        );
    }

    #[test]
    fn chip_labels() {
        assert_eq!(
            parse("pinctrl-bcm2835:17"),
            Ok(chip(ChipRef::Label("pinctrl-bcm2835".into()), 17))
        );
        assert_eq!(
            parse("9030000.pl061:7"),
            Ok(chip(ChipRef::Label("9030000.pl061".into()), 7))
        );
        // Neither a device name (letters after the digits) nor a path.
        assert_eq!(
            parse("gpiochip0x:1"),
            Ok(chip(ChipRef::Label("gpiochip0x".into()), 1))
        );
        assert_eq!(parse("a:b:2"), Ok(chip(ChipRef::Label("a:b".into()), 2)));
        assert_eq!(
            parse("pinctrl-rp1:4294967295"),
            Ok(chip(ChipRef::Label("pinctrl-rp1".into()), u32::MAX))
        );
    }

    #[test]
    fn files() {
        assert_eq!(
            parse("file:/tmp/line"),
            Ok(LineSpec::File("/tmp/line".into()))
        );
        // The prefix wins over the colon rule, and the path is taken as is.
        assert_eq!(
            parse("file:/tmp/a:3"),
            Ok(LineSpec::File("/tmp/a:3".into()))
        );
        assert_eq!(parse("file:my line"), Ok(LineSpec::File("my line".into())));
    }

    #[test]
    fn errors() {
        use LineSpecError::*;
        let cases: &[(&str, LineSpecError)] = &[
            ("", Empty),
            ("  ", Empty),
            ("file:", NoFilePath("file:".into())),
            ("gpiochip0:", NoOffset("gpiochip0:".into())),
            (
                "gpiochip0:x",
                BadOffset {
                    text: "gpiochip0:x".into(),
                    offset: "x".into(),
                },
            ),
            (
                "gpiochip0:+17",
                BadOffset {
                    text: "gpiochip0:+17".into(),
                    offset: "+17".into(),
                },
            ),
            (
                "gpiochip0:-1",
                BadOffset {
                    text: "gpiochip0:-1".into(),
                    offset: "-1".into(),
                },
            ),
            (
                "gpiochip0: 17",
                BadOffset {
                    text: "gpiochip0: 17".into(),
                    offset: " 17".into(),
                },
            ),
            (
                "gpiochip0:4294967296",
                BadOffset {
                    text: "gpiochip0:4294967296".into(),
                    offset: "4294967296".into(),
                },
            ),
            (":17", NoChip(":17".into())),
            (" gpiochip0:17", SpaceAroundChip(" gpiochip0:17".into())),
            ("pinctrl-rp1 :17", SpaceAroundChip("pinctrl-rp1 :17".into())),
            (
                "dev/gpiochip0:17",
                RelativeChipPath("dev/gpiochip0:17".into()),
            ),
            ("./chip:1", RelativeChipPath("./chip:1".into())),
            ("gpiochip0", ChipWithoutOffset("gpiochip0".into())),
            ("/dev/gpiochip0", ChipWithoutOffset("/dev/gpiochip0".into())),
            ("17", BareNumber("17".into())),
            ("GPIO 17", SpaceInName("GPIO 17".into())),
            ("GPIO17\n", ControlChar("GPIO17\n".into())),
            ("GPIO\x1b17", ControlChar("GPIO\x1b17".into())),
            ("chip\x07:1", ControlChar("chip\x07:1".into())),
            ("file:/tmp/a\nb", ControlChar("file:/tmp/a\nb".into())),
            (
                &"N".repeat(MAX_NAME_LEN + 1),
                NameTooLong("N".repeat(MAX_NAME_LEN + 1)),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Err(want), "{text:?}");
        }
    }

    /// Found by `fuzz/fuzz_targets/linespec.rs`: a number too large for a
    /// `u32` was taken as a line name.
    #[test]
    fn a_bare_number_of_any_size_is_not_a_name() {
        for text in ["4294967296", "575577575577", "99999999999999999999999"] {
            assert_eq!(parse(text), Err(LineSpecError::BareNumber(text.into())));
        }
    }

    #[test]
    fn messages_quote_the_text() {
        let e = parse("gpiochip0:x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'gpiochip0:x': line offset 'x' is not a decimal number from 0 to 4294967295"
        );
        let e = parse("gpiochip4").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'gpiochip4' is a chip, not a line: add ':OFFSET', as in gpiochip4:17"
        );
        let e = parse("17").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'17' is a bare number: name the line (GPIO17) or give CHIP:OFFSET (gpiochip0:17)"
        );
        // A control character is shown escaped.
        let e = parse("file:/tmp/a\nb\x1b[2J").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'file:/tmp/a\\nb\\u{1b}[2J': a line is never named with a control character (a newline, a tab, an escape)"
        );
        // Every message is one line, without control characters.
        for text in [
            "", "file:", "x:", ":1", "a b", "/x", "dev/x:1", " x:1", "a\nb", "x\r:1", "\t",
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
    }

    #[test]
    fn display_reads_back() {
        let texts = [
            "GPIO17",
            "gpiochip0:17",
            "/dev/gpiochip4:17",
            "pinctrl-bcm2835:17",
            "9030000.pl061:0",
            "a:b:2",
            "file:/tmp/line",
            "file:/tmp/a:3",
        ];
        for text in texts {
            let spec = parse(text).unwrap();
            assert_eq!(spec.to_string(), text);
            assert_eq!(parse(&spec.to_string()), Ok(spec));
        }
        assert_eq!(
            ChipRef::Path("/dev/gpiochip0".into()).to_string(),
            "/dev/gpiochip0"
        );
    }

    #[test]
    fn from_str_is_parse() {
        assert_eq!("GPIO5".parse::<LineSpec>(), parse("GPIO5"));
        assert_eq!("x:".parse::<LineSpec>(), parse("x:"));
    }

    #[test]
    fn decimal_is_digits_only() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("017"), Some(17));
        assert_eq!(decimal("4294967295"), Some(u32::MAX));
        for bad in ["", "+1", "-1", " 1", "1 ", "1x", "4294967296", "١"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}
