//! The balena supervisor's HTTP API: optional at run time, never required.
//!
//! Two uses. `updlock status` shows what the supervisor says about updates
//! (`GET /v1/device`: `update_pending`, `update_downloaded`,
//! `update_failed`). `--kick` asks it, once our lock is released, to apply a
//! pending update now (`POST /v1/update`) rather than at the end of its
//! backoff, which can be up to 15 minutes after the lock is gone (SPEC §3).
//!
//! Caveats stated plainly:
//! - The API is there only for a service with the
//!   `io.balena.features.supervisor-api` label (which sets
//!   `BALENA_SUPERVISOR_ADDRESS` and `BALENA_SUPERVISOR_API_KEY`), or when
//!   both are given as flags. Without it, or when it is slow, refuses, or
//!   answers an error or garbage, updlock does exactly what it does without
//!   it: nothing here runs before the safe release, nothing here changes an
//!   exit code, and a failure is one line in the log.
//! - Every use is bounded by one deadline (`--api-timeout`, 2 s by default):
//!   connecting, sending and reading all share it. So the address must be an
//!   IPv4 address (or `localhost`): a name lookup could not be bounded, and
//!   the supervisor's address is IPv4 (`127.0.0.1`, or the bridge gateway).
//! - A kick is never forced. `force: true` makes the supervisor override
//!   every user lock of the app, ours and anyone else's (SPEC §4); the kick
//!   sends `{"force":false}`, which only asks it to try now, so another
//!   holder's lock still holds the update back.
//! - The API key is a secret: it goes in the query string, as the API wants
//!   it, and into no message.

pub mod http;
pub mod json;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};

use self::http::{Exchange, HttpError, Response};
use self::json::{JsonError, Scalar};

/// The default `--api-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the address comes from when no flag gives it: balena's name, then
/// the name supervisors before 7.22 used.
pub const ADDRESS_VARS: [&str; 2] = ["BALENA_SUPERVISOR_ADDRESS", "RESIN_SUPERVISOR_ADDRESS"];

/// Where the API key comes from when no flag gives it.
pub const KEY_VARS: [&str; 2] = ["BALENA_SUPERVISOR_API_KEY", "RESIN_SUPERVISOR_API_KEY"];

/// The body of a kick: ask the supervisor to try now, never to override.
pub const KICK_BODY: &[u8] = b"{\"force\":false}";

/// Why an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not `http://...`.
    #[error("'{0}' is not an http:// URL (like http://127.0.0.1:48484)")]
    NotHttp(String),
    /// `https://...`.
    #[error("'{0}': https is not supported (the supervisor's API is plain HTTP on the device)")]
    Https(String),
    /// A host name, an IPv6 address, user info, a query or a fragment.
    #[error("'{0}': the host must be an IPv4 address or localhost (a name lookup could not be bounded by --api-timeout)")]
    Host(String),
    /// A port that is not 1..65535.
    #[error("'{0}': not a port number")]
    Port(String),
}

/// The API's base URL, checked: `http://IPV4[:PORT][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    url: String,
    socket: SocketAddrV4,
    host: String,
    prefix: String,
}

