//! A minimal HTTP/1.1 client: one request per connection, over a
//! non-blocking `std::net::TcpStream`.
//!
//! Enough for the supervisor's API on the device and nothing more: plain
//! HTTP to an IP address (no TLS, no name lookup, no redirects, no
//! keep-alive). An [`Exchange`] never blocks: it does what the socket allows
//! and says what it waits for, so an event loop can carry it along with its
//! own waits (a slow peer must not hold up `watch`'s loop); [`Exchange::wait`]
//! drives one to its end for a caller with nothing else to do. Either way a
//! deadline bounds the whole of it, connecting included. The answer's body
//! is framed by `Content-Length`, by chunked transfer coding, or by the end
//! of the connection (`Connection: close`).

use std::io::{self, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags};

/// An answer bigger than this is refused: the supervisor's are a few hundred
/// bytes, and a confused peer must not make us buffer without end.
pub const MAX_ANSWER: usize = 64 * 1024;

/// What went wrong, without the address (the caller names it).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection could not be made (refused, unreachable...).
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// The deadline passed at this stage.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// Sending the request failed.
    #[error("cannot send the request: {0}")]
    Send(io::Error),
    /// Reading the answer failed.
    #[error("cannot read the answer: {0}")]
    Receive(io::Error),
    /// The answer is not HTTP, or ends early.
    #[error("not an HTTP answer: {0}")]
    Malformed(&'static str),
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase, as sent (may be empty).
    pub reason: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    Sending,
    Receiving,
}

/// One request and its answer, in progress.
pub struct Exchange {
    stream: TcpStream,
    stage: Stage,
    method: &'static str,
    request: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
}

// By hand: the request carries the API key in its target, and no debug
// print may show it.
impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("stage", &self.stage)
            .field("method", &self.method)
            .field("sent", &self.sent)
            .field("received", &self.got.len())
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Starts `method target` to `addr` with `Host: host` and an optional
    /// JSON body: the connection is under way when this returns.
    pub fn start(
        addr: SocketAddrV4,
        host: &str,
        method: &'static str,
        target: &str,
        json_body: Option<&[u8]>,
    ) -> Result<Exchange, HttpError> {
        let (stream, connected) = connect(addr).map_err(HttpError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Exchange {
            stream,
            stage: if connected {
                Stage::Sending
            } else {
                Stage::Connecting
            },
            method,
            request: render(method, target, host, json_body),
            sent: 0,
            got: Vec::with_capacity(1024),
        })
    }

    /// The socket, to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Whether it waits for the socket to be writable (else readable).
    pub fn wants_write(&self) -> bool {
        self.stage != Stage::Receiving
    }

    /// What it is doing, for a timeout's message.
    pub fn doing(&self) -> &'static str {
        match self.stage {
            Stage::Connecting => "connecting",
            Stage::Sending => "sending the request",
            Stage::Receiving => "waiting for the answer",
        }
    }

    /// Goes as far as the socket allows without blocking; the answer once
    /// all of it has arrived. Calling it before the socket is ready is
    /// harmless.
    pub fn advance(&mut self) -> Result<Option<Response>, HttpError> {
        if self.stage == Stage::Connecting {
            if let Some(e) = self.stream.take_error().map_err(HttpError::Connect)? {
                return Err(HttpError::Connect(e));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.stage = Stage::Sending,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Ok(None),
                Err(e) => return Err(HttpError::Connect(e)),
            }
        }
        while self.stage == Stage::Sending {
            match self.stream.write(&self.request[self.sent..]) {
                Ok(n) => {
                    self.sent += n;
                    if self.sent == self.request.len() {
                        self.stage = Stage::Receiving;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HttpError::Send(e)),
            }
        }
        let mut buf = [0u8; 2048];
        loop {
            if let Some(r) = complete(&self.got, self.method)? {
                return Ok(Some(r));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return at_eof(&self.got, self.method).map(Some),
                Ok(n) => {
                    if self.got.len() + n > MAX_ANSWER {
                        return Err(HttpError::Malformed("the answer is too large"));
                    }
                    self.got.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HttpError::Receive(e)),
            }
        }
    }

    /// Drives the exchange to its end, waiting on its socket alone, until
    /// `deadline`.
    pub fn wait(mut self, deadline: Instant) -> Result<Response, HttpError> {
        loop {
            if let Some(r) = self.advance()? {
                return Ok(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HttpError::Timeout(self.doing()));
            }
            // Rounded up, so the last wait does not end a little early and spin.
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            let flags = if self.wants_write() {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            let fd = self.fd();
            let mut fds = [PollFd::new(&fd, flags)];
            match poll(&mut fds, ms) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(HttpError::Receive(e.into())),
            }
        }
    }
}

