//! The balena update lock protocol: take, hold, recognise and release lock files.
//!
//! Two parties check the same file in two ways (SPEC §2): the supervisor only
//! asks whether `updates.lock`/`resin-updates.lock` *exists*; the host OS's
//! reboot asks whether `updates.lock` is *flocked*. So a lock here is a file
//! that appears at its path already tagged and already flocked, stays flocked
//! by us until release, and is removed by us only while the path still names
//! our own inode.
//!
//! Taking one file ([`LockFile::take`]):
//! 1. sweep temporaries that a crashed updlock left in the directory
//!    (tagged and not flocked, or empty for a minute);
//! 2. create a temporary `.updlock-<pid>-<n>.tmp` beside the lock (the name must
//!    not end in `updates.lock`: the supervisor and the host match that suffix),
//!    `flock(LOCK_EX)` it, write the [`Tag`];
//! 3. `linkat` it to the lock name: `EEXIST` if anyone else is there, exactly
//!    like `O_CREAT|O_EXCL`; then unlink the temporary name;
//! 4. on `EEXIST`, look at what is there ([`Holder`]): the supervisor's file
//!    (owner uid 65534), another live updlock (tag, flocked), someone else's
//!    file (no tag: never touched), or a stale updlock lock (tag, flock free),
//!    which is re-taken in place: flock it, then confirm the path still names
//!    that inode.
//!
//! Every descriptor that holds a lock is open for writing, so when its holder
//! dies the kernel reports `IN_CLOSE_WRITE` on the name, and a waiter wakes up
//! without polling (see [`crate::events`]).
//!
//! Releasing ([`LockFile::release`]): unlink only if the path still names our
//! inode, then close (which drops the flock). A path that names another inode
//! means the supervisor overrode us (SPEC §4): that file is theirs and stays.
//! There remains a window of two syscalls (the `fstatat` and the `unlinkat`)
//! in which a forced override landing at that very instant would lose its
//! file; Linux has no "unlink if inode" call to close it.
//!
//! Nothing here follows a symlink: directories are opened component by
//! component ([`crate::nofollow`]) and files with `O_NOFOLLOW` relative to them.
//!
//! `tests/model/lock.pml` models this file one syscall a step for SPIN
//! (docs/model.md); its comments name lines here, and `tests/model/refs`
//! fails CI when they no longer match: change the model with the code.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{flock, openat, AtFlags, FlockArg, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{linkat, unlinkat, LinkatFlags, UnlinkatFlags};

use crate::duration::Wait;
use crate::events::{Event, Events};
use crate::exit::Exit;
use crate::nofollow::{self, DirError};
use crate::tag::{self, Tag};

/// The uid the supervisor creates its own lock files as (SPEC §3). A file
/// owned by it is the supervisor's; updlock must never create one.
pub const SUPERVISOR_UID: u32 = 65534;

/// Temporaries are named `.updlock-<pid>-<n>.tmp`.
const TEMP_PREFIX: &str = ".updlock-";
const TEMP_SUFFIX: &str = ".tmp";

/// Lock files are readable by everyone (so `updlock status` works for any
/// user) and writable by their owner (so a stale one can be re-tagged).
const LOCK_MODE: u32 = 0o644;

/// How many times one take re-examines a path that changes under it before
/// it reports contention. Each round is a handful of syscalls; the path only
/// changes while other processes take and release it.
const MAX_ROUNDS: u32 = 64;

/// Who holds a lock file that is in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A regular file owned by uid 65534: the supervisor is applying an update.
    Supervisor,
    /// A live updlock (the tag is there and the file is flocked).
    Updlock(Tag),
    /// Anything updlock did not create: never removed, never modified.
    Foreign(Foreign),
    /// The path changed under us on every look: other processes are racing for it.
    Contended,
}

