//! GPIO lines on Linux: finding them and requesting them from the character
//! device (`/dev/gpiochipN`, through `gpio-cdev` and `linux-embedded-hal`'s
//! `CdevPin`), plus a file that stands in for a line in tests and dry runs.
//!
//! Lines are found by name across every chip, by chip and offset (the chip by
//! path, device name or label), or by board pin — never by a hard-coded chip
//! number: the Raspberry Pi 5's header chip moved from gpiochip4 to gpiochip0.
//! Outputs are requested with consumer `updlock` (what `gpioinfo` shows) and
//! with their safe level as the initial value, so requesting a line can never
//! glitch the actuator on. Active-low lines are requested `ACTIVE_LOW`, so
//! `gpioinfo` shows that too.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};
use gpio_cdev::{Chip, EventRequestFlags, LineEventHandle, LineRequestFlags};
use linux_embedded_hal::CdevPin;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::exit::Exit;
use crate::linespec::{self, ChipRef, LineSpec};
use crate::pin::{Level, Polarity};

/// The consumer label updlock's requests carry (`gpioinfo` shows it).
pub const CONSUMER: &str = "updlock";

/// Why a line could not be found or requested.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// There are no GPIO chips at all.
    #[error("{spec}: no GPIO chips (/dev/gpiochip*): is this a device with GPIO, and is the chip mapped into the container?")]
    NoChips {
        /// The line as the user named it.
        spec: String,
    },
    /// The chip named does not exist.
    #[error("{spec}: no such GPIO chip{known}")]
    NoChip {
        /// The line as the user named it.
        spec: String,
        /// The chips there are, for the message.
        known: String,
    },
    /// None of a board profile's chip labels is present.
    #[error("{spec}: no GPIO chip labelled {labels}{known}: is this the right board?")]
    NoBoardChip {
        /// The board pin as the user named it.
        spec: String,
        /// The labels the profile lists.
        labels: String,
        /// The chips there are, for the message.
        known: String,
    },
    /// No line has that name.
    #[error(
        "{spec}: no GPIO line has this name (see gpioinfo); or use CHIP:OFFSET or --board/--pin"
    )]
    NoLine {
        /// The line as the user named it.
        spec: String,
    },
    /// The offset is past the end of the chip.
    #[error("{spec}: no such line: {chip} has {} (offsets 0 to {last})", count_lines(*.lines))]
    OutOfRange {
        /// The line as the user named it.
        spec: String,
        /// The chip.
        chip: String,
        /// How many lines it has.
        lines: u32,
        /// The last valid offset.
        last: u32,
    },
    /// Several lines have that name.
    #[error("{spec}: the line name is not unique ({places}); use CHIP:OFFSET")]
    Ambiguous {
        /// The line as the user named it.
        spec: String,
        /// Where it was found.
        places: String,
    },
    /// Another consumer holds the line.
    #[error("{spec}: the line is busy: {consumer} holds it")]
    Busy {
        /// The line as the user named it.
        spec: String,
        /// Who holds it, as the kernel says.
        consumer: String,
    },
    /// No permission on the chip device.
    #[error("{spec}: permission denied on {path}: run as root, or give this user access to it")]
    Permission {
        /// The line as the user named it.
        spec: String,
        /// The chip device.
        path: PathBuf,
    },
    /// The chip device is not a GPIO chip: it does not answer the GPIO
    /// chip-info ioctl (a `/dev/gpiochipN` that is another device, a file, a
    /// directory).
    #[error("{spec}: {} is not a GPIO character device (the GPIO chip-info ioctl failed: {errno:?})", .path.display())]
    NotAChip {
        /// The line as the user named it.
        spec: String,
        /// The device that was opened.
        path: PathBuf,
        /// What the ioctl returned: ENOTTY (or EINVAL) for "not mine".
        errno: Errno,
    },
    /// The chip device could not be opened or asked for its info.
    #[error("{spec}: cannot {op} {}: {}", .path.display(), describe(*.errno))]
    Chip {
        /// The line as the user named it.
        spec: String,
        /// The chip device.
        path: PathBuf,
        /// What we were doing: "open" or "ask for the chip info of".
        op: &'static str,
        /// What the kernel said.
        errno: Errno,
    },
    /// A `file:` line could not be opened, written, read or watched.
    #[error("{spec}: cannot {op} {}: {}", .path.display(), describe(*.errno))]
    File {
        /// The line as the user named it.
        spec: String,
        /// The file.
        path: PathBuf,
        /// What we were doing: "open", "write", "read" or "watch".
        op: &'static str,
        /// What the kernel said.
        errno: Errno,
    },
    /// Anything else the kernel refused.
    #[error("{spec}: {op}: {reason}")]
    Os {
        /// The line as the user named it.
        spec: String,
        /// What we were doing.
        op: &'static str,
        /// What the kernel said.
        reason: String,
    },
}

