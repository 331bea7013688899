//! Mailboxes across machines: a TCP front for the local mailboxes of one host
//! ([`TcpServer`], what `ipcx mailbox serve --tcp ADDR` runs) and its client
//! ([`RemoteMailbox`], which [`Mailbox::request`](super::Mailbox::request) and
//! [`Mailbox::send`](super::Mailbox::send) use for a `name@host:port` address).
//! The wire format is in the [module documentation](super#tcp-wire-format-version-1).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use super::wire::{HEADER_LEN, Header, Kind, Refusal};
use super::{DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_QUEUED_BYTES, Mailbox, MailboxOptions, NAME_MAX};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::wait::{Deadline, poll_now, wait_fd};

/// `"IPMT"`: the first four bytes of the client's hello and the server's answer.
const HELLO_MAGIC: [u8; 4] = *b"IPMT";
/// The TCP handshake's version.
const TCP_VERSION: u8 = 1;
/// The client's hello before the name: magic, version, name length, two zero bytes.
const HELLO_LEN: usize = 8;
/// The server's answer before its text: magic, version, status, text length, cap.
const STATUS_LEN: usize = 16;
/// The longest text a server's answer may carry.
const MAX_STATUS_TEXT: usize = 1024;

/// Default cap on simultaneous TCP connections of a [`TcpServer`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default time a connection may stay silent between messages before the server closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time the server gives a peer for each read or write to make progress (and for
/// the hello).
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time the server waits for a local mailbox to take or answer a forwarded
/// message.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer's status byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok = 0,
    NotFound = 1,
    Gone = 2,
    BadHello = 3,
    Version = 4,
}

impl Status {
    fn from_u8(v: u8) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::Gone,
            3 => Status::BadHello,
            4 => Status::Version,
            _ => return None,
        })
    }

    fn kind(self) -> ErrorKind {
        match self {
            Status::Ok => ErrorKind::Other,
            Status::NotFound => ErrorKind::NotFound,
            Status::Gone => ErrorKind::PeerGone,
            Status::BadHello => ErrorKind::InvalidInput,
            Status::Version => ErrorKind::Unsupported,
        }
    }
}

/// Splits a remote mailbox address `name@host:port` (IPv6 hosts in brackets); `None`
/// when `to` has no `@`.
///
/// # Errors
/// [`ErrorKind::InvalidName`] for a bad mailbox name, [`ErrorKind::InvalidInput`] for a
/// bad host or port.
pub(crate) fn split_remote(to: &str) -> Option<Result<(String, String, u16)>> {
    let (name, hostport) = to.split_once('@')?;
    let parse = || -> Result<(String, String, u16)> {
        super::check_name(name)?;
        let bad = |why: &str| {
            Error::new("parse mailbox address", ErrorKind::InvalidInput)
                .with_object(to)
                .with_hint(format!(
                    "{why}; write NAME@HOST:PORT, e.g. jobs@127.0.0.1:7000"
                ))
        };
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("an IPv6 host in brackets needs `]:PORT` after it"))?;
            (host, port)
        } else {
            hostport.rsplit_once(':').ok_or_else(|| bad("no `:PORT`"))?
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(&format!("`{port}` is not a port number from 1 to 65535")))?;
        Ok((name.to_string(), host.to_string(), port))
    };
    Some(parse())
}

/// Reads exactly `buf.len()` bytes by `deadline`, each read given the time left.
fn read_full(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Deadline,
    what: &'static str,
) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        set_timeout(stream, deadline, what, true)?;
        match stream.read(&mut buf[done..]) {
            Ok(0) => {
                return Err(Error::new(what, ErrorKind::PeerGone).with_hint(format!(
                    "the peer closed the connection ({done} of {} bytes read)",
                    buf.len()
                )));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(io_error(what, &e)),
        }
    }
    Ok(())
}

