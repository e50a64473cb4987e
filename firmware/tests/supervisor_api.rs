//! The supervisor's API, optional at run time and never required: `status`
//! shows what the supervisor says about updates, `--kick` asks it to apply
//! a pending update once the lock is released, and an API that is missing,
//! slow, refusing, failing or talking nonsense changes nothing but one line
//! of log.
//!
//! The supervisor here is a small HTTP server on loopback that imitates
//! `GET /v1/device` and `POST /v1/update`: it checks the `apikey` query
//! parameter (401 otherwise), and records every request along with whether
//! the lock file existed at the instant the request arrived — the proof
//! that a kick comes after the release, whatever the timing.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, Sender};

use common::*;

const KEY: &str = "0123abcd-key";

/// How the fake supervisor answers every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// As the supervisor does, with `update_pending` as given.
    Device { pending: bool },
    /// Reads the request, then says nothing until the client hangs up.
    Silent,
    /// This status and no body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    apikey: Option<String>,
    body: String,
    /// Whether a lock file existed at the instant the request arrived.
    lock_present: bool,
}

impl Seen {
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// The fake supervisor: a thread serving one connection at a time.
struct Supervisor {
    url: String,
    seen: Receiver<Seen>,
}

impl Supervisor {
    /// Listens on a free loopback port; `locks` is the lock directory whose
    /// files it looks for when a request arrives.
    fn start(answer: Answer, locks: &Path) -> Supervisor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, seen) = mpsc::channel();
        let locks = locks.to_path_buf();
        // Ends with the test process: it only ever waits in accept().
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if serve(conn, answer, &locks, &tx).is_err() {
                    return;
                }
            }
        });
        Supervisor { url, seen }
    }

    /// The next request, waiting for it (at most [`TIMEOUT`]).
    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("no request to the supervisor within {TIMEOUT:?}: {e}"))
    }

    /// Every request so far. Once updlock has ended this is all it sent: a
    /// request is recorded before it is answered, and updlock waits for
    /// the answer (or gives up on it) before it goes on.
    fn so_far(&self) -> Vec<Seen> {
        self.seen.try_iter().collect()
    }
}

/// Reads one request, records it, answers it. `Err` when the test is gone.
fn serve(
    mut conn: TcpStream,
    answer: Answer,
    locks: &Path,
    tx: &Sender<Seen>,
) -> Result<(), mpsc::SendError<Seen>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    // The lock files are looked at the moment the head has arrived, before
    // anything is answered.
    let lock_present = LOCK_NAMES.iter().any(|n| locks.join(n).exists());
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or_default().split(' ');
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default().to_string();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = got[head_end + 4..].to_vec();
    while body.len() < length {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let apikey = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("apikey="))
        .map(str::to_string);
    let seen = Seen {
        method: method.clone(),
        path: path.to_string(),
        apikey: apikey.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        lock_present,
    };
    tx.send(seen)?;
    let reply = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let text = match answer {
        Answer::Silent => {
            // Until updlock gives up and closes: its timeout, not ours.
            let _ = conn.read_to_end(&mut Vec::new());
            return Ok(());
        }
        _ if apikey.as_deref() != Some(KEY) => reply("401 Unauthorized", "Unauthorized"),
        Answer::Status(code) => reply(&format!("{code} Trouble"), ""),
        Answer::Garbage => reply("200 OK", "<html>Bad Gateway</html>"),
        Answer::Device { pending } => match (method.as_str(), path) {
            ("GET", "/v1/device") => reply(
                "200 OK",
                &format!(
                    "{{\"api_port\":48484,\"ip_address\":\"10.0.0.2\",\"status\":\"Idle\",\"download_progress\":null,\"os_version\":\"balenaOS 6.0.10\",\"supervisor_version\":\"16.1.0\",\"update_pending\":{pending},\"update_downloaded\":false,\"update_failed\":{pending}}}"
                ),
            ),
            ("POST", "/v1/update") => reply("204 No Content", ""),
            _ => reply("404 Not Found", "Not Found"),
        },
    };
    let _ = conn.write_all(text.as_bytes());
    Ok(())
}

