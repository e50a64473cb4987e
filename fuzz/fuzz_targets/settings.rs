//! The environment settings (`settings::Settings::from_vars`).
//!
//! Properties: any environment (names and values any bytes) gives settings
//! or an error that names an `UPDLOCK_` variable that was given: the least
//! unknown name, else a setting with a bad value; the result does not
//! depend on the order of the variables; variables not starting with
//! `UPDLOCK_` change nothing; each setting found is its variable's value,
//! trimmed and read by the same parser as its option, and an empty or
//! absent variable leaves it unset.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use updlock::duration::{self, Wait};
use updlock::linespec;
use updlock::settings::{Settings, SettingsError, KEYS};

/// Test hooks that updlock reads and does not take for settings: the
/// second only in a build with debug assertions (as the fuzzer's is, and
/// then for every crate alike).
#[cfg(debug_assertions)]
const NOT_SETTINGS: &[&str] = &["UPDLOCK_TEST_RUNNER", "UPDLOCK_TEST_PAUSE_AT"];
#[cfg(not(debug_assertions))]
const NOT_SETTINGS: &[&str] = &["UPDLOCK_TEST_RUNNER"];

const VALUES: &[&str] = &[
    "",
    " ",
    "yes",
    "No",
    "TRUE",
    "off",
    "1",
    "0",
    "maybe",
    "5s",
    " 1.5m ",
    "forever",
    "10x",
    "GPIO17",
    "gpiochip0:17",
    "file:/tmp/x",
    "17",
    "/tmp/balena",
    "a b  c",
    "\u{a0}yes\u{a0}",
];

fn name(u: &mut Unstructured) -> libfuzzer_sys::arbitrary::Result<OsString> {
    Ok(match u.int_in_range(0..=5)? {
        0..=2 => u.choose(KEYS)?.0.into(),
        3 => format!("UPDLOCK_{}", String::arbitrary(u)?).into(),
        4 => (*u.choose(&["UPDLOCK_TEST_RUNNER", "UPDLOCK_TEST_PAUSE_AT"])?).into(),
        _ => OsString::from_vec(Vec::<u8>::arbitrary(u)?),
    })
}

fn value(u: &mut Unstructured) -> libfuzzer_sys::arbitrary::Result<OsString> {
    Ok(match u.int_in_range(0..=2)? {
        0 => (*u.choose(VALUES)?).into(),
        1 => String::arbitrary(u)?.into(),
        _ => OsString::from_vec(Vec::<u8>::arbitrary(u)?),
    })
}

/// The variable's value as the settings read it: trimmed text, `None` if empty.
fn text_of(vars: &[(OsString, OsString)], key: &str) -> Option<Result<String, ()>> {
    let (_, v) = vars.iter().find(|(k, _)| k == key)?;
    match v.to_str() {
        None => Some(Err(())),
        Some(t) if t.trim().is_empty() => None,
        Some(t) => Some(Ok(t.trim().to_string())),
    }
}

fn yes_no(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn check(vars: Vec<(OsString, OsString)>) {
    let got = Settings::from_vars(vars.clone());
    let reversed: Vec<_> = vars.iter().rev().cloned().collect();
    assert_eq!(
        Settings::from_vars(reversed),
        got,
        "the order of {vars:?} matters"
    );
    let ours: Vec<_> = vars
        .iter()
        .filter(|(k, _)| k.to_string_lossy().starts_with("UPDLOCK_"))
        .cloned()
        .collect();
    assert_eq!(
        Settings::from_vars(ours),
        got,
        "a variable not UPDLOCK_* matters in {vars:?}"
    );
    let unknown = vars
        .iter()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .filter(|k| k.starts_with("UPDLOCK_"))
        .filter(|k| !NOT_SETTINGS.contains(&k.as_str()) && !KEYS.iter().any(|(n, _, _)| n == k))
        .min();
    let s = match (&got, unknown) {
        (Err(e @ SettingsError::Unknown { key, .. }), Some(least)) => {
            assert_eq!(key, &least);
            assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
            return;
        }
        (got, Some(least)) => panic!("{least} is unknown, but got {got:?}"),
        (Err(e @ SettingsError::BadValue { key, .. }), None) => {
            assert!(key.starts_with("UPDLOCK_") && KEYS.iter().any(|(n, _, _)| n == key));
            assert!(vars.iter().any(|(k, _)| k == key), "{key} was not given");
            assert!(e.to_string().starts_with(&format!("{key}='")), "{e}");
            return;
        }
        (Err(e), None) => panic!("{e:?} for no unknown name"),
        (Ok(s), None) => s,
    };
    // Every setting is its variable, read as its option is.
    let t = |key: &str| text_of(&vars, key).map(|r| r.expect("non-UTF-8 value accepted"));
    let switch = |key: &str| t(key).map(|v| yes_no(&v).expect("bad yes/no accepted"));
    assert_eq!(s.lock_dir, t("UPDLOCK_LOCK_DIR").map(PathBuf::from));
    assert_eq!(
        s.services_root,
        t("UPDLOCK_SERVICES_ROOT").map(PathBuf::from)
    );
    assert_eq!(s.helios_root, t("UPDLOCK_HELIOS_ROOT").map(PathBuf::from));
    assert_eq!(s.app_id, t("UPDLOCK_APP_ID"));
    assert_eq!(s.service, t("UPDLOCK_SERVICE"));
    assert_eq!(s.host, switch("UPDLOCK_HOST"));
    assert_eq!(s.active_low, switch("UPDLOCK_ACTIVE_LOW"));
    assert_eq!(s.input_active_low, switch("UPDLOCK_INPUT_ACTIVE_LOW"));
    assert_eq!(s.wait, t("UPDLOCK_WAIT").map(|v| Wait::parse(&v).unwrap()));
    assert_eq!(
        s.debounce,
        t("UPDLOCK_DEBOUNCE").map(|v| duration::parse(&v).unwrap())
    );
    assert_eq!(
        s.gpio,
        t("UPDLOCK_GPIO").map(|v| linespec::parse(&v).unwrap())
    );
    let locks: Vec<PathBuf> = t("UPDLOCK_LOCK")
        .map(|v| v.split_whitespace().map(PathBuf::from).collect())
        .unwrap_or_default();
    assert_eq!(s.locks, locks);
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut vars: Vec<(OsString, OsString)> = Vec::new();
    while !u.is_empty() && vars.len() < 16 {
        let (Ok(k), Ok(v)) = (name(&mut u), value(&mut u)) else {
            break;
        };
        // An environment has each name once.
        if !vars.iter().any(|(n, _)| *n == k) {
            vars.push((k, v));
        }
    }
    if u.arbitrary::<bool>().unwrap_or(false) && !vars.iter().any(|(n, _)| n == "PATH") {
        vars.push(("PATH".into(), "/usr/bin".into()));
    }
    check(vars);
});
