//! Fault injection: updlock killed at every step boundary of take → assert →
//! run → de-assert → release and at random instants, the supervisor's
//! override landing at random instants, and an observer that checks "line
//! active ⇒ lock held and flocked" at every write to the line.
//!
//! The steps come from the debug-build hook `UPDLOCK_TEST_PAUSE_AT=<step>`
//! (`updlock::section::test_pause`): updlock says `test: paused at <step>`
//! and waits there; the test waits for that line (an event), looks, and
//! SIGKILLs. The line is `--gpio file:P`, so P is the record of every write.
//!
//! After every kill the same observer looks: each lock name is absent or a
//! stale updlock lock (tagged, not flocked, not the supervisor's), which
//! `status` calls stale (exit 73) and the next start re-takes after driving
//! the line safe first; a foreign or supervisor lock put in its place is
//! never removed.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// The step boundaries of the hook, in the order a section passes them.
const STEPS: [&str; 8] = [
    "take", "publish", "taken", "active", "running", "safe", "unlinked", "released",
];

/// Kills at random instants (per test); fewer under qemu-user, where every
/// start costs tens of milliseconds.
const RANDOM_KILLS: usize = if EMULATED { 12 } else { 60 };
/// Overrides at random instants.
const RANDOM_OVERRIDES: usize = if EMULATED { 4 } else { 12 };
/// Sections the line observer watches.
const OBSERVED_SECTIONS: usize = if EMULATED { 4 } else { 12 };

// ---------------------------------------------------------------- helpers

/// A small xorshift generator: the random instants, reproducible from the
/// seed the test prints (`FAULTS_SEED=N` repeats a run).
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("{test}: FAULTS_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A duration in `0..max`.
    fn upto(&mut self, max: Duration) -> Duration {
        let us = max.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % us)
    }
}

/// Whether `/proc/locks` lists a flock on the file at `path` (read-only:
/// never takes the flock itself, unlike `flock -nx`, so it cannot disturb a
/// holder or a re-taker). `None` if the path is gone.
fn proc_flocked(path: &Path) -> Option<bool> {
    let m = fs::symlink_metadata(path).ok()?;
    let dev = m.dev();
    let key = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        m.ino()
    );
    let mut text = String::new();
    fs::File::open("/proc/locks")
        .and_then(|mut f| f.read_to_string(&mut text))
        .expect("read /proc/locks");
    Some(text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a blocked
        // waiter's line has "->" after the number.
        f.len() >= 6 && f[1] == "FLOCK" && f[5] == key
    }))
}

