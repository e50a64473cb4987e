//! `updlock run`: the lock is held exactly while the program runs, the
//! program's status comes back, stop signals are forwarded, and the lock is
//! released on every way out.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// `updlock --lock-dir DIR run -- sh -c SCRIPT sh ARGS...`
fn run_sh(dir: &Path, script: &str, args: &[&OsStr]) -> std::process::Command {
    let mut c = updlock_at(dir);
    c.args(["run", "--", "sh", "-c", script, "sh"]).args(args);
    c
}

#[test]
fn the_programs_exit_status_is_passed_through() {
    let t = tempdir();
    let d = t.path();
    for code in [0, 1, 7, 42, 200] {
        run(&mut run_sh(d, &format!("exit {code}"), &[]))
            .code_is(code)
            .stderr_has(&["lock taken", "lock released"]);
        assert_empty(d);
    }
}

#[test]
fn death_by_a_signal_is_128_plus_n() {
    let t = tempdir();
    let d = t.path();
    run(&mut run_sh(d, "kill -KILL $$", &[])).code_is(137);
    assert_empty(d);
    run(&mut run_sh(d, "kill -USR1 $$", &[])).code_is(128 + 10);
    assert_empty(d);
}

#[test]
fn a_missing_program_is_127_and_the_lock_is_released() {
    let t = tempdir();
    let d = mkdir(&t.path().join("locks"));
    let missing = t.path().join("no-such-program");
    run(updlock_at(&d).arg("run").arg("--").arg(&missing))
        .code_is(127)
        .stdout_is("")
        .stderr_has(&[&format!("{}: cannot run", s(&missing)), "lock released"]);
    assert_empty(&d);
    run(updlock_at(&d).args(["run", "--", "updlock-test-no-such-program-on-path"]))
        .code_is(127)
        .stderr_has(&["updlock-test-no-such-program-on-path: cannot run"]);
    assert_empty(&d);
}

#[test]
fn a_program_that_cannot_be_executed_is_126() {
    let t = tempdir();
    let d = mkdir(&t.path().join("locks"));
    let prog = t.path().join("not-executable");
    fs::write(&prog, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o644)).unwrap();
    // Not even root may execute a file without any x bit.
    run(updlock_at(&d).arg("run").arg("--").arg(&prog))
        .code_is(126)
        .stderr_has(&[&format!("{}: cannot run", s(&prog))]);
    assert_empty(&d);
}

#[test]
fn the_program_runs_while_the_lock_is_held() {
    let t = tempdir();
    let d = t.path();
    let p = Proc::spawn(&mut run_sh(
        d,
        r#"head -1 "$1"; head -1 "$2"; ls -A "$3""#,
        &[
            d.join("updates.lock").as_os_str(),
            d.join("resin-updates.lock").as_os_str(),
            d.as_os_str(),
        ],
    ));
    let pid = p.pid();
    let out = p.finish();
    out.code_is(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    for l in &lines[..2] {
        assert!(l.starts_with(&format!("updlock/1 pid={pid} ")), "{out:?}");
    }
    // Both lock files, and no temporary left from taking them.
    let mut names = lines[2..].to_vec();
    names.sort();
    assert_eq!(names, ["resin-updates.lock", "updates.lock"], "{out:?}");
    assert_empty(d);
}

#[test]
fn another_updlock_is_refused_while_the_program_runs() {
    let t = tempdir();
    let d = t.path();
    let mut p = Proc::spawn(&mut run_sh(d, "echo ready; exec sleep 1000", &[]));
    p.wait_stdout("ready");
    run(updlock_at(d).arg("hold")).refused(
        73,
        &[
            &format!("held by another updlock (pid {}", p.pid()),
            &s(&d.join("updates.lock")),
        ],
    );
    flock_is_held(&d.join("updates.lock"));
    p.signal(SIGTERM);
    // sleep dies of the forwarded SIGTERM.
    p.finish()
        .code_is(128 + 15)
        .stderr_has(&["SIGTERM: forwarding it to the program"]);
    assert_empty(d);
}

fn flock_is_held(path: &Path) {
    run(std::process::Command::new("flock")
        .arg("-nx")
        .arg(path)
        .arg("true"))
    .code_is(1);
}

#[test]
fn sigterm_is_forwarded_and_the_programs_status_returned() {
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        let t = tempdir();
        let d = t.path();
        let name = &format!("{sig}")[3..];
        let mut p = Proc::spawn(&mut run_sh(
            d,
            &format!(r#"trap "exit 3" {name}; echo ready; while :; do sleep 0.1; done"#),
            &[],
        ));
        p.wait_stdout("ready");
        assert_names(d, &LOCK_NAMES);
        p.signal(sig);
        p.finish()
            .code_is(3)
            .stderr_has(&[
                &format!("{sig}: forwarding it to the program"),
                "lock released",
            ])
            .stderr_lacks("killing");
        assert_empty(d);
    }
}

#[test]
fn a_program_that_ignores_sigterm_is_killed_after_the_grace() {
    let t = tempdir();
    let d = t.path();
    let mut c = updlock_at(d);
    c.args(["run", "--grace", "300ms", "--", "sh", "-c"])
        .arg(r#"trap "" TERM; echo ready; while :; do sleep 0.1; done"#);
    let mut p = Proc::spawn(&mut c);
    p.wait_stdout("ready");
    p.signal(SIGTERM);
    p.finish()
        .code_is(137)
        .stderr_has(&["within 300 ms", "killing it", "lock released"]);
    assert_empty(d);
}

/// PR_SET_PDEATHSIG: the program must not go on without the lock when
/// updlock itself is SIGKILLed.
#[test]
fn the_program_gets_sigterm_when_updlock_is_killed() {
    let t = tempdir();
    let d = t.path();
    let mut p = Proc::spawn(&mut run_sh(d, "echo pid=$$; exec sleep 1000", &[]));
    let line = p.wait_stdout("pid=");
    let child_pid: i32 = line["pid=".len()..].parse().expect("a pid");
    let mut child = Foreign::new(child_pid);
    p.signal(SIGKILL);
    p.wait();
    assert!(
        child.ends(),
        "the program (pid {child_pid}) is still running {TIMEOUT:?} after updlock was killed"
    );
    p.finish().killed_by(SIGKILL);
    // updlock had no chance to release: a stale lock, which status reports.
    run(updlock_at(d).arg("status"))
        .code_is(73)
        .stdout_has(&["stale"]);
}

/// The program's own stdin, stdout and stderr are updlock's.
#[test]
fn the_program_inherits_stdout_and_stderr() {
    let t = tempdir();
    run(&mut run_sh(t.path(), "echo to-out; echo to-err >&2", &[]))
        .code_is(0)
        .stdout_is("to-out\n")
        .stderr_has(&["to-err"]);
}
