//! `run` and `hold` with an actuator line: the line is active only while the
//! lock is held, it is safe again before the lock is released, and it ends
//! safe on every way out.
//!
//! The line is `--gpio file:P`: updlock appends one line per write to P ("1"
//! high, "0" low), so P is the whole record of what the line did. The proofs
//! of order come from observers inside the critical section: `run`'s program
//! prints P's last line and whether the lock is flocked at the moments that
//! matter (at its start, in its signal traps), and a waiter blocked on the
//! lock's flock prints P's last line the moment updlock lets the flock go.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// Shell function `wait_for_release` (needs `$P` and `$L`): starts a
/// background waiter for the flock on `$L` that prints
/// `released pin=<P's last line> file=<present|gone>` when it gets it, that
/// is, the moment the holder lets the lock go; returns once the kernel lists
/// the waiter as blocked (so the line it prints is about the release, not
/// about some later moment).
const WAITER: &str = r#"
wait_for_release() {
    exec 9<"$L"
    ino=$(stat -c %i "$L")
    {
        flock -x 9
        if [ -e "$L" ]; then f=present; else f=gone; fi
        echo "released pin=$(tail -n 1 "$P") file=$f"
    } &
    exec 9<&-
    n=0
    until grep -q -- "-> FLOCK .*:$ino " /proc/locks; do
        n=$((n + 1))
        if [ "$n" -ge 2000 ]; then echo "the release waiter never blocked"; exit 99; fi
        sleep 0.01
    done
}
"#;

/// The program `run` runs (`sh -c OBSERVER sh P L ACTION`): arms a release
/// waiter, prints `start pin=.. lock=held|free`, does ACTION; on SIGTERM,
/// SIGINT or SIGHUP prints `TERM|INT|HUP pin=.. lock=..` and exits 3.
fn observer() -> String {
    format!(
        r#"P=$1; L=$2; ACTION=$3
look() {{
    if flock -nx "$L" true; then l=free; else l=held; fi
    echo "$1 pin=$(tail -n 1 "$P") lock=$l"
}}
{WAITER}
wait_for_release
trap 'look TERM; exit 3' TERM
trap 'look INT; exit 3' INT
trap 'look HUP; exit 3' HUP
look start
eval "$ACTION"
"#
    )
}

/// A loop the program stays in until a signal (its trap ends it).
const FOREVER: &str = "while :; do sleep 0.05; done";