/// The pid in an updlock tag (`updlock/1 pid=N ...`), if the file has one.
fn tag_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    let rest = text.lines().next()?.strip_prefix("updlock/1 pid=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// How many empty, untagged temporaries kills have left (see
/// [`age_untagged_temporaries`]), for the report at the end.
static UNTAGGED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A SIGKILL between a temporary's creation and its tag leaves it empty.
/// updlock's sweep removes an empty temporary only once it is a minute old
/// (a younger one may be a live take's, between its create and its flock),
/// so the test ages those it finds by two minutes: the next start must then
/// sweep them. Returns how many it aged.
fn age_untagged_temporaries(dir: &Path) -> usize {
    let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    let mut aged = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(".updlock-") && n.ends_with(".tmp") && e.metadata().unwrap().len() == 0 {
            fs::File::options()
                .write(true)
                .open(e.path())
                .unwrap()
                .set_modified(two_minutes_ago)
                .unwrap();
            UNTAGGED.fetch_add(1, Ordering::Relaxed);
            aged += 1;
        }
    }
    aged
}

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

    fn gpio(&self) -> String {
        format!("file:{}", s(&self.pin))
    }

    fn record(&self) -> Vec<String> {
        if self.pin.exists() {
            lines_of(&self.pin)
        } else {
            Vec::new()
        }
    }

    /// `updlock --lock-dir D SUB --gpio file:P EXTRA...`
    fn cmd(&self, sub: &str, extra: &[&str]) -> Command {
        let mut c = updlock_at(&self.dir);
        c.arg(sub).arg("--gpio").arg(self.gpio()).args(extra);
        c
    }

    /// The section under test: `hold` until `--for` runs out, or `run` of a
    /// program that ends at once.
    fn section(&self, mode: Mode) -> Command {
        match mode {
            Mode::Hold => self.cmd("hold", &["--for", "1ms"]),
            Mode::Run => self.cmd("run", &["--", "true"]),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The observer after updlock `dead` was killed: every name in the
    /// directory is a lock name or a temporary; each is updlock's, tagged by
    /// `dead`, not flocked, not owned by the supervisor's uid. Returns the
    /// lock names that are there (stale locks).
    #[track_caller]
    fn after_kill(&self, dead: i32, what: &str) -> Vec<String> {
        let mut stale = Vec::new();
        for n in self.names() {
            let p = self.dir.join(&n);
            let is_lock = LOCK_NAMES.contains(&n.as_str());
            let is_temp = n.starts_with(".updlock-") && n.ends_with(".tmp");
            assert!(is_lock || is_temp, "{what}: unexpected {n} in the lock dir");
            if is_temp && fs::metadata(&p).unwrap().len() == 0 {
                // Killed between creating its temporary and tagging it: the
                // sweep takes it for a live take's until it is a minute old
                // (see age_untagged_temporaries); it blocks nothing.
                assert_eq!(proc_flocked(&p), Some(false), "{what}: {n} still flocked");
                continue;
            }
            assert_eq!(
                tag_pid(&p),
                Some(dead),
                "{what}: {n} is not tagged by {dead}"
            );
            assert_eq!(proc_flocked(&p), Some(false), "{what}: {n} still flocked");
            assert_ne!(
                owner(&p),
                NOBODY,
                "{what}: {n} owned by the supervisor's uid"
            );
            if is_lock {
                stale.push(n);
            }
        }
        // status tells a stale lock from a held one, and counts it as in the way.
        let st = run(updlock_at(&self.dir).arg("status"));
        if stale.is_empty() {
            st.code_is(0);
        } else {
            st.code_is(73).stdout_has(&["stale"]);
            for n in &stale {
                st.stdout_has(&[&format!(
                    "{}: stale: left by updlock pid {dead}",
                    s(&self.dir.join(n))
                )]);
            }
        }
        stale
    }

    /// The next start after a kill: its first write is the safe level,
    /// before any active level; it re-takes what is stale; it ends with the
    /// line safe and the directory empty (stale temporaries swept).
    #[track_caller]
    fn restart(&self, dead: i32, stale: &[String], what: &str) {
        let aged = age_untagged_temporaries(&self.dir);
        let before = self.record().len();
        let mut h = Proc::spawn(&mut self.cmd("hold", &[]));
        h.wait_held();
        let rec = self.record();
        assert_eq!(
            rec.get(before..before + 2),
            Some(&["0".to_string(), "1".to_string()][..]),
            "{what}: after the restart, safe first then active: {rec:?}\n{}",
            h.describe()
        );
        for n in LOCK_NAMES {
            assert_tagged_by(&self.dir.join(n), h.pid());
        }
        h.signal(SIGTERM);
        let out = h.finish();
        out.code_is(0);
        if aged > 0 {
            out.stderr_has(&["removed a temporary left by a crashed updlock"]);
        }
        for n in stale {
            out.stderr_has(&[&format!(
                "{}: re-took a stale lock left by updlock pid {dead}",
                s(&self.dir.join(n))
            )]);
        }
        assert_eq!(
            self.record().last().map(String::as_str),
            Some("0"),
            "{what}"
        );
        assert_empty(&self.dir);
    }

    /// After a kill, someone else's lock takes the place of whatever is
    /// there: the supervisor's (its simulator's override, as root) or a
    /// foreign file. The next start drives the line safe, is refused, and
    /// changes nothing.
    #[track_caller]
    fn foreign_survives(&self, what: &str) {
        let supervisor = is_root();
        if supervisor {
            run(supervisor_sim(&self.dir).args(["--force", "--keep"]))
                .code_is(0)
                .stdout_has(&["holding"]);
        } else {
            for n in LOCK_NAMES {
                let p = self.dir.join(n);
                let _ = fs::remove_file(&p);
                fs::write(&p, "someone else's\n").unwrap();
            }
        }
        // Temporaries a kill left are swept by the next take (the empty
        // ones once aged); the lock names are what must survive.
        age_untagged_temporaries(&self.dir);
        let theirs: Vec<Snapshot> = LOCK_NAMES
            .iter()
            .map(|n| Snapshot::of(&self.dir.join(n)))
            .collect();
        let before = self.record().len();
        for cmd in [&["hold"][..], &["run", "--", "true"]] {
            let out = run(&mut self.cmd(cmd[0], &cmd[1..]));
            out.code_is(73).stdout_is("");
            if supervisor {
                out.stderr_has(&["the supervisor holds the lock"]);
            } else {
                out.stderr_has(&["held by someone else"]);
            }
        }
        assert_eq!(
            self.record()[before..],
            ["0".to_string(), "0".to_string()],
            "{what}: only safe writes"
        );
        for (n, snap) in LOCK_NAMES.iter().zip(&theirs) {
            snap.unchanged(&self.dir.join(n));
        }
        assert_names(&self.dir, &LOCK_NAMES);
        if supervisor {
            run(supervisor_sim(&self.dir).arg("--release")).code_is(0);
        } else {
            for n in LOCK_NAMES {
                fs::remove_file(self.dir.join(n)).unwrap();
            }
        }
        assert_empty(&self.dir);
    }

    /// Starts the section paused at `step` and returns it once it says so.
    fn paused(&self, mode: Mode, step: &str) -> Proc {
        let mut p = Proc::spawn(self.section(mode).env("UPDLOCK_TEST_PAUSE_AT", step));
        p.wait_stderr(&format!("updlock: test: paused at {step}"));
        p
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Hold,
    Run,
}

/// What the line's record must be while paused at `step`.
fn record_at(step: &str) -> &'static [&'static str] {
    match step {
        "take" | "publish" | "taken" => &["0"],
        "active" | "running" => &["0", "1"],
        _ => &["0", "1", "0"],
    }
}

/// Which lock names a kill at `step` leaves (stale), and whether a
/// temporary may be left.
fn left_at(step: &str) -> (usize, bool) {
    match step {
        "take" | "released" => (0, false),
        // The first file is being published: nothing at a lock name yet,
        // its temporary beside it.
        "publish" => (0, true),
        // Released in reverse order: one name gone, one still there.
        "unlinked" => (1, false),
        _ => (2, false),
    }
}

// ---------------------------------------------------------------- kills at each step

fn kill_at_every_step(mode: Mode) {
    let r = Rig::new();
    for step in STEPS {
        for foreign_after in [false, true] {
            let what = format!("{mode:?} killed at {step}");
            let mut p = r.paused(mode, step);
            let dead = p.pid();
            // The record at that instant, and the invariant: active only
            // while both locks are there, ours and flocked.
            let rec = r.record();
            let base = rec.len() - record_at(step).len();
            assert_eq!(&rec[base..], record_at(step), "{what}: {}", p.describe());
            if rec.last().map(String::as_str) == Some("1") {
                for n in LOCK_NAMES {
                    let l = r.dir.join(n);
                    assert_eq!(tag_pid(&l), Some(dead), "{what}: {n} not ours");
                    assert_eq!(proc_flocked(&l), Some(true), "{what}: {n} not flocked");
                }
            }
            p.signal(SIGKILL);
            p.finish().killed_by(SIGKILL);
            let stale = r.after_kill(dead, &what);
            let (want_stale, temp_ok) = left_at(step);
            assert_eq!(stale.len(), want_stale, "{what}: stale locks {stale:?}");
            let temps = r.names().len() - stale.len();
            assert!(
                temps <= usize::from(temp_ok),
                "{what}: temporaries left: {:?}",
                r.names()
            );
            if step == "publish" {
                assert_eq!(temps, 1, "{what}: the temporary of the publish");
            }
            if foreign_after {
                r.foreign_survives(&what);
            } else {
                r.restart(dead, &stale, &what);
            }
        }
    }
}

#[test]
fn hold_killed_at_every_step() {
    kill_at_every_step(Mode::Hold);
}

#[test]
fn run_killed_at_every_step() {
    kill_at_every_step(Mode::Run);
}

/// The hook is a test device only: the pause is never reached without
/// the variable, and an unknown step never pauses.
#[test]
fn an_unknown_step_never_pauses() {
    let r = Rig::new();
    let out = run(r.section(Mode::Run).env("UPDLOCK_TEST_PAUSE_AT", "nowhere"));
    out.code_is(0).stderr_lacks("paused");
    assert_eq!(r.record(), ["0", "1", "0"]);
    assert_empty(&r.dir);
}

// ---------------------------------------------------------------- kills at random instants

#[test]
fn killed_at_random_instants() {
    let mut rng = Rng::new("killed_at_random_instants");
    let r = Rig::new();
    // A section lasts a few milliseconds natively and tens under qemu. Half
    // the instants count from the start (covering the start itself), half
    // from the moment the line is requested, just before the take.
    let span = Duration::from_millis(if EMULATED { 300 } else { 20 });
    let near = Duration::from_millis(if EMULATED { 120 } else { 6 });
    let mut stale_seen = 0;
    for i in 0..RANDOM_KILLS {
        let mode = if i % 2 == 0 { Mode::Hold } else { Mode::Run };
        let what = format!("round {i} ({mode:?})");
        let mut p = Proc::spawn(&mut r.section(mode));
        let dead = p.pid();
        // The random instant is the fault, not a synchronisation: whatever
        // updlock was doing then, the observer below must find a sane state.
        if i % 4 < 2 {
            std::thread::sleep(rng.upto(span));
        } else {
            p.wait_stderr("requested as output");
            std::thread::sleep(rng.upto(near));
        }
        p.signal(SIGKILL);
        let _ = p.finish();
        let stale = r.after_kill(dead, &what);
        stale_seen += usize::from(!stale.is_empty());
        r.restart(dead, &stale, &what);
    }
    eprintln!(
        "{RANDOM_KILLS} kills, {stale_seen} left a stale lock, {} an untagged temporary (aged, then swept)",
        UNTAGGED.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------- overrides at random instants

/// The supervisor simulator overrides at a random instant: unlinks the
/// user's locks, takes its own, SIGTERMs the service and would SIGKILL it
/// after its grace. Every time, the service (updlock) ends before that
/// SIGKILL (on the SIGTERM, or already on seeing its lock go: the simulator
/// exits 0, not 2), the line ends safe, and the supervisor's locks are left
/// in place.
#[test]
fn overridden_at_random_instants() {
    if skip_unless_root() {
        return;
    }
    let mut rng = Rng::new("overridden_at_random_instants");
    let r = Rig::new();
    let span = Duration::from_millis(if EMULATED { 400 } else { 30 });
    let mut worst = Duration::ZERO;
    for i in 0..RANDOM_OVERRIDES {
        let mut c = if i % 2 == 0 {
            r.cmd("hold", &[])
        } else {
            r.cmd(
                "run",
                &[
                    "--grace",
                    "3s",
                    "--",
                    "sh",
                    "-c",
                    "while :; do sleep 0.05; done",
                ],
            )
        };
        let p = Proc::spawn(&mut c);
        std::thread::sleep(rng.upto(span));
        let pid = p.pid().to_string();
        let t0 = Instant::now();
        run(supervisor_sim(&r.dir).args([
            "--force",
            "--keep",
            "--grace",
            "5",
            "--service-pid",
            &pid,
        ]))
        // 0: it stopped on the SIGTERM, or had already ended on seeing its
        // lock go; 2 would mean it needed the SIGKILL.
        .code_is(0)
        .stdout_has(&["update applied"]);
        worst = worst.max(t0.elapsed());
        let out = p.finish();
        let rec = r.record();
        assert!(
            rec.last().map_or(true, |l| l == "0"),
            "round {i}: the line is not safe: {rec:?}\n{out:?}"
        );
        for n in LOCK_NAMES {
            assert_eq!(owner(&r.dir.join(n)), NOBODY, "round {i}: owner of {n}");
        }
        assert_names(&r.dir, &LOCK_NAMES);
        run(supervisor_sim(&r.dir).arg("--release")).code_is(0);
        assert_empty(&r.dir);
    }
    eprintln!("{RANDOM_OVERRIDES} overrides, the slowest stop took {worst:?}");
}

// ---------------------------------------------------------------- the observer

/// Watches the line's file with inotify. At every write it reads the
/// record; if the line is active it checks both lock files (present, tagged
/// by updlock, flocked in /proc/locks) and reads the record again: if it
/// did not change meanwhile, the line was active during the whole check,
/// so the lock must have been held. A check that fails that way is a
/// violation; one that passes is sent on `confirmed`.
fn observe(
    pin: PathBuf,
    dir: PathBuf,
    stop: &AtomicBool,
    confirmed: mpsc::Sender<()>,
) -> Vec<String> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
    ino.add_watch(&pin, AddWatchFlags::IN_MODIFY).unwrap();
    let mut violations = Vec::new();
    let mut checks = 0u32;
    let look = |violations: &mut Vec<String>| -> bool {
        let before = fs::read_to_string(&pin).unwrap();
        if before.lines().last() != Some("1") {
            return false;
        }
        let mut bad = Vec::new();
        for n in LOCK_NAMES {
            let l = dir.join(n);
            if tag_pid(&l).is_none() {
                bad.push(format!("{n} missing or untagged"));
            } else if proc_flocked(&l) != Some(true) {
                bad.push(format!("{n} not flocked"));
            }
        }
        let after = fs::read_to_string(&pin).unwrap();
        if after != before {
            return false; // inconclusive: the line changed during the check
        }
        if !bad.is_empty() {
            violations.push(format!("line active, but {}", bad.join(", ")));
            return false;
        }
        true
    };
    while !stop.load(Ordering::Relaxed) {
        let fd = std::os::fd::AsFd::as_fd(&ino);
        let mut fds = [nix::poll::PollFd::new(&fd, nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, 50).unwrap_or(0) == 0 {
            // Also between writes: a line that stays active stays checked.
            if look(&mut violations) {
                checks += 1;
                let _ = confirmed.send(());
            }
            continue;
        }
        while ino.read_events().is_ok_and(|e| !e.is_empty()) {}
        if look(&mut violations) {
            checks += 1;
            let _ = confirmed.send(());
        }
    }
    eprintln!("observer: {checks} confirmed checks");
    violations
}

/// Sections ended every ordinary way (a stop signal, `--for`, the program
/// ending, a signal forwarded to it), with the observer watching: the line
/// is never seen active without both locks held, tagged and flocked. Every
/// section the test ends itself waits first for the observer to have
/// checked the active line, so the check cannot silently not happen.
#[test]
fn the_line_is_never_active_without_the_lock() {
    let r = Rig::new();
    fs::write(&r.pin, "").unwrap();
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let violations = std::thread::scope(|scope| {
        let obs = scope.spawn(|| observe(r.pin.clone(), r.dir.clone(), &stop, tx));
        // Waits until the observer has confirmed the active line at least
        // once in this section: the check ran, so it could have failed.
        let confirmed = |p: &mut Proc| {
            while rx.try_recv().is_ok() {}
            if rx.recv_timeout(TIMEOUT).is_err() {
                panic!("the observer never saw the line active: {}", p.describe());
            }
        };
        for i in 0..OBSERVED_SECTIONS {
            match i % 4 {
                0 => {
                    let mut h = Proc::spawn(&mut r.cmd("hold", &[]));
                    h.wait_held();
                    confirmed(&mut h);
                    h.signal(SIGTERM);
                    h.finish().code_is(0);
                }
                1 => {
                    // It ends by itself: the observer looks at whatever it
                    // catches, and is not waited for (that would be a race
                    // with the expiry); the other sections are.
                    let mut h = Proc::spawn(&mut r.cmd("hold", &["--for", "100ms"]));
                    h.wait_held();
                    h.finish().code_is(0);
                }
                2 => {
                    // The program waits on a FIFO until the observer has looked.
                    let fifo = r.dir.parent().unwrap().join("go");
                    let _ = fs::remove_file(&fifo);
                    run(Command::new("mkfifo").arg(&fifo)).code_is(0);
                    let mut c = r.cmd(
                        "run",
                        &[
                            "--",
                            "sh",
                            "-c",
                            "echo started; read x <\"$1\"; exit 4",
                            "sh",
                        ],
                    );
                    c.arg(&fifo);
                    let mut p = Proc::spawn(&mut c);
                    p.wait_stdout("started");
                    confirmed(&mut p);
                    fs::write(&fifo, "go\n").unwrap();
                    p.finish().code_is(4);
                }
                _ => {
                    let mut p = Proc::spawn(&mut r.cmd(
                        "run",
                        &[
                            "--",
                            "sh",
                            "-c",
                            "echo started; while :; do sleep 0.05; done",
                        ],
                    ));
                    p.wait_stdout("started");
                    confirmed(&mut p);
                    p.signal(SIGINT);
                    p.finish();
                }
            }
            assert_eq!(r.record().last().map(String::as_str), Some("0"));
            assert_empty(&r.dir);
        }
        stop.store(true, Ordering::Relaxed);
        obs.join().expect("the observer panicked")
    });
    assert!(violations.is_empty(), "{violations:#?}");
}

// ---------------------------------------------------------------- bad input not covered elsewhere

/// Runs `script` (with $1 = the lock directory, $2 = updlock, $3... =
/// `more`) in a private mount namespace: whatever it mounts vanishes with it.
fn in_private_mounts(script: &str, dir: &Path, more: &[&Path]) -> Finished {
    let mut c = Command::new("unshare");
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
    .args(more)
    .env_remove("UPDLOCK_LOCK_DIR")
    .env_remove("BALENA_APP_LOCK_PATH")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("RUST_LOG");
    run(&mut c)
}

/// A GPIO chip the user may not open: 77, naming the chip. Played with a
/// character device named /dev/gpiochip0 (mode 0600) on a tmpfs over /dev
/// in a private mount namespace, so the machine's /dev is untouched; the
/// open fails before the device could be asked anything.
#[test]
fn permission_denied_on_the_chip_exits_77() {
    if skip_unless_root() {
        return;
    }
    let t = open_tempdir();
    let d = mkdir(&t.path().join("locks"));
    chmod(&d, 0o1777);
    let out = in_private_mounts(
        r#"mount -t tmpfs none /dev || exit 90
           mknod -m 666 /dev/null c 1 3 && mknod -m 600 /dev/gpiochip0 c 1 3 || exit 91
           for spec in gpiochip0:3 GPIO17 /dev/gpiochip0:3; do
               setpriv --reuid 1000 --regid 1000 --clear-groups "$2" --lock-dir "$1" hold --gpio "$spec"
               echo "rc=$?"
           done"#,
        &d,
        &[],
    );
    out.code_is(0).stdout_is("rc=77\nrc=77\nrc=77\n");
    for spec in ["gpiochip0:3", "GPIO17", "/dev/gpiochip0:3"] {
        out.stderr_has(&[&format!(
            "updlock: {spec}: permission denied on /dev/gpiochip0: run as root, or give this user access to it"
        )]);
    }
    assert_eq!(out.stderr.lines().count(), 3, "{out:?}");
    assert_empty(&d);
}

/// A lock file updlock cannot read is someone else's: 73, untouched.
#[test]
fn an_unreadable_lock_file_is_someone_elses() {
    if skip_unless_root() {
        return;
    }
    let t = open_tempdir();
    let d = mkdir(&t.path().join("locks"));
    chmod(&d, 0o1777);
    let lock = d.join("updates.lock");
    fs::write(&lock, "").unwrap();
    chmod(&lock, 0o000);
    let before = Snapshot::of(&lock);
    for sub in [&["hold"][..], &["run", "--", "true"]] {
        run(as_user(1000, UPDLOCK).arg("--lock-dir").arg(&d).args(sub)).refused(
            73,
            &[
                &s(&lock),
                "held by someone else (a lock file updlock cannot read; updlock never removes it)",
            ],
        );
    }
    before.unchanged(&lock);
    assert_names(&d, &["updates.lock"]);
}

/// A lock directory that is a mount point of another file system, and two
/// lock files on two file systems: both work and leave nothing (the
/// temporary is always made beside its lock, so its link never crosses
/// file systems).
#[test]
fn lock_files_on_other_file_systems_work() {
    if skip_unless_root() {
        return;
    }
    let t = tempdir();
    let d = mkdir(&t.path().join("locks"));
    let other = mkdir(&t.path().join("other"));
    let out = in_private_mounts(
        r#"mount -t tmpfs none "$1" || exit 90
           "$2" --lock-dir "$1" hold --for 1ms || exit 1
           ls -A "$1"
           "$2" --lock "$1/updates.lock" --lock "$3/resin-updates.lock" hold --for 1ms || exit 2
           ls -A "$1" "$3""#,
        &d,
        &[&other],
    );
    out.code_is(0);
    assert_eq!(out.stdout.matches("held").count(), 2, "{out:?}");
    assert!(!out.stdout.contains(".lock"), "something left: {out:?}");
}