/// What kind of foreign object sits at a lock path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// A regular file without updlock's tag (`lockfile`, `touch`, another program).
    File,
    /// A file updlock may not read, so it cannot be updlock's.
    Unreadable,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device node.
    Special,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Supervisor => write!(
                f,
                "the supervisor holds the lock (an update is being applied)"
            ),
            Holder::Updlock(t) => write!(
                f,
                "held by another updlock (pid {}, since {})",
                t.pid, t.since
            ),
            Holder::Foreign(kind) => write!(
                f,
                "held by someone else ({}; updlock never removes it)",
                match kind {
                    Foreign::File => "a lock file updlock did not create",
                    Foreign::Unreadable => "a lock file updlock cannot read",
                    Foreign::Directory => "a directory",
                    Foreign::Symlink => "a symlink",
                    Foreign::Special => "a FIFO, socket or device",
                }
            ),
            Holder::Contended => write!(
                f,
                "held by someone else (the lock changed hands {MAX_ROUNDS} times while we looked)"
            ),
        }
    }
}

/// Why a lock could not be taken or released.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it (after waiting, if a wait was asked for).
    #[error("{path}: {holder}")]
    Held {
        /// The lock file that is in the way.
        path: PathBuf,
        /// Who is there.
        holder: Holder,
    },
    /// A signal arrived while we waited for the lock.
    #[error("interrupted by {signal} while waiting for {path}; no lock taken")]
    Interrupted {
        /// The lock we were waiting for.
        path: PathBuf,
        /// The signal's name.
        signal: &'static str,
    },
    /// The lock directory cannot be used.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// A lock path whose last component is not a file name.
    #[error("{0}: not a lock file path (it must end in a file name)")]
    BadPath(PathBuf),
    /// We run as the supervisor's uid: our locks would look like the supervisor's own.
    #[error("refusing to take a lock as uid {SUPERVISOR_UID}: the supervisor treats every lock file owned by uid {SUPERVISOR_UID} as its own and would remove it; run updlock as another user")]
    SupervisorUid,
    /// The kernel refused an operation on the lock path.
    #[error("{path}: {}", os_reason(.op, *.errno))]
    Os {
        /// The file or directory concerned.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// What the kernel said.
        errno: Errno,
    },
}

/// The step whose failure is reported against the lock directory.
const CREATE: &str = "create a lock file";

fn os_reason(op: &str, errno: Errno) -> String {
    match errno {
        Errno::EACCES | Errno::EPERM => format!(
            "{op}: permission denied (a service's lock directory is root-owned 0755 until the supervisor has locked it once: run as root, or choose a writable directory with --lock-dir)"
        ),
        Errno::EROFS => format!("{op}: read-only file system"),
        // The directory itself was opened, so ENOENT on a create means it
        // takes no new names: removed meanwhile, or a pseudo file system.
        Errno::ENOENT if op == CREATE => format!(
            "{op}: the directory takes no new files (it was removed, or it is on a file system like /proc; choose another with --lock-dir)"
        ),
        Errno::ENOSPC | Errno::EDQUOT => format!("{op}: no space left on the file system"),
        other => format!("{op}: {}", other.desc()),
    }
}

impl LockError {
    /// The exit code this error leads to.
    pub fn exit(&self) -> Exit {
        match self {
            LockError::Held { .. } => Exit::Held,
            LockError::Interrupted { .. } => Exit::Interrupted,
            LockError::Dir(DirError::Os {
                errno: Errno::EACCES | Errno::EPERM,
                ..
            }) => Exit::Permission,
            LockError::Dir(DirError::Os { .. }) => Exit::OsError,
            LockError::Dir(_) | LockError::BadPath(_) => Exit::Unavailable,
            LockError::SupervisorUid => Exit::Permission,
            LockError::Os { errno, .. } => match errno {
                Errno::EACCES | Errno::EPERM => Exit::Permission,
                _ => Exit::OsError,
            },
        }
    }
}

fn os<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(Errno) -> LockError + 'a {
    move |errno| LockError::Os {
        path: path.to_path_buf(),
        op,
        errno,
    }
}

