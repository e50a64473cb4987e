//! The first line of every lock file updlock creates: its claim of ownership.
//!
//! The supervisor never reads lock files (SPEC §2), so the tag is only for
//! updlock itself and for humans. It lets a later updlock tell its own stale
//! lock (tag present, flock free) from anyone else's file, which it must never
//! touch (SPEC §5). A file is ours only if the whole first line parses: a
//! file that merely starts with the magic word is someone else's.
//!
//! ```text
//! updlock/1 pid=4242 boot=8d1f...-... since=2026-11-28T16:40:00Z
//! # balena update lock held by updlock; see `updlock status`
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

/// The magic word and format version that open the first line.
pub const MAGIC: &str = "updlock/1";

/// The most of a file that is read to find the tag.
pub const MAX_LEN: usize = 512;

/// What a tag says about the updlock that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Process id of the holder, in its own PID namespace.
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id` when the lock was taken, or `unknown`.
    pub boot: String,
    /// When the lock was taken, UTC, RFC 3339.
    pub since: String,
}

impl Tag {
    /// A tag for this process, now.
    pub fn for_this_process() -> Tag {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| is_token(s))
            .unwrap_or_else(|| "unknown".to_string());
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Tag {
            pid: std::process::id(),
            boot,
            since: rfc3339_utc(secs),
        }
    }

    /// The file contents: the tag line and a line for humans.
    pub fn render(&self) -> String {
        format!(
            "{MAGIC} pid={} boot={} since={}\n# balena update lock held by updlock; see `updlock status`\n",
            self.pid, self.boot, self.since
        )
    }

    /// Reads a tag from the start of a file's contents; `None` means the file
    /// is not updlock's.
    pub fn parse(contents: &[u8]) -> Option<Tag> {
        let head = &contents[..contents.len().min(MAX_LEN)];
        let end = head.iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&head[..end]).ok()?;
        let mut words = line.split(' ');
        if words.next()? != MAGIC {
            return None;
        }
        let (mut pid, mut boot, mut since) = (None, None, None);
        for word in words {
            let (key, value) = word.split_once('=')?;
            if !is_token(value) {
                return None;
            }
            let slot = match key {
                "pid" => &mut pid,
                "boot" => &mut boot,
                "since" => &mut since,
                // Later versions may add fields; they do not make the file foreign.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        let pid: u32 = pid?.parse().ok().filter(|&p| p > 0)?;
        Some(Tag {
            pid,
            boot: boot?.to_string(),
            since: since?.to_string(),
        })
    }
}

/// A non-empty run of printable ASCII without spaces or `=`.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'=')
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so no date crate is linked into the static binary.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Tag::for_this_process();
        assert_eq!(Tag::parse(t.render().as_bytes()), Some(t));
    }

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_882_830), "2026-11-28T16:20:30Z");
    }

    #[test]
    fn foreign_contents_are_not_tags() {
        for c in [
            &b""[..],
            b"\n",
            b"1234\n",                                 // a pid file
            b"updlock/1\n",                            // magic alone
            b"updlock/1 pid=12 boot=x\n",              // a field missing
            b"updlock/1 pid=0 boot=x since=y\n",       // pid 0
            b"updlock/1 pid=-3 boot=x since=y\n",      // not a number
            b"updlock/1 pid=1 pid=2 boot=x since=y\n", // repeated field
            b"updlock/1 pid=12 boot=x since=y",        // no newline: unfinished
            b"updlock/2 pid=12 boot=x since=y\n",      // another format
            b"updlock/1  pid=12 boot=x since=y\n",     // empty word
            b"updlock/1 pid=12 boot=\xff since=y\n",   // not UTF-8
            b"xupdlock/1 pid=12 boot=x since=y\n",
        ] {
            assert_eq!(Tag::parse(c), None, "{:?}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn unknown_fields_are_allowed() {
        let t = Tag::parse(b"updlock/1 pid=7 host=pi boot=b since=s\n").unwrap();
        assert_eq!(t.pid, 7);
    }

    #[test]
    fn tag_beyond_max_len_is_not_read() {
        let mut c = vec![b'#'; MAX_LEN];
        c.extend_from_slice(b"\nupdlock/1 pid=1 boot=b since=s\n");
        assert_eq!(Tag::parse(&c), None);
    }
}
