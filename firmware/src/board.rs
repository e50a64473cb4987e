//! Board profiles: which GPIO line each physical header pin is.
//!
//! `--board rpi4b --pin 11` is easier to get right from a wiring diagram than
//! `pinctrl-bcm2711:17`, and it stays right when a kernel renumbers chips. A
//! profile is a small text file, `board/<id>.board`, that gives every header
//! pin a line offset on a chip named by its label, or says it is power or
//! ground. The format is described in `board/README.md`:
//!
//! ```text
//! id    = rpi4b
//! model = Raspberry Pi 4 Model B
//! chip  = pinctrl-bcm2711
//! pin 1  = power 3V3
//! pin 6  = ground
//! pin 11 = 17 GPIO17
//! ```
//!
//! The shipped profiles are compiled into the binary, which goes onto devices
//! as one static file with no data files beside it; any other board is a
//! profile file named by a path.
//!
//! Caveats stated plainly:
//! - A pin is found by chip label and line offset. Line names are kept for
//!   people and messages only: mainline and Raspberry Pi kernels name the same
//!   header lines differently (`SDA1` or `GPIO2`).
//! - Parsing is strict: a profile decides which wire updlock drives, and a
//!   typo that quietly moved the actuator to another pin would be far worse
//!   than an error. Every pin from 1 to the highest must be described, each
//!   once, and no line offset or line name may appear twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::linespec::{decimal, MAX_NAME_LEN};

/// The highest header pin number a profile may use. The boards here have at
/// most 40 pins; a larger number is far likelier a typo than a board.
pub const MAX_PIN: u32 = 40;

/// Profile files longer than this are refused: a profile is a few kilobytes,
/// and a wrong path to a device node or a huge file must fail, not fill memory.
pub const MAX_FILE_LEN: u64 = 64 * 1024;

/// The built-in profiles, in the order `updlock help boards` lists them.
static BUILTIN: [(&str, &str); 6] = [
    ("rpi3b", include_str!("../../board/rpi3b.board")),
    ("rpi4b", include_str!("../../board/rpi4b.board")),
    ("rpi5", include_str!("../../board/rpi5.board")),
    ("rpizero2w", include_str!("../../board/rpizero2w.board")),
    ("qemu-virt", include_str!("../../board/qemu-virt.board")),
    (
        "qemu-raspi3b",
        include_str!("../../board/qemu-raspi3b.board"),
    ),
];

/// The ids of [`BUILTIN`], kept as their own list so it can be lent out as a
/// slice; a test checks the two agree.
static IDS: [&str; 6] = [
    "rpi3b",
    "rpi4b",
    "rpi5",
    "rpizero2w",
    "qemu-virt",
    "qemu-raspi3b",
];

/// A board's header, as its profile describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    id: String,
    model: String,
    chip_labels: Vec<String>,
    pins: BTreeMap<u32, HeaderPin>,
}

/// What one physical header pin is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPin {
    /// A GPIO line on the board's header chip.
    Line {
        /// The line's offset on the chip.
        offset: u32,
        /// The line's name, for messages; `None` on chips without names.
        name: Option<String>,
    },
    /// A supply pin, with its label (`3V3`, `5V`).
    Power(String),
    /// A ground pin.
    Ground,
}

