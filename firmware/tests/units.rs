//! The systemd units that meta-updlock installs, run as written: their
//! command lines are read from the unit file, expanded the way systemd
//! expands them (the instance, `$VAR` from the `EnvironmentFile=`), and run
//! against a temporary host layout. A unit that drifts from the command line
//! or from the settings updlock accepts fails here, not on a device.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const FILES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../yocto/meta-updlock/recipes-support/updlock/files"
);

/// The `[Service]` keys of a unit file (the last value of each, as systemd
/// keeps for these).
fn service_section(unit: &str) -> BTreeMap<String, String> {
    let text = fs::read_to_string(Path::new(FILES).join(unit)).unwrap();
    let mut section = "";
    let mut keys = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.starts_with('#') && !line.is_empty() {
            let (k, v) = line.split_once('=').expect("a Key=Value line");
            keys.insert(k.to_string(), v.to_string());
        }
    }
    keys
}

/// An environment file as systemd reads it: KEY=VALUE lines, comments,
/// optional quotes.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// An `Exec*=` line as systemd turns it into an argv: the executable prefix
/// characters dropped, `%I` the instance, `@BINDIR@` what the recipe puts
/// there, `$VAR` split into words (gone when empty), `${VAR}` one word.
fn argv(line: &str, instance: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    // systemd's prefixes ("-" ignore failure, "@" argv0, ...), not to be
    // confused with the recipe's @BINDIR@ placeholder.
    let mut line = line;
    while !line.starts_with("@BINDIR@") && line.starts_with(['-', '@', ':', '+', '!']) {
        line = &line[1..];
    }
    let mut words = Vec::new();
    for word in line.split_whitespace() {
        let word = word.replace("%I", instance).replace("%i", instance);
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            words.push(env.get(name).cloned().unwrap_or_default());
        } else if let Some(name) = word.strip_prefix('$') {
            words.extend(
                env.get(name)
                    .into_iter()
                    .flat_map(|v| v.split_whitespace().map(String::from)),
            );
        } else {
            words.push(word);
        }
    }
    assert!(
        words[0].starts_with("@BINDIR@/updlock"),
        "the unit runs {} instead of updlock",
        words[0]
    );
    words
}

/// The argv as a command: updlock from the test build (through the
/// emulator when the suite runs emulated), with exactly `env`'s settings.
fn command(argv: &[String], env: &BTreeMap<String, String>) -> Command {
    let mut c = updlock();
    c.args(&argv[1..]).envs(env);
    c
}

/// A host layout with one service directory (SPEC §1: the supervisor's
/// `/tmp/balena-supervisor/services/<appId>/<service>`), an input and an
/// actuator line standing in files, and the unit's environment: the
/// shipped /etc/default/updlock, the image's settings (the recipe's default,
/// the host layout), and the places of this test.
struct Host {
    t: TempDir,
    service_dir: PathBuf,
    input: PathBuf,
    actuator: PathBuf,
    env: BTreeMap<String, String>,
}

impl Host {
    fn new(extra: &[(&str, &str)]) -> Host {
        let t = tempdir();
        let root = t.path().join("services");
        let service_dir = root.join("1234567").join("press");
        fs::create_dir_all(&service_dir).unwrap();
        let input = t.path().join("input");
        fs::write(&input, "0\n").unwrap();
        let actuator = t.path().join("actuator");
        let shipped = fs::read_to_string(Path::new(FILES).join("updlock.default")).unwrap();
        let mut env: BTreeMap<String, String> = environment_file(&shipped).into_iter().collect();
        env.insert("UPDLOCK_HOST".into(), "yes".into());
        env.insert("UPDLOCK_SERVICES_ROOT".into(), s(&root));
        env.insert("UPDLOCK_DEBOUNCE".into(), "100ms".into());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        Host {
            t,
            service_dir,
            input,
            actuator,
            env,
        }
    }

    fn instance(&self) -> String {
        format!("file:{}", s(&self.input))
    }