/// "1 line", "8 lines".
fn count_lines(n: u32) -> String {
    if n == 1 {
        "1 line".to_string()
    } else {
        format!("{n} lines")
    }
}

impl GpioError {
    /// The exit code: 77 for permission, 69 for everything else.
    pub fn exit(&self) -> Exit {
        match self {
            GpioError::Permission { .. } => Exit::Permission,
            _ => Exit::Unavailable,
        }
    }
}

/// An errno as a phrase: "no such file or directory", not "No such file
/// or directory (os error 2)".
fn describe(errno: Errno) -> String {
    let desc = errno.desc();
    let mut chars = desc.chars();
    match chars.next() {
        // The phrases are ASCII: char::to_lowercase would bring Unicode's
        // case tables (11 KiB) into the binary for their first letters.
        Some(first) => std::iter::once(first.to_ascii_lowercase())
            .chain(chars)
            .collect(),
        None => format!("{errno:?}"),
    }
}

/// The errno of an I/O error (`EIO` for one without, which the file
/// operations here do not produce).
fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

fn errno_of(e: &gpio_cdev::Error) -> Option<Errno> {
    let source = std::error::Error::source(e)?;
    if let Some(errno) = source.downcast_ref::<Errno>() {
        return Some(*errno);
    }
    source
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.raw_os_error())
        .map(Errno::from_i32)
}

/// A line found on a chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The chip device.
    pub chip: PathBuf,
    /// The line's offset on it.
    pub offset: u32,
    /// How the user named it, for messages.
    pub spec: String,
}

/// The chip devices, in numeric order.
fn chip_paths() -> Vec<PathBuf> {
    let mut chips: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let n: u32 = name.strip_prefix("gpiochip")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    chips.sort();
    chips.into_iter().map(|(_, p)| p).collect()
}

fn open_chip(path: &Path, spec: &str) -> Result<Chip, GpioError> {
    Chip::new(path).map_err(|e| chip_error(path, spec, &e))
}

/// What went wrong in `Chip::new`: it opens the device, then asks it for
/// its chip info. An error from the open carries an `io::Error`, one from
/// the ioctl an `Errno`.
fn chip_error(path: &Path, spec: &str, e: &gpio_cdev::Error) -> GpioError {
    let source = std::error::Error::source(e);
    let in_ioctl = source.is_some_and(|s| s.is::<Errno>());
    let errno = errno_of(e).unwrap_or(Errno::EIO);
    let (spec, path) = (spec.to_string(), path.to_path_buf());
    match errno {
        Errno::EACCES | Errno::EPERM => GpioError::Permission { spec, path },
        Errno::ENOENT if !in_ioctl => GpioError::NoChip {
            spec,
            known: known_chips(),
        },
        // ENOTTY: the device has no such ioctl; EINVAL: it has ioctls, and
        // this is not one of them.
        Errno::ENOTTY | Errno::EINVAL if in_ioctl => GpioError::NotAChip { spec, path, errno },
        _ => GpioError::Chip {
            spec,
            path,
            op: if in_ioctl {
                "ask for the chip info of"
            } else {
                "open"
            },
            errno,
        },
    }
}

/// The error for a board whose chip labels all failed to match.
pub fn no_board_chip(spec: &str, labels: &[String]) -> GpioError {
    if chip_paths().is_empty() {
        return GpioError::NoChips {
            spec: spec.to_string(),
        };
    }
    GpioError::NoBoardChip {
        spec: spec.to_string(),
        labels: labels.join(" or "),
        known: known_chips(),
    }
}

