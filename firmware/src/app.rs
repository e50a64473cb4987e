//! What each subcommand does, and how every outcome becomes one line on
//! stderr and one documented exit code.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use updlock::board::{self, BoardError};
use updlock::duration::Wait;
use updlock::events::{Companion, Events};
use updlock::exit::Exit;
use updlock::gpio::{self, GpioError, Output};
use updlock::linespec::{ChipRef, LineSpec};
use updlock::location::{self, Env, LocationError};
use updlock::lock::{self, LockError, LockSet};
use updlock::notify::{notify, Watchdog};
use updlock::pin::{Actuate, Actuator, NoActuator, PinError};
use updlock::section::{self, HoldEnd, SectionError};
use updlock::status::{self, SupervisorView};
use updlock::supervisor::{self, Api, ApiError, Call, Outcome, Setup};
use updlock::watch::{self, WatchError};

use crate::cli::{self, Command, Config, LineChoice, LineSource, SupervisorFlags, UsageError};

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
    Gpio(#[from] GpioError),
    #[error(transparent)]
    Board(#[from] BoardError),
    #[error("{line}: --safe {safe} is the active level of an {polarity} line: the safe level is {inactive} (drop --safe, or {hint})")]
    SafeConflict {
        line: String,
        safe: &'static str,
        polarity: &'static str,
        inactive: &'static str,
        hint: &'static str,
    },
    /// The line could not be driven; the message is already out.
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("cannot set up signal handling: {0}")]
    Signals(nix::errno::Errno),
}

impl From<SectionError> for Failure {
    fn from(e: SectionError) -> Self {
        match e {
            SectionError::Lock(e) => Failure::Lock(e),
            SectionError::Pin(e) => Failure::Pin(e),
        }
    }
}

impl From<WatchError> for Failure {
    fn from(e: WatchError) -> Self {
        match e {
            WatchError::Lock(e) => Failure::Lock(e),
            WatchError::Gpio(e) => Failure::Gpio(e),
        }
    }
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => Exit::Usage.code(),
            Failure::Location(e) => e.exit().code(),
            Failure::Lock(e) => e.exit().code(),
            Failure::Gpio(e) => e.exit().code(),
            Failure::Board(_) | Failure::SafeConflict { .. } => Exit::Unavailable.code(),
            Failure::Pin(_) | Failure::Signals(_) => Exit::OsError.code(),
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
    // Nothing the closure owns is looked at after a panic: only the exit
    // code is, so its state (a hook in `events`, say) cannot be seen broken.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut events = events.map_err(Failure::Signals)?;
        execute(config, &mut events)
    }));
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
    if let Command::Safe { line } = &config.command {
        // No lock is involved: this is the recovery path after a crash.
        return match line {
            Some(line) => safe_cmd(line),
            None => {
                log::info!(
                    "no actuator line (--gpio, --board with --pin, or UPDLOCK_GPIO): nothing to make safe"
                );
                Ok(Exit::Ok.code())
            }
        };
    }
    // A bad line is refused before any lock is looked for, and an actuator
    // line is requested in its safe state before the lock is taken: the
    // first thing a restart after a crash does is make the line safe.
    let actuator = match &config.command {
        Command::Run { line, .. } | Command::Hold { line, .. } => match line {
            Some(choice) => Some(open_actuator(choice)?),
            None => None,
        },
        _ => None,
    };
    let paths = location::resolve(&config.location, &Env::from_process())?;
    if matches!(
        config.command,
        Command::Run { .. } | Command::Hold { .. } | Command::Watch { .. }
    ) {
        events.set_watchdog(Watchdog::from_env());
    }
    // Set up (and any trouble with it said) before a lock is taken.
    let api = match &config.command {
        Command::Status { .. } => supervisor_api(&config.supervisor, false),
        Command::Run { kick: true, .. }
        | Command::Hold { kick: true, .. }
        | Command::Watch { kick: true, .. } => supervisor_api(&config.supervisor, true),
        _ => None,
    };
    match config.command {
        Command::Status { json } => status_cmd(&paths, json, api.as_ref()),
        Command::Hold { duration, .. } => {
            let (code, ours) = hold_cmd(&paths, config.wait, actuator, duration, events)?;
            Ok(after_release(code, ours, api.as_ref()))
        }
        Command::Run {
            grace,
            program,
            args,
            ..
        } => {
            let (code, ours) = run_cmd(
                &paths,
                config.wait,
                actuator,
                grace,
                &program,
                &args,
                events,
            )?;
            Ok(after_release(code, ours, api.as_ref()))
        }
        Command::Watch {
            input, debounce, ..
        } => watch_cmd(&paths, &input, debounce, events, api),
        Command::Help(_) | Command::Version | Command::Safe { .. } => Ok(Exit::Ok.code()),
    }
}

