//! The one place updlock sleeps: until a signal, a change to a lock name, the
//! end of the child, or a deadline.
//!
//! Signals are blocked and read from a `signalfd`, lock directories are
//! watched with inotify, and both are `poll`ed together, so a wait costs no
//! wakeups at all and a SIGTERM is seen the instant it arrives — never
//! between a check and a sleep. The signals are blocked before anything else
//! runs ([`Events::new`] is the first thing `main` does). A blocked mask is
//! inherited across exec, so whoever spawns a child must unblock them in it
//! ([`crate::section::run`] does).
//!
//! Two things ride on the waits, so that they stop when the loop stops: the
//! systemd watchdog is petted here, with its due time as one more deadline
//! of the `poll`, and a [`Companion`] can go along with a caller's loop
//! (the `--kick` of `watch`, whose requests must never hold the loop up).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::lock::{LockError, Target};
use crate::notify::Watchdog;

/// A signal that asks updlock to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: the supervisor or systemd stopping the service.
    Term,
    /// SIGINT: Ctrl-C.
    Int,
    /// SIGHUP: the terminal went away.
    Hup,
}

impl StopSignal {
    /// The signal's name, as users know it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
            StopSignal::Hup => "SIGHUP",
        }
    }

    /// The signal itself, to forward it.
    pub fn signal(self) -> Signal {
        match self {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Int => Signal::SIGINT,
            StopSignal::Hup => Signal::SIGHUP,
        }
    }
}

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A stop signal arrived.
    Signal(StopSignal),
    /// A child changed state (SIGCHLD).
    Child,
    /// A watched lock name changed: removed, renamed, created, or closed by a writer.
    LockChanged,
    /// A writer closed an updlock temporary in a watched directory. A holder
    /// that created its lock keeps the descriptor it opened under the
    /// temporary name, so this is how its death shows; it is also what every
    /// other taker's attempt looks like, so it is only a hint.
    TemporaryClosed,
    /// The input line passed to [`Events::next_with`] may have changed.
    Input,
    /// The deadline passed.
    Timeout,
}

/// Which directory changes matter: the name going or coming (release,
/// override), a writer closing it (a holder that died), the directory itself
/// going away.
const WATCH_MASK: AddWatchFlags = AddWatchFlags::IN_DELETE
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR)
    .union(AddWatchFlags::IN_DONT_FOLLOW);

/// Events on the directory itself, which concern every name in it.
const DIR_GONE: AddWatchFlags = AddWatchFlags::IN_DELETE_SELF
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_IGNORED)
    .union(AddWatchFlags::IN_UNMOUNT)
    .union(AddWatchFlags::IN_Q_OVERFLOW);

enum Change {
    Lock,
    Temporary,
    Other,
}

/// Work that goes along with a caller's loop, in the same thread, without
/// ever holding it up or ending one of its waits: told each time the loop is
/// about to wait, and woken when its descriptor is ready or its deadline
/// passes. It must not block.
pub trait Companion {
    /// The caller's loop is about to wait: whatever it did is done.
    fn before_wait(&mut self);
    /// A descriptor to poll, and whether for writing (else for reading).
    fn fd(&self) -> Option<(BorrowedFd<'_>, bool)>;
    /// When to wake it whatever its descriptor says.
    fn deadline(&self) -> Option<Instant>;
    /// Its descriptor is ready, or its deadline has passed.
    fn wake(&mut self);
    /// The loop is over: finish what is under way (this may block, as
    /// briefly as the work allows).
    fn finish(&mut self);
}

/// Signals, inotify and deadlines in one `poll`.
pub struct Events {
    signals: SignalFd,
    inotify: Option<Inotify>,
    names: HashMap<WatchDescriptor, Vec<OsString>>,
    watchdog: Option<Watchdog>,
    companion: Option<Box<dyn Companion>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

fn stop_and_child_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

impl Events {
    /// Blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD in this thread (and the
    /// threads it starts later) and reads them from a signalfd from now on.
    pub fn new() -> Result<Events, Errno> {
        let set = stop_and_child_signals();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Events {
            signals,
            inotify: None,
            names: HashMap::new(),
            watchdog: None,
            companion: None,
        })
    }

    /// Pets `watchdog` whenever it is due while a caller waits here, and
    /// only then: a loop that stops calling [`Events::next`] stops petting,
    /// and systemd restarts the service.
    pub fn set_watchdog(&mut self, watchdog: Option<Watchdog>) {
        self.watchdog = watchdog;
    }

