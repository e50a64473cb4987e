//! The command line: raw flags in, a validated [`Config`] out.
//!
//! Global options (where the locks are, `--wait`, the supervisor's API,
//! `-q`/`-v`) may come before or after the subcommand; everything after
//! `run`'s PROGRAM belongs to it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::prelude::*;

use updlock::duration::{self, Wait};
use updlock::exit;
use updlock::linespec::{self, LineSpec};
use updlock::location::{HostLayout, Location, HELIOS_ROOT, SERVICES_ROOT};
use updlock::pin::{Level, Polarity};
use updlock::settings::{self, Settings};
use updlock::supervisor::{self, Address};

/// What the user asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which lock files.
    pub location: Location,
    /// How long to wait for a held lock.
    pub wait: Wait,
    /// `-q` (negative) / `-v` (positive), summed.
    pub verbosity: i8,
    /// The supervisor's API, as the flags give it (the environment fills in
    /// what they do not).
    pub supervisor: SupervisorFlags,
    /// The subcommand.
    pub command: Command,
}

/// `--supervisor-address`, `--supervisor-api-key`, `--api-timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorFlags {
    /// `--supervisor-address URL`.
    pub address: Option<Address>,
    /// `--supervisor-api-key KEY`.
    pub api_key: Option<String>,
    /// `--api-timeout DURATION`: the most one use of the API may take.
    pub timeout: Duration,
}

/// Where a line is: a `--gpio`/`--input` value, or a board pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineSource {
    /// `--gpio LINE` / `--input LINE`.
    Spec(LineSpec),
    /// `--board B --pin N`.
    BoardPin {
        /// A built-in board id or a profile file.
        board: String,
        /// The physical header pin.
        pin: u32,
    },
}

/// A line and how to drive or read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChoice {
    /// Where the line is.
    pub source: LineSource,
    /// `--active-low`.
    pub polarity: Polarity,
    /// `--safe low|high`, if given; it must be the inactive level.
    pub safe: Option<Level>,
}

/// A subcommand and its own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Hold the lock while PROGRAM runs.
    Run {
        /// The actuator line, if any.
        line: Option<LineChoice>,
        /// How long PROGRAM has after a forwarded stop signal.
        grace: Duration,
        /// The program.
        program: OsString,
        /// Its arguments.
        args: Vec<OsString>,
        /// `--kick`.
        kick: bool,
    },
    /// Hold the lock until a signal or `--for`.
    Hold {
        /// The actuator line, if any.
        line: Option<LineChoice>,
        /// `--for`.
        duration: Option<Duration>,
        /// `--kick`.
        kick: bool,
    },
    /// Hold the lock while an input line is active.
    Watch {
        /// The input line.
        input: LineChoice,
        /// How long the input must stay inactive before the lock goes.
        debounce: Duration,
        /// `--kick`.
        kick: bool,
    },
    /// Drive a line to its safe state and exit.
    Safe {
        /// The line; none given and none in the settings: nothing to do.
        line: Option<LineChoice>,
    },
    /// Report who holds the lock files.
    Status {
        /// `--json`.
        json: bool,
    },
    /// Print help (for a subcommand, if named).
    Help(Option<String>),
    /// Print the version.
    Version,
}

/// A command line that cannot be used; exit 64. It is shown as one line:
/// a control character that an argument or a setting brought into the
/// message (a newline, an escape sequence) is shown escaped, as `\n` or
/// `\u{1b}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (see 'updlock --help')", one_line(.0))]
pub struct UsageError(pub String);

fn one_line(text: &str) -> String {
    linespec::escaped(text)
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

/// The default for `run --grace`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The default for `watch --debounce`.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Raw {
    lock_dir: Option<PathBuf>,
    host: bool,
    services_root: Option<PathBuf>,
    helios_root: Option<PathBuf>,
    app_id: Option<String>,
    service: Option<String>,
    locks: Vec<PathBuf>,
    wait: Option<Wait>,
    verbosity: i8,
    grace: Option<Duration>,
    duration: Option<Duration>,
    json: bool,
    help: bool,
    version: bool,
    gpio: Option<LineSpec>,
    input: Option<LineSpec>,
    board: Option<String>,
    pin: Option<u32>,
    active_low: bool,
    safe: Option<Level>,
    debounce: Option<Duration>,
    supervisor_address: Option<Address>,
    supervisor_api_key: Option<String>,
    api_timeout: Option<Duration>,
    kick: bool,
}

fn line_of(value: OsString, flag: &str) -> Result<LineSpec, UsageError> {
    let text = text_of(value, flag)?;
    linespec::parse(&text).map_err(|e| UsageError(format!("{flag}: {e}")))
}

fn duration_of(value: OsString, flag: &str) -> Result<Duration, UsageError> {
    let text = value.to_string_lossy().into_owned();
    duration::parse(&text).map_err(|e| UsageError(format!("{flag}: {e}")))
}

fn text_of(value: OsString, flag: &str) -> Result<String, UsageError> {
    value
        .into_string()
        .map_err(|v| UsageError(format!("{flag}: not valid UTF-8: {}", v.to_string_lossy())))
}

/// Parses the arguments after the program name, with the `UPDLOCK_*`
/// settings of the environment under them.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Config, UsageError> {
    parse_under(args, Settings::from_env())
}

