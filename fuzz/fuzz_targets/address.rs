//! The supervisor's address (`supervisor::Address::parse`), from
//! `BALENA_SUPERVISOR_ADDRESS` or `--supervisor-address`.
//!
//! Properties: any text is an address or an error quoting it; an address
//! is the text, trimmed, without trailing slashes, and reads back as
//! itself; it has no white space or control character (it goes into a
//! request line); `http://IPV4[:PORT][/PREFIX]` reads as that IP and port.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use updlock::supervisor::Address;

fn check_text(text: &str) {
    match Address::parse(text) {
        Ok(a) => {
            let url = a.to_string();
            assert_eq!(url, text.trim().trim_end_matches('/'), "{text:?}");
            assert!(
                !url.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{text:?}"
            );
            assert!(a.socket().port() > 0, "{text:?}");
            let again = Address::parse(&url).expect("an address reads back");
            assert_eq!((again.to_string(), again.socket()), (url, a.socket()));
        }
        Err(e) => assert!(
            e.to_string().contains(&format!("'{text}'")),
            "{text:?}: {e}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    let mut u = Unstructured::new(data);
    let (Ok(ip), Ok(port), Ok(prefix)) = (
        u32::arbitrary(&mut u),
        u16::arbitrary(&mut u),
        Vec::<u8>::arbitrary(&mut u),
    ) else {
        return;
    };
    let ip = Ipv4Addr::from(ip);
    let prefix: String = prefix
        .iter()
        .map(|b| char::from(b"abz09-_./~%"[usize::from(*b) % 11]))
        .collect();
    let text = format!("http://{ip}:{}/{prefix}", port.max(1));
    check_text(&text);
    let a = Address::parse(&text).expect("a plain address");
    assert_eq!(a.socket(), SocketAddrV4::new(ip, port.max(1)), "{text}");
    let text = format!("HTTP://localhost/{prefix}");
    assert_eq!(
        Address::parse(&text).map(|a| a.socket()),
        Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80))
    );
});
