//! `updlock watch`: the lock follows a "busy" input. Taken as soon as the
//! input is active, released once it has been inactive for the debounce
//! time, waited for while the supervisor holds it, and never left behind.
//!
//! The input is `--input file:P`: updlock reads P's last line ("1" high, "0"
//! low) whenever inotify says P changed; the test changes the input by
//! appending a line with a single write.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A test's places: the lock directory and, beside it, the input's file.
struct Rig {
    t: TempDir,
    dir: PathBuf,
    input: PathBuf,
}

impl Rig {
    /// With the input's file holding `level`.
    fn new(level: &str) -> Rig {
        let t = tempdir();
        let dir = mkdir(&t.path().join("locks"));
        let input = t.path().join("input");
        fs::write(&input, format!("{level}\n")).unwrap();
        Rig { t, dir, input }
    }

    fn lock(&self) -> PathBuf {
        self.dir.join("updates.lock")
    }

    /// `updlock --lock-dir D watch --input file:P EXTRA...`
    fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = updlock_at(&self.dir);
        c.arg("watch")
            .arg("--input")
            .arg(format!("file:{}", s(&self.input)))
            .args(extra);
        c
    }

    fn set(&self, level: &str) {
        append(&self.input, &format!("{level}\n"));
    }

    /// `status` says the lock is held by the updlock `pid`.
    #[track_caller]
    fn held_by(&self, pid: i32) {
        run(updlock_at(&self.dir).arg("status"))
            .code_is(73)
            .stdout_has(&[&format!("{}: held by updlock (pid {pid},", s(&self.lock()))]);
        assert!(flocked(&self.lock()), "the lock is not flocked");
    }
}

fn count(log: &str, text: &str) -> usize {
    log.lines().filter(|l| l.contains(text)).count()
}

#[test]
fn the_lock_follows_the_input() {
    let r = Rig::new("0");
    let mut w = Proc::spawn(&mut r.cmd(&["--debounce", "200ms"]));
    w.wait_stderr("watching the input: inactive");
    assert_empty(&r.dir);

    r.set("1");
    w.wait_stderr("input active: lock taken");
    assert_names(&r.dir, &LOCK_NAMES);
    r.held_by(w.pid());

    let t = Instant::now();
    r.set("0");
    let line = w.wait_stderr("lock released");
    assert!(line.contains("input inactive for 200 ms"), "{line}");
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "released {:?} after the input went inactive, before the debounce",
        t.elapsed()
    );
    assert_empty(&r.dir);
    run(updlock_at(&r.dir).arg("status")).code_is(0);

    // Again, and a stop signal while it is held releases it.
    r.set("1");
    w.wait_stderr("input active: lock taken");
    r.held_by(w.pid());
    w.signal(SIGTERM);
    w.finish()
        .code_is(0)
        .stdout_is("")
        .stderr_has(&["SIGTERM: lock released", "SIGTERM: stopped"]);
    assert_empty(&r.dir);
}

/// The input goes inactive and active again within the debounce time: the
/// lock stays, and the release, when it comes, counts the debounce from the
/// last time the input went inactive.
#[test]
fn a_bounce_within_the_debounce_keeps_the_lock() {
    let r = Rig::new("0");
    let debounce = Duration::from_secs(2);
    let mut w = Proc::spawn(&mut r.cmd(&["-v", "--debounce", "2s"]));
    w.wait_stderr("watching the input: inactive");
    r.set("1");
    w.wait_stderr("input active: lock taken");

    // The bounce, each edge seen by updlock before the next.
    r.set("0");
    w.stderr_line(|l| l.ends_with("debug: input inactive"));
    r.set("1");
    w.stderr_line(|l| l.ends_with("debug: input active"));
    r.held_by(w.pid());

    let t = Instant::now();
    r.set("0");
    let line = w.wait_stderr("lock released");
    assert!(line.contains("input inactive for 2000 ms"), "{line}");
    assert!(
        t.elapsed() >= debounce,
        "released {:?} after the last inactive edge: the bounce did not restart the debounce\n{}",
        t.elapsed(),
        w.describe()
    );
    assert_empty(&r.dir);
    w.signal(SIGTERM);
    let out = w.finish();
    out.code_is(0).stderr_lacks("SIGTERM: lock released");
    assert_eq!(count(&out.stderr, "lock taken"), 1, "{}", out.stderr);
    assert_eq!(count(&out.stderr, "lock released"), 1, "{}", out.stderr);
    assert_empty(&r.dir);
}