/// Why a profile could not be read, or a pin is not a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// A line of a profile is wrong. `origin` is the file path, or the id of
    /// a built-in profile.
    #[error("{origin}:{line}: {problem}")]
    Syntax {
        /// Where the profile came from.
        origin: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with that line.
        problem: Problem,
    },
    /// A profile lacks its `id`, `model` or `chip` line.
    #[error("{origin}: no '{key} =' line (a profile gives its id, model and chip)")]
    Missing {
        /// Where the profile came from.
        origin: String,
        /// The missing key.
        key: &'static str,
    },
    /// A profile describes no pins.
    #[error("{origin}: no 'pin N =' lines")]
    NoPins {
        /// Where the profile came from.
        origin: String,
    },
    /// A pin below the highest one is not described.
    #[error("{origin}: pin {pin} is not described (describe every pin from 1 to {last}, power and ground too)")]
    Gap {
        /// Where the profile came from.
        origin: String,
        /// The first pin missing.
        pin: u32,
        /// The highest pin described.
        last: u32,
    },
    /// A profile file could not be read.
    #[error("{}: cannot read board profile: {errno}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// A profile file is larger than [`MAX_FILE_LEN`].
    #[error("{}: not a board profile: longer than {MAX_FILE_LEN} bytes", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
    },
    /// A profile file is not UTF-8 text.
    #[error("{}: not a board profile: not UTF-8 text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// No built-in profile has this id.
    #[error("unknown board '{id}': the built-in boards are {known}; give any other board as a profile file path containing '/' (./myboard.board)")]
    Unknown {
        /// The id asked for.
        id: String,
        /// The built-in ids, comma-separated.
        known: String,
    },
    /// The board has no such header pin.
    #[error("{board} has no pin {pin} (its header pins are 1 to {last})")]
    NoSuchPin {
        /// The board's id.
        board: String,
        /// The pin asked for.
        pin: u32,
        /// The board's highest pin.
        last: u32,
    },
    /// The pin is a supply pin.
    #[error("pin {pin} of {board} is {label} power, not a GPIO line")]
    Power {
        /// The board's id.
        board: String,
        /// The pin asked for.
        pin: u32,
        /// The supply's label.
        label: String,
    },
    /// The pin is a ground pin.
    #[error("pin {pin} of {board} is ground, not a GPIO line")]
    Ground {
        /// The board's id.
        board: String,
        /// The pin asked for.
        pin: u32,
    },
    /// None of the board's chip labels names a GPIO chip on this machine.
    #[error("no GPIO chip of board {0} is present: is this the right board, and is its GPIO driver loaded?")]
    NoChip(String),
}

/// What is wrong with one line of a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The line is neither blank, a comment, nor `key = value`.
    #[error("expected 'key = value', found '{0}'")]
    NoEquals(String),
    /// The key is not one a profile has.
    #[error("unknown key '{0}' (a profile has 'id', 'model', 'chip' and 'pin N' lines)")]
    UnknownKey(String),
    /// `id` or `model` given a second time.
    #[error("'{0}' given twice")]
    Repeated(&'static str),
    /// `id`, `model` or `chip` with nothing after the `=`.
    #[error("'{0} =' needs a value")]
    Empty(&'static str),
    /// An id that could not be typed as a `--board` argument.
    #[error("id '{0}': use only letters, digits, '-', '_' and '.'")]
    BadId(String),
    /// A chip label with white space in it.
    #[error("chip label '{0}' has white space in it: give each label on its own 'chip =' line")]
    BadChip(String),
    /// The same chip label twice.
    #[error("chip {0} listed twice")]
    RepeatedChip(String),
    /// `pin` without a number.
    #[error("'pin' needs a number: 'pin N = ...'")]
    NoPinNumber,
    /// `pin N` where N is not a number from 1 to [`MAX_PIN`].
    #[error("'{0}' is not a header pin number (1 to {MAX_PIN})")]
    BadPinNumber(String),
    /// The same pin twice.
    #[error("pin {pin} listed twice (first on line {first})")]
    RepeatedPin {
        /// The pin.
        pin: u32,
        /// The line that described it first.
        first: usize,
    },
    /// A pin's value is none of the three forms.
    #[error("pin {pin}: expected 'OFFSET [NAME]', 'power LABEL' or 'ground', found '{found}'")]
    BadPinValue {
        /// The pin.
        pin: u32,
        /// The value as written.
        found: String,
    },
    /// A line offset that is not a decimal `u32`.
    #[error("pin {pin}: line offset '{text}' is not a decimal number from 0 to {max}", max = u32::MAX)]
    BadOffset {
        /// The pin.
        pin: u32,
        /// The offset as written.
        text: String,
    },
    /// Two pins on the same line offset.
    #[error("pin {pin}: offset {offset} is already pin {other}")]
    RepeatedOffset {
        /// The pin.
        pin: u32,
        /// The offset.
        offset: u32,
        /// The pin that has it already.
        other: u32,
    },
    /// A line name the kernel could not report.
    #[error(
        "pin {pin}: line name '{name}' is not printable ASCII of at most {MAX_NAME_LEN} bytes"
    )]
    BadName {
        /// The pin.
        pin: u32,
        /// The name as written.
        name: String,
    },
    /// Two pins with the same line name.
    #[error("pin {pin}: line name {name} is already pin {other}")]
    RepeatedName {
        /// The pin.
        pin: u32,
        /// The name.
        name: String,
        /// The pin that has it already.
        other: u32,
    },
}

