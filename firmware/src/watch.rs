//! `updlock watch`: the lock follows a "busy" input line driven by the
//! machine's own controller.
//!
//! The lock is taken as soon as the input becomes active and released once it
//! has been inactive for the debounce time, so a bouncing contact or a short
//! gap between two cycles does not let an update in. If the lock cannot be
//! taken (the supervisor is applying an update), that is logged and the lock
//! is taken the moment the supervisor's file goes away, if the input is still
//! active. When the supervisor overrides the lock (SPEC §4), updlock lets
//! it go for the rest of that busy spell: the lock is wanted again only after
//! the input has gone inactive and become active again — re-taking it at
//! once would fight the override, which the supervisor then reports as a
//! lock that keeps reappearing. Everything is event-driven: line edges,
//! directory changes, one deadline; nothing polls.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::events::{Event, Events, StopSignal};
use crate::gpio::{GpioError, Input};
use crate::lock::{Blocker, LockError, LockSet};

/// What the watcher should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Try to take the lock; report the outcome with [`Follow::took`].
    Take,
    /// Release the lock.
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Input inactive, no lock.
    Idle,
    /// Input active, lock wanted but held by someone else.
    Pending,
    /// Lock held; `release_at` is set while the input is inactive.
    Held { release_at: Option<Instant> },
    /// The lock was overridden during this busy spell: not wanted again
    /// until the input has been inactive.
    Yielded,
}

/// The decisions of `watch`, apart from any I/O, so they can be tested.
#[derive(Debug, Clone)]
pub struct Follow {
    debounce: Duration,
    state: State,
}

impl Follow {
    /// A watcher that releases after `debounce` of inactivity.
    pub fn new(debounce: Duration) -> Follow {
        Follow {
            debounce,
            state: State::Idle,
        }
    }

    /// The input reads `active` at `now`.
    pub fn input(&mut self, active: bool, now: Instant) -> Action {
        match (self.state, active) {
            (State::Idle, true) => {
                self.state = State::Pending;
                Action::Take
            }
            (State::Pending | State::Yielded, false) => {
                self.state = State::Idle;
                Action::None
            }
            (State::Held { .. }, true) => {
                self.state = State::Held { release_at: None };
                Action::None
            }
            (State::Held { release_at: None }, false) => {
                self.state = State::Held {
                    release_at: Some(now + self.debounce),
                };
                Action::None
            }
            _ => Action::None,
        }
    }

    /// When [`Follow::tick`] must be called next, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Held { release_at } => release_at,
            _ => None,
        }
    }

    /// Time passed: release if the input stayed inactive long enough.
    pub fn tick(&mut self, now: Instant) -> Action {
        match self.state {
            State::Held {
                release_at: Some(t),
            } if now >= t => {
                self.state = State::Idle;
                Action::Release
            }
            _ => Action::None,
        }
    }

    /// The outcome of an [`Action::Take`].
    pub fn took(&mut self, ok: bool) {
        if self.state == State::Pending && ok {
            self.state = State::Held { release_at: None };
        }
    }

    /// A lock name changed: a pending take is worth another try.
    pub fn lock_changed(&self) -> Action {
        match self.state {
            State::Pending => Action::Take,
            _ => Action::None,
        }
    }

    /// Our lock was taken from us (the supervisor's override): give it up
    /// until the input has been inactive.
    pub fn lost(&mut self) {
        self.state = match self.state {
            State::Held { release_at: None } => State::Yielded,
            _ => State::Idle,
        };
    }

    /// Whether the lock should be held now.
    pub fn holding(&self) -> bool {
        matches!(self.state, State::Held { .. })
    }
}

/// Why `watch` stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The lock layer failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The input line failed.
    #[error(transparent)]
    Gpio(#[from] GpioError),
}

/// Follows `input` with the lock on `paths` until a stop signal, which is
/// returned. `on_armed` is called once the input has been read the first
/// time (to tell systemd we are ready).
pub fn watch(
    paths: &[PathBuf],
    input: &mut Input,
    events: &mut Events,
    debounce: Duration,
    on_armed: impl FnOnce(),
) -> Result<StopSignal, WatchError> {
    let mut follow = Follow::new(debounce);
    let mut held: Option<LockSet> = None;
    let mut blocker: Option<Blocker> = None;
    events.watch(&LockSet::targets(paths)?)?;
    let active = input.drain_and_read()?;
    log::info!(
        "watching the input: {}",
        if active { "active" } else { "inactive" }
    );
    let action = follow.input(active, Instant::now());
    perform(
        action,
        paths,
        &mut follow,
        &mut held,
        &mut blocker,
        debounce,
    )?;
    on_armed();
    loop {
        let event = events
            .next_with(follow.deadline(), Some(input.fd()))
            .map_err(|errno| LockError::Os {
                path: paths.first().cloned().unwrap_or_default(),
                op: "wait",
                errno,
            })?;
        let action = match event {
            Event::Signal(s) => {
                if let Some(set) = held.take() {
                    set.release()?;
                    log::info!("{}: lock released", s.as_str());
                }
                return Ok(s);
            }
            Event::Input => {
                let active = input.drain_and_read()?;
                log::debug!("input {}", if active { "active" } else { "inactive" });
                follow.input(active, Instant::now())
            }
            Event::Timeout => follow.tick(Instant::now()),
            Event::LockChanged | Event::TemporaryClosed if held.is_some() => {
                match held.as_ref().map(LockSet::lost).transpose()?.flatten() {
                    Some((path, _)) => {
                        log::warn!(
                            "{}: the lock was taken from us (the supervisor's override?): letting it go until the input has been inactive",
                            path.display()
                        );
                        if let Some(set) = held.take() {
                            set.release()?;
                        }
                        follow.lost();
                        Action::None
                    }
                    None => Action::None,
                }
            }
            // Retry only when what blocked us has gone: most changes in the
            // directory are other takers' attempts, or our own.
            Event::LockChanged | Event::TemporaryClosed => match &blocker {
                Some(b) if b.still_there()? => Action::None,
                _ => follow.lock_changed(),
            },
            Event::Child => Action::None,
        };
        perform(
            action,
            paths,
            &mut follow,
            &mut held,
            &mut blocker,
            debounce,
        )?;
    }
}

