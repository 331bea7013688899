//! The address grammar: one string names any ipcx transport, with its options.
//!
//! ```text
//! pipe:                          this process's stdin (receiver) or stdout (sender)
//! fifo:/run/app/jobs.fifo        a FIFO
//! unix:/run/app.sock             a Unix stream socket
//! unix-dgram:/run/app.dgram      a Unix datagram socket
//! unix-seqpacket:/run/app.seq    a Unix seqpacket socket
//! tcp:localhost:7000             TCP (IPv6 in brackets: tcp:[::1]:7000)
//! udp:127.0.0.1:7001             UDP
//! mq:/jobs                       a POSIX message queue
//! sysv-mq:0x4a4f4253             a System V message queue, by key (decimal or 0x hex)
//! shm:/jobs                      POSIX shared memory slots guarded by semaphores
//! ring:/jobs                     the shared-memory ring
//! mailbox:jobs                   a mailbox in the private runtime directory
//! mailbox:jobs@10.0.0.7:7300     a mailbox served over TCP by `ipcx mailbox serve`
//! ```
//!
//! Options follow a `?`, joined by `&`: `mq:/jobs?capacity=10&msgsize=8192&prio=3`. Each
//! transport accepts only its own options, and every value is checked when the address
//! is parsed, so a typo is an error that names the option and what it accepts, not a
//! silently ignored setting:
//!
//! | option | transports | meaning | default |
//! |---|---|---|---|
//! | `mode` | fifo, unix, unix-dgram, unix-seqpacket, mq, sysv-mq, shm, ring, mailbox | permission bits of the object the receiver creates (octal) | `0600` |
//! | `max` | pipe, fifo, unix, tcp, unix-dgram, unix-seqpacket, shm, mailbox | the largest message, in bytes (`K`, `M`, `G` suffixes: 1024-based) | 16 MiB on byte streams and mailboxes, 64 KiB otherwise |
//! | `capacity` | mq, shm, ring | how many messages the queue or slot array holds; a ring's data area in bytes (rounded up to a power of two) | mq: the system's `msg_default`; shm: 4; ring: 1 MiB |
//! | `wait` | ring | how each side waits: `busy`, `adaptive` or `blocking` ([`crate::ring::Wait`]) | `adaptive` |
//! | `producers` | ring | makes a multi-producer ring with this many sender slots, 1 to 64 ([`crate::ring::mpsc`]); both sides must say it | a single-producer ring |
//! | `msgsize` | mq | `mq_msgsize`: the largest message | the system's `msgsize_default` |
//! | `prio` | mq | the priority the sender sends with, 0 to 32767 | 0 |
//! | `type` | sysv-mq | the sender's message type, and the type the receiver takes (positive) | sender 1, receiver any |
//! | `nodelay` | tcp | `TCP_NODELAY`, `true` or `false` | `true` |
//!
//! Both sides of a channel should be given the same address: options that only the
//! creating side uses (`mode`, `capacity`, `msgsize`) are ignored by the other, and
//! options both use (`max`, `type`, `producers`) must agree.
//!
//! Names and paths are validated as the objects themselves validate them
//! ([`PosixName`], [`crate::name::check_path`], [`crate::name::check_socket_path`]), so a bad name fails here,
//! before any system call, with [`ErrorKind::InvalidName`].
//!
//! A path or name (`mq:`, `shm:`, `ring:`, `mailbox:`) that contains `?` or `%`, a
//! control character or (in a path) bytes that are not UTF-8 is written with `%XX`
//! escapes, which parsing decodes: `mq:/100%25` is the queue `/100%`, and
//! `mq:/a%3Fb?prio=1` the queue `/a?b` with priority 1. [`Display`](fmt::Display) prints
//! an address in one canonical form that parses back to an equal address.
//!
//! ```
//! use ipcx::addr::{Address, Transport};
//!
//! let a: Address = "mq:jobs?prio=3&capacity=10".parse()?;
//! assert_eq!(a.transport(), Transport::Mq);
//! assert_eq!(a.to_string(), "mq:/jobs?capacity=10&prio=3"); // canonical form
//! assert_eq!(a.options().prio, Some(3));
//! assert_eq!(a.to_string().parse::<Address>()?, a);
//!
//! let err = "mq:/jobs?colour=blue".parse::<Address>().unwrap_err();
//! assert_eq!(err.kind(), ipcx::ErrorKind::InvalidInput);
//! assert!(err.to_string().contains("unknown option `colour`"));
//! # Ok::<(), ipcx::Error>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
use crate::name::{PosixName, check_path, check_socket_path};
use crate::sysv::Key;

