//! Measurements for tests/bench/run that a shell cannot take precisely.
//!
//! updlock-bench lib DIR CYCLES BATCHES
//!     Library-level take + release, in µs per cycle: updlock's own path (the
//!     checks the CLI does: resolve the location, open the targets, check the
//!     uid, take every file, release) for the container pair and for one file,
//!     beside the peers' syscall sequences done in-process. Prints
//!     `name<TAB>median<TAB>min` (µs per cycle, over BATCHES batches).
//!
//! updlock-bench latency MODE RUNS UPDLOCK
//!     Time from a stop (SIGTERM, or the lock file unlinked: an override) to
//!     the `0` line in a `--gpio file:PATH` record, seen with inotify.
//!     MODE: sigterm | override | shell-sigterm (the flock(1) shell idiom).
//!     Prints `name<TAB>median<TAB>min<TAB>p90<TAB>max` in µs.
//!
//! updlock-bench vm-latency MODE RUNS UPDLOCK SPEC GPIO NAME
//!     Inside a tests/vm guest (`tests/vm/run --bench`): time from a stop
//!     (MODE sigterm | override) of `UPDLOCK hold --gpio SPEC` to the moment
//!     the kernel set the line, global number GPIO, to 0: the timestamp of its
//!     `gpio_value` trace event, with the trace clock set to `mono` (the
//!     guest does), against CLOCK_MONOTONIC read just before the kill or the
//!     unlink (checked first: a `trace_marker` write must be stamped between
//!     two readings of that clock). Nothing polls the line, so on a one-CPU
//!     guest no reader competes with updlock for the CPU. Prints
//!     `NAME<TAB>median<TAB>min<TAB>p90<TAB>max` in µs.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{flock, FlockArg};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{kill, Signal};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;

use updlock::duration::Wait;
use updlock::events::Events;
use updlock::location::{self, Env, Location};
use updlock::lock::LockSet;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("updlock-bench: usage: see the top of tests/bench/src/main.rs");
            std::process::exit(64)
        })
    };
    match arg(0) {
        "lib" => lib(
            Path::new(arg(1)),
            arg(2).parse().expect("CYCLES"),
            arg(3).parse().expect("BATCHES"),
        ),
        "latency" => latency(arg(1), arg(2).parse().expect("RUNS"), arg(3)),
        "vm-latency" => vm_latency(
            arg(1),
            arg(2).parse().expect("RUNS"),
            arg(3),
            arg(4),
            arg(5),
            arg(6),
        ),
        other => {
            eprintln!("updlock-bench: unknown command {other}");
            std::process::exit(64)
        }
    }
}

// ---------------------------------------------------------------- lib

/// Runs `cycle` CYCLES times per batch; returns (median, min) µs per cycle.
fn batches(cycles: u32, nbatches: u32, mut cycle: impl FnMut()) -> (f64, f64) {
    for _ in 0..cycles / 10 + 1 {
        cycle(); // warm-up
    }
    let mut per: Vec<f64> = (0..nbatches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..cycles {
                cycle();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(cycles)
        })
        .collect();
    per.sort_by(f64::total_cmp);
    (per[per.len() / 2], per[0])
}

fn lib(dir: &Path, cycles: u32, nbatches: u32) {
    let mut events = Events::new().expect("signalfd");
    let report = |name: &str, (median, min): (f64, f64)| {
        println!("{name}\t{median:.2}\t{min:.2}");
    };

    // What `updlock --lock-dir DIR run` does around PROGRAM, lock-wise.
    let pair = Location::Container {
        dir: Some(dir.to_path_buf()),
    };
    report(
        "updlock: LockSet take + release (updates.lock + resin-updates.lock)",
        batches(cycles, nbatches, || {
            let paths = location::resolve(&pair, &Env::default()).expect("resolve");
            let set = LockSet::take_waiting(&paths, Wait::For(Duration::ZERO), &mut events)
                .expect("take");
            set.release().expect("release");
        }),
    );
    // `updlock --lock DIR/X run`: one file, as the peers lock.
    let one = Location::Files(vec![dir.join("one.lock")]);
    report(
        "updlock: LockSet take + release (one file, --lock)",
        batches(cycles, nbatches, || {
            let paths = location::resolve(&one, &Env::default()).expect("resolve");
            let set = LockSet::take_waiting(&paths, Wait::For(Duration::ZERO), &mut events)
                .expect("take");
            set.release().expect("release");
        }),
    );

    // The peers' syscalls (read off strace), done in-process.
    let x = dir.join("peer.lock");
    let tmp = dir.join(".lk-bench");
    report(
        "dotlockfile -l/-u sequence (tmp O_EXCL, link, 2 lstat, unlink x2)",
        batches(cycles, nbatches, || {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .expect("tmp");
            f.write_all(b"0\n").expect("write");
            drop(f);
            fs::hard_link(&tmp, &x).expect("link");
            fs::symlink_metadata(&tmp).expect("lstat");
            fs::symlink_metadata(&x).expect("lstat");
            fs::remove_file(&tmp).expect("unlink tmp");
            fs::remove_file(&x).expect("unlink");
        }),
    );
    report(
        "lockfile + rm sequence (tmp O_EXCL, link, unlink x2)",
        batches(cycles, nbatches, || {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&tmp)
                .expect("tmp");
            f.write_all(b"0").expect("write");
            drop(f);
            fs::hard_link(&tmp, &x).expect("link");
            fs::remove_file(&tmp).expect("unlink tmp");
            fs::remove_file(&x).expect("unlink");
        }),
    );
    report(
        "flock -n sequence (open O_CREAT, flock, close; file stays)",
        batches(cycles, nbatches, || {
            let f = OpenOptions::new()
                .read(true)
                .write(false)
                .create(false)
                .custom_flags(nix::libc::O_CREAT | nix::libc::O_NOCTTY)
                .open(&x)
                .expect("open");
            flock(f.as_raw_fd(), FlockArg::LockExclusiveNonblock).expect("flock");
            drop(f);
        }),
    );
    let _ = fs::remove_file(&x);
    report(
        "bare O_CREAT|O_EXCL + unlink (the least a lock file costs)",
        batches(cycles, nbatches, || {
            drop(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&x)
                    .expect("create"),
            );
            fs::remove_file(&x).expect("unlink");
        }),
    );
}