/// The address of a port nobody listens on: bound, then let go.
fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

/// A lock directory in a fresh temporary directory.
struct Rig {
    t: TempDir,
    dir: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let t = tempdir();
        let dir = mkdir(&t.path().join("locks"));
        Rig { t, dir }
    }

    /// `updlock --lock-dir D --supervisor-address URL --supervisor-api-key KEY
    /// --api-timeout 300ms ARGS...`
    fn cmd(&self, url: &str, args: &[&str]) -> Command {
        self.cmd_keyed(url, KEY, args)
    }

    /// As [`Rig::cmd`], with `key` for the API key.
    fn cmd_keyed(&self, url: &str, key: &str, args: &[&str]) -> Command {
        let mut c = updlock_at(&self.dir);
        c.args(["--supervisor-address", url, "--supervisor-api-key", key])
            .args(["--api-timeout", "300ms"])
            .args(args);
        c
    }
}

/// Each way an API can let us down, with what the one line must say.
fn failures(dir: &Path) -> Vec<(&'static str, Option<Supervisor>, String, &'static str)> {
    let mut v = Vec::new();
    for (name, answer, reason) in [
        ("slow", Answer::Silent, "timed out after 300 ms"),
        ("500", Answer::Status(500), "answered 500 Trouble"),
        ("503", Answer::Status(503), "answered 503 Trouble"),
        ("garbage", Answer::Garbage, "not JSON"),
    ] {
        let s = Supervisor::start(answer, dir);
        let url = s.url.clone();
        v.push((name, Some(s), url, reason));
    }
    v.push((
        "refused",
        None,
        refused_url(),
        "Connection refused (os error 111)",
    ));
    v
}

/// Lines of `log` that contain `text`.
fn lines_with<'a>(log: &'a str, text: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(text)).collect()
}

/// The line of `log` containing `text` comes before the one containing `then`.
#[track_caller]
fn before(log: &str, text: &str, then: &str) {
    let at = |t: &str| {
        log.lines()
            .position(|l| l.contains(t))
            .unwrap_or_else(|| panic!("no line with {t:?} in:\n{log}"))
    };
    assert!(
        at(text) < at(then),
        "{text:?} should come before {then:?}:\n{log}"
    );
}

// ---------------------------------------------------------------- status

#[test]
fn status_shows_the_supervisors_view_in_text_and_json() {
    let r = Rig::new();
    let sup = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    let line = format!(
        "supervisor ({}): update_pending=true, update_downloaded=false, update_failed=true",
        sup.url
    );
    let out = run(&mut r.cmd(&sup.url, &["status"]));
    out.code_is(0)
        .stdout_has(&[&format!("{}: free", s(&r.dir.join("updates.lock"))), &line]);
    assert_eq!(out.stderr, "", "{out:?}");
    let get = sup.next();
    assert!(get.is("GET", "/v1/device"), "{get:?}");
    assert_eq!(get.apikey.as_deref(), Some(KEY));
    let json = run(&mut r.cmd(&sup.url, &["status", "--json"]));
    json.code_is(0).stdout_has(&[
        "{\"held\":false,\"locks\":[",
        &format!(
            "],\"supervisor\":{{\"address\":\"{}\",\"update_pending\":true,\"update_downloaded\":false,\"update_failed\":true}}}}",
            sup.url
        ),
    ]);
    // The exit status is still the locks' alone.
    let mut h = hold(&r.dir);
    run(&mut r.cmd(&sup.url, &["status"]))
        .code_is(73)
        .stdout_has(&[&line, "held by updlock"]);
    h.signal(SIGTERM);
    h.finish().code_is(0);
    assert_eq!(sup.so_far().len(), 2, "one GET per status");
}

