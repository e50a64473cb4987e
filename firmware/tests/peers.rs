//! updlock next to the other parties of the protocol (SPEC §2-§6): procmail
//! `lockfile` (what the supervisor runs), util-linux `flock` (what the host
//! OS's safe_reboot runs), foreign objects at the lock path, and the
//! supervisor itself, played by tests/supervisor-sim.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::stat::Mode;

use common::*;

fn lockfile(path: &Path) -> Finished {
    run(Command::new("lockfile").arg("-r").arg("0").arg(path))
}

fn flock_nx(path: &Path) -> Finished {
    run(Command::new("flock").arg("-nx").arg(path).arg("true"))
}

// ---------------------------------------------------------------- peers see updlock

#[test]
fn lockfile_and_flock_see_the_lock_updlock_holds() {
    let t = tempdir();
    let d = t.path();
    let mut h = hold(d);
    let before: Vec<Snapshot> = LOCK_NAMES
        .iter()
        .map(|n| Snapshot::of(&d.join(n)))
        .collect();
    // The supervisor's check: the file exists.
    for n in LOCK_NAMES {
        lockfile(&d.join(n)).code_is(73);
    }
    // The host OS's check: updates.lock is flocked.
    flock_nx(&d.join("updates.lock")).code_is(1);
    for (n, snap) in LOCK_NAMES.iter().zip(&before) {
        snap.unchanged(&d.join(n));
    }
    assert_names(d, &LOCK_NAMES);
    h.signal(SIGTERM);
    h.finish().code_is(0);
    assert_empty(d);
    // And once released, the supervisor gets it at once.
    lockfile(&d.join("updates.lock")).code_is(0);
}

// ---------------------------------------------------------------- updlock sees the others

/// Something someone else put at a lock path, and everything about it that
/// must survive updlock's attempt.
struct Planted {
    name: &'static str,
    snapshots: Vec<(PathBuf, Snapshot)>,
    /// Directories whose full listing must not change.
    dirs: Vec<(PathBuf, Vec<String>)>,
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

impl Planted {
    fn check(&self) {
        for (p, snap) in &self.snapshots {
            snap.unchanged(p);
        }
        for (d, names) in &self.dirs {
            assert_eq!(&listing(d), names, "contents of {}", d.display());
        }
    }
}

/// Plants `kind` at `dir/name`; `elsewhere` is a directory outside the lock
/// directory for symlink targets.
fn plant(kind: &str, dir: &Path, name: &'static str, elsewhere: &Path) -> Planted {
    let path = dir.join(name);
    let mut snapshots = Vec::new();
    let mut dirs = Vec::new();
    match kind {
        "lockfile" => {
            lockfile(&path).code_is(0);
        }
        "touch" => {
            run(Command::new("touch").arg(&path)).code_is(0);
        }
        "directory" => {
            mkdir(&path);
            fs::write(path.join("inside"), "x").unwrap();
            snapshots.push((path.join("inside"), Snapshot::of(&path.join("inside"))));
        }
        "symlink" => {
            let target = elsewhere.join("target");
            fs::write(&target, "someone's file\n").unwrap();
            symlink(&target, &path).unwrap();
            snapshots.push((target.clone(), Snapshot::of(&target)));
            dirs.push((elsewhere.to_path_buf(), listing(elsewhere)));
        }
        "dangling symlink" => {
            symlink(elsewhere.join("nothing-here"), &path).unwrap();
            dirs.push((elsewhere.to_path_buf(), listing(elsewhere)));
        }
        "fifo" => {
            nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o644)).unwrap();
        }
        "flock" => {
            // util-linux flock creates (never exclusively) and never removes.
            run(Command::new("flock").arg("-x").arg(&path).arg("true")).code_is(0);
        }
        "supervisor" => {
            // The supervisor's own file: lockfile as uid 65534, mode 0444.
            lockfile(&path).code_is(0);
            nix::unistd::chown(
                &path,
                Some(nix::unistd::Uid::from_raw(NOBODY)),
                Some(nix::unistd::Gid::from_raw(NOBODY)),
            )
            .unwrap();
        }
        other => panic!("unknown kind {other}"),
    }
    snapshots.push((path.clone(), Snapshot::of(&path)));
    Planted {
        name,
        snapshots,
        dirs,
    }
}

