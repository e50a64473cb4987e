//! The order of events on every path of `hold`, recorded by a fake pin that
//! looks at the lock file at the instant of each write: the line is never
//! active unless the lock is held and flocked, and it is safe again before
//! the lock is released.
//!
//! `run` needs SIGCHLD, which in a multi-threaded test binary goes to another
//! thread; its paths are checked against the real binary in
//! `firmware/tests/gpio_order.rs`. Signals here are sent to this thread only
//! (tgkill), where `Events` blocks them and reads them from its signalfd.

use super::*;
use crate::lock::{LockSet, Target};
use crate::pin::{Actuator, Level, Polarity};
use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};
use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;

#[derive(Debug)]
struct Fault;
impl embedded_hal::digital::Error for Fault {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// One write to the line, and whether the lock was held at that instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Write {
    level: Level,
    locked: bool,
}

#[derive(Clone)]
struct Probe {
    lock: std::path::PathBuf,
    writes: Rc<RefCell<Vec<Write>>>,
    fail_active: bool,
    panic_active: bool,
}

fn lock_held(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    matches!(
        nix::fcntl::flock(f.as_raw_fd(), nix::fcntl::FlockArg::LockExclusiveNonblock),
        Err(Errno::EWOULDBLOCK)
    )
}

impl ErrorType for Probe {
    type Error = Fault;
}

impl Probe {
    fn write(&mut self, level: Level) -> Result<(), Fault> {
        let locked = lock_held(&self.lock);
        self.writes.borrow_mut().push(Write { level, locked });
        Ok(())
    }
}

impl OutputPin for Probe {
    fn set_low(&mut self) -> Result<(), Fault> {
        self.write(Level::Low)
    }
    fn set_high(&mut self) -> Result<(), Fault> {
        if self.panic_active {
            panic!("the driver panicked");
        }
        if self.fail_active {
            return Err(Fault);
        }
        self.write(Level::High)
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    lock: std::path::PathBuf,
    probe: Probe,
    events: Events,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("updates.lock");
    let probe = Probe {
        lock: lock.clone(),
        writes: Rc::default(),
        fail_active: false,
        panic_active: false,
    };
    Rig {
        lock,
        probe,
        events: Events::new().unwrap(),
        _dir: dir,
    }
}

impl Rig {
    fn take(&mut self) -> LockSet {
        let set = LockSet::take(vec![Target::open(&self.lock).unwrap()]).unwrap();
        self.events
            .watch(set.files().iter().map(|f| f.target()))
            .unwrap();
        set
    }

    fn writes(&self) -> Vec<Write> {
        self.probe.writes.borrow().clone()
    }
}

/// The invariant, on a record: never active without the lock; ends safe,
/// with the lock still held at that safe write.
fn check(writes: &[Write]) {
    for w in writes {
        if w.level == Level::High {
            assert!(w.locked, "active without the lock: {writes:?}");
        }
    }
    let last = writes.last().expect("no writes");
    assert_eq!(last.level, Level::Low, "does not end safe: {writes:?}");
}

fn send_to_this_thread(sig: Signal) {
    let tid = nix::unistd::gettid();
    // SAFETY: tgkill with our own pid and tid has no memory effects.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_tgkill,
            nix::unistd::getpid().as_raw(),
            tid.as_raw(),
            sig as i32,
        )
    };
    assert_eq!(r, 0);
}

#[test]
fn hold_until_expiry() {
    let mut r = rig();
    let set = r.take();
    let mut act = Actuator::new(r.probe.clone(), Polarity::ActiveHigh, "probe");
    let mut said = false;
    let (end, safe) = hold(
        &set,
        &mut act,
        &mut r.events,
        Some(Instant::now() + Duration::from_millis(20)),
        || said = true,
    )
    .unwrap();
    assert!(said);
    assert_eq!(end, HoldEnd::Expired);
    safe.unwrap();
    drop(act);
    set.release().unwrap();
    let w = r.writes();
    check(&w);
    assert_eq!(w.first().map(|w| w.level), Some(Level::High));
    // The safe write happened while the lock was still held.
    assert!(w.last().unwrap().locked);
    assert!(!r.lock.exists());
}

