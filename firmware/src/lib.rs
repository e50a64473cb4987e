//! updlock: hold the balena update lock exactly while a critical section runs.
//!
//! The library behind the `updlock` command. A reader finds the lock
//! protocol in [`lock`], where the lock files are in [`location`], every wait
//! (signals, directory changes, deadlines) in [`events`], what happens while
//! the lock is held in [`section`], the actuator line in [`pin`] (Linux
//! backend in [`gpio`], board profiles in [`board`]), the input-driven lock of
//! `updlock watch` in [`watch`], and the exit codes in [`exit`].
//!
//! Caveats stated plainly:
//! - Drop guards release the lock on return, error and panic (the release
//!   build unwinds), and signals are handled; SIGKILL cannot be: the kernel
//!   drops our flock, the file stays as a *stale* lock (it still blocks
//!   updates), and the next updlock re-takes it.
//! - The lock file is removed only while its path still names our inode; a
//!   file the supervisor put in its place is never touched.
#![deny(missing_docs)]

pub mod board;
pub mod duration;
pub mod events;
pub mod exit;
pub mod gpio;
pub mod linespec;
pub mod location;
pub mod lock;
pub mod nofollow;
pub mod notify;
pub mod pin;
pub mod section;
pub mod settings;
pub mod status;
pub mod supervisor;
pub mod tag;
pub mod watch;