fn own(raw: RawFd) -> File {
    // SAFETY: `raw` was just returned by openat and is owned by nobody else.
    File::from(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Device and inode: what "the same file" means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl From<&FileStat> for FileId {
    // dev_t and ino_t are not u64 on every target updlock is built for.
    #[allow(clippy::unnecessary_cast)]
    fn from(st: &FileStat) -> Self {
        FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// A lock file to take: its directory, opened without following symlinks,
/// and its name in it.
#[derive(Debug)]
pub struct Target {
    dir: OwnedFd,
    dir_path: PathBuf,
    dir_id: FileId,
    name: OsString,
}

impl Target {
    /// Opens the directory of `path`. Fails if it is missing, is reached
    /// through a symlink, or `path` does not end in a file name.
    pub fn open(path: &Path) -> Result<Target, LockError> {
        let (dir_path, name) =
            nofollow::split_file(path).ok_or_else(|| LockError::BadPath(path.to_path_buf()))?;
        let dir = nofollow::open_dir(&dir_path)?;
        let st = fstat(dir.as_raw_fd()).map_err(os(&dir_path, "stat"))?;
        Ok(Target {
            dir_id: FileId::from(&st),
            dir,
            dir_path,
            name: name.to_os_string(),
        })
    }

    /// The lock file's path as given.
    pub fn path(&self) -> PathBuf {
        self.dir_path.join(&self.name)
    }

    /// The directory as given.
    pub fn dir_path(&self) -> &Path {
        &self.dir_path
    }

    /// The file name within the directory.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// Identity of the lock: the same name in the same directory is the same
    /// lock, whatever path reached it (`/tmp/balena` and `/tmp/resin` are
    /// one directory in a container, SPEC §1).
    pub fn key(&self) -> (FileId, OsString) {
        (self.dir_id, self.name.clone())
    }

    fn fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    /// What the name points at now, without following a symlink.
    fn stat_name(&self) -> Result<Option<FileStat>, LockError> {
        match fstatat(
            self.fd(),
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(os(&self.path(), "stat")(e)),
        }
    }

    fn names(&self, id: FileId) -> Result<bool, LockError> {
        Ok(self.stat_name()?.map(|st| FileId::from(&st)) == Some(id))
    }
}

/// What a look at a lock path found.
#[derive(Debug)]
pub enum Observed {
    /// Nothing is there.
    Free,
    /// Something is there.
    Present {
        /// What kind of thing, if it is not a regular file.
        foreign: Option<Foreign>,
        /// Its owner.
        uid: u32,
        /// Its identity, to match against `/proc/locks` or a later look.
        id: FileId,
        /// Its tag, if it is a regular file updlock could read and the tag parses.
        tag: Option<Tag>,
        /// The open, read-only file (regular files only).
        file: Option<File>,
    },
}

/// Looks at a lock path without changing anything: never takes a flock,
/// opens read-only (a read-only close wakes no waiter).
pub fn observe(target: &Target) -> Result<Observed, LockError> {
    for _ in 0..MAX_ROUNDS {
        let Some(st) = target.stat_name()? else {
            return Ok(Observed::Free);
        };
        let present = |foreign, tag, file| Observed::Present {
            foreign,
            uid: st.st_uid,
            id: FileId::from(&st),
            tag,
            file,
        };
        let kind = file_type(&st);
        if kind != SFlag::S_IFREG {
            let foreign = match kind {
                SFlag::S_IFDIR => Foreign::Directory,
                SFlag::S_IFLNK => Foreign::Symlink,
                _ => Foreign::Special,
            };
            return Ok(present(Some(foreign), None, None));
        }
        // O_NONBLOCK: if the name was swapped for a FIFO since the stat, the
        // open must not hang; the identity check below then sends us round again.
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let mut file = match openat(target.fd(), target.name.as_os_str(), flags, Mode::empty()) {
            Ok(raw) => own(raw),
            Err(Errno::ENOENT) => continue,
            Err(Errno::EACCES) | Err(Errno::EPERM) => {
                return Ok(present(Some(Foreign::Unreadable), None, None))
            }
            Err(Errno::ELOOP) => continue,
            Err(e) => return Err(os(&target.path(), "open")(e)),
        };
        let fst = fstat(file.as_raw_fd()).map_err(os(&target.path(), "stat"))?;
        if FileId::from(&fst) != FileId::from(&st) {
            continue;
        }
        let mut head = Vec::with_capacity(tag::MAX_LEN);
        (&mut file)
            .take(tag::MAX_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| os(&target.path(), "read")(io_errno(&e)))?;
        let tag = Tag::parse(&head);
        return Ok(present(None, tag, Some(file)));
    }
    Ok(Observed::Present {
        foreign: None,
        uid: 0,
        id: FileId { dev: 0, ino: 0 },
        tag: None,
        file: None,
    })
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(0))
}

/// Refuses to take locks as the supervisor's uid (SPEC §3).
pub fn check_uid() -> Result<(), LockError> {
    if nix::unistd::geteuid().as_raw() == SUPERVISOR_UID {
        return Err(LockError::SupervisorUid);
    }
    Ok(())
}

/// One lock file, held: its descriptor is open and flocked.
#[derive(Debug)]
pub struct LockFile {
    target: Target,
    file: Option<File>,
    id: FileId,
}

/// What release did with the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The path named our file; it is removed.
    Removed,
    /// The path was gone already (someone removed our file).
    AlreadyGone,
    /// The path names someone else's file (an override): left as it is.
    Replaced,
}

/// Whether a held lock is still ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The path names our flocked inode.
    Ours,
    /// The path is gone.
    Removed,
    /// The path names another file.
    Replaced,
}

impl LockFile {
    /// Takes the lock at `target` once, without waiting.
    pub fn take(target: Target) -> Result<LockFile, LockError> {
        sweep_temporaries(&target);
        for _ in 0..MAX_ROUNDS {
            if let Some((file, id)) = publish(&target)? {
                log::debug!("created {}", target.path().display());
                return Ok(LockFile {
                    target,
                    file: Some(file),
                    id,
                });
            }
            match observe(&target)? {
                Observed::Free => continue,
                // A file of uid 65534 is the supervisor's, readable or not.
                Observed::Present {
                    uid,
                    foreign: None | Some(Foreign::Unreadable),
                    ..
                } if uid == SUPERVISOR_UID => return Err(held(&target, Holder::Supervisor)),
                Observed::Present {
                    foreign: Some(kind),
                    ..
                } => return Err(held(&target, Holder::Foreign(kind))),
                Observed::Present { tag: None, .. } => {
                    return Err(held(&target, Holder::Foreign(Foreign::File)))
                }
                Observed::Present {
                    tag: Some(tag),
                    file: Some(file),
                    id,
                    ..
                } => {
                    if let Some((file, id)) = retake(&target, file, id, &tag)? {
                        return Ok(LockFile {
                            target,
                            file: Some(file),
                            id,
                        });
                    }
                }
                Observed::Present { file: None, .. } => continue,
            }
        }
        Err(held(&target, Holder::Contended))
    }

    /// The lock file's path.
    pub fn path(&self) -> PathBuf {
        self.target.path()
    }

    /// The lock's directory and name.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Checks that the path still names our inode (SPEC §4: the supervisor's
    /// override unlinks our file and creates its own in its place).
    pub fn ownership(&self) -> Result<Ownership, LockError> {
        Ok(match self.target.stat_name()? {
            None => Ownership::Removed,
            Some(st) if FileId::from(&st) == self.id => Ownership::Ours,
            Some(_) => Ownership::Replaced,
        })
    }

    /// Removes the file if the path still names it, then drops the flock.
    pub fn release(mut self) -> Result<Released, LockError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<Released, LockError> {
        let Some(file) = self.file.take() else {
            return Ok(Released::AlreadyGone);
        };
        let path = self.target.path();
        let result = match self.ownership() {
            Ok(Ownership::Ours) => {
                match unlinkat(
                    Some(self.target.fd()),
                    self.target.name.as_os_str(),
                    UnlinkatFlags::NoRemoveDir,
                ) {
                    Ok(()) => {
                        crate::section::test_pause("unlinked");
                        Ok(Released::Removed)
                    }
                    Err(Errno::ENOENT) => Ok(Released::AlreadyGone),
                    Err(e) => Err(os(&path, "remove")(e)),
                }
            }
            Ok(Ownership::Removed) => Ok(Released::AlreadyGone),
            Ok(Ownership::Replaced) => Ok(Released::Replaced),
            Err(e) => Err(e),
        };
        // The flock goes only now, after the name is gone: no one can see our
        // file at the path without its flock.
        drop(file);
        match &result {
            Ok(Released::Removed) => log::debug!("removed {}", path.display()),
            Ok(Released::AlreadyGone) => {
                log::warn!("{}: already removed by someone else", path.display())
            }
            Ok(Released::Replaced) => log::warn!(
                "{}: now names another file (an override?): left in place",
                path.display()
            ),
            Err(e) => log::error!("{e}"),
        }
        result
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Reached on early returns and on panic unwinding: the lock must not
        // outlive its holder's intent. Errors are logged by release_inner.
        let _ = self.release_inner();
    }
}

/// What stood in the way of a take, as it was right after the attempt:
/// enough to tell, when the directory changes, whether it still does.
///
/// Waiters compare against it instead of retrying on every event, because
/// much of what a waiter sees is its own doing or other waiters' (their
/// temporaries, a set rolled back); retrying on those would make waiters
/// wake each other, and themselves, forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    path: PathBuf,
    /// The file in the way, and whether it is updlock's (whose holder's
    /// death shows only as its flock going).
    seen: Option<(FileId, bool)>,
}

