//! The protocol, in-process: what lands on disk, what is never touched, and
//! mutual exclusion between threads (flocks belong to open files, so threads
//! of one process contend exactly as processes do).

use super::*;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn take(path: &Path) -> Result<LockFile, LockError> {
    LockFile::take(Target::open(path)?)
}

/// True if another open file description cannot flock `path` right now.
fn is_flocked(path: &Path) -> bool {
    let f = File::open(path).unwrap();
    match flock(f.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
        Ok(()) => false,
        Err(Errno::EWOULDBLOCK) => true,
        Err(e) => panic!("flock: {e}"),
    }
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn held_by(err: LockError) -> Holder {
    match err {
        LockError::Held { holder, .. } => holder,
        other => panic!("expected Held, got {other:?}"),
    }
}

#[test]
fn take_publishes_a_tagged_flocked_file_and_nothing_else() {
    let d = dir();
    let p = d.path().join("updates.lock");
    let lock = take(&p).unwrap();
    assert_eq!(names(d.path()), ["updates.lock"]);
    let tag = Tag::parse(&fs::read(&p).unwrap()).unwrap();
    assert_eq!(tag.pid, std::process::id());
    assert!(is_flocked(&p));
    assert_eq!(lock.ownership().unwrap(), Ownership::Ours);
    assert_eq!(lock.release().unwrap(), Released::Removed);
    assert!(names(d.path()).is_empty());
}

#[test]
fn a_second_take_sees_a_live_updlock() {
    let d = dir();
    let p = d.path().join("updates.lock");
    let _first = take(&p).unwrap();
    match held_by(take(&p).unwrap_err()) {
        Holder::Updlock(t) => assert_eq!(t.pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    // The failed attempt left no temporary behind.
    assert_eq!(names(d.path()), ["updates.lock"]);
}

#[test]
fn foreign_objects_are_reported_and_left_exactly_as_they_were() {
    let d = dir();
    let elsewhere = d.path().join("elsewhere");
    fs::write(&elsewhere, b"target").unwrap();
    type Make = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Foreign, Make)> = vec![
        (
            "empty",
            Foreign::File,
            Box::new(|p| fs::write(p, b"").unwrap()),
        ),
        (
            "pidfile",
            Foreign::File,
            Box::new(|p| fs::write(p, b"1234\n").unwrap()),
        ),
        (
            "tag-like",
            Foreign::File,
            Box::new(|p| fs::write(p, b"updlock/1 garbage\n").unwrap()),
        ),
        (
            "directory",
            Foreign::Directory,
            Box::new(|p| fs::create_dir(p).unwrap()),
        ),
        (
            "symlink",
            Foreign::Symlink,
            Box::new(move |p| symlink(&elsewhere, p).unwrap()),
        ),
        (
            "fifo",
            Foreign::Special,
            Box::new(|p| nix::unistd::mkfifo(p, Mode::from_bits_truncate(0o644)).unwrap()),
        ),
    ];
    for (what, kind, make) in cases {
        let sub = d.path().join(what);
        fs::create_dir(&sub).unwrap();
        let p = sub.join("updates.lock");
        make(&p);
        let before = fs::symlink_metadata(&p).unwrap();
        // Never open a FIFO here: that would block.
        let read = |p: &Path| {
            let regular = fs::symlink_metadata(p).unwrap().file_type().is_file();
            regular.then(|| fs::read(p).unwrap())
        };
        let content = read(&p);
        assert_eq!(
            held_by(take(&p).unwrap_err()),
            Holder::Foreign(kind),
            "{what}"
        );
        let after = fs::symlink_metadata(&p).unwrap();
        assert_eq!(before.ino(), after.ino(), "{what}");
        assert_eq!(before.mtime_nsec(), after.mtime_nsec(), "{what}");
        assert_eq!(content, read(&p), "{what}");
        assert_eq!(names(&sub), ["updates.lock"], "{what}");
    }
    assert_eq!(fs::read(d.path().join("elsewhere")).unwrap(), b"target");
}

#[test]
fn a_file_of_uid_65534_is_the_supervisor() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (chown)");
        return;
    }
    let d = dir();
    let p = d.path().join("updates.lock");
    fs::write(&p, b"").unwrap();
    std::os::unix::fs::chown(&p, Some(SUPERVISOR_UID), Some(SUPERVISOR_UID)).unwrap();
    assert_eq!(held_by(take(&p).unwrap_err()), Holder::Supervisor);
    assert!(p.exists());
}

