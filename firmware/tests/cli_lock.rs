//! Taking, holding, reporting and releasing the lock: `hold` and `status`,
//! stale locks, leftover temporaries, waiting, `--lock` and `--host`.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------- basics

#[test]
fn hold_creates_both_tagged_files_and_sigterm_releases_them() {
    let t = tempdir();
    let d = t.path();
    let mut h = hold(d);
    assert_names(d, &LOCK_NAMES);
    for name in LOCK_NAMES {
        assert_tagged_by(&d.join(name), h.pid());
    }
    h.wait_stderr("lock taken");
    h.signal(SIGTERM);
    h.finish()
        .code_is(0)
        .stderr_has(&["SIGTERM: releasing", "lock released"]);
    assert_empty(d);
}

#[test]
fn sigint_and_sighup_release_too() {
    for sig in [SIGINT, SIGHUP] {
        let t = tempdir();
        let mut h = hold(t.path());
        h.signal(sig);
        h.finish()
            .code_is(0)
            .stderr_has(&[&format!("{sig}: releasing")]);
        assert_empty(t.path());
    }
}

#[test]
fn status_names_the_live_holder() {
    let t = tempdir();
    let d = t.path();
    let mut h = hold(d);
    let pid = h.pid();
    let text = run(updlock_at(d).arg("status"));
    text.code_is(73);
    for name in LOCK_NAMES {
        let line = text
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}:", s(&d.join(name)))))
            .unwrap_or_else(|| panic!("no status line for {name}: {text:?}"));
        assert!(
            line.contains(&format!("held by updlock (pid {pid},")) && line.contains("flocked"),
            "{line}"
        );
    }
    let json = run(updlock_at(d).args(["status", "--json"]));
    json.code_is(73).stdout_has(&[
        "{\"held\":true,\"locks\":[",
        "\"state\":\"updlock\"",
        &format!("\"pid\":{pid},"),
        "\"flocked\":true",
        &format!("\"path\":\"{}\"", s(&d.join("updates.lock"))),
    ]);
    assert!(json.stdout.trim_end().ends_with("]}"), "{json:?}");
    assert_eq!(json.stdout.matches("\"state\":\"updlock\"").count(), 2);
    // status never takes anything, not even for a moment.
    assert_names(d, &LOCK_NAMES);
    h.signal(SIGTERM);
    h.finish().code_is(0);
    assert_empty(d);
}

#[test]
fn status_of_an_empty_directory_is_free() {
    let t = tempdir();
    let d = t.path();
    let out = run(updlock_at(d).arg("status"));
    out.code_is(0);
    for name in LOCK_NAMES {
        out.stdout_has(&[&format!("{}: free", s(&d.join(name)))]);
    }
    run(updlock_at(d).args(["status", "--json"]))
        .code_is(0)
        .stdout_has(&["{\"held\":false,", "\"state\":\"free\""]);
    assert_empty(d);
}

#[test]
fn hold_for_ends_by_itself() {
    let t = tempdir();
    let d = t.path();
    let mut h = spawn_held(updlock_at(d).args(["hold", "--for", "300ms"]));
    // It really holds until then...
    assert_names(d, &LOCK_NAMES);
    assert_tagged_by(&d.join("updates.lock"), h.pid());
    // ...and ends without being told to.
    h.wait();
    h.finish().code_is(0).stdout_is("held\n");
    assert_empty(d);
}

#[test]
fn lock_dir_from_the_environment() {
    let t = tempdir();
    let d = t.path();
    mkdir(&d.join("env"));
    mkdir(&d.join("app"));
    run(updlock()
        .env("UPDLOCK_LOCK_DIR", d.join("env"))
        .args(["hold", "--for", "1ms"]))
    .code_is(0)
    .stderr_has(&[&s(&d.join("env/updates.lock"))]);
    run(updlock()
        .env("BALENA_APP_LOCK_PATH", d.join("app/updates.lock"))
        .args(["hold", "--for", "1ms"]))
    .code_is(0)
    .stderr_has(&[&s(&d.join("app/resin-updates.lock"))]);
    assert_empty(&d.join("env"));
    assert_empty(&d.join("app"));
}

