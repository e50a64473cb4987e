//! Opening directories one component at a time, never through a symlink.
//!
//! A lock directory reached through a symlink could be swapped under us for
//! one where our lock blocks nothing (or where we would create files for an
//! attacker), so every component is opened with `O_NOFOLLOW` relative to the
//! previous one, and the result is an `O_PATH` descriptor that all later
//! `*at` calls use. Paths are never re-resolved by name after that.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::{fstatat, Mode, SFlag};

/// Why a directory could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    /// A component does not exist.
    #[error("{0}: no such directory")]
    NotFound(PathBuf),
    /// A component is a symlink; updlock does not follow symlinks on a lock path.
    #[error("{0}: is a symlink (updlock does not follow symlinks on a lock path; name the real directory)")]
    Symlink(PathBuf),
    /// A component exists but is not a directory.
    #[error("{0}: not a directory")]
    NotDir(PathBuf),
    /// The kernel refused for another reason.
    #[error("{path}: cannot open directory: {errno}")]
    Os {
        /// The component that failed.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
}

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens `path` as an `O_PATH` directory descriptor without following any
/// symlink in it. `..` is allowed (it is never a symlink).
pub fn open_dir(path: &Path) -> Result<OwnedFd, DirError> {
    let start: &OsStr = if path.is_absolute() {
        OsStr::new("/")
    } else {
        OsStr::new(".")
    };
    let mut fd = open_at(libc::AT_FDCWD, start, Path::new(start))?;
    let mut walked = PathBuf::from(start);
    for component in path.components() {
        let name = match component {
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(n) => n,
            Component::Prefix(_) => continue,
        };
        walked.push(name);
        fd = open_at(fd.as_raw_fd(), name, &walked)?;
    }
    Ok(fd)
}

fn open_at(dir: RawFd, name: &OsStr, shown: &Path) -> Result<OwnedFd, DirError> {
    match openat(dir, name, DIR_FLAGS, Mode::empty()) {
        // SAFETY: openat returned a fresh descriptor that nothing else owns.
        Ok(raw) => Ok(unsafe { OwnedFd::from_raw_fd(raw) }),
        Err(Errno::ENOENT) => Err(DirError::NotFound(shown.to_path_buf())),
        // O_NOFOLLOW|O_PATH on a symlink opens the link itself, and
        // O_DIRECTORY then fails with ENOTDIR: tell which of the two it was.
        Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => Err(if is_symlink(dir, name) {
            DirError::Symlink(shown.to_path_buf())
        } else {
            DirError::NotDir(shown.to_path_buf())
        }),
        Err(errno) => Err(DirError::Os {
            path: shown.to_path_buf(),
            errno,
        }),
    }
}

fn is_symlink(dir: RawFd, name: &OsStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
        .unwrap_or(false)
}

/// Splits a lock file path into its directory and its final name, refusing
/// names that are not a plain file name (`..`, `/`, empty).
pub fn split_file(path: &Path) -> Option<(PathBuf, &OsStr)> {
    let name = match path.components().next_back()? {
        Component::Normal(n) => n,
        _ => return None,
    };
    if name.as_bytes().is_empty() {
        return None;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn opens_plain_directories() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        assert!(open_dir(&t.path().join("a/b")).is_ok());
        assert!(open_dir(&t.path().join("a/b/..")).is_ok());
        assert!(open_dir(Path::new(".")).is_ok());
    }

    #[test]
    fn refuses_a_symlink_anywhere() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("real/inner")).unwrap();
        symlink(t.path().join("real"), t.path().join("link")).unwrap();
        assert_eq!(
            open_dir(&t.path().join("link/inner")).err(),
            Some(DirError::Symlink(t.path().join("link")))
        );
        assert_eq!(
            open_dir(&t.path().join("link")).err(),
            Some(DirError::Symlink(t.path().join("link")))
        );
    }

    #[test]
    fn names_what_is_missing_or_wrong() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("file"), b"").unwrap();
        assert_eq!(
            open_dir(&t.path().join("nope/x")).err(),
            Some(DirError::NotFound(t.path().join("nope")))
        );
        assert_eq!(
            open_dir(&t.path().join("file")).err(),
            Some(DirError::NotDir(t.path().join("file")))
        );
    }

    #[test]
    fn split() {
        let (d, n) = split_file(Path::new("/tmp/balena/updates.lock")).unwrap();
        assert_eq!(
            (d.as_path(), n),
            (Path::new("/tmp/balena"), OsStr::new("updates.lock"))
        );
        let (d, n) = split_file(Path::new("x.lock")).unwrap();
        assert_eq!((d.as_path(), n), (Path::new("."), OsStr::new("x.lock")));
        assert!(split_file(Path::new("/")).is_none());
        assert!(split_file(Path::new("a/..")).is_none());
    }
}