#[test]
fn active_low_input() {
    let r = Rig::new("1");
    let mut w = Proc::spawn(&mut r.cmd(&["--active-low", "--debounce", "200ms"]));
    w.wait_stderr("watching the input: inactive");
    assert_empty(&r.dir);
    r.set("0");
    w.wait_stderr("input active: lock taken");
    r.held_by(w.pid());
    r.set("1");
    w.wait_stderr("lock released");
    assert_empty(&r.dir);
    w.signal(SIGINT);
    w.finish().code_is(0);
    assert_empty(&r.dir);
}

/// An input already active at the start: the lock is taken before updlock
/// says it is armed.
#[test]
fn an_input_active_at_the_start_is_locked_at_once() {
    let r = Rig::new("1");
    let mut w = Proc::spawn(&mut r.cmd(&["--debounce", "200ms"]));
    w.wait_stderr("watching the input: active");
    w.wait_stderr("input active: lock taken");
    r.held_by(w.pid());
    w.signal(SIGHUP);
    w.finish().code_is(0).stderr_has(&["SIGHUP: lock released"]);
    assert_empty(&r.dir);
}

/// The supervisor holds the lock (its files, made by `lockfile` as uid
/// 65534) when the input becomes active: updlock says so, leaves the files
/// alone, and takes the lock the moment they are gone.
#[test]
fn the_supervisor_first_then_the_lock_when_it_is_gone() {
    if skip_unless_root() {
        return;
    }
    let r = Rig::new("0");
    run(supervisor_sim(&r.dir).arg("--keep"))
        .code_is(0)
        .stdout_has(&["holding"]);
    let theirs: Vec<Snapshot> = LOCK_NAMES
        .iter()
        .map(|n| Snapshot::of(&r.dir.join(n)))
        .collect();

    let mut w = Proc::spawn(&mut r.cmd(&["--debounce", "200ms"]));
    w.wait_stderr("watching the input: inactive");
    r.set("1");
    let line = w.wait_stderr("input active, but");
    assert!(
        line.contains(&s(&r.lock()))
            && line.contains("the supervisor holds the lock")
            && line.contains("taking it as soon as it is free"),
        "{line}"
    );
    for (n, snap) in LOCK_NAMES.iter().zip(&theirs) {
        snap.unchanged(&r.dir.join(n));
    }
    assert_names(&r.dir, &LOCK_NAMES);

    run(supervisor_sim(&r.dir).arg("--release")).code_is(0);
    w.wait_stderr("input active: lock taken");
    r.held_by(w.pid());
    w.signal(SIGTERM);
    w.finish().code_is(0);
    assert_empty(&r.dir);
}