    fn set_input(&self, level: &str) {
        append(&self.input, &format!("{level}\n"));
    }
}

fn last_line(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_watch_unit_holds_the_host_lock_while_its_input_is_active() {
    let unit = service_section("updlock-watch@.service");
    assert_eq!(unit["Type"], "notify");
    assert_eq!(unit["EnvironmentFile"], "-/etc/default/updlock");
    let h = Host::new(&[]);
    let start = argv(&unit["ExecStart"], &h.instance(), &h.env);

    let socket = h.t.path().join("notify");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut c = command(&start, &h.env);
    c.env("NOTIFY_SOCKET", &socket);
    let mut w = Proc::spawn(&mut c);
    assert_eq!(notification(&sock), "READY=1");
    assert_empty(&h.service_dir);

    h.set_input("1");
    w.wait_stderr("input active: lock taken");
    assert_names(&h.service_dir, &LOCK_NAMES);
    h.set_input("0");
    w.wait_stderr("lock released");
    assert_empty(&h.service_dir);

    h.set_input("1");
    w.wait_stderr("input active: lock taken");
    w.signal(SIGTERM);
    assert_eq!(notification(&sock), "STOPPING=1");
    w.finish().code_is(0);
    assert_empty(&h.service_dir);
}

#[test]
fn the_stop_step_makes_the_configured_actuator_safe() {
    let unit = service_section("updlock-watch@.service");
    for active_low in ["no", "yes"] {
        let h = Host::new(&[("UPDLOCK_ACTIVE_LOW", active_low)]);
        let mut env = h.env.clone();
        env.insert("UPDLOCK_GPIO".into(), format!("file:{}", s(&h.actuator)));
        // What a SIGKILLed holder leaves on a Raspberry Pi: the line active.
        let (active, safe) = if active_low == "yes" {
            ("0", "1")
        } else {
            ("1", "0")
        };
        fs::write(&h.actuator, format!("{active}\n")).unwrap();
        let stop = argv(&unit["ExecStopPost"], &h.instance(), &env);
        run(&mut command(&stop, &env)).code_is(0);
        assert_eq!(last_line(&h.actuator), safe, "active low: {active_low}");
        assert_empty(&h.service_dir);
    }
}

#[test]
fn the_stop_step_without_an_actuator_does_nothing() {
    let unit = service_section("updlock-watch@.service");
    let h = Host::new(&[]);
    let stop = argv(&unit["ExecStopPost"], &h.instance(), &h.env);
    run(&mut command(&stop, &h.env))
        .code_is(0)
        .stderr_has(&["no actuator line"]);
    assert!(!h.actuator.exists());
}

#[test]
fn a_misspelt_setting_stops_the_unit_with_its_name() {
    let unit = service_section("updlock-watch@.service");
    let h = Host::new(&[("UPDLOCK_DEBOUNSE", "2s")]);
    let start = argv(&unit["ExecStart"], &h.instance(), &h.env);
    run(&mut command(&start, &h.env)).refused(64, &["UPDLOCK_DEBOUNSE", "not an updlock setting"]);
    assert_empty(&h.service_dir);

    let h = Host::new(&[("UPDLOCK_DEBOUNCE", "soon")]);
    let start = argv(&unit["ExecStart"], &h.instance(), &h.env);
    run(&mut command(&start, &h.env)).refused(64, &["UPDLOCK_DEBOUNCE='soon'"]);
}

#[test]
fn every_setting_is_documented_in_the_shipped_file() {
    let shipped = fs::read_to_string(Path::new(FILES).join("updlock.default")).unwrap();
    let help = run(updlock().args(["help", "settings"]))
        .code_is(0)
        .stdout
        .clone();
    // Every UPDLOCK_ name the help mentions, in prose too ("(UPDLOCK_X,").
    for key in help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("UPDLOCK_"))
    {
        assert!(
            shipped.contains(key),
            "{key} is a setting but /etc/default/updlock does not mention it"
        );
    }
}