/// [`parse`] with the settings already read: broken settings refuse every
/// command but help and the version, which are how a user finds out what
/// the settings should be. (Whether the command is help is decided by the
/// parser, not by spotting the word: `run -- echo help` is not help.)
/// Public for the fuzzer (`fuzz/fuzz_targets/cli.rs`), which reads no
/// environment.
pub fn parse_under(
    args: impl IntoIterator<Item = OsString>,
    settings: Result<Settings, settings::SettingsError>,
) -> Result<Config, UsageError> {
    match settings {
        Ok(s) => parse_with(args, s),
        Err(e) => match parse_with(args, Settings::default()) {
            Ok(c) if matches!(c.command, Command::Help(_) | Command::Version) => Ok(c),
            _ => Err(UsageError(e.to_string())),
        },
    }
}

/// Parses the arguments with `settings` as the defaults of their options.
/// A command-line option wins over its setting; a setting only fills what
/// the command line left open.
pub fn parse_with(
    args: impl IntoIterator<Item = OsString>,
    settings: Settings,
) -> Result<Config, UsageError> {
    let mut p = lexopt::Parser::from_args(args);
    let mut raw = Raw::default();
    let mut sub: Option<String> = None;
    let mut program: Option<(OsString, Vec<OsString>)> = None;
    let mut help_topic: Option<String> = None;
    while let Some(arg) = p.next()? {
        let in_sub = |name: &str| sub.as_deref() == Some(name);
        match arg {
            Long("lock-dir") => raw.lock_dir = Some(p.value()?.into()),
            Long("host") => raw.host = true,
            Long("services-root") => raw.services_root = Some(p.value()?.into()),
            Long("helios-root") => raw.helios_root = Some(p.value()?.into()),
            Long("app-id") => raw.app_id = Some(text_of(p.value()?, "--app-id")?),
            Long("service") => raw.service = Some(text_of(p.value()?, "--service")?),
            Long("lock") => raw.locks.push(p.value()?.into()),
            Long("wait") | Short('w') => {
                let v = p.value()?.to_string_lossy().into_owned();
                raw.wait = Some(Wait::parse(&v).map_err(|e| UsageError(format!("--wait: {e}")))?);
            }
            Short('q') | Long("quiet") => raw.verbosity = raw.verbosity.saturating_sub(1),
            Short('v') | Long("verbose") => raw.verbosity = raw.verbosity.saturating_add(1),
            Short('h') | Long("help") => raw.help = true,
            Short('V') | Long("version") => raw.version = true,
            Long("grace") if in_sub("run") => raw.grace = Some(duration_of(p.value()?, "--grace")?),
            Long("for") if in_sub("hold") => raw.duration = Some(duration_of(p.value()?, "--for")?),
            Long("json") if in_sub("status") => raw.json = true,
            Long("gpio") if in_sub("run") || in_sub("hold") || in_sub("safe") => {
                raw.gpio = Some(line_of(p.value()?, "--gpio")?)
            }
            Long("input") if in_sub("watch") => raw.input = Some(line_of(p.value()?, "--input")?),
            Long("board") if gpio_sub(sub.as_deref()) => {
                raw.board = Some(text_of(p.value()?, "--board")?)
            }
            Long("pin") if gpio_sub(sub.as_deref()) => {
                let v = text_of(p.value()?, "--pin")?;
                raw.pin =
                    Some(v.parse().map_err(|_| {
                        UsageError(format!("--pin: '{v}' is not a header pin number"))
                    })?);
            }
            Long("active-low") if gpio_sub(sub.as_deref()) => raw.active_low = true,
            Long("safe") if in_sub("run") || in_sub("hold") || in_sub("safe") => {
                let v = text_of(p.value()?, "--safe")?;
                raw.safe = Some(match v.as_str() {
                    "low" | "0" => Level::Low,
                    "high" | "1" => Level::High,
                    other => {
                        return Err(UsageError(format!(
                            "--safe: '{other}' is not a level (low or high)"
                        )))
                    }
                });
            }
            Long("debounce") if in_sub("watch") => {
                raw.debounce = Some(duration_of(p.value()?, "--debounce")?)
            }
            Long("supervisor-address") => {
                let v = text_of(p.value()?, "--supervisor-address")?;
                raw.supervisor_address = Some(
                    Address::parse(&v)
                        .map_err(|e| UsageError(format!("--supervisor-address: {e}")))?,
                );
            }
            Long("supervisor-api-key") => {
                let v = text_of(p.value()?, "--supervisor-api-key")?;
                if v.is_empty() {
                    return Err(UsageError("--supervisor-api-key: empty key".into()));
                }
                raw.supervisor_api_key = Some(v);
            }
            Long("api-timeout") => {
                let d = duration_of(p.value()?, "--api-timeout")?;
                if d.is_zero() {
                    return Err(UsageError(
                        "--api-timeout: 0 leaves no time for any answer".into(),
                    ));
                }
                raw.api_timeout = Some(d);
            }
            Long("kick") if in_sub("run") || in_sub("hold") || in_sub("watch") => raw.kick = true,
            Value(v) if sub.is_none() => {
                let name = text_of(v, "subcommand")?;
                match name.as_str() {
                    "run" | "hold" | "status" | "watch" | "safe" | "help" => sub = Some(name),
                    other => {
                        return Err(UsageError(format!(
                        "unknown subcommand '{other}' (expected run, hold, watch, safe or status)"
                    )))
                    }
                }
            }
            Value(v) if in_sub("run") => {
                program = Some((v, p.raw_args()?.collect()));
                break;
            }
            Value(v) if in_sub("help") && help_topic.is_none() => {
                help_topic = Some(v.to_string_lossy().into_owned())
            }
            other => return Err(other.unexpected().into()),
        }
    }
    apply_settings(&mut raw, settings, sub.as_deref())?;
    let verbosity = raw.verbosity;
    let wait = raw.wait.unwrap_or(Wait::For(Duration::ZERO));
    let supervisor = SupervisorFlags {
        address: raw.supervisor_address.take(),
        api_key: raw.supervisor_api_key.take(),
        timeout: raw.api_timeout.unwrap_or(supervisor::DEFAULT_TIMEOUT),
    };
    if raw.version {
        return Ok(Config {
            location: Location::Container { dir: None },
            wait,
            verbosity,
            supervisor,
            command: Command::Version,
        });
    }
    if raw.help || sub.as_deref() == Some("help") || sub.is_none() {
        if sub.is_none() && !raw.help {
            return Err(UsageError(
                "a subcommand is needed: run, hold, watch, safe or status".to_string(),
            ));
        }
        let topic = help_topic.or(sub.filter(|s| s != "help"));
        return Ok(Config {
            location: Location::Container { dir: None },
            wait,
            verbosity,
            supervisor,
            command: Command::Help(topic),
        });
    }
    let location = location_of(&mut raw)?;
    let line = line_choice(&mut raw)?;
    if line.is_some() && !matches!(sub.as_deref(), Some("run" | "hold" | "safe" | "watch")) {
        return Err(UsageError(
            "line options go with run, hold, watch or safe".into(),
        ));
    }
    if raw.wait.is_some() && matches!(sub.as_deref(), Some("watch" | "safe")) {
        return Err(UsageError(
            "watch and safe do not take --wait (watch waits for the lock by itself)".into(),
        ));
    }
    let command = match sub.as_deref() {
        Some("watch") => Command::Watch {
            input: line.ok_or_else(|| {
                UsageError(
                    "watch: an input line is needed: --input LINE or --board B --pin N".into(),
                )
            })?,
            debounce: raw.debounce.unwrap_or(DEFAULT_DEBOUNCE),
            kick: raw.kick,
        },
        // No line at all is not an error: the systemd units run `safe` when
        // they stop, and a setup without an actuator has nothing to make safe.
        Some("safe") => Command::Safe { line },
        Some("run") => {
            let (program, args) = program.ok_or_else(|| {
                UsageError(
                    "run: a PROGRAM to run is needed: updlock run -- PROGRAM [ARGS...]".into(),
                )
            })?;
            Command::Run {
                line,
                grace: raw.grace.unwrap_or(DEFAULT_GRACE),
                program,
                args,
                kick: raw.kick,
            }
        }
        Some("hold") => Command::Hold {
            line,
            duration: raw.duration,
            kick: raw.kick,
        },
        _ => {
            if raw.wait.is_some() {
                return Err(UsageError("status does not wait: drop --wait".into()));
            }
            Command::Status { json: raw.json }
        }
    };
    Ok(Config {
        location,
        wait,
        verbosity,
        supervisor,
        command,
    })
}

