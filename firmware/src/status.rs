//! `updlock status`: who holds each lock file, as the supervisor and the
//! host OS would see it, without disturbing anyone.
//!
//! It never takes a flock, even for an instant: a probe could make a
//! re-taking updlock or the host's `flock -nx` check believe the file is
//! held. Whether a file is flocked comes from `/proc/locks` instead.
//!
//! With the supervisor's API ([`crate::supervisor`]), the report also says
//! what the supervisor thinks of updates; the lock files alone decide the
//! exit status.

use std::path::{Path, PathBuf};

use crate::lock::{flocked, observe, Foreign, LockError, Observed, Target, SUPERVISOR_UID};
use crate::supervisor::Device;
use crate::tag::Tag;

/// The state of one lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No file: nothing blocks updates here.
    Free,
    /// A live updlock holds it.
    Updlock(Tag),
    /// updlock's tag without its flock: left by a dead updlock. It still
    /// blocks updates; the next updlock re-takes it.
    Stale(Tag),
    /// Owned by uid 65534: the supervisor is applying an update.
    Supervisor,
    /// Someone else's file.
    Foreign(Foreign),
}

/// One lock file's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The lock file.
    pub path: PathBuf,
    /// What is there.
    pub state: State,
    /// Owner of the file, when there is one.
    pub uid: Option<u32>,
    /// Whether it is flocked; `None` when `/proc/locks` cannot be read.
    pub flocked: Option<bool>,
}

impl Entry {
    /// Whether this file blocks an update (the supervisor only checks existence).
    pub fn held(&self) -> bool {
        self.state != State::Free
    }
}

/// What the supervisor's API said about updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorView {
    /// The API's base URL.
    pub address: String,
    /// Its answer, or why there is none (already logged).
    pub answer: Result<Device, String>,
}

/// Looks at every lock file in `paths`.
pub fn inspect(paths: &[PathBuf]) -> Result<Vec<Entry>, LockError> {
    paths.iter().map(|p| inspect_one(p)).collect()
}

fn inspect_one(path: &Path) -> Result<Entry, LockError> {
    let target = Target::open(path)?;
    let (foreign, uid, id, tag) = match observe(&target)? {
        Observed::Free => {
            return Ok(Entry {
                path: path.to_path_buf(),
                state: State::Free,
                uid: None,
                flocked: None,
            })
        }
        Observed::Present {
            foreign,
            uid,
            id,
            tag,
            ..
        } => (foreign, uid, id, tag),
    };
    let flocked = flocked(id);
    let state = match (foreign, tag) {
        (None | Some(Foreign::Unreadable), _) if uid == SUPERVISOR_UID => State::Supervisor,
        (Some(kind), _) => State::Foreign(kind),
        (None, Some(tag)) if flocked == Some(false) => State::Stale(tag),
        (None, Some(tag)) => State::Updlock(tag),
        (None, None) => State::Foreign(Foreign::File),
    };
    Ok(Entry {
        path: path.to_path_buf(),
        state,
        uid: Some(uid),
        flocked,
    })
}

fn describe(e: &Entry) -> String {
    let flock = match e.flocked {
        Some(true) => ", flocked",
        Some(false) => ", not flocked",
        None => "",
    };
    match &e.state {
        State::Free => "free".to_string(),
        State::Updlock(t) => format!("held by updlock (pid {}, since {}{flock})", t.pid, t.since),
        State::Stale(t) => format!(
            "stale: left by updlock pid {} (since {}), not flocked; it blocks updates until the next updlock re-takes it",
            t.pid, t.since
        ),
        State::Supervisor => format!("held by the supervisor (uid {SUPERVISOR_UID}: an update is being applied{flock})"),
        State::Foreign(kind) => format!(
            "held by someone else ({}, owner uid {}{flock})",
            foreign_word(*kind),
            e.uid.map_or_else(|| "?".to_string(), |u| u.to_string())
        ),
    }
}

fn foreign_word(kind: Foreign) -> &'static str {
    match kind {
        Foreign::File => "file",
        Foreign::Unreadable => "unreadable file",
        Foreign::Directory => "directory",
        Foreign::Symlink => "symlink",
        Foreign::Special => "special file",
    }
}

fn flag_text(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "true",
        Some(false) => "false",
        None => "unknown",
    }
}

fn flag_json(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "true",
        Some(false) => "false",
        None => "null",
    }
}

