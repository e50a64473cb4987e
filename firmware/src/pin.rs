//! The actuator line: active only while the update lock is held, and back in
//! its safe state on every way out.
//!
//! [`Actuator`] is generic over `embedded_hal::digital::OutputPin`, so the
//! same safety logic drives a real `/dev/gpiochipN` line (through
//! `linux-embedded-hal`'s `CdevPin`, see [`crate::gpio`]) and the recording
//! fake pin of the tests. `OutputPin::set_high` means the *physical* level;
//! the actuator turns "active"/"safe" into levels with its [`Polarity`].
//!
//! Caveats, plainly:
//! - Dropping an [`Actuator`] drives the line safe, on return, error and panic
//!   (the release build unwinds). Drop does **not** run on SIGKILL.
//! - After a SIGKILL the kernel releases the line, and a Raspberry Pi kernel
//!   keeps its last output value (SPEC §7): an asserted actuator stays on.
//!   Defences: a hardware pull to the safe level, `ExecStopPost=updlock safe`
//!   in the systemd unit, the kernel parameter
//!   `pinctrl_bcm2835.persist_gpio_outputs=n` (or `dtparam=strict_gpiod`), and
//!   updlock itself, which requests the line in its safe state before it
//!   does anything else at every start.

use embedded_hal::digital::OutputPin;

/// A physical line level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// 0 V.
    Low,
    /// The supply voltage.
    High,
}

impl Level {
    /// The other level.
    pub fn opposite(self) -> Level {
        match self {
            Level::Low => Level::High,
            Level::High => Level::Low,
        }
    }

    /// `low` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::High => "high",
        }
    }
}

/// Which level turns the actuator on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// High is active (the default).
    ActiveHigh,
    /// Low is active (`--active-low`).
    ActiveLow,
}

impl Polarity {
    /// The level that turns the actuator on.
    pub fn active(self) -> Level {
        match self {
            Polarity::ActiveHigh => Level::High,
            Polarity::ActiveLow => Level::Low,
        }
    }

    /// The safe level: always the inactive one.
    pub fn safe(self) -> Level {
        self.active().opposite()
    }
}

/// A line that could not be driven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Driving the line active failed (it was then driven safe, if possible).
    #[error("{line}: cannot drive the line {level} (active): {reason}")]
    Activate {
        /// The line, as the user named it.
        line: String,
        /// The level we tried.
        level: &'static str,
        /// What the driver said.
        reason: String,
    },
    /// Driving the line to its safe state failed.
    #[error("{line}: cannot drive the line {level} (safe): {reason}")]
    MakeSafe {
        /// The line, as the user named it.
        line: String,
        /// The level we tried.
        level: &'static str,
        /// What the driver said.
        reason: String,
    },
}

/// What the critical section needs from an actuator: on, and safe.
pub trait Actuate {
    /// Drives the actuator on. Only ever called while the lock is held.
    fn activate(&mut self) -> Result<(), PinError>;
    /// Drives the line to its safe state; harmless when it already is.
    fn make_safe(&mut self) -> Result<(), PinError>;
    /// Whether the actuator was last driven on.
    fn is_active(&self) -> bool;
}

/// No actuator: the lock alone (`run`/`hold` without `--gpio`).
#[derive(Debug, Default)]
pub struct NoActuator;

impl Actuate for NoActuator {
    fn activate(&mut self) -> Result<(), PinError> {
        Ok(())
    }
    fn make_safe(&mut self) -> Result<(), PinError> {
        Ok(())
    }
    fn is_active(&self) -> bool {
        false
    }
}

/// An output line driving an actuator.
#[derive(Debug)]
pub struct Actuator<P: OutputPin> {
    pin: P,
    polarity: Polarity,
    line: String,
    active: bool,
    /// The last write was a successful safe one (or the backend's request at
    /// the safe level): drop need not write again.
    known_safe: bool,
}

impl<P: OutputPin> Actuator<P> {
    /// Wraps `pin`, which must already be at its safe level: backends request
    /// lines with the safe level as their initial value, so the line never
    /// glitches on.
    pub fn new(pin: P, polarity: Polarity, line: impl Into<String>) -> Self {
        Actuator {
            pin,
            polarity,
            line: line.into(),
            active: false,
            known_safe: true,
        }
    }