fn known_chips() -> String {
    let names: Vec<String> = chip_paths()
        .iter()
        .map(|p| {
            let label = Chip::new(p).ok().map(|c| c.label().to_string());
            format!("{} [{}]", p.display(), label.unwrap_or_default())
        })
        .collect();
    if names.is_empty() {
        " (there are none)".to_string()
    } else {
        format!(" (there are: {})", names.join(", "))
    }
}

/// Finds the line `spec` names. `File` specs are not chips: use
/// [`open_output`]/[`open_input`] directly.
pub fn find(spec: &LineSpec) -> Result<Found, GpioError> {
    let shown = spec.to_string();
    match spec {
        LineSpec::File(_) => Err(GpioError::Os {
            spec: shown,
            op: "find",
            reason: "a file line has no chip".to_string(),
        }),
        LineSpec::Name(name) => {
            let chips = chip_paths();
            if chips.is_empty() {
                return Err(GpioError::NoChips { spec: shown });
            }
            let mut places = Vec::new();
            for path in chips {
                let chip = open_chip(&path, &shown)?;
                for line in chip.lines() {
                    let Ok(info) = line.info() else { continue };
                    if info.name() == Some(name.as_str()) {
                        places.push((path.clone(), line.offset(), chip.label().to_string()));
                    }
                }
            }
            match places.len() {
                0 => Err(GpioError::NoLine { spec: shown }),
                1 => {
                    let (chip, offset, _) = places.remove(0);
                    Ok(Found {
                        chip,
                        offset,
                        spec: shown,
                    })
                }
                _ => Err(GpioError::Ambiguous {
                    spec: shown,
                    places: places
                        .iter()
                        .map(|(p, o, l)| format!("{}:{o} [{l}]", p.display()))
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
        LineSpec::Chip { chip, offset } => {
            let path = match chip {
                ChipRef::Path(p) => p.clone(),
                ChipRef::Device(d) => Path::new("/dev").join(d),
                ChipRef::Label(label) => {
                    let chips = chip_paths();
                    if chips.is_empty() {
                        return Err(GpioError::NoChips { spec: shown });
                    }
                    let mut matching = Vec::new();
                    for p in chips {
                        if open_chip(&p, &shown)?.label() == label {
                            matching.push(p);
                        }
                    }
                    match matching.len() {
                        1 => matching.remove(0),
                        0 => {
                            return Err(GpioError::NoChip {
                                spec: shown,
                                known: known_chips(),
                            })
                        }
                        _ => {
                            return Err(GpioError::Ambiguous {
                                spec: shown,
                                places: matching
                                    .iter()
                                    .map(|p| p.display().to_string())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            })
                        }
                    }
                }
            };
            let chip = open_chip(&path, &shown)?;
            if *offset >= chip.num_lines() {
                return Err(GpioError::OutOfRange {
                    spec: shown,
                    chip: format!("{} [{}]", path.display(), chip.label()),
                    lines: chip.num_lines(),
                    last: chip.num_lines().saturating_sub(1),
                });
            }
            Ok(Found {
                chip: path,
                offset: *offset,
                spec: shown,
            })
        }
    }
}

fn request_error(found: &Found, chip: &mut Chip, e: gpio_cdev::Error) -> GpioError {
    match errno_of(&e) {
        Some(Errno::EBUSY) => {
            let consumer = chip
                .get_line(found.offset)
                .and_then(|l| l.info())
                .ok()
                .and_then(|i| i.consumer().map(String::from))
                .unwrap_or_else(|| "another consumer".to_string());
            // Another process chose the consumer label: its control
            // characters, if any, are shown escaped.
            GpioError::Busy {
                spec: found.spec.clone(),
                consumer: format!("'{}'", linespec::escaped(&consumer)),
            }
        }
        Some(Errno::EACCES) | Some(Errno::EPERM) => GpioError::Permission {
            spec: found.spec.clone(),
            path: found.chip.clone(),
        },
        _ => GpioError::Os {
            spec: found.spec.clone(),
            op: "request the line",
            reason: e.to_string(),
        },
    }
}

/// An output line: a real one, or a file standing in for it.
pub enum Output {
    /// A line of a GPIO chip.
    Cdev(CdevPin),
    /// A file whose last line is the level (`1`/`0`), appended on every write.
    File(FileLine),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Cdev(pin) => write!(f, "Output::Cdev({:?})", pin.0.line()),
            Output::File(line) => write!(f, "Output::{line:?}"),
        }
    }
}

impl std::fmt::Debug for FileLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileLine({})", self.path.display())
    }
}

