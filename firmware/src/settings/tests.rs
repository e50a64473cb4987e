use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

fn parse(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::from_vars(vars(pairs))
}

#[test]
fn every_setting_is_read() {
    let s = parse(&[
        ("UPDLOCK_LOCK_DIR", "/tmp/balena"),
        ("UPDLOCK_HOST", "yes"),
        ("UPDLOCK_SERVICES_ROOT", "/tmp/s"),
        ("UPDLOCK_HELIOS_ROOT", "/run/h"),
        ("UPDLOCK_APP_ID", "1234567"),
        ("UPDLOCK_SERVICE", "press"),
        ("UPDLOCK_LOCK", "/run/a.lock  /run/b.lock"),
        ("UPDLOCK_WAIT", "forever"),
        ("UPDLOCK_GPIO", "GPIO17"),
        ("UPDLOCK_ACTIVE_LOW", "true"),
        ("UPDLOCK_INPUT_ACTIVE_LOW", "off"),
        ("UPDLOCK_DEBOUNCE", "250ms"),
    ])
    .unwrap();
    assert_eq!(s.lock_dir, Some(PathBuf::from("/tmp/balena")));
    assert_eq!(s.host, Some(true));
    assert_eq!(s.services_root, Some(PathBuf::from("/tmp/s")));
    assert_eq!(s.helios_root, Some(PathBuf::from("/run/h")));
    assert_eq!(s.app_id.as_deref(), Some("1234567"));
    assert_eq!(s.service.as_deref(), Some("press"));
    assert_eq!(
        s.locks,
        vec![PathBuf::from("/run/a.lock"), PathBuf::from("/run/b.lock")]
    );
    assert_eq!(s.wait, Some(Wait::Forever));
    assert_eq!(s.gpio, Some(linespec::parse("GPIO17").unwrap()));
    assert_eq!(s.active_low, Some(true));
    assert_eq!(s.input_active_low, Some(false));
    assert_eq!(s.debounce, Some(Duration::from_millis(250)));
}

#[test]
fn other_variables_and_empty_values_are_ignored() {
    let s = parse(&[
        ("PATH", "/bin"),
        ("UPDLOCK_DEBOUNCE", ""),
        ("UPDLOCK_GPIO", "   "),
        ("UPDLOCK_TEST_RUNNER", "qemu-arm"),
        ("XUPDLOCK_NOPE", "1"),
    ])
    .unwrap();
    assert_eq!(s, Settings::default());
}

#[test]
fn a_misspelt_key_is_named() {
    let e = parse(&[("UPDLOCK_DEBOUNSE", "2s")]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("UPDLOCK_DEBOUNSE: not an updlock setting"),
        "{text}"
    );
    assert!(
        text.contains("UPDLOCK_DEBOUNCE"),
        "lists the real names: {text}"
    );
}

#[test]
fn a_bad_value_is_named_with_the_reason() {
    for (key, value, reason) in [
        ("UPDLOCK_DEBOUNCE", "2x", "unit"),
        ("UPDLOCK_HOST", "maybe", "not yes or no"),
        ("UPDLOCK_ACTIVE_LOW", "2", "not yes or no"),
        ("UPDLOCK_WAIT", "soon", ""),
        ("UPDLOCK_GPIO", "gpiochip0:x", ""),
    ] {
        let e = parse(&[(key, value)]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{key}='{value}': ")),
            "{key}: {text}"
        );
        assert!(text.contains(reason), "{key}: {text}");
        // Quoted once: the parsers' own "'VALUE': " is not repeated.
        assert_eq!(text.matches(&format!("'{value}'")).count(), 1, "{text}");
    }
}

#[test]
fn the_first_bad_variable_by_name_is_reported() {
    let e = parse(&[("UPDLOCK_ZZZ", "1"), ("UPDLOCK_AAA", "1")]).unwrap_err();
    assert!(e.to_string().starts_with("UPDLOCK_AAA:"), "{e}");
}

#[test]
fn help_lists_every_key() {
    let h = help();
    for (key, _, _) in KEYS {
        assert!(h.contains(key), "{key} missing from help");
    }
}