// ---------------------------------------------------------------- latency

struct Holder {
    child: Child,
    dir: PathBuf,
    line: PathBuf,
}

fn tempdir(n: usize) -> PathBuf {
    let base = std::env::var_os("TMPDIR").unwrap_or_else(|| "/tmp".into());
    let d = PathBuf::from(base).join(format!("updlock-bench-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir(&d).expect("mkdir");
    d
}

fn last_line(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// Starts a holder and waits for its `held` line and its `1` on the line.
fn start(mode: &str, n: usize, updlock: &str) -> Holder {
    let dir = tempdir(n);
    let line = dir.join("line");
    let locks = dir.join("locks");
    fs::create_dir(&locks).expect("mkdir locks");
    let mut cmd = if mode == "shell-sigterm" {
        // The flock(1) idiom a script would use to hold a lock and drive a
        // line while a job runs, with a TERM trap that makes the line safe.
        let script = r#"exec 9>"$1/updates.lock"; flock -n 9 || exit 73
trap 'echo 0 >>"$2"; kill $job 2>/dev/null; exit 0' TERM
echo 1 >>"$2"; echo held
sleep 3600 >/dev/null & job=$!; wait $job"#;
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script).arg("sh").arg(&locks).arg(&line);
        c
    } else {
        let mut c = Command::new(updlock);
        c.arg("-q")
            .arg("--lock-dir")
            .arg(&locks)
            .arg("hold")
            .arg("--gpio")
            .arg(format!("file:{}", line.display()));
        c
    };
    // In a group of its own, so that whatever it leaves running is ended with it.
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn holder");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read held");
    assert_eq!(first.trim(), "held", "holder did not say held");
    assert_eq!(last_line(&line).as_deref(), Some("1"), "line not active");
    Holder { child, dir, line }
}

fn latency(mode: &str, runs: usize, updlock: &str) {
    let mut samples = Vec::with_capacity(runs);
    for n in 0..runs {
        let mut h = start(mode, n, updlock);
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).expect("inotify");
        ino.add_watch(&h.line, AddWatchFlags::IN_MODIFY)
            .expect("watch");
        let pid = Pid::from_raw(h.child.id() as i32);
        let t0 = Instant::now();
        match mode {
            "override" => fs::remove_file(h.dir.join("locks/updates.lock")).expect("unlink"),
            _ => kill(pid, Signal::SIGTERM).expect("kill"),
        }
        let t1 = loop {
            ino.read_events().expect("inotify read");
            if last_line(&h.line).as_deref() == Some("0") {
                break Instant::now();
            }
        };
        samples.push((t1 - t0).as_secs_f64() * 1e6);
        let _ = h.child.wait();
        let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
        let _ = fs::remove_dir_all(&h.dir);
    }
    let name = match mode {
        "sigterm" => "updlock hold: SIGTERM -> line safe",
        "override" => "updlock hold: lock unlinked -> line safe",
        _ => "sh + flock(1) + TERM trap: SIGTERM -> line safe",
    };
    print_row(name, samples);
}

/// `name<TAB>median<TAB>min<TAB>p90<TAB>max`, µs.
fn print_row(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}\t{:.1}\t{:.1}\t{:.1}\t{:.1}",
        pick(0.5),
        samples[0],
        pick(0.9),
        samples[samples.len() - 1]
    );
}