impl Address {
    /// Parses a base URL as `BALENA_SUPERVISOR_ADDRESS` gives it.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let url = text.trim().trim_end_matches('/').to_string();
        // The prefix goes into the request line: a space, CR or LF there
        // would break it (or add a header); no URL has them.
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AddressError::NotHttp(text.to_string()));
        }
        let scheme_end = url
            .find("://")
            .ok_or_else(|| AddressError::NotHttp(text.to_string()))?;
        let scheme = &url[..scheme_end];
        if scheme.eq_ignore_ascii_case("https") {
            return Err(AddressError::Https(text.to_string()));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(AddressError::NotHttp(text.to_string()));
        }
        let rest = &url[scheme_end + 3..];
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains(['@', '[', '?', '#']) || prefix.contains(['?', '#']) {
            return Err(AddressError::Host(text.to_string()));
        }
        let (host, port) = match authority.split_once(':') {
            Some((host, p)) => match p.parse::<u16>() {
                Ok(n) if n > 0 => (host, n),
                _ => return Err(AddressError::Port(text.to_string())),
            },
            None => (authority, 80),
        };
        let ip = if host.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse()
                .map_err(|_| AddressError::Host(text.to_string()))?
        };
        Ok(Address {
            socket: SocketAddrV4::new(ip, port),
            host: authority.to_string(),
            prefix: prefix.to_string(),
            url,
        })
    }

    /// The IP address and port.
    pub fn socket(&self) -> SocketAddrV4 {
        self.socket
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// What went wrong with one use of the API.
#[derive(Debug, thiserror::Error)]
#[error("supervisor API at {address}: {request}: {problem}")]
pub struct ApiError {
    /// The base URL.
    pub address: String,
    /// The request, without the key: `GET /v1/device`.
    pub request: &'static str,
    /// What happened.
    pub problem: Problem,
}

/// What happened to a request.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// No connection, or the exchange failed.
    #[error(transparent)]
    Http(HttpError),
    /// The deadline passed.
    #[error("timed out after {} ms {stage} (--api-timeout)", after.as_millis())]
    Timeout {
        /// The API timeout.
        after: Duration,
        /// What was going on.
        stage: &'static str,
    },
    /// An answer other than 2xx.
    #[error("answered {status}{}{}", if reason.is_empty() { "" } else { " " }, reason)]
    Status {
        /// The status code.
        status: u16,
        /// Its reason phrase, and a hint for 401.
        reason: String,
    },
    /// The device state was not the JSON expected.
    #[error("{0}")]
    Json(#[from] JsonError),
    /// The device state says nothing about a pending update.
    #[error("the answer has no update_pending (true or false)")]
    NoPending,
}

/// What the supervisor says about updates (`null` or absent: `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Device {
    /// An update is waiting to be applied (downloading, or held back by a lock).
    pub update_pending: Option<bool>,
    /// Its images are downloaded.
    pub update_downloaded: Option<bool>,
    /// The last attempt failed (a user lock counts as a failure).
    pub update_failed: Option<bool>,
}

impl Device {
    /// Reads the answer of `GET /v1/device`.
    pub fn from_json(body: &[u8]) -> Result<Device, JsonError> {
        let members = json::object(body)?;
        let flag = |name| match json::get(&members, name) {
            Some(Scalar::Bool(b)) => Some(b),
            _ => None,
        };
        Ok(Device {
            update_pending: flag("update_pending"),
            update_downloaded: flag("update_downloaded"),
            update_failed: flag("update_failed"),
        })
    }
}

/// What a finished use of the API found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// What the supervisor says about updates.
    pub device: Device,
    /// For a kick that asked (an update was pending): the status of `POST
    /// /v1/update` (204: it tries now; 202: it took note, but may not try
    /// at once, e.g. with instant updates disabled).
    pub asked: Option<u16>,
}

/// The API of one supervisor.
#[derive(Clone)]
pub struct Api {
    address: Address,
    key: String,
    timeout: Duration,
}

