//! Every way a line option is refused: the documented exit code, one line on
//! stderr naming the line and the reason, no lock taken (the lock directory
//! stays empty), and the line never driven active (its file not even
//! created when the refusal comes before the request).
//!
//! This machine has no GPIO chips; the refusals that depend on that are
//! skipped where chips exist (the real-hardware path is tested under QEMU).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::*;

fn has_gpio_chips() -> bool {
    fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("gpiochip"))
        })
        .unwrap_or(false)
}

#[must_use]
fn skip_if_chips() -> bool {
    if has_gpio_chips() {
        eprintln!("skipped: this machine has GPIO chips");
        true
    } else {
        false
    }
}

/// A test's places: an empty lock directory and, beside it, where a
/// `file:` line would be.
struct Rig {
    t: TempDir,
    dir: PathBuf,
    pin: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let t = tempdir();
        let dir = mkdir(&t.path().join("locks"));
        let pin = t.path().join("pin");
        Rig { t, dir, pin }
    }

    fn file(&self) -> String {
        format!("file:{}", s(&self.pin))
    }

    /// `updlock --lock-dir D ARGS...`
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = updlock_at(&self.dir);
        c.args(args);
        c
    }

    /// Nothing was taken or created.
    #[track_caller]
    fn untouched(&self) {
        assert_empty(&self.dir);
        assert!(
            !self.pin.exists(),
            "{} was created: {:?}",
            s(&self.pin),
            fs::read_to_string(&self.pin)
        );
    }
}

/// The subcommands that take an output line, each with what it needs after
/// the line options.
const OUTPUT_USES: [&[&str]; 3] = [&["hold"], &["run", "--", "sh", "-c", "echo ran"], &["safe"]];

/// `SUB LINE-OPTIONS REST` for each of `hold`, `run` and `safe`.
fn with_each_output_use(line: &[&str], mut check: impl FnMut(Vec<&str>)) {
    for uses in OUTPUT_USES {
        let mut args = vec![uses[0]];
        args.extend_from_slice(line);
        args.extend_from_slice(&uses[1..]);
        check(args);
    }
}

// ---------------------------------------------------------------- no such line (69)

#[test]
fn a_line_name_without_chips_is_unavailable() {
    if skip_if_chips() {
        return;
    }
    let r = Rig::new();
    with_each_output_use(&["--gpio", "GPIO17"], |args| {
        run(&mut r.cmd(&args)).refused(69, &["GPIO17: no GPIO chips"]);
    });
    run(&mut r.cmd(&["watch", "--input", "GPIO17"])).refused(69, &["GPIO17: no GPIO chips"]);
    r.untouched();
}

#[test]
fn a_chip_that_does_not_exist_is_unavailable() {
    if skip_if_chips() {
        return;
    }
    let r = Rig::new();
    for (spec, phrase) in [
        ("gpiochip0:3", "gpiochip0:3: no such GPIO chip"),
        ("/dev/gpiochip0:3", "no such GPIO chip"),
        ("nosuchlabel:3", "nosuchlabel:3: no GPIO chips"),
    ] {
        with_each_output_use(&["--gpio", spec], |args| {
            run(&mut r.cmd(&args)).refused(69, &[phrase]);
        });
        run(&mut r.cmd(&["watch", "--input", spec])).refused(69, &[phrase]);
    }
    r.untouched();
}

#[test]
fn board_pins_that_are_not_lines_are_unavailable() {
    let r = Rig::new();
    for (pin, phrases) in [
        ("1", &["pin 1 of rpi4b", "power"][..]),
        ("6", &["pin 6 of rpi4b is ground"]),
        ("41", &["rpi4b has no pin 41"]),
    ] {
        with_each_output_use(&["--board", "rpi4b", "--pin", pin], |args| {
            run(&mut r.cmd(&args)).refused(69, phrases);
        });
        run(&mut r.cmd(&["watch", "--board", "rpi4b", "--pin", pin])).refused(69, phrases);
    }
    r.untouched();
}

#[test]
fn a_board_pin_without_its_chip_is_unavailable() {
    if skip_if_chips() {
        return;
    }
    let r = Rig::new();
    with_each_output_use(&["--board", "rpi4b", "--pin", "11"], |args| {
        run(&mut r.cmd(&args)).refused(69, &["rpi4b pin 11 (GPIO17)", "no GPIO chips"]);
    });
    r.untouched();
}

#[test]
fn an_unknown_board_is_unavailable() {
    let r = Rig::new();
    with_each_output_use(&["--board", "nosuch", "--pin", "11"], |args| {
        run(&mut r.cmd(&args)).refused(69, &["unknown board 'nosuch'", "rpi4b"]);
    });
    r.untouched();
}

