//! Every way updlock refuses: the documented exit code, one line on stderr
//! naming the path and the reason, and nothing left behind.

mod common;

use std::os::unix::fs::symlink;

use common::*;

// ---------------------------------------------------------------- usage (64)

#[test]
fn usage_errors_exit_64_with_one_line() {
    let t = tempdir();
    let d = t.path();
    for (args, phrase) in [
        (&["hold", "--for", "xyz"][..], "--for"),
        (&["--wait", "5x", "hold"], "--wait"),
        (&["run", "--grace", "soon", "--", "true"], "--grace"),
        (&["hold", "--bogus"], "--bogus"),
        (&["--bogus", "status"], "--bogus"),
        (&["run"], "PROGRAM"),
        (&["run", "--"], "PROGRAM"),
        (&["frobnicate"], "frobnicate"),
        (&["status", "--wait", "1s"], "--wait"),
        (&["status", "--for", "1s"], "--for"),
        (&[], "subcommand"),
    ] {
        run(updlock_at(d).args(args)).refused(64, &[phrase, "updlock --help"]);
        assert_empty(d);
    }
}

/// A duration that is not one says what is wrong with it, as the whole
/// line on stderr: negative, signed, spaced, two units, a comma, no number.
#[test]
fn a_bad_duration_says_what_is_wrong_with_it() {
    let t = tempdir();
    let d = t.path();
    const EX: &str = "(examples: 500ms, 10s, 5m, 1h)";
    for (args, line) in [
        (
            &["--wait", "-1", "hold"][..],
            format!("updlock: --wait: '-1': a duration cannot be negative {EX}"),
        ),
        (
            &["hold", "--for", "+5s"],
            "updlock: --for: '+5s': no '+' sign before a duration (write 5s)".into(),
        ),
        (
            &["hold", "--for", "5 s"],
            "updlock: --for: '5 s': no space between the number and its unit (write 5s)".into(),
        ),
        (
            &["hold", "--for", "1h30m"],
            "updlock: --for: '1h30m': '30m' after the unit: a duration is one number and one unit (90m, not 1h30m)".into(),
        ),
        (
            &["run", "--grace", "1,5s", "--", "true"],
            "updlock: --grace: '1,5s': a fraction takes a decimal point, not a comma (write 1.5s)".into(),
        ),
        (
            &["hold", "--for", "xyz"],
            format!("updlock: --for: 'xyz': not a duration: it does not start with a number {EX}"),
        ),
        (
            &["hold", "--for", "forever"],
            format!("updlock: --for: 'forever': only --wait (UPDLOCK_WAIT) can be forever; give a duration {EX}"),
        ),
        (
            &["watch", "--input", "file:P", "--debounce", "1 fortnight"],
            "updlock: --debounce: '1 fortnight': unknown unit 'fortnight' (use ms, s, m or h)".into(),
        ),
    ] {
        let want = format!("{line} (see 'updlock --help')\n");
        let out = run(updlock_at(d).args(args));
        out.refused(64, &[&want]);
        assert_eq!(out.stderr, want, "{args:?}");
        assert_empty(d);
    }
}

// ---------------------------------------------------------------- unavailable (69)

#[test]
fn a_missing_lock_directory_is_unavailable() {
    let t = tempdir();
    let missing = t.path().join("nope");
    for cmd in [&["hold"][..], &["run", "--", "true"], &["status"]] {
        run(updlock_at(&missing).args(cmd)).refused(69, &["no such directory", &s(&missing)]);
    }
    assert_empty(t.path());
}

#[test]
fn a_symlinked_lock_directory_is_refused() {
    let t = tempdir();
    let real = mkdir(&t.path().join("real"));
    let link = t.path().join("link");
    symlink(&real, &link).unwrap();
    for cmd in [&["hold"][..], &["status"]] {
        run(updlock_at(&link).args(cmd)).refused(69, &["symlink", &s(&link)]);
    }
    // A symlink further up the path is refused as well.
    let deeper = mkdir(&real.join("inner"));
    let via = link.join("inner");
    run(updlock_at(&via).arg("hold")).refused(69, &["symlink", &s(&link)]);
    assert_empty(&deeper);
    assert_names(&real, &["inner"]);
}

#[test]
fn a_lock_directory_that_is_a_file_is_refused() {
    let t = tempdir();
    let f = t.path().join("file");
    std::fs::write(&f, "x").unwrap();
    run(updlock_at(&f).arg("hold")).refused(69, &["not a directory", &s(&f)]);
    assert_names(t.path(), &["file"]);
}

// ---------------------------------------------------------------- permission (77)

#[test]
fn running_as_the_supervisors_uid_is_refused() {
    if skip_unless_root() {
        return;
    }
    let t = open_tempdir();
    // Writable by anyone, so only the uid check can stop it.
    let d = mkdir(&t.path().join("locks"));
    chmod(&d, 0o1777);
    for sub in [&["hold"][..], &["run", "--", "true"]] {
        run(as_user(NOBODY, UPDLOCK).arg("--lock-dir").arg(&d).args(sub))
            .refused(77, &["uid 65534"]);
        assert_empty(&d);
    }
    // status takes nothing, so it is allowed.
    run(as_user(NOBODY, UPDLOCK)
        .arg("--lock-dir")
        .arg(&d)
        .arg("status"))
    .code_is(0);
}

