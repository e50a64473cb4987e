//! The supervisor API's HTTP answer reader (`supervisor::http`).
//!
//! The reader's parsing functions are private to the crate; what is public
//! is `Exchange`, which reads from a socket. So each input is served as the
//! answer of a real TCP peer on 127.0.0.1, which then closes its side, and
//! the request is driven with `Exchange::start(..).wait(..)`.
//!
//! Properties: whatever the peer sends, the exchange ends well before the
//! deadline (the answer is whole and the connection closed, so it never
//! times out), with an answer or with `Malformed`; an answer has a final
//! status (200 to 999) a reason without control characters but tabs, and a body no longer than what was sent or than
//! `MAX_ANSWER`. A well-formed answer — any status and reason, its body
//! framed by Content-Length, by chunks (with extensions and trailers) or by
//! the close, after any number of interim 1xx answers — reads as exactly
//! its status, reason and body.
#![no_main]

use std::io::Write;
use std::net::{Shutdown, SocketAddrV4, TcpListener};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use updlock::supervisor::http::{Exchange, HttpError, Response, MAX_ANSWER};

/// More than any input is sent at once: the peer writes it all before the
/// reader reads, so it must fit in the sockets' buffers.
const MAX_INPUT: usize = 32 * 1024;

fn listener() -> &'static (TcpListener, SocketAddrV4) {
    static L: OnceLock<(TcpListener, SocketAddrV4)> = OnceLock::new();
    L.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let std::net::SocketAddr::V4(a) = l.local_addr().unwrap() else {
            unreachable!()
        };
        (l, a)
    })
}

/// Serves `answer` to one `method` request and reads it back.
fn exchange(method: &'static str, answer: &[u8]) -> Result<Response, HttpError> {
    let (l, addr) = listener();
    let ex = Exchange::start(
        *addr,
        "127.0.0.1:48484",
        method,
        "/v1/device?apikey=k",
        None,
    )
    .expect("connect to our own listener");
    let (mut peer, _) = l.accept().expect("accept");
    peer.write_all(answer)
        .expect("the answer fits in the socket buffers");
    peer.shutdown(Shutdown::Write).expect("shutdown");
    let start = Instant::now();
    let r = ex.wait(start + Duration::from_secs(5));
    assert!(
        !matches!(r, Err(HttpError::Timeout(_))),
        "{r:?} for {:?}",
        String::from_utf8_lossy(answer)
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "slow: {:?}",
        start.elapsed()
    );
    // The peer's socket is dropped only now, with the request unread: its
    // reset must not reach the reader before the answer did.
    drop(peer);
    r
}

fn check_any(answer: &[u8]) {
    match exchange("GET", answer) {
        Ok(r) => {
            assert!((200..=999).contains(&r.status), "{r:?}");
            assert!(
                r.body.len() <= answer.len() && r.body.len() <= MAX_ANSWER,
                "{r:?}"
            );
            // The reason is logged: one line, no terminal controls.
            assert!(
                !r.reason.chars().any(|c| c.is_control() && c != '\t'),
                "{r:?}"
            );
        }
        Err(HttpError::Malformed(_)) => {}
        Err(e) => panic!("{e:?} for {:?}", String::from_utf8_lossy(answer)),
    }
}

/// A well-formed answer, and what it must read as.
fn well_formed(u: &mut Unstructured) -> libfuzzer_sys::arbitrary::Result<(Vec<u8>, Response)> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        let code = u.int_in_range(100..=199u16)?;
        out.extend_from_slice(format!("HTTP/1.1 {code} Interim\r\nX-A: b\r\n\r\n").as_bytes());
    }
    let status = u.int_in_range(200..=999u16)?;
    let reason: String = {
        let words = ["OK", "Not Found", "", "Service  Unavailable", "é"];
        u.choose(&words)?.to_string()
    };
    let minor = *u.choose(&['0', '1'])?;
    let body = Vec::<u8>::arbitrary(u)?;
    let no_body = status == 204 || status == 304;
    let mut head = format!("HTTP/1.{minor} {status} {reason}\r\nServer: fuzz\r\n");
    let framing = u.int_in_range(0..=2)?;
    let mut tail = Vec::new();
    match framing {
        0 => {
            let name = u.choose(&["Content-Length", "content-length", "CONTENT-LENGTH"])?;
            head += &format!("{name}:  {}\t\r\n", body.len());
            if u.arbitrary()? {
                head += &format!("Content-Length: {}\r\n", body.len());
            }
            tail.extend_from_slice(&body);
            if !no_body {
                // Bytes after the body are not part of it.
                tail.extend_from_slice(b"HTTP/1.1 200 junk");
            }
        }
        1 if !no_body => {
            head += "Transfer-Encoding: Chunked\r\n";
            if u.arbitrary()? {
                head += "Content-Length: 3\r\n";
            }
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = u.int_in_range(1..=rest.len())?;
                let ext = if u.arbitrary()? { ";a=b" } else { "" };
                let size = if u.arbitrary()? {
                    format!("{n:X}")
                } else {
                    format!("{n:x}")
                };
                tail.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
                tail.extend_from_slice(&rest[..n]);
                tail.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            tail.extend_from_slice(b"0\r\n");
            if u.arbitrary()? {
                tail.extend_from_slice(b"X-Trailer: 1\r\n");
            }
            tail.extend_from_slice(b"\r\n");
        }
        _ => {
            if no_body {
                // Nothing may follow a 204 or 304: an empty body.
            } else {
                tail.extend_from_slice(&body);
            }
        }
    }
    head += "\r\n";
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&tail);
    let want = Response {
        status,
        reason: reason.trim().to_string(),
        body: if no_body { Vec::new() } else { body },
    };
    Ok((out, want))
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    check_any(data);
    let mut u = Unstructured::new(data);
    if let Ok((answer, want)) = well_formed(&mut u) {
        if answer.len() <= MAX_INPUT {
            let got = exchange("GET", &answer);
            assert_eq!(
                got.as_ref().ok(),
                Some(&want),
                "{got:?} for {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
});