/// A test's places: the lock directory and, beside it, the line's file.
struct Rig {
    _t: TempDir,
    dir: PathBuf,
    pin: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let t = tempdir();
        let dir = mkdir(&t.path().join("locks"));
        let pin = t.path().join("pin");
        Rig { _t: t, dir, pin }
    }

    fn lock(&self) -> PathBuf {
        self.dir.join("updates.lock")
    }

    fn gpio(&self) -> String {
        format!("file:{}", s(&self.pin))
    }

    fn record(&self) -> Vec<String> {
        lines_of(&self.pin)
    }

    /// `updlock --lock-dir D [LOCATION...] SUB --gpio file:P EXTRA...`
    fn cmd(&self, sub: &str, extra: &[&str]) -> Command {
        let mut c = updlock_at(&self.dir);
        c.arg(sub).arg("--gpio").arg(self.gpio()).args(extra);
        c
    }

    /// `updlock ... run --gpio file:P EXTRA... -- sh -c OBSERVER sh P L ACTION`
    fn run_observer(&self, extra: &[&str], action: &str) -> Command {
        let mut c = self.cmd("run", extra);
        c.args(["--", "sh", "-c", &observer(), "sh"])
            .arg(&self.pin)
            .arg(self.lock())
            .arg(action);
        c
    }

    /// A process blocked on the lock's flock, once it is (see [`WAITER`]).
    fn release_waiter(&self) -> Proc {
        let script = format!("P=$1; L=$2\n{WAITER}\nwait_for_release\necho ready\nwait\n");
        let mut w = Proc::spawn(&mut sh(
            &script,
            &[self.pin.as_os_str(), self.lock().as_os_str()],
        ));
        let line = w.stdout_line(|l| !l.is_empty());
        assert_eq!(line, "ready", "{}", w.describe());
        w
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Asserts `texts` appear in `log` in this order, each on a later line than
/// the one before.
#[track_caller]
fn in_order(log: &str, texts: &[&str]) {
    let lines: Vec<&str> = log.lines().collect();
    let mut from = 0;
    for t in texts {
        match lines[from..].iter().position(|l| l.contains(t)) {
            Some(i) => from += i + 1,
            None => panic!("{t:?} not found after line {from} in order {texts:?}:\n{log}"),
        }
    }
}

/// The record of one activation whose end may write the safe level more than
/// once (a stop signal makes the line safe, and the end makes sure again):
/// the safe request, the active level once, then only the safe level.
#[track_caller]
fn one_pulse(record: &[String], safe: &str, active: &str) {
    let ok = record.len() >= 3
        && record[0] == safe
        && record[1] == active
        && record[2..].iter().all(|l| l == safe);
    assert!(
        ok,
        "record {record:?}: want {safe}, {active}, then only {safe}"
    );
}

// ---------------------------------------------------------------- run

#[test]
fn run_activates_inside_the_lock_and_ends_safe_before_the_release() {
    let r = Rig::new();
    let out = run(&mut r.run_observer(&[], "exit 0"));
    out.code_is(0)
        .stdout_is("start pin=1 lock=held\nreleased pin=0 file=gone\n");
    in_order(
        &out.stderr,
        &[
            "requested as output, safe (low)",
            "lock taken",
            "active (high)",
            ": safe (low)",
            "lock released",
        ],
    );
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    assert_empty(&r.dir);
}

#[test]
fn run_active_low_drives_low_for_active() {
    let r = Rig::new();
    let out = run(&mut r.run_observer(&["--active-low"], "exit 0"));
    out.code_is(0)
        .stdout_is("start pin=0 lock=held\nreleased pin=1 file=gone\n");
    in_order(
        &out.stderr,
        &[
            "requested as output, safe (high)",
            "lock taken",
            "active (low)",
            ": safe (high)",
            "lock released",
        ],
    );
    assert_eq!(r.record(), strs(&["1", "0", "1"]));
    assert_empty(&r.dir);
}

#[test]
fn run_a_failing_program_ends_safe_with_its_status() {
    let r = Rig::new();
    run(&mut r.run_observer(&[], "exit 7"))
        .code_is(7)
        .stdout_is("start pin=1 lock=held\nreleased pin=0 file=gone\n");
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    assert_empty(&r.dir);
}

#[test]
fn run_a_program_killed_by_a_signal_ends_safe_with_128_plus_n() {
    let r = Rig::new();
    run(&mut r.run_observer(&[], "kill -KILL $$"))
        .code_is(137)
        .stdout_is("start pin=1 lock=held\nreleased pin=0 file=gone\n");
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    assert_empty(&r.dir);
}

/// A program that cannot be started must not get the actuator switched on,
/// not even for the moment an exec takes to fail: the line is active only
/// while the program runs.
#[test]
fn run_a_missing_program_never_activates_the_line() {
    let r = Rig::new();
    let missing = r.dir.parent().unwrap().join("no-such-program");
    run(r.cmd("run", &["--"]).arg(&missing))
        .code_is(127)
        .stdout_is("")
        .stderr_has(&[&format!("{}: cannot run", s(&missing))]);
    assert_empty(&r.dir);
    assert_eq!(
        r.record(),
        strs(&["0"]),
        "the line was driven active although no program could run"
    );
}

#[test]
fn run_a_program_that_cannot_be_executed_never_activates_the_line() {
    let r = Rig::new();
    let prog = r.dir.parent().unwrap().join("not-executable");
    fs::write(&prog, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o644)).unwrap();
    run(r.cmd("run", &["--"]).arg(&prog))
        .code_is(126)
        .stdout_is("")
        .stderr_has(&[&format!("{}: cannot run", s(&prog))]);
    assert_empty(&r.dir);
    assert_eq!(
        r.record(),
        strs(&["0"]),
        "the line was driven active although no program could run"
    );
}

/// A stop signal: the line goes safe before the signal reaches the program,
/// while the lock is still held; updlock ends with the program's status.
#[test]
fn run_stop_signals_make_the_line_safe_before_they_are_forwarded() {
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        let r = Rig::new();
        let name = &format!("{sig}")[3..];
        let mut p = Proc::spawn(&mut r.run_observer(&[], FOREVER));
        let start = p.stdout_line(|l| l.starts_with("start"));
        assert_eq!(start, "start pin=1 lock=held", "{}", p.describe());
        p.signal(sig);
        let seen = p.stdout_line(|l| l.starts_with(name));
        assert_eq!(seen, format!("{name} pin=0 lock=held"), "{}", p.describe());
        let out = p.finish();
        out.code_is(3)
            .stdout_has(&["released pin=0 file=gone"])
            .stderr_lacks("killing");
        in_order(
            &out.stderr,
            &[
                "active (high)",
                ": safe (low)",
                &format!("{sig}: forwarding it to the program"),
                "lock released",
            ],
        );
        one_pulse(&r.record(), "0", "1");
        assert_empty(&r.dir);
    }
}