// ---------------------------------------------------------------- stale locks

#[test]
fn a_killed_holder_leaves_a_stale_lock_that_the_next_updlock_retakes() {
    let t = tempdir();
    let d = t.path();
    let mut a = hold(d);
    let a_pid = a.pid();
    a.signal(SIGKILL);
    a.finish().killed_by(SIGKILL);
    assert_names(d, &LOCK_NAMES);

    let st = run(updlock_at(d).arg("status"));
    st.code_is(73)
        .stdout_has(&[&format!("{}: stale", s(&d.join("updates.lock")))])
        .stdout_has(&[&format!("left by updlock pid {a_pid}")]);
    run(updlock_at(d).args(["status", "--json"]))
        .code_is(73)
        .stdout_has(&["\"state\":\"stale\"", "\"flocked\":false"]);

    let mut b = hold(d);
    let retook = b.wait_stderr("re-took a stale lock");
    assert!(
        retook.contains(&s(&d.join("updates.lock"))) && retook.contains(&format!("pid {a_pid}")),
        "{retook}"
    );
    b.wait_stderr("re-took a stale lock"); // and the second file
    for name in LOCK_NAMES {
        assert_tagged_by(&d.join(name), b.pid());
    }
    assert_names(d, &LOCK_NAMES);
    run(updlock_at(d).arg("status"))
        .code_is(73)
        .stdout_has(&[&format!("held by updlock (pid {},", b.pid())]);
    b.signal(SIGTERM);
    b.finish().code_is(0);
    assert_empty(d);
}

/// A regular file that is not updlock's, whatever its content, is never
/// taken over, even when nobody flocks it.
#[test]
fn untagged_or_malformed_files_are_never_taken_over() {
    for contents in [
        &b"12345\n"[..],
        b"",
        b"updlock/1 garbage\n",
        b"updlock/1 pid=12 boot=x\n",
        b"updlock/1 pid=12 boot=x since=y", // no newline: not a finished tag
    ] {
        let t = tempdir();
        let d = t.path();
        let lock = d.join("updates.lock");
        fs::write(&lock, contents).unwrap();
        let before = Snapshot::of(&lock);
        run(updlock_at(d).arg("hold"))
            .refused(73, &["held by someone else", &s(&lock)])
            .stderr_lacks("re-took");
        before.unchanged(&lock);
        assert_names(d, &["updates.lock"]);
        let st = run(updlock_at(d).arg("status"));
        st.code_is(73)
            .stdout_has(&[&format!("{}: held by someone else", s(&lock))]);
        assert!(!st.stdout.contains("stale"), "{st:?}");
        before.unchanged(&lock);
    }
}

#[test]
fn leftover_temporaries_of_a_dead_updlock_are_swept_and_others_kept() {
    let t = tempdir();
    let d = t.path();
    fs::write(
        d.join(".updlock-99999-0.tmp"),
        "updlock/1 pid=99999 boot=x since=y\n",
    )
    .unwrap();
    fs::write(d.join(".updlock-1-1.tmp"), "not a tag\n").unwrap();
    let kept = Snapshot::of(&d.join(".updlock-1-1.tmp"));
    let mut h = hold(d);
    h.signal(SIGTERM);
    h.finish()
        .code_is(0)
        .stderr_has(&["removed a temporary left by a crashed updlock"]);
    assert_names(d, &[".updlock-1-1.tmp"]);
    kept.unchanged(&d.join(".updlock-1-1.tmp"));
}

/// A directory that opens but takes no new names (a /proc one) gets a
/// reason, not the bare ENOENT the create returns.
#[test]
fn a_lock_directory_that_takes_no_files_is_named_with_the_reason() {
    run(updlock_at(Path::new("/proc/1")).arg("hold")).refused(
        71,
        &["/proc/1: create a lock file: the directory takes no new files"],
    );
}