/// Requests `spec` as an output at its safe level.
pub fn open_output(spec: &LineSpec, polarity: Polarity) -> Result<Output, GpioError> {
    if let LineSpec::File(path) = spec {
        let mut line = FileLine::open(path, &spec.to_string())?;
        line.write_level(polarity.safe())
            .map_err(|e| line.error("write", e))?;
        return Ok(Output::File(line));
    }
    let found = find(spec)?;
    let mut chip = open_chip(&found.chip, &found.spec)?;
    let line = chip
        .get_line(found.offset)
        .map_err(|e| request_error(&found, &mut chip, e))?;
    let mut flags = LineRequestFlags::OUTPUT;
    if polarity == Polarity::ActiveLow {
        flags |= LineRequestFlags::ACTIVE_LOW;
    }
    // The initial value is logical: 0 is inactive, which is the safe level
    // for either polarity.
    let handle = line
        .request(flags, 0, CONSUMER)
        .map_err(|e| request_error(&found, &mut chip, e))?;
    let pin = CdevPin::new(handle).map_err(|e| request_error(&found, &mut chip, e))?;
    Ok(Output::Cdev(pin))
}

/// The error type of [`Output`]: the backend's message.
pub struct LineFault(pub String);

/// The message alone: `OutputPin`'s callers only know that an error is
/// `Debug`, and this is what they show the user.
impl std::fmt::Debug for LineFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl embedded_hal::digital::Error for LineFault {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl ErrorType for Output {
    type Error = LineFault;
}

impl OutputPin for Output {
    fn set_low(&mut self) -> Result<(), LineFault> {
        self.set(Level::Low)
    }
    fn set_high(&mut self) -> Result<(), LineFault> {
        self.set(Level::High)
    }
}

impl Output {
    fn set(&mut self, level: Level) -> Result<(), LineFault> {
        match self {
            Output::Cdev(pin) => match level {
                Level::High => pin.set_high(),
                Level::Low => pin.set_low(),
            }
            .map_err(|e| LineFault(e.to_string())),
            Output::File(f) => f
                .write_level(level)
                .map_err(|e| LineFault(describe(io_errno(&e)))),
        }
    }
}

/// A file standing in for a line: `file:PATH`. Its last line is the level,
/// `1` (high) or `0` (low); outputs append one line per write, so the file is
/// also a record of every transition, which tests and observers read.
pub struct FileLine {
    path: PathBuf,
    spec: String,
    file: File,
}

impl FileLine {
    fn open(path: &Path, spec: &str) -> Result<FileLine, GpioError> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| match io_errno(&e) {
                Errno::EACCES | Errno::EPERM => GpioError::Permission {
                    spec: spec.to_string(),
                    path: path.to_path_buf(),
                },
                errno => GpioError::File {
                    spec: spec.to_string(),
                    path: path.to_path_buf(),
                    op: "open",
                    errno,
                },
            })?;
        Ok(FileLine {
            path: path.to_path_buf(),
            spec: spec.to_string(),
            file,
        })
    }

    fn error(&self, op: &'static str, e: std::io::Error) -> GpioError {
        GpioError::File {
            spec: self.spec.clone(),
            path: self.path.clone(),
            op,
            errno: io_errno(&e),
        }
    }

    fn write_level(&mut self, level: Level) -> std::io::Result<()> {
        let text = match level {
            Level::High => "1\n",
            Level::Low => "0\n",
        };
        // One write() per transition, so a reader never sees half a line.
        self.file.write_all(text.as_bytes())
    }

    fn read_level(&mut self) -> std::io::Result<Level> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_string(&mut text)?;
        Ok(match text.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(l) if l.trim() == "1" || l.trim() == "high" => Level::High,
            _ => Level::Low,
        })
    }
}