#[test]
fn run_a_program_that_ignores_the_signal_is_killed_and_the_line_was_safe_all_along() {
    let r = Rig::new();
    let action = r#"trap "" TERM; echo ignoring; while :; do sleep 0.05; done"#;
    let mut p = Proc::spawn(&mut r.run_observer(&["--grace", "300ms"], action));
    p.wait_stdout("ignoring");
    p.signal(SIGTERM);
    // The line went safe at the signal, not at the kill.
    p.wait_stderr(": safe (low)");
    assert_eq!(r.record().last().map(String::as_str), Some("0"));
    p.wait_stderr("killing it");
    let out = p.finish();
    out.code_is(137).stdout_has(&["released pin=0 file=gone"]);
    one_pulse(&r.record(), "0", "1");
    assert_empty(&r.dir);
}

/// The supervisor's override, played by the test: it removes our file and
/// puts its own in its place. The line goes safe before the program is
/// stopped; the supervisor's file stays.
#[test]
fn run_an_override_makes_the_line_safe_before_the_program_is_stopped() {
    let r = Rig::new();
    let mut p = Proc::spawn(&mut r.run_observer(&[], FOREVER));
    let start = p.stdout_line(|l| l.starts_with("start"));
    assert_eq!(start, "start pin=1 lock=held", "{}", p.describe());
    fs::remove_file(r.lock()).unwrap();
    fs::write(r.lock(), "the supervisor's\n").unwrap();
    let theirs = Snapshot::of(&r.lock());
    let seen = p.stdout_line(|l| l.starts_with("TERM"));
    assert!(seen.starts_with("TERM pin=0 "), "{seen}\n{}", p.describe());
    let out = p.finish();
    out.code_is(3)
        .stdout_has(&["released pin=0 file=present"])
        .stderr_has(&["override", "stopping the program", "lock released"]);
    in_order(
        &out.stderr,
        &["active (high)", ": safe (low)", "stopping the program"],
    );
    one_pulse(&r.record(), "0", "1");
    theirs.unchanged(&r.lock());
    assert_names(&r.dir, &["updates.lock"]);
}

/// The same with the supervisor simulator: `lockfile` as uid 65534, then
/// SIGTERM to the service (updlock).
#[test]
fn run_the_supervisors_override_finds_the_line_safe() {
    if skip_unless_root() {
        return;
    }
    let r = Rig::new();
    let mut p = Proc::spawn(&mut r.run_observer(&["--grace", "3s"], FOREVER));
    let start = p.stdout_line(|l| l.starts_with("start"));
    assert_eq!(start, "start pin=1 lock=held", "{}", p.describe());
    let pid = p.pid().to_string();
    run(supervisor_sim(&r.dir).args(["--force", "--keep", "--grace", "10", "--service-pid", &pid]))
        .code_is(0)
        .stdout_has(&["update applied"]);
    let seen = p.stdout_line(|l| l.starts_with("TERM"));
    assert!(seen.starts_with("TERM pin=0 "), "{seen}\n{}", p.describe());
    p.finish()
        .code_is(3)
        .stdout_has(&["released pin=0 file=present"])
        .stderr_lacks("killing it");
    one_pulse(&r.record(), "0", "1");
    assert_names(&r.dir, &LOCK_NAMES);
    for n in LOCK_NAMES {
        assert_eq!(owner(&r.dir.join(n)), NOBODY, "owner of {n}");
    }
    run(supervisor_sim(&r.dir).arg("--release")).code_is(0);
    assert_empty(&r.dir);
}

// ---------------------------------------------------------------- hold