/// Which transport an [`Address`] names: the part before the first `:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// `pipe:`: the process's own stdin (receiving) or stdout (sending).
    Pipe,
    /// `fifo:PATH`: a named pipe.
    Fifo,
    /// `unix:PATH`: a Unix stream socket.
    Unix,
    /// `unix-dgram:PATH`: a Unix datagram socket.
    UnixDgram,
    /// `unix-seqpacket:PATH`: a Unix seqpacket socket.
    UnixSeqpacket,
    /// `tcp:HOST:PORT`.
    Tcp,
    /// `udp:HOST:PORT`.
    Udp,
    /// `mq:/NAME`: a POSIX message queue.
    Mq,
    /// `sysv-mq:KEY`: a System V message queue.
    SysvMq,
    /// `shm:/NAME`: POSIX shared memory slots guarded by semaphores.
    Shm,
    /// `ring:/NAME`: the shared-memory ring channel ([`crate::ring`]).
    Ring,
    /// `mailbox:NAME` or `mailbox:NAME@HOST:PORT`: a mailbox ([`crate::mailbox`]), local
    /// or served over TCP.
    Mailbox,
}

impl Transport {
    /// Every transport, in the order the documentation lists them.
    pub const ALL: [Transport; 12] = [
        Transport::Pipe,
        Transport::Fifo,
        Transport::Unix,
        Transport::UnixDgram,
        Transport::UnixSeqpacket,
        Transport::Tcp,
        Transport::Udp,
        Transport::Mq,
        Transport::SysvMq,
        Transport::Shm,
        Transport::Ring,
        Transport::Mailbox,
    ];

    /// The scheme as written in an address (`"unix-dgram"`).
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe",
            Transport::Fifo => "fifo",
            Transport::Unix => "unix",
            Transport::UnixDgram => "unix-dgram",
            Transport::UnixSeqpacket => "unix-seqpacket",
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Mq => "mq",
            Transport::SysvMq => "sysv-mq",
            Transport::Shm => "shm",
            Transport::Ring => "ring",
            Transport::Mailbox => "mailbox",
        }
    }

    /// The options this transport accepts, in the order they are printed.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Transport::Pipe => &["max"],
            Transport::Fifo | Transport::Unix | Transport::UnixDgram | Transport::UnixSeqpacket => {
                &["mode", "max"]
            }
            Transport::Tcp => &["max", "nodelay"],
            Transport::Udp => &[],
            Transport::Mailbox => &["mode", "max"],
            Transport::Ring => &["mode", "capacity", "wait", "producers"],
            Transport::Mq => &["mode", "capacity", "msgsize", "prio"],
            Transport::SysvMq => &["mode", "type"],
            Transport::Shm => &["mode", "capacity", "max"],
        }
    }

    /// Whether the transport carries a byte stream, which the channel layer frames.
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Transport::Pipe | Transport::Fifo | Transport::Unix | Transport::Tcp
        )
    }

    fn example(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe:",
            Transport::Fifo => "fifo:/run/app/jobs.fifo",
            Transport::Unix => "unix:/run/app.sock",
            Transport::UnixDgram => "unix-dgram:/run/app.sock",
            Transport::UnixSeqpacket => "unix-seqpacket:/run/app.sock",
            Transport::Tcp => "tcp:127.0.0.1:7000 or tcp:[::1]:7000",
            Transport::Udp => "udp:127.0.0.1:7000",
            Transport::Mq => "mq:/jobs",
            Transport::SysvMq => "sysv-mq:0x4a4f4253",
            Transport::Shm => "shm:/jobs",
            Transport::Ring => "ring:/jobs",
            Transport::Mailbox => "mailbox:jobs or mailbox:jobs@127.0.0.1:7300",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

impl FromStr for Transport {
    type Err = Error;

    fn from_str(s: &str) -> Result<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| t.scheme() == s)
            .ok_or_else(|| {
                Error::new("parse address", ErrorKind::InvalidInput)
                    .with_object(s)
                    .with_hint(format!("unknown transport `{s}`; one of: {}", schemes()))
            })
    }
}

fn schemes() -> String {
    Transport::ALL.map(Transport::scheme).join(", ")
}

