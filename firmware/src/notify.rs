//! systemd's readiness protocol (`sd_notify`), without libsystemd.
//!
//! balenaOS host services are systemd units: `Type=notify` lets a unit that
//! depends on the lock start only once updlock really holds it, and
//! `WatchdogSec=` has systemd restart an updlock whose event loop is stuck.
//! The watchdog is petted from that loop ([`crate::events::Events`]), never
//! from a timer thread: a thread would go on petting while the loop that
//! makes the line safe and releases the lock hangs.

use std::ffi::OsString;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`, if it is set. Failures
/// are logged, never fatal: the lock matters more than the notification.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        log::warn!("cannot notify systemd at {}: {e}", path.to_string_lossy());
    }
}

/// systemd's watchdog, as `WATCHDOG_USEC` and `WATCHDOG_PID` ask for it:
/// `WATCHDOG=1` to `$NOTIFY_SOCKET` every half interval, the margin
/// `sd_watchdog_enabled(3)` recommends.
#[derive(Debug)]
pub struct Watchdog {
    socket: OsString,
    every: Duration,
    next: Instant,
    failed: bool,
}

impl Watchdog {
    /// The watchdog this process's environment asks for, if any.
    pub fn from_env() -> Option<Watchdog> {
        let text = |name| std::env::var(name).ok();
        Watchdog::from_values(
            std::env::var_os("NOTIFY_SOCKET"),
            text("WATCHDOG_USEC").as_deref(),
            text("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    /// The watchdog for these values of `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
    /// `WATCHDOG_PID`, for the process `pid`. `WATCHDOG_PID` names the
    /// process systemd watches: a child that inherited the variables (the
    /// PROGRAM of a `run` under another supervisor, say) must stay quiet.
    pub fn from_values(
        socket: Option<OsString>,
        usec: Option<&str>,
        watched_pid: Option<&str>,
        pid: u32,
    ) -> Option<Watchdog> {
        let socket = socket.filter(|s| !s.is_empty())?;
        let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
        if let Some(p) = watched_pid {
            if p.trim().parse::<u32>().ok()? != pid {
                return None;
            }
        }
        Some(Watchdog {
            socket,
            every: Duration::from_micros(usec / 2).max(Duration::from_millis(1)),
            // The first pet goes at the first wait.
            next: Instant::now(),
            failed: false,
        })
    }

    /// The time between two pets.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// When the next pet is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// Pets if it is time to. A failure is logged once, not every half
    /// interval.
    pub fn pet_if_due(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        // From now, not from the missed due time: a loop that was held up
        // pets once, not in a burst.
        self.next = now + self.every;
        match send(&self.socket, "WATCHDOG=1") {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                log::warn!(
                    "cannot pet systemd's watchdog at {}: {e}",
                    self.socket.to_string_lossy()
                );
            }
            Err(_) => {}
        }
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name)?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("notify");
        let listener = UnixDatagram::bind(&p).unwrap();
        send(p.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn the_watchdog_is_for_the_watched_pid_only() {
        let sock = || Some(OsString::from("/run/notify"));
        let w = Watchdog::from_values(sock(), Some("200000"), None, 7).unwrap();
        assert_eq!(w.every(), Duration::from_millis(100));
        assert!(Watchdog::from_values(sock(), Some("200000"), Some("7"), 7).is_some());
        assert!(Watchdog::from_values(sock(), Some("200000"), Some("8"), 7).is_none());
        assert!(Watchdog::from_values(sock(), Some("200000"), Some("x"), 7).is_none());
        assert!(Watchdog::from_values(sock(), None, None, 7).is_none());
        assert!(Watchdog::from_values(sock(), Some("0"), None, 7).is_none());
        assert!(Watchdog::from_values(sock(), Some("soon"), None, 7).is_none());
        assert!(Watchdog::from_values(None, Some("200000"), None, 7).is_none());
        assert!(Watchdog::from_values(Some("".into()), Some("200000"), None, 7).is_none());
    }

    #[test]
    fn pets_only_when_due() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("notify");
        let listener = UnixDatagram::bind(&p).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut w =
            Watchdog::from_values(Some(p.clone().into()), Some("2000000"), None, 1).unwrap();
        let start = w.due();
        w.pet_if_due(start);
        w.pet_if_due(start + Duration::from_millis(999));
        assert_eq!(w.due(), start + Duration::from_secs(1));
        w.pet_if_due(start + Duration::from_secs(5));
        assert_eq!(
            w.due(),
            start + Duration::from_secs(6),
            "no burst after a stall"
        );
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while let Ok(n) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got, ["WATCHDOG=1", "WATCHDOG=1"]);
    }
}
