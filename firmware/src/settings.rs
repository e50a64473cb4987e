//! Settings from the environment: every `UPDLOCK_*` variable, validated.
//!
//! One set of names configures updlock wherever it runs: systemd's
//! `EnvironmentFile=/etc/default/updlock` on the host OS, `environment:` in a
//! container's docker-compose.yml. A command-line option always wins over
//! its variable. Every `UPDLOCK_*` variable is checked at start, whether the
//! subcommand uses it or not, so that a misspelt key (`UPDLOCK_DEBOUNSE`) or
//! a bad value is one clear error naming it instead of a setting silently
//! ignored. An empty value counts as unset, as `KEY=` in an environment
//! file means.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::{self, Wait};
use crate::linespec::{self, LineSpec};

/// The variables, their values and what they mean: the one table behind
/// parsing, the help text and the documentation check.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "UPDLOCK_LOCK_DIR",
        "DIR",
        "the lock directory (as --lock-dir)",
    ),
    (
        "UPDLOCK_HOST",
        "yes|no",
        "lock the host OS layout (as --host)",
    ),
    (
        "UPDLOCK_SERVICES_ROOT",
        "DIR",
        "the host layout's service directories (as --services-root)",
    ),
    (
        "UPDLOCK_HELIOS_ROOT",
        "DIR",
        "Helios's app directories (as --helios-root)",
    ),
    (
        "UPDLOCK_APP_ID",
        "ID",
        "with the host layout, only this app (as --app-id)",
    ),
    (
        "UPDLOCK_SERVICE",
        "NAME",
        "with the host layout, only this service (as --service)",
    ),
    (
        "UPDLOCK_LOCK",
        "FILE...",
        "lock exactly these files, space-separated (as --lock)",
    ),
    (
        "UPDLOCK_WAIT",
        "DURATION",
        "wait for a held lock (as --wait; not for watch)",
    ),
    (
        "UPDLOCK_GPIO",
        "LINE",
        "the actuator line of run, hold and safe (as --gpio)",
    ),
    (
        "UPDLOCK_ACTIVE_LOW",
        "yes|no",
        "the actuator is on when low (as --active-low)",
    ),
    (
        "UPDLOCK_INPUT_ACTIVE_LOW",
        "yes|no",
        "watch's input is active when low",
    ),
    (
        "UPDLOCK_DEBOUNCE",
        "DURATION",
        "watch's debounce (as --debounce)",
    ),
];

/// Variables with the prefix that are not settings: the test harness's
/// emulator (firmware/tests/common), which reaches updlock's environment
/// when the suite runs under qemu-user.
#[cfg(not(debug_assertions))]
const NOT_SETTINGS: &[&str] = &["UPDLOCK_TEST_RUNNER"];
/// In a debug build, also the test-only pause of
/// [`crate::section::test_pause`].
#[cfg(debug_assertions)]
const NOT_SETTINGS: &[&str] = &["UPDLOCK_TEST_RUNNER", "UPDLOCK_TEST_PAUSE_AT"];

/// The settings found; `None` or empty where the variable is unset.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `UPDLOCK_LOCK_DIR`.
    pub lock_dir: Option<PathBuf>,
    /// `UPDLOCK_HOST`.
    pub host: Option<bool>,
    /// `UPDLOCK_SERVICES_ROOT`.
    pub services_root: Option<PathBuf>,
    /// `UPDLOCK_HELIOS_ROOT`.
    pub helios_root: Option<PathBuf>,
    /// `UPDLOCK_APP_ID`.
    pub app_id: Option<String>,
    /// `UPDLOCK_SERVICE`.
    pub service: Option<String>,
    /// `UPDLOCK_LOCK`.
    pub locks: Vec<PathBuf>,
    /// `UPDLOCK_WAIT`.
    pub wait: Option<Wait>,
    /// `UPDLOCK_GPIO`.
    pub gpio: Option<LineSpec>,
    /// `UPDLOCK_ACTIVE_LOW`.
    pub active_low: Option<bool>,
    /// `UPDLOCK_INPUT_ACTIVE_LOW`.
    pub input_active_low: Option<bool>,
    /// `UPDLOCK_DEBOUNCE`.
    pub debounce: Option<Duration>,
}