/// The options given in an address's query part; `None` means the default applies.
///
/// Only the options of the address's [`Transport`] can be set (see
/// [`Transport::options`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Options {
    /// `mode`: permission bits of the created object.
    pub mode: Option<u32>,
    /// `max`: the largest message in bytes.
    pub max: Option<usize>,
    /// `capacity`: messages the queue or slot array holds.
    pub capacity: Option<usize>,
    /// `msgsize`: a POSIX queue's `mq_msgsize`.
    pub msgsize: Option<usize>,
    /// `prio`: a POSIX queue sender's priority.
    pub prio: Option<u32>,
    /// `type`: a System V queue's message type.
    pub mtype: Option<i64>,
    /// `nodelay`: `TCP_NODELAY`.
    pub nodelay: Option<bool>,
    /// `wait`: how a ring's side waits.
    pub wait: Option<crate::ring::Wait>,
    /// `producers`: a multi-producer ring's number of sender slots.
    pub producers: Option<usize>,
}

impl Options {
    fn get(&self, key: &str) -> Option<String> {
        match key {
            "mode" => self.mode.map(|m| format!("{m:04o}")),
            "max" => self.max.map(|v| v.to_string()),
            "capacity" => self.capacity.map(|v| v.to_string()),
            "msgsize" => self.msgsize.map(|v| v.to_string()),
            "prio" => self.prio.map(|v| v.to_string()),
            "type" => self.mtype.map(|v| v.to_string()),
            "nodelay" => self.nodelay.map(|v| v.to_string()),
            "wait" => self.wait.map(|v| v.to_string()),
            "producers" => self.producers.map(|v| v.to_string()),
            _ => None,
        }
    }

    fn is_set(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Where an address points.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Target {
    None,
    Path(PathBuf),
    Host { host: String, port: u16 },
    Name(PosixName),
    Key(Key),
    Mailbox(String),
}

/// A parsed, validated address: a [`Transport`], where it points, and its [`Options`].
///
/// Parse one with [`str::parse`] (or [`Address::parse`]), build one with the
/// constructors ([`Address::unix`], [`Address::mq`], …) and
/// [`with_option`](Address::with_option), and open a channel on it with
/// [`channel::receiver`](crate::channel::receiver) and
/// [`channel::sender`](crate::channel::sender).
///
/// # Examples
///
/// ```
/// use ipcx::addr::Address;
///
/// let tcp: Address = "tcp:[::1]:7000?max=64K".parse()?;
/// assert_eq!(tcp.host_port(), Some(("::1", 7000)));
/// assert_eq!(tcp.options().max, Some(65536));
/// assert_eq!(tcp.to_string(), "tcp:[::1]:7000?max=65536");
///
/// let unix = ipcx::addr::Address::unix("/tmp/app.sock")?.with_option("mode", "0660")?;
/// assert_eq!(unix.to_string(), "unix:/tmp/app.sock?mode=0660");
/// # Ok::<(), ipcx::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    transport: Transport,
    target: Target,
    options: Options,
}

/// The largest `max` a byte-stream frame can announce: its length field is 32 bits.
pub(crate) const MAX_FRAME_LEN: usize = u32::MAX as usize;

impl Address {
    /// Parses an address; the same as `s.parse::<Address>()`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an unknown transport, a malformed target or an
    /// option that is unknown, repeated or out of range (the message names the option
    /// and what it accepts); [`ErrorKind::InvalidName`] for a name or path that the
    /// object itself would refuse.
    pub fn parse(s: &str) -> Result<Address> {
        s.parse()
    }

    /// `pipe:`.
    pub fn pipe() -> Address {
        Address::bare(Transport::Pipe, Target::None)
    }

    /// `fifo:PATH`.
    pub fn fifo(path: impl AsRef<Path>) -> Result<Address> {
        Address::with_path(Transport::Fifo, path.as_ref())
    }

    /// `unix:PATH` (stream).
    pub fn unix(path: impl AsRef<Path>) -> Result<Address> {
        Address::with_path(Transport::Unix, path.as_ref())
    }

    /// `unix-dgram:PATH`.
    pub fn unix_dgram(path: impl AsRef<Path>) -> Result<Address> {
        Address::with_path(Transport::UnixDgram, path.as_ref())
    }

    /// `unix-seqpacket:PATH`.
    pub fn unix_seqpacket(path: impl AsRef<Path>) -> Result<Address> {
        Address::with_path(Transport::UnixSeqpacket, path.as_ref())
    }

    /// `tcp:HOST:PORT`; `host` is a name, an IPv4 address or a bare IPv6 address.
    pub fn tcp(host: &str, port: u16) -> Result<Address> {
        Address::with_host(Transport::Tcp, host, port, host)
    }