fn perform(
    action: Action,
    paths: &[PathBuf],
    follow: &mut Follow,
    held: &mut Option<LockSet>,
    blocker: &mut Option<Blocker>,
    debounce: Duration,
) -> Result<(), WatchError> {
    match action {
        Action::None => {}
        Action::Take => match LockSet::take(LockSet::targets(paths)?) {
            Ok(set) => {
                log::info!("input active: lock taken");
                *held = Some(set);
                *blocker = None;
                follow.took(true);
            }
            Err(LockError::Held { path, holder }) => {
                // Said once per holder, not once per attempt.
                let next = Blocker::at(&path)?;
                if blocker.as_ref() != Some(&next) {
                    log::warn!(
                        "input active, but {}: {holder}; taking it as soon as it is free",
                        path.display()
                    );
                }
                *blocker = Some(next);
                follow.took(false);
            }
            Err(e) => return Err(e.into()),
        },
        Action::Release => {
            if let Some(set) = held.take() {
                set.release()?;
                log::info!(
                    "input inactive for {} ms: lock released",
                    debounce.as_millis()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(500);

    #[test]
    fn takes_at_once_and_releases_after_the_debounce() {
        let t0 = Instant::now();
        let mut f = Follow::new(D);
        assert_eq!(f.input(true, t0), Action::Take);
        f.took(true);
        assert!(f.holding());
        assert_eq!(f.deadline(), None);
        assert_eq!(f.input(false, t0), Action::None);
        assert_eq!(f.deadline(), Some(t0 + D));
        assert_eq!(f.tick(t0 + D / 2), Action::None);
        assert_eq!(f.tick(t0 + D), Action::Release);
        assert!(!f.holding());
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn bounces_inside_the_debounce_keep_the_lock() {
        let t0 = Instant::now();
        let mut f = Follow::new(D);
        f.input(true, t0);
        f.took(true);
        f.input(false, t0);
        // Active again before the deadline: the deadline is cancelled...
        f.input(true, t0 + D / 2);
        assert_eq!(f.deadline(), None);
        assert_eq!(f.tick(t0 + 2 * D), Action::None);
        // ...and a new inactive spell starts its own full debounce.
        f.input(false, t0 + 2 * D);
        assert_eq!(f.deadline(), Some(t0 + 3 * D));
        // Repeated inactive readings do not push the deadline.
        f.input(false, t0 + 2 * D + D / 2);
        assert_eq!(f.deadline(), Some(t0 + 3 * D));
    }

    #[test]
    fn a_held_lock_is_retried_when_it_changes_while_the_input_stays_active() {
        let t0 = Instant::now();
        let mut f = Follow::new(D);
        assert_eq!(f.input(true, t0), Action::Take);
        f.took(false);
        assert!(!f.holding());
        // Repeated active readings do not hammer the lock...
        assert_eq!(f.input(true, t0), Action::None);
        // ...a change to the lock files does.
        assert_eq!(f.lock_changed(), Action::Take);
        f.took(true);
        assert!(f.holding());
        assert_eq!(f.lock_changed(), Action::None);
    }

    #[test]
    fn an_input_that_goes_inactive_while_pending_wants_nothing() {
        let t0 = Instant::now();
        let mut f = Follow::new(D);
        f.input(true, t0);
        f.took(false);
        assert_eq!(f.input(false, t0), Action::None);
        assert_eq!(f.lock_changed(), Action::None);
        assert_eq!(f.input(true, t0), Action::Take);
    }

    #[test]
    fn after_an_override_the_lock_is_not_fought_for_until_the_next_busy_spell() {
        let t0 = Instant::now();
        let mut f = Follow::new(D);
        f.input(true, t0);
        f.took(true);
        f.lost();
        assert!(!f.holding());
        // Still busy: the supervisor's files come and go; we stay out.
        assert_eq!(f.lock_changed(), Action::None);
        assert_eq!(f.input(true, t0), Action::None);
        // A new busy spell wants the lock again.
        assert_eq!(f.input(false, t0), Action::None);
        assert_eq!(f.input(true, t0), Action::Take);
        // Overridden while already counting down: just let it go.
        let mut g = Follow::new(D);
        g.input(true, t0);
        g.took(true);
        g.input(false, t0);
        g.lost();
        assert_eq!(g.lock_changed(), Action::None);
        assert_eq!(g.deadline(), None);
    }
}