#[test]
fn hold_says_held_only_once_the_line_is_active_and_ends_safe_before_the_release() {
    let r = Rig::new();
    let mut h = Proc::spawn(&mut r.cmd("hold", &[]));
    h.wait_held();
    assert_eq!(r.record(), strs(&["0", "1"]), "{}", h.describe());
    assert!(flocked(&r.lock()), "the lock is not flocked while held");
    let mut w = r.release_waiter();
    h.signal(SIGTERM);
    let out = h.finish();
    out.code_is(0).stdout_is("held\n");
    in_order(
        &out.stderr,
        &[
            "requested as output, safe (low)",
            "lock taken",
            "active (high)",
            ": safe (low)",
            "SIGTERM: releasing",
            "lock released",
        ],
    );
    w.wait_stdout("released");
    w.finish()
        .code_is(0)
        .stdout_is("ready\nreleased pin=0 file=gone\n");
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    assert_empty(&r.dir);
}

#[test]
fn hold_for_a_while_ends_safe() {
    let r = Rig::new();
    run(&mut r.cmd("hold", &["--for", "200ms"]))
        .code_is(0)
        .stdout_is("held\n");
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    assert_empty(&r.dir);
}

#[test]
fn hold_active_low_ends_high() {
    let r = Rig::new();
    let mut h = Proc::spawn(&mut r.cmd("hold", &["--active-low"]));
    h.wait_held();
    assert_eq!(r.record(), strs(&["1", "0"]), "{}", h.describe());
    h.signal(SIGINT);
    h.finish().code_is(0);
    assert_eq!(r.record(), strs(&["1", "0", "1"]));
    assert_empty(&r.dir);
}

#[test]
fn hold_overridden_makes_the_line_safe_and_exits_75() {
    let r = Rig::new();
    let mut h = Proc::spawn(&mut r.cmd("hold", &[]));
    h.wait_held();
    let mut w = r.release_waiter();
    fs::remove_file(r.lock()).unwrap();
    let out = h.finish();
    out.code_is(75).stderr_has(&["taken from us"]);
    in_order(
        &out.stderr,
        &[
            "active (high)",
            ": safe (low)",
            "taken from us",
            "lock released",
        ],
    );
    w.wait_stdout("released");
    w.finish()
        .code_is(0)
        .stdout_is("ready\nreleased pin=0 file=gone\n");
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    assert_empty(&r.dir);
}

// ---------------------------------------------------------------- someone else holds the lock

#[test]
fn a_lock_held_by_another_updlock_never_activates_the_line() {
    let r = Rig::new();
    let mut other = hold(&r.dir);
    let theirs: Vec<Snapshot> = LOCK_NAMES
        .iter()
        .map(|n| Snapshot::of(&r.dir.join(n)))
        .collect();
    let busy = format!("held by another updlock (pid {}", other.pid());

    run(&mut r.cmd("hold", &[]))
        .code_is(73)
        .stdout_is("")
        .stderr_has(&[&busy]);
    assert_eq!(r.record(), strs(&["0"]), "hold");

    // run: the program never starts either.
    let pin2 = r.dir.parent().unwrap().join("pin2");
    let mut c = updlock_at(&r.dir);
    c.args(["run", "--gpio"])
        .arg(format!("file:{}", s(&pin2)))
        .args(["--", "sh", "-c", "echo ran"]);
    run(&mut c).code_is(73).stdout_is("").stderr_has(&[&busy]);
    assert_eq!(lines_of(&pin2), strs(&["0"]), "run");

    // A short wait that runs out.
    let pin3 = r.dir.parent().unwrap().join("pin3");
    let mut c = updlock_at(&r.dir);
    c.args(["--wait", "200ms", "hold", "--gpio"])
        .arg(format!("file:{}", s(&pin3)));
    run(&mut c).code_is(73).stdout_is("");
    assert_eq!(lines_of(&pin3), strs(&["0"]), "hold --wait");

    // A waiter stopped before it gets the lock.
    let pin4 = r.dir.parent().unwrap().join("pin4");
    let mut c = updlock_at(&r.dir);
    c.args(["--wait", "20s", "hold", "--gpio"])
        .arg(format!("file:{}", s(&pin4)));
    let mut w = Proc::spawn(&mut c);
    w.wait_stderr("waiting");
    assert_eq!(lines_of(&pin4), strs(&["0"]), "a waiter");
    w.signal(SIGTERM);
    w.finish().code_is(75).stdout_is("");
    assert_eq!(lines_of(&pin4), strs(&["0"]), "a waiter stopped");

    for (n, snap) in LOCK_NAMES.iter().zip(&theirs) {
        snap.unchanged(&r.dir.join(n));
    }
    assert_names(&r.dir, &LOCK_NAMES);
    other.signal(SIGTERM);
    other.finish().code_is(0);
    assert_empty(&r.dir);
}