    /// `udp:HOST:PORT`.
    pub fn udp(host: &str, port: u16) -> Result<Address> {
        Address::with_host(Transport::Udp, host, port, host)
    }

    /// `mq:/NAME`.
    pub fn mq(name: &str) -> Result<Address> {
        Address::with_name(Transport::Mq, name)
    }

    /// `sysv-mq:KEY`. [`Key::PRIVATE`] is refused: it names no queue another process can
    /// find.
    pub fn sysv_mq(key: Key) -> Result<Address> {
        Address::with_key(key, &key.raw().to_string())
    }

    /// `shm:/NAME`.
    pub fn shm(name: &str) -> Result<Address> {
        Address::with_name(Transport::Shm, name)
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The options that were given.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The path of a `fifo:` or `unix*:` address.
    pub fn path(&self) -> Option<&Path> {
        match &self.target {
            Target::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The host and port of a `tcp:` or `udp:` address (an IPv6 host without brackets).
    pub fn host_port(&self) -> Option<(&str, u16)> {
        match &self.target {
            Target::Host { host, port } => Some((host, *port)),
            _ => None,
        }
    }

    /// The name of an `mq:`, `shm:` or `ring:` address.
    pub fn name(&self) -> Option<&PosixName> {
        match &self.target {
            Target::Name(n) => Some(n),
            _ => None,
        }
    }

    /// The key of a `sysv-mq:` address.
    pub fn key(&self) -> Option<Key> {
        match &self.target {
            Target::Key(k) => Some(*k),
            _ => None,
        }
    }

    /// The target of a `mailbox:` address, as [`Mailbox::send`](crate::mailbox::Mailbox::send)
    /// takes it: `NAME`, or `NAME@HOST:PORT` for a mailbox served over TCP.
    pub fn mailbox(&self) -> Option<&str> {
        match &self.target {
            Target::Mailbox(m) => Some(m),
            _ => None,
        }
    }

    /// Sets option `key` to `value`, validated as in an address's query part.
    ///
    /// # Errors
    /// As for [`Address::parse`]: an option this transport does not take, or a value out
    /// of range.
    pub fn with_option(mut self, key: &str, value: &str) -> Result<Address> {
        let text = self.to_string();
        self.options.set(self.transport, key, value, &text, true)?;
        Ok(self)
    }

    /// The same address with `port` in place of its port (for a receiver that bound
    /// port 0 and tells senders where it really is).
    pub(crate) fn with_port(&self, port: u16) -> Address {
        let mut a = self.clone();
        if let Target::Host { port: p, .. } = &mut a.target {
            *p = port;
        }
        a
    }

    fn bare(transport: Transport, target: Target) -> Address {
        Address {
            transport,
            target,
            options: Options::default(),
        }
    }

    fn with_path(transport: Transport, path: &Path) -> Result<Address> {
        let text = format!("{transport}:{}", escape(path.as_os_str().as_bytes()));
        let check = if transport == Transport::Fifo {
            check_path(path)
        } else {
            check_socket_path(path)
        };
        check.map_err(|e| rename(e, &text))?;
        Ok(Address::bare(transport, Target::Path(path.to_path_buf())))
    }

    fn with_host(transport: Transport, host: &str, port: u16, text: &str) -> Result<Address> {
        let bad = |hint: String| Err(invalid(&format!("{transport}:{text}"), hint));
        if host.is_empty() {
            return bad("the host is empty; write tcp:HOST:PORT, e.g. tcp:127.0.0.1:7000".into());
        }
        if host.contains(':') {
            if host.parse::<Ipv6Addr>().is_err() {
                return bad(format!("`{host}` is not an IPv6 address"));
            }
        } else if host.parse::<IpAddr>().is_err() && !is_host_name(host) {
            return bad(format!(
                "`{host}` is neither an IP address nor a host name (letters, digits, '-' and \
                 '.')"
            ));
        }
        Ok(Address::bare(
            transport,
            Target::Host {
                host: host.to_string(),
                port,
            },
        ))
    }

    fn with_name(transport: Transport, name: &str) -> Result<Address> {
        let text = format!("{transport}:{}", escape(name.as_bytes()));
        let name = PosixName::new(name).map_err(|e| rename(e, &text))?;
        Ok(Address::bare(transport, Target::Name(name)))
    }

    fn with_key(key: Key, text: &str) -> Result<Address> {
        if key.is_private() {
            return Err(invalid(
                &format!("sysv-mq:{text}"),
                "key 0 is IPC_PRIVATE, which names no queue another process can find; \
                 choose a non-zero key"
                    .into(),
            ));
        }
        Ok(Address::bare(Transport::SysvMq, Target::Key(key)))
    }
}

/// An `InvalidInput` error of `parse address` on `text`.
fn invalid(text: &str, hint: String) -> Error {
    Error::new("parse address", ErrorKind::InvalidInput)
        .with_object(text)
        .with_hint(hint)
}

/// A name or path error, reported against the whole address.
fn rename(e: Error, text: &str) -> Error {
    let hint = e.hint().unwrap_or("invalid name").to_string();
    Error::new("parse address", e.kind())
        .with_object(text)
        .with_hint(hint)
}

fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl Options {
    /// Sets one option, checking that the transport takes it and the value is valid.
    fn set(
        &mut self,
        transport: Transport,
        key: &str,
        value: &str,
        text: &str,
        replace: bool,
    ) -> Result<()> {
        let allowed = transport.options();
        if !allowed.contains(&key) {
            let takes = if allowed.is_empty() {
                format!("{transport}: addresses take no options")
            } else {
                format!("{transport}: takes {}", allowed.join(", "))
            };
            return Err(invalid(text, format!("unknown option `{key}`; {takes}")));
        }
        if !replace && self.is_set(key) {
            return Err(invalid(text, format!("option `{key}` is given twice")));
        }
        let bad = |what: &str| invalid(text, format!("option `{key}={value}`: {what}"));
        if key != "nodelay" {
            // Every other option is a number, and Rust's integer parsers accept a leading
            // `+` (and `-`): refuse any sign, so one value has one spelling.
            let digits = value.strip_prefix("0o").unwrap_or(value);
            if let Some(unsigned) = digits.strip_prefix(['+', '-']) {
                let prefix = &value[..value.len() - digits.len()];
                return Err(bad(&format!(
                    "no sign is allowed; write {key}={prefix}{unsigned}"
                )));
            }
        }
        match key {
            "mode" => {
                let digits = value.strip_prefix("0o").unwrap_or(value);
                match u32::from_str_radix(digits, 8) {
                    Ok(m) if m <= 0o777 && !digits.is_empty() => self.mode = Some(m),
                    _ => {
                        return Err(bad(
                            "a permission mode is octal, from 0 to 0777 (e.g. mode=0640)",
                        ));
                    }
                }
            }
            "max" | "capacity" | "msgsize" => {
                let n = parse_size(value).ok_or_else(|| {
                    bad("expected a positive number of bytes or messages, optionally with a K, M or G suffix (powers of 1024)")
                })?;
                if n == 0 {
                    return Err(bad("must be at least 1"));
                }
                match key {
                    "max" => {
                        if transport.is_stream() && n > MAX_FRAME_LEN {
                            return Err(bad(&format!(
                                "a framed message is at most {MAX_FRAME_LEN} bytes (its length \
                                 field has 32 bits)"
                            )));
                        }
                        self.max = Some(n);
                    }
                    "capacity" => self.capacity = Some(n),
                    _ => self.msgsize = Some(n),
                }
            }
            "prio" => {
                let max = crate::mq::posix::MQ_PRIO_MAX - 1;
                match value.parse::<u32>() {
                    Ok(p) if p <= max => self.prio = Some(p),
                    _ => return Err(bad(&format!("a priority is from 0 to {max}"))),
                }
            }
            "type" => match value.parse::<i64>() {
                Ok(t) if t > 0 && libc::c_long::try_from(t).is_ok() => self.mtype = Some(t),
                _ => {
                    return Err(bad(&format!(
                        "a message type is a positive number up to {}",
                        libc::c_long::MAX
                    )));
                }
            },
            "nodelay" => match value {
                "true" => self.nodelay = Some(true),
                "false" => self.nodelay = Some(false),
                _ => return Err(bad("expected true or false")),
            },
            "wait" => match value.parse() {
                Ok(w) => self.wait = Some(w),
                Err(_) => return Err(bad("expected busy, adaptive or blocking")),
            },
            "producers" => match value.parse::<usize>() {
                Ok(n) if (1..=crate::ring::MAX_PRODUCERS).contains(&n) => {
                    self.producers = Some(n);
                }
                _ => {
                    return Err(bad(&format!(
                        "a ring has 1 to {} producer slots",
                        crate::ring::MAX_PRODUCERS
                    )));
                }
            },
            _ => unreachable!("every allowed option is handled above"),
        }
        Ok(())
    }
}

/// A decimal number with an optional 1024-based suffix (`64K`, `16M`, `1G`).
fn parse_size(value: &str) -> Option<usize> {
    let (digits, scale) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 1usize << 10),
        b'm' | b'M' => (&value[..value.len() - 1], 1 << 20),
        b'g' | b'G' => (&value[..value.len() - 1], 1 << 30),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address> {
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(invalid(
                s,
                format!(
                    "an address is TRANSPORT:TARGET, e.g. unix:/run/app.sock; transports: {}",
                    schemes()
                ),
            ));
        };
        let transport: Transport = scheme
            .parse()
            .map_err(|e: Error| invalid(s, e.hint().unwrap_or("unknown transport").to_string()))?;
        let (target, query) = match rest.split_once('?') {
            Some((t, q)) => (t, Some(q)),
            None => (rest, None),
        };
        let mut address = match transport {
            Transport::Pipe => {
                if !target.is_empty() {
                    return Err(invalid(
                        s,
                        "`pipe:` takes no target: it is this process's stdin or stdout".into(),
                    ));
                }
                Address::pipe()
            }
            Transport::Fifo | Transport::Unix | Transport::UnixDgram | Transport::UnixSeqpacket => {
                if target.is_empty() {
                    return Err(invalid(
                        s,
                        format!("the path is empty; e.g. {}", transport.example()),
                    ));
                }
                let path = unescape(target).map_err(|hint| invalid(s, hint))?;
                let path = PathBuf::from(OsString::from_vec(path));
                Address::with_path(transport, &path).map_err(|e| rename(e, s))?
            }
            Transport::Tcp | Transport::Udp => {
                let (host, port) = split_host_port(target)
                    .map_err(|hint| invalid(s, format!("{hint}; e.g. {}", transport.example())))?;
                Address::with_host(transport, host, port, target).map_err(|e| rename(e, s))?
            }
            Transport::Mq | Transport::Shm | Transport::Ring => {
                let name = unescape_utf8(target).map_err(|hint| invalid(s, hint))?;
                Address::with_name(transport, &name).map_err(|e| rename(e, s))?
            }
            Transport::SysvMq => {
                let key: Key = target.parse().map_err(|_| {
                    invalid(
                        s,
                        format!(
                            "`{target}` is not a System V key: a 32-bit number, decimal or hex \
                             with 0x (e.g. {})",
                            transport.example()
                        ),
                    )
                })?;
                Address::with_key(key, target).map_err(|e| rename(e, s))?
            }
            Transport::Mailbox => {
                let name = unescape_utf8(target).map_err(|hint| invalid(s, hint))?;
                check_mailbox(&name).map_err(|e| rename(e, s))?;
                Address::bare(Transport::Mailbox, Target::Mailbox(name))
            }
        };
        if let Some(query) = query {
            if query.is_empty() {
                return Err(invalid(
                    s,
                    "nothing follows `?`: write key=value options or drop the `?`".into(),
                ));
            }
            for pair in query.split('&') {
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(invalid(
                        s,
                        format!("option `{pair}` has no value: options are key=value, joined by &"),
                    ));
                };
                if value.is_empty() {
                    return Err(invalid(s, format!("option `{key}` has an empty value")));
                }
                address.options.set(transport, key, value, s, false)?;
            }
        }
        Ok(address)
    }
}

/// Checks a mailbox target: a name ([`crate::mailbox::check_name`]), or
/// `NAME@HOST:PORT`.
fn check_mailbox(target: &str) -> Result<()> {
    match crate::mailbox::tcp::split_remote(target) {
        Some(remote) => remote.map(drop),
        None if target.is_empty() => Err(Error::new("parse address", ErrorKind::InvalidName)
            .with_hint("the mailbox name is empty; e.g. mailbox:jobs")),
        None => crate::mailbox::check_name(target),
    }
}

/// Splits `HOST:PORT` or `[V6]:PORT`.
fn split_host_port(target: &str) -> std::result::Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address in brackets lacks its `]`".to_string())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "a port must follow the `]`, after a `:`".to_string())?;
        if !host.contains(':') {
            return Err(format!("`[{host}]`: only IPv6 addresses go in brackets"));
        }
        (host, port)
    } else {
        let (host, port) = target
            .rsplit_once(':')
            .ok_or_else(|| "expected HOST:PORT".to_string())?;
        if host.contains(':') {
            return Err("an IPv6 address goes in brackets: [::1]:7000".into());
        }
        (host, port)
    };
    let port = Some(port)
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| format!("`{port}` is not a port number (0 to 65535)"))?;
    Ok((host, port))
}

