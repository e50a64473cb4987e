//! The harness shared by the integration tests: they drive the real `updlock`
//! binary (and the peers the protocol is about: procmail `lockfile`,
//! util-linux `flock`, the supervisor simulator) as separate processes.
//!
//! Every wait is an event with a deadline: a line on a pipe, a process exit
//! seen through a pidfd. Nothing here sleeps to synchronise. Every process
//! started through [`Proc`] is killed and reaped when the test ends, whether
//! it passes or panics.

// Each test file compiles its own copy and uses a part of it.
#![allow(dead_code, unused_imports)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

pub use nix::sys::signal::Signal::{SIGHUP, SIGINT, SIGKILL, SIGTERM};
pub use tempfile::TempDir;

/// The binary under test.
///
/// Cross-tested under qemu-user (tests/run's qemu stages build the tests with
/// `UPDLOCK_TEST_RUNNER=qemu-aarch64` or `qemu-arm`), this test process is
/// emulated, but the kernel cannot execute a foreign-architecture updlock
/// (no binfmt_misc): UPDLOCK then names a script beside the binary that runs
/// it under that emulator, with the same pid (it `exec`s). Host programs
/// (sh, flock, setpriv, ...) run natively either way.
pub const UPDLOCK: &str = match option_env!("UPDLOCK_TEST_RUNNER") {
    Some(_) => concat!(env!("CARGO_BIN_EXE_updlock"), "-emulated"),
    None => env!("CARGO_BIN_EXE_updlock"),
};

/// Whether these tests run under qemu-user (see [`UPDLOCK`]): every process
/// start then costs tens of milliseconds, for a test to scale its rounds by.
pub const EMULATED: bool = option_env!("UPDLOCK_TEST_RUNNER").is_some();

/// Writes the script [`UPDLOCK`] names under emulation, once per test
/// process, before the first process is started.
fn emulation_wrapper() {
    let Some(runner) = option_env!("UPDLOCK_TEST_RUNNER") else {
        return;
    };
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let bin = env!("CARGO_BIN_EXE_updlock");
        // A test that mounts a tmpfs over /tmp in its own mount namespace
        // hides a target directory under /tmp; this process, still in the
        // original namespace, shows it through /proc/PID/root.
        let script = format!(
            "#!/bin/sh\nbin='{bin}'\n[ -r \"$bin\" ] || bin=/proc/{pid}/root$bin\nexec {runner} \"$bin\" \"$@\"\n",
            pid = std::process::id()
        );
        if fs::read_to_string(UPDLOCK).is_ok_and(|s| s == script) {
            return;
        }
        // Written aside and renamed, so a concurrent test process never
        // executes half a script.
        let tmp = format!("{UPDLOCK}.{}", std::process::id());
        fs::write(&tmp, script).unwrap_or_else(|e| panic!("write {tmp}: {e}"));
        chmod(Path::new(&tmp), 0o755);
        fs::rename(&tmp, UPDLOCK).unwrap_or_else(|e| panic!("rename {tmp}: {e}"));
    });
}

/// The balena supervisor simulator (bash; must run as root).
pub const SUPERVISOR_SIM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/supervisor-sim");

/// The longest any single wait may take before the test fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The supervisor's uid (SPEC §3).
pub const NOBODY: u32 = 65534;

// ---------------------------------------------------------------- set-up

/// True when running as root. Tests that need root call [`skip_unless_root`].
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns true (and says so) when the test must be skipped for lack of root.
#[must_use]
pub fn skip_unless_root() -> bool {
    if is_root() {
        false
    } else {
        eprintln!("skipped: needs root");
        true
    }
}

