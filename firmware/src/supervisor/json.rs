//! Just enough JSON to read a few top-level fields of one object.
//!
//! The whole text is checked against the grammar (RFC 8259), so an answer
//! that is cut short or is not JSON at all is an error rather than a field
//! quietly read as missing; only the top-level members' names and their
//! `true`/`false`/`null` values are kept. A JSON crate would cost more of the
//! binary's size budget than the supervisor's few fields are worth.

/// A top-level member's value, as far as updlock cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A string, a number, an object or an array.
    Other,
}

/// Why a text is not the JSON object expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not valid UTF-8.
    #[error("not JSON: not UTF-8")]
    Utf8,
    /// Well-formed, but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// The grammar was broken at this byte.
    #[error("not JSON: {what} at byte {at}")]
    Syntax {
        /// What was expected or found.
        what: &'static str,
        /// Its byte offset.
        at: usize,
    },
}

/// Nesting deeper than this is refused rather than followed: the recursion
/// must not be something an answer can exhaust.
const MAX_DEPTH: usize = 32;

/// The members of the object `text`, in order (a repeated name appears
/// twice; [`get`] takes the last, as most readers do).
pub fn object(text: &[u8]) -> Result<Vec<(String, Scalar)>, JsonError> {
    std::str::from_utf8(text).map_err(|_| JsonError::Utf8)?;
    let mut p = Parser { s: text, at: 0 };
    p.ws();
    if p.peek() != Some(b'{') {
        // Still say "not JSON" for garbage, "not an object" for JSON.
        p.value(0)?;
        p.end()?;
        return Err(JsonError::NotObject);
    }
    let mut members = Vec::new();
    p.object(0, Some(&mut members))?;
    p.end()?;
    Ok(members)
}

/// The last member called `name`.
pub fn get(members: &[(String, Scalar)], name: &str) -> Option<Scalar> {
    members
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax { what, at: self.at }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn end(&mut self) -> Result<(), JsonError> {
        self.ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.err("text after the value")),
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), JsonError> {
        if self.s[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.err("an unknown word"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Scalar, JsonError> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(depth + 1, None).map(|()| Scalar::Other),
            Some(b'[') => self.array(depth + 1).map(|()| Scalar::Other),
            Some(b'"') => self.string().map(|_| Scalar::Other),
            Some(b't') => self.literal(b"true").map(|()| Scalar::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Scalar::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Scalar::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| Scalar::Other),
            Some(_) => Err(self.err("not a value")),
            None => Err(self.err("the end of the text instead of a value")),
        }
    }

    /// An object; its members go to `out` when it is the top level.
    fn object(
        &mut self,
        depth: usize,
        mut out: Option<&mut Vec<(String, Scalar)>>,
    ) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.expect(b'{', "'{'")?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("a member name"));
            }
            let name = self.string()?;
            self.ws();
            self.expect(b':', "':'")?;
            let v = self.value(depth)?;
            if let Some(out) = out.as_deref_mut() {
                out.push((name, v));
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.err("',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.expect(b'[', "'['")?;
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.err("',' or ']'")),
            }
        }
    }

    fn digits(&mut self) -> Result<(), JsonError> {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        if self.at == start {
            Err(self.err("a digit"))
        } else {
            Ok(())
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        if self.peek() == Some(b'0') {
            self.at += 1;
        } else {
            self.digits()?;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("four hex digits after \\u")),
            };
            v = v * 16 + u32::from(d);
            self.at += 1;
        }
        Ok(v)
    }

    /// A string, unescaped. The text is known to be UTF-8, so the bytes
    /// between escapes are copied as they are.
    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"', "'\"'")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("the end of the text inside a string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.at += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            let u = self.hex4()?;
                            // A lone surrogate is valid JSON but no char:
                            // it only matters for names we never look up.
                            let c = char::from_u32(u).unwrap_or('\u{fffd}');
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => return Err(self.err("an unknown escape")),
                    };
                    self.at += 1;
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(c) if c < 0x20 => return Err(self.err("a control character in a string")),
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_supervisors_device_answer() {
        let text = br#"{"api_port":48484,"ip_address":"10.0.0.2 172.17.0.1","commit":"414e65cd","status":"Idle",
            "download_progress":null,"os_version":"balenaOS 6.0.10","supervisor_version":"16.1.0",
            "update_pending":true,"update_downloaded":false,"update_failed":false,"extra":{"a":[1,2.5e-3,{"b":null}]}}"#;
        let m = object(text).unwrap();
        assert_eq!(get(&m, "update_pending"), Some(Scalar::Bool(true)));
        assert_eq!(get(&m, "update_downloaded"), Some(Scalar::Bool(false)));
        assert_eq!(get(&m, "update_failed"), Some(Scalar::Bool(false)));
        assert_eq!(get(&m, "download_progress"), Some(Scalar::Null));
        assert_eq!(get(&m, "status"), Some(Scalar::Other));
        assert_eq!(get(&m, "a"), None, "nested members are not top-level");
        assert_eq!(get(&m, "missing"), None);
    }

    #[test]
    fn escaped_names_and_repeats() {
        let m = object(
            br#" { "update_\u0070ending" : false , "x\"y":"\\\n", "update_pending": true } "#,
        )
        .unwrap();
        assert_eq!(get(&m, "update_pending"), Some(Scalar::Bool(true)));
        assert_eq!(m[1].0, "x\"y");
        assert_eq!(object(b"{}").unwrap(), vec![]);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        for bad in [
            &b""[..],
            b"<html>Bad Gateway</html>",
            b"{\"update_pending\":true",
            b"{\"update_pending\":tru}",
            b"{\"update_pending\" true}",
            b"{update_pending:true}",
            b"{\"a\":1,}",
            b"{\"a\":01}",
            b"{\"a\":-}",
            b"{\"a\":1.}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":[1 2]}",
            b"{} {}",
            b"\xff{}",
        ] {
            assert!(
                object(bad).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(object(b"[true]"), Err(JsonError::NotObject));
        assert_eq!(object(b"\"ok\""), Err(JsonError::NotObject));
        assert!(matches!(
            object(b"OK"),
            Err(JsonError::Syntax { at: 0, .. })
        ));
    }

    #[test]
    fn deep_nesting_is_refused_not_followed() {
        let mut deep = b"{\"a\":".to_vec();
        deep.extend(std::iter::repeat(b'[').take(10_000));
        assert!(matches!(
            object(&deep),
            Err(JsonError::Syntax {
                what: "nesting too deep",
                ..
            })
        ));
    }
}