#[test]
fn a_root_owned_0755_directory_is_permission_denied_for_others() {
    if skip_unless_root() {
        return;
    }
    let t = open_tempdir();
    let d = mkdir(&t.path().join("svc"));
    chmod(&d, 0o755);
    run(as_user(1000, UPDLOCK).arg("--lock-dir").arg(&d).arg("hold"))
        .refused(77, &["permission denied", "--lock-dir", &s(&d)]);
    assert_empty(&d);
    // Once opened to everyone (as the supervisor does), it works.
    chmod(&d, 0o1777);
    run(as_user(1000, UPDLOCK)
        .arg("--lock-dir")
        .arg(&d)
        .args(["hold", "--for", "1ms"]))
    .code_is(0);
    assert_empty(&d);
}

// ---------------------------------------------------------------- OS errors (71)

/// Runs `script` (with $1 = the lock directory, $2 = updlock) in a private
/// mount namespace: whatever it mounts vanishes with it, even if the test fails.
fn in_private_mounts(script: &str, dir: &std::path::Path) -> Finished {
    let mut c = std::process::Command::new("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(dir)
    .arg(UPDLOCK)
    .env_remove("UPDLOCK_LOCK_DIR")
    .env_remove("BALENA_APP_LOCK_PATH")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("RUST_LOG");
    run(&mut c)
}

#[test]
fn a_read_only_file_system_exits_71() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = mkdir(&t.path().join("ro"));
    let out = in_private_mounts(
        r#"mount -t tmpfs -o ro none "$1" || exit 90
           "$2" --lock-dir "$1" hold; rc=$?
           ls -A "$1"
           exit $rc"#,
        &d,
    );
    out.refused(71, &["read-only", &s(&d)]);
    assert_empty(&d);
}

#[test]
fn no_inode_left_exits_71_and_leaves_nothing() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = mkdir(&t.path().join("full"));
    // One inode: the root directory has it, so creating anything fails.
    let out = in_private_mounts(
        r#"mount -t tmpfs -o nr_inodes=1 none "$1" || exit 90
           if touch "$1/probe" 2>/dev/null; then echo "the file system is not full"; exit 91; fi
           "$2" --lock-dir "$1" hold; rc=$?
           ls -A "$1"
           exit $rc"#,
        &d,
    );
    out.refused(71, &["no space", &s(&d)]);
    assert_empty(&d);
}

/// Room for the first lock file but not the second: the first must be
/// rolled back. (On tmpfs a hard link costs an inode too: the root, the
/// temporary, the first link; then the second link fails.)
#[test]
fn no_space_for_the_second_file_rolls_back_the_first() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = mkdir(&t.path().join("full"));
    let out = in_private_mounts(
        r#"mount -t tmpfs -o nr_inodes=3 none "$1" || exit 90
           "$2" --lock-dir "$1" hold; rc=$?
           ls -A "$1"
           exit $rc"#,
        &d,
    );
    out.refused(71, &["no space", &s(&d)]);
    assert_empty(&d);
}

// ---------------------------------------------------------------- the default location

/// With no --lock-dir and no environment, updlock looks for /tmp/balena,
/// then /tmp/resin. Played in a private mount namespace with an empty tmpfs
/// on /tmp. The binary is opened before /tmp is covered (the target
/// directory could be under /tmp) and run through /proc/PID/fd.
#[test]
fn the_default_location_is_tmp_balena_and_its_absence_is_reported() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let out = in_private_mounts(
        r#"exec 3<"$2"; u=/proc/$$/fd/3
           mount -t tmpfs none /tmp || exit 90
           echo "== none"
           $u hold --for 10ms; echo "rc=$?"
           $u status; echo "rc=$?"
           mkdir /tmp/balena
           echo "== balena"
           $u hold --for 200ms; echo "rc=$?"
           $u run -- $u status; echo "rc=$?"
           $u status; echo "rc=$?"
           ls -A /tmp/balena
           echo "== resin"
           rmdir /tmp/balena; mkdir /tmp/resin
           $u run -- $u status; echo "rc=$?"
           ls -A /tmp/resin
           echo "== end""#,
        t.path(),
    );
    out.code_is(0);
    let want = "\
== none
rc=69
rc=69
== balena
held
rc=0
/tmp/balena/updates.lock: held by updlock (pid PID
/tmp/balena/resin-updates.lock: held by updlock (pid PID
rc=73
/tmp/balena/updates.lock: free
/tmp/balena/resin-updates.lock: free
rc=0
== resin
/tmp/resin/updates.lock: held by updlock (pid PID
/tmp/resin/resin-updates.lock: held by updlock (pid PID
rc=73
== end
";
    // Pids and times vary: compare up to them.
    let got: String = out
        .stdout
        .lines()
        .map(|l| match l.find("(pid ") {
            Some(i) => format!("{}(pid PID\n", &l[..i]),
            None => format!("{l}\n"),
        })
        .collect();
    assert_eq!(got, want, "{out:?}");
    assert_eq!(
        out.stderr
            .matches("does not look like a balena service container")
            .count(),
        2,
        "{out:?}"
    );
    out.stderr_has(&["/tmp/balena", "/tmp/resin", "--lock-dir"]);
}