/// A fresh temporary directory (mode 0700, removed at the end of the test).
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("updlock-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A fresh temporary directory other users can traverse (0755), for tests
/// that run updlock as another uid.
pub fn open_tempdir() -> TempDir {
    let t = tempdir();
    chmod(t.path(), 0o755);
    t
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

pub fn mkdir(path: &Path) -> PathBuf {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    path.to_path_buf()
}

/// Text of a path, for messages.
pub fn s(path: &Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------- commands

/// `updlock` with a clean environment: none of the variables that choose a
/// lock location, talk to systemd or the supervisor's API, or change the
/// log level.
pub fn updlock() -> Command {
    emulation_wrapper();
    let mut c = Command::new(UPDLOCK);
    // Every setting: a stray UPDLOCK_* in the developer's shell would
    // otherwise change what the test runs (or be refused as unknown).
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("UPDLOCK_") && k != "UPDLOCK_TEST_RUNNER" {
            c.env_remove(&key);
        }
    }
    c.env_remove("UPDLOCK_LOCK_DIR")
        .env_remove("BALENA_APP_LOCK_PATH")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("BALENA_SUPERVISOR_ADDRESS")
        .env_remove("BALENA_SUPERVISOR_API_KEY")
        .env_remove("RESIN_SUPERVISOR_ADDRESS")
        .env_remove("RESIN_SUPERVISOR_API_KEY")
        .env_remove("RUST_LOG");
    c
}

/// `updlock --lock-dir DIR`.
pub fn updlock_at(dir: &Path) -> Command {
    let mut c = updlock();
    c.arg("--lock-dir").arg(dir);
    c
}

/// `sh -c SCRIPT sh ARGS...`.
pub fn sh(script: &str, args: &[&OsStr]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script).arg("sh").args(args);
    c
}

/// The supervisor simulator on `dir`.
pub fn supervisor_sim(dir: &Path) -> Command {
    let mut c = Command::new(SUPERVISOR_SIM);
    c.arg("--lock-dir").arg(dir);
    c
}

/// `setpriv` to run `program` as `uid`:`uid` without supplementary groups.
pub fn as_user(uid: u32, program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.arg("--reuid")
        .arg(uid.to_string())
        .arg("--regid")
        .arg(uid.to_string())
        .arg("--clear-groups")
        .arg(program);
    c
}

/// Runs `cmd` to its end (bounded by [`TIMEOUT`]) and returns what it did.
pub fn run(cmd: &mut Command) -> Finished {
    Proc::spawn(cmd).finish()
}

/// Starts `updlock ... hold` (the caller's command, which must end in
/// `hold` and its options) and returns once it has printed `held`.
pub fn spawn_held(cmd: &mut Command) -> Proc {
    let mut p = Proc::spawn(cmd);
    p.wait_held();
    p
}

/// `updlock --lock-dir DIR hold`, once it holds the lock.
pub fn hold(dir: &Path) -> Proc {
    spawn_held(updlock_at(dir).arg("hold"))
}

// ---------------------------------------------------------------- processes

/// Why no further line came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    Timeout,
    Closed,
}

/// Lines of one output pipe, read by a thread so they can be waited for
/// with a deadline.
struct Stream {
    name: &'static str,
    rx: Receiver<String>,
    lines: Vec<String>,
    /// Lines before this index were already matched by a wait.
    cursor: usize,
    closed: bool,
}

