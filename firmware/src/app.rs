//! What each subcommand does, and how every outcome becomes one line on
//! stderr and one documented exit code.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use updlock::duration::Wait;
use updlock::events::Events;
use updlock::exit::Exit;
use updlock::location::{self, Env, LocationError};
use updlock::lock::{LockError, LockSet};
use updlock::notify::notify;
use updlock::section::{self, HoldEnd, SpawnError};
use updlock::status;

use crate::cli::{self, Command, Config, UsageError};

/// Everything that ends updlock early.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("cannot set up signal handling: {0}")]
    Signals(nix::errno::Errno),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => Exit::Usage.code(),
            Failure::Location(e) => e.exit().code(),
            Failure::Lock(e) => e.exit().code(),
            Failure::Spawn(e) => e.code() as u8,
            Failure::Signals(_) => Exit::OsError.code(),
        }
    }
}

/// Runs the command line of this process; returns the exit status.
pub fn main() -> u8 {
    // Signals first: a SIGTERM from now on is queued for us, not fatal.
    let events = Events::new();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let config = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => return fail(&Failure::Usage(e)),
    };
    init_logging(config.verbosity);
    std::panic::set_hook(Box::new(|info| {
        // One line, no backtrace dump; unwinding then releases the lock.
        eprintln!("updlock: internal error: {info}");
    }));
    let result = std::panic::catch_unwind(move || {
        let mut events = events.map_err(Failure::Signals)?;
        execute(config, &mut events)
    });
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => fail(&e),
        Err(_) => Exit::Internal.code(),
    }
}

fn fail(e: &Failure) -> u8 {
    eprintln!("updlock: {e}");
    e.code()
}

fn init_logging(verbosity: i8) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if verbosity != 0 {
        b.filter_level(match verbosity {
            i8::MIN..=-1 => log::LevelFilter::Error,
            1 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        });
    }
    let pid = std::process::id();
    b.format(move |buf, record| {
        let level = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        writeln!(buf, "updlock[{pid}]: {level}{}", record.args())
    });
    b.target(env_logger::Target::Stderr);
    let _ = b.try_init();
}

fn execute(config: Config, events: &mut Events) -> Result<u8, Failure> {
    match config.command {
        Command::Help(topic) => {
            print!("{}", cli::help(topic.as_deref()));
            return Ok(Exit::Ok.code());
        }
        Command::Version => {
            println!("updlock {}", env!("CARGO_PKG_VERSION"));
            return Ok(Exit::Ok.code());
        }
        _ => {}
    }
    let paths = location::resolve(&config.location, &Env::from_process())?;
    match config.command {
        Command::Status { json } => status_cmd(&paths, json),
        Command::Hold { duration } => hold_cmd(&paths, config.wait, duration, events),
        Command::Run {
            grace,
            program,
            args,
        } => run_cmd(&paths, config.wait, grace, &program, &args, events),
        Command::Help(_) | Command::Version => Ok(Exit::Ok.code()),
    }
}

fn status_cmd(paths: &[PathBuf], json: bool) -> Result<u8, Failure> {
    let entries = status::inspect(paths)?;
    let text = if json {
        status::render_json(&entries)
    } else {
        status::render_text(&entries)
    };
    print!("{text}");
    Ok(if entries.iter().any(status::Entry::held) {
        Exit::Held.code()
    } else {
        Exit::Ok.code()
    })
}

fn take(paths: &[PathBuf], wait: Wait, events: &mut Events) -> Result<LockSet, Failure> {
    let set = LockSet::take_waiting(paths, wait, events)?;
    // Watch what we hold, to see an override the moment it happens.
    events.watch(set.files().iter().map(|f| f.target()))?;
    let names: Vec<String> = set
        .files()
        .iter()
        .map(|f| f.path().display().to_string())
        .collect();
    log::info!("lock taken: {}", names.join(", "));
    Ok(set)
}

fn release(set: LockSet) -> Result<(), Failure> {
    set.release()?;
    log::info!("lock released");
    Ok(())
}

fn hold_cmd(
    paths: &[PathBuf],
    wait: Wait,
    duration: Option<Duration>,
    events: &mut Events,
) -> Result<u8, Failure> {
    let set = take(paths, wait, events)?;
    let until = duration.map(|d| Instant::now() + d);
    let mut out = std::io::stdout().lock();
    // A closed stdout must not cost the lock: the line is a courtesy.
    let _ = writeln!(out, "held").and_then(|()| out.flush());
    drop(out);
    notify("READY=1");
    let end = section::hold(&set, events, until);
    notify("STOPPING=1");
    let end = end?;
    let code = match &end {
        HoldEnd::Expired => Exit::Ok,
        HoldEnd::Stopped(sig) => {
            log::info!("{}: releasing", sig.as_str());
            Exit::Ok
        }
        HoldEnd::Overridden(path, _) => {
            log::warn!(
                "{}: the lock was taken from us (the supervisor's override?): releasing",
                path.display()
            );
            Exit::Interrupted
        }
    };
    release(set)?;
    Ok(code.code())
}

fn run_cmd(
    paths: &[PathBuf],
    wait: Wait,
    grace: Duration,
    program: &std::ffi::OsStr,
    args: &[OsString],
    events: &mut Events,
) -> Result<u8, Failure> {
    let set = take(paths, wait, events)?;
    let outcome = section::run(&set, events, program, args, grace);
    // Release whatever happened to the program; report its failure after.
    let released = release(set);
    let end = outcome??;
    released?;
    if end.killed {
        log::warn!("the program was killed after the grace period");
    }
    Ok(u8::try_from(end.code).unwrap_or(Exit::Internal.code()))
}