/// Writes all of `bufs` by `deadline`.
fn write_all(
    stream: &mut TcpStream,
    bufs: &[&[u8]],
    deadline: Deadline,
    what: &'static str,
) -> Result<()> {
    // A small message goes out in one write, so one segment (TCP_NODELAY is set).
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let joined;
    let one: [&[u8]; 1];
    let bufs = if bufs.len() > 1 && total <= 16 * 1024 {
        joined = bufs.concat();
        one = [&joined];
        &one[..]
    } else {
        bufs
    };
    for buf in bufs {
        let mut done = 0;
        while done < buf.len() {
            set_timeout(stream, deadline, what, false)?;
            match stream.write(&buf[done..]) {
                Ok(0) => {
                    return Err(Error::new(what, ErrorKind::PeerGone)
                        .with_hint("the connection takes no more bytes"));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(io_error(what, &e)),
            }
        }
    }
    Ok(())
}

/// Gives the next read or write the time left until `deadline` (at least 1 ms: a zero
/// socket timeout means "none"); fails with the deadline's error when none is left.
fn set_timeout(
    stream: &TcpStream,
    deadline: Deadline,
    what: &'static str,
    read: bool,
) -> Result<()> {
    let left = match deadline {
        Deadline::Never => None,
        // Callers turn `Now` into a short deadline of their own before reading or writing.
        Deadline::Now => Some(Duration::from_millis(1)),
        Deadline::At(at, _) => {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                deadline.remaining(what, &"tcp connection")?;
            }
            Some(left.max(Duration::from_millis(1)))
        }
    };
    let set = if read {
        stream.set_read_timeout(left)
    } else {
        stream.set_write_timeout(left)
    };
    set.map_err(|e| io_error("setsockopt SO_RCVTIMEO/SO_SNDTIMEO", &e))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn io_error(what: &'static str, e: &io::Error) -> Error {
    let err = Error::from_io(what, e);
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => err
            .with_kind(ErrorKind::PeerGone)
            .with_hint("the peer closed the connection"),
        _ => err,
    }
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/// A connection to one mailbox served over TCP by a [`TcpServer`] (`ipcx mailbox serve
/// --tcp`): requests and one-way messages, with the same framing and limits as local
/// mailboxes.
///
/// [`Mailbox::request`](super::Mailbox::request) and [`Mailbox::send`](super::Mailbox::send)
/// given `name@host:port` use one of these (kept per address), so most code never names
/// this type. Use it directly to talk to a remote mailbox without binding a local one.
///
/// One connection carries one call at a time: calls from several threads take turns.
/// A call that fails half-way (timeout, I/O error) closes the connection, so that no
/// reply can be read out of step; the next call reconnects. There is no authentication
/// or encryption: the server admits whoever reaches its port, so serve on loopback or a
/// trusted network (or behind an SSH tunnel or TLS proxy).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use ipcx::mailbox::RemoteMailbox;
///
/// let jobs = RemoteMailbox::connect("jobs@10.0.0.7:7300")?;
/// let answer = jobs.request(b"status", Duration::from_secs(2))?;
/// # Ok::<(), ipcx::Error>(())
/// ```
#[derive(Debug)]
pub struct RemoteMailbox {
    target: String,
    name: String,
    host: String,
    port: u16,
    max_payload: usize,
    conn: Mutex<Option<Conn>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// The server's cap on payloads, from its answer.
    server_max: u64,
}

impl RemoteMailbox {
    /// Connects to `target` (`name@host:port`) and checks that the server serves a live
    /// mailbox of that name, waiting as long as the system's TCP connect does.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] or [`ErrorKind::InvalidInput`] for a bad address;
    /// [`ErrorKind::PeerGone`] when nothing listens at `host:port` or the server closed
    /// the connection (it may be at its connection limit); [`ErrorKind::NotFound`] when
    /// the server has no mailbox of that name, [`ErrorKind::PeerGone`] when its process
    /// is gone.
    pub fn connect(target: &str) -> Result<RemoteMailbox> {
        RemoteMailbox::connect_until(target, Deadline::Never)
    }

    /// [`connect`](RemoteMailbox::connect), waiting at most `timeout`
    /// ([`ErrorKind::TimedOut`]).
    pub fn connect_timeout(target: &str, timeout: Duration) -> Result<RemoteMailbox> {
        RemoteMailbox::connect_until(target, Deadline::after(timeout))
    }

    pub(crate) fn connect_until(target: &str, deadline: Deadline) -> Result<RemoteMailbox> {
        let Some(parts) = split_remote(target) else {
            return Err(Error::new("parse mailbox address", ErrorKind::InvalidInput)
                .with_object(target)
                .with_hint("a remote mailbox is NAME@HOST:PORT, e.g. jobs@127.0.0.1:7000"));
        };
        let (name, host, port) = parts?;
        let remote = RemoteMailbox {
            target: target.to_string(),
            name,
            host,
            port,
            max_payload: DEFAULT_MAX_PAYLOAD,
            conn: Mutex::new(None),
            next_id: AtomicU64::new(1),
        };
        let conn = remote.open(deadline)?;
        *remote.lock() = Some(conn);
        Ok(remote)
    }

    /// The address, `name@host:port`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The largest payload this mailbox takes: the smaller of the server's cap (from its
    /// last answer) and this client's ([`DEFAULT_MAX_PAYLOAD`]).
    pub fn max_payload(&self) -> usize {
        let server = self.lock().as_ref().map_or(u64::MAX, |c| c.server_max);
        usize::try_from(server)
            .unwrap_or(usize::MAX)
            .min(self.max_payload)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects and says hello.
    fn open(&self, deadline: Deadline) -> Result<Conn> {
        let object = self.target.as_str();
        // Without waiting, a connection to a live server on a reachable host still
        // takes a round trip: give it a moment.
        let deadline = match deadline {
            Deadline::Now => Deadline::after(Duration::from_millis(500)),
            d => d,
        };
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                Error::from_io("resolve", &e)
                    .with_object(object)
                    .with_hint(format!("cannot resolve host `{}`", self.host))
            })?
            .collect();
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            let attempt = match deadline {
                Deadline::Never => TcpStream::connect(addr),
                Deadline::Now => unreachable!("turned into a deadline above"),
                Deadline::At(at, _) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        deadline.remaining("connect", &object)?;
                    }
                    TcpStream::connect_timeout(&addr, left)
                }
            };
            match attempt {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(mut stream) = stream else {
            let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound));
            let err = Error::from_io("connect", &e).with_object(object);
            return Err(match e.kind() {
                io::ErrorKind::ConnectionRefused => err.with_kind(ErrorKind::PeerGone).with_hint(
                    "nothing listens at this host and port: start `ipcx mailbox serve --tcp` there",
                ),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    err.with_kind(ErrorKind::TimedOut)
                }
                _ => err,
            });
        };
        stream
            .set_nodelay(true)
            .op_on("setsockopt TCP_NODELAY", object)?;
        let name_len = u8::try_from(self.name.len()).unwrap_or(u8::MAX);
        let hello = [
            HELLO_MAGIC[0],
            HELLO_MAGIC[1],
            HELLO_MAGIC[2],
            HELLO_MAGIC[3],
            TCP_VERSION,
            name_len,
            0,
            0,
        ];
        let handshake = |stream: &mut TcpStream| -> Result<Conn> {
            write_all(
                stream,
                &[&hello, self.name.as_bytes()],
                deadline,
                "send hello",
            )?;
            let mut answer = [0u8; STATUS_LEN];
            read_full(stream, &mut answer, deadline, "recv hello answer")?;
            let corrupt = |why: String| {
                Err(Error::new("recv hello answer", ErrorKind::Corrupt).with_hint(why))
            };
            if answer[0..4] != HELLO_MAGIC || answer[4] != TCP_VERSION {
                return corrupt(format!(
                    "the answer starts {:02x?}, not \"IPMT\" version {TCP_VERSION}: not an ipcx \
                     mailbox server, or another version",
                    &answer[0..5]
                ));
            }
            let text_len = usize::from(u16::from_le_bytes([answer[6], answer[7]]));
            if text_len > MAX_STATUS_TEXT {
                return corrupt(format!(
                    "the answer announces {text_len} bytes of text; at most {MAX_STATUS_TEXT} are allowed"
                ));
            }
            let mut text = vec![0u8; text_len];
            read_full(stream, &mut text, deadline, "recv hello answer")?;
            let text = String::from_utf8_lossy(&text).into_owned();
            let mut cap = [0u8; 8];
            cap.copy_from_slice(&answer[8..16]);
            match Status::from_u8(answer[5]) {
                Some(Status::Ok) => Ok(Conn {
                    stream: stream.try_clone().op("dup tcp stream")?,
                    server_max: u64::from_le_bytes(cap),
                }),
                Some(status) => Err(Error::new("open remote mailbox", status.kind())
                    .with_hint(format!("the server says: {text}"))),
                None => corrupt(format!("unknown status {} ({text})", answer[5])),
            }
        };
        handshake(&mut stream).map_err(|e| {
            let e = e.with_object(object);
            if e.kind() == ErrorKind::PeerGone {
                e.with_hint(
                    "the server closed the connection during the handshake: it may be at its \
                     connection limit, or not an ipcx mailbox server",
                )
            } else {
                e
            }
        })
    }

    /// Sends `msg` as a request and waits at most `timeout` (connecting and sending
    /// included) for the reply.
    ///
    /// # Errors
    /// As [`Mailbox::request`](super::Mailbox::request): [`ErrorKind::TimedOut`],
    /// [`ErrorKind::PeerGone`] (the mailbox or the server went away),
    /// [`ErrorKind::PermissionDenied`], [`ErrorKind::LimitReached`] or
    /// [`ErrorKind::MessageTooLarge`] when the server or the mailbox refused it.
    pub fn request(&self, msg: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let deadline = Deadline::after(timeout);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.call(Kind::Request, id, msg, deadline)
            .map(|r| r.unwrap_or_default())
    }

    /// Sends a one-way message, waiting as long as the connection is full.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] above [`max_payload`](RemoteMailbox::max_payload);
    /// [`ErrorKind::PeerGone`] when the server closed the connection (it does when the
    /// mailbox is gone).
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.call(Kind::OneWay, 0, msg, Deadline::Never).map(drop)
    }

    /// [`send`](RemoteMailbox::send) only if the connection has room now
    /// ([`ErrorKind::WouldBlock`] otherwise). Not strictly non-blocking: with no
    /// connection open it first connects (up to 500 ms), and once the connection takes
    /// the first bytes the rest of the message must follow within the I/O timeout
    /// (10 s); calls from other threads wait for it meanwhile.
    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        self.call(Kind::OneWay, 0, msg, Deadline::Now).map(drop)
    }

    /// [`send`](RemoteMailbox::send), waiting at most `timeout`.
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.call(Kind::OneWay, 0, msg, Deadline::after(timeout))
            .map(drop)
    }

    pub(crate) fn send_until(&self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.call(Kind::OneWay, 0, msg, deadline).map(drop)
    }

    /// Sends one frame and, for a request, reads frames until its reply.
    fn call(&self, kind: Kind, id: u64, msg: &[u8], deadline: Deadline) -> Result<Option<Vec<u8>>> {
        let object = self.target.as_str();
        let mut guard = self.lock();
        let too_large = |cap: u64| {
            Error::new("send", ErrorKind::MessageTooLarge)
                .with_object(object)
                .with_hint(format!(
                    "the payload is {} bytes; this remote mailbox takes at most {cap} bytes",
                    msg.len()
                ))
        };
        // Our own cap first, before any connection is made.
        if msg.len() as u64 > self.max_payload as u64 {
            return Err(too_large(self.max_payload as u64));
        }
        if guard.is_none() {
            *guard = Some(self.open(deadline)?);
        }
        let Some(conn) = guard.as_mut() else {
            unreachable!("connected just above")
        };
        // Then the server's, which only a connection tells (it may have changed since
        // the last one).
        let cap = conn.server_max.min(self.max_payload as u64);
        if msg.len() as u64 > cap {
            return Err(too_large(cap));
        }
        // Ok(Err(refusal)): the server answered, and the stream is still in step.
        let result = (|| -> Result<Result<Option<Vec<u8>>>> {
            let deadline = match deadline {
                Deadline::Now => {
                    if !poll_now(conn.stream.as_fd_ref(), PollFlags::OUT).contains(PollFlags::OUT) {
                        return Err(Error::new("send", ErrorKind::WouldBlock).with_hint(
                            "the TCP connection is full: the server is not keeping up; wait \
                             with send or send_timeout",
                        ));
                    }
                    // Room for some of it: the rest of the message must follow promptly.
                    Deadline::after(DEFAULT_IO_TIMEOUT)
                }
                d => d,
            };
            let header = Header {
                kind,
                flags: 0,
                id,
                len: msg.len() as u64,
            }
            .encode();
            write_all(&mut conn.stream, &[&header, msg], deadline, "send")?;
            if kind != Kind::Request {
                return Ok(Ok(None));
            }
            loop {
                let mut head = [0u8; HEADER_LEN];
                read_full(&mut conn.stream, &mut head, deadline, "recv reply")?;
                let header = Header::decode_stream(&head)?;
                if !matches!(header.kind, Kind::Reply | Kind::Refusal) {
                    return Err(
                        Error::new("recv reply", ErrorKind::Corrupt).with_hint(format!(
                            "the server sent a {:?} message; it sends only replies and refusals",
                            header.kind
                        )),
                    );
                }
                if header.len > self.max_payload as u64 {
                    return Err(
                        Error::new("recv reply", ErrorKind::MessageTooLarge).with_hint(format!(
                            "the server announces a {}-byte reply; this client takes at most {}",
                            header.len, self.max_payload
                        )),
                    );
                }
                let mut payload = vec![0u8; header.len as usize];
                read_full(&mut conn.stream, &mut payload, deadline, "recv reply")?;
                if header.id != id {
                    // Not ours: a timed-out request closes its connection, so this is a
                    // server's mistake; skip it.
                    continue;
                }
                return Ok(match header.kind {
                    Kind::Reply => Ok(Some(payload)),
                    _ => Err(super::refusal_error(&payload)),
                });
            }
        })();
        let e = match result {
            Ok(Ok(r)) => return Ok(r),
            Ok(Err(refusal)) => {
                // The server closes the connection after refusing a payload it cannot
                // skip; so does this side.
                if refusal.kind() == ErrorKind::MessageTooLarge {
                    *guard = None;
                }
                return Err(refusal.with_object(object));
            }
            Err(e) => e,
        };
        if e.kind() != ErrorKind::WouldBlock {
            // A frame half-written or a reply unread: start afresh next time.
            if let Some(c) = guard.take() {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
        let e = e.with_object(object);
        Err(match (e.kind(), deadline) {
            (ErrorKind::TimedOut, Deadline::At(_, t)) if kind == Kind::Request => {
                e.with_hint(format!(
                    "no reply within {t:?}; the connection is closed, and the next call reconnects"
                ))
            }
            _ => e,
        })
    }
}

/// A borrowed descriptor of a std stream, for `poll`.
trait AsFdRef {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl AsFdRef for TcpStream {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// Options for a [`TcpServer`]: which mailboxes it reaches, and the limits it holds
/// every TCP peer to.
///
/// # Examples
///
/// ```no_run
/// use ipcx::mailbox::TcpServeOptions;
///
/// let server = TcpServeOptions::new().max_connections(16).bind("127.0.0.1:7300")?;
/// println!("serving on {}", server.local_addr()?);
/// server.run()?; // until shutdown() from another thread
/// # Ok::<(), ipcx::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TcpServeOptions {
    dir: Option<PathBuf>,
    max_connections: usize,
    max_payload: usize,
    max_queued_bytes: usize,
    idle_timeout: Duration,
    io_timeout: Duration,
    forward_timeout: Duration,
}

impl Default for TcpServeOptions {
    fn default() -> TcpServeOptions {
        TcpServeOptions {
            dir: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
        }
    }
}

impl TcpServeOptions {
    /// The defaults: the private runtime directory's mailboxes, and the `DEFAULT_*`
    /// limits of this module and of [`super`].
    pub fn new() -> TcpServeOptions {
        TcpServeOptions::default()
    }

    /// Serves the mailboxes of `dir` instead of the private runtime directory (as
    /// [`MailboxOptions::dir`]).
    pub fn dir(mut self, dir: impl AsRef<Path>) -> TcpServeOptions {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The most TCP connections served at once (default [`DEFAULT_MAX_CONNECTIONS`]);
    /// one more is closed as soon as it is accepted.
    pub fn max_connections(mut self, n: usize) -> TcpServeOptions {
        self.max_connections = n;
        self
    }

    /// The largest payload taken from a peer (default [`DEFAULT_MAX_PAYLOAD`]); a larger
    /// request is refused and its connection closed.
    pub fn max_payload(mut self, bytes: usize) -> TcpServeOptions {
        self.max_payload = bytes;
        self
    }

    /// The bound on payload bytes held for all connections at once (default
    /// [`DEFAULT_MAX_QUEUED_BYTES`]); a message that would pass it is read and dropped,
    /// and a request is refused ([`ErrorKind::LimitReached`] at the client).
    pub fn max_queued_bytes(mut self, bytes: usize) -> TcpServeOptions {
        self.max_queued_bytes = bytes;
        self
    }

    /// How long a connection may stay silent between messages (default
    /// [`DEFAULT_IDLE_TIMEOUT`]).
    pub fn idle_timeout(mut self, t: Duration) -> TcpServeOptions {
        self.idle_timeout = t;
        self
    }

    /// How long each read or write of a peer may take to make progress, and the hello
    /// in all (default [`DEFAULT_IO_TIMEOUT`]). A message must also arrive whole within
    /// this time plus one second per MiB.
    pub fn io_timeout(mut self, t: Duration) -> TcpServeOptions {
        self.io_timeout = t;
        self
    }

    /// How long a forwarded message may wait for the local mailbox to take it or reply
    /// (default [`DEFAULT_FORWARD_TIMEOUT`]).
    pub fn forward_timeout(mut self, t: Duration) -> TcpServeOptions {
        self.forward_timeout = t;
        self
    }

    /// Listens on `addr` and binds the server's own mailbox (`tcp-PID-N`, which the
    /// local mailboxes see as the sender of everything forwarded). Serves nothing until
    /// [`TcpServer::run`].
    ///
    /// # Errors
    /// The errors of `bind(2)` on `addr` ([`ErrorKind::AlreadyExists`] for a port in
    /// use), and of [`MailboxOptions::bind`].
    pub fn bind(&self, addr: impl ToSocketAddrs + std::fmt::Display) -> Result<TcpServer> {
        let object = addr.to_string();
        let listener = TcpListener::bind(&addr).map_err(|e| {
            let err = Error::from_io("bind", &e).with_object(&object);
            if e.kind() == io::ErrorKind::AddrInUse {
                err.with_kind(ErrorKind::AlreadyExists)
                    .with_hint("another process listens on this port; choose another")
            } else {
                err
            }
        })?;
        listener.set_nonblocking(true).op_on("F_SETFL", &object)?;
        let mut mopts = MailboxOptions::new()
            .max_payload(self.max_payload)
            .max_queued_bytes(64 * 1024);
        if let Some(dir) = &self.dir {
            mopts = mopts.dir(dir);
        }
        let mailbox = super::bind_ephemeral(&mopts, "tcp")?;
        Ok(TcpServer {
            listener,
            shared: Arc::new(ServerShared {
                opts: self.clone(),
                dir: mailbox.dir().to_path_buf(),
                mailbox,
                active: Arc::new(AtomicUsize::new(0)),
                held: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
                conns: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(0),
                stats: Mutex::new(TcpServerStats::default()),
            }),
        })
    }
}

/// Counters of a [`TcpServer`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpServerStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections closed at once because [`TcpServeOptions::max_connections`] were open.
    pub over_limit: u64,
    /// Connections closed for a bad hello, a malformed or oversized message, or a peer
    /// too slow or silent too long.
    pub rejected: u64,
    /// Messages forwarded to local mailboxes.
    pub forwarded: u64,
    /// Why the last connection was rejected.
    pub last_rejected: Option<Error>,
}

/// A TCP front for the local mailboxes of this host: each connection names one mailbox
/// in its hello, and each message it sends is forwarded to that mailbox (a request's
/// reply, or refusal, goes back). What `ipcx mailbox serve --tcp ADDR` runs; nothing is
/// reachable over TCP unless one runs.
///
/// Peers are untrusted: every length is checked against the limits before anything is
/// allocated, connections are capped, and a silent or slow peer is disconnected (see
/// [`TcpServeOptions`]). A malformed message closes its connection and the server goes
/// on.
pub struct TcpServer {
    listener: TcpListener,
    shared: Arc<ServerShared>,
}

impl std::fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TcpServer({:?})", self.listener.local_addr().ok())
    }
}

