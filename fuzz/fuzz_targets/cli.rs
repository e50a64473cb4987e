//! The command line (`cli::parse_under`, with the `UPDLOCK_*` settings from
//! `settings::Settings::from_vars`): what `updlock`'s `parse` does, without
//! reading the process environment.
//!
//! The input is NUL-separated: the arguments (any bytes, as the kernel hands
//! them over), then, after an item that is the single byte 0xFF, the
//! environment as `NAME=VALUE` items.
//!
//! Properties: every refusal is one line of text (no control character: a
//! newline or an escape sequence from an argument or a setting is shown
//! escaped) ending in the pointer to `--help`; broken settings refuse every
//! command but help and the version, naming an `UPDLOCK_` variable that was
//! given; a parse is `parse_with` of the settings; a parse under settings
//! keeps everything the command line said on its own (location, verbosity,
//! the supervisor's options, the line, the program and its arguments,
//! `--for`, `--json`); every duration is at most a year, the API timeout is
//! not zero, the verbosity counts the `-q`/`-v` given (it never wraps).
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use updlock::duration::Wait;
use updlock::location::Location;
use updlock::settings::Settings;

// The parser lives in the binary crate; the fuzzer compiles the same file.
#[allow(dead_code)]
#[path = "../../firmware/src/cli.rs"]
mod cli;

use cli::{Command, Config, LineChoice};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// The item that separates the arguments from the environment.
const ENV_MARK: &[u8] = b"\xff";

fn split(data: &[u8]) -> (Vec<OsString>, Vec<(OsString, OsString)>) {
    let mut args = Vec::new();
    let mut vars: Vec<(OsString, OsString)> = Vec::new();
    let mut in_env = false;
    for item in data.split(|&b| b == 0) {
        if !in_env && item == ENV_MARK {
            in_env = true;
        } else if in_env {
            let (k, v) = match item.iter().position(|&b| b == b'=') {
                Some(i) => (&item[..i], &item[i + 1..]),
                None => (item, &b""[..]),
            };
            // An environment has each name once, and no empty one.
            if !k.is_empty() && vars.len() < 16 && !vars.iter().any(|(n, _)| n.as_bytes() == k) {
                vars.push((
                    OsString::from_vec(k.to_vec()),
                    OsString::from_vec(v.to_vec()),
                ));
            }
        } else {
            args.push(OsString::from_vec(item.to_vec()));
        }
    }
    (args, vars)
}

/// The line a command drives or reads, if any.
fn line_of(c: &Command) -> Option<&LineChoice> {
    match c {
        Command::Run { line, .. } | Command::Hold { line, .. } | Command::Safe { line } => {
            line.as_ref()
        }
        Command::Watch { input, .. } => Some(input),
        _ => None,
    }
}

/// The `-q`/`-v` an argument list gives, when it is plain to see: `None`
/// when some other item could be an option's value or `run`'s PROGRAM (whose
/// own `-v` is not updlock's), or when a running count would leave -128..=127.
fn verbosity_given(args: &[OsString]) -> Option<i8> {
    let mut sum = 0i8;
    for a in args {
        let b = a.as_bytes();
        let flags: &[u8] = match b {
            b"--quiet" => b"q",
            b"--verbose" => b"v",
            [b'-', rest @ ..]
                if !rest.is_empty() && rest.iter().all(|&c| c == b'q' || c == b'v') =>
            {
                rest
            }
            [b'-', ..] | [b'r', b'u', b'n', ..] => return None,
            _ => b"",
        };
        for &c in flags {
            sum = sum.checked_add(if c == b'v' { 1 } else { -1 })?;
        }
    }
    Some(sum)
}

fn check_config(c: &Config) {
    if let Wait::For(d) = c.wait {
        assert!(d <= YEAR, "--wait {d:?}");
    }
    assert!(!c.supervisor.timeout.is_zero());
    assert!(c.supervisor.timeout <= YEAR);
    match &c.command {
        Command::Run { grace, .. } => assert!(*grace <= YEAR),
        Command::Hold {
            duration: Some(d), ..
        } => assert!(*d <= YEAR),
        Command::Watch { debounce, .. } => assert!(*debounce <= YEAR),
        _ => {}
    }
}

fn check_error(e: &cli::UsageError) {
    let text = e.to_string();
    assert!(
        !text.chars().any(char::is_control),
        "a control character in the refusal {text:?}"
    );
    assert!(text.ends_with(" (see 'updlock --help')"), "{text:?}");
    assert!(!text.starts_with(" (see"), "an empty refusal {text:?}");
}

fn check(args: Vec<OsString>, vars: Vec<(OsString, OsString)>) {
    let settings = Settings::from_vars(vars.clone());
    let got = cli::parse_under(args.clone(), settings.clone());
    let alone = cli::parse_with(args.clone(), Settings::default());
    if let Err(e) = &got {
        check_error(e);
    }
    if let Err(e) = &alone {
        check_error(e);
    }
    match (&settings, &got) {
        (Ok(s), got) => assert_eq!(got, &cli::parse_with(args.clone(), s.clone())),
        (Err(se), Ok(c)) => {
            assert!(
                matches!(c.command, Command::Help(_) | Command::Version),
                "broken settings ({se}) but {c:?}"
            );
            assert_eq!(alone.as_ref().ok(), Some(c));
        }
        // Whatever else is wrong, broken settings are what is said.
        (Err(se), Err(e)) => assert!(e.to_string().starts_with("UPDLOCK_"), "{se} -> {e}"),
    }
    let Ok(c) = &got else { return };
    check_config(c);
    if let Some(v) = verbosity_given(&args) {
        assert_eq!(c.verbosity, v, "{args:?}");
    }
    // What the command line says on its own, settings keep.
    let Ok(a) = &alone else { return };
    check_config(a);
    assert_eq!(c.verbosity, a.verbosity);
    assert_eq!(c.supervisor, a.supervisor);
    // A location option replaces the settings' location; --host still
    // takes --app-id and the rest from them where the options leave them open.
    match &a.location {
        Location::Container { dir: None } => {}
        Location::Host(_) => assert!(matches!(c.location, Location::Host(_)), "{c:?}"),
        other => assert_eq!(&c.location, other),
    }
    if let Some(line) = line_of(&a.command) {
        if !matches!(a.command, Command::Watch { .. }) {
            assert_eq!(line_of(&c.command), Some(line));
        } else {
            assert_eq!(line_of(&c.command).map(|l| &l.source), Some(&line.source));
        }
    }
    match (&a.command, &c.command) {
        (
            Command::Run {
                grace: g0,
                program: p0,
                args: a0,
                kick: k0,
                ..
            },
            Command::Run {
                grace,
                program,
                args,
                kick,
                ..
            },
        ) => assert_eq!((g0, p0, a0, k0), (grace, program, args, kick)),
        (
            Command::Hold {
                duration: d0,
                kick: k0,
                ..
            },
            Command::Hold { duration, kick, .. },
        ) => assert_eq!((d0, k0), (duration, kick)),
        (Command::Watch { kick: k0, .. }, Command::Watch { kick, .. }) => assert_eq!(k0, kick),
        (Command::Safe { .. }, Command::Safe { .. }) => {}
        (Command::Status { json: j0 }, Command::Status { json }) => assert_eq!(j0, json),
        (Command::Help(t0), Command::Help(t)) => assert_eq!(t0, t),
        (Command::Version, Command::Version) => {}
        (a, c) => panic!("the settings changed the command: {a:?} -> {c:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (args, vars) = split(data);
    if args.len() > 64 {
        return;
    }
    check(args, vars);
});
