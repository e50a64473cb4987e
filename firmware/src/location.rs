//! Where the lock files are: inside a service container, on the host OS, or
//! files named explicitly (SPEC §1).
//!
//! - In a container the supervisor bind-mounts one host directory at both
//!   `/tmp/balena` and `/tmp/resin`; the pair to lock is `updates.lock` and
//!   `resin-updates.lock` in that one directory.
//! - On the host, a lock blocks nothing unless it is inside a service
//!   directory `<services root>/<appId>/<service>/`; a lock in any one service
//!   of an app holds back the whole app. Helios keeps one directory per app,
//!   `<helios root>/<app uuid>/`, with `updates.lock` only.
//!
//! Discovery never follows symlinks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::exit::Exit;
use crate::nofollow::{self, DirError};

/// The two names the supervisor checks in a lock directory, in the order
/// they are taken.
pub const LOCK_NAMES: [&str; 2] = ["updates.lock", "resin-updates.lock"];

/// The container directory since supervisor 7.22.0.
pub const BALENA_DIR: &str = "/tmp/balena";
/// The legacy container directory (the same host directory, SPEC §1).
pub const RESIN_DIR: &str = "/tmp/resin";
/// The supervisor's per-service lock directories, seen from the host.
pub const SERVICES_ROOT: &str = "/tmp/balena-supervisor/services";
/// Helios's per-app lock directories, seen from the host.
pub const HELIOS_ROOT: &str = "/run/helios/update-locks";

/// How the user chose the lock files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Inside a service container: one lock directory, both names.
    Container {
        /// `--lock-dir`, if given.
        dir: Option<PathBuf>,
    },
    /// On the host OS: the service directories.
    Host(HostLayout),
    /// `--lock FILE`, as given.
    Files(Vec<PathBuf>),
}

/// The host-side layout and which part of it to lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// `--services-root`.
    pub services_root: PathBuf,
    /// `--helios-root`.
    pub helios_root: PathBuf,
    /// `--app-id`: the numeric app id (supervisor) or app uuid (Helios).
    pub app_id: Option<String>,
    /// `--service`: one service of the app.
    pub service: Option<String>,
}

impl Default for HostLayout {
    fn default() -> Self {
        HostLayout {
            services_root: PathBuf::from(SERVICES_ROOT),
            helios_root: PathBuf::from(HELIOS_ROOT),
            app_id: None,
            service: None,
        }
    }
}

/// The environment variables that choose a lock directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `UPDLOCK_LOCK_DIR`.
    pub lock_dir: Option<OsString>,
    /// `BALENA_APP_LOCK_PATH`, which the supervisor sets in every service.
    pub app_lock_path: Option<OsString>,
}

impl Env {
    /// Reads the process environment; empty values count as unset.
    pub fn from_process() -> Env {
        let get = |k| std::env::var_os(k).filter(|v| !v.is_empty());
        Env {
            lock_dir: get("UPDLOCK_LOCK_DIR"),
            app_lock_path: get("BALENA_APP_LOCK_PATH"),
        }
    }
}

/// Why no lock files could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// No lock directory was given and neither container default exists.
    #[error("no lock directory: neither {BALENA_DIR} nor {RESIN_DIR} exists, so this does not look like a balena service container; choose one with --lock-dir DIR or UPDLOCK_LOCK_DIR, or use --host on the host OS")]
    NotBalena,
    /// `--host`, but neither host layout is there.
    #[error("no service lock directories: neither {services} nor {helios} exists (is the supervisor running? choose with --services-root)")]
    NoHostLayout {
        /// The supervisor's root that was tried.
        services: PathBuf,
        /// Helios's root that was tried.
        helios: PathBuf,
    },
    /// `--host`, but no service directory matches.
    #[error("{root}: no service directory{filter}")]
    NoServices {
        /// The root that was searched.
        root: PathBuf,
        /// The `--app-id`/`--service` filter, for the message.
        filter: String,
    },
    /// A directory could not be opened or read.
    #[error(transparent)]
    Dir(#[from] DirError),
}