/// Writes a path or name with `%XX` escapes for `%`, `?`, control characters and, in
/// text that is not UTF-8, every byte above 0x7f, so that it parses back unchanged.
fn escape(bytes: &[u8]) -> String {
    fn push_escaped(out: &mut String, b: u8) {
        out.push_str(&format!("%{b:02X}"));
    }
    let special = |b: u8| b == b'%' || b == b'?' || b.is_ascii_control();
    let mut out = String::with_capacity(bytes.len());
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            for c in text.chars() {
                // Only ASCII is special, so a character that is not stays whole.
                match u8::try_from(c) {
                    Ok(b) if c.is_ascii() && special(b) => push_escaped(&mut out, b),
                    _ => out.push(c),
                }
            }
        }
        Err(_) => {
            for &b in bytes {
                if special(b) || !b.is_ascii() {
                    push_escaped(&mut out, b);
                } else {
                    out.push(char::from(b));
                }
            }
        }
    }
    out
}

/// Decodes the `%XX` escapes of a path or name.
fn unescape(text: &str) -> std::result::Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    "a `%` in a path or name starts an escape of two hex digits (%25 is `%`, \
                     %3F is `?`)"
                        .to_string()
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Decodes the `%XX` escapes of a name, which must then be UTF-8.
fn unescape_utf8(text: &str) -> std::result::Result<String, String> {
    String::from_utf8(unescape(text)?).map_err(|_| {
        "the name's `%XX` escapes decode to bytes that are not UTF-8; names are text".to_string()
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.transport)?;
        match &self.target {
            Target::None => {}
            Target::Path(p) => f.write_str(&escape(p.as_os_str().as_bytes()))?,
            Target::Host { host, port } if host.contains(':') => write!(f, "[{host}]:{port}")?,
            Target::Host { host, port } => write!(f, "{host}:{port}")?,
            Target::Name(n) => f.write_str(&escape(n.as_str().as_bytes()))?,
            Target::Key(k) => write!(f, "{:#x}", k.raw())?,
            Target::Mailbox(m) => f.write_str(&escape(m.as_bytes()))?,
        }
        let mut sep = '?';
        for key in self.transport.options() {
            if let Some(value) = self.options.get(key) {
                write!(f, "{sep}{key}={value}")?;
                sep = '&';
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A name or path component: any characters but `/` and NUL, weighted towards the
    /// ones the grammar treats specially (`?`, `%`, `&`, `=`, `:`, controls).
    fn component() -> impl Strategy<Value = String> {
        let special =
            prop::sample::select(vec!['?', '%', '&', '=', ':', '#', '\t', '\n', ' ', '[']);
        let any_char = any::<char>().prop_filter("no / or NUL", |c| *c != '/' && *c != '\0');
        prop::collection::vec(prop_oneof![2 => special, 3 => any_char], 1..12)
            .prop_map(|cs| cs.into_iter().collect())
    }

    /// Raw bytes for a path component, often not UTF-8.
    fn raw_component() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
            1..12,
        )
    }

    fn path() -> impl Strategy<Value = PathBuf> {
        let part = prop_oneof![component().prop_map(String::into_bytes), raw_component()];
        (any::<bool>(), prop::collection::vec(part, 1..4)).prop_map(|(absolute, parts)| {
            let mut bytes = if absolute { vec![b'/'] } else { Vec::new() };
            bytes.extend(parts.join(&b'/'));
            PathBuf::from(OsString::from_vec(bytes))
        })
    }

    #[allow(clippy::useless_conversion)] // `c_long` is 32 bits on 32-bit targets
    fn max_type() -> i64 {
        i64::from(libc::c_long::MAX)
    }

    /// A valid value for option `key`, as a user might write it.
    fn value(key: &'static str) -> BoxedStrategy<String> {
        match key {
            "mode" => (0u32..=0o777, any::<bool>())
                .prop_map(|(m, prefix)| {
                    if prefix {
                        format!("0o{m:o}")
                    } else {
                        format!("{m:o}")
                    }
                })
                .boxed(),
            "max" | "capacity" | "msgsize" => prop_oneof![
                (1usize..=u32::MAX as usize).prop_map(|n| n.to_string()),
                (1usize..4096, prop::sample::select(vec!["K", "k", "M", "m"]))
                    .prop_map(|(n, s)| format!("{n}{s}")),
            ]
            .boxed(),
            "prio" => (0u32..crate::mq::posix::MQ_PRIO_MAX)
                .prop_map(|p| p.to_string())
                .boxed(),
            "type" => (1i64..=max_type()).prop_map(|t| t.to_string()).boxed(),
            "nodelay" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
            "wait" => prop::sample::select(vec!["busy", "adaptive", "blocking"])
                .prop_map(str::to_string)
                .boxed(),
            "producers" => (1..=crate::ring::MAX_PRODUCERS)
                .prop_map(|n| n.to_string())
                .boxed(),
            _ => unreachable!("{key}"),
        }
    }

    fn target() -> impl Strategy<Value = Address> {
        let host = prop_oneof![
            any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
            any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
            "[a-z0-9][a-z0-9-]{0,9}(\\.[a-z0-9-]{1,10}){0,3}",
        ];
        let paths = (
            prop::sample::select(vec![
                Transport::Fifo,
                Transport::Unix,
                Transport::UnixDgram,
                Transport::UnixSeqpacket,
            ]),
            path(),
        )
            .prop_filter_map("a valid path", |(t, p)| Address::with_path(t, &p).ok());
        let names = (
            prop::sample::select(vec![Transport::Mq, Transport::Shm, Transport::Ring]),
            any::<bool>(),
            component(),
        )
            .prop_filter_map("a valid name", |(t, slash, n)| {
                let n = if slash { format!("/{n}") } else { n };
                Address::with_name(t, &n).ok()
            });
        prop_oneof![
            Just(Address::pipe()),
            paths,
            (any::<bool>(), host, any::<u16>()).prop_filter_map("a valid host", |(tcp, h, p)| {
                if tcp {
                    Address::tcp(&h, p)
                } else {
                    Address::udp(&h, p)
                }
                .ok()
            }),
            names,
            any::<i32>().prop_filter_map("not IPC_PRIVATE", |k| Address::sysv_mq(Key::new(k)).ok()),
            (
                "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,20}",
                prop::option::of(("[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2}", 1u16..))
            )
                .prop_filter_map("a valid mailbox", |(m, remote)| {
                    let m = match remote {
                        Some((host, port)) => format!("{m}@{host}:{port}"),
                        None => m,
                    };
                    check_mailbox(&m).ok()?;
                    Some(Address::bare(Transport::Mailbox, Target::Mailbox(m)))
                }),
        ]
    }

    /// An address with a random subset of its transport's options set.
    fn address() -> impl Strategy<Value = Address> {
        target().prop_flat_map(|a| {
            let options: Vec<BoxedStrategy<Option<(&'static str, String)>>> = a
                .transport()
                .options()
                .iter()
                .map(|&key| prop::option::of(value(key).prop_map(move |v| (key, v))).boxed())
                .collect();
            (Just(a), options).prop_filter_map("valid options", |(a, options)| {
                options
                    .into_iter()
                    .flatten()
                    .try_fold(a, |a, (k, v)| a.with_option(k, &v))
                    .ok()
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every valid address prints in a form that parses back to an equal address and
        /// prints the same again; the target never leaks a bare `?` into the query.
        #[test]
        fn every_address_round_trips(a in address()) {
            let text = a.to_string();
            let again: Address = text.parse().map_err(|e| {
                TestCaseError::fail(format!("{text:?} does not parse: {e}"))
            })?;
            prop_assert_eq!(&again, &a, "{}", text);
            prop_assert_eq!(again.to_string(), text);
        }
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("16m"), Some(16 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("12"), Some(12));
        for bad in ["", "K", "-1", "1.5", "0x10", "99999999999999999999", "1T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_escape_and_unescape() {
        for p in ["/tmp/a?b", "/tmp/100%", "/tmp/tab\there", "/tmp/ünï"] {
            let e = escape(p.as_bytes());
            assert!(!e.contains('?'), "{e}");
            assert_eq!(unescape(&e).unwrap(), p.as_bytes());
        }
        assert_eq!(escape(&[b'/', 0xff, b'x']), "/%FFx");
        assert_eq!(unescape("/%FFx").unwrap(), [b'/', 0xff, b'x']);
        assert!(unescape("/tmp/%zz").is_err());
        assert!(unescape("/tmp/%4").is_err());
        assert!(unescape("/tmp/%+4").is_err());
    }
}