/// A temporary that is still flocked belongs to a live take: never swept.
#[test]
fn a_flocked_temporary_is_not_swept() {
    let t = tempdir();
    let d = t.path();
    let tmp = d.join(".updlock-99998-0.tmp");
    fs::write(&tmp, "updlock/1 pid=99998 boot=x since=y\n").unwrap();
    let before = Snapshot::of(&tmp);
    let mut locker = Proc::spawn(
        std::process::Command::new("flock")
            .arg("--no-fork")
            .arg("-x")
            .arg(&tmp)
            .args(["sh", "-c", "echo locked; exec sleep 1000"]),
    );
    locker.wait_stdout("locked");
    run(updlock_at(d).args(["hold", "--for", "1ms"]))
        .code_is(0)
        .stderr_lacks("removed a temporary");
    assert_names(d, &[".updlock-99998-0.tmp"]);
    before.unchanged(&tmp);
}

// ---------------------------------------------------------------- waiting

#[test]
fn a_short_wait_times_out_with_73_and_leaves_nothing() {
    let t = tempdir();
    let d = t.path();
    let mut a = hold(d);
    let before = Snapshot::of(&d.join("updates.lock"));
    run(updlock_at(d).args(["--wait", "300ms", "hold"]))
        .code_is(73)
        .stdout_is("")
        .stderr_has(&[
            "waiting",
            &format!("held by another updlock (pid {}", a.pid()),
            &s(&d.join("updates.lock")),
        ]);
    before.unchanged(&d.join("updates.lock"));
    assert_names(d, &LOCK_NAMES);
    // Without --wait: at once.
    run(updlock_at(d).arg("hold")).refused(
        73,
        &["held by another updlock", &s(&d.join("updates.lock"))],
    );
    assert_names(d, &LOCK_NAMES);
    a.signal(SIGTERM);
    a.finish().code_is(0);
    assert_empty(d);
}

#[test]
fn a_waiter_takes_the_lock_when_the_holder_releases() {
    let t = tempdir();
    let d = t.path();
    let mut a = hold(d);
    let mut b = Proc::spawn(updlock_at(d).args(["--wait", "20s", "hold"]));
    b.wait_stderr("waiting");
    a.signal(SIGTERM);
    a.finish().code_is(0);
    b.wait_held();
    for name in LOCK_NAMES {
        assert_tagged_by(&d.join(name), b.pid());
    }
    b.signal(SIGTERM);
    b.finish().code_is(0);
    assert_empty(d);
}

#[test]
fn sigterm_while_waiting_exits_75_and_leaves_nothing_of_the_waiter() {
    let t = tempdir();
    let d = t.path();
    let mut a = hold(d);
    let before: Vec<Snapshot> = LOCK_NAMES
        .iter()
        .map(|n| Snapshot::of(&d.join(n)))
        .collect();
    let mut b = Proc::spawn(updlock_at(d).args(["--wait", "20s", "hold"]));
    b.wait_stderr("waiting");
    b.signal(SIGTERM);
    let out = b.finish();
    out.code_is(75)
        .stdout_is("")
        .stderr_has(&["interrupted by SIGTERM", &s(&d.join("updates.lock"))]);
    for (n, snap) in LOCK_NAMES.iter().zip(&before) {
        snap.unchanged(&d.join(n));
    }
    assert_names(d, &LOCK_NAMES);
    a.signal(SIGTERM);
    a.finish().code_is(0);
    assert_empty(d);
}

/// The holder is SIGKILLed: its descriptors close, the kernel reports
/// IN_CLOSE_WRITE, and the waiter re-takes the now stale lock at once
/// (lock.rs: "when its holder dies the kernel reports IN_CLOSE_WRITE on the
/// name, and a waiter wakes up without polling").
///
/// The waiter's own --wait is far longer than the test's deadline, so its
/// last look at the end of the wait cannot stand in for the wake-up.
#[test]
fn a_waiter_wakes_when_the_holder_is_killed() {
    let t = tempdir();
    let d = t.path();
    let mut a = hold(d);
    let a_pid = a.pid();
    let mut b = Proc::spawn(updlock_at(d).args(["--wait", "10m", "hold"]));
    b.wait_stderr("waiting");
    a.signal(SIGKILL);
    a.finish().killed_by(SIGKILL);
    b.wait_held();
    let retook = b.wait_stderr("re-took a stale lock");
    assert!(retook.contains(&format!("pid {a_pid}")), "{retook}");
    for name in LOCK_NAMES {
        assert_tagged_by(&d.join(name), b.pid());
    }
    b.signal(SIGTERM);
    b.finish().code_is(0);
    assert_empty(d);
}