// By hand, so that no debug print ever shows the key.
impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("address", &self.address.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How the API is set up, once flags and environment are put together.
#[derive(Debug)]
pub enum Setup {
    /// Neither an address nor a key: no API (the usual case without the label).
    Off,
    /// One of the two is missing.
    Incomplete(&'static str),
    /// The environment's address cannot be used.
    BadAddress {
        /// The variable it came from.
        var: &'static str,
        /// Why.
        error: AddressError,
    },
    /// Ready to use.
    Ready(Api),
}

/// Puts the API together: a flag wins over the environment, which is read
/// through `env` (empty values count as unset).
pub fn setup(
    address: Option<Address>,
    key: Option<String>,
    timeout: Duration,
    env: impl Fn(&str) -> Option<String>,
) -> Setup {
    let from_env = |vars: [&'static str; 2]| {
        vars.into_iter()
            .find_map(|v| env(v).filter(|s| !s.is_empty()).map(|s| (v, s)))
    };
    let address = match address {
        Some(a) => Some(a),
        None => match from_env(ADDRESS_VARS) {
            Some((var, text)) => match Address::parse(&text) {
                Ok(a) => Some(a),
                Err(error) => return Setup::BadAddress { var, error },
            },
            None => None,
        },
    };
    let key = key
        .filter(|k| !k.is_empty())
        .or_else(|| from_env(KEY_VARS).map(|(_, k)| k));
    match (address, key) {
        (None, None) => Setup::Off,
        (Some(_), None) => Setup::Incomplete(
            "an address but no API key (--supervisor-api-key, or $BALENA_SUPERVISOR_API_KEY)",
        ),
        (None, Some(_)) => Setup::Incomplete(
            "an API key but no address (--supervisor-address, or $BALENA_SUPERVISOR_ADDRESS)",
        ),
        (Some(address), Some(key)) => Setup::Ready(Api {
            address,
            key,
            timeout,
        }),
    }
}

const DEVICE: &str = "GET /v1/device";
const UPDATE: &str = "POST /v1/update";

impl Api {
    /// An API at `address` with `key`, each use bounded by `timeout`.
    pub fn new(address: Address, key: String, timeout: Duration) -> Api {
        Api {
            address,
            key,
            timeout,
        }
    }

    /// The base URL.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// What the supervisor says about updates.
    pub fn device(&self) -> Result<Device, ApiError> {
        self.start(false).wait().map(|o| o.device)
    }

    /// If an update is pending, asks the supervisor to apply it now (never
    /// forced).
    pub fn kick(&self) -> Result<Outcome, ApiError> {
        self.start(true).wait()
    }

    /// Starts `GET /v1/device` and, for a kick, the `POST /v1/update` that
    /// follows if an update is pending. Both share one deadline.
    pub fn start(&self, kick: bool) -> Call {
        let deadline = Instant::now() + self.timeout;
        let step = match self.exchange("GET", "/v1/device", None) {
            Ok(x) => Step::Device(x),
            Err(e) => Step::Failed(self.error(DEVICE, Problem::Http(e))),
        };
        Call {
            api: self.clone(),
            deadline,
            kick,
            step,
        }
    }

    fn error(&self, request: &'static str, problem: Problem) -> ApiError {
        ApiError {
            address: self.address.to_string(),
            request,
            problem,
        }
    }

    fn exchange(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Exchange, HttpError> {
        let target = format!(
            "{}{path}?apikey={}",
            self.address.prefix,
            query_escape(&self.key)
        );
        Exchange::start(
            self.address.socket,
            &self.address.host,
            method,
            &target,
            body,
        )
    }

    /// `r` if it is a 2xx answer.
    fn check(&self, request: &'static str, r: Response) -> Result<Response, ApiError> {
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        let reason = match r.status {
            401 => format!("{} (is the API key right?)", r.reason),
            _ => r.reason,
        };
        Err(self.error(
            request,
            Problem::Status {
                status: r.status,
                reason: reason.trim().to_string(),
            },
        ))
    }
}

#[derive(Debug)]
enum Step {
    Device(Exchange),
    Update(Exchange, Device),
    Failed(ApiError),
    Finished,
}

/// One use of the API under way. It never blocks: [`Call::advance`] does
/// what the socket allows, so an event loop can carry it along with its own
/// waits ([`Call::fd`], [`Call::deadline`]); [`Call::wait`] drives it to
/// its end for a caller with nothing else to do.
#[derive(Debug)]
pub struct Call {
    api: Api,
    deadline: Instant,
    kick: bool,
    step: Step,
}

impl Call {
    /// The socket to poll, while there is one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.step {
            Step::Device(x) | Step::Update(x, _) => Some(x.fd()),
            Step::Failed(_) | Step::Finished => None,
        }
    }

    /// Whether to poll the socket for writing (else for reading).
    pub fn wants_write(&self) -> bool {
        match &self.step {
            Step::Device(x) | Step::Update(x, _) => x.wants_write(),
            Step::Failed(_) | Step::Finished => false,
        }
    }

    /// When it gives up; it must be advanced then, whatever the socket says.
    pub fn deadline(&self) -> Instant {
        match self.step {
            // Due at once: the failure only waits to be told.
            Step::Failed(_) => Instant::now(),
            _ => self.deadline,
        }
    }

    /// Goes as far as it can without blocking; what it found once it is
    /// finished (and `None` ever after).
    pub fn advance(&mut self) -> Option<Result<Outcome, ApiError>> {
        let step = std::mem::replace(&mut self.step, Step::Finished);
        let (next, done) = self.step_on(step);
        self.step = next;
        if done.is_some() {
            return done;
        }
        let (request, exchange) = match &self.step {
            Step::Device(x) => (DEVICE, x),
            Step::Update(x, _) => (UPDATE, x),
            Step::Failed(_) | Step::Finished => return None,
        };
        if Instant::now() < self.deadline {
            return None;
        }
        let problem = Problem::Timeout {
            after: self.api.timeout,
            stage: exchange.doing(),
        };
        self.step = Step::Finished;
        Some(Err(self.api.error(request, problem)))
    }

    /// One move: the step after `step`, and the outcome if that finished it.
    fn step_on(&self, step: Step) -> (Step, Option<Result<Outcome, ApiError>>) {
        let api = &self.api;
        let http = |request, e| api.error(request, Problem::Http(e));
        match step {
            Step::Finished => (Step::Finished, None),
            Step::Failed(e) => (Step::Finished, Some(Err(e))),
            Step::Device(mut x) => match x.advance() {
                Ok(None) => (Step::Device(x), None),
                Err(e) => (Step::Finished, Some(Err(http(DEVICE, e)))),
                Ok(Some(r)) => {
                    let device = match api.check(DEVICE, r).and_then(|r| {
                        Device::from_json(&r.body).map_err(|e| api.error(DEVICE, e.into()))
                    }) {
                        Ok(d) => d,
                        Err(e) => return (Step::Finished, Some(Err(e))),
                    };
                    let done = |asked| (Step::Finished, Some(Ok(Outcome { device, asked })));
                    if !self.kick {
                        return done(None);
                    }
                    match device.update_pending {
                        Some(true) => match api.exchange("POST", "/v1/update", Some(KICK_BODY)) {
                            Ok(x) => (Step::Update(x, device), None),
                            Err(e) => (Step::Finished, Some(Err(http(UPDATE, e)))),
                        },
                        Some(false) => done(None),
                        None => (
                            Step::Finished,
                            Some(Err(api.error(DEVICE, Problem::NoPending))),
                        ),
                    }
                }
            },
            Step::Update(mut x, device) => match x.advance() {
                Ok(None) => (Step::Update(x, device), None),
                Err(e) => (Step::Finished, Some(Err(http(UPDATE, e)))),
                Ok(Some(r)) => match api.check(UPDATE, r) {
                    Ok(r) => (
                        Step::Finished,
                        Some(Ok(Outcome {
                            device,
                            asked: Some(r.status),
                        })),
                    ),
                    Err(e) => (Step::Finished, Some(Err(e))),
                },
            },
        }
    }

    /// Drives it to its end, waiting on its socket alone (at most until its
    /// deadline).
    pub fn wait(mut self) -> Result<Outcome, ApiError> {
        loop {
            if let Some(done) = self.advance() {
                return done;
            }
            let left = self.deadline().saturating_duration_since(Instant::now());
            // Rounded up, so the last wait does not end a little early and spin.
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            let flags = if self.wants_write() {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            let Some(fd) = self.fd() else {
                // Not reached: a step without a socket has an outcome.
                return Err(self.api.error(
                    DEVICE,
                    Problem::Http(HttpError::Malformed("no request under way")),
                ));
            };
            let mut fds = [PollFd::new(&fd, flags)];
            match poll(&mut fds, ms) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    let request = match self.step {
                        Step::Update(..) => UPDATE,
                        _ => DEVICE,
                    };
                    return Err(self
                        .api
                        .error(request, Problem::Http(HttpError::Receive(e.into()))));
                }
            }
        }
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/fuzz_targets/address.rs`: a prefix with a control
    /// character (or a space, CR, LF) was kept, and it goes into the
    /// request line.
    #[test]
    fn an_address_with_white_space_or_a_control_character_is_refused() {
        for bad in [
            "http://7.0.0.4/1:848\u{15}",
            "http://127.0.0.1:48484/a b",
            "http://127.0.0.1:48484/a\r\nX-Injected: 1",
            "http://127.0.0.1:48484/\tapi",
        ] {
            assert_eq!(
                Address::parse(bad),
                Err(AddressError::NotHttp(bad.to_string())),
                "{bad:?}"
            );
        }
        // White space around it is still trimmed.
        assert!(Address::parse(" http://127.0.0.1:48484/api\n").is_ok());
    }

    #[test]
    fn addresses() {
        let a = Address::parse("http://127.0.0.1:48484").unwrap();
        assert_eq!(a.socket(), "127.0.0.1:48484".parse().unwrap());
        assert_eq!(
            (a.host.as_str(), a.prefix.as_str()),
            ("127.0.0.1:48484", "")
        );
        assert_eq!(a.to_string(), "http://127.0.0.1:48484");
        let a = Address::parse("HTTP://10.114.104.1:48484/").unwrap();
        assert_eq!(a.to_string(), "HTTP://10.114.104.1:48484");
        assert_eq!(a.prefix, "");
        let a = Address::parse("http://10.114.104.1:8080/api").unwrap();
        assert_eq!(a.socket(), "10.114.104.1:8080".parse().unwrap());
        assert_eq!(a.prefix, "/api");
        assert_eq!(
            Address::parse("http://localhost").unwrap().socket(),
            "127.0.0.1:80".parse().unwrap()
        );
        for (bad, want) in [
            ("127.0.0.1:48484", "not an http://"),
            ("ftp://127.0.0.1", "not an http://"),
            ("https://127.0.0.1:48484", "https is not supported"),
            ("http://supervisor:48484", "must be an IPv4 address"),
            ("http://u:p@127.0.0.1", "must be an IPv4 address"),
            ("http://127.0.0.1:48484/?x=1", "must be an IPv4 address"),
            ("http://[::1]:80", "must be an IPv4 address"),
            ("http://127.0.0.1:80:80", "not a port"),
            ("http://127.0.0.1:0", "not a port"),
            ("http://127.0.0.1:99999", "not a port"),
            ("http://127.0.0.1:", "not a port"),
        ] {
            let e = Address::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_win_over_the_environment_and_both_are_needed() {
        let env = |name: &str| match name {
            "BALENA_SUPERVISOR_ADDRESS" => Some("http://127.0.0.1:48484".to_string()),
            "RESIN_SUPERVISOR_API_KEY" => Some("legacy".to_string()),
            _ => None,
        };
        let t = DEFAULT_TIMEOUT;
        let Setup::Ready(api) = setup(None, None, t, env) else {
            panic!("not ready")
        };
        assert_eq!(api.address.to_string(), "http://127.0.0.1:48484");
        assert_eq!(api.key, "legacy");
        let flag = Address::parse("http://10.0.0.1:1").unwrap();
        let Setup::Ready(api) = setup(Some(flag), Some("k".into()), t, env) else {
            panic!("not ready")
        };
        assert_eq!(
            (api.address.to_string().as_str(), api.key.as_str()),
            ("http://10.0.0.1:1", "k")
        );
        let none = |_: &str| None;
        assert!(matches!(setup(None, None, t, none), Setup::Off));
        let empty = |_: &str| Some(String::new());
        assert!(matches!(setup(None, None, t, empty), Setup::Off));
        assert!(matches!(
            setup(None, Some("k".into()), t, none),
            Setup::Incomplete(m) if m.contains("no address")
        ));
        let only_address = |name: &str| {
            (name == "BALENA_SUPERVISOR_ADDRESS").then(|| "http://127.0.0.1:48484".to_string())
        };
        assert!(matches!(
            setup(None, None, t, only_address),
            Setup::Incomplete(m) if m.contains("no API key")
        ));
        let bad =
            |name: &str| (name == "BALENA_SUPERVISOR_ADDRESS").then(|| "supervisor".to_string());
        assert!(matches!(
            setup(None, Some("k".into()), t, bad),
            Setup::BadAddress {
                var: "BALENA_SUPERVISOR_ADDRESS",
                ..
            }
        ));
    }

    #[test]
    fn device_fields() {
        let d = Device::from_json(
            br#"{"status":"Idle","update_pending":true,"update_downloaded":null,"update_failed":false}"#,
        )
        .unwrap();
        assert_eq!(
            d,
            Device {
                update_pending: Some(true),
                update_downloaded: None,
                update_failed: Some(false)
            }
        );
        assert_eq!(Device::from_json(b"{}").unwrap(), Device::default());
        assert!(Device::from_json(b"{\"update_pending\":").is_err());
    }

    #[test]
    fn the_key_is_escaped_and_never_shown() {
        assert_eq!(query_escape("aB3-._~"), "aB3-._~");
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        let api = Api::new(
            Address::parse("http://127.0.0.1:1").unwrap(),
            "s3cret".into(),
            Duration::from_millis(1),
        );
        let e = api.error(
            UPDATE,
            Problem::Status {
                status: 401,
                reason: "Unauthorized".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "supervisor API at http://127.0.0.1:1: POST /v1/update: answered 401 Unauthorized"
        );
        assert!(!format!("{e:?}").contains("s3cret"));
        // A call under way, its request included, does not show it either.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api = Api::new(
            Address::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap(),
            "s3cret".into(),
            Duration::from_secs(1),
        );
        let call = api.start(true);
        assert!(!format!("{call:?} {api:?}").contains("s3cret"));
    }

    #[test]
    fn the_kick_never_forces() {
        let body = json::object(KICK_BODY).unwrap();
        assert_eq!(json::get(&body, "force"), Some(Scalar::Bool(false)));
    }
}