#[test]
fn a_malformed_board_profile_names_its_file_and_line() {
    let r = Rig::new();
    fs::write(
        r.t.path().join("bad.board"),
        "id = bad\nmodel = Bad\nchip = c\npin 1 = banana split\n",
    )
    .unwrap();
    with_each_output_use(&["--board", "./bad.board", "--pin", "1"], |args| {
        run(r.cmd(&args).current_dir(r.t.path())).refused(69, &["./bad.board:4:", "banana split"]);
    });
    assert_empty(&r.dir);
}

/// A `file:` line whose directory does not exist: 69 (there is no such
/// line), like a chip that is not there.
#[test]
fn a_file_line_in_a_missing_directory_is_unavailable() {
    let r = Rig::new();
    let p = r.t.path().join("no-such-dir").join("pin");
    let spec = format!("file:{}", s(&p));
    let line = format!(
        "updlock: {spec}: cannot open {}: no such file or directory\n",
        s(&p)
    );
    with_each_output_use(&["--gpio", &spec], |args| {
        let out = run(&mut r.cmd(&args));
        out.refused(69, &[&line]);
        assert_eq!(out.stderr, line);
    });
    let out = run(&mut r.cmd(&["watch", "--input", &spec]));
    out.refused(69, &[&line]);
    assert_eq!(out.stderr, line);
    r.untouched();
    assert!(!p.parent().unwrap().exists());
}

/// A `file:` line that is a directory: 69, saying so.
#[test]
fn a_file_line_that_is_a_directory_is_unavailable() {
    let r = Rig::new();
    let spec = format!("file:{}", s(&r.dir));
    let line = format!(
        "updlock: {spec}: cannot open {}: is a directory\n",
        s(&r.dir)
    );
    with_each_output_use(&["--gpio", &spec], |args| {
        let out = run(&mut r.cmd(&args));
        out.refused(69, &[&line]);
        assert_eq!(out.stderr, line);
    });
    r.untouched();
}

/// A chip path that is not a GPIO chip (/dev/null): 69, one sentence
/// naming the device and the failed ioctl's errno.
#[test]
fn a_device_that_is_not_a_gpio_chip_is_unavailable() {
    let r = Rig::new();
    let line = "updlock: /dev/null:3: /dev/null is not a GPIO character device (the GPIO chip-info ioctl failed: ENOTTY)\n";
    with_each_output_use(&["--gpio", "/dev/null:3"], |args| {
        let out = run(&mut r.cmd(&args));
        out.refused(69, &[line]);
        assert_eq!(out.stderr, line);
    });
    let out = run(&mut r.cmd(&["watch", "--input", "/dev/null:3"]));
    out.refused(69, &[line]);
    r.untouched();
}

/// docs/bad-input.md's row: a /dev/gpiochip0 that is another character
/// device (here 1:3, /dev/null's), on a tmpfs over /dev in a private mount
/// namespace, so the machine's /dev is untouched.
#[test]
fn a_gpiochip0_that_is_not_a_gpio_chip_is_unavailable() {
    if skip_unless_root() {
        return;
    }
    let r = Rig::new();
    let out = run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"mount -t tmpfs none /dev || exit 90
               mknod -m 666 /dev/null c 1 3 && mknod -m 600 /dev/gpiochip0 c 1 3 || exit 91
               for spec in gpiochip0:3 /dev/gpiochip0:3; do
                   "$2" --lock-dir "$1" hold --gpio "$spec"
                   echo "rc=$?"
               done"#,
        )
        .arg("sh")
        .arg(&r.dir)
        .arg(UPDLOCK)
        .env_remove("RUST_LOG"));
    out.code_is(0).stdout_is("rc=69\nrc=69\n");
    assert_eq!(
        out.stderr,
        "updlock: gpiochip0:3: /dev/gpiochip0 is not a GPIO character device (the GPIO chip-info ioctl failed: ENOTTY)\n\
         updlock: /dev/gpiochip0:3: /dev/gpiochip0 is not a GPIO character device (the GPIO chip-info ioctl failed: ENOTTY)\n"
    );
    r.untouched();
}

// ---------------------------------------------------------------- --safe that is the active level (69)

#[test]
fn a_safe_level_that_is_the_active_one_is_refused() {
    let r = Rig::new();
    let file = r.file();
    for (line, safe, phrases) in [
        (
            &["--gpio", &file][..],
            "high",
            &["--safe high", "active-high", "--active-low"][..],
        ),
        (
            &["--gpio", &file, "--active-low"],
            "low",
            &["--safe low", "active-low"],
        ),
    ] {
        let mut opts = line.to_vec();
        opts.extend(["--safe", safe]);
        with_each_output_use(&opts, |args| {
            let mut texts = vec![file.as_str()];
            texts.extend_from_slice(phrases);
            run(&mut r.cmd(&args)).refused(69, &texts);
        });
    }
    r.untouched();
}