#[test]
fn a_touched_lock_file_never_activates_the_line() {
    let r = Rig::new();
    fs::write(r.lock(), "").unwrap();
    let theirs = Snapshot::of(&r.lock());
    run(&mut r.cmd("hold", &[]))
        .code_is(73)
        .stdout_is("")
        .stderr_has(&["held by someone else", &s(&r.lock())]);
    run(r.cmd("run", &["--"]).args(["sh", "-c", "echo ran"]))
        .code_is(73)
        .stdout_is("");
    assert_eq!(r.record(), strs(&["0", "0"]));
    theirs.unchanged(&r.lock());
    assert_names(&r.dir, &["updates.lock"]);
}

// ---------------------------------------------------------------- after a SIGKILL

/// SIGKILL leaves the line as it was (the documented hazard). The next
/// start makes it safe before it does anything else, re-takes the stale
/// lock, and only then drives it active.
#[test]
fn after_a_sigkill_the_next_start_makes_the_line_safe_first() {
    let r = Rig::new();
    let mut h = Proc::spawn(&mut r.cmd("hold", &[]));
    h.wait_held();
    let dead = h.pid();
    h.signal(SIGKILL);
    h.wait();
    h.finish().killed_by(SIGKILL);
    assert_eq!(r.record(), strs(&["0", "1"]), "nothing runs at a SIGKILL");
    assert_names(&r.dir, &LOCK_NAMES);

    let mut h2 = Proc::spawn(&mut r.cmd("hold", &[]));
    h2.wait_stderr("requested as output, safe (low)");
    h2.wait_stderr(&format!("re-took a stale lock left by updlock pid {dead}"));
    h2.wait_stderr("active (high)");
    h2.wait_held();
    // Its first write is the safe level, then the active one.
    assert_eq!(r.record(), strs(&["0", "1", "0", "1"]));
    for n in LOCK_NAMES {
        assert_tagged_by(&r.dir.join(n), h2.pid());
    }
    h2.signal(SIGTERM);
    h2.finish().code_is(0);
    assert_eq!(r.record(), strs(&["0", "1", "0", "1", "0"]));
    assert_empty(&r.dir);
}

/// `updlock safe` is the recovery (ExecStopPost=): it drives the line safe
/// and takes no lock.
#[test]
fn after_a_sigkill_safe_drives_the_line_safe_and_leaves_the_lock_alone() {
    let r = Rig::new();
    let mut h = Proc::spawn(&mut r.cmd("hold", &[]));
    h.wait_held();
    let dead = h.pid();
    h.signal(SIGKILL);
    h.finish().killed_by(SIGKILL);
    assert_eq!(r.record(), strs(&["0", "1"]));
    let stale: Vec<Snapshot> = LOCK_NAMES
        .iter()
        .map(|n| Snapshot::of(&r.dir.join(n)))
        .collect();

    let mut c = updlock();
    c.args(["safe", "--gpio"]).arg(r.gpio());
    run(&mut c)
        .code_is(0)
        .stdout_is("")
        .stderr_has(&["driven to its safe level (low)"]);
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    for (n, snap) in LOCK_NAMES.iter().zip(&stale) {
        snap.unchanged(&r.dir.join(n));
        assert_tagged_by(&r.dir.join(n), dead);
    }
}

// ---------------------------------------------------------------- nothing leaks to the program

/// The lock's flock is updlock's alone: a program that outlives updlock (or
/// a child it leaves behind) must not keep the lock alive. Checked through
/// the release waiter, which gets the flock while the program's own
/// background child is still running.
#[test]
fn the_flock_is_not_inherited_by_the_program() {
    let r = Rig::new();
    let action = "sleep 1000 >/dev/null 2>&1 & echo child=$!; exit 0";
    let mut p = Proc::spawn(&mut r.run_observer(&[], action));
    let child = p.stdout_line(|l| l.starts_with("child="));
    let child: i32 = child["child=".len()..].parse().expect("a pid");
    let _child = Foreign::new(child);
    let out = p.finish();
    out.code_is(0).stdout_has(&["released pin=0 file=gone"]);
    assert_eq!(r.record(), strs(&["0", "1", "0"]));
    assert_empty(&r.dir);
}