#[test]
fn a_stale_lock_is_retaken_in_place_and_retagged() {
    let d = dir();
    let p = d.path().join("updates.lock");
    fs::write(
        &p,
        b"updlock/1 pid=999999 boot=old since=1970-01-01T00:00:00Z\n",
    )
    .unwrap();
    let ino = fs::metadata(&p).unwrap().ino();
    let lock = take(&p).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().ino(), ino, "re-taken in place");
    let tag = Tag::parse(&fs::read(&p).unwrap()).unwrap();
    assert_eq!(tag.pid, std::process::id());
    assert!(is_flocked(&p));
    assert_eq!(lock.release().unwrap(), Released::Removed);
    assert!(!p.exists());
}

#[test]
fn release_never_removes_a_file_that_replaced_ours() {
    let d = dir();
    let p = d.path().join("updates.lock");
    let lock = take(&p).unwrap();
    // The supervisor's override: unlink ours, create its own.
    fs::remove_file(&p).unwrap();
    fs::write(&p, b"").unwrap();
    assert_eq!(lock.ownership().unwrap(), Ownership::Replaced);
    assert_eq!(lock.release().unwrap(), Released::Replaced);
    assert_eq!(fs::read(&p).unwrap(), b"");

    let lock = take(&d.path().join("resin-updates.lock")).unwrap();
    fs::remove_file(d.path().join("resin-updates.lock")).unwrap();
    assert_eq!(lock.ownership().unwrap(), Ownership::Removed);
    assert_eq!(lock.release().unwrap(), Released::AlreadyGone);
}

#[test]
fn drop_releases() {
    let d = dir();
    let p = d.path().join("updates.lock");
    {
        let _lock = take(&p).unwrap();
        assert!(p.exists());
    }
    assert!(!p.exists());
}

#[test]
fn a_panic_releases_through_unwinding() {
    let d = dir();
    let p = d.path().join("updates.lock");
    let p2 = p.clone();
    let r = std::panic::catch_unwind(move || {
        let _lock = take(&p2).unwrap();
        assert!(p2.exists());
        panic!("in the critical section");
    });
    assert!(r.is_err());
    assert!(!p.exists());
}

#[test]
fn a_set_is_all_or_nothing() {
    let d = dir();
    // resin-updates.lock is taken second; make it foreign.
    fs::write(d.path().join("resin-updates.lock"), b"someone\n").unwrap();
    let paths = [
        d.path().join("updates.lock"),
        d.path().join("resin-updates.lock"),
    ];
    let err = LockSet::take(LockSet::targets(&paths).unwrap()).unwrap_err();
    assert_eq!(held_by(err), Holder::Foreign(Foreign::File));
    assert_eq!(
        names(d.path()),
        ["resin-updates.lock"],
        "updates.lock rolled back"
    );
}

#[test]
fn a_set_takes_updates_lock_first_and_the_same_file_once() {
    let d = dir();
    let sub = d.path().join("balena");
    fs::create_dir(&sub).unwrap();
    let paths = [
        sub.join("resin-updates.lock"),
        sub.join("updates.lock"),
        // The same directory reached another way.
        d.path().join("balena/../balena/updates.lock"),
    ];
    let targets = LockSet::targets(&paths).unwrap();
    let order: Vec<&OsStr> = targets.iter().map(Target::name).collect();
    assert_eq!(order, ["updates.lock", "resin-updates.lock"]);
    let set = LockSet::take(targets).unwrap();
    assert_eq!(set.files().len(), 2);
    assert_eq!(set.lost().unwrap(), None);
    set.release().unwrap();
    assert!(names(&sub).is_empty());
}