#[test]
fn status_takes_the_api_from_the_environment() {
    let r = Rig::new();
    let sup = Supervisor::start(Answer::Device { pending: false }, &r.dir);
    run(updlock_at(&r.dir)
        .arg("status")
        .env("BALENA_SUPERVISOR_ADDRESS", &sup.url)
        .env("BALENA_SUPERVISOR_API_KEY", KEY))
    .code_is(0)
    .stdout_has(&[&format!(
        "supervisor ({}): update_pending=false, update_downloaded=false, update_failed=false",
        sup.url
    )]);
    assert_eq!(sup.next().apikey.as_deref(), Some(KEY));
    // A flag wins over its variable.
    let other = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    run(r
        .cmd(&other.url, &["status"])
        .env("BALENA_SUPERVISOR_ADDRESS", &sup.url))
    .code_is(0)
    .stdout_has(&["update_pending=true"]);
    assert!(other.next().is("GET", "/v1/device"));
    assert!(sup.so_far().is_empty());
}

#[test]
fn status_without_the_api_is_what_it_was() {
    let r = Rig::new();
    let text = run(updlock_at(&r.dir).arg("status"));
    text.code_is(0);
    assert!(!text.stdout.contains("supervisor"), "{text:?}");
    assert_eq!(text.stderr, "");
    let json = run(updlock_at(&r.dir).args(["status", "--json"]));
    json.code_is(0);
    assert!(json.stdout.ends_with("]}\n"), "{json:?}");
    assert!(!json.stdout.contains("supervisor"), "{json:?}");
}

#[test]
fn status_with_a_failing_api_keeps_its_exit_code_and_says_why_once() {
    let r = Rig::new();
    let mut cases = failures(&r.dir);
    let wrong_key = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    cases.push((
        "wrong key",
        None,
        wrong_key.url.clone(),
        "answered 401 Unauthorized (is the API key right?)",
    ));
    for (name, _sup, url, reason) in &cases {
        let key = if *name == "wrong key" {
            "not-the-key"
        } else {
            KEY
        };
        let out = run(&mut r.cmd_keyed(url, key, &["status"]));
        out.code_is(0)
            .stdout_has(&[&format!("{}: free", s(&r.dir.join("updates.lock")))]);
        assert!(!out.stdout.contains("supervisor"), "{name}: {out:?}");
        let said = lines_with(&out.stderr, url);
        assert_eq!(said.len(), 1, "{name}: one line naming {url}: {out:?}");
        assert!(said[0].contains("GET /v1/device"), "{name}: {}", said[0]);
        assert!(said[0].contains(reason), "{name}: {}", said[0]);
        assert_eq!(out.stderr.lines().count(), 1, "{name}: {out:?}");
        assert!(!out.stderr.contains(KEY), "{name}: the key was logged");
        let json = run(&mut r.cmd_keyed(url, key, &["status", "--json"]));
        json.code_is(0).stdout_has(&[
            &format!("\"supervisor\":{{\"address\":\"{url}\",\"error\":\"GET /v1/device: "),
            reason,
        ]);
    }
    assert_eq!(wrong_key.next().apikey.as_deref(), Some("not-the-key"));
    // Held is still 73, however the API fails.
    let mut h = hold(&r.dir);
    run(&mut r.cmd(&refused_url(), &["status"])).code_is(73);
    h.signal(SIGTERM);
    h.finish().code_is(0);
}

// ---------------------------------------------------------------- --kick

/// Asserts the requests of a kick: `GET /v1/device`, then `POST
/// /v1/update` with force false, both after the lock was gone.
#[track_caller]
fn a_kick(seen: &[Seen]) {
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].is("GET", "/v1/device"), "{seen:?}");
    assert!(seen[1].is("POST", "/v1/update"), "{seen:?}");
    for r in seen {
        assert_eq!(r.apikey.as_deref(), Some(KEY), "{r:?}");
        assert!(
            !r.lock_present,
            "{} {} arrived while the lock file was still there",
            r.method, r.path
        );
    }
    assert_eq!(seen[1].body, "{\"force\":false}");
}