// ---------------------------------------------------------------- vm-latency

const TRACING: &str = "/sys/kernel/tracing";

fn die(what: String) -> ! {
    eprintln!("updlock-bench: {what}");
    std::process::exit(1)
}

/// CLOCK_MONOTONIC now, in ns: the clock the `mono` trace clock reads.
fn monotonic_ns() -> i128 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("clock_gettime");
    i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
}

/// The trace lines that contain `needle`, each with its timestamp in µs and
/// what follows the needle. A line of the trace reads
/// `updlock-83 [000] ..... 12.345678: gpio_value: 498 set 0`.
fn trace_lines(needle: &str) -> Vec<(i128, String)> {
    let text = fs::read_to_string(format!("{TRACING}/trace"))
        .unwrap_or_else(|e| die(format!("{TRACING}/trace: {e}")));
    text.lines()
        .filter_map(|l| {
            let at = l.find(needle)?;
            let stamp = l[..at].rsplit(' ').next()?;
            let (s, us) = stamp.split_once('.')?;
            let us = i128::from(s.parse::<u64>().ok()?) * 1_000_000 + us.parse::<i128>().ok()?;
            Some((us, l[at + needle.len()..].trim().to_string()))
        })
        .collect()
}

/// The `gpio_value` events of line `gpio`, in order: (timestamp µs, value).
fn gpio_events(gpio: &str) -> Vec<(i128, u8)> {
    trace_lines(&format!(": gpio_value: {gpio} set "))
        .into_iter()
        .filter_map(|(us, v)| Some((us, v.parse().ok()?)))
        .collect()
}

/// Checks that the trace's timestamps are CLOCK_MONOTONIC: a marker written
/// between two readings of the clock must be stamped between them.
fn check_trace_clock() {
    fs::write(format!("{TRACING}/trace"), "").expect("clear the trace");
    let before = monotonic_ns() / 1000;
    fs::write(
        format!("{TRACING}/trace_marker"),
        "updlock-bench clock check",
    )
    .unwrap_or_else(|e| die(format!("{TRACING}/trace_marker: {e}")));
    let after = monotonic_ns() / 1000;
    let marks = trace_lines(": tracing_mark_write: updlock-bench clock check");
    match marks.first() {
        Some(&(us, _)) if before <= us && us <= after + 1 => {}
        other => die(format!(
            "the trace clock is not CLOCK_MONOTONIC: marker at {other:?} µs, written between {before} and {after}"
        )),
    }
}

fn vm_latency(mode: &str, runs: usize, updlock: &str, spec: &str, gpio: &str, name: &str) {
    let clock = fs::read_to_string(format!("{TRACING}/trace_clock")).unwrap_or_default();
    if !clock.contains("[mono]") {
        die(format!("the trace clock is not mono: {}", clock.trim()));
    }
    check_trace_clock();
    let mut samples = Vec::with_capacity(runs);
    for n in 0..runs {
        // Opened for writing with O_TRUNC, the trace file empties the buffer.
        fs::write(format!("{TRACING}/trace"), "").expect("clear the trace");
        let dir = tempdir(n);
        let locks = dir.join("locks");
        fs::create_dir(&locks).expect("mkdir locks");
        // Its stderr into a file: on the guest's serial console, every line
        // it logged would cost the emulated UART's time.
        let err_path = dir.join("stderr");
        let err = fs::File::create(&err_path).expect("stderr file");
        let mut child = Command::new(updlock)
            .arg("-q")
            .arg("--lock-dir")
            .arg(&locks)
            .args(["hold", "--gpio", spec])
            .stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| die(format!("{updlock}: {e}")));
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        out.read_line(&mut first).expect("read held");
        let logged = || fs::read_to_string(&err_path).unwrap_or_default();
        if first.trim() != "held" {
            die(format!(
                "{spec}: updlock did not say held: {first:?} {}",
                logged()
            ));
        }
        let t0 = monotonic_ns();
        match mode {
            "override" => fs::remove_file(locks.join("updates.lock")).expect("unlink"),
            "sigterm" => kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("kill"),
            other => die(format!("unknown mode {other}")),
        }
        let status = child.wait().expect("wait");
        let events = gpio_events(gpio);
        let values: String = events.iter().map(|&(_, v)| char::from(b'0' + v)).collect();
        // Requested safe, active once held, safe again: anything else is not
        // the transition being timed.
        if values != "010" {
            die(format!(
                "{spec} (gpio {gpio}): values set {values:?}, not \"010\"; updlock {status}: {}",
                logged()
            ));
        }
        let set = events[2].0 * 1000;
        if set < t0 - 1000 {
            die(format!("{spec}: the safe level was set before the stop"));
        }
        samples.push((set - t0) as f64 / 1e3);
        let _ = fs::remove_dir_all(&dir);
    }
    print_row(name, samples);
}