/// Fills in from the settings what the command line left open.
///
/// - Where the locks are: only when no location option was given, and then
///   all of it (one location, never half from each). The host layout's
///   details (roots, app id, service) describe the device, so they also
///   fill in what a `--host` from the command line leaves open.
/// - The actuator line: `UPDLOCK_GPIO` for run, hold and safe when no line
///   option was given; `UPDLOCK_ACTIVE_LOW` goes with that line only, never
///   with one from the command line (whose polarity is its own to state).
/// - watch's input always comes from the command line (the unit's instance);
///   `UPDLOCK_INPUT_ACTIVE_LOW` and `UPDLOCK_DEBOUNCE` apply to it unless
///   the command line says otherwise.
/// - `UPDLOCK_WAIT` for run and hold only: watch waits by itself.
fn apply_settings(raw: &mut Raw, s: Settings, sub: Option<&str>) -> Result<(), UsageError> {
    let location_given = raw.lock_dir.is_some() || raw.host || !raw.locks.is_empty();
    let host_setting = s.host == Some(true);
    if !location_given {
        let chosen = [s.lock_dir.is_some(), host_setting, !s.locks.is_empty()]
            .iter()
            .filter(|&&b| b)
            .count();
        if chosen > 1 {
            return Err(UsageError(
                "settings: choose one of UPDLOCK_LOCK_DIR, UPDLOCK_HOST=yes and UPDLOCK_LOCK"
                    .into(),
            ));
        }
        raw.lock_dir = s.lock_dir;
        raw.host = host_setting;
        raw.locks = s.locks;
    }
    let host_only_setting = s.services_root.is_some()
        || s.helios_root.is_some()
        || s.app_id.is_some()
        || s.service.is_some();
    if raw.host {
        raw.services_root = raw.services_root.take().or(s.services_root);
        raw.helios_root = raw.helios_root.take().or(s.helios_root);
        raw.app_id = raw.app_id.take().or(s.app_id);
        raw.service = raw.service.take().or(s.service);
    } else if host_only_setting && !location_given {
        return Err(UsageError(
            "settings: UPDLOCK_SERVICES_ROOT, UPDLOCK_HELIOS_ROOT, UPDLOCK_APP_ID and UPDLOCK_SERVICE go with the host layout (UPDLOCK_HOST=yes or --host)".into(),
        ));
    }
    match sub {
        Some("run" | "hold" | "safe") => {
            let line_given = raw.gpio.is_some() || raw.board.is_some() || raw.pin.is_some();
            if !line_given {
                if let Some(gpio) = s.gpio {
                    raw.gpio = Some(gpio);
                    raw.active_low = s.active_low.unwrap_or(false);
                }
            }
        }
        Some("watch") => {
            if !raw.active_low {
                raw.active_low = s.input_active_low.unwrap_or(false);
            }
            raw.debounce = raw.debounce.or(s.debounce);
        }
        _ => {}
    }
    if matches!(sub, Some("run" | "hold")) {
        raw.wait = raw.wait.or(s.wait);
    }
    Ok(())
}

