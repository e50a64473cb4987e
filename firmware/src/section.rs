//! The critical section: lock first, then activate; safe first, then release.
//!
//! The caller takes the [`LockSet`] and requests the actuator line in its
//! safe state; `hold` and `run` activate it only once the lock is held and
//! check that it still is, and on every way out — the program ending, a stop
//! signal, an override (the supervisor removed our file, SPEC §4), a deadline,
//! an error — they drive the line safe *before* anything else: before a
//! signal is forwarded, before waiting for the program, and before the caller
//! releases the lock. Panics reach the same end through drop order: the
//! caller declares the lock before the actuator, so the actuator is dropped
//! (and made safe) first.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::events::{Event, Events, StopSignal};
use crate::lock::{LockError, LockSet, Ownership};
use crate::pin::{Actuate, PinError};

/// Why the section could not run as asked.
#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    /// The lock layer failed (stat, wait).
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The actuator could not be driven active (it was then made safe).
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// How a `hold` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldEnd {
    /// `--for` ran out.
    Expired,
    /// A stop signal arrived.
    Stopped(StopSignal),
    /// Our lock file was removed or replaced by someone else.
    Overridden(PathBuf, Ownership),
}

/// What the safe end of a section found: `Err` if the line could not be
/// driven safe (logged already; the caller should exit non-zero).
pub type SafeResult = Result<(), PinError>;

/// Test-only fault injection, in debug builds only: with
/// `UPDLOCK_TEST_PAUSE_AT=<step>` in its environment, updlock says
/// `updlock: test: paused at <step>` on stderr when it reaches that step
/// boundary and then waits there forever, for a test to SIGKILL it at a
/// known point (firmware/tests/faults.rs). The steps, in order: `take`
/// (line requested safe, no lock yet), `publish` (a tagged, flocked
/// temporary, not yet linked to the lock name), `taken`, `active`,
/// `running` (`held` said, or the program started), `safe`, `unlinked`
/// (the name removed, its flock not yet dropped), `released`. A release
/// build has none of this: the variable is then an unknown setting.
#[cfg(debug_assertions)]
pub fn test_pause(step: &str) {
    if std::env::var_os("UPDLOCK_TEST_PAUSE_AT").is_some_and(|v| v == step) {
        eprintln!("updlock: test: paused at {step}");
        loop {
            std::thread::park();
        }
    }
}

/// Nothing in a release build (see the debug version).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn test_pause(_step: &str) {}

fn go_safe(act: &mut dyn Actuate) -> SafeResult {
    act.make_safe().map_err(|e| {
        log::error!("{e}");
        e
    })
}

/// Activates `act` while `set` is held, calls `on_active` (to say `held`),
/// and holds until `until`, a stop signal, or an override; the line is safe
/// again when this returns, whatever it returns.
pub fn hold(
    set: &LockSet,
    act: &mut dyn Actuate,
    events: &mut Events,
    until: Option<Instant>,
    on_active: impl FnOnce(),
) -> Result<(HoldEnd, SafeResult), SectionError> {
    // The file may have been taken from us between the take and the watch:
    // then the line is never driven.
    if let Some((path, how)) = set.lost()? {
        return Ok((HoldEnd::Overridden(path, how), Ok(())));
    }
    test_pause("taken");
    act.activate()?;
    test_pause("active");
    on_active();
    test_pause("running");
    let end = loop {
        match events.next(until) {
            Ok(Event::Timeout) => break Ok(HoldEnd::Expired),
            Ok(Event::Signal(s)) => break Ok(HoldEnd::Stopped(s)),
            Ok(Event::LockChanged) => match set.lost() {
                Ok(Some((path, how))) => break Ok(HoldEnd::Overridden(path, how)),
                Ok(None) => {}
                Err(e) => break Err(e),
            },
            Ok(_) => {}
            Err(errno) => break Err(wait_error(set, errno)),
        }
    };
    // Safe first, on every way out of the loop.
    let safe = go_safe(act);
    test_pause("safe");
    Ok((end?, safe))
}

fn wait_error(set: &LockSet, errno: Errno) -> LockError {
    LockError::Os {
        path: set.files().first().map(|f| f.path()).unwrap_or_default(),
        op: "wait",
        errno,
    }
}

/// How a `run` ended.
#[derive(Debug)]
pub struct RunEnd {
    /// The status updlock exits with: the program's own, or 128+N if it died
    /// of signal N; 126/127 if it could not be started.
    pub code: i32,
    /// The first stop signal updlock received, if any (it was forwarded).
    pub stopped_by: Option<StopSignal>,
    /// Set if our lock was overridden while the program ran.
    pub overridden: Option<PathBuf>,
    /// True if the program had to be killed after the grace period.
    pub killed: bool,
    /// The program could not be started.
    pub spawn_error: Option<SpawnError>,
    /// Whether the line went safe at the end.
    pub safe: SafeResult,
}

impl RunEnd {
    /// The end of a program that could not be started: 127 or 126.
    fn cannot_run(mut self, program: &OsStr, error: io::Error) -> RunEnd {
        let e = SpawnError {
            program: program.to_os_string(),
            error,
        };
        self.code = e.code();
        self.spawn_error = Some(e);
        self
    }
}

/// Why the program could not be run.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot run: {}", program.to_string_lossy(), error)]
pub struct SpawnError {
    /// The program as given.
    pub program: OsString,
    /// What exec said.
    pub error: io::Error,
}