impl Board {
    /// Reads a profile. `origin` names it in error messages: a file path or a
    /// built-in id.
    pub fn parse(origin: &str, text: &str) -> Result<Board, BoardError> {
        let mut draft = Draft::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = match raw.split_once('#') {
                Some((before, _comment)) => before,
                None => raw,
            }
            .trim();
            if content.is_empty() {
                continue;
            }
            draft
                .take(content, line)
                .map_err(|problem| BoardError::Syntax {
                    origin: origin.to_string(),
                    line,
                    problem,
                })?;
        }
        draft.finish(origin)
    }

    /// The board's id (`rpi4b`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The board's name for people (`Raspberry Pi 4 Model B`).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The labels the header's GPIO chip may carry, in the profile's order:
    /// several when the label changed between kernels, of which one machine
    /// is expected to show only one.
    pub fn chip_labels(&self) -> &[String] {
        &self.chip_labels
    }

    /// Every header pin, by number.
    pub fn pins(&self) -> &BTreeMap<u32, HeaderPin> {
        &self.pins
    }

    /// The highest header pin number; pins run from 1 to this.
    pub fn last_pin(&self) -> u32 {
        self.pins.keys().next_back().copied().unwrap_or(0)
    }

    /// The line offset and line name of header pin `pin`; an error if the
    /// pin is power, ground or not on this board.
    pub fn line(&self, pin: u32) -> Result<(u32, Option<&str>), BoardError> {
        match self.pins.get(&pin) {
            Some(HeaderPin::Line { offset, name }) => Ok((*offset, name.as_deref())),
            Some(HeaderPin::Power(label)) => Err(BoardError::Power {
                board: self.id.clone(),
                pin,
                label: label.clone(),
            }),
            Some(HeaderPin::Ground) => Err(BoardError::Ground {
                board: self.id.clone(),
                pin,
            }),
            None => Err(BoardError::NoSuchPin {
                board: self.id.clone(),
                pin,
                last: self.last_pin(),
            }),
        }
    }
}

/// A profile being read: what the lines so far said, and where, so that a
/// repeat can point at the first occurrence.
#[derive(Default)]
struct Draft {
    id: Option<String>,
    model: Option<String>,
    chip_labels: Vec<String>,
    pins: BTreeMap<u32, HeaderPin>,
    pin_lines: BTreeMap<u32, usize>,
    offset_pins: BTreeMap<u32, u32>,
    name_pins: BTreeMap<String, u32>,
}