impl LocationError {
    /// The exit code this error leads to.
    pub fn exit(&self) -> Exit {
        match self {
            LocationError::Dir(DirError::Os {
                errno: nix::errno::Errno::EACCES | nix::errno::Errno::EPERM,
                ..
            }) => Exit::Permission,
            LocationError::Dir(DirError::Os { .. }) => Exit::OsError,
            _ => Exit::Unavailable,
        }
    }
}

/// The lock files `location` stands for.
pub fn resolve(location: &Location, env: &Env) -> Result<Vec<PathBuf>, LocationError> {
    match location {
        Location::Files(files) => Ok(files.clone()),
        Location::Container { dir } => {
            let dir = container_dir(dir.as_deref(), env)?;
            Ok(LOCK_NAMES.iter().map(|n| dir.join(n)).collect())
        }
        Location::Host(layout) => host_files(layout),
    }
}

/// `--lock-dir`, else `UPDLOCK_LOCK_DIR`, else the directory of
/// `BALENA_APP_LOCK_PATH`, else `/tmp/balena` if present, else `/tmp/resin`.
fn container_dir(flag: Option<&Path>, env: &Env) -> Result<PathBuf, LocationError> {
    if let Some(d) = flag {
        return Ok(d.to_path_buf());
    }
    if let Some(d) = &env.lock_dir {
        return Ok(PathBuf::from(d));
    }
    if let Some(p) = &env.app_lock_path {
        if let Some((dir, _)) = nofollow::split_file(Path::new(p)) {
            return Ok(dir);
        }
    }
    for d in [BALENA_DIR, RESIN_DIR] {
        // lstat: a symlink here is chosen, and then refused with a clear
        // message, rather than silently skipped.
        if Path::new(d).symlink_metadata().is_ok() {
            return Ok(PathBuf::from(d));
        }
    }
    Err(LocationError::NotBalena)
}

fn host_files(layout: &HostLayout) -> Result<Vec<PathBuf>, LocationError> {
    let filter = match (&layout.app_id, &layout.service) {
        (None, None) => String::new(),
        (Some(a), None) => format!(" for app {a}"),
        (None, Some(s)) => format!(" for service {s}"),
        (Some(a), Some(s)) => format!(" for app {a}, service {s}"),
    };
    match subdirs(&layout.services_root)? {
        Some(apps) => {
            let mut files = Vec::new();
            for app in apps {
                if !matches_filter(&app, layout.app_id.as_deref()) {
                    continue;
                }
                for service in subdirs(&app)?.unwrap_or_default() {
                    if matches_filter(&service, layout.service.as_deref()) {
                        files.extend(LOCK_NAMES.iter().map(|n| service.join(n)));
                    }
                }
            }
            if files.is_empty() {
                return Err(LocationError::NoServices {
                    root: layout.services_root.clone(),
                    filter,
                });
            }
            Ok(files)
        }
        None => match subdirs(&layout.helios_root)? {
            Some(apps) => {
                // Helios has one directory per app and no per-service split.
                let files: Vec<PathBuf> = apps
                    .into_iter()
                    .filter(|a| matches_filter(a, layout.app_id.as_deref()))
                    .map(|a| a.join(LOCK_NAMES[0]))
                    .collect();
                if files.is_empty() || layout.service.is_some() {
                    return Err(LocationError::NoServices {
                        root: layout.helios_root.clone(),
                        filter,
                    });
                }
                Ok(files)
            }
            None => Err(LocationError::NoHostLayout {
                services: layout.services_root.clone(),
                helios: layout.helios_root.clone(),
            }),
        },
    }
}

fn matches_filter(dir: &Path, want: Option<&str>) -> bool {
    want.map_or(true, |w| dir.file_name().is_some_and(|n| n == w))
}