#[test]
fn hold_kicks_a_pending_update_once_the_lock_is_gone() {
    let r = Rig::new();
    let sup = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    let mut h = spawn_held(&mut r.cmd(&sup.url, &["hold", "--kick"]));
    assert_names(&r.dir, &LOCK_NAMES);
    h.signal(SIGTERM);
    let out = h.finish();
    out.code_is(0);
    a_kick(&sup.so_far());
    before(
        &out.stderr,
        "lock released",
        "asked to apply it now (POST /v1/update: 204)",
    );
    assert_empty(&r.dir);
}

#[test]
fn run_kicks_and_keeps_the_programs_status() {
    let r = Rig::new();
    let sup = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    let out = run(&mut r.cmd(&sup.url, &["run", "--kick", "--", "sh", "-c", "exit 3"]));
    out.code_is(3);
    a_kick(&sup.so_far());
    before(&out.stderr, "lock released", "asked to apply it now");
    assert_empty(&r.dir);
}

#[test]
fn no_update_pending_no_post() {
    let r = Rig::new();
    let sup = Supervisor::start(Answer::Device { pending: false }, &r.dir);
    for args in [
        &["hold", "--for", "1ms", "--kick"][..],
        &["run", "--kick", "--", "true"],
    ] {
        let out = run(&mut r.cmd(&sup.url, args));
        out.code_is(0);
        assert_eq!(out.stderr.lines().count(), 2, "taken, released: {out:?}");
        let seen = sup.so_far();
        assert_eq!(seen.len(), 1, "{args:?}: {seen:?}");
        assert!(seen[0].is("GET", "/v1/device") && !seen[0].lock_present);
    }
}

#[test]
fn without_kick_the_api_is_left_alone() {
    let r = Rig::new();
    let sup = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    run(&mut r.cmd(&sup.url, &["hold", "--for", "1ms"])).code_is(0);
    run(&mut r.cmd(&sup.url, &["run", "--", "true"])).code_is(0);
    assert!(sup.so_far().is_empty());
}

#[test]
fn a_failing_api_changes_nothing_but_one_line_of_log() {
    let r = Rig::new();
    let mut cases = failures(&r.dir);
    let wrong_key = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    let wrong_url = wrong_key.url.clone();
    cases.push(("wrong key", Some(wrong_key), wrong_url, "answered 401"));
    for (name, sup, url, reason) in &cases {
        for (args, code) in [
            (&["hold", "--for", "1ms", "--kick"][..], 0),
            (&["run", "--kick", "--", "sh", "-c", "exit 5"], 5),
        ] {
            let key = if *name == "wrong key" {
                "not-the-key"
            } else {
                KEY
            };
            let out = run(&mut r.cmd_keyed(url, key, args));
            out.code_is(code);
            assert_empty(&r.dir);
            let said = lines_with(&out.stderr, url);
            assert_eq!(said.len(), 1, "{name} {args:?}: {out:?}");
            assert!(said[0].contains(reason), "{name}: {}", said[0]);
            assert!(said[0].contains("not kicked"), "{name}: {}", said[0]);
            assert!(!out.stderr.contains(KEY), "{name}: the key was logged");
            before(&out.stderr, "lock released", url);
            if let Some(sup) = sup {
                let seen = sup.so_far();
                assert_eq!(seen.len(), 1, "{name} {args:?}: only the GET: {seen:?}");
                assert!(!seen[0].lock_present, "{name}: asked before the release");
            }
        }
    }
}

#[test]
fn no_kick_after_an_override() {
    let r = Rig::new();
    let sup = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    let h = spawn_held(&mut r.cmd(&sup.url, &["hold", "--kick"]));
    // What the supervisor's override does first: our file goes.
    for n in LOCK_NAMES {
        fs::remove_file(r.dir.join(n)).unwrap();
    }
    h.finish().code_is(75).stderr_has(&["taken from us"]);
    assert!(
        sup.so_far().is_empty(),
        "the supervisor is applying already"
    );
}