    /// The line's name as the user gave it.
    pub fn line(&self) -> &str {
        &self.line
    }

    fn drive(&mut self, level: Level) -> Result<(), String> {
        let r = match level {
            Level::High => self.pin.set_high(),
            Level::Low => self.pin.set_low(),
        };
        r.map_err(|e| format!("{e:?}"))
    }
}

impl<P: OutputPin> Actuate for Actuator<P> {
    fn activate(&mut self) -> Result<(), PinError> {
        let level = self.polarity.active();
        // Count it active before trying: a driver may have changed the line
        // and still report an error, and then only a safe write is certain.
        self.active = true;
        self.known_safe = false;
        if let Err(reason) = self.drive(level) {
            let _ = self.make_safe();
            return Err(PinError::Activate {
                line: self.line.clone(),
                level: level.as_str(),
                reason,
            });
        }
        log::info!("{}: active ({})", self.line, level.as_str());
        Ok(())
    }

    fn make_safe(&mut self) -> Result<(), PinError> {
        let level = self.polarity.safe();
        match self.drive(level) {
            Ok(()) => {
                if self.active {
                    log::info!("{}: safe ({})", self.line, level.as_str());
                }
                self.active = false;
                self.known_safe = true;
                Ok(())
            }
            Err(reason) => Err(PinError::MakeSafe {
                line: self.line.clone(),
                level: level.as_str(),
                reason,
            }),
        }
    }

    fn is_active(&self) -> bool {
        self.active
    }
}

impl<P: OutputPin> Drop for Actuator<P> {
    fn drop(&mut self) {
        // Every way out passes here (return, error, unwinding): the line goes
        // safe before the lock, which is dropped after us, is released.
        if !self.known_safe {
            if let Err(e) = self.make_safe() {
                log::error!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::digital::{ErrorKind, ErrorType};
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Debug)]
    struct Fault;
    impl embedded_hal::digital::Error for Fault {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    /// Records every level written; can be told to fail.
    #[derive(Clone, Default)]
    struct Recorder {
        levels: Rc<RefCell<Vec<Level>>>,
        fail_high: bool,
    }
    impl ErrorType for Recorder {
        type Error = Fault;
    }
    impl OutputPin for Recorder {
        fn set_low(&mut self) -> Result<(), Fault> {
            self.levels.borrow_mut().push(Level::Low);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Fault> {
            if self.fail_high {
                return Err(Fault);
            }
            self.levels.borrow_mut().push(Level::High);
            Ok(())
        }
    }

    #[test]
    fn polarity_decides_levels() {
        assert_eq!(Polarity::ActiveHigh.active(), Level::High);
        assert_eq!(Polarity::ActiveHigh.safe(), Level::Low);
        assert_eq!(Polarity::ActiveLow.active(), Level::Low);
        assert_eq!(Polarity::ActiveLow.safe(), Level::High);
    }

    #[test]
    fn active_low_drives_low_then_high() {
        let r = Recorder::default();
        let mut a = Actuator::new(r.clone(), Polarity::ActiveLow, "GPIO17");
        a.activate().unwrap();
        assert!(a.is_active());
        a.make_safe().unwrap();
        assert!(!a.is_active());
        drop(a);
        // Already safe: the drop writes nothing more.
        assert_eq!(*r.levels.borrow(), [Level::Low, Level::High]);
    }

    #[test]
    fn drop_makes_safe_even_on_panic() {
        let r = Recorder::default();
        let r2 = r.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let mut a = Actuator::new(r2, Polarity::ActiveHigh, "GPIO17");
            a.activate().unwrap();
            panic!("inside the critical section");
        }));
        assert!(result.is_err());
        assert_eq!(*r.levels.borrow(), [Level::High, Level::Low]);
    }

    #[test]
    fn a_failed_activation_is_followed_by_a_safe_write() {
        let r = Recorder {
            fail_high: true,
            ..Recorder::default()
        };
        let mut a = Actuator::new(r.clone(), Polarity::ActiveHigh, "GPIO17");
        let e = a.activate().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("GPIO17: cannot drive the line high"),
            "{e}"
        );
        assert!(!a.is_active());
        assert_eq!(*r.levels.borrow(), [Level::Low]);
    }
}