    /// Carries `companion` along with every wait from now on; returns the
    /// one it replaces (`None` removes it).
    pub fn set_companion(
        &mut self,
        companion: Option<Box<dyn Companion>>,
    ) -> Option<Box<dyn Companion>> {
        std::mem::replace(&mut self.companion, companion)
    }

    /// Watches the directories of `targets` for changes to their lock names.
    /// Watching the same directory again is harmless.
    pub fn watch<'a>(
        &mut self,
        targets: impl IntoIterator<Item = &'a Target>,
    ) -> Result<(), LockError> {
        let watch_err = |path: PathBuf| {
            move |errno| LockError::Os {
                path,
                op: "watch (inotify)",
                errno,
            }
        };
        if self.inotify.is_none() {
            let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                .map_err(watch_err(PathBuf::from("inotify")))?;
            self.inotify = Some(ino);
        }
        let Some(ino) = &self.inotify else {
            return Ok(());
        };
        for t in targets {
            let wd = ino
                .add_watch(t.dir_path(), WATCH_MASK)
                .map_err(watch_err(t.dir_path().to_path_buf()))?;
            let names = self.names.entry(wd).or_default();
            if !names.iter().any(|n| n == t.name()) {
                names.push(t.name().to_os_string());
            }
        }
        Ok(())
    }

    /// Waits for the next event, or until `deadline` (`None`: no deadline).
    /// Changes to other names in a watched directory are read and ignored.
    pub fn next(&mut self, deadline: Option<Instant>) -> Result<Event, Errno> {
        self.next_with(deadline, None)
    }