#[test]
fn hold_until_sigterm() {
    let mut r = rig();
    let set = r.take();
    let mut act = Actuator::new(r.probe.clone(), Polarity::ActiveHigh, "probe");
    let (end, safe) = hold(&set, &mut act, &mut r.events, None, || {
        send_to_this_thread(Signal::SIGTERM)
    })
    .unwrap();
    assert_eq!(end, HoldEnd::Stopped(StopSignal::Term));
    safe.unwrap();
    drop(act);
    set.release().unwrap();
    check(&r.writes());
    assert!(r.writes().last().unwrap().locked);
}

#[test]
fn hold_until_override() {
    let mut r = rig();
    let set = r.take();
    let mut act = Actuator::new(r.probe.clone(), Polarity::ActiveHigh, "probe");
    let lock = r.lock.clone();
    let (end, safe) = hold(&set, &mut act, &mut r.events, None, || {
        // The supervisor's force: our file goes, its own takes the name.
        std::fs::remove_file(&lock).unwrap();
        std::fs::write(&lock, b"").unwrap();
    })
    .unwrap();
    assert!(
        matches!(end, HoldEnd::Overridden(_, Ownership::Replaced)),
        "{end:?}"
    );
    safe.unwrap();
    drop(act);
    set.release().unwrap();
    let w = r.writes();
    assert_eq!(w.last().unwrap().level, Level::Low);
    // Active only while ours; the supervisor's file is left in place.
    assert!(w
        .iter()
        .filter(|w| w.level == Level::High)
        .all(|w| w.locked));
    assert!(r.lock.exists());
}

#[test]
fn an_override_before_the_section_never_activates() {
    let mut r = rig();
    let set = r.take();
    std::fs::remove_file(&r.lock).unwrap();
    let mut act = Actuator::new(r.probe.clone(), Polarity::ActiveHigh, "probe");
    let mut said = false;
    let (end, _) = hold(&set, &mut act, &mut r.events, None, || said = true).unwrap();
    assert!(matches!(end, HoldEnd::Overridden(_, Ownership::Removed)));
    assert!(!said);
    assert!(r.writes().iter().all(|w| w.level == Level::Low));
}

#[test]
fn an_error_while_activating_leaves_the_line_safe_under_the_lock() {
    let mut r = rig();
    r.probe.fail_active = true;
    let set = r.take();
    let mut act = Actuator::new(r.probe.clone(), Polarity::ActiveHigh, "probe");
    let err = hold(&set, &mut act, &mut r.events, None, || {
        panic!("not reached")
    })
    .unwrap_err();
    assert!(matches!(err, SectionError::Pin(_)), "{err}");
    drop(act);
    set.release().unwrap();
    let w = r.writes();
    check(&w);
    assert!(w.iter().all(|w| w.locked));
}

#[test]
fn a_panic_makes_the_line_safe_before_the_lock_goes() {
    let mut r = rig();
    r.probe.panic_active = true;
    let lock = r.lock.clone();
    let probe = r.probe.clone();
    let mut events = r.events;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        // The order the command uses: the lock first, then the actuator, so
        // unwinding drops (and makes safe) the actuator before the lock.
        let set = LockSet::take(vec![Target::open(&lock).unwrap()]).unwrap();
        let mut act = Actuator::new(probe, Polarity::ActiveHigh, "probe");
        let _ = hold(&set, &mut act, &mut events, None, || {});
    }));
    assert!(result.is_err());
    let w = r.probe.writes.borrow().clone();
    assert_eq!(
        w.last().map(|w| (w.level, w.locked)),
        Some((Level::Low, true))
    );
    assert!(!r.lock.exists(), "the lock was released by unwinding");
}

#[test]
fn active_low_is_driven_low_only_under_the_lock() {
    let mut r = rig();
    let set = r.take();
    let mut act = Actuator::new(r.probe.clone(), Polarity::ActiveLow, "probe");
    let (end, safe) = hold(
        &set,
        &mut act,
        &mut r.events,
        Some(Instant::now() + Duration::from_millis(10)),
        || {},
    )
    .unwrap();
    assert_eq!(end, HoldEnd::Expired);
    safe.unwrap();
    drop(act);
    set.release().unwrap();
    let w = r.writes();
    assert!(
        w.iter()
            .filter(|w| w.level == Level::Low && w.locked)
            .count()
            >= 1
    );
    assert_eq!(w.last().unwrap().level, Level::High, "safe is high: {w:?}");
    assert!(w.last().unwrap().locked);
}