/// One of the two names is someone else's and the other is free (Helios's
/// supervisor makes only `updates.lock`, SPEC §1; or anyone's `touch`):
/// updlock must wait for that name to change, not retry on the events of
/// its own attempts or of other updlocks' (their temporaries being closed),
/// which makes it retry in a loop.
///
/// That something does not happen can only be seen over some time: 500 ms
/// here, in which the loop, if there is one, makes hundreds of attempts. A
/// correct updlock passes however slow the machine is.
#[test]
fn waiting_for_a_lock_held_by_someone_else_does_not_spin() {
    let r = Rig::new("0");
    fs::write(r.lock(), "").unwrap();
    if is_root() {
        // The supervisor's file, as Helios makes it.
        std::os::unix::fs::chown(r.lock(), Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(r.lock(), fs::Permissions::from_mode(0o444)).unwrap();
    }
    let theirs = Snapshot::of(&r.lock());
    let mut w = Proc::spawn(&mut r.cmd(&["--debounce", "200ms"]));
    w.wait_stderr("watching the input: inactive");
    r.set("1");
    w.wait_stderr("input active, but");
    // Another updlock's attempt (its temporary, written and closed) changes
    // nothing about the name that blocks us: no reason to look again.
    let other = r.dir.join(".updlock-4194305-1.tmp");
    fs::write(&other, "").unwrap();
    let dir = Snapshot::of(&r.dir);
    if let Some(again) = w.stderr_within("input active, but", Duration::from_millis(500)) {
        w.signal(SIGTERM);
        let out = w.finish();
        panic!(
            "updlock tried again without any change to the lock ({} attempts in all):\n{again}\n{}",
            count(&out.stderr, "input active, but"),
            out.stderr.lines().take(8).collect::<Vec<_>>().join("\n")
        );
    }
    dir.unchanged(&r.dir);
    w.signal(SIGTERM);
    w.finish().code_is(0);
    theirs.unchanged(&r.lock());
    fs::remove_file(&other).unwrap();
    assert_names(&r.dir, &["updates.lock"]);
}

/// Stopped while waiting for the supervisor: nothing of ours is left, and
/// the supervisor's file is untouched.
#[test]
fn stopped_while_the_supervisor_holds_leaves_its_file() {
    if skip_unless_root() {
        return;
    }
    let r = Rig::new("1");
    run(supervisor_sim(&r.dir).arg("--keep"))
        .code_is(0)
        .stdout_has(&["holding"]);
    let theirs: Vec<Snapshot> = LOCK_NAMES
        .iter()
        .map(|n| Snapshot::of(&r.dir.join(n)))
        .collect();
    let mut w = Proc::spawn(&mut r.cmd(&["--debounce", "200ms"]));
    w.wait_stderr("the supervisor holds the lock");
    w.signal(SIGTERM);
    w.finish().code_is(0).stderr_lacks("lock taken");
    for (n, snap) in LOCK_NAMES.iter().zip(&theirs) {
        snap.unchanged(&r.dir.join(n));
    }
    run(supervisor_sim(&r.dir).arg("--release")).code_is(0);
    assert_empty(&r.dir);
}

/// BALENA_SUPERVISOR_OVERRIDE_LOCK (SPEC §4): the supervisor unlinks our
/// files and creates its own in their place. The override must win: watch
/// must not re-create the lock in the gap between the unlink and the
/// supervisor's `lockfile`, or the operator's override never gets through
/// while the input stays active.
#[test]
fn the_supervisors_override_is_not_fought() {
    if skip_unless_root() {
        return;
    }
    let r = Rig::new("1");
    let mut w = Proc::spawn(&mut r.cmd(&["--debounce", "200ms"]));
    w.wait_stderr("input active: lock taken");
    let sim = run(supervisor_sim(&r.dir).args(["--force", "--keep"]));
    sim.code_is(0).stdout_has(&["update applied"]);
    w.wait_stderr("taken from us");
    assert_names(&r.dir, &LOCK_NAMES);
    for n in LOCK_NAMES {
        assert_eq!(owner(&r.dir.join(n)), NOBODY, "owner of {n}");
    }
    w.signal(SIGTERM);
    w.finish().code_is(0);
    assert_names(&r.dir, &LOCK_NAMES);
    run(supervisor_sim(&r.dir).arg("--release")).code_is(0);
    assert_empty(&r.dir);
}

/// Starts `updlock ... watch` with `$NOTIFY_SOCKET` set and its stderr going
/// to a file (written before anything is sent to the socket, so whatever the
/// file holds when a datagram arrives was logged before it was sent).
fn watch_notifying(r: &Rig, socket: &Path, log: &Path) -> Proc {
    let mut c = sh(r#"log=$1; shift; exec "$@" 2>"$log""#, &[log.as_os_str()]);
    c.arg(UPDLOCK)
        .arg("--lock-dir")
        .arg(&r.dir)
        .args(["watch", "--debounce", "200ms", "--input"])
        .arg(format!("file:{}", s(&r.input)))
        .env_remove("UPDLOCK_LOCK_DIR")
        .env_remove("BALENA_APP_LOCK_PATH")
        .env_remove("RUST_LOG")
        .env("NOTIFY_SOCKET", socket);
    Proc::spawn(&mut c)
}

#[test]
fn ready_is_sent_once_armed() {
    for level in ["0", "1"] {
        let r = Rig::new(level);
        let socket = r.t.path().join("notify");
        let log = r.t.path().join("log");
        let sock = UnixDatagram::bind(&socket).unwrap();
        sock.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut w = watch_notifying(&r, &socket, &log);
        assert_eq!(notification(&sock), "READY=1");
        let logged = fs::read_to_string(&log).unwrap();
        if level == "0" {
            assert!(logged.contains("watching the input: inactive"), "{logged}");
            assert_empty(&r.dir);
        } else {
            // Armed means: the lock is already held.
            assert!(logged.contains("watching the input: active"), "{logged}");
            assert!(logged.contains("input active: lock taken"), "{logged}");
            assert_names(&r.dir, &LOCK_NAMES);
            r.held_by(w.pid());
        }
        w.signal(SIGTERM);
        assert_eq!(notification(&sock), "STOPPING=1");
        // Sent once the lock was released.
        assert_empty(&r.dir);
        w.finish().code_is(0).stdout_is("");
    }
}