struct ServerShared {
    opts: TcpServeOptions,
    dir: PathBuf,
    mailbox: Mailbox,
    /// Connections being served; counted down by each connection's thread after it has
    /// let go of this structure, so that at 0 the server's mailbox has one owner left.
    active: Arc<AtomicUsize>,
    /// Payload bytes read from peers and not yet forwarded.
    held: AtomicUsize,
    stop: AtomicBool,
    /// A clone of every open connection, shut down by [`TcpServer::shutdown`].
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    stats: Mutex<TcpServerStats>,
}

impl ServerShared {
    fn stats(&self) -> MutexGuard<'_, TcpServerStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TcpServer {
    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().op("getsockname")
    }

    /// The server's own mailbox, the sender the local mailboxes see.
    pub fn mailbox(&self) -> &Mailbox {
        &self.shared.mailbox
    }

    /// What the server has done so far.
    pub fn stats(&self) -> TcpServerStats {
        self.shared.stats().clone()
    }

    /// Accepts and serves connections, one thread each, until [`shutdown`](TcpServer::shutdown);
    /// then closes every connection and waits (up to 2 s) for their threads to end, so
    /// that dropping the server removes its mailbox.
    ///
    /// A failed `accept` (`EMFILE`, `ENFILE`, a connection reset before it was taken)
    /// is waited out; the listener stays up (reliability item 15).
    pub fn run(&self) -> Result<()> {
        self.accept_loop();
        self.shutdown();
        let until = Instant::now() + Duration::from_secs(2);
        while self.shared.active.load(Ordering::Acquire) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn accept_loop(&self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            let _ = wait_fd(
                std::os::fd::AsFd::as_fd(&self.listener),
                PollFlags::IN,
                Deadline::after(Duration::from_millis(100)),
                "accept",
                &"tcp listener",
            );
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // EMFILE/ENFILE and the like: wait for descriptors to free up.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if self.shared.active.load(Ordering::Acquire) >= self.shared.opts.max_connections {
                self.shared.stats().over_limit += 1;
                drop(stream);
                continue;
            }
            if stream.set_nonblocking(false).is_err() {
                continue;
            }
            let id = self.shared.next_conn.fetch_add(1, Ordering::Relaxed);
            if let Ok(clone) = stream.try_clone() {
                self.shared.conns().insert(id, clone);
            }
            self.shared.active.fetch_add(1, Ordering::AcqRel);
            self.shared.stats().connections += 1;
            let shared = self.shared.clone();
            let active = self.shared.active.clone();
            let spawned = std::thread::Builder::new()
                .name("ipcx-mailbox-tcp".into())
                .spawn(move || {
                    // Even if serving panics, the connection's entry and its slot go,
                    // and the shared state is let go before the slot, so that a
                    // shutdown that sees no connection left also sees it released.
                    struct Leave(Option<Arc<ServerShared>>, Arc<AtomicUsize>, u64);
                    impl Drop for Leave {
                        fn drop(&mut self) {
                            if let Some(shared) = self.0.take() {
                                shared.conns().remove(&self.2);
                            }
                            self.1.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    let leave = Leave(Some(shared), active, id);
                    if let Some(shared) = &leave.0
                        && let Err(e) = serve_connection(shared, stream)
                    {
                        let mut stats = shared.stats();
                        stats.rejected += 1;
                        stats.last_rejected = Some(e);
                    }
                });
            if spawned.is_err() {
                if let Some(s) = self.shared.conns().remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
                self.shared.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Stops [`run`](TcpServer::run) within about 100 ms and closes every connection.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        for s in self.shared.conns().values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reserved payload bytes of the server's bound, given back on drop.
struct Held<'a>(&'a AtomicUsize, usize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

fn answer(
    stream: &mut TcpStream,
    status: Status,
    cap: u64,
    text: &str,
    io: Duration,
) -> Result<()> {
    let text = &text.as_bytes()[..text.len().min(MAX_STATUS_TEXT)];
    let mut head = [0u8; STATUS_LEN];
    head[0..4].copy_from_slice(&HELLO_MAGIC);
    head[4] = TCP_VERSION;
    head[5] = status as u8;
    head[6..8].copy_from_slice(&(text.len() as u16).to_le_bytes());
    head[8..16].copy_from_slice(&cap.to_le_bytes());
    write_all(
        stream,
        &[&head, text],
        Deadline::after(io),
        "send hello answer",
    )
}

fn frame(stream: &mut TcpStream, kind: Kind, id: u64, payload: &[u8], io: Duration) -> Result<()> {
    let header = Header {
        kind,
        flags: 0,
        id,
        len: payload.len() as u64,
    }
    .encode();
    // As for reads: the I/O timeout, plus a second per MiB, so that a large reply to
    // a slow but progressing client is not cut off.
    let by = io.saturating_add(Duration::from_secs((payload.len() >> 20) as u64));
    write_all(
        stream,
        &[&header, payload],
        Deadline::after(by),
        "send reply",
    )
}

fn refuse(stream: &mut TcpStream, id: u64, why: Refusal, text: &str, io: Duration) -> Result<()> {
    let mut payload = (why as u32).to_le_bytes().to_vec();
    payload.extend_from_slice(text.as_bytes());
    frame(stream, Kind::Refusal, id, &payload, io)
}

/// Serves one connection: the hello, then messages until the peer leaves or misbehaves.
fn serve_connection(shared: &ServerShared, mut stream: TcpStream) -> Result<()> {
    let opts = &shared.opts;
    let io = opts.io_timeout;
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "tcp peer".to_string(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let cap = opts.max_payload as u64;
    // The hello.
    let hello_by = Deadline::after(io);
    let mut hello = [0u8; HELLO_LEN];
    read_full(&mut stream, &mut hello, hello_by, "recv hello").map_err(|e| e.with_object(&peer))?;
    let bad_hello = |stream: &mut TcpStream, status: Status, why: String| {
        let _ = answer(stream, status, cap, &why, io);
        Err(Error::new("recv hello", ErrorKind::Corrupt)
            .with_object(&peer)
            .with_hint(why))
    };
    if hello[0..4] != HELLO_MAGIC {
        return bad_hello(
            &mut stream,
            Status::BadHello,
            format!("the hello starts {:02x?}, not \"IPMT\"", &hello[0..4]),
        );
    }
    if hello[4] != TCP_VERSION {
        return bad_hello(
            &mut stream,
            Status::Version,
            format!(
                "TCP protocol version {} is not the supported {TCP_VERSION}",
                hello[4]
            ),
        );
    }
    let name_len = usize::from(hello[5]);
    if name_len == 0 || name_len > NAME_MAX || hello[6..8] != [0, 0] {
        return bad_hello(
            &mut stream,
            Status::BadHello,
            format!(
                "a hello names 1 to {NAME_MAX} bytes and has two zero bytes; got length {name_len}, {:02x?}",
                &hello[6..8]
            ),
        );
    }
    let mut name = vec![0u8; name_len];
    read_full(&mut stream, &mut name, hello_by, "recv hello").map_err(|e| e.with_object(&peer))?;
    let name = match String::from_utf8(name) {
        Ok(n) if super::check_name(&n).is_ok() => n,
        Ok(n) => {
            let why = super::check_name(&n)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return bad_hello(&mut stream, Status::BadHello, why);
        }
        Err(_) => {
            return bad_hello(
                &mut stream,
                Status::BadHello,
                "the name is not UTF-8".into(),
            );
        }
    };
    if let Err(e) = super::probe(&shared.dir.join(&name)) {
        let status = if e.kind() == ErrorKind::NotFound {
            Status::NotFound
        } else {
            Status::Gone
        };
        let _ = answer(
            &mut stream,
            status,
            cap,
            &format!("mailbox `{name}`: {e}"),
            io,
        );
        return Ok(()); // Not the peer's fault.
    }
    answer(&mut stream, Status::Ok, cap, "", io)?;
    // The messages.
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut head = [0u8; HEADER_LEN];
        // The first byte may take the idle time; the rest of the message must follow.
        match read_full(
            &mut stream,
            &mut head[..1],
            Deadline::after(opts.idle_timeout),
            "recv",
        ) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::PeerGone => return Ok(()),
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                return Err(e.with_object(&peer).with_hint(format!(
                    "the peer sent nothing for {:?}; connection closed",
                    opts.idle_timeout
                )));
            }
            Err(e) => return Err(e.with_object(&peer)),
        }
        read_full(&mut stream, &mut head[1..], Deadline::after(io), "recv")
            .map_err(|e| e.with_object(&peer))?;
        let header = Header::decode_stream(&head).map_err(|e| e.with_object(&peer))?;
        if !matches!(header.kind, Kind::Request | Kind::OneWay) {
            return Err(Error::new("recv", ErrorKind::Corrupt)
                .with_object(&peer)
                .with_hint(format!(
                    "a client sends requests and one-way messages, not {:?}",
                    header.kind
                )));
        }
        if header.len > cap {
            let text = format!(
                "the {}-byte payload is above the server's cap of {cap} bytes",
                header.len
            );
            if header.kind == Kind::Request {
                let _ = refuse(&mut stream, header.id, Refusal::TooLarge, &text, io);
            }
            return Err(Error::new("recv", ErrorKind::MessageTooLarge)
                .with_object(&peer)
                .with_hint(format!("{text}; connection closed")));
        }
        let len = header.len as usize;
        let by = Deadline::after(io.saturating_add(Duration::from_secs((len >> 20) as u64)));
        let reserved = shared.held.fetch_add(len, Ordering::AcqRel);
        let held = Held(&shared.held, len);
        if reserved.saturating_add(len) > opts.max_queued_bytes {
            // Read past it in small pieces, never holding it: give the reservation back
            // first, so a slow peer cannot keep others' messages refused meanwhile.
            drop(held);
            let mut skip = [0u8; 16 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(skip.len());
                read_full(&mut stream, &mut skip[..n], by, "recv")
                    .map_err(|e| e.with_object(&peer))?;
                left -= n;
            }
            if header.kind == Kind::Request {
                let text = format!(
                    "the server holds {reserved} bytes for its connections; {len} more would pass its bound of {} bytes",
                    opts.max_queued_bytes
                );
                refuse(&mut stream, header.id, Refusal::QueueFull, &text, io)?;
            }
            continue;
        }
        let mut payload = vec![0u8; len];
        read_full(&mut stream, &mut payload, by, "recv").map_err(|e| e.with_object(&peer))?;
        shared.stats().forwarded += 1;
        if header.kind == Kind::OneWay {
            let sent = shared
                .mailbox
                .send_timeout(&name, &payload, opts.forward_timeout);
            drop(held);
            match sent {
                Ok(()) => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PeerGone)
                        || e.errno() == Some(libc::ECONNREFUSED) =>
                {
                    // The mailbox is gone: closing tells the client.
                    return Ok(());
                }
                Err(_) => {}
            }
            continue;
        }
        let outcome = shared
            .mailbox
            .request(&name, &payload, opts.forward_timeout);
        drop(held);
        match outcome {
            Ok(reply) => frame(&mut stream, Kind::Reply, header.id, &reply, io)?,
            Err(e) => {
                let why = match e.kind() {
                    ErrorKind::PermissionDenied => Refusal::Denied,
                    ErrorKind::LimitReached => Refusal::QueueFull,
                    ErrorKind::MessageTooLarge => Refusal::TooLarge,
                    ErrorKind::PeerGone | ErrorKind::NotFound => Refusal::Gone,
                    ErrorKind::TimedOut => Refusal::TimedOut,
                    _ => Refusal::Failed,
                };
                let text = format!("mailbox `{name}` on {}: {e}", shared.dir.display());
                refuse(&mut stream, header.id, why, &text, io)?;
            }
        }
    }
}