/// A variable updlock cannot use; exit 64, as a bad option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// An `UPDLOCK_*` name that is not a setting (a typo, most likely).
    #[error("{key}: not an updlock setting (the settings: {known})")]
    Unknown {
        /// The variable's name.
        key: String,
        /// Every setting's name, for the message.
        known: String,
    },
    /// A setting whose value does not parse.
    #[error("{key}='{value}': {reason}")]
    BadValue {
        /// The variable's name.
        key: &'static str,
        /// Its value, as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Settings {
    /// The settings in the process's environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_vars(std::env::vars_os())
    }

    /// The settings among `vars` (name, value pairs); other variables are
    /// ignored.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Settings, SettingsError> {
        let found: Vec<(String, OsString)> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                let k = k.to_string_lossy().into_owned();
                (k.starts_with("UPDLOCK_") && !NOT_SETTINGS.contains(&k.as_str())).then_some((k, v))
            })
            .collect();
        // Unknown names first, the least by name, so the message does not
        // depend on the environment's order (min, not a sort: a sort
        // instantiates a few KiB of code in a binary with a size goal).
        if let Some(name) = found
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !KEYS.iter().any(|(key, _, _)| key == k))
            .min()
        {
            return Err(SettingsError::Unknown {
                key: name.clone(),
                known: KEYS
                    .iter()
                    .map(|(k, _, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut s = Settings::default();
        // Then the values, in the order of KEYS.
        for &(key, _, _) in KEYS {
            let Some((_, value)) = found.iter().find(|(k, _)| k == key) else {
                continue;
            };
            let Some(text) = text(key, value)? else {
                continue;
            };
            // The parsers quote the text themselves; the message quotes
            // it once, after the name.
            let bad = |reason: String| SettingsError::BadValue {
                key,
                value: text.clone(),
                reason: reason
                    .strip_prefix(&format!("'{text}': "))
                    .map_or_else(|| reason.clone(), str::to_string),
            };
            match key {
                "UPDLOCK_LOCK_DIR" => s.lock_dir = Some(PathBuf::from(&text)),
                "UPDLOCK_HOST" => s.host = Some(yes_no(&text).map_err(bad)?),
                "UPDLOCK_SERVICES_ROOT" => s.services_root = Some(PathBuf::from(&text)),
                "UPDLOCK_HELIOS_ROOT" => s.helios_root = Some(PathBuf::from(&text)),
                "UPDLOCK_APP_ID" => s.app_id = Some(text),
                "UPDLOCK_SERVICE" => s.service = Some(text),
                "UPDLOCK_LOCK" => s.locks = text.split_whitespace().map(PathBuf::from).collect(),
                "UPDLOCK_WAIT" => {
                    s.wait = Some(Wait::parse(&text).map_err(|e| bad(e.to_string()))?)
                }
                "UPDLOCK_GPIO" => {
                    s.gpio = Some(linespec::parse(&text).map_err(|e| bad(e.to_string()))?)
                }
                "UPDLOCK_ACTIVE_LOW" => s.active_low = Some(yes_no(&text).map_err(bad)?),
                "UPDLOCK_INPUT_ACTIVE_LOW" => {
                    s.input_active_low = Some(yes_no(&text).map_err(bad)?)
                }
                "UPDLOCK_DEBOUNCE" => {
                    s.debounce = Some(duration::parse(&text).map_err(|e| bad(e.to_string()))?)
                }
                _ => unreachable!("every entry of KEYS is matched above"),
            }
        }
        Ok(s)
    }
}

/// The value as text; `None` when empty (unset).
fn text(key: &'static str, value: &OsStr) -> Result<Option<String>, SettingsError> {
    let text = value.to_str().ok_or_else(|| SettingsError::BadValue {
        key,
        value: value.to_string_lossy().into_owned(),
        reason: "not valid UTF-8".into(),
    })?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// The spellings of a switch that environment files use.
fn yes_no(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err("not yes or no (also: true/false, on/off, 1/0)".into()),
    }
}

/// The settings as help text: one line each.
pub fn help() -> String {
    let mut out = String::new();
    for (key, value, meaning) in KEYS {
        let left = format!("{key}={value}");
        out.push_str(&format!("  {left:<34}{meaning}\n"));
    }
    out
}

#[cfg(test)]
mod tests;
