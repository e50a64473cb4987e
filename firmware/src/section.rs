//! The critical section: what happens between taking the lock and releasing it.
//!
//! `hold` keeps the lock until a stop signal, a deadline, or an override;
//! `run` keeps it while a program runs. Both react to an override (the
//! supervisor unlinked our file, SPEC §4) at once, before its SIGTERM
//! arrives, and both leave the release to the caller, who holds the
//! [`LockSet`] and so releases it on every path, including unwinding.

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

/// Holds `set` until `until`, a stop signal, or an override.
pub fn hold(
    set: &LockSet,
    events: &mut Events,
    until: Option<Instant>,
) -> Result<HoldEnd, LockError> {
    // The file may have been taken from us between the take and the watch.
    if let Some((path, how)) = set.lost()? {
        return Ok(HoldEnd::Overridden(path, how));
    }
    loop {
        match events.next(until).map_err(wait_error(set))? {
            Event::Timeout => return Ok(HoldEnd::Expired),
            Event::Signal(s) => return Ok(HoldEnd::Stopped(s)),
            Event::LockChanged => {
                if let Some((path, how)) = set.lost()? {
                    return Ok(HoldEnd::Overridden(path, how));
                }
            }
            Event::Child | Event::TemporaryClosed => {}
        }
    }
}

fn wait_error(set: &LockSet) -> impl FnOnce(Errno) -> LockError + '_ {
    move |errno| LockError::Os {
        path: set.files().first().map(|f| f.path()).unwrap_or_default(),
        op: "wait",
        errno,
    }
}

/// How a `run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// The status updlock exits with: the program's own, or 128+N if it died of signal N.
    pub code: i32,
    /// The first stop signal updlock received, if any (it was forwarded).
    pub stopped_by: Option<StopSignal>,
    /// Set if our lock was overridden while the program ran.
    pub overridden: Option<PathBuf>,
    /// True if the program had to be killed after the grace period.
    pub killed: bool,
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

/// Runs `program` while `set` is held. Stop signals are forwarded to it; if
/// it has not ended `grace` after the first one (or after an override), it
/// is killed. The program gets SIGTERM if updlock itself dies.
pub fn run(
    set: &LockSet,
    events: &mut Events,
    program: &OsStr,
    args: &[OsString],
    grace: Duration,
) -> Result<Result<RunEnd, SpawnError>, LockError> {
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
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(error) => {
            return Ok(Err(SpawnError {
                program: program.to_os_string(),
                error,
            }))
        }
    };
    log::debug!("started {} (pid {})", program.to_string_lossy(), child.id());
    let mut end = RunEnd {
        code: 0,
        stopped_by: None,
        overridden: None,
        killed: false,
    };
    let mut kill_at: Option<Instant> = None;
    if let Some((path, how)) = set.lost()? {
        overridden(&mut child, &mut end, &mut kill_at, grace, path, how);
    }
    loop {
        if let Some(status) = child.try_wait().map_err(|e| LockError::Os {
            path: PathBuf::from(program),
            op: "wait for the program",
            errno: Errno::from_i32(e.raw_os_error().unwrap_or(0)),
        })? {
            end.code = status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(70);
            return Ok(Ok(end));
        }
        match events.next(kill_at).map_err(wait_error(set))? {
            Event::Child | Event::TemporaryClosed => {}
            Event::Signal(s) => {
                log::info!("{}: forwarding it to the program", s.as_str());
                end.stopped_by.get_or_insert(s);
                signal(&child, s.signal());
                kill_at.get_or_insert_with(|| Instant::now() + grace);
            }
            Event::LockChanged => {
                if let Some((path, how)) = set.lost()? {
                    if end.overridden.is_none() {
                        overridden(&mut child, &mut end, &mut kill_at, grace, path, how);
                    }
                }
            }
            Event::Timeout => {
                if kill_at.is_some() {
                    log::warn!(
                        "the program did not end within {} ms of being asked to: killing it",
                        grace.as_millis()
                    );
                    signal(&child, Signal::SIGKILL);
                    end.killed = true;
                    kill_at = None;
                }
            }
        }
    }
}

fn overridden(
    child: &mut Child,
    end: &mut RunEnd,
    kill_at: &mut Option<Instant>,
    grace: Duration,
    path: PathBuf,
    how: Ownership,
) {
    log::warn!(
        "{}: the lock was {} (the supervisor's override?): stopping the program now",
        path.display(),
        match how {
            Ownership::Removed => "removed",
            _ => "replaced",
        }
    );
    signal(child, Signal::SIGTERM);
    kill_at.get_or_insert_with(|| Instant::now() + grace);
    end.overridden = Some(path);
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