impl Blocker {
    /// Looks at `path` now (read-only, waking no one).
    pub fn at(path: &Path) -> Result<Blocker, LockError> {
        Ok(Blocker {
            path: path.to_path_buf(),
            seen: observed_blocker(path)?,
        })
    }

    /// The lock file that was in the way.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the same file is still in the way: not removed or replaced,
    /// and, if it is updlock's, still flocked. Without `/proc/locks` a dead
    /// updlock holder cannot be seen; the file then counts as still there
    /// until it is removed or the wait runs out (its one last look re-takes it).
    pub fn still_there(&self) -> Result<bool, LockError> {
        let Some((id, tagged)) = self.seen else {
            return Ok(false);
        };
        Ok(match observed_blocker(&self.path)? {
            Some((now, _)) if now == id => !tagged || flocked(id) != Some(false),
            _ => false,
        })
    }
}

fn observed_blocker(path: &Path) -> Result<Option<(FileId, bool)>, LockError> {
    let target = Target::open(path)?;
    Ok(match observe(&target)? {
        Observed::Free => None,
        Observed::Present { id, tag, uid, .. } => {
            Some((id, tag.is_some() && uid != SUPERVISOR_UID))
        }
    })
}

/// Whether a name is one of updlock's temporaries.
pub fn is_temporary(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(TEMP_PREFIX.as_bytes()) && b.ends_with(TEMP_SUFFIX.as_bytes())
}