impl Stream {
    fn new(name: &'static str, pipe: impl Read + Send + 'static) -> Stream {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            loop {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Stream {
            name,
            rx,
            lines: Vec::new(),
            cursor: 0,
            closed: false,
        }
    }

    /// Takes what has arrived so far, without waiting.
    fn pump(&mut self) {
        while !self.closed {
            match self.rx.try_recv() {
                Ok(l) => self.lines.push(l),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Receives one more line; `Err` says why not.
    fn next_line(&mut self, deadline: Instant) -> Result<(), Miss> {
        if self.closed {
            return Err(Miss::Closed);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(l) => {
                self.lines.push(l);
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => Err(Miss::Timeout),
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                Err(Miss::Closed)
            }
        }
    }

    fn text(&self) -> String {
        let mut t = self.lines.join("\n");
        if !t.is_empty() {
            t.push('\n');
        }
        t
    }
}

/// A process under test, in its own process group. On drop the group is
/// SIGKILLed and the process reaped if the test did not wait for it.
pub struct Proc {
    what: String,
    child: Child,
    pidfd: PidFd,
    out: Stream,
    err: Stream,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stdin from /dev/null and both outputs piped.
    pub fn spawn(cmd: &mut Command) -> Proc {
        emulation_wrapper();
        let what = format!("{cmd:?}");
        // Its own process group, so that whatever it starts goes with it on drop.
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        // The pidfd is taken while the child cannot have been reaped yet.
        let pidfd = PidFd::open(child.id() as i32);
        let out = Stream::new("stdout", child.stdout.take().expect("piped stdout"));
        let err = Stream::new("stderr", child.stderr.take().expect("piped stderr"));
        Proc {
            what,
            child,
            pidfd,
            out,
            err,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The command and everything it printed so far, for failure messages.
    pub fn describe(&mut self) -> String {
        self.out.pump();
        self.err.pump();
        format!(
            "{}\n  status: {:?}\n  --- stdout:\n{}  --- stderr:\n{}",
            self.what,
            self.status,
            self.out.text(),
            self.err.text()
        )
    }

    /// Sends `sig`. The process must not have been reaped (its pid could be
    /// someone else's by now).
    pub fn signal(&mut self, sig: Signal) {
        assert!(
            self.status.is_none(),
            "signal {sig} to a process already reaped: {}",
            self.describe()
        );
        kill(Pid::from_raw(self.pid()), sig).unwrap_or_else(|e| panic!("kill {sig}: {e}"));
    }

    fn wait_line(&mut self, stdout: bool, pred: &dyn Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let stream = if stdout { &mut self.out } else { &mut self.err };
            stream.pump();
            if let Some(i) = stream.lines[stream.cursor..].iter().position(|l| pred(l)) {
                let i = stream.cursor + i;
                stream.cursor = i + 1;
                return stream.lines[i].clone();
            }
            stream.cursor = stream.lines.len();
            if let Err(why) = stream.next_line(deadline) {
                let name = stream.name;
                panic!("waiting for {what} on {name}: {why:?}\n{}", self.describe());
            }
        }
    }

    /// Waits for the next stdout line that satisfies `pred`.
    pub fn stdout_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line(true, &pred, "a line")
    }

    /// Waits for the next stderr line that satisfies `pred`.
    pub fn stderr_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line(false, &pred, "a line")
    }

    /// The next stderr line containing `text` if one comes within `window`.
    /// Only for proving that something does *not* happen (a loop that should
    /// not run): never use it to wait for something that should.
    pub fn stderr_within(&mut self, text: &str, window: Duration) -> Option<String> {
        let deadline = Instant::now() + window;
        loop {
            let stream = &mut self.err;
            stream.pump();
            if let Some(i) = stream.lines[stream.cursor..]
                .iter()
                .position(|l| l.contains(text))
            {
                let i = stream.cursor + i;
                stream.cursor = i + 1;
                return Some(stream.lines[i].clone());
            }
            stream.cursor = stream.lines.len();
            if stream.next_line(deadline).is_err() {
                return None;
            }
        }
    }

    /// Waits for `hold` to print `held`, which must be its first stdout line.
    pub fn wait_held(&mut self) {
        let line = self.wait_line(true, &|l: &str| !l.is_empty(), "\"held\"");
        assert_eq!(line, "held", "first stdout line of {}", self.describe());
    }

    /// Waits for the next stdout line containing `text`.
    pub fn wait_stdout(&mut self, text: &str) -> String {
        self.wait_line(true, &|l: &str| l.contains(text), &format!("{text:?}"))
    }

    /// Waits for the next stderr line containing `text`.
    pub fn wait_stderr(&mut self, text: &str) -> String {
        self.wait_line(false, &|l: &str| l.contains(text), &format!("{text:?}"))
    }

    /// Waits (at most [`TIMEOUT`]) for the process to end and reaps it.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        if !self.pidfd.wait_exit(Instant::now() + TIMEOUT) {
            panic!("still running after {TIMEOUT:?}: {}", self.describe());
        }
        let status = self.child.wait().expect("reap the child");
        self.status = Some(status);
        status
    }

    /// Waits for the end, then for both pipes to close; returns everything.
    pub fn finish(mut self) -> Finished {
        let status = self.wait();
        let deadline = Instant::now() + TIMEOUT;
        for stdout in [true, false] {
            loop {
                let stream = if stdout { &mut self.out } else { &mut self.err };
                match stream.next_line(deadline) {
                    Ok(()) => {}
                    Err(Miss::Closed) => break,
                    Err(Miss::Timeout) => {
                        let name = stream.name;
                        panic!(
                            "{name} still open {TIMEOUT:?} after the process ended (a leftover child?): {}",
                            self.describe()
                        )
                    }
                }
            }
        }
        Finished {
            what: std::mem::take(&mut self.what),
            status,
            stdout: self.out.text(),
            stderr: self.err.text(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The whole group: the process and anything it left running. Its
        // id cannot be reused while the group has members or the leader is
        // not reaped.
        let _ = killpg(Pid::from_raw(self.pid()), SIGKILL);
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's exit seen through a pidfd: works for any pid, not only our
/// children, and never confuses a recycled pid with the process.
pub struct PidFd(OwnedFd);

impl PidFd {
    pub fn open(pid: i32) -> PidFd {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(fd >= 0, "pidfd_open({pid}): {}", Errno::last());
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Whether the process has ended by `deadline`.
    pub fn wait_exit(&self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            let mut fds = [PollFd::new(&self.0, PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) if left.is_zero() => return false,
                Ok(0) => continue,
                Ok(_) => return true,
                Err(Errno::EINTR) => continue,
                Err(e) => panic!("poll on a pidfd: {e}"),
            }
        }
    }

    /// Sends `sig` to the process (safe against pid reuse).
    pub fn signal(&self, sig: Signal) {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no info, no flags.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

/// A process that is not our child (say, updlock's program): SIGKILLed on
/// drop unless it was seen to end.
pub struct Foreign {
    pub pid: i32,
    pidfd: PidFd,
    gone: bool,
}

impl Foreign {
    pub fn new(pid: i32) -> Foreign {
        Foreign {
            pid,
            pidfd: PidFd::open(pid),
            gone: false,
        }
    }

    /// Whether it ended within [`TIMEOUT`].
    pub fn ends(&mut self) -> bool {
        self.gone = self.pidfd.wait_exit(Instant::now() + TIMEOUT);
        self.gone
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        if !self.gone {
            self.pidfd.signal(SIGKILL);
        }
    }
}

/// What a process did, once it ended.
#[derive(Debug)]
pub struct Finished {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn dump(&self) -> String {
        format!(
            "{}\n  status: {:?}\n  --- stdout:\n{}  --- stderr:\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "exit code of {}",
            self.dump()
        );
        self
    }

    /// Asserts it died of `sig`.
    #[track_caller]
    pub fn killed_by(&self, sig: Signal) -> &Self {
        assert_eq!(
            self.status.signal(),
            Some(sig as i32),
            "expected death by {sig}: {}",
            self.dump()
        );
        self
    }

    /// Asserts stderr contains every one of `texts`.
    #[track_caller]
    pub fn stderr_has(&self, texts: &[&str]) -> &Self {
        for t in texts {
            assert!(
                self.stderr.contains(t),
                "stderr should contain {t:?}: {}",
                self.dump()
            );
        }
        self
    }

    /// Asserts stderr does not contain `text`.
    #[track_caller]
    pub fn stderr_lacks(&self, text: &str) -> &Self {
        assert!(
            !self.stderr.contains(text),
            "stderr should not contain {text:?}: {}",
            self.dump()
        );
        self
    }

    /// Asserts stdout contains every one of `texts`.
    #[track_caller]
    pub fn stdout_has(&self, texts: &[&str]) -> &Self {
        for t in texts {
            assert!(
                self.stdout.contains(t),
                "stdout should contain {t:?}: {}",
                self.dump()
            );
        }
        self
    }

    /// Asserts stdout is exactly `text`.
    #[track_caller]
    pub fn stdout_is(&self, text: &str) -> &Self {
        assert_eq!(self.stdout, text, "stdout of {}", self.dump());
        self
    }

    /// A refusal: exit `code`, nothing on stdout, exactly one line on
    /// stderr, containing every one of `texts`.
    #[track_caller]
    pub fn refused(&self, code: i32, texts: &[&str]) -> &Self {
        self.code_is(code).stdout_is("").stderr_has(texts);
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "a refusal is one line on stderr: {}",
            self.dump()
        );
        self
    }
}

// ---------------------------------------------------------------- file system

/// Asserts `dir` holds exactly `names` (in any order; hidden names too):
/// the proof that nothing was left behind.
#[track_caller]
pub fn assert_names(dir: &Path, names: &[&str]) {
    let mut have: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    have.sort();
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(have, want, "contents of {}", dir.display());
}

/// Asserts `dir` is empty.
#[track_caller]
pub fn assert_empty(dir: &Path) {
    assert_names(dir, &[]);
}

/// The two lock files of a container lock directory.
pub const LOCK_NAMES: [&str; 2] = ["updates.lock", "resin-updates.lock"];

/// The first line of a file.
pub fn first_line(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines().next().unwrap_or_default().to_string()
}

/// Asserts `path` carries updlock's tag naming `pid`.
#[track_caller]
pub fn assert_tagged_by(path: &Path, pid: i32) {
    let line = first_line(path);
    let want = format!("updlock/1 pid={pid} ");
    assert!(
        line.starts_with(&want),
        "{}: first line {line:?} should start with {want:?}",
        path.display()
    );
}

/// Everything about an object at a path that updlock must not change:
/// identity, type, owner, mode, link count, times (modification and
/// change), and contents (file bytes, link target, directory names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    contents: Contents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Contents {
    File(Vec<u8>),
    Link(PathBuf),
    Dir(Vec<String>),
    Other,
}

impl Snapshot {
    pub fn of(path: &Path) -> Snapshot {
        let m =
            fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let t = m.file_type();
        let contents = if t.is_file() {
            Contents::File(fs::read(path).expect("read the file"))
        } else if t.is_symlink() {
            Contents::Link(fs::read_link(path).expect("readlink"))
        } else if t.is_dir() {
            let mut names: Vec<String> = fs::read_dir(path)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Contents::Dir(names)
        } else {
            // A FIFO or a device: reading it could block or have effects.
            Contents::Other
        };
        Snapshot {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            nlink: m.nlink(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            contents,
        }
    }

    /// Asserts `path` is still exactly what this snapshot saw.
    #[track_caller]
    pub fn unchanged(&self, path: &Path) {
        assert_eq!(&Snapshot::of(path), self, "{} was modified", path.display());
    }
}

/// Appends `text` to `path` with a single write(2), so a reader (updlock
/// watching a `file:` input) never sees half of it.
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to append: {e}", path.display()));
    let n = f
        .write(text.as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
    assert_eq!(n, text.len(), "a short write to {}", path.display());
}

/// The lines of a file (a `file:` line's record of levels).
pub fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether someone holds a `flock` on `path` (util-linux `flock -nx`). The
/// path must exist: `flock` would create it.
pub fn flocked(path: &Path) -> bool {
    assert!(path.exists(), "{} does not exist", path.display());
    let out = run(Command::new("flock").arg("-nx").arg(path).arg("true"));
    match out.code() {
        Some(0) => false,
        Some(1) => true,
        _ => panic!("flock -nx {}: {out:?}", path.display()),
    }
}

/// Owner uid of a path (not following a symlink).
pub fn owner(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
        .uid()
}

/// The next sd_notify datagram on `sock` (its read timeout set by the
/// caller), as text.
pub fn notification(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification within the socket's timeout: {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