/// The line a choice names, and how to call it in messages.
fn resolve_line(choice: &LineChoice) -> Result<(LineSpec, String), Failure> {
    match &choice.source {
        LineSource::Spec(spec) => Ok((spec.clone(), spec.to_string())),
        LineSource::BoardPin { board, pin } => {
            let b = board::load(board)?;
            let (offset, name) = b.line(*pin)?;
            let shown = match name {
                Some(n) => format!("{} pin {pin} ({n})", b.id()),
                None => format!("{} pin {pin}", b.id()),
            };
            // The header chip by label, never by number; a board whose label
            // changed between kernels lists both.
            for label in b.chip_labels() {
                let spec = LineSpec::Chip {
                    chip: ChipRef::Label(label.clone()),
                    offset,
                };
                match gpio::find(&spec) {
                    Ok(_) => return Ok((spec, shown)),
                    Err(GpioError::NoChip { .. } | GpioError::NoChips { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(gpio::no_board_chip(&shown, b.chip_labels()).into())
        }
    }
}

fn check_safe(choice: &LineChoice, shown: &str) -> Result<(), Failure> {
    match choice.safe {
        Some(level) if level != choice.polarity.safe() => Err(Failure::SafeConflict {
            line: shown.to_string(),
            safe: level.as_str(),
            polarity: match choice.polarity {
                updlock::pin::Polarity::ActiveHigh => "active-high",
                updlock::pin::Polarity::ActiveLow => "active-low",
            },
            inactive: choice.polarity.safe().as_str(),
            hint: match choice.polarity {
                updlock::pin::Polarity::ActiveHigh => {
                    "add --active-low if the actuator is on when low"
                }
                updlock::pin::Polarity::ActiveLow => {
                    "drop --active-low if the actuator is on when high"
                }
            },
        }),
        _ => Ok(()),
    }
}

fn open_actuator(choice: &LineChoice) -> Result<Actuator<Output>, Failure> {
    let (spec, shown) = resolve_line(choice)?;
    check_safe(choice, &shown)?;
    let out = gpio::open_output(&spec, choice.polarity)?;
    log::info!(
        "{shown}: requested as output, safe ({})",
        choice.polarity.safe().as_str()
    );
    Ok(Actuator::new(out, choice.polarity, shown))
}

fn safe_cmd(choice: &LineChoice) -> Result<u8, Failure> {
    let (spec, shown) = resolve_line(choice)?;
    check_safe(choice, &shown)?;
    // The request itself drives the safe level (its initial value); releasing
    // it then leaves the line as it is on a Raspberry Pi (SPEC §7).
    drop(gpio::open_output(&spec, choice.polarity)?);
    log::info!(
        "{shown}: driven to its safe level ({})",
        choice.polarity.safe().as_str()
    );
    Ok(Exit::Ok.code())
}

fn watch_cmd(
    paths: &[PathBuf],
    input: &LineChoice,
    debounce: Duration,
    events: &mut Events,
    kick: Option<Api>,
) -> Result<u8, Failure> {
    lock::check_uid()?;
    let (spec, shown) = resolve_line(input)?;
    let mut line = gpio::open_input(&spec, input.polarity)?;
    log::info!("{shown}: watching as input");
    if let Some(api) = kick {
        events.set_companion(Some(Box::new(ReleaseKicker::new(api, paths))));
    }
    let outcome = watch::watch(paths, &mut line, events, debounce, || notify("READY=1"));
    let kicker = events.set_companion(None);
    let stop = outcome?;
    notify("STOPPING=1");
    if let Some(mut k) = kicker {
        // The release on a stop signal happened inside watch, after its
        // last wait: look once more, and let a kick under way finish.
        k.finish();
    }
    log::info!("{}: stopped", stop.as_str());
    Ok(Exit::Ok.code())
}

/// The supervisor's API if it is set up. What is wrong with it is said
/// here, once; without `--kick`, an API that is simply not there is the
/// usual case and not worth a word.
fn supervisor_api(flags: &SupervisorFlags, kick: bool) -> Option<Api> {
    let env = |name: &str| std::env::var(name).ok();
    match supervisor::setup(flags.address.clone(), flags.api_key.clone(), flags.timeout, env) {
        Setup::Ready(api) => return Some(api),
        Setup::Off if kick => log::warn!(
            "--kick: no supervisor API (the io.balena.features.supervisor-api label, or --supervisor-address and --supervisor-api-key): a pending update applies at the supervisor's next attempt"
        ),
        Setup::Off => {}
        Setup::Incomplete(what) => log::warn!("supervisor API: {what}: not used"),
        Setup::BadAddress { var, error } => {
            log::warn!("supervisor API: ${var}: {error}: not used")
        }
    }
    None
}

/// The kick of `run --kick` and `hold --kick`, once the section has ended
/// with the line safe and the lock released: `ours` says we released it, as
/// opposed to the supervisor taking it (then it is applying the update).
fn after_release(code: u8, ours: bool, kick_with: Option<&Api>) -> u8 {
    match kick_with {
        Some(api) if ours => kick(api),
        Some(_) => log::debug!("not kicked: the supervisor took the lock to apply the update"),
        None => {}
    }
    code
}

/// Asks the supervisor to apply a pending update now; waits for it, as
/// long as `--api-timeout` at most.
fn kick(api: &Api) {
    report_kick(api.kick());
}

/// What a kick did: one line in the log and nothing else. The lock is
/// released already, and the exit status is the critical section's.
fn report_kick(done: Result<Outcome, ApiError>) {
    match done {
        Ok(Outcome {
            asked: Some(status),
            ..
        }) => log::info!(
            "an update is pending: the supervisor was asked to apply it now (POST /v1/update: {status})"
        ),
        Ok(Outcome { asked: None, .. }) => log::debug!("no update pending: nothing to kick"),
        Err(e) => log::warn!(
            "{e} (not kicked: a pending update applies at the supervisor's next attempt)"
        ),
    }
}

/// What the lock files show, as far as a kick is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// One of them is this process's.
    Ours,
    /// None is there.
    Free,
    /// Someone else's (the supervisor's, after an override).
    Other,
}

fn seen(paths: &[PathBuf]) -> Option<Seen> {
    let me = std::process::id();
    let uid = nix::unistd::geteuid().as_raw();
    let mut free = true;
    for p in paths {
        let target = lock::Target::open(p).ok()?;
        match lock::observe(&target).ok()? {
            lock::Observed::Free => {}
            lock::Observed::Present {
                foreign: None,
                uid: owner,
                tag: Some(tag),
                ..
            } if tag.pid == me && owner == uid => return Some(Seen::Ours),
            lock::Observed::Present { .. } => free = false,
        }
    }
    Some(if free { Seen::Free } else { Seen::Other })
}

/// `--kick` for `watch`, whose releases happen inside its loop: before each
/// wait, a look at the lock files tells whether the lock held at the last
/// look has since been released by us (gone) or taken from us (someone
/// else's: the supervisor is applying the update already, no kick).
///
/// The kick goes along with watch's loop ([`Companion`]): the loop must be
/// free to take the lock again the moment the input goes active, and to pet
/// the watchdog, however slow the API is.
struct ReleaseKicker {
    api: Api,
    paths: Vec<PathBuf>,
    held: bool,
    under_way: Option<Call>,
}

impl ReleaseKicker {
    fn new(api: Api, paths: &[PathBuf]) -> ReleaseKicker {
        ReleaseKicker {
            api,
            paths: paths.to_vec(),
            held: false,
            under_way: None,
        }
    }

    fn look(&mut self) {
        match seen(&self.paths) {
            Some(Seen::Ours) => self.held = true,
            Some(Seen::Free) if self.held => {
                self.held = false;
                if self.under_way.is_some() {
                    // It has yet to ask: that covers this release too.
                    log::debug!("a kick is under way already");
                } else {
                    self.under_way = Some(self.api.start(true));
                }
            }
            Some(Seen::Other) => self.held = false,
            // A look that failed tells nothing: the next one will.
            Some(Seen::Free) | None => {}
        }
    }
}

impl Companion for ReleaseKicker {
    fn before_wait(&mut self) {
        self.look();
    }

    fn fd(&self) -> Option<(BorrowedFd<'_>, bool)> {
        let call = self.under_way.as_ref()?;
        Some((call.fd()?, call.wants_write()))
    }

    fn deadline(&self) -> Option<Instant> {
        self.under_way.as_ref().map(Call::deadline)
    }

    fn wake(&mut self) {
        if let Some(done) = self.under_way.as_mut().and_then(Call::advance) {
            self.under_way = None;
            report_kick(done);
        }
    }

    fn finish(&mut self) {
        self.look();
        if let Some(call) = self.under_way.take() {
            report_kick(call.wait());
        }
    }
}

fn status_cmd(paths: &[PathBuf], json: bool, api: Option<&Api>) -> Result<u8, Failure> {
    let entries = status::inspect(paths)?;
    let supervisor = api.map(|api| SupervisorView {
        address: api.address().to_string(),
        answer: api.device().map_err(|e| {
            log::warn!("{e}");
            format!("{}: {}", e.request, e.problem)
        }),
    });
    let text = if json {
        status::render_json(&entries, supervisor.as_ref())
    } else {
        status::render_text(&entries, supervisor.as_ref())
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

/// The exit status, and whether the lock ended released by us (not taken
/// by the supervisor) with the line safe: what a kick may follow.
fn hold_cmd(
    paths: &[PathBuf],
    wait: Wait,
    actuator: Option<Actuator<Output>>,
    duration: Option<Duration>,
    events: &mut Events,
) -> Result<(u8, bool), Failure> {
    let set = take(paths, wait, events)?;
    // Declared after the lock, so dropped (made safe) before it on every
    // path, unwinding included.
    let mut act = into_dyn(actuator);
    let until = duration.map(|d| Instant::now() + d);
    let said_held = || {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not cost the lock: the line is a courtesy.
        let _ = writeln!(out, "held").and_then(|()| out.flush());
        drop(out);
        notify("READY=1");
    };
    let outcome = section::hold(&set, act.as_mut(), events, until, said_held);
    notify("STOPPING=1");
    drop(act);
    let (end, safe) = match outcome {
        Ok(o) => o,
        Err(e) => {
            release(set)?;
            return Err(e.into());
        }
    };
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
    safe?;
    Ok((code.code(), !matches!(end, HoldEnd::Overridden(..))))
}

fn into_dyn(actuator: Option<Actuator<Output>>) -> Box<dyn Actuate> {
    match actuator {
        Some(a) => Box::new(a),
        None => Box::new(NoActuator),
    }
}

/// The exit status, and whether the lock ended released by us with the
/// line safe, as [`hold_cmd`].
fn run_cmd(
    paths: &[PathBuf],
    wait: Wait,
    actuator: Option<Actuator<Output>>,
    grace: Duration,
    program: &std::ffi::OsStr,
    args: &[OsString],
    events: &mut Events,
) -> Result<(u8, bool), Failure> {
    let set = take(paths, wait, events)?;
    // Declared after the lock, so dropped (made safe) before it.
    let mut act = into_dyn(actuator);
    let outcome = section::run(&set, act.as_mut(), events, program, args, grace);
    drop(act);
    // Release whatever happened to the program; report its failure after.
    let released = release(set);
    let end = outcome?;
    released?;
    if let Some(e) = &end.spawn_error {
        eprintln!("updlock: {e}");
    }
    if end.killed {
        log::warn!("the program was killed after the grace period");
    }
    end.safe?;
    Ok((
        u8::try_from(end.code).unwrap_or(Exit::Internal.code()),
        end.overridden.is_none(),
    ))
}