fn gpio_sub(sub: Option<&str>) -> bool {
    matches!(sub, Some("run" | "hold" | "safe" | "watch"))
}

fn line_choice(raw: &mut Raw) -> Result<Option<LineChoice>, UsageError> {
    let spec = raw.gpio.take().or(raw.input.take());
    let source = match (spec, raw.board.take(), raw.pin.take()) {
        (None, None, None) => {
            if raw.active_low || raw.safe.is_some() {
                return Err(UsageError(
                    "--active-low and --safe need a line: --gpio LINE or --board B --pin N".into(),
                ));
            }
            return Ok(None);
        }
        (Some(spec), None, None) => LineSource::Spec(spec),
        (None, Some(board), Some(pin)) => LineSource::BoardPin { board, pin },
        (None, Some(_), None) => return Err(UsageError("--board needs --pin N".into())),
        (None, None, Some(_)) => {
            return Err(UsageError(
                "--pin needs --board B (see 'updlock help boards')".into(),
            ))
        }
        (Some(_), _, _) => {
            return Err(UsageError(
                "choose either a line (--gpio/--input) or --board with --pin".into(),
            ))
        }
    };
    Ok(Some(LineChoice {
        source,
        polarity: if raw.active_low {
            Polarity::ActiveLow
        } else {
            Polarity::ActiveHigh
        },
        safe: raw.safe,
    }))
}

fn location_of(raw: &mut Raw) -> Result<Location, UsageError> {
    let host_only = raw.services_root.is_some()
        || raw.helios_root.is_some()
        || raw.app_id.is_some()
        || raw.service.is_some();
    if host_only && !raw.host {
        return Err(UsageError(
            "--services-root, --helios-root, --app-id and --service go with --host".into(),
        ));
    }
    let chosen = [raw.lock_dir.is_some(), raw.host, !raw.locks.is_empty()]
        .iter()
        .filter(|&&b| b)
        .count();
    if chosen > 1 {
        return Err(UsageError(
            "choose one of --lock-dir, --host and --lock".into(),
        ));
    }
    if !raw.locks.is_empty() {
        return Ok(Location::Files(std::mem::take(&mut raw.locks)));
    }
    if raw.host {
        return Ok(Location::Host(HostLayout {
            services_root: raw
                .services_root
                .take()
                .unwrap_or_else(|| PathBuf::from(SERVICES_ROOT)),
            helios_root: raw
                .helios_root
                .take()
                .unwrap_or_else(|| PathBuf::from(HELIOS_ROOT)),
            app_id: raw.app_id.take(),
            service: raw.service.take(),
        }));
    }
    Ok(Location::Container {
        dir: raw.lock_dir.take(),
    })
}

const LOCATION_HELP: &str = "\
Where the locks are (default: the container layout):
  --lock-dir DIR        lock DIR/updates.lock and DIR/resin-updates.lock
                        (default: $UPDLOCK_LOCK_DIR, else the directory of
                        $BALENA_APP_LOCK_PATH, else /tmp/balena, else /tmp/resin)
  --host                on the host OS: every service directory under
                        --services-root DIR (default /tmp/balena-supervisor/services),
                        or Helios's --helios-root DIR (default /run/helios/update-locks);
                        narrow with --app-id ID and --service NAME
  --lock FILE           lock exactly FILE (repeatable)
";

const LINE_HELP: &str = "\
The actuator line (optional; without it only the lock is held):
  --gpio LINE           a line name (GPIO17: searched on every chip, must be unique),
                        CHIP:OFFSET (gpiochip0:17, /dev/gpiochip0:17, pinctrl-bcm2835:17),
                        or file:PATH (a file standing in for a line, for tests and dry runs)
  --board B --pin N     physical header pin N of board B (see 'updlock help boards')
  --active-low          the actuator is on when the line is low
  --safe low|high       state the safe level explicitly; it must be the inactive one
";

const SUPERVISOR_HELP: &str = "\
The supervisor's API (optional; used when both an address and a key are known):
  --supervisor-address URL
                        the API (default: $BALENA_SUPERVISOR_ADDRESS, which the
                        io.balena.features.supervisor-api label sets)
  --supervisor-api-key KEY
                        its key (default: $BALENA_SUPERVISOR_API_KEY; a flag
                        shows in ps, the environment does not)
  --api-timeout DURATION
                        the most one use of the API may take (default 2s)
An API that is missing, slow or failing is logged, once, and changes nothing
else: not the release, not the exit status. With the API, the --kick of
run, hold and watch has a pending update applied once the lock is released.
";

// No line continuation before an option: `\` at a line end would eat its
// indentation too.
const KICK_HELP: &str =
    "  --kick                once the lock is released (and the line is safe), if
                        the supervisor has an update pending, ask it to apply
                        it now (POST /v1/update, never forced) rather than at
                        the end of its backoff (up to 15 minutes later)
";