/// A TCP socket, non-blocking from the start, with its connection begun:
/// std has no non-blocking connect, and a blocking one could outlast any
/// deadline (an address nobody answers at all). Also says whether the
/// connection was made at once.
fn connect(addr: SocketAddrV4) -> io::Result<(TcpStream, bool)> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a socket just made, owned by nothing else: the stream
    // owns (and closes) it from here on.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // SAFETY: all zeroes is a valid sockaddr_in (a plain C struct).
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(addr.ip().octets());
    // SAFETY: sa is a sockaddr_in, alive for the call, of the size given.
    let r = unsafe {
        libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r == 0 {
        return Ok((stream, true));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS) | Some(libc::EINTR) => Ok((stream, false)),
        _ => Err(e),
    }
}

fn render(method: &str, target: &str, host: &str, json_body: Option<&[u8]>) -> Vec<u8> {
    let mut r = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: updlock/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(body) = json_body {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(json_body.unwrap_or_default());
    bytes
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    reason: String,
    framing: Framing,
    /// Where the body starts.
    body_at: usize,
}

/// Parses the status line and headers, once all of them have arrived.
fn head(got: &[u8], method: &str) -> Result<Option<Head>, HttpError> {
    let Some(end) = find(got, b"\r\n\r\n") else {
        if got.len() >= 16 * 1024 {
            return Err(HttpError::Malformed("headers too large"));
        }
        // A peer that is not speaking HTTP at all is told apart at once.
        if !got.is_empty() && !b"HTTP/1.".starts_with(&got[..got.len().min(7)]) {
            return Err(HttpError::Malformed("no HTTP status line"));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&got[..end])
        .map_err(|_| HttpError::Malformed("headers are not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (status, reason) = status_line_of(status_line)?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("a header line without ':'"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| HttpError::Malformed("a bad Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(HttpError::Malformed("two different Content-Lengths"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Any coding but chunked alone (gzip...) is one we cannot undo.
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::Malformed("a transfer coding other than chunked"));
            }
            chunked = true;
        }
    }
    let framing = if method == "HEAD" || status == 204 || status == 304 || status < 200 {
        Framing::None
    } else if chunked {
        // RFC 9112 §6.3: chunked wins over any Content-Length.
        Framing::Chunked
    } else if let Some(n) = length {
        if n > MAX_ANSWER {
            return Err(HttpError::Malformed("the answer is too large"));
        }
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some(Head {
        status,
        reason,
        framing,
        body_at: end + 4,
    }))
}

fn status_line_of(line: &str) -> Result<(u16, String), HttpError> {
    let rest = line
        .strip_prefix("HTTP/1.")
        .ok_or(HttpError::Malformed("no HTTP status line"))?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if minor.len() != 1 || !minor.as_bytes()[0].is_ascii_digit() {
        return Err(HttpError::Malformed("no HTTP status line"));
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Malformed("a bad status code"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| HttpError::Malformed("a bad status code"))?;
    if status < 100 {
        return Err(HttpError::Malformed("a bad status code"));
    }
    let reason = parts.next().unwrap_or_default();
    // RFC 9112: tabs, spaces and visible characters only. The reason goes
    // into a line of log: a bare CR or LF must not start another.
    if reason.chars().any(|c| c.is_control() && c != '\t') {
        return Err(HttpError::Malformed(
            "a control character in the status line",
        ));
    }
    Ok((status, reason.trim().to_string()))
}

/// The whole answer, if all of it is in `got`.
fn complete(got: &[u8], method: &str) -> Result<Option<Response>, HttpError> {
    let Some(h) = head(got, method)? else {
        return Ok(None);
    };
    if h.status < 200 {
        // An interim answer (we send no Expect, but a peer may): what
        // counts is the one after it.
        let rest = &got[h.body_at..];
        return complete(rest, method);
    }
    let body = &got[h.body_at..];
    let done = |body: Vec<u8>| {
        Ok(Some(Response {
            status: h.status,
            reason: h.reason.clone(),
            body,
        }))
    };
    match h.framing {
        Framing::None => done(Vec::new()),
        Framing::Length(n) if body.len() >= n => done(body[..n].to_vec()),
        Framing::Length(_) | Framing::UntilClose => Ok(None),
        Framing::Chunked => match dechunk(body)? {
            Some(b) => done(b),
            None => Ok(None),
        },
    }
}

/// The peer closed the connection: what arrived must be a whole answer.
fn at_eof(got: &[u8], method: &str) -> Result<Response, HttpError> {
    if let Some(r) = complete(got, method)? {
        return Ok(r);
    }
    let mut rest = got;
    loop {
        let Some(h) = head(rest, method)? else {
            return Err(HttpError::Malformed(if got.is_empty() {
                "the connection was closed without an answer"
            } else {
                "the connection was closed in the middle of the headers"
            }));
        };
        if h.status < 200 {
            rest = &rest[h.body_at..];
            continue;
        }
        return match h.framing {
            Framing::UntilClose => Ok(Response {
                status: h.status,
                reason: h.reason,
                body: rest[h.body_at..].to_vec(),
            }),
            _ => Err(HttpError::Malformed(
                "the connection was closed in the middle of the body",
            )),
        };
    }
}

/// Undoes chunked transfer coding; `None` while the last chunk has not arrived.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..eol])
            .map_err(|_| HttpError::Malformed("a bad chunk size"))?;
        // Chunk extensions (";name=value") carry nothing we need.
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Malformed("a bad chunk size"))?;
        data = &data[eol + 2..];
        if size == 0 {
            // Trailers, if any, then an empty line.
            loop {
                let Some(eol) = find(data, b"\r\n") else {
                    return Ok(None);
                };
                if eol == 0 {
                    return Ok(Some(out));
                }
                data = &data[eol + 2..];
            }
        }
        if size > MAX_ANSWER || out.len() + size > MAX_ANSWER {
            return Err(HttpError::Malformed("the answer is too large"));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err(HttpError::Malformed("a chunk without its line end"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    fn v4(l: &TcpListener) -> SocketAddrV4 {
        match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other} is not IPv4"),
        }
    }

    fn deadline_in(d: Duration) -> Instant {
        Instant::now() + d
    }

    fn exchange(
        addr: SocketAddrV4,
        host: &str,
        method: &'static str,
        target: &str,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        Exchange::start(addr, host, method, target, body)?.wait(deadline)
    }

    fn parse(bytes: &[u8]) -> Result<Option<Response>, HttpError> {
        complete(bytes, "GET")
    }

    #[test]
    fn content_length_framing() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}trailing")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), &r.body[..]),
            (200, "OK", &b"{}"[..])
        );
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}")
            .unwrap()
            .is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap().is_none());
    }

    #[test]
    fn chunked_framing() {
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n6\r\n\":true\r\n1\r\n}\r\n0\r\nX-T: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.body, b"{\"a\":true}");
        assert!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n")
                .unwrap()
                .is_none()
        );
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
    }

    #[test]
    fn no_body_statuses_and_interim_answers() {
        let r = parse(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = parse(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.status, 202);
    }

    #[test]
    fn until_close_framing_and_early_ends() {
        assert!(parse(b"HTTP/1.0 200 OK\r\n\r\n{}").unwrap().is_none());
        let r = at_eof(b"HTTP/1.0 200 OK\r\n\r\n{}", "GET").unwrap();
        assert_eq!(r.body, b"{}");
        for cut in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
        ] {
            assert!(
                matches!(at_eof(cut, "GET"), Err(HttpError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(cut)
            );
        }
    }

    #[test]
    fn not_http() {
        for bad in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Found by `fuzz/fuzz_targets/http.rs`: a bare CR or LF in the reason
    /// phrase was kept, and the reason is logged.
    #[test]
    fn a_reason_with_a_control_character_is_refused() {
        for bad in [
            &b"HTTP/1.1 500 Oops\nFAKE log line\r\n\r\n"[..],
            b"HTTP/1.1 500 Oops\rX\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 500 \x1b[31mred\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HttpError::Malformed(_))),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let r = parse(b"HTTP/1.1 503 Service\tUnavailable\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.reason, "Service\tUnavailable");
    }

    #[test]
    fn the_request_closes_and_carries_its_body() {
        let r = render(
            "POST",
            "/v1/update?apikey=k",
            "127.0.0.1:48484",
            Some(b"{\"force\":false}"),
        );
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /v1/update?apikey=k HTTP/1.1\r\nHost: 127.0.0.1:48484\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.contains("\r\nContent-Length: 15\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"force\":false}"));
        let get = String::from_utf8(render("GET", "/", "h", None)).unwrap();
        assert!(!get.contains("Content-Length"));
    }

    #[test]
    fn a_silent_peer_costs_the_deadline_and_no_more() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = v4(&l);
        // Accepted by the kernel's backlog, never answered.
        let start = Instant::now();
        let e = exchange(
            addr,
            "h",
            "GET",
            "/",
            None,
            deadline_in(Duration::from_millis(150)),
        )
        .unwrap_err();
        let took = start.elapsed();
        assert!(matches!(e, HttpError::Timeout(_)), "{e}");
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        drop(l);
    }

    #[test]
    fn a_refused_connection_names_the_errno() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = v4(&l);
        drop(l);
        let e = exchange(
            addr,
            "h",
            "GET",
            "/",
            None,
            deadline_in(Duration::from_secs(2)),
        )
        .unwrap_err();
        assert!(matches!(e, HttpError::Connect(_)), "{e}");
        assert!(e.to_string().contains("os error 111"), "{e}");
    }

    #[test]
    fn a_whole_exchange() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = v4(&l);
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while find(&got, b"\r\n\r\n{\"force\":false}").is_none() {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early");
                got.extend_from_slice(&buf[..n]);
            }
            // Split across writes, and the connection left open: the
            // framing, not the close, must end the read.
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            s.write_all(b"2\r\n{}\r\n0\r\n\r\n").unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            String::from_utf8(got).unwrap()
        });
        let r = exchange(
            addr,
            "127.0.0.1",
            "POST",
            "/v1/update",
            Some(b"{\"force\":false}"),
            deadline_in(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
        let request = server.join().unwrap();
        assert!(
            request.starts_with("POST /v1/update HTTP/1.1\r\n"),
            "{request}"
        );
    }
}
