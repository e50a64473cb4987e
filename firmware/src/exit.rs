//! Exit codes: the one table every part of updlock maps its outcomes to.
//!
//! They follow `sysexits.h`, as procmail's `lockfile` does (SPEC §6), so a
//! script that already handles `lockfile`'s 73 handles updlock's too. `--help`
//! and the README print this table; a test checks they agree.

/// A documented exit status of the `updlock` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success: the lock was taken and released (or, for `status`, nothing is held).
    Ok,
    /// Bad command line: unknown flag, bad duration, conflicting options.
    Usage,
    /// Something needed is not there: no lock directory or service
    /// directory; no such GPIO chip, line, board or pin; the line is busy;
    /// a `--safe` level that is the line's active level.
    Unavailable,
    /// A bug in updlock (a panic or an impossible state).
    Internal,
    /// The operating system refused in a way permissions do not explain
    /// (read-only or full file system, no hard links, a line that cannot be
    /// driven).
    OsError,
    /// The lock is held by someone else: at once, or when `--wait` ran out.
    /// For `status`: something is held.
    Held,
    /// Interrupted: a signal arrived before the lock was taken, or the lock
    /// was overridden (the supervisor's force) while `hold` held it.
    Interrupted,
    /// Permission denied, including running as uid 65534.
    Permission,
}

impl Exit {
    /// The numeric status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Usage => 64,
            Exit::Unavailable => 69,
            Exit::Internal => 70,
            Exit::OsError => 71,
            Exit::Held => 73,
            Exit::Interrupted => 75,
            Exit::Permission => 77,
        }
    }

    /// Every code, in numeric order, for the documentation.
    pub const ALL: [Exit; 8] = [
        Exit::Ok,
        Exit::Usage,
        Exit::Unavailable,
        Exit::Internal,
        Exit::OsError,
        Exit::Held,
        Exit::Interrupted,
        Exit::Permission,
    ];

    /// One line saying when this code is returned.
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success (status: no lock is held)",
            Exit::Usage => "usage error: unknown option, bad duration, conflicting options",
            Exit::Unavailable => {
                "unavailable: no lock directory; no such GPIO chip, line, board or pin; a line name two lines share; line busy"
            }
            Exit::Internal => "internal error (a bug: please report it)",
            Exit::OsError => {
                "operating-system error: read-only or full file system; the line cannot be driven"
            }
            Exit::Held => "the lock is held by someone else (status: something is held)",
            Exit::Interrupted => {
                "interrupted by a signal before the lock was taken, or the lock was overridden (hold)"
            }
            Exit::Permission => "permission denied, or running as uid 65534 (the supervisor's user)",
        }
    }
}

/// The exit-code table as `--help` and the README print it.
pub fn table() -> String {
    let mut out = String::new();
    for e in Exit::ALL {
        out.push_str(&format!("  {:>3}  {}\n", e.code(), e.meaning()));
    }
    out.push_str("  126  run: PROGRAM could not be executed (permission)\n");
    out.push_str("  127  run: PROGRAM was not found\n");
    out.push_str("  else run: PROGRAM's own status, or 128+N if it died of signal N\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_sorted() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
    }

    #[test]
    fn codes_match_procmail_lockfile() {
        // The values procmail's lockfile(1) documents, which scripts rely on.
        assert_eq!(Exit::Held.code(), 73);
        assert_eq!(Exit::Interrupted.code(), 75);
        assert_eq!(Exit::Usage.code(), 64);
        assert_eq!(Exit::Unavailable.code(), 69);
        assert_eq!(Exit::OsError.code(), 71);
    }
}