/// Whether the file `id` is flocked, from `/proc/locks`; `None` if that
/// cannot be read. Never takes a flock itself: even a moment's probe could
/// make a re-taking updlock or the host's `flock -nx` check see it held.
pub fn flocked(id: FileId) -> Option<bool> {
    let mut f = File::open("/proc/locks").ok()?;
    // One read() is one consistent snapshot: across several reads the kernel
    // may skip entries when other locks come and go in between.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n < buf.len() {
            buf.truncate(n);
            break;
        }
        buf = vec![0u8; buf.len() * 4];
        f = File::open("/proc/locks").ok()?;
    }
    Some(proc_locks_lists(&String::from_utf8_lossy(&buf), id))
}

/// Whether `/proc/locks` text lists a granted flock on the file `id`.
fn proc_locks_lists(proc_locks: &str, id: FileId) -> bool {
    let major = nix::sys::stat::major(id.dev);
    let minor = nix::sys::stat::minor(id.dev);
    proc_locks.lines().any(|line| {
        let mut f = line.split_whitespace();
        let _number = f.next();
        // "->" in this place marks a waiter, not a holder.
        if f.next() != Some("FLOCK") {
            return false;
        }
        let Some(dev_ino) = f.nth(3) else {
            return false;
        };
        let mut parts = dev_ino.split(':');
        let (Some(ma), Some(mi), Some(ino)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        u64::from_str_radix(ma, 16) == Ok(major)
            && u64::from_str_radix(mi, 16) == Ok(minor)
            && ino.parse::<u64>() == Ok(id.ino)
    })
}

fn held(target: &Target, holder: Holder) -> LockError {
    LockError::Held {
        path: target.path(),
        holder,
    }
}

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

fn temp_name() -> OsString {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    OsString::from(format!(
        "{TEMP_PREFIX}{}-{n}{TEMP_SUFFIX}",
        std::process::id()
    ))
}

/// Creates a tagged, flocked temporary and links it to the lock name.
/// `Ok(None)`: the name exists already.
fn publish(target: &Target) -> Result<Option<(File, FileId)>, LockError> {
    let dir = target.fd();
    let flags = OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_RDWR
        | OFlag::O_NOFOLLOW
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let (temp, mut file) = loop {
        let temp = temp_name();
        match openat(
            dir,
            temp.as_os_str(),
            flags,
            Mode::from_bits_truncate(LOCK_MODE),
        ) {
            Ok(raw) => break (temp, own(raw)),
            // A temporary of an earlier process with our pid: pick another name.
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(os(target.dir_path(), CREATE)(e)),
        }
    };
    let outcome = (|| {
        flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock)
            .map_err(os(target.dir_path(), "flock"))?;
        file.write_all(Tag::for_this_process().render().as_bytes())
            .map_err(|e| os(target.dir_path(), "write the lock tag")(io_errno(&e)))?;
        let st = fstat(file.as_raw_fd()).map_err(os(target.dir_path(), "stat"))?;
        crate::section::test_pause("publish");
        match linkat(
            Some(dir),
            temp.as_os_str(),
            Some(dir),
            target.name.as_os_str(),
            LinkatFlags::NoSymlinkFollow,
        ) {
            Ok(()) => Ok(Some(FileId::from(&st))),
            Err(Errno::EEXIST) => Ok(None),
            Err(e) => Err(os(&target.path(), "link the lock file")(e)),
        }
    })();
    // The temporary name never outlives the attempt.
    let _ = unlinkat(Some(dir), temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    Ok(outcome?.map(|id| (file, id)))
}

/// Re-takes a stale updlock lock in place. `Ok(None)`: the path changed;
/// look again.
///
/// The flock goes on a descriptor open for writing whenever the file lets
/// us write it: closing one is an `IN_CLOSE_WRITE` in the directory, so if
/// we die holding the flock, waiters wake up. A flock held through a
/// read-only descriptor would end silently (tests/model found a waiter
/// asleep for good behind one).
fn retake(
    target: &Target,
    reader: File,
    id: FileId,
    tag: &Tag,
) -> Result<Option<(File, FileId)>, LockError> {
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let holder = match openat(target.fd(), target.name.as_os_str(), flags, Mode::empty()) {
        Ok(raw) => {
            let writer = own(raw);
            let wst = fstat(writer.as_raw_fd()).map_err(os(&target.path(), "stat"))?;
            if FileId::from(&wst) != id {
                return Ok(None);
            }
            drop(reader);
            writer
        }
        // Not ours to write (another user's file, a read-only mount): the
        // reader will do, with the silent end above.
        Err(e @ (Errno::EACCES | Errno::EPERM | Errno::EROFS)) => {
            log::debug!(
                "{}: cannot reopen the stale lock for writing ({}); holding it read-only",
                target.path().display(),
                e.desc()
            );
            reader
        }
        // The name went or changed since we looked (an override unlinks it).
        Err(_) => return Ok(None),
    };
    match flock(holder.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
        Ok(()) => {}
        Err(Errno::EWOULDBLOCK) => return Err(held(target, Holder::Updlock(tag.clone()))),
        Err(e) => return Err(os(&target.path(), "flock")(e)),
    }
    // Holding the flock, the file cannot be re-taken by anyone else; confirm
    // the path still names it, else we locked an inode that was replaced.
    if !target.names(id)? {
        return Ok(None);
    }
    // Re-tag it for `status`; a read-only holder cannot, and need not.
    let text = Tag::for_this_process().render();
    if holder.set_len(0).is_ok() {
        let _ = holder.write_all_at(text.as_bytes(), 0);
    }
    log::info!(
        "{}: re-took a stale lock left by updlock pid {} (since {})",
        target.path().display(),
        tag.pid,
        tag.since
    );
    Ok(Some((holder, id)))
}

/// Removes temporaries left by an updlock that died mid-take: tagged (so
/// they are ours) or empty and a minute old ([`abandoned`]), and not
/// flocked (so their creator is gone).
fn sweep_temporaries(target: &Target) {
    let Ok(mut dir) = nix::dir::Dir::openat(
        target.fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let names: Vec<OsString> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| is_temporary(n))
        .collect();
    for name in names {
        // Open for writing where we may, like every descriptor a flock goes
        // on (see retake): if we die holding this one, waiters hear of it.
        let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let open = |mode| openat(target.fd(), name.as_os_str(), flags | mode, Mode::empty());
        let raw = match open(OFlag::O_RDWR) {
            Err(Errno::EACCES | Errno::EPERM | Errno::EROFS) => open(OFlag::O_RDONLY),
            other => other,
        };
        let Ok(raw) = raw else {
            continue;
        };
        let mut file = own(raw);
        let Ok(st) = fstat(file.as_raw_fd()) else {
            continue;
        };
        if file_type(&st) != SFlag::S_IFREG {
            continue;
        }
        // The creator flocks before it writes the tag: a tag without a flock
        // means the creator is dead. An empty one is a take between its
        // create and its flock, a few syscalls long; or, once it is old, a
        // take killed in that window. Anything else is not ours.
        let mut head = Vec::new();
        if (&mut file)
            .take(tag::MAX_LEN as u64)
            .read_to_end(&mut head)
            .is_err()
        {
            continue;
        }
        let ours = Tag::parse(&head).is_some() || (head.is_empty() && abandoned(&st));
        if !ours {
            continue;
        }
        if flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock).is_err() {
            continue;
        }
        let still = fstatat(target.fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map(|s| FileId::from(&s) == FileId::from(&st))
            .unwrap_or(false);
        if still
            && unlinkat(
                Some(target.fd()),
                name.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            )
            .is_ok()
        {
            log::info!(
                "{}: removed a temporary left by a crashed updlock",
                target.dir_path.join(&name).display()
            );
        }
    }
}

/// How old an empty temporary must be to count as abandoned. A live take
/// leaves its temporary empty only between two syscalls (create, flock);
/// a minute is far beyond any scheduling delay, and a leftover costs
/// nothing meanwhile: it is not at a lock name.
const ABANDONED_AFTER_SECS: i64 = 60;

/// Whether an empty temporary was last modified long enough ago that no
/// live take can own it. A clock set back (a Raspberry Pi has no RTC and
/// jumps at its first NTP sync) only makes it look younger. One set
/// forward could make a live take's look old; the sweep then flocks or
/// unlinks it first, and that take fails with an error: never a wrong lock.
fn abandoned(st: &FileStat) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    // time_t is not i64 on every target updlock is built for.
    #[allow(clippy::unnecessary_cast)]
    let mtime = st.st_mtime as i64;
    now.saturating_sub(mtime) >= ABANDONED_AFTER_SECS
}