impl SpawnError {
    /// 127 when the program does not exist, 126 otherwise, as shells do.
    pub fn code(&self) -> i32 {
        if self.error.kind() == io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

/// Finds `program` as `execvp` would: a path if it has a `/`, else the
/// first executable regular file of that name in `$PATH`. The errors are
/// those exec would give: not found, or permission denied.
fn find_program(program: &OsStr) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| -> io::Result<()> {
        let meta = std::fs::metadata(p)?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).map_err(io::Error::from)
    };
    if program.as_bytes().contains(&b'/') {
        return executable(std::path::Path::new(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut denied = None;
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        match executable(&dir.join(program)) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = Some(e),
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound)))
}

fn command(program: &OsStr, args: &[OsString]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (sigprocmask, prctl, getppid, kill).
    unsafe {
        cmd.pre_exec(move || {
            // The mask we block our stop signals with survives exec: the
            // program must get SIGTERM like any process would.
            nix::sys::signal::pthread_sigmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(io::Error::from)?;
            // If updlock is killed (even SIGKILL), the program must not go on
            // driving the machine without the lock.
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)?;
            if nix::unistd::getppid() != parent {
                let _ = nix::sys::signal::raise(Signal::SIGTERM);
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `program` while `set` is held and `act` is active. Stop signals
/// make the line safe and are then forwarded; an override makes the line
/// safe and sends SIGTERM. If the program has not ended `grace` after that,
/// it is killed. The program gets SIGTERM if updlock itself dies.
pub fn run(
    set: &LockSet,
    act: &mut dyn Actuate,
    events: &mut Events,
    program: &OsStr,
    args: &[OsString],
    grace: Duration,
) -> Result<RunEnd, SectionError> {
    let mut end = RunEnd {
        code: 0,
        stopped_by: None,
        overridden: None,
        killed: false,
        spawn_error: None,
        safe: Ok(()),
    };
    if let Some((path, how)) = set.lost()? {
        log_override(&path, how, "the program is not started");
        end.overridden = Some(path);
        end.code = crate::exit::Exit::Interrupted.code().into();
        return Ok(end);
    }
    // A program that cannot be started must not pulse the line: find it
    // first, as exec would, and only then drive the line active.
    if let Err(error) = find_program(program) {
        return Ok(end.cannot_run(program, error));
    }
    test_pause("taken");
    act.activate()?;
    test_pause("active");
    let mut child = match command(program, args).spawn() {
        Ok(c) => c,
        Err(error) => {
            end.safe = go_safe(act);
            return Ok(end.cannot_run(program, error));
        }
    };
    log::debug!("started {} (pid {})", program.to_string_lossy(), child.id());
    test_pause("running");
    let mut kill_at: Option<Instant> = None;
    let outcome = supervise(set, act, events, &mut child, &mut end, &mut kill_at, grace);
    // Safe first, whatever ended the loop, unless a signal or an override
    // already made it so.
    if act.is_active() {
        end.safe = go_safe(act);
    }
    test_pause("safe");
    if let Err(e) = outcome {
        // We can no longer wait for events: do not leave the program running
        // without its lock.
        signal(&child, Signal::SIGKILL);
        let _ = child.wait();
        return Err(e.into());
    }
    Ok(end)
}

fn supervise(
    set: &LockSet,
    act: &mut dyn Actuate,
    events: &mut Events,
    child: &mut Child,
    end: &mut RunEnd,
    kill_at: &mut Option<Instant>,
    grace: Duration,
) -> Result<(), LockError> {
    loop {
        let status = child.try_wait().map_err(|e| LockError::Os {
            path: PathBuf::from("program"),
            op: "wait for the program",
            errno: Errno::from_i32(e.raw_os_error().unwrap_or(0)),
        })?;
        if let Some(status) = status {
            end.code = status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(70);
            return Ok(());
        }
        match events.next(*kill_at).map_err(|e| wait_error(set, e))? {
            Event::Signal(s) => {
                // The line first: forwarding and waiting can take seconds.
                end.safe = go_safe(act);
                log::info!("{}: forwarding it to the program", s.as_str());
                end.stopped_by.get_or_insert(s);
                signal(child, s.signal());
                kill_at.get_or_insert_with(|| Instant::now() + grace);
            }
            Event::LockChanged => {
                if let Some((path, how)) = set.lost()? {
                    if end.overridden.is_none() {
                        end.safe = go_safe(act);
                        log_override(&path, how, "stopping the program");
                        signal(child, Signal::SIGTERM);
                        kill_at.get_or_insert_with(|| Instant::now() + grace);
                        end.overridden = Some(path);
                    }
                }
            }
            Event::Timeout => {
                if kill_at.is_some() {
                    log::warn!(
                        "the program did not end within {} ms of being asked to: killing it",
                        grace.as_millis()
                    );
                    signal(child, Signal::SIGKILL);
                    end.killed = true;
                    *kill_at = None;
                }
            }
            Event::Child | Event::TemporaryClosed | Event::Input => {}
        }
    }
}

fn log_override(path: &std::path::Path, how: Ownership, then: &str) {
    log::warn!(
        "{}: the lock was {} (the supervisor's override?): {then}",
        path.display(),
        match how {
            Ownership::Removed => "removed",
            _ => "replaced",
        }
    );
}

fn signal(child: &Child, sig: Signal) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // ESRCH: it has just ended; its SIGCHLD is on its way.
    if let Err(e) = kill(Pid::from_raw(pid), sig) {
        if e != Errno::ESRCH {
            log::warn!("cannot send {sig} to pid {pid}: {}", e.desc());
        }
    }
}

#[cfg(test)]
mod tests;