/// Same, when the killed holder had itself re-taken a stale lock (it then
/// holds the file through a descriptor opened by the lock's own name).
#[test]
fn a_waiter_wakes_when_a_retaking_holder_is_killed() {
    let t = tempdir();
    let d = t.path();
    let mut first = hold(d);
    first.signal(SIGKILL);
    first.finish().killed_by(SIGKILL);
    let mut a = hold(d);
    a.wait_stderr("re-took a stale lock");
    let mut b = Proc::spawn(updlock_at(d).args(["--wait", "10m", "hold"]));
    b.wait_stderr("waiting");
    a.signal(SIGKILL);
    a.finish().killed_by(SIGKILL);
    b.wait_held();
    b.signal(SIGTERM);
    b.finish().code_is(0);
    assert_empty(d);
}

// ---------------------------------------------------------------- --lock

#[test]
fn the_same_file_named_twice_is_taken_once() {
    let t = tempdir();
    let d = mkdir(&t.path().join("locks"));
    let again = t.path().join("locks/../locks/updates.lock");
    let mut h = spawn_held(
        updlock()
            .arg("--lock")
            .arg(d.join("updates.lock"))
            .arg("--lock")
            .arg(&again)
            .arg("hold"),
    );
    let taken = h.wait_stderr("lock taken:");
    assert_eq!(taken.matches("updates.lock").count(), 1, "{taken}");
    assert_names(&d, &["updates.lock"]);
    assert_tagged_by(&d.join("updates.lock"), h.pid());
    h.signal(SIGTERM);
    h.finish()
        .code_is(0)
        .stderr_lacks("held by")
        .stderr_lacks("error");
    assert_empty(&d);
}

#[test]
fn lock_takes_exactly_the_named_files() {
    let t = tempdir();
    let d = t.path();
    let mut h = spawn_held(
        updlock()
            .arg("--lock")
            .arg(d.join("a.lock"))
            .arg("--lock")
            .arg(d.join("b.lock"))
            .arg("hold"),
    );
    assert_names(d, &["a.lock", "b.lock"]);
    run(updlock().arg("--lock").arg(d.join("b.lock")).arg("hold"))
        .refused(73, &["held by another updlock", &s(&d.join("b.lock"))]);
    h.signal(SIGTERM);
    h.finish().code_is(0);
    assert_empty(d);
}

// ---------------------------------------------------------------- --host

fn services_root(t: &Path) -> std::path::PathBuf {
    let r = t.join("services");
    mkdir(&r.join("12/main"));
    mkdir(&r.join("12/worker"));
    r
}

#[test]
fn host_locks_every_service_directory() {
    let t = tempdir();
    let r = services_root(t.path());
    let mut h = spawn_held(
        updlock()
            .arg("--host")
            .arg("--services-root")
            .arg(&r)
            .arg("hold"),
    );
    for svc in ["12/main", "12/worker"] {
        assert_names(&r.join(svc), &LOCK_NAMES);
        for n in LOCK_NAMES {
            assert_tagged_by(&r.join(svc).join(n), h.pid());
        }
    }
    let st = run(updlock()
        .arg("--host")
        .arg("--services-root")
        .arg(&r)
        .arg("status"));
    st.code_is(73);
    assert_eq!(st.stdout.matches("held by updlock").count(), 4, "{st:?}");
    h.signal(SIGTERM);
    h.finish().code_is(0);
    assert_empty(&r.join("12/main"));
    assert_empty(&r.join("12/worker"));
    assert_names(&r, &["12"]);
}

#[test]
fn host_narrowed_to_one_service() {
    let t = tempdir();
    let r = services_root(t.path());
    let mut h = spawn_held(
        updlock()
            .arg("--host")
            .arg("--services-root")
            .arg(&r)
            .args(["--app-id", "12", "--service", "worker", "hold"]),
    );
    assert_names(&r.join("12/worker"), &LOCK_NAMES);
    assert_empty(&r.join("12/main"));
    h.signal(SIGTERM);
    h.finish().code_is(0);
    assert_empty(&r.join("12/worker"));
}