impl Draft {
    /// Takes one `key = value` line.
    fn take(&mut self, content: &str, line: usize) -> Result<(), Problem> {
        let Some((key, value)) = content.split_once('=') else {
            return Err(Problem::NoEquals(content.to_string()));
        };
        let value = value.trim();
        let key_words: Vec<&str> = key.split_whitespace().collect();
        match key_words.as_slice() {
            ["id"] => {
                let id = nonempty("id", value)?;
                if !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(Problem::BadId(id.to_string()));
                }
                set_once(&mut self.id, "id", id)
            }
            ["model"] => set_once(&mut self.model, "model", nonempty("model", value)?),
            ["chip"] => {
                let label = nonempty("chip", value)?;
                if label.chars().any(char::is_whitespace) {
                    return Err(Problem::BadChip(label.to_string()));
                }
                if self.chip_labels.iter().any(|l| l == label) {
                    return Err(Problem::RepeatedChip(label.to_string()));
                }
                self.chip_labels.push(label.to_string());
                Ok(())
            }
            ["pin", number] => self.pin(number, value, line),
            ["pin"] => Err(Problem::NoPinNumber),
            _ => Err(Problem::UnknownKey(key.trim().to_string())),
        }
    }

    fn pin(&mut self, number: &str, value: &str, line: usize) -> Result<(), Problem> {
        let pin = decimal(number)
            .filter(|p| (1..=MAX_PIN).contains(p))
            .ok_or_else(|| Problem::BadPinNumber(number.to_string()))?;
        if let Some(&first) = self.pin_lines.get(&pin) {
            return Err(Problem::RepeatedPin { pin, first });
        }
        let header_pin = pin_value(pin, value)?;
        if let HeaderPin::Line { offset, name } = &header_pin {
            if let Some(&other) = self.offset_pins.get(offset) {
                return Err(Problem::RepeatedOffset {
                    pin,
                    offset: *offset,
                    other,
                });
            }
            if let Some(name) = name {
                if let Some(&other) = self.name_pins.get(name) {
                    return Err(Problem::RepeatedName {
                        pin,
                        name: name.clone(),
                        other,
                    });
                }
                self.name_pins.insert(name.clone(), pin);
            }
            self.offset_pins.insert(*offset, pin);
        }
        self.pin_lines.insert(pin, line);
        self.pins.insert(pin, header_pin);
        Ok(())
    }

    fn finish(self, origin: &str) -> Result<Board, BoardError> {
        let missing = |key| BoardError::Missing {
            origin: origin.to_string(),
            key,
        };
        let id = self.id.ok_or_else(|| missing("id"))?;
        let model = self.model.ok_or_else(|| missing("model"))?;
        if self.chip_labels.is_empty() {
            return Err(missing("chip"));
        }
        let Some(&last) = self.pins.keys().next_back() else {
            return Err(BoardError::NoPins {
                origin: origin.to_string(),
            });
        };
        // Pin numbers are 1..=last and unique, so a count short of `last`
        // means a gap; find the first for the message.
        if self.pins.len() as u64 != u64::from(last) {
            let pin = (1..=last)
                .find(|p| !self.pins.contains_key(p))
                .unwrap_or(last);
            return Err(BoardError::Gap {
                origin: origin.to_string(),
                pin,
                last,
            });
        }
        Ok(Board {
            id,
            model,
            chip_labels: self.chip_labels,
            pins: self.pins,
        })
    }
}

/// `OFFSET [NAME]`, `power LABEL` or `ground`.
fn pin_value(pin: u32, value: &str) -> Result<HeaderPin, Problem> {
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        ["ground"] => Ok(HeaderPin::Ground),
        ["power", label] => Ok(HeaderPin::Power(label.to_string())),
        [offset, rest @ ..]
            if rest.len() <= 1 && offset.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            let offset = decimal(offset).ok_or_else(|| Problem::BadOffset {
                pin,
                text: offset.to_string(),
            })?;
            let name = match rest.first() {
                Some(name)
                    if name.len() > MAX_NAME_LEN || !name.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    return Err(Problem::BadName {
                        pin,
                        name: name.to_string(),
                    })
                }
                Some(name) => Some(name.to_string()),
                None => None,
            };
            Ok(HeaderPin::Line { offset, name })
        }
        _ => Err(Problem::BadPinValue {
            pin,
            found: value.to_string(),
        }),
    }
}

fn nonempty<'a>(key: &'static str, value: &'a str) -> Result<&'a str, Problem> {
    if value.is_empty() {
        Err(Problem::Empty(key))
    } else {
        Ok(value)
    }
}

fn set_once(slot: &mut Option<String>, key: &'static str, value: &str) -> Result<(), Problem> {
    if slot.is_some() {
        return Err(Problem::Repeated(key));
    }
    *slot = Some(value.to_string());
    Ok(())
}

/// The ids of the built-in profiles.
pub fn builtin_ids() -> &'static [&'static str] {
    &IDS
}

/// A built-in profile by id.
pub fn builtin(id: &str) -> Result<Board, BoardError> {
    match BUILTIN.iter().find(|(known, _)| *known == id) {
        Some((known, text)) => Board::parse(known, text),
        None => Err(BoardError::Unknown {
            id: id.to_string(),
            known: IDS.join(", "),
        }),
    }
}