#[test]
fn crashed_temporaries_are_swept_and_live_ones_kept() {
    let d = dir();
    let at = |n: &str| d.path().join(n);
    let tag = b"updlock/1 pid=4242 boot=b since=s\n";
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let make = |n: &str, body: &[u8], old: bool| {
        fs::write(at(n), body).unwrap();
        if old {
            File::options()
                .write(true)
                .open(at(n))
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
    };
    // Swept: tagged and unflocked (its taker died after tagging); empty,
    // unflocked and an hour old (its taker died between create and flock).
    make(".updlock-4242-0.tmp", tag, false);
    make(".updlock-4242-3.tmp", b"", true);
    // Kept: empty but fresh (a take between its create and its flock);
    // tagged or empty but flocked (a live take); not a tag (not ours);
    // not named like a temporary.
    make(".updlock-4242-1.tmp", b"", false);
    make(".updlock-4242-2.tmp", tag, false);
    make(".updlock-4242-4.tmp", b"", true);
    make(".updlock-4242-5.tmp", b"not a tag\n", true);
    make("notes.tmp", tag, true);
    let live: Vec<File> = [".updlock-4242-2.tmp", ".updlock-4242-4.tmp"]
        .iter()
        .map(|n| {
            let f = File::open(at(n)).unwrap();
            flock(f.as_raw_fd(), FlockArg::LockExclusiveNonblock).unwrap();
            f
        })
        .collect();

    let lock = take(&at("updates.lock")).unwrap();
    lock.release().unwrap();
    assert_eq!(
        names(d.path()),
        [
            ".updlock-4242-1.tmp",
            ".updlock-4242-2.tmp",
            ".updlock-4242-4.tmp",
            ".updlock-4242-5.tmp",
            "notes.tmp"
        ]
    );
    drop(live);
}

#[test]
fn temporaries_never_end_in_updates_lock() {
    let n = temp_name();
    let s = n.to_string_lossy();
    assert!(!s.ends_with("updates.lock"), "{s}");
    assert!(s.starts_with(TEMP_PREFIX) && s.ends_with(TEMP_SUFFIX));
}

#[test]
fn bad_paths() {
    assert!(matches!(
        Target::open(Path::new("/")),
        Err(LockError::BadPath(_))
    ));
    let d = dir();
    let err = Target::open(&d.path().join("missing/updates.lock")).unwrap_err();
    assert!(matches!(err, LockError::Dir(DirError::NotFound(_))));
    assert_eq!(err.exit(), Exit::Unavailable);
}

#[test]
fn threads_racing_never_hold_at_once() {
    let d = dir();
    let paths = Arc::new(vec![
        d.path().join("updates.lock"),
        d.path().join("resin-updates.lock"),
    ]);
    let inside = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (paths, inside, taken) = (paths.clone(), inside.clone(), taken.clone());
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let Ok(set) = LockSet::take(LockSet::targets(&paths).unwrap()) else {
                        continue;
                    };
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert_eq!(now, 1, "two holders at once");
                    // Stay inside a little, so an overlap would be seen.
                    std::thread::yield_now();
                    taken.fetch_add(1, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    set.release().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(taken.load(Ordering::SeqCst) > 0);
    assert!(names(d.path()).is_empty(), "left: {:?}", names(d.path()));
}

#[test]
fn racing_retakers_of_one_stale_lock_never_both_win() {
    for _ in 0..50 {
        let d = dir();
        let p = Arc::new(d.path().join("updates.lock"));
        fs::write(&*p, b"updlock/1 pid=999999 boot=b since=s\n").unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let winners: Vec<_> = (0..4)
            .map(|_| {
                let (p, barrier) = (p.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    take(&p).ok()
                })
            })
            .collect();
        let held: Vec<LockFile> = winners
            .into_iter()
            .filter_map(|w| w.join().unwrap())
            .collect();
        assert_eq!(held.len(), 1, "exactly one re-taker wins");
    }
}

#[test]
fn proc_locks_lines() {
    let id = FileId {
        dev: nix::sys::stat::makedev(0, 0x1b),
        ino: 5678,
    };
    let granted = "1: FLOCK  ADVISORY  WRITE 1234 00:1b:5678 0 EOF\n";
    let waiter = "1: -> FLOCK  ADVISORY  WRITE 99 00:1b:5678 0 EOF\n";
    let posix = "2: POSIX  ADVISORY  WRITE 1234 00:1b:5678 0 EOF\n";
    let other = "3: FLOCK  ADVISORY  WRITE 1234 00:1b:5679 0 EOF\n";
    assert!(proc_locks_lists(granted, id));
    assert!(!proc_locks_lists(waiter, id));
    assert!(!proc_locks_lists(posix, id));
    assert!(!proc_locks_lists(other, id));
    assert!(proc_locks_lists(&format!("{other}{granted}"), id));
}