#[test]
fn host_without_services_is_unavailable() {
    let t = tempdir();
    let r = mkdir(&t.path().join("services"));
    run(updlock()
        .arg("--host")
        .arg("--services-root")
        .arg(&r)
        .arg("hold"))
    .refused(69, &["no service directory", &s(&r)]);
    assert_empty(&r);
    // An app id that matches nothing.
    let r2 = services_root(&t.path().join("other"));
    run(updlock()
        .arg("--host")
        .arg("--services-root")
        .arg(&r2)
        .args(["--app-id", "99", "hold"]))
    .refused(69, &["no service directory", "app 99", &s(&r2)]);
    assert_empty(&r2.join("12/main"));
    assert_empty(&r2.join("12/worker"));
}

/// `status` must not call a live lock stale because other processes take
/// and release flocks elsewhere while it reads /proc/locks (a seq_file read
/// in several read() calls skips entries when the list changes in between).
#[test]
fn status_never_calls_a_live_lock_stale_while_other_locks_churn() {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    use nix::fcntl::{flock, FlockArg};

    // Under qemu-user every start costs tens of milliseconds: fewer looks.
    const LOOKS: usize = if EMULATED { 50 } else { 300 };
    let t = tempdir();
    let d = mkdir(&t.path().join("locks"));
    let churn_dir = mkdir(&t.path().join("churn"));
    let mut h = hold(&d);
    let stop = AtomicBool::new(false);
    let misreports: Vec<String> = std::thread::scope(|scope| {
        for i in 0..4 {
            let (stop, churn_dir) = (&stop, &churn_dir);
            scope.spawn(move || {
                let files: Vec<fs::File> = (0..8)
                    .map(|j| fs::File::create(churn_dir.join(format!("{i}-{j}"))).unwrap())
                    .collect();
                while !stop.load(Ordering::Relaxed) {
                    for f in &files {
                        flock(f.as_raw_fd(), FlockArg::LockExclusive).unwrap();
                    }
                    for f in &files {
                        flock(f.as_raw_fd(), FlockArg::Unlock).unwrap();
                    }
                }
            });
        }
        let mut bad = Vec::new();
        for _ in 0..LOOKS {
            let st = run(updlock_at(&d).arg("status"));
            if st.code() != Some(73) || st.stdout.matches("held by updlock").count() != 2 {
                bad.push(st.stdout.clone());
            }
        }
        stop.store(true, Ordering::Relaxed);
        bad
    });
    assert!(
        misreports.is_empty(),
        "{} of {LOOKS} status calls misreported a live lock:\n{}",
        misreports.len(),
        misreports.join("")
    );
    h.signal(SIGTERM);
    h.finish().code_is(0);
    assert_empty(&d);
}

/// A waiter whose set is half free (updates.lock free, resin-updates.lock
/// someone else's) must not spin: each attempt takes updates.lock and rolls
/// it back, and those changes are its own, not a reason to try again. With
/// -v every attempt logs "created"; after the first, none may follow until
/// the blocker goes, and then one does.
#[test]
fn a_waiter_blocked_on_half_of_its_set_does_not_spin() {
    let t = tempdir();
    let d = t.path();
    let theirs = d.join("resin-updates.lock");
    fs::write(&theirs, "someone else\n").unwrap();
    let mut w = Proc::spawn(updlock_at(d).args(["-v", "--wait", "20s", "hold"]));
    w.wait_stderr("waiting");
    if let Some(again) = w.stderr_within("created", Duration::from_millis(500)) {
        w.signal(SIGTERM);
        let out = w.finish();
        panic!(
            "updlock tried again without any change to the blocker:\n{again}\n{}",
            out.stderr
        );
    }
    fs::remove_file(&theirs).unwrap();
    w.wait_held();
    w.signal(SIGTERM);
    w.finish().code_is(0);
    assert_empty(d);
}