/// The consistent `--safe` is accepted: the refusal above is about the
/// level, not the option.
#[test]
fn a_safe_level_that_is_the_inactive_one_is_accepted() {
    let r = Rig::new();
    run(&mut r.cmd(&[
        "hold",
        "--gpio",
        &r.file(),
        "--safe",
        "low",
        "--for",
        "10ms",
    ]))
    .code_is(0)
    .stdout_is("held\n");
    assert_eq!(lines_of(&r.pin), ["0", "1", "0"]);
    assert_empty(&r.dir);
}

// ---------------------------------------------------------------- permission (77)

#[test]
fn a_file_line_the_user_cannot_create_is_permission_denied() {
    if skip_unless_root() {
        return;
    }
    let t = open_tempdir();
    let dir = mkdir(&t.path().join("locks"));
    // The lock directory is writable by anyone: only the line is refused.
    chmod(&dir, 0o1777);
    let ro = mkdir(&t.path().join("ro"));
    chmod(&ro, 0o555);
    let p = ro.join("pin");
    let spec = format!("file:{}", s(&p));
    for uses in OUTPUT_USES {
        let mut c = as_user(1000, UPDLOCK);
        c.env_remove("RUST_LOG")
            .arg("--lock-dir")
            .arg(&dir)
            .arg(uses[0])
            .args(["--gpio", &spec])
            .args(&uses[1..]);
        run(&mut c).refused(77, &[&spec, "permission denied", &s(&p)]);
    }
    assert_empty(&dir);
    assert_empty(&ro);
}

// ---------------------------------------------------------------- safe

#[test]
fn safe_drives_the_safe_level_and_takes_no_lock() {
    let r = Rig::new();
    run(&mut r.cmd(&["safe", "--gpio", &r.file(), "--active-low"]))
        .code_is(0)
        .stdout_is("")
        .stderr_has(&["driven to its safe level (high)"]);
    assert_eq!(lines_of(&r.pin), ["1"]);
    // A line left active is driven safe.
    append(&r.pin, "0\n");
    run(&mut r.cmd(&[
        "safe",
        "--gpio",
        &r.file(),
        "--active-low",
        "--safe",
        "high",
    ]))
    .code_is(0);
    assert_eq!(lines_of(&r.pin), ["1", "0", "1"]);

    let other = r.t.path().join("other");
    let mut c = updlock();
    c.args(["safe", "--gpio"])
        .arg(format!("file:{}", s(&other)));
    run(&mut c)
        .code_is(0)
        .stderr_has(&["driven to its safe level (low)"]);
    assert_eq!(lines_of(&other), ["0"]);
    assert_empty(&r.dir);
}

// ---------------------------------------------------------------- usage (64)

#[test]
fn line_usage_errors_exit_64_with_one_line() {
    let r = Rig::new();
    let file = r.file();
    for (args, phrase) in [
        (&["hold", "--pin", "11"][..], "--pin needs --board"),
        (&["hold", "--board", "rpi4b"], "--board needs --pin"),
        (&["hold", "--board", "rpi4b", "--pin", "eleven"], "eleven"),
        (
            &["hold", "--gpio", &file, "--board", "rpi4b", "--pin", "11"],
            "either",
        ),
        (&["hold", "--active-low"], "--active-low"),
        (&["hold", "--safe", "low"], "--safe"),
        (&["hold", "--gpio", &file, "--safe", "sideways"], "sideways"),
        (
            &["run", "--gpio", &file, "--safe", "sideways", "--", "true"],
            "sideways",
        ),
        (&["safe", "--gpio", &file, "--safe", "sideways"], "sideways"),
        (&["watch"], "an input line is needed"),
        (
            &["watch", "--input", &file, "--debounce", "soon"],
            "--debounce",
        ),
        (&["watch", "--input", &file, "--wait", "1s"], "--wait"),
        (&["status", "--gpio", &file], "--gpio"),
        (&["hold", "--input", &file], "--input"),
        (&["watch", "--gpio", &file], "--gpio"),
    ] {
        run(&mut r.cmd(args)).refused(64, &[phrase, "updlock --help"]);
    }
    r.untouched();
}

/// A line with a control character in it is refused at once, shown
/// escaped: it would otherwise reach every later message as it is.
#[test]
fn a_line_with_a_control_character_is_refused_escaped() {
    let r = Rig::new();
    let newline = format!("{}\nx", r.file());
    let shown = format!("'{}\\nx'", r.file());
    for (args, phrase) in [
        (
            &["hold", "--gpio", "GPIO\x1b[2J17"][..],
            "'GPIO\\u{1b}[2J17'",
        ),
        (&["hold", "--gpio", "chip\r:3"], "'chip\\r:3'"),
        (&["hold", "--gpio", &newline], &shown),
    ] {
        let out = run(&mut r.cmd(args));
        out.refused(
            64,
            &[
                &format!("--gpio: {phrase}: a line is never named with a control character"),
                "updlock --help",
            ],
        );
        assert!(
            !out.stderr.trim_end().chars().any(char::is_control),
            "{out:?}"
        );
    }
    r.untouched();
}