const COMMON_HELP: &str = "  -w, --wait DURATION   wait this long for a lock held by someone else
                        (0 = fail at once, the default; 'forever')
  -q, --quiet           log errors only;  -v, --verbose: log more
                        (or RUST_LOG=warn|info|debug; default info, on stderr)
  -h, --help            this help
Settings: UPDLOCK_* variables give defaults to these options (UPDLOCK_GPIO,
UPDLOCK_HOST, UPDLOCK_DEBOUNCE, ...): see 'updlock help settings'.
DURATION: 500ms, 10s, 1.5s, 5m, 1h; a bare number is seconds.
";

/// The help text for `topic` (a subcommand) or the whole program.
pub fn help(topic: Option<&str>) -> String {
    let codes = exit::table();
    match topic {
        Some("run") => format!(
            "updlock run: hold the update lock (and the actuator) while PROGRAM runs

Usage: updlock [LOCATION] [--wait DURATION] [SUPERVISOR] [-q|-v] run [--gpio LINE ...] [--grace DURATION] [--kick] [--] PROGRAM [ARGS...]

Requests the line in its safe state, takes the lock, drives the line active,
runs PROGRAM; when PROGRAM ends, drives the line safe, then releases the lock,
and exits with PROGRAM's status (128+N if it died of signal N). On SIGTERM,
SIGINT or SIGHUP the line goes safe first, then the signal is forwarded to
PROGRAM; if it has not ended --grace after that (default 5s), it is killed;
then the lock is released. If the lock is overridden (the supervisor removed
it), the line goes safe and PROGRAM gets SIGTERM at once. PROGRAM gets SIGTERM
if updlock itself is killed.

  --grace DURATION      time PROGRAM has to end after a stop signal (default 5s)
{KICK_HELP}{LINE_HELP}{LOCATION_HELP}{SUPERVISOR_HELP}{COMMON_HELP}
Exit status:
{codes}"
        ),
        Some("hold") => format!(
            "updlock hold: take the update lock (and the actuator) and hold it

Usage: updlock [LOCATION] [--wait DURATION] [SUPERVISOR] [-q|-v] hold [--gpio LINE ...] [--for DURATION] [--kick]

Requests the line in its safe state, takes the lock, drives the line active,
prints 'held' on stdout (and READY=1 to systemd when $NOTIFY_SOCKET is set),
and holds until SIGTERM, SIGINT or SIGHUP, or until --for runs out; then
drives the line safe, releases the lock and exits 0. If the lock is
overridden (the supervisor removed it), it does the same at once and exits 75.

  --for DURATION        release after this long
{KICK_HELP}{LINE_HELP}{LOCATION_HELP}{SUPERVISOR_HELP}{COMMON_HELP}
Exit status:
{codes}"
        ),
        Some("watch") => format!(
            "updlock watch: hold the update lock while an input line is active

Usage: updlock [LOCATION] [SUPERVISOR] [-q|-v] watch --input LINE [--active-low] [--debounce DURATION] [--kick]

For a machine whose own controller signals \"busy\" on an input: takes the lock
when the input becomes active and releases it once the input has been inactive
for --debounce (default 1s). If the supervisor holds the lock when the input
becomes active, says so and takes it as soon as the supervisor's file goes
away. Event-driven (line edge events), no polling. Runs until SIGTERM, SIGINT
or SIGHUP; tells systemd READY=1 once armed.

  --input LINE          the input line: NAME, CHIP:OFFSET or file:PATH, as --gpio
  --board B --pin N     or a physical header pin of a board
  --active-low          the input is active when low
  --debounce DURATION   inactive time before the lock is released (default 1s)
  --kick                after each release, if the supervisor has an update
                        pending, ask it to apply it now (POST /v1/update, never
                        forced) rather than at the end of its backoff
{LOCATION_HELP}{SUPERVISOR_HELP}{COMMON_HELP}
Exit status:
{codes}"
        ),
        Some("safe") => format!(
            "updlock safe: drive a line to its safe state and exit

Usage: updlock safe [--gpio LINE [--active-low] [--safe low|high]]

For systemd's ExecStopPost= and for recovery after a crash: a Raspberry Pi
keeps a released output line as it was, so a SIGKILLed holder can leave an
actuator on. Takes no lock. Without a line option it takes the actuator of
the settings (UPDLOCK_GPIO, UPDLOCK_ACTIVE_LOW); with neither, there is
nothing to make safe and it exits 0.

{LINE_HELP}
Exit status:
{codes}"
        ),
        Some("settings") => format!(
            "updlock settings: UPDLOCK_* variables, the defaults of the options

The same names configure updlock in a container (docker-compose.yml's
environment:) and on the host OS (the units' EnvironmentFile=, installed as
/etc/default/updlock). A command-line option wins over its setting; an empty
value is unset. Every UPDLOCK_* variable is checked at start: an unknown name
or a bad value is a usage error (exit 64) naming it.

{}
The location settings apply only when no location option is given, and then
as a whole; the host layout's details (UPDLOCK_SERVICES_ROOT,
UPDLOCK_HELIOS_ROOT, UPDLOCK_APP_ID, UPDLOCK_SERVICE) also fill in what a
--host on the command line leaves open, as they describe the device.
UPDLOCK_ACTIVE_LOW goes with UPDLOCK_GPIO only, never with a
line given on the command line. UPDLOCK_WAIT applies to run and hold.
",
            settings::help()
        ),
        Some("boards") => {
            let mut out = String::from(
                "Built-in board profiles (--board ID --pin N; or --board PATH to a profile file):\n",
            );
            for id in updlock::board::builtin_ids() {
                if let Ok(b) = updlock::board::builtin(id) {
                    out.push_str(&format!("  {id:<14} {}\n", b.model()));
                }
            }
            out
        }
        Some("status") => format!(
            "updlock status: who holds the update lock files

Usage: updlock [LOCATION] [SUPERVISOR] status [--json]

One line per lock file: free, held by updlock (pid, since), held by the
supervisor (uid 65534), held by someone else, or stale (left by a dead
updlock; the next updlock re-takes it). Never takes a lock, not even a flock.
Exits 0 when every file is free, 73 when any is present (the supervisor
would not update). With the supervisor's API, one more line: what it says
about updates (update_pending, update_downloaded, update_failed); the exit
status still reflects only the lock files.

  --json                one JSON object: {{\"held\": bool, \"locks\": [...]}},
                        and \"supervisor\": {{...}} with the API
{LOCATION_HELP}{SUPERVISOR_HELP}
Exit status:
{codes}"
        ),
        _ => format!(
            "updlock {}: hold the balena update lock exactly while a critical section runs

Usage:
  updlock [LOCATION] [--wait DURATION] [SUPERVISOR] [-q|-v] run [--gpio LINE ...] [--grace DURATION] [--kick] [--] PROGRAM [ARGS...]
  updlock [LOCATION] [--wait DURATION] [SUPERVISOR] [-q|-v] hold [--gpio LINE ...] [--for DURATION] [--kick]
  updlock [LOCATION] [SUPERVISOR] [-q|-v] watch --input LINE [--active-low] [--debounce DURATION] [--kick]
  updlock safe [--gpio LINE [--active-low]]
  updlock [LOCATION] [SUPERVISOR] status [--json]
  updlock help [run|hold|watch|safe|status|boards|settings]

The lock is what the balena supervisor and balenaOS check: files created
exclusively (never touched), each held with flock(2) while the lock is held,
removed only while they are still ours. A lock that is already there is never
taken over, unless it is updlock's own and its holder is dead. With --gpio,
the actuator line is active only while the lock is held: lock first, then the
line; the line safe first, then the lock released — on every way out.

{LINE_HELP}{LOCATION_HELP}{SUPERVISOR_HELP}{COMMON_HELP}
Exit status:
{codes}",
            env!("CARGO_PKG_VERSION")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Config, UsageError> {
        parse_with(args.iter().map(OsString::from), Settings::default())
    }

    /// The actuator line of a `hold` command.
    fn hold_line(c: &Config) -> &LineChoice {
        match &c.command {
            Command::Hold {
                line: Some(line), ..
            } => line,
            other => panic!("not hold with a line: {other:?}"),
        }
    }

    fn parse_env(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, UsageError> {
        let settings = Settings::from_vars(
            vars.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
        .unwrap();
        parse_with(args.iter().map(OsString::from), settings)
    }

    #[test]
    fn settings_fill_what_the_command_line_leaves_open() {
        let env = [
            ("UPDLOCK_HOST", "yes"),
            ("UPDLOCK_APP_ID", "42"),
            ("UPDLOCK_GPIO", "GPIO17"),
            ("UPDLOCK_ACTIVE_LOW", "yes"),
            ("UPDLOCK_WAIT", "5s"),
            ("UPDLOCK_DEBOUNCE", "300ms"),
            ("UPDLOCK_INPUT_ACTIVE_LOW", "yes"),
        ];
        let c = parse_env(&["hold"], &env).unwrap();
        assert!(matches!(&c.location, Location::Host(h) if h.app_id.as_deref() == Some("42")));
        assert_eq!(c.wait, Wait::For(Duration::from_secs(5)));
        let line = hold_line(&c);
        assert_eq!(
            line.source,
            LineSource::Spec(linespec::parse("GPIO17").unwrap())
        );
        assert_eq!(line.polarity, Polarity::ActiveLow);

        // watch: its input from the command line, polarity and debounce
        // from the settings; UPDLOCK_WAIT and UPDLOCK_GPIO are not its own.
        let c = parse_env(&["watch", "--input", "GPIO27"], &env).unwrap();
        let Command::Watch {
            input, debounce, ..
        } = &c.command
        else {
            panic!("{:?}", c.command)
        };
        assert_eq!(
            input.source,
            LineSource::Spec(linespec::parse("GPIO27").unwrap())
        );
        assert_eq!(input.polarity, Polarity::ActiveLow);
        assert_eq!(*debounce, Duration::from_millis(300));

        let c = parse_env(&["safe"], &env).unwrap();
        assert!(
            matches!(&c.command, Command::Safe { line: Some(l) } if l.polarity == Polarity::ActiveLow)
        );
        let c = parse_env(&["safe"], &[]).unwrap();
        assert_eq!(c.command, Command::Safe { line: None });
    }

    #[test]
    fn the_command_line_wins_over_the_settings() {
        let env = [
            ("UPDLOCK_HOST", "yes"),
            ("UPDLOCK_APP_ID", "42"),
            ("UPDLOCK_GPIO", "GPIO17"),
            ("UPDLOCK_ACTIVE_LOW", "yes"),
            ("UPDLOCK_DEBOUNCE", "300ms"),
        ];
        // A location option replaces the whole location of the settings.
        let c = parse_env(&["--lock-dir", "/l", "hold"], &env).unwrap();
        assert_eq!(
            c.location,
            Location::Container {
                dir: Some("/l".into())
            }
        );
        // The host layout's details describe the device: they fill in
        // what a --host from the command line leaves open, and lose to
        // what it says.
        let app = |args: &[&str]| match parse_env(args, &env).unwrap().location {
            Location::Host(h) => h.app_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(app(&["--host", "status"]), Some("42".to_string()));
        assert_eq!(
            app(&["--host", "--app-id", "7", "status"]),
            Some("7".to_string())
        );
        // A line on the command line brings its own polarity: the
        // settings' active-low belongs to the settings' line.
        let c = parse_env(&["hold", "--gpio", "GPIO5"], &env).unwrap();
        let line = hold_line(&c);
        assert_eq!(
            line.source,
            LineSource::Spec(linespec::parse("GPIO5").unwrap())
        );
        assert_eq!(line.polarity, Polarity::ActiveHigh);
        let c = parse_env(&["watch", "--input", "GPIO27", "--debounce", "2s"], &env).unwrap();
        assert!(
            matches!(c.command, Command::Watch { debounce, .. } if debounce == Duration::from_secs(2))
        );
    }

    #[test]
    fn broken_settings_refuse_all_but_help() {
        let broken =
            || Settings::from_vars([(OsString::from("UPDLOCK_DEBOUNSE"), OsString::from("1s"))]);
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        for ok in [&["help"][..], &["--help"], &["run", "--help"], &["-V"]] {
            assert!(parse_under(args(ok), broken()).is_ok(), "{ok:?}");
        }
        // A program's argument that happens to read "help" is not help.
        for bad in [&["run", "--", "echo", "help"][..], &["hold"], &["status"]] {
            let e = parse_under(args(bad), broken()).unwrap_err();
            assert!(e.to_string().contains("UPDLOCK_DEBOUNSE"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn conflicting_settings_are_usage_errors() {
        for (env, text) in [
            (
                &[("UPDLOCK_HOST", "yes"), ("UPDLOCK_LOCK_DIR", "/l")][..],
                "choose one of UPDLOCK_LOCK_DIR, UPDLOCK_HOST=yes and UPDLOCK_LOCK",
            ),
            (&[("UPDLOCK_APP_ID", "42")][..], "go with the host layout"),
        ] {
            let e = parse_env(&["hold"], env).unwrap_err();
            assert!(e.to_string().contains(text), "{e}");
        }
    }

    #[test]
    fn run_with_program_and_its_flags() {
        let c = parse_str(&[
            "--lock-dir",
            "/l",
            "run",
            "--grace",
            "2s",
            "--",
            "sh",
            "-c",
            "x",
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Command::Run {
                line: None,
                grace: Duration::from_secs(2),
                program: "sh".into(),
                args: vec!["-c".into(), "x".into()],
                kick: false,
            }
        );
        assert_eq!(
            c.location,
            Location::Container {
                dir: Some("/l".into())
            }
        );
        // Without "--", the program's own flags still go to it.
        let c = parse_str(&["run", "ls", "-l", "--wait", "3s"]).unwrap();
        assert!(matches!(c.command, Command::Run { ref args, .. } if args.len() == 3));
        assert_eq!(c.wait, Wait::For(Duration::ZERO));
    }

    #[test]
    fn globals_after_the_subcommand() {
        let c = parse_str(&[
            "hold", "--for", "1m", "--wait", "forever", "-v", "--lock", "/a",
        ])
        .unwrap();
        assert_eq!(c.wait, Wait::Forever);
        assert_eq!(c.verbosity, 1);
        assert_eq!(c.location, Location::Files(vec!["/a".into()]));
        assert_eq!(
            c.command,
            Command::Hold {
                line: None,
                duration: Some(Duration::from_secs(60)),
                kick: false,
            }
        );
    }

    #[test]
    fn host_layout() {
        let c = parse_str(&["--host", "--app-id", "12", "status", "--json"]).unwrap();
        let Location::Host(h) = c.location else {
            panic!("not host")
        };
        assert_eq!(h.app_id.as_deref(), Some("12"));
        assert_eq!(h.services_root, PathBuf::from(SERVICES_ROOT));
        assert_eq!(c.command, Command::Status { json: true });
    }

    #[test]
    fn line_options() {
        let c = parse_str(&["hold", "--gpio", "GPIO17", "--active-low", "--safe", "high"]).unwrap();
        let l = hold_line(&c);
        assert_eq!(l.source, LineSource::Spec(LineSpec::Name("GPIO17".into())));
        assert_eq!(l.polarity, Polarity::ActiveLow);
        assert_eq!(l.safe, Some(Level::High));
        let c = parse_str(&[
            "watch",
            "--board",
            "rpi4b",
            "--pin",
            "11",
            "--debounce",
            "2s",
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Command::Watch {
                input: LineChoice {
                    source: LineSource::BoardPin {
                        board: "rpi4b".into(),
                        pin: 11
                    },
                    polarity: Polarity::ActiveHigh,
                    safe: None,
                },
                debounce: Duration::from_secs(2),
                kick: false,
            }
        );
        let c = parse_str(&["safe", "--gpio", "gpiochip0:17"]).unwrap();
        assert!(matches!(c.command, Command::Safe { .. }));
    }

    #[test]
    fn supervisor_options_are_global_and_kick_is_run_hold_and_watch() {
        let c = parse_str(&["status"]).unwrap();
        assert_eq!(
            c.supervisor,
            SupervisorFlags {
                address: None,
                api_key: None,
                timeout: supervisor::DEFAULT_TIMEOUT,
            }
        );
        let c = parse_str(&[
            "--supervisor-address",
            "http://127.0.0.1:48484",
            "hold",
            "--kick",
            "--supervisor-api-key",
            "k",
            "--api-timeout",
            "300ms",
        ])
        .unwrap();
        assert_eq!(
            c.supervisor.address,
            Some(Address::parse("http://127.0.0.1:48484").unwrap())
        );
        assert_eq!(c.supervisor.api_key.as_deref(), Some("k"));
        assert_eq!(c.supervisor.timeout, Duration::from_millis(300));
        assert!(matches!(c.command, Command::Hold { kick: true, .. }));
        let c = parse_str(&["run", "--kick", "--", "true", "--kick"]).unwrap();
        assert!(
            matches!(c.command, Command::Run { kick: true, ref args, .. } if args == &["--kick"])
        );
        let c = parse_str(&["watch", "--kick", "--input", "file:/x"]).unwrap();
        assert!(matches!(c.command, Command::Watch { kick: true, .. }));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["run"][..],
            &[],
            &["frobnicate"],
            &["hold", "--for", "soon"],
            &["hold", "--grace", "1s"],
            &["status", "--wait", "1s"],
            &["--lock-dir", "/a", "--host", "hold"],
            &["--lock", "/a", "--lock-dir", "/b", "hold"],
            &["--app-id", "1", "hold"],
            &["--wait", "-1", "hold"],
            &["hold", "extra"],
            &["--lock-dir"],
            &["hold", "--gpio", ""],
            &["hold", "--gpio", "gpiochip0:x"],
            &[
                "hold", "--gpio", "GPIO17", "--board", "rpi4b", "--pin", "11",
            ],
            &["hold", "--board", "rpi4b"],
            &["hold", "--pin", "11"],
            &["hold", "--pin", "eleven", "--board", "rpi4b"],
            &["hold", "--active-low"],
            &["hold", "--gpio", "GPIO17", "--safe", "off"],
            &["watch"],
            &["watch", "--gpio", "GPIO17"],
            &["safe", "--gpio", "GPIO17", "--wait", "1s"],
            &["status", "--gpio", "GPIO17"],
            &["run", "--input", "GPIO17", "--", "true"],
            &["status", "--kick"],
            &["safe", "--gpio", "GPIO17", "--kick"],
            &["--kick", "hold"],
            &["--supervisor-address", "127.0.0.1:48484", "status"],
            &["--supervisor-address", "https://127.0.0.1:48484", "status"],
            &["--supervisor-address", "http://supervisor:48484", "status"],
            &["--supervisor-api-key", "", "status"],
            &["--api-timeout", "0", "status"],
            &["--api-timeout", "soon", "status"],
        ] {
            assert!(parse_str(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// Found by the cli fuzzer: an argument or a setting with a newline or
    /// an escape sequence in it made a refusal of several lines, or one that
    /// drives the terminal.
    #[test]
    fn a_refusal_is_one_line_whatever_the_arguments_hold() {
        for (args, vars, shown) in [
            (&["hold", "--\x03gpio"][..], &[][..], "'--\\u{3}gpio'"),
            (&["--bo\x1b[2Jgus", "status"], &[], "--bo\\u{1b}[2Jgus"),
            (&["hold", "--for", "1\nfortnight"], &[], "1\\nfortnight"),
            (&["hold", "--gpio", "GPIO\r17"], &[], "GPIO\\r17"),
            (&["hold"], &[("UPDLOCK_WAIT", "so\non")], "so\\non"),
        ] {
            let settings = Settings::from_vars(
                vars.iter()
                    .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            );
            let e = parse_under(args.iter().map(OsString::from), settings).unwrap_err();
            let text = e.to_string();
            assert!(!text.chars().any(char::is_control), "{args:?}: {text:?}");
            assert!(text.contains(shown), "{args:?}: {text:?}");
        }
    }

    /// Found by the cli fuzzer: 128 `-v` wrapped the verbosity round to
    /// the quietest level (and overflowed in a debug build).
    #[test]
    fn many_q_or_v_saturate() {
        let many_v = format!("-{}", "v".repeat(300));
        let c = parse_str(&[&many_v, "status"]).unwrap();
        assert_eq!(c.verbosity, i8::MAX);
        let many_q = format!("-{}", "q".repeat(300));
        let c = parse_str(&[&many_q, "status", "-v"]).unwrap();
        assert_eq!(c.verbosity, i8::MIN + 1);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_str(&["--help"]).unwrap().command, Command::Help(None));
        assert_eq!(
            parse_str(&["run", "--help"]).unwrap().command,
            Command::Help(Some("run".into()))
        );
        assert_eq!(
            parse_str(&["help", "status"]).unwrap().command,
            Command::Help(Some("status".into()))
        );
        assert_eq!(parse_str(&["-V"]).unwrap().command, Command::Version);
    }

    #[test]
    fn the_readme_lists_every_exit_code() {
        let readme = include_str!("../../README.md");
        for e in exit::Exit::ALL {
            let row = format!("| {} | {} |", e.code(), e.meaning());
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    #[test]
    fn every_help_lists_every_exit_code() {
        for topic in [
            None,
            Some("run"),
            Some("hold"),
            Some("status"),
            Some("watch"),
            Some("safe"),
        ] {
            let h = help(topic);
            for e in exit::Exit::ALL {
                assert!(
                    h.contains(&format!("{:>3}  {}", e.code(), e.meaning())),
                    "{topic:?} lacks {e:?}"
                );
            }
        }
    }
}