/// One line per lock file, and one for the supervisor's answer if there is
/// one (a failure is in the log, not here).
pub fn render_text(entries: &[Entry], supervisor: Option<&SupervisorView>) -> String {
    let mut out: String = entries
        .iter()
        .map(|e| format!("{}: {}\n", e.path.display(), describe(e)))
        .collect();
    if let Some(SupervisorView {
        address,
        answer: Ok(d),
    }) = supervisor
    {
        out.push_str(&format!(
            "supervisor ({address}): update_pending={}, update_downloaded={}, update_failed={}\n",
            flag_text(d.update_pending),
            flag_text(d.update_downloaded),
            flag_text(d.update_failed)
        ));
    }
    out
}

/// `{"held": bool, "locks": [...]}` for scripts, and `"supervisor": {...}`
/// when the API was asked: its three fields (`null` when it did not say),
/// or `"error"`.
pub fn render_json(entries: &[Entry], supervisor: Option<&SupervisorView>) -> String {
    let mut out = format!("{{\"held\":{},\"locks\":[", entries.iter().any(Entry::held));
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (state, tag, kind) = match &e.state {
            State::Free => ("free", None, None),
            State::Updlock(t) => ("updlock", Some(t), None),
            State::Stale(t) => ("stale", Some(t), None),
            State::Supervisor => ("supervisor", None, None),
            State::Foreign(k) => ("foreign", None, Some(foreign_word(*k))),
        };
        out.push_str(&format!(
            "{{\"path\":{},\"state\":\"{state}\"",
            json_string(&e.path.to_string_lossy())
        ));
        if let Some(k) = kind {
            out.push_str(&format!(",\"kind\":\"{k}\""));
        }
        if let Some(t) = tag {
            out.push_str(&format!(
                ",\"pid\":{},\"since\":{},\"boot_id\":{}",
                t.pid,
                json_string(&t.since),
                json_string(&t.boot)
            ));
        }
        if let Some(uid) = e.uid {
            out.push_str(&format!(",\"owner_uid\":{uid}"));
        }
        out.push_str(&format!(
            ",\"flocked\":{}}}",
            e.flocked
                .map_or("null", |b| if b { "true" } else { "false" })
        ));
    }
    out.push(']');
    if let Some(v) = supervisor {
        out.push_str(&format!(
            ",\"supervisor\":{{\"address\":{}",
            json_string(&v.address)
        ));
        match &v.answer {
            Ok(d) => out.push_str(&format!(
                ",\"update_pending\":{},\"update_downloaded\":{},\"update_failed\":{}}}",
                flag_json(d.update_pending),
                flag_json(d.update_downloaded),
                flag_json(d.update_failed)
            )),
            Err(e) => out.push_str(&format!(",\"error\":{}}}", json_string(e))),
        }
    }
    out.push_str("}\n");
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn json_shape() {
        let entries = [
            Entry {
                path: PathBuf::from("/l/updates.lock"),
                state: State::Free,
                uid: None,
                flocked: None,
            },
            Entry {
                path: PathBuf::from("/l/resin-updates.lock"),
                state: State::Supervisor,
                uid: Some(65534),
                flocked: Some(false),
            },
        ];
        assert_eq!(
            render_json(&entries, None),
            "{\"held\":true,\"locks\":[{\"path\":\"/l/updates.lock\",\"state\":\"free\",\"flocked\":null},{\"path\":\"/l/resin-updates.lock\",\"state\":\"supervisor\",\"owner_uid\":65534,\"flocked\":false}]}\n"
        );
    }

    #[test]
    fn the_supervisors_view() {
        let entries = [Entry {
            path: PathBuf::from("/l/updates.lock"),
            state: State::Free,
            uid: None,
            flocked: None,
        }];
        let answered = SupervisorView {
            address: "http://127.0.0.1:48484".into(),
            answer: Ok(Device {
                update_pending: Some(true),
                update_downloaded: Some(false),
                update_failed: None,
            }),
        };
        assert_eq!(
            render_json(&entries, Some(&answered)),
            "{\"held\":false,\"locks\":[{\"path\":\"/l/updates.lock\",\"state\":\"free\",\"flocked\":null}],\"supervisor\":{\"address\":\"http://127.0.0.1:48484\",\"update_pending\":true,\"update_downloaded\":false,\"update_failed\":null}}\n"
        );
        assert_eq!(
            render_text(&entries, Some(&answered)),
            "/l/updates.lock: free\nsupervisor (http://127.0.0.1:48484): update_pending=true, update_downloaded=false, update_failed=unknown\n"
        );
        let failed = SupervisorView {
            address: "http://127.0.0.1:1".into(),
            answer: Err("cannot connect: \"refused\"".into()),
        };
        assert!(render_json(&entries, Some(&failed))
            .ends_with("],\"supervisor\":{\"address\":\"http://127.0.0.1:1\",\"error\":\"cannot connect: \\\"refused\\\"\"}}\n"));
        assert_eq!(
            render_text(&entries, Some(&failed)),
            render_text(&entries, None)
        );
    }
}