/// updlock must refuse with 73 and `phrase`, naming the path, and leave the
/// planted object and the directory exactly as they were; at either of the
/// two names (at the second one, the first must be rolled back).
fn refused_by(kind: &str, phrase: &str) {
    for name in LOCK_NAMES {
        let t = tempdir();
        let d = mkdir(&t.path().join("locks"));
        let elsewhere = mkdir(&t.path().join("elsewhere"));
        let planted = plant(kind, &d, name, &elsewhere);
        let path = d.join(planted.name);
        run(updlock_at(&d).arg("hold")).refused(73, &[phrase, &s(&path)]);
        planted.check();
        assert_names(&d, &[name]);
        // Waiting does not change that, and does not touch it either.
        run(updlock_at(&d).args(["--wait", "100ms", "hold"]))
            .code_is(73)
            .stderr_has(&[phrase]);
        planted.check();
        assert_names(&d, &[name]);
        // status reports it without touching it.
        let st = run(updlock_at(&d).arg("status"));
        st.code_is(73);
        planted.check();
    }
}

#[test]
fn a_procmail_lockfile_blocks_updlock() {
    refused_by("lockfile", "held by someone else");
}

#[test]
fn a_touched_file_blocks_updlock() {
    refused_by("touch", "held by someone else");
}

#[test]
fn a_file_flock_created_blocks_updlock() {
    refused_by("flock", "held by someone else");
}

#[test]
fn a_directory_blocks_updlock() {
    refused_by("directory", "held by someone else (a directory");
}

#[test]
fn a_symlink_blocks_updlock_and_is_not_followed() {
    refused_by("symlink", "held by someone else (a symlink");
}

#[test]
fn a_dangling_symlink_blocks_updlock_and_is_not_followed() {
    refused_by("dangling symlink", "held by someone else (a symlink");
}

#[test]
fn a_fifo_blocks_updlock() {
    refused_by("fifo", "held by someone else (a FIFO");
}

#[test]
fn a_file_owned_by_uid_65534_is_the_supervisors() {
    if skip_unless_root() {
        return;
    }
    refused_by("supervisor", "the supervisor holds the lock");
    let t = tempdir();
    let planted = plant("supervisor", t.path(), "updates.lock", t.path());
    run(updlock_at(t.path()).arg("status"))
        .code_is(73)
        .stdout_has(&[&format!(
            "{}: held by the supervisor",
            s(&t.path().join("updates.lock"))
        )]);
    planted.check();
}

/// A process holding a live flock on a tagged file: updlock must take it
/// for a live updlock, not a stale one.
#[test]
fn a_tagged_file_someone_flocks_is_not_stale() {
    let t = tempdir();
    let d = t.path();
    let lock = d.join("updates.lock");
    fs::write(&lock, "updlock/1 pid=4242 boot=x since=y\n").unwrap();
    let before = Snapshot::of(&lock);
    let mut f = Proc::spawn(
        Command::new("flock")
            .arg("--no-fork")
            .arg("-x")
            .arg(&lock)
            .args(["sh", "-c", "echo locked; exec sleep 1000"]),
    );
    f.wait_stdout("locked");
    run(updlock_at(d).arg("hold")).refused(73, &["held by another updlock (pid 4242", &s(&lock)]);
    run(updlock_at(d).arg("status"))
        .code_is(73)
        .stdout_has(&["held by updlock (pid 4242"]);
    before.unchanged(&lock);
    assert_names(d, &["updates.lock"]);
}

// ---------------------------------------------------------------- the supervisor

fn sim_locks_are_there(d: &Path) {
    assert_names(d, &LOCK_NAMES);
    for n in LOCK_NAMES {
        assert_eq!(owner(&d.join(n)), NOBODY, "owner of {n}");
    }
}

#[test]
fn the_supervisor_waits_for_updlock_and_applies_after() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = t.path();
    let mut h = hold(d);
    let before = Snapshot::of(&d.join("updates.lock"));
    run(&mut supervisor_sim(d))
        .code_is(73)
        .stdout_has(&["Updates are locked", &s(&d.join("updates.lock"))]);
    before.unchanged(&d.join("updates.lock"));
    assert_names(d, &LOCK_NAMES);
    for n in LOCK_NAMES {
        assert_tagged_by(&d.join(n), h.pid());
    }
    h.signal(SIGTERM);
    h.finish().code_is(0);
    run(&mut supervisor_sim(d))
        .code_is(0)
        .stdout_has(&["update applied"]);
    assert_empty(d);
}