/// The real (non-symlink) subdirectories of `dir`, sorted; `None` if `dir`
/// does not exist.
fn subdirs(dir: &Path) -> Result<Option<Vec<PathBuf>>, LocationError> {
    match nofollow::open_dir(dir) {
        Ok(_) => {}
        Err(DirError::NotFound(p)) if p == dir => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let entries = std::fs::read_dir(dir).map_err(|e| DirError::Os {
        path: dir.to_path_buf(),
        errno: nix::errno::Errno::from_i32(e.raw_os_error().unwrap_or(0)),
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        // DirEntry::file_type does not follow symlinks.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn env() -> Env {
        Env::default()
    }

    #[test]
    fn explicit_dir_wins() {
        let files = resolve(
            &Location::Container {
                dir: Some(PathBuf::from("/x")),
            },
            &Env {
                lock_dir: Some("/y".into()),
                app_lock_path: Some("/z/updates.lock".into()),
            },
        )
        .unwrap();
        assert_eq!(
            files,
            [
                PathBuf::from("/x/updates.lock"),
                PathBuf::from("/x/resin-updates.lock")
            ]
        );
    }

    #[test]
    fn environment_order() {
        let loc = Location::Container { dir: None };
        let both = Env {
            lock_dir: Some("/y".into()),
            app_lock_path: Some("/z/updates.lock".into()),
        };
        assert_eq!(
            resolve(&loc, &both).unwrap()[0],
            PathBuf::from("/y/updates.lock")
        );
        let app_only = Env {
            lock_dir: None,
            app_lock_path: Some("/z/updates.lock".into()),
        };
        assert_eq!(
            resolve(&loc, &app_only).unwrap()[1],
            PathBuf::from("/z/resin-updates.lock")
        );
    }

    fn service_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in ["services/12/main", "services/12/worker", "services/7/db"] {
            fs::create_dir_all(t.path().join(d)).unwrap();
        }
        // A symlinked service directory is not discovered.
        std::os::unix::fs::symlink(
            t.path().join("services/12/main"),
            t.path().join("services/12/evil"),
        )
        .unwrap();
        t
    }

    fn host(t: &Path, app: Option<&str>, service: Option<&str>) -> Location {
        Location::Host(HostLayout {
            services_root: t.join("services"),
            helios_root: t.join("helios"),
            app_id: app.map(String::from),
            service: service.map(String::from),
        })
    }

    #[test]
    fn host_discovers_every_service_sorted() {
        let t = service_tree();
        let files = resolve(&host(t.path(), None, None), &env()).unwrap();
        let rel: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(t.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "services/12/main/updates.lock",
                "services/12/main/resin-updates.lock",
                "services/12/worker/updates.lock",
                "services/12/worker/resin-updates.lock",
                "services/7/db/updates.lock",
                "services/7/db/resin-updates.lock",
            ]
        );
    }

    #[test]
    fn host_filters() {
        let t = service_tree();
        let files = resolve(&host(t.path(), Some("12"), Some("worker")), &env()).unwrap();
        assert_eq!(files.len(), 2);
        assert!(files[0].ends_with("12/worker/updates.lock"));
        let err = resolve(&host(t.path(), Some("99"), None), &env()).unwrap_err();
        assert!(matches!(err, LocationError::NoServices { .. }));
        assert!(err.to_string().contains("for app 99"), "{err}");
    }

    #[test]
    fn helios_layout_when_services_root_is_absent() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("helios/5b2f")).unwrap();
        let files = resolve(&host(t.path(), None, None), &env()).unwrap();
        assert_eq!(files, [t.path().join("helios/5b2f/updates.lock")]);
    }

    #[test]
    fn neither_layout() {
        let t = tempfile::tempdir().unwrap();
        let err = resolve(&host(t.path(), None, None), &env()).unwrap_err();
        assert!(matches!(err, LocationError::NoHostLayout { .. }));
        assert_eq!(err.exit(), Exit::Unavailable);
    }

    #[test]
    fn symlinked_services_root_is_refused() {
        let t = service_tree();
        std::os::unix::fs::symlink(t.path().join("services"), t.path().join("link")).unwrap();
        let loc = Location::Host(HostLayout {
            services_root: t.path().join("link"),
            ..HostLayout::default()
        });
        assert!(matches!(
            resolve(&loc, &env()),
            Err(LocationError::Dir(DirError::Symlink(_)))
        ));
    }
}
