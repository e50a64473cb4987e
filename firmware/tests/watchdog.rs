//! systemd's watchdog: with `WATCHDOG_USEC` set (and `WATCHDOG_PID`, if set,
//! naming updlock), `WATCHDOG=1` goes to `$NOTIFY_SOCKET` every half
//! interval while `hold` or `watch` waits in its event loop; otherwise never.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// systemd's side: a datagram socket in a fresh directory, and the lock
/// directory beside it.
struct Systemd {
    t: TempDir,
    socket: PathBuf,
    sock: UnixDatagram,
    locks: PathBuf,
}

impl Systemd {
    fn new() -> Systemd {
        let t = tempdir();
        let socket = t.path().join("notify");
        let sock = UnixDatagram::bind(&socket).unwrap();
        sock.set_read_timeout(Some(TIMEOUT)).unwrap();
        let locks = mkdir(&t.path().join("locks"));
        Systemd {
            t,
            socket,
            sock,
            locks,
        }
    }

    /// `updlock --lock-dir D ARGS...` with `$NOTIFY_SOCKET` set.
    fn updlock(&self, args: &[&str]) -> Command {
        let mut c = updlock_at(&self.locks);
        c.args(args).env("NOTIFY_SOCKET", &self.socket);
        c
    }

    /// The next datagram; failing the test if none comes within [`TIMEOUT`].
    fn receive(&self) -> String {
        let mut buf = [0u8; 256];
        let n = self
            .sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification within {TIMEOUT:?}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Every datagram up to and including `STOPPING=1`.
    fn until_stopping(&self) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let m = self.receive();
            let last = m == "STOPPING=1";
            got.push(m);
            if last {
                return got;
            }
        }
    }
}

/// Receives `n` pets in a row and returns the time from the first to the last.
fn pets(sd: &Systemd, n: usize) -> Duration {
    let mut first = None;
    for _ in 0..n {
        assert_eq!(sd.receive(), "WATCHDOG=1");
        first.get_or_insert_with(Instant::now);
    }
    first.map(|f| f.elapsed()).unwrap_or_default()
}

#[test]
fn hold_pets_the_watchdog_every_half_interval() {
    let sd = Systemd::new();
    let mut h = Proc::spawn(sd.updlock(&["hold"]).env("WATCHDOG_USEC", "200000"));
    assert_eq!(sd.receive(), "READY=1");
    // Four pets are three half intervals (100 ms each) apart: not a spin.
    let span = pets(&sd, 4);
    assert!(span >= Duration::from_millis(200), "4 pets in {span:?}");
    assert_names(&sd.locks, &LOCK_NAMES);
    h.signal(SIGTERM);
    let rest = sd.until_stopping();
    assert!(
        rest.iter().all(|m| m == "WATCHDOG=1" || m == "STOPPING=1"),
        "{rest:?}"
    );
    h.finish().code_is(0);
    assert_empty(&sd.locks);
}

#[test]
fn watchdog_pid_naming_updlock_is_honoured() {
    let sd = Systemd::new();
    // The shell's pid is updlock's once it execs: what systemd would set.
    let mut c = sh(
        r#"WATCHDOG_PID=$$ exec "$@""#,
        &[
            OsStr::new(UPDLOCK),
            OsStr::new("--lock-dir"),
            sd.locks.as_os_str(),
        ],
    );
    c.args(["hold"])
        .env("NOTIFY_SOCKET", &sd.socket)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("UPDLOCK_LOCK_DIR")
        .env_remove("BALENA_APP_LOCK_PATH")
        .env_remove("RUST_LOG");
    let mut h = Proc::spawn(&mut c);
    assert_eq!(sd.receive(), "READY=1");
    pets(&sd, 2);
    h.signal(SIGTERM);
    sd.until_stopping();
    h.finish().code_is(0);
}

#[test]
fn no_pets_without_watchdog_usec_or_for_another_pid() {
    let not_updlock = std::process::id().to_string();
    for env in [
        &[][..],
        &[
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", not_updlock.as_str()),
        ],
        &[("WATCHDOG_USEC", "0")],
    ] {
        let sd = Systemd::new();
        // 600 ms: six half intervals, had a watchdog of 200 ms been honoured.
        let mut c = sd.updlock(&["hold", "--for", "600ms"]);
        c.envs(env.iter().copied());
        let h = Proc::spawn(&mut c);
        assert_eq!(sd.until_stopping(), ["READY=1", "STOPPING=1"], "{env:?}");
        h.finish().code_is(0);
    }
}

#[test]
fn watch_pets_the_watchdog_too() {
    let sd = Systemd::new();
    let input = sd.t.path().join("input");
    fs::write(&input, "0\n").unwrap();
    let mut w = Proc::spawn(
        sd.updlock(&["watch", "--input"])
            .arg(format!("file:{}", s(&input)))
            .env("WATCHDOG_USEC", "200000"),
    );
    assert_eq!(sd.receive(), "READY=1");
    let span = pets(&sd, 3);
    assert!(span >= Duration::from_millis(100), "3 pets in {span:?}");
    w.signal(SIGTERM);
    sd.until_stopping();
    w.finish().code_is(0);
}