#[test]
fn kick_without_an_api_says_so_once_and_holds_as_usual() {
    let r = Rig::new();
    let out = run(updlock_at(&r.dir).args(["hold", "--for", "1ms", "--kick"]));
    out.code_is(0).stdout_is("held\n");
    assert_eq!(
        lines_with(&out.stderr, "--kick: no supervisor API").len(),
        1,
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 3, "{out:?}");
    let out = run(updlock_at(&r.dir)
        .args(["run", "--kick", "--", "true"])
        .env("BALENA_SUPERVISOR_ADDRESS", "http://127.0.0.1:48484"));
    out.code_is(0);
    assert_eq!(lines_with(&out.stderr, "no API key").len(), 1, "{out:?}");
    assert_empty(&r.dir);
}

#[test]
fn bad_api_options_are_usage_errors() {
    let r = Rig::new();
    for (args, text) in [
        (
            &["--supervisor-address", "https://127.0.0.1:48484", "status"][..],
            "https",
        ),
        (
            &["--supervisor-address", "http://supervisor:48484", "status"],
            "IPv4 address",
        ),
        (&["--api-timeout", "0", "status"], "--api-timeout"),
        (&["status", "--kick"], "--kick"),
    ] {
        run(updlock_at(&r.dir).args(args)).refused(64, &[text]);
    }
    assert_empty(&r.dir);
}

// ---------------------------------------------------------------- watch

#[test]
fn watch_kicks_after_each_release() {
    let r = Rig::new();
    let input = r.t.path().join("input");
    fs::write(&input, "0\n").unwrap();
    let sup = Supervisor::start(Answer::Device { pending: true }, &r.dir);
    let mut w = Proc::spawn(
        r.cmd(
            &sup.url,
            &["watch", "--kick", "--debounce", "100ms", "--input"],
        )
        .arg(format!("file:{}", s(&input))),
    );
    w.wait_stderr("watching the input: inactive");
    for _ in 0..2 {
        append(&input, "1\n");
        w.wait_stderr("input active: lock taken");
        append(&input, "0\n");
        a_kick(&[sup.next(), sup.next()]);
        w.wait_stderr("asked to apply it now");
    }
    // Stopped while holding: released, then kicked, before it exits.
    append(&input, "1\n");
    w.wait_stderr("input active: lock taken");
    w.signal(SIGTERM);
    let out = w.finish();
    out.code_is(0);
    a_kick(&sup.so_far());
    assert_eq!(lines_with(&out.stderr, "asked to apply it now").len(), 3);
    assert_empty(&r.dir);
}

#[test]
fn a_slow_api_does_not_hold_up_watch() {
    let r = Rig::new();
    let input = r.t.path().join("input");
    fs::write(&input, "1\n").unwrap();
    let sup = Supervisor::start(Answer::Silent, &r.dir);
    let mut w = Proc::spawn(
        r.cmd(
            &sup.url,
            &[
                "--api-timeout",
                "1s",
                "watch",
                "--kick",
                "--debounce",
                "50ms",
            ],
        )
        .arg("--input")
        .arg(format!("file:{}", s(&input))),
    );
    w.wait_stderr("input active: lock taken");
    append(&input, "0\n");
    // The kick waits for an answer that never comes...
    assert!(sup.next().is("GET", "/v1/device"));
    // ...and the input is followed meanwhile.
    append(&input, "1\n");
    w.wait_stderr("input active: lock taken");
    assert_names(&r.dir, &LOCK_NAMES);
    w.signal(SIGTERM);
    let out = w.finish();
    out.code_is(0);
    assert_empty(&r.dir);
    // Taken again before the kick gave up: a kick in the loop itself would
    // have held the input back until then.
    let log: Vec<&str> = out.stderr.lines().collect();
    let retaken = log
        .iter()
        .rposition(|l| l.contains("input active: lock taken"))
        .unwrap();
    let gave_up = log
        .iter()
        .position(|l| l.contains("timed out after 1000 ms"))
        .unwrap_or_else(|| panic!("the kick did not give up: {out:?}"));
    assert!(retaken < gave_up, "{out:?}");
    assert_eq!(lines_with(&out.stderr, &sup.url).len(), 1, "{out:?}");
}