/// A set of lock files taken together: all of them or none.
#[derive(Debug)]
pub struct LockSet {
    files: Vec<LockFile>,
}

impl LockSet {
    /// Opens the targets for `paths`, dropping duplicates (the same name in
    /// the same directory, however reached) and ordering them the same way in
    /// every process, so two updlocks never each hold half of a set.
    pub fn targets(paths: &[PathBuf]) -> Result<Vec<Target>, LockError> {
        let mut targets: Vec<Target> = Vec::new();
        for p in paths {
            let t = Target::open(p)?;
            if targets.iter().all(|o| o.key() != t.key()) {
                targets.push(t);
            }
        }
        // updates.lock first in each directory: it is the one both the
        // supervisor and the host OS check.
        targets.sort_by(|a, b| {
            let rank = |t: &Target| (t.dir_id, t.name != "updates.lock", t.name.clone());
            rank(a).cmp(&rank(b))
        });
        Ok(targets)
    }

    /// Takes every target once, without waiting; on any failure releases
    /// those already taken, in reverse order.
    pub fn take(targets: Vec<Target>) -> Result<LockSet, LockError> {
        check_uid()?;
        let mut files: Vec<LockFile> = Vec::with_capacity(targets.len());
        for t in targets {
            match LockFile::take(t) {
                Ok(f) => files.push(f),
                Err(e) => {
                    while let Some(f) = files.pop() {
                        let _ = f.release();
                    }
                    return Err(e);
                }
            }
        }
        Ok(LockSet { files })
    }