/// An input line whose changes can be waited for: edge events from the
/// chip, or inotify on a file.
pub enum Input {
    /// A line of a GPIO chip, with edge events.
    Cdev {
        /// The event handle.
        events: LineEventHandle,
        /// How the user named it.
        spec: String,
    },
    /// A file standing in for a line.
    File {
        /// The file.
        line: FileLine,
        /// Watches the file for writes.
        watch: Inotify,
        /// Whether low is active.
        polarity: Polarity,
    },
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Cdev { spec, .. } => write!(f, "Input::Cdev({spec})"),
            Input::File { line, .. } => write!(f, "Input::File({})", line.path.display()),
        }
    }
}

/// Requests `spec` as an input with edge events on both edges.
pub fn open_input(spec: &LineSpec, polarity: Polarity) -> Result<Input, GpioError> {
    if let LineSpec::File(path) = spec {
        let line = FileLine::open(path, &spec.to_string())?;
        let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| line.error("watch", e.into()))?;
        watch
            .add_watch(
                path,
                AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MODIFY,
            )
            .map_err(|e| line.error("watch", e.into()))?;
        return Ok(Input::File {
            line,
            watch,
            polarity,
        });
    }
    let found = find(spec)?;
    let mut chip = open_chip(&found.chip, &found.spec)?;
    let line = chip
        .get_line(found.offset)
        .map_err(|e| request_error(&found, &mut chip, e))?;
    let mut flags = LineRequestFlags::INPUT;
    if polarity == Polarity::ActiveLow {
        flags |= LineRequestFlags::ACTIVE_LOW;
    }
    let events = line
        .events(flags, EventRequestFlags::BOTH_EDGES, CONSUMER)
        .map_err(|e| request_error(&found, &mut chip, e))?;
    Ok(Input::Cdev {
        events,
        spec: found.spec,
    })
}