/// The supervisor retries with backoff; it applies at its first attempt
/// after updlock released.
#[test]
fn the_supervisor_retrying_gets_the_lock_once_released() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = t.path();
    let mut h = hold(d);
    let mut sim = Proc::spawn(supervisor_sim(d).args(["--retries", "4", "--max-backoff", "2"]));
    sim.wait_stdout("Updates are locked, retrying in");
    h.signal(SIGTERM);
    h.finish().code_is(0);
    sim.finish().code_is(0).stdout_has(&["update applied"]);
    assert_empty(d);
}

/// BALENA_SUPERVISOR_OVERRIDE_LOCK: the supervisor unlinks our file, puts
/// its own in its place and stops the service. updlock must notice, release
/// at once (exit 75) without touching the supervisor's files, and so be gone
/// before the grace period.
#[test]
fn an_override_ends_hold_with_75_and_the_supervisors_files_stay() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = t.path();
    let h = hold(d);
    let pid = h.pid().to_string();
    let sim =
        run(supervisor_sim(d).args(["--force", "--keep", "--grace", "10", "--service-pid", &pid]));
    sim.code_is(0).stdout_has(&["update applied"]);
    // updlock sees the override as the file goes, so it may be gone before
    // the supervisor's SIGTERM; either way, no SIGKILL was needed.
    assert!(
        sim.stdout.contains("service stopped after SIGTERM")
            || sim
                .stdout
                .contains(&format!("service {pid} was not running")),
        "{sim:?}"
    );
    assert!(!sim.stdout.contains("SIGKILL"), "{sim:?}");
    h.finish()
        .code_is(75)
        .stderr_has(&["taken from us", "override", "lock released"]);
    sim_locks_are_there(d);
    run(updlock_at(d).arg("status"))
        .code_is(73)
        .stdout_has(&["held by the supervisor"]);
    run(supervisor_sim(d).arg("--release")).code_is(0);
    assert_empty(d);
}

/// The same override while `run` runs a program: the program is stopped at
/// once, and updlock ends with the program's status.
#[test]
fn an_override_stops_the_program_of_run() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = t.path();
    let mut h = Proc::spawn(updlock_at(d).args([
        "run",
        "--grace",
        "3s",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 1000",
    ]));
    h.wait_stdout("ready");
    let pid = h.pid().to_string();
    let sim =
        run(supervisor_sim(d).args(["--force", "--keep", "--grace", "10", "--service-pid", &pid]));
    sim.code_is(0).stdout_has(&["update applied"]);
    assert!(
        sim.stdout.contains("service stopped after SIGTERM")
            || sim
                .stdout
                .contains(&format!("service {pid} was not running")),
        "{sim:?}"
    );
    h.finish()
        .code_is(128 + 15)
        .stderr_has(&["override", "stopping the program", "lock released"])
        .stderr_lacks("killing it");
    sim_locks_are_there(d);
}

#[test]
fn while_the_supervisor_holds_updlock_is_refused_or_waits() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = t.path();
    run(supervisor_sim(d).arg("--keep"))
        .code_is(0)
        .stdout_has(&["holding"]);
    sim_locks_are_there(d);
    let before: Vec<Snapshot> = LOCK_NAMES
        .iter()
        .map(|n| Snapshot::of(&d.join(n)))
        .collect();
    run(updlock_at(d).arg("hold")).refused(
        73,
        &["the supervisor holds the lock", &s(&d.join("updates.lock"))],
    );
    for (n, snap) in LOCK_NAMES.iter().zip(&before) {
        snap.unchanged(&d.join(n));
    }
    sim_locks_are_there(d);

    let mut w = Proc::spawn(updlock_at(d).args(["--wait", "20s", "hold"]));
    let line = w.wait_stderr("waiting");
    assert!(line.contains("the supervisor holds the lock"), "{line}");
    run(supervisor_sim(d).arg("--release"))
        .code_is(0)
        .stdout_has(&["released"]);
    w.wait_held();
    for n in LOCK_NAMES {
        assert_tagged_by(&d.join(n), w.pid());
        assert_eq!(owner(&d.join(n)), 0);
    }
    w.signal(SIGTERM);
    w.finish().code_is(0);
    assert_empty(d);
}
