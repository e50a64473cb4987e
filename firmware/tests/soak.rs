//! Soak and contention: several holders and the supervisor (its simulator)
//! racing for one lock for many cycles, and long-running updlocks taken
//! through many lock cycles without growing.
//!
//! Every run is bounded in count and in time, whichever comes first, and
//! scaled down a lot under qemu-user ([`EMULATED`]), where every start of
//! updlock costs tens of milliseconds.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Holders racing.
const HOLDERS: usize = 4;
/// Critical sections in all, at most.
const CYCLES: usize = if EMULATED { 24 } else { 200 };
/// And at most this long.
const LIMIT: Duration = Duration::from_secs(if EMULATED { 20 } else { 12 });
/// Lock cycles of one long-running `watch`.
const WATCH_CYCLES: usize = if EMULATED { 25 } else { 300 };
/// Refused takes against one long-running `hold`.
const HAMMER: usize = if EMULATED { 20 } else { 200 };

/// The job every holder runs: creates the marker with O_EXCL (the shell's
/// noclobber) and removes it; exit 99 if it existed, that is, if another
/// holder was inside at the same time.
const JOB: &str = r#"set -C; { true >"$1"; } 2>/dev/null || exit 99; rm "$1""#;

#[test]
fn holders_and_the_supervisor_race_without_overlap() {
    let t = tempdir();
    let dir = mkdir(&t.path().join("locks"));
    let marker = t.path().join("inside");
    let done = AtomicUsize::new(0);
    let sup_done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let finished = || done.load(Ordering::Relaxed) >= CYCLES || start.elapsed() >= LIMIT;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for _ in 0..HOLDERS {
            workers.push(scope.spawn(|| {
                let mut failures = Vec::new();
                while !finished() {
                    let out = run(updlock_at(&dir)
                        .args([
                            "-q", "--wait", "forever", "run", "--", "sh", "-c", JOB, "sh",
                        ])
                        .arg(&marker));
                    if out.code() != Some(0) {
                        failures.push(format!("{out:?}"));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                failures
            }));
        }
        // The supervisor (as root): takes both locks when no one holds
        // them, finds no holder inside, applies its "update", releases.
        if is_root() {
            workers.push(scope.spawn(|| {
                let mut failures = Vec::new();
                while !finished() && !stop.load(Ordering::Relaxed) {
                    let out = run(supervisor_sim(&dir).arg("--keep"));
                    match out.code() {
                        Some(0) => {
                            if marker.exists() {
                                failures.push("a holder inside while the supervisor holds".into());
                            }
                            for n in LOCK_NAMES {
                                if owner(&dir.join(n)) != NOBODY {
                                    failures.push(format!("{n} is not the supervisor's"));
                                }
                            }
                            run(supervisor_sim(&dir).arg("--release")).code_is(0);
                            sup_done.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(73) => {}
                        _ => failures.push(format!("{out:?}")),
                    }
                }
                failures
            }));
        }
        let f: Vec<String> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("a worker panicked"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        f
    });
    eprintln!(
        "{} sections by {HOLDERS} holders and {} supervisor updates in {:?}",
        done.load(Ordering::Relaxed),
        sup_done.load(Ordering::Relaxed),
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures (99: two holders at once):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(!marker.exists(), "the marker was left behind");
    assert_empty(&dir);
}

/// What a process uses now: open descriptors and resident memory (KiB).
/// Under qemu-user these are the emulator's, which runs updlock in itself.
fn usage(pid: i32) -> (usize, u64) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    (fds, rss)
}

/// Descriptors must not grow at all; memory by no more than allocator
/// noise (the emulator's code cache grows on its own under qemu-user).
#[track_caller]
fn no_growth(what: &str, before: (usize, u64), after: (usize, u64), cycles: usize) {
    eprintln!(
        "{what}: {cycles} cycles: fds {} -> {}, VmRSS {} -> {} KiB",
        before.0, after.0, before.1, after.1
    );
    assert_eq!(after.0, before.0, "{what}: descriptors grew");
    let slack = if EMULATED { 4096 } else { 512 };
    assert!(
        after.1 <= before.1 + slack,
        "{what}: VmRSS grew from {} to {} KiB over {cycles} cycles",
        before.1,
        after.1
    );
}

fn watch_rig() -> (TempDir, PathBuf, PathBuf) {
    let t = tempdir();
    let dir = mkdir(&t.path().join("locks"));
    let input = t.path().join("input");
    fs::write(&input, "0\n").unwrap();
    (t, dir, input)
}

fn set(input: &Path, level: &str) {
    append(input, &format!("{level}\n"));
}

#[test]
fn a_long_running_watch_does_not_grow_over_many_lock_cycles() {
    let (_t, dir, input) = watch_rig();
    let mut w = Proc::spawn(
        updlock_at(&dir)
            .args(["watch", "--debounce", "0", "--input"])
            .arg(format!("file:{}", s(&input))),
    );
    w.wait_stderr("watching the input: inactive");
    let cycle = |w: &mut Proc| {
        set(&input, "1");
        w.wait_stderr("input active: lock taken");
        set(&input, "0");
        w.wait_stderr("lock released");
    };
    // A few first, so that one-time allocations are behind us.
    for _ in 0..5 {
        cycle(&mut w);
    }
    let before = usage(w.pid());
    for _ in 0..WATCH_CYCLES {
        cycle(&mut w);
    }
    let after = usage(w.pid());
    assert_empty(&dir);
    w.signal(SIGTERM);
    w.finish().code_is(0);
    no_growth("watch", before, after, WATCH_CYCLES);
    assert_empty(&dir);
}

/// A `hold` whose directory churns: every refused take creates and removes
/// a temporary beside the lock and wakes the holder's watch. The holder
/// keeps the lock and does not grow.
#[test]
fn a_long_running_hold_does_not_grow_under_refused_takes() {
    let t = tempdir();
    let dir = mkdir(&t.path().join("locks"));
    let mut h = hold(&dir);
    for _ in 0..3 {
        run(updlock_at(&dir).args(["run", "--", "true"])).code_is(73);
    }
    let before = usage(h.pid());
    for _ in 0..HAMMER {
        run(updlock_at(&dir).args(["run", "--", "true"]))
            .code_is(73)
            .stderr_has(&["held by another updlock"]);
    }
    let after = usage(h.pid());
    for n in LOCK_NAMES {
        assert_tagged_by(&dir.join(n), h.pid());
        assert!(flocked(&dir.join(n)), "{n} no longer flocked");
    }
    h.signal(SIGTERM);
    h.finish().code_is(0);
    no_growth("hold", before, after, HAMMER);
    assert_empty(&dir);
}