impl Input {
    /// The descriptor that becomes readable when the line may have changed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Input::Cdev { events, .. } => events.as_fd(),
            Input::File { watch, .. } => watch.as_fd(),
        }
    }

    /// Reads what made [`Input::fd`] readable, then the line's level now:
    /// `true` when active. Edges only say "look"; the level decides.
    pub fn drain_and_read(&mut self) -> Result<bool, GpioError> {
        match self {
            Input::Cdev { events, spec } => {
                let fd = events.as_fd();
                // One event per wake-up; poll tells whether more are queued.
                let mut pfd = [nix::poll::PollFd::new(&fd, nix::poll::PollFlags::POLLIN)];
                if nix::poll::poll(&mut pfd, 0).unwrap_or(0) > 0 {
                    let _ = events.get_event();
                }
                let v = events.get_value().map_err(|e| GpioError::Os {
                    spec: spec.clone(),
                    op: "read the line",
                    reason: e.to_string(),
                })?;
                Ok(v == 1)
            }
            Input::File {
                line,
                watch,
                polarity,
            } => {
                while matches!(watch.read_events(), Ok(evs) if !evs.is_empty()) {}
                let level = line.read_level().map_err(|e| line.error("read", e))?;
                Ok(level == polarity.active())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets are given as a closed range in words: "0..7" reads as 0 to 6
    /// to a Rust eye, and "1 lines" is wrong.
    #[test]
    fn an_offset_past_the_end_names_the_valid_offsets() {
        let past = |lines, last| {
            GpioError::OutOfRange {
                spec: format!("gpiochip1:{lines}"),
                chip: "/dev/gpiochip1 [sim]".into(),
                lines,
                last,
            }
            .to_string()
        };
        assert_eq!(
            past(8, 7),
            "gpiochip1:8: no such line: /dev/gpiochip1 [sim] has 8 lines (offsets 0 to 7)"
        );
        assert_eq!(
            past(1, 0),
            "gpiochip1:1: no such line: /dev/gpiochip1 [sim] has 1 line (offsets 0 to 0)"
        );
    }

    #[test]
    fn a_file_output_starts_safe_and_records_each_write() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("line");
        let spec = LineSpec::File(p.clone());
        let mut out = open_output(&spec, Polarity::ActiveLow).unwrap();
        out.set_low().unwrap();
        out.set_high().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n0\n1\n");
    }

    #[test]
    fn a_file_input_follows_the_last_line() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("line");
        std::fs::write(&p, "0\n").unwrap();
        let mut input = open_input(&LineSpec::File(p.clone()), Polarity::ActiveHigh).unwrap();
        assert!(!input.drain_and_read().unwrap());
        std::fs::write(&p, "0\n1\n").unwrap();
        assert!(input.drain_and_read().unwrap());
        let mut low_active = open_input(&LineSpec::File(p.clone()), Polarity::ActiveLow).unwrap();
        assert!(!low_active.drain_and_read().unwrap());
    }

    /// A device that is not a GPIO chip (here /dev/null) is named as
    /// such, in one sentence, with the errno of the failed ioctl.
    #[test]
    fn a_device_that_is_not_a_chip_is_named() {
        let e = find(&linespec::parse("/dev/null:3").unwrap()).unwrap_err();
        assert!(
            matches!(
                e,
                GpioError::NotAChip {
                    errno: Errno::ENOTTY,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "/dev/null:3: /dev/null is not a GPIO character device (the GPIO chip-info ioctl failed: ENOTTY)"
        );
        assert_eq!(e.exit(), Exit::Unavailable);
        // A directory opens, and does not answer the ioctl either.
        let e = find(&linespec::parse("/tmp:3").unwrap()).unwrap_err();
        assert!(matches!(e, GpioError::NotAChip { .. }), "{e:?}");
    }

    /// A file line's errors name the file and the reason, without the
    /// "(os error N)" of `io::Error`.
    #[test]
    fn a_file_line_error_is_one_plain_sentence() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("nope").join("pin");
        let spec = LineSpec::File(p.clone());
        let e = open_output(&spec, Polarity::ActiveHigh).unwrap_err();
        assert!(
            matches!(
                e,
                GpioError::File {
                    op: "open",
                    errno: Errno::ENOENT,
                    ..
                }
            ),
            "{e:?}"
        );
        let p = p.display();
        assert_eq!(
            e.to_string(),
            format!("file:{p}: cannot open {p}: no such file or directory")
        );
        let e = open_input(&LineSpec::File(t.path().into()), Polarity::ActiveHigh).unwrap_err();
        let d = t.path().display();
        assert_eq!(
            e.to_string(),
            format!("file:{d}: cannot open {d}: is a directory")
        );
        // /dev/full opens, and takes no write: the safe level cannot be set.
        let e = open_output(&LineSpec::File("/dev/full".into()), Polarity::ActiveHigh).unwrap_err();
        assert_eq!(
            e.to_string(),
            "file:/dev/full: cannot write /dev/full: no space left on device"
        );
    }

    /// A line that takes no write says why, not `LineFault("...")`.
    #[test]
    fn a_failed_drive_shows_the_reason_not_a_debug_dump() {
        use crate::pin::{Actuate, Actuator};
        let file = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let out = Output::File(FileLine {
            path: "/dev/full".into(),
            spec: "file:/dev/full".into(),
            file,
        });
        let mut a = Actuator::new(out, Polarity::ActiveHigh, "file:/dev/full");
        let e = a.activate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "file:/dev/full: cannot drive the line high (active): no space left on device"
        );
    }

    #[test]
    fn no_chips_is_a_clear_error() {
        if !chip_paths().is_empty() {
            eprintln!("skipped: this machine has GPIO chips");
            return;
        }
        let e = find(&LineSpec::Name("GPIO17".into())).unwrap_err();
        assert!(matches!(e, GpioError::NoChips { .. }), "{e}");
        assert!(e.to_string().starts_with("GPIO17: no GPIO chips"), "{e}");
        assert_eq!(e.exit(), Exit::Unavailable);
    }
}