/// A `--board` argument: a profile file if it contains a `/`, else a
/// built-in id. The `/` rule keeps a file in the working directory from
/// shadowing a built-in board by accident.
pub fn load(arg: &str) -> Result<Board, BoardError> {
    if arg.contains('/') {
        from_file(Path::new(arg))
    } else {
        builtin(arg)
    }
}

/// Reads a profile file.
pub fn from_file(path: &Path) -> Result<Board, BoardError> {
    let read_error = |e: std::io::Error| BoardError::Read {
        path: path.to_path_buf(),
        errno: e.raw_os_error().map_or(Errno::EIO, Errno::from_i32),
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(read_error)?
        .take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(BoardError::TooLong {
            path: path.to_path_buf(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| BoardError::NotText {
        path: path.to_path_buf(),
    })?;
    Board::parse(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 40-pin header of every Raspberry Pi here: (physical pin, BCM line offset).
    const PI_LINES: [(u32, u32); 28] = [
        (3, 2),
        (5, 3),
        (7, 4),
        (8, 14),
        (10, 15),
        (11, 17),
        (12, 18),
        (13, 27),
        (15, 22),
        (16, 23),
        (18, 24),
        (19, 10),
        (21, 9),
        (22, 25),
        (23, 11),
        (24, 8),
        (26, 7),
        (27, 0),
        (28, 1),
        (29, 5),
        (31, 6),
        (32, 12),
        (33, 13),
        (35, 19),
        (36, 16),
        (37, 26),
        (38, 20),
        (40, 21),
    ];
    const PI_3V3: [u32; 2] = [1, 17];
    const PI_5V: [u32; 2] = [2, 4];
    const PI_GROUND: [u32; 8] = [6, 9, 14, 20, 25, 30, 34, 39];

    const PIS: [&str; 5] = ["rpi3b", "rpi4b", "rpi5", "rpizero2w", "qemu-raspi3b"];

    fn pi(id: &str) -> Board {
        builtin(id).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_builtin_profile_parses_under_its_own_id() {
        assert_eq!(BUILTIN.map(|(id, _)| id), IDS);
        assert_eq!(builtin_ids(), &IDS);
        for id in builtin_ids() {
            let board = builtin(id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(board.id(), *id);
            assert!(!board.model().is_empty());
            assert!(!board.chip_labels().is_empty());
        }
    }

    #[test]
    fn every_profile_file_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../board");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "board") {
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                assert!(IDS.contains(&stem.as_str()), "{stem}.board is not built in");
                assert_eq!(from_file(&path).unwrap().id(), stem);
                found.push(stem);
            }
        }
        assert_eq!(found.len(), IDS.len());
    }

    #[test]
    fn the_readme_lists_every_builtin_board() {
        let readme = include_str!("../../board/README.md");
        for id in builtin_ids() {
            assert!(readme.contains(&format!("`{id}`")), "{id} missing");
        }
    }

    #[test]
    fn every_pi_has_the_same_40_pin_header() {
        for id in PIS {
            let board = pi(id);
            assert_eq!(board.last_pin(), 40, "{id}");
            assert_eq!(board.pins().len(), 40, "{id}");
            for (pin, offset) in PI_LINES {
                assert_eq!(board.line(pin).map(|l| l.0), Ok(offset), "{id} pin {pin}");
            }
            for pin in PI_3V3 {
                assert_eq!(board.pins()[&pin], HeaderPin::Power("3V3".into()), "{id}");
            }
            for pin in PI_5V {
                assert_eq!(board.pins()[&pin], HeaderPin::Power("5V".into()), "{id}");
            }
            for pin in PI_GROUND {
                assert_eq!(board.pins()[&pin], HeaderPin::Ground, "{id}");
            }
        }
    }

    #[test]
    fn real_pis_agree_pin_for_pin_names_included() {
        let rpi4b = pi("rpi4b");
        for id in ["rpi3b", "rpi5", "rpizero2w"] {
            assert_eq!(pi(id).pins(), rpi4b.pins(), "{id}");
        }
        for (pin, offset) in PI_LINES {
            let want = match offset {
                0 => "ID_SDA".to_string(),
                1 => "ID_SCL".to_string(),
                n => format!("GPIO{n}"),
            };
            assert_eq!(rpi4b.line(pin), Ok((offset, Some(want.as_str()))));
        }
    }

    #[test]
    fn pin_11_is_gpio17_on_every_pi() {
        for id in PIS {
            assert_eq!(pi(id).line(11), Ok((17, Some("GPIO17"))), "{id}");
        }
    }

    #[test]
    fn chips_are_named_by_label() {
        let labels = |id| pi(id).chip_labels().to_vec();
        assert_eq!(labels("rpi3b"), ["pinctrl-bcm2835"]);
        assert_eq!(labels("rpizero2w"), ["pinctrl-bcm2835"]);
        assert_eq!(labels("rpi4b"), ["pinctrl-bcm2711", "pinctrl-bcm2835"]);
        assert_eq!(labels("rpi5"), ["pinctrl-rp1"]);
        assert_eq!(labels("qemu-raspi3b"), ["pinctrl-bcm2835"]);
        assert_eq!(labels("qemu-virt"), ["9030000.pl061"]);
    }

    #[test]
    fn qemu_virt_has_eight_pseudo_pins() {
        let board = pi("qemu-virt");
        assert_eq!(board.last_pin(), 8);
        for pin in 1..=8 {
            assert_eq!(board.line(pin), Ok((pin - 1, None)));
        }
        assert_eq!(
            board.line(9).unwrap_err().to_string(),
            "qemu-virt has no pin 9 (its header pins are 1 to 8)"
        );
    }

    #[test]
    fn power_ground_and_absent_pins_are_not_lines() {
        let board = pi("rpi4b");
        let message = |pin| board.line(pin).unwrap_err().to_string();
        assert_eq!(message(1), "pin 1 of rpi4b is 3V3 power, not a GPIO line");
        assert_eq!(message(2), "pin 2 of rpi4b is 5V power, not a GPIO line");
        assert_eq!(message(6), "pin 6 of rpi4b is ground, not a GPIO line");
        assert_eq!(
            message(0),
            "rpi4b has no pin 0 (its header pins are 1 to 40)"
        );
        assert_eq!(
            message(41),
            "rpi4b has no pin 41 (its header pins are 1 to 40)"
        );
        assert!(matches!(
            board.line(39),
            Err(BoardError::Ground { pin: 39, .. })
        ));
    }

    const HEAD: &str = "id = t\nmodel = Test board\nchip = test-chip\n";

    /// The error for a profile of [`HEAD`] and then `body`, as a user sees it.
    fn error(body: &str) -> String {
        match Board::parse("t.board", &format!("{HEAD}{body}")) {
            Ok(board) => panic!("{body:?} parsed: {board:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_malformed_line_gets_its_own_error_and_line_number() {
        let keys = "(a profile has 'id', 'model', 'chip' and 'pin N' lines)";
        let forms = "expected 'OFFSET [NAME]', 'power LABEL' or 'ground'";
        let cases = [
            ("pin 1 17", "4: expected 'key = value', found 'pin 1 17'"),
            ("colour = red", "4: unknown key 'colour' {keys}"),
            ("pins 1 = 0", "4: unknown key 'pins 1' {keys}"),
            ("pin 1 2 = 0", "4: unknown key 'pin 1 2' {keys}"),
            ("\n\nid = u", "6: 'id' given twice"),
            ("model = Other", "4: 'model' given twice"),
            ("chip =", "4: 'chip =' needs a value"),
            (
                "chip = a b",
                "4: chip label 'a b' has white space in it: give each label on its own 'chip =' line",
            ),
            ("chip = test-chip", "4: chip test-chip listed twice"),
            ("pin = 0", "4: 'pin' needs a number: 'pin N = ...'"),
            ("pin 0 = 0", "4: '0' is not a header pin number (1 to 40)"),
            ("pin 41 = 0", "4: '41' is not a header pin number (1 to 40)"),
            ("pin +1 = 0", "4: '+1' is not a header pin number (1 to 40)"),
            ("pin x = 0", "4: 'x' is not a header pin number (1 to 40)"),
            (
                "pin 1 = 0\n# a comment\npin 1 = 1",
                "6: pin 1 listed twice (first on line 4)",
            ),
            ("pin 1 = 17\npin 2 = 17", "5: pin 2: offset 17 is already pin 1"),
            (
                "pin 1 = 17 GPIO17\npin 2 = 18 GPIO17",
                "5: pin 2: line name GPIO17 is already pin 1",
            ),
            (
                "pin 1 = 17x",
                "4: pin 1: line offset '17x' is not a decimal number from 0 to 4294967295",
            ),
            (
                "pin 1 = 4294967296",
                "4: pin 1: line offset '4294967296' is not a decimal number from 0 to 4294967295",
            ),
            ("pin 1 = GPIO17", "4: pin 1: {forms}, found 'GPIO17'"),
            ("pin 1 =", "4: pin 1: {forms}, found ''"),
            ("pin 1 = -1", "4: pin 1: {forms}, found '-1'"),
            ("pin 1 = 17 GPIO17 spare", "4: pin 1: {forms}, found '17 GPIO17 spare'"),
            ("pin 1 = power", "4: pin 1: {forms}, found 'power'"),
            ("pin 1 = power 3V3 5V", "4: pin 1: {forms}, found 'power 3V3 5V'"),
            ("pin 1 = ground 0V", "4: pin 1: {forms}, found 'ground 0V'"),
            (
                "pin 1 = 0 \u{c4}\u{d6}",
                "4: pin 1: line name '\u{c4}\u{d6}' is not printable ASCII of at most 31 bytes",
            ),
            (
                "pin 1 = 0 A\x01",
                "4: pin 1: line name 'A\x01' is not printable ASCII of at most 31 bytes",
            ),
        ];
        for (body, want) in cases {
            let want = want.replace("{keys}", keys).replace("{forms}", forms);
            assert_eq!(error(body), format!("t.board:{want}"), "{body:?}");
        }
        let long = "N".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            error(&format!("pin 1 = 0 {long}")),
            format!(
                "t.board:4: pin 1: line name '{long}' is not printable ASCII of at most 31 bytes"
            )
        );
        assert_eq!(
            Board::parse("x", "id = my board").map_err(|e| e.to_string()),
            Err("x:1: id 'my board': use only letters, digits, '-', '_' and '.'".into())
        );
        assert_eq!(
            Board::parse("x", "id = ../rpi4b").map_err(|e| e.to_string()),
            Err("x:1: id '../rpi4b': use only letters, digits, '-', '_' and '.'".into())
        );
        assert_eq!(
            Board::parse("x", "id =  ").map_err(|e| e.to_string()),
            Err("x:1: 'id =' needs a value".into())
        );
        // Code can match on the variant as well as show the text.
        assert_eq!(
            Board::parse("t", &format!("{HEAD}pin 1 = 0\npin 1 = 1\n")),
            Err(BoardError::Syntax {
                origin: "t".into(),
                line: 5,
                problem: Problem::RepeatedPin { pin: 1, first: 4 }
            })
        );
    }

    #[test]
    fn messages_name_the_origin_and_line() {
        let text = format!("{HEAD}pin 1 = 17\npin 11 = 18\npin 11 = 19\n");
        let e = Board::parse("board/rpi4b.board", &text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "board/rpi4b.board:6: pin 11 listed twice (first on line 5)"
        );
    }

    #[test]
    fn a_profile_must_say_what_it_is_and_describe_every_pin() {
        let missing = |text: &str| Board::parse("t", text).unwrap_err();
        assert_eq!(
            missing("model = M\nchip = c\npin 1 = 0\n"),
            BoardError::Missing {
                origin: "t".into(),
                key: "id"
            }
        );
        assert_eq!(
            missing("id = t\nchip = c\npin 1 = 0\n"),
            BoardError::Missing {
                origin: "t".into(),
                key: "model"
            }
        );
        assert_eq!(
            missing("id = t\nmodel = M\npin 1 = 0\n").to_string(),
            "t: no 'chip =' line (a profile gives its id, model and chip)"
        );
        assert_eq!(missing(HEAD), BoardError::NoPins { origin: "t".into() });
        assert_eq!(
            missing(&format!("{HEAD}pin 1 = 0\npin 2 = ground\npin 4 = 1\n")).to_string(),
            "t: pin 3 is not described (describe every pin from 1 to 4, power and ground too)"
        );
        assert_eq!(
            missing(&format!("{HEAD}pin 2 = 0\n")),
            BoardError::Gap {
                origin: "t".into(),
                pin: 1,
                last: 2
            }
        );
    }

    #[test]
    fn comments_blank_lines_crlf_and_spacing_are_fine() {
        let text = "# a test board\r\n\r\n  id=t  # trailing\r\nmodel   =   A  board  \r\n\
                    chip = c1\r\nchip = c2\r\npin   1   =   5   L5   # why\r\npin 2 = power 3V3\r\n\
                    pin 3=ground\r\n";
        let board = Board::parse("t", text).unwrap();
        assert_eq!(board.id(), "t");
        assert_eq!(board.model(), "A  board");
        assert_eq!(board.chip_labels(), ["c1", "c2"]);
        assert_eq!(board.line(1), Ok((5, Some("L5"))));
        assert_eq!(board.pins()[&2], HeaderPin::Power("3V3".into()));
        assert_eq!(board.pins()[&3], HeaderPin::Ground);
        // A pin of the highest number allowed, with every pin below it.
        let full: String = (1..=MAX_PIN).map(|p| format!("pin {p} = {p}\n")).collect();
        assert_eq!(
            Board::parse("t", &format!("{HEAD}{full}")).map(|b| b.last_pin()),
            Ok(MAX_PIN)
        );
    }

    #[test]
    fn load_takes_a_path_when_there_is_a_slash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpi4b");
        std::fs::write(&path, format!("{HEAD}pin 1 = 3 MINE\n")).unwrap();
        let from_path = load(path.to_str().unwrap()).unwrap();
        assert_eq!(from_path.line(1), Ok((3, Some("MINE"))));
        // Without a slash the same word is the built-in board.
        assert_eq!(load("rpi4b").unwrap().id(), "rpi4b");

        let bad = dir.path().join("bad.board");
        std::fs::write(&bad, format!("{HEAD}pin 1 = 0\npin 1 = 1\n")).unwrap();
        assert_eq!(
            load(bad.to_str().unwrap()).unwrap_err().to_string(),
            format!("{}:5: pin 1 listed twice (first on line 4)", bad.display())
        );
    }

    #[test]
    fn unreadable_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.board");
        let e = load(absent.to_str().unwrap()).unwrap_err();
        assert_eq!(
            e,
            BoardError::Read {
                path: absent.clone(),
                errno: Errno::ENOENT
            }
        );
        assert!(e.to_string().starts_with(&format!(
            "{}: cannot read board profile: ENOENT",
            absent.display()
        )));

        let e = from_file(dir.path()).unwrap_err();
        assert!(
            matches!(
                e,
                BoardError::Read {
                    errno: Errno::EISDIR,
                    ..
                }
            ),
            "{e}"
        );

        let binary = dir.path().join("binary.board");
        std::fs::write(&binary, b"id = t\n\xff\xfe\n").unwrap();
        assert_eq!(
            from_file(&binary),
            Err(BoardError::NotText {
                path: binary.clone()
            })
        );

        let huge = dir.path().join("huge.board");
        std::fs::write(&huge, "#".repeat(MAX_FILE_LEN as usize + 1)).unwrap();
        assert_eq!(
            from_file(&huge),
            Err(BoardError::TooLong { path: huge.clone() })
        );
        let largest = dir.path().join("largest.board");
        let text = format!("{HEAD}pin 1 = 0\n");
        let padding = "#".repeat(MAX_FILE_LEN as usize - text.len() - 1);
        std::fs::write(&largest, format!("{text}{padding}\n")).unwrap();
        assert!(from_file(&largest).is_ok());
    }

    #[test]
    fn unknown_builtin_lists_the_known_ones() {
        let e = load("rpi4").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown board 'rpi4': the built-in boards are rpi3b, rpi4b, rpi5, rpizero2w, \
             qemu-virt, qemu-raspi3b; give any other board as a profile file path containing \
             '/' (./myboard.board)"
        );
    }
}