    /// Like [`Events::next`], and also returns [`Event::Input`] when `input`
    /// (an input line's descriptor) becomes readable. It is not read here.
    pub fn next_with(
        &mut self,
        deadline: Option<Instant>,
        input: Option<BorrowedFd<'_>>,
    ) -> Result<Event, Errno> {
        if let Some(c) = self.companion.as_mut() {
            c.before_wait();
        }
        loop {
            if let Some(w) = self.watchdog.as_mut() {
                w.pet_if_due(Instant::now());
            }
            // The watchdog's and the companion's due times are more reasons
            // to wake, never events: the caller sees only its own deadline.
            let wake = [
                deadline,
                self.watchdog.as_ref().map(Watchdog::due),
                self.companion.as_ref().and_then(|c| c.deadline()),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout_ms: i32 = match wake {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // Still report anything already pending first.
                        0
                    } else {
                        // Round up, so we never wake a millisecond early and spin.
                        i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
                    }
                }
            };
            let (sig_ready, ino_ready, input_ready, companion_ready) = {
                let sig_fd = self.signals.as_fd();
                let ino_fd = self.inotify.as_ref().map(|i| i.as_fd());
                let companion_fd = self.companion.as_ref().and_then(|c| c.fd());
                let mut fds = vec![PollFd::new(&sig_fd, PollFlags::POLLIN)];
                let ino_at = ino_fd.as_ref().map(|fd| {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    fds.len() - 1
                });
                let input_at = input.as_ref().map(|fd| {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    fds.len() - 1
                });
                let companion_at = companion_fd.as_ref().map(|(fd, write)| {
                    let flags = if *write {
                        PollFlags::POLLOUT
                    } else {
                        PollFlags::POLLIN
                    };
                    fds.push(PollFd::new(fd, flags));
                    fds.len() - 1
                });
                match poll(&mut fds, timeout_ms) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e),
                };
                let is_ready = |at: Option<usize>| at.and_then(|i| fds[i].any()).unwrap_or(false);
                let sig = fds[0].any().unwrap_or(false);
                (
                    sig,
                    is_ready(ino_at),
                    is_ready(input_at),
                    is_ready(companion_at),
                )
            };
            if let Some(c) = self.companion.as_mut() {
                if companion_ready || c.deadline().is_some_and(|d| Instant::now() >= d) {
                    c.wake();
                }
            }
            if sig_ready {
                if let Some(ev) = self.read_signal()? {
                    return Ok(ev);
                }
            }
            // Lock changes before the input: an override must not wait
            // behind a chattering contact.
            if ino_ready {
                match self.read_lock_changes()? {
                    Change::Lock => return Ok(Event::LockChanged),
                    Change::Temporary => return Ok(Event::TemporaryClosed),
                    Change::Other => {}
                }
            }
            if input_ready {
                return Ok(Event::Input);
            }
            // Nothing for the caller (a pet, the companion, an event it does
            // not care about): its own deadline is all that can end the wait.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Event::Timeout);
            }
        }
    }

    fn read_signal(&mut self) -> Result<Option<Event>, Errno> {
        let Some(info) = self.signals.read_signal()? else {
            return Ok(None);
        };
        let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
        Ok(match Signal::try_from(signo) {
            Ok(Signal::SIGTERM) => Some(Event::Signal(StopSignal::Term)),
            Ok(Signal::SIGINT) => Some(Event::Signal(StopSignal::Int)),
            Ok(Signal::SIGHUP) => Some(Event::Signal(StopSignal::Hup)),
            Ok(Signal::SIGCHLD) => Some(Event::Child),
            _ => None,
        })
    }

    /// Reads every queued inotify event and says the most important.
    fn read_lock_changes(&mut self) -> Result<Change, Errno> {
        let Some(ino) = &self.inotify else {
            return Ok(Change::Other);
        };
        let mut relevant = false;
        let mut temporary = false;
        loop {
            let events = match ino.read_events() {
                Ok(evs) => evs,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e),
            };
            if events.is_empty() {
                break;
            }
            for ev in events {
                if ev.mask.intersects(DIR_GONE) {
                    relevant = true;
                    continue;
                }
                let Some(name) = ev.name.as_ref() else {
                    continue;
                };
                let watched = self
                    .names
                    .get(&ev.wd)
                    .is_some_and(|names| names.iter().any(|m| m == name));
                relevant |= watched;
                temporary |= ev.mask.contains(AddWatchFlags::IN_CLOSE_WRITE)
                    && crate::lock::is_temporary(name);
            }
        }
        Ok(if relevant {
            Change::Lock
        } else if temporary {
            Change::Temporary
        } else {
            Change::Other
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::net::UnixDatagram;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn the_watchdog_is_petted_while_waiting_and_only_the_deadline_ends_the_wait() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("notify");
        let sock = UnixDatagram::bind(&p).unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut events = Events::new().unwrap();
        // 40 ms: a pet every 20 ms.
        let w = Watchdog::from_values(Some(p.into()), Some("40000"), None, 1).unwrap();
        events.set_watchdog(Some(w));
        let until = Instant::now() + Duration::from_millis(200);
        assert_eq!(events.next(Some(until)).unwrap(), Event::Timeout);
        assert!(Instant::now() >= until);
        let mut buf = [0u8; 32];
        let mut pets = 0;
        while let Ok(n) = sock.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            pets += 1;
        }
        // One at once, then one per 20 ms: a few, and not a spin.
        assert!((3..=12).contains(&pets), "{pets} pets in 200 ms");
    }

    /// Counts its calls, and reads its socket when woken.
    struct Counting {
        sock: UnixDatagram,
        waits: Rc<Cell<u32>>,
        wakes: Rc<Cell<u32>>,
    }

    impl Companion for Counting {
        fn before_wait(&mut self) {
            self.waits.set(self.waits.get() + 1);
        }
        fn fd(&self) -> Option<(BorrowedFd<'_>, bool)> {
            Some((self.sock.as_fd(), false))
        }
        fn deadline(&self) -> Option<Instant> {
            None
        }
        fn wake(&mut self) {
            let mut buf = [0u8; 8];
            while self.sock.recv(&mut buf).is_ok() {
                self.wakes.set(self.wakes.get() + 1);
            }
        }
        fn finish(&mut self) {}
    }

    #[test]
    fn a_companion_is_told_of_each_wait_and_woken_without_ending_it() {
        let mut events = Events::new().unwrap();
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let waits = Rc::new(Cell::new(0));
        let wakes = Rc::new(Cell::new(0));
        events.set_companion(Some(Box::new(Counting {
            sock: ours,
            waits: waits.clone(),
            wakes: wakes.clone(),
        })));
        theirs.send(b"x").unwrap();
        theirs.send(b"y").unwrap();
        let until = Instant::now() + Duration::from_millis(50);
        // Woken, and still the wait ends only at the caller's deadline.
        assert_eq!(events.next(Some(until)).unwrap(), Event::Timeout);
        assert!(Instant::now() >= until);
        assert_eq!((waits.get(), wakes.get()), (1, 2));
        assert_eq!(events.next(Some(Instant::now())).unwrap(), Event::Timeout);
        assert_eq!(waits.get(), 2);
        assert!(events.set_companion(None).is_some());
        events.next(Some(Instant::now())).unwrap();
        assert_eq!(waits.get(), 2);
    }
}
