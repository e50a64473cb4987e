//! The supervisor API's JSON reader (`supervisor::json`).
//!
//! Properties: any bytes are an object's members or an error, never a
//! panic or a stack overflow; `get` takes the last member of a name; the
//! reader agrees with serde_json on what is JSON (serde_json only checking
//! the grammar, and the texts compared nested at most 32 deep, the
//! reader's limit), on which JSON is an object, and on the top-level
//! members' names and their true/false/null values; an object written
//! from members reads back as them; `Device::from_json` reads the same
//! members' flags.
#![no_main]

use std::fmt;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use updlock::supervisor::json::{self, JsonError, Scalar};
use updlock::supervisor::Device;

/// The deepest nesting of brackets outside strings (a rough count: escapes
/// are skipped; only used on texts serde_json accepts).
fn depth(text: &[u8]) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in text {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                d += 1;
                max = max.max(d)
            }
            b'}' | b']' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// One value as the reader classifies it.
struct Classified(Scalar);

impl<'de> de::Deserialize<'de> for Classified {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Classified;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Classified, E> {
                Ok(Classified(Scalar::Bool(b)))
            }
            fn visit_unit<E>(self) -> Result<Classified, E> {
                Ok(Classified(Scalar::Null))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Classified, E> {
                Ok(Classified(Scalar::Other))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Classified, E> {
                Ok(Classified(Scalar::Other))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Classified, E> {
                Ok(Classified(Scalar::Other))
            }
            fn visit_str<E>(self, _: &str) -> Result<Classified, E> {
                Ok(Classified(Scalar::Other))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Classified, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Classified(Scalar::Other))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Classified, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Classified(Scalar::Other))
            }
        }
        d.deserialize_any(V)
    }
}

/// The top-level members, in order, as serde_json reads them.
struct Members(Vec<(String, Scalar)>);

impl<'de> de::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Members, A::Error> {
                let mut m = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Classified>()? {
                    m.push((k, v.0));
                }
                Ok(Members(m))
            }
        }
        d.deserialize_map(V)
    }
}

fn check_any(text: &[u8]) {
    let ours = json::object(text);
    // What updlock reads of `GET /v1/device`: the same members' flags.
    match (Device::from_json(text), &ours) {
        (Ok(d), Ok(m)) => {
            let flag = |name| match json::get(m, name) {
                Some(Scalar::Bool(b)) => Some(b),
                _ => None,
            };
            assert_eq!(
                (d.update_pending, d.update_downloaded, d.update_failed),
                (
                    flag("update_pending"),
                    flag("update_downloaded"),
                    flag("update_failed")
                )
            );
        }
        (Err(e), Err(f)) => assert_eq!(&e, f),
        (d, _) => panic!("from_json says {d:?}, object says {ours:?}"),
    }
    if let Ok(m) = &ours {
        for (name, _) in m {
            let last = m.iter().rev().find(|(n, _)| n == name).map(|(_, v)| *v);
            assert_eq!(json::get(m, name), last);
        }
    }
    if let Err(JsonError::Syntax { at, .. }) = &ours {
        assert!(*at <= text.len(), "{ours:?}");
    }
    if depth(text) > 32 {
        // Past the reader's limit: it refuses what serde_json may read.
        return;
    }
    // serde_json does not check UTF-8 inside strings it ignores; JSON is UTF-8.
    let grammar =
        std::str::from_utf8(text).is_ok() && serde_json::from_slice::<IgnoredAny>(text).is_ok();
    let is_object = text.iter().find(|b| !b" \t\n\r".contains(b)) == Some(&b'{');
    match (&ours, grammar) {
        (Ok(_), true) => assert!(is_object),
        (Err(JsonError::NotObject), true) => assert!(!is_object),
        (Err(e), true) => panic!("serde_json reads it, we say {e:?}"),
        (Err(JsonError::NotObject) | Ok(_), false) => {
            panic!("serde_json refuses it, we say {ours:?}")
        }
        (Err(_), false) => {}
    }
    if let (Ok(m), Ok(Members(theirs))) = (&ours, serde_json::from_slice::<Members>(text)) {
        assert_eq!(m, &theirs);
    }
}

fuzz_target!(|data: &[u8]| {
    check_any(data);
    // An object written from members reads back as them.
    let mut u = Unstructured::new(data);
    let Ok(members) = Vec::<(String, u8)>::arbitrary(&mut u) else {
        return;
    };
    let members: Vec<(String, Scalar)> = members
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                [
                    Scalar::Bool(true),
                    Scalar::Bool(false),
                    Scalar::Null,
                    Scalar::Other,
                ][usize::from(v % 4)],
            )
        })
        .collect();
    let mut text = String::from("{");
    for (i, (name, v)) in members.iter().enumerate() {
        let value = match v {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".into(),
            Scalar::Other => format!("[{{\"x\":-1.5e+3}},\"\\u00e9\",{i}]"),
        };
        let sep = if i == 0 { "" } else { " ,\n" };
        text += &format!("{sep}{} :{value}", serde_json::to_string(name).unwrap());
    }
    text += "}";
    assert_eq!(json::object(text.as_bytes()), Ok(members), "{text}");
    check_any(text.as_bytes());
});