    /// Takes the set, waiting as `wait` says for holders to go away: the
    /// directories are watched with inotify and every change to a lock name
    /// (removed, renamed, or closed by a writer, which is how a dead holder
    /// shows) prompts another attempt. No polling.
    pub fn take_waiting(
        paths: &[PathBuf],
        wait: Wait,
        events: &mut Events,
    ) -> Result<LockSet, LockError> {
        check_uid()?;
        crate::section::test_pause("take");
        let deadline = match wait {
            Wait::For(d) => Some(Instant::now() + d),
            Wait::Forever => None,
        };
        let mut announced = false;
        loop {
            let targets = Self::targets(paths)?;
            if !wait.is_zero() {
                // Watch before looking, so a release between our look and our
                // sleep is not missed.
                events.watch(&targets)?;
            }
            match Self::take(targets) {
                Ok(set) => return Ok(set),
                Err(LockError::Held { path, holder }) if !wait.is_zero() => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(LockError::Held { path, holder });
                    }
                    if !announced {
                        log::info!("{}: {holder}; waiting", path.display());
                        announced = true;
                    }
                    let blocker = Blocker::at(&path)?;
                    loop {
                        match events.next(deadline) {
                            Ok(Event::Signal(sig)) => {
                                return Err(LockError::Interrupted {
                                    path,
                                    signal: sig.as_str(),
                                })
                            }
                            Ok(Event::Timeout) => {
                                // One last look: the holder may have gone just now.
                                return Self::take(Self::targets(paths)?);
                            }
                            Ok(_) if blocker.still_there()? => {}
                            Ok(_) => break,
                            Err(e) => return Err(os(&path, "wait")(e)),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The held files, in the order they were taken.
    pub fn files(&self) -> &[LockFile] {
        &self.files
    }

    /// The first file that is no longer ours, if any.
    pub fn lost(&self) -> Result<Option<(PathBuf, Ownership)>, LockError> {
        for f in &self.files {
            match f.ownership()? {
                Ownership::Ours => {}
                other => return Ok(Some((f.path(), other))),
            }
        }
        Ok(None)
    }

    /// Releases every file in reverse order; returns the first error, after
    /// trying them all.
    pub fn release(mut self) -> Result<(), LockError> {
        let mut first = None;
        while let Some(f) = self.files.pop() {
            if let Err(e) = f.release() {
                first.get_or_insert(e);
            }
        }
        crate::section::test_pause("released");
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
