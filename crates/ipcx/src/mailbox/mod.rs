//! Mailboxes: named endpoints with request/reply and a kernel-verified sender.
//!
//! A process binds a [`Mailbox`] under a name; any permitted process sends to that name;
//! every message it receives comes in an [`Envelope`] that says who sent it, as the
//! kernel saw it (the sender's bound address and its pid, uid and gid), never as the
//! message claims. [`Mailbox::request`] sends and waits for the matching reply;
//! [`Envelope::reply`] answers. This is the pattern of Mach ports, Binder and D-Bus, with
//! no broker: the kernel's Unix sockets do the routing.
//!
//! ```
//! use std::time::Duration;
//! use ipcx::mailbox::{Mailbox, MailboxOptions};
//! # let dir = std::env::temp_dir().join(format!("ipcx-doc-mbox-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
//! // Without `.dir(..)`, mailboxes live in the private runtime directory.
//! let server = MailboxOptions::new().dir(&dir).bind("echo")?;
//! let client = MailboxOptions::new().dir(&dir).bind("client")?;
//!
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         let env = server.recv_timeout(Duration::from_secs(5))?;
//!         assert_eq!(env.sender(), Some("client"));
//!         assert_eq!(env.credentials().pid, Some(std::process::id()));
//!         env.reply(env.payload())
//!     });
//!     let answer = client.request("echo", b"ping", Duration::from_secs(5))?;
//!     assert_eq!(answer, b"ping");
//!     Ok::<(), ipcx::Error>(())
//! })?;
//! # drop((server, client)); std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where mailboxes live
//!
//! A mailbox named `jobs` is a Unix datagram socket file `<dir>/jobs`, where `<dir>` is
//! the private runtime directory ([`crate::runtime`]: `$XDG_RUNTIME_DIR/ipcx`, else
//! `/tmp/ipcx-<uid>`, 0700 and owner-checked) unless [`MailboxOptions::dir`] names
//! another. Next to it, `<dir>/jobs.lock` is held with an exclusive `flock` for the
//! mailbox's lifetime ([`crate::unix::BindOptions`]): binding a name whose owner is alive
//! fails with [`ErrorKind::AlreadyExists`], and a socket file left by a process that died
//! is taken over. Names are 1 to [`NAME_MAX`] bytes of ASCII letters, digits, `-`, `_`
//! and `.`, not starting with `.` and not ending in `.lock`.
//!
//! An **address** (the `to` of [`Mailbox::send`] and [`Mailbox::request`], and what
//! [`Envelope::sender`] returns) is either a name, meaning a mailbox in this mailbox's
//! own directory, or an absolute path to a mailbox's socket file elsewhere.
//!
//! # Why datagram sockets
//!
//! Each mailbox is one `SOCK_DGRAM` socket bound to its path, with `SO_PASSCRED` set.
//! That gives, for every message and without any connection to set up or track:
//!
//! - the **sender's address** from the kernel (`recvmsg`'s source address: the path the
//!   sender's own mailbox is bound to; binding it needs write access to its directory,
//!   and the path cannot be bound twice), which is where replies go;
//! - the sender's **credentials** from the kernel (`SCM_CREDENTIALS`, stamped on each
//!   message because the receiver set `SO_PASSCRED`; a process can only present its own
//!   unless it holds `CAP_SYS_ADMIN`/`CAP_SETUID`), checked against the access list;
//! - many-to-one delivery with message boundaries, and descriptor passing for large
//!   payloads.
//!
//! Seqpacket would add connections, and with them peer-death notices, but a connection
//! carries no name of the connecting mailbox that the kernel vouches for, and every
//! mailbox would hold one connection per peer. What datagrams lack, knowing that the
//! mailbox one is waiting on died (reliability item 4), comes from its lock file: the
//! owner holds, besides its `flock`, an open-file-description lock (`F_OFD_SETLK`) on
//! byte 0 of `<path>.lock`. A request opens the lock file before sending, and while
//! replies are awaited the mailbox tests that byte with `F_OFD_GETLK` every
//! [`LIVENESS_TICK`]. The kernel releases the owner's locks when its process dies,
//! whatever the cause, so the test then finds the byte free and every request pending
//! on that server fails with [`ErrorKind::PeerGone`]. The test never takes a lock, so a
//! prober never makes a new binder of the name see it as taken. No PID is involved
//! (item 5). A peer whose lock file cannot be opened (not an ipcx mailbox, or another
//! user's) is waited on until the timeout.
//!
//! # Wire format (version 1)
//!
//! Every message is one datagram: a 24-byte header, all integers little-endian, then the
//! payload inline, or nothing when the payload travels in a memfd.
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0 | 4 | magic | `"IPMB"` (`49 50 4d 42`) |
//! | 4 | 1 | version | `1` |
//! | 5 | 1 | kind | `1` request, `2` reply, `3` one-way, `4` refusal |
//! | 6 | 2 | flags | bit 0: payload in a memfd; all other bits must be 0 |
//! | 8 | 8 | correlation id | chosen by the requester, non-zero; a reply or refusal repeats it; `0` for one-way |
//! | 16 | 8 | payload length | bytes of payload |
//!
//! - **Inline** (flag bit 0 clear): exactly `payload length` bytes follow the header, and
//!   no descriptor is attached. At most [`MAX_INLINE`] bytes travel inline.
//! - **Memfd** (flag bit 0 set): nothing follows the header, and exactly one descriptor is
//!   attached (`SCM_RIGHTS`): a memfd of exactly `payload length` bytes sealed with at
//!   least `F_SEAL_SHRINK` and `F_SEAL_WRITE`, holding the payload from offset 0.
//! - **Refusal**: the payload is a `u32` reason (`1` sender not allowed, `2` receiver's
//!   queue full, `3` payload above the receiver's cap) followed by UTF-8 text; it answers
//!   a request the receiver would not queue.
//!
//! The receiver validates every field before it allocates or maps anything: a datagram
//! shorter than the header, a wrong magic or version, an unknown kind or flag, a length
//! that does not match the bytes or the memfd, a missing, extra or unsealed descriptor,
//! or a datagram larger than `24 + MAX_INLINE` is dropped (its descriptors closed),
//! counted in [`MailboxStats::malformed`] with the reason in
//! [`MailboxStats::last_rejected`], and the mailbox carries on (reliability items 7, 8,
//! 11, 12). A peer in another language needs only a Unix datagram socket bound to a
//! path, `sendmsg` and `recvmsg`.
//!
//! # TCP wire format (version 1)
//!
//! `ipcx mailbox serve --tcp ADDR` ([`TcpServer`]) lets peers on other hosts reach the
//! mailboxes of its directory; nothing is reachable over TCP unless it runs. A client
//! ([`RemoteMailbox`], or [`Mailbox::request`]/[`Mailbox::send`] given
//! `name@host:port`) opens one TCP connection per target mailbox. All integers are
//! little-endian.
//!
//! 1. **Hello** (client → server), 8 bytes then the name:
//!
//!    | offset | size | field | value |
//!    |---|---|---|---|
//!    | 0 | 4 | magic | `"IPMT"` (`49 50 4d 54`) |
//!    | 4 | 1 | version | `1` |
//!    | 5 | 1 | name length | 1 to [`NAME_MAX`] |
//!    | 6 | 2 | reserved | `0` |
//!    | 8 | n | name | the mailbox name, as [`check_name`] accepts |
//!
//! 2. **Answer** (server → client), 16 bytes then the text:
//!
//!    | offset | size | field | value |
//!    |---|---|---|---|
//!    | 0 | 4 | magic | `"IPMT"` |
//!    | 4 | 1 | version | `1` |
//!    | 5 | 1 | status | `0` ok, `1` no such mailbox, `2` its process is gone, `3` bad hello, `4` unsupported version |
//!    | 6 | 2 | text length | at most 1024 |
//!    | 8 | 8 | payload cap | the largest payload the server takes |
//!    | 16 | n | text | UTF-8, why a status is not `0` |
//!
//!    On any status but `0` the server closes the connection.
//! 3. **Messages**, both ways, each exactly an IPMB v1 header (above) followed by
//!    `payload length` bytes: the client sends requests (kind 1, any non-zero
//!    correlation id) and one-way messages (kind 3); the server answers each request, in
//!    order, with a reply (2) or a refusal (4) carrying its id. Flag bit 0 (memfd) is
//!    never set: no descriptor crosses TCP. Refusals add three reasons to the three
//!    above: `4` the mailbox is gone, `5` it did not reply within the server's forward
//!    timeout, `6` forwarding failed otherwise.
//!
//! The server treats every peer as hostile: a header whose magic, version, kind, flags
//! or id rule is wrong closes the connection; a length above the payload cap is refused
//! (reason 3) and the connection closed, before anything is allocated; a message that
//! would take the bytes held for all connections past
//! [`TcpServeOptions::max_queued_bytes`] is read past in 16 KiB pieces and refused
//! (reason 2), and the connection goes on. Connections are capped
//! ([`TcpServeOptions::max_connections`]: one more is closed at once), a peer silent for
//! [`TcpServeOptions::idle_timeout`] between messages is disconnected, and each read and
//! write must make progress within [`TcpServeOptions::io_timeout`] (a message must
//! arrive whole within that plus one second per MiB). Every forwarded message comes to
//! the local mailbox from the server's own mailbox (`tcp-PID-N`) with the server's
//! credentials: the access list sees the server, not the remote peer. There is no
//! authentication or encryption: serve on loopback or a trusted network, or behind a
//! tunnel.
//!
//! # Access, limits and backpressure
//!
//! - **Access**: a sender is admitted when its kernel-reported uid is the mailbox owner's,
//!   or is in [`MailboxOptions::allow_uid`], or its gid is in
//!   [`MailboxOptions::allow_gid`]. A refused *request* is answered with a refusal, so the
//!   requester's [`Mailbox::request`] fails with [`ErrorKind::PermissionDenied`]; a
//!   refused one-way message is dropped and counted in [`MailboxStats::denied`]. (The
//!   socket file's mode, [`MailboxOptions::mode`], decides who can send at all.)
//! - **Payload cap** ([`MailboxOptions::max_payload`], default [`DEFAULT_MAX_PAYLOAD`]):
//!   a larger send fails at once with [`ErrorKind::MessageTooLarge`]; a larger incoming
//!   request is refused the same way.
//! - **Queued bytes** ([`MailboxOptions::max_queued_bytes`], default
//!   [`DEFAULT_MAX_QUEUED_BYTES`]): messages received but not yet taken with `recv` count
//!   their payload plus [`ENVELOPE_OVERHEAD`]; one that would pass the bound is refused
//!   ([`ErrorKind::LimitReached`] for a request, counted in
//!   [`MailboxStats::queue_full`] for a one-way message). A receiver that never reads
//!   therefore holds a bounded amount of memory, and its senders learn it (items 20, 27).
//! - **Large payloads** above [`MailboxOptions::inline_threshold`] travel as a sealed
//!   memfd: one copy into it by the sender, one copy out by the receiver, whatever the
//!   size, instead of a chunked stream.
//!
//! Each mailbox runs one receiving thread that drains its socket, routes replies to the
//! waiting [`Mailbox::request`] calls by correlation id (a reply to a request that timed
//! out finds no one waiting and is dropped, counted in [`MailboxStats::late_replies`]),
//! and queues everything else for [`Mailbox::recv`]. A reply is accepted only from the
//! address the request was sent to.
//!
//! # References
//! - [unix(7): `SO_PASSCRED`, `SCM_CREDENTIALS`, `SCM_RIGHTS`](https://man7.org/linux/man-pages/man7/unix.7.html)
//! - [flock(2)](https://man7.org/linux/man-pages/man2/flock.2.html)
//! - [fcntl(2), "Open file description locks"](https://man7.org/linux/man-pages/man2/fcntl.2.html)
//! - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)

pub(crate) mod tcp;
mod wire;

pub use tcp::{
    DEFAULT_FORWARD_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    RemoteMailbox, TcpServeOptions, TcpServer, TcpServerStats,
};

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix,
};
use rustix::pipe::PipeFlags;

use crate::error::{Context, Error, ErrorKind, Result};
use crate::shm::memfd::{Memfd, Seals};
use crate::unix::{BindOptions, PeerCred, SocketFile};
use crate::wait::{Backoff, Deadline, poll_now, wait_fd};
use wire::{FLAG_MEMFD, HEADER_LEN, Header, Kind, Refusal};

/// The longest mailbox name, in bytes.
pub const NAME_MAX: usize = 64;
/// The most payload bytes that travel inline in the datagram; larger payloads go in a
/// memfd. Receivers accept datagrams up to the header plus this.
pub const MAX_INLINE: usize = 64 * 1024;
/// Default payload size above which a payload travels in a sealed memfd.
pub const DEFAULT_INLINE_THRESHOLD: usize = 16 * 1024;
/// Default cap on one message's payload: 128 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 128 << 20;
/// Default bound on the bytes queued in a mailbox and not yet received: 256 MiB.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 256 << 20;
/// What each queued message counts against the queued-bytes bound besides its payload.
pub const ENVELOPE_OVERHEAD: usize = 128;
/// How often a mailbox checks that the mailboxes it awaits replies from are alive.
pub const LIVENESS_TICK: Duration = Duration::from_millis(20);

/// Options for binding a [`Mailbox`]: directory, socket file mode, access list, limits.
///
/// # Examples
///
/// ```no_run
/// use ipcx::mailbox::MailboxOptions;
///
/// let mailbox = MailboxOptions::new()
///     .allow_gid(1001)              // members of group 1001 may send too
///     .max_payload(1 << 20)         // 1 MiB per message
///     .max_queued_bytes(16 << 20)   // 16 MiB waiting to be received
///     .bind("jobs")?;
/// # Ok::<(), ipcx::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MailboxOptions {
    dir: Option<PathBuf>,
    mode: u32,
    allow_uids: Vec<u32>,
    allow_gids: Vec<u32>,
    max_payload: usize,
    max_queued_bytes: usize,
    inline_threshold: usize,
    /// When the queued-bytes bound is reached, stop reading the socket (senders wait in
    /// the kernel) instead of refusing. Only for mailboxes that never request: a reply
    /// would wait behind the queue. The channel layer's receivers use it.
    pub(crate) hold_when_full: bool,
}

impl Default for MailboxOptions {
    fn default() -> MailboxOptions {
        MailboxOptions {
            dir: None,
            mode: 0o600,
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            hold_when_full: false,
        }
    }
}

impl MailboxOptions {
    /// The defaults: the private runtime directory, mode 0600, only the owner's uid
    /// admitted, and the default limits.
    pub fn new() -> MailboxOptions {
        MailboxOptions::default()
    }

    /// Binds in `dir` instead of the private runtime directory. `dir` must exist, be a
    /// real directory owned by the caller (or root) and not writable by group or others;
    /// it may be searchable by others, so that other users can reach a mailbox whose
    /// [`mode`](MailboxOptions::mode) admits them.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> MailboxOptions {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The socket file's mode (default 0600). Sending needs write permission on it, so
    /// 0620 lets the group send, 0622 everyone; the access list still applies.
    pub fn mode(mut self, mode: u32) -> MailboxOptions {
        self.mode = mode & 0o777;
        self
    }

    /// Also admits senders whose kernel-reported uid is `uid`.
    pub fn allow_uid(mut self, uid: u32) -> MailboxOptions {
        self.allow_uids.push(uid);
        self
    }

    /// Also admits senders whose kernel-reported (effective) gid is `gid`.
    pub fn allow_gid(mut self, gid: u32) -> MailboxOptions {
        self.allow_gids.push(gid);
        self
    }

    /// The largest payload sent or accepted (default [`DEFAULT_MAX_PAYLOAD`]).
    pub fn max_payload(mut self, bytes: usize) -> MailboxOptions {
        self.max_payload = bytes;
        self
    }

    /// The bound on bytes received but not yet taken with `recv` (default
    /// [`DEFAULT_MAX_QUEUED_BYTES`]); each message counts its payload plus
    /// [`ENVELOPE_OVERHEAD`].
    pub fn max_queued_bytes(mut self, bytes: usize) -> MailboxOptions {
        self.max_queued_bytes = bytes;
        self
    }

    /// The payload size above which sends use a sealed memfd (default
    /// [`DEFAULT_INLINE_THRESHOLD`], at most [`MAX_INLINE`]).
    pub fn inline_threshold(mut self, bytes: usize) -> MailboxOptions {
        self.inline_threshold = bytes.min(MAX_INLINE);
        self
    }

    /// Binds the mailbox `name` and starts its receiving thread.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] for a bad name (before any system call);
    /// [`ErrorKind::AlreadyExists`] when a live mailbox holds the name;
    /// [`ErrorKind::PermissionDenied`] when the directory is not safe to use (a symbolic
    /// link, another user's, open to others) or a symbolic link or another user's file is
    /// at the socket path.
    pub fn bind(&self, name: &str) -> Result<Mailbox> {
        check_name(name)?;
        let dir = match &self.dir {
            Some(dir) => {
                crate::runtime::check_shared_dir(dir)?;
                dir.clone()
            }
            None => crate::runtime::ensure_runtime_dir()?,
        };
        // One spelling of every address: the kernel reports a sender's path as it was
        // bound, and replies are matched against the path the request went to.
        let dir = std::fs::canonicalize(&dir).op_on("realpath", dir.display())?;
        let path = dir.join(name);
        let socket = BindOptions::new().mode(self.mode).bind_datagram(&path)?;
        rustix::net::sockopt::set_socket_passcred(&*socket, true)
            .op_on("setsockopt SO_PASSCRED", path.display())?;
        crate::wait::set_nonblocking(socket.as_fd(), true).op_on("F_SETFL", path.display())?;
        let (wake_rx, wake_tx) =
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).op("pipe2")?;
        let shared = Arc::new(Shared {
            socket,
            wake_rx,
            wake_tx,
            dir,
            name: name.to_string(),
            opts: self.clone(),
            me: rustix::process::geteuid().as_raw(),
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            remotes: Mutex::new(HashMap::new()),
        });
        let reader = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("ipcx-mailbox-{name}"))
                .spawn(move || shared.run())
                .map_err(|e| {
                    Error::from_io("spawn mailbox thread", &e).with_object(path.display())
                })?
        };
        Ok(Mailbox {
            shared,
            reader: Some(reader),
        })
    }
}

/// A wire header's fields as [`decode_wire_header`] returns them. Not part of the API:
/// it exists for the fuzz targets in `fuzz/`, and may change at any time.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireHeader {
    /// The message kind byte: 1 request, 2 reply, 3 one-way, 4 refusal.
    pub kind: u8,
    /// The flag bits (bit 0: payload in a memfd).
    pub flags: u16,
    /// The correlation id.
    pub id: u64,
    /// The announced payload length.
    pub len: u64,
}

/// Decodes and checks a datagram's header as a mailbox's receiving thread does, given
/// the number of descriptors that came with it. Not part of the API: for `fuzz/`.
///
/// # Errors
/// [`ErrorKind::Corrupt`] for every header the receiver drops as malformed.
#[doc(hidden)]
pub fn decode_wire_header(datagram: &[u8], fds: usize) -> Result<WireHeader> {
    Header::decode(datagram, fds).map(|h| WireHeader {
        kind: h.kind as u8,
        flags: h.flags,
        id: h.id,
        len: h.len,
    })
}

/// Encodes a header as a sender does; `None` for a kind byte that is not 1 to 4. Not
/// part of the API: for `fuzz/`.
#[doc(hidden)]
pub fn encode_wire_header(h: WireHeader) -> Option<[u8; HEADER_LEN]> {
    let kind = match h.kind {
        1 => Kind::Request,
        2 => Kind::Reply,
        3 => Kind::OneWay,
        4 => Kind::Refusal,
        _ => return None,
    };
    Some(
        Header {
            kind,
            flags: h.flags,
            id: h.id,
            len: h.len,
        }
        .encode(),
    )
}

/// The error a requester gets for a refusal carrying `payload`. Not part of the API: for
/// `fuzz/`.
#[doc(hidden)]
pub fn refusal_payload_error(payload: &[u8]) -> Error {
    refusal_error(payload)
}

/// Checks a mailbox name: 1 to [`NAME_MAX`] bytes of ASCII letters, digits, `-`, `_` and
/// `.`, not starting with `.`, not ending in `.lock`.
///
/// # Errors
/// [`ErrorKind::InvalidName`], saying what is wrong.
pub fn check_name(name: &str) -> Result<()> {
    let invalid = |why: String| {
        Err(Error::new("validate mailbox name", ErrorKind::InvalidName)
            .with_object(name)
            .with_hint(why))
    };
    if name.is_empty() {
        return invalid("a mailbox name needs at least one character".into());
    }
    if name.len() > NAME_MAX {
        return invalid(format!(
            "the name is {} bytes; the limit is {NAME_MAX} bytes",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return invalid(format!(
            "{c:?} is not allowed: use ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    if name.starts_with('.') {
        return invalid("a mailbox name may not start with '.'".into());
    }
    if name.ends_with(".lock") {
        return invalid("names ending in \".lock\" are reserved for the liveness locks".into());
    }
    Ok(())
}

/// Counters of what a mailbox received and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxStats {
    /// Messages queued for `recv`, or delivered to a waiting `request`.
    pub delivered: u64,
    /// Datagrams dropped because they failed validation (header, length, descriptors,
    /// seals, size, missing credentials).
    pub malformed: u64,
    /// Messages from senders the access list refuses.
    pub denied: u64,
    /// Messages whose payload was above [`MailboxOptions::max_payload`].
    pub too_large: u64,
    /// Messages refused because the queued-bytes bound was reached.
    pub queue_full: u64,
    /// Replies that found no request waiting (it timed out), or that came from another
    /// address than the request went to.
    pub late_replies: u64,
    /// Why the last message was dropped or refused.
    pub last_rejected: Option<Error>,
}

/// A named endpoint: receives messages and requests, sends messages, requests and
/// replies. See the [module documentation](self).
///
/// `Mailbox` is `Send + Sync`: many threads may call [`request`](Mailbox::request),
/// [`send`](Mailbox::send) and [`recv`](Mailbox::recv) on one mailbox at once. Dropping
/// it stops its receiving thread, fails nothing silently (no call can be in progress),
/// and removes its socket file and lock.
///
/// # References
/// - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub struct Mailbox {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({})", self.shared.path().display())
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Mailbox {
    /// Binds `name` with [`MailboxOptions::new`].
    ///
    /// # Errors
    /// See [`MailboxOptions::bind`].
    pub fn bind(name: &str) -> Result<Mailbox> {
        MailboxOptions::new().bind(name)
    }

    /// The mailbox's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The socket file's path.
    pub fn path(&self) -> &Path {
        self.shared.path()
    }

    /// The directory the mailbox is bound in (canonical): where names it is given
    /// resolve.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// What the mailbox received and dropped so far.
    pub fn stats(&self) -> MailboxStats {
        self.shared.lock().stats.clone()
    }

    /// Sends a one-way message to `to` (a name in this mailbox's directory, an absolute
    /// path, or `name@host:port` for a mailbox served over TCP), waiting as long as the
    /// receiver's socket queue is full.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] above [`MailboxOptions::max_payload`];
    /// [`ErrorKind::NotFound`] when no mailbox has that name; [`ErrorKind::PeerGone`]
    /// when its socket file is left by a dead process.
    pub fn send(&self, to: &str, msg: &[u8]) -> Result<()> {
        self.send_until(to, msg, Deadline::Never)
    }

    /// [`send`](Mailbox::send) only if the receiver's queue has room now
    /// ([`ErrorKind::WouldBlock`] otherwise).
    pub fn try_send(&self, to: &str, msg: &[u8]) -> Result<()> {
        self.send_until(to, msg, Deadline::Now)
    }

    /// [`send`](Mailbox::send), waiting at most `timeout` for room.
    pub fn send_timeout(&self, to: &str, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(to, msg, Deadline::after(timeout))
    }

    pub(crate) fn send_until(&self, to: &str, msg: &[u8], deadline: Deadline) -> Result<()> {
        if to.contains('@') {
            return self.shared.remote(to, deadline)?.send_until(msg, deadline);
        }
        self.shared.send_message(to, Kind::OneWay, 0, msg, deadline)
    }

    pub(crate) fn recv_until(&self, deadline: Deadline) -> Result<Envelope> {
        self.shared.recv(deadline)
    }

    /// Sends `msg` to `to` as a request and waits at most `timeout` (sending included)
    /// for the reply, which it returns. `to` may be `name@host:port`: a mailbox served
    /// over TCP by [`TcpServer`] (`ipcx mailbox serve --tcp`), reached through a
    /// [`RemoteMailbox`] this mailbox keeps per address.
    ///
    /// Any number of threads may have requests in flight on one mailbox; each reply is
    /// routed by its correlation id, and only a reply from `to` is accepted.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when no reply came in time (a reply arriving later is
    /// dropped); [`ErrorKind::PeerGone`] when the receiving mailbox's process died before
    /// replying, or no process serves `to`; [`ErrorKind::PermissionDenied`],
    /// [`ErrorKind::LimitReached`] or [`ErrorKind::MessageTooLarge`] when the receiver
    /// refused the request (access list, full queue, payload cap), or when this
    /// mailbox's own cap is exceeded.
    pub fn request(&self, to: &str, msg: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        if to.contains('@') {
            let deadline = Deadline::after(timeout);
            let remote = self.shared.remote(to, deadline)?;
            let left = match deadline {
                Deadline::At(at, _) => at.saturating_duration_since(Instant::now()),
                _ => timeout,
            };
            return remote.request(msg, left);
        }
        self.shared.request(to, msg, Deadline::after(timeout))
    }

    /// Receives the next message or request, waiting as long as it takes.
    pub fn recv(&self) -> Result<Envelope> {
        self.shared.recv(Deadline::Never)
    }

    /// Receives the next message if one is queued now ([`ErrorKind::WouldBlock`]
    /// otherwise).
    pub fn try_recv(&self) -> Result<Envelope> {
        self.shared.recv(Deadline::Now)
    }

    /// Receives the next message, waiting at most `timeout` ([`ErrorKind::TimedOut`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Envelope> {
        self.shared.recv(Deadline::after(timeout))
    }
}

/// A received message: its payload, correlation id, and the sender as the kernel
/// identified it.
pub struct Envelope {
    payload: Vec<u8>,
    id: u64,
    kind: Kind,
    sender: Option<String>,
    sender_path: Option<PathBuf>,
    cred: PeerCred,
    mailbox: Weak<Shared>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("sender", &self.sender)
            .field("cred", &self.cred)
            .field("len", &self.payload.len())
            .finish()
    }
}

impl Envelope {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, by value.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The correlation id of a request; `None` for a one-way message.
    pub fn correlation_id(&self) -> Option<u64> {
        (self.kind == Kind::Request).then_some(self.id)
    }

    /// Whether the sender waits for a reply.
    pub fn expects_reply(&self) -> bool {
        self.kind == Kind::Request
    }

    /// The sender's address, from the kernel: its mailbox name when it is in the same
    /// directory as this mailbox, else the absolute path of its socket; `None` when the
    /// sender's socket is not bound to a path (it cannot be replied to).
    pub fn sender(&self) -> Option<&str> {
        self.sender.as_deref()
    }

    /// The sender's pid, uid and gid, as the kernel stamped them on the message
    /// (`SCM_CREDENTIALS`).
    pub fn credentials(&self) -> PeerCred {
        self.cred
    }

    /// Replies to a request, waiting as long as the requester's socket queue is full.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a one-way message or an unbound sender;
    /// [`ErrorKind::PeerGone`] when the requester or this mailbox is gone.
    pub fn reply(&self, msg: &[u8]) -> Result<()> {
        self.reply_until(msg, Deadline::Never)
    }

    /// [`reply`](Envelope::reply), waiting at most `timeout` for room.
    pub fn reply_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.reply_until(msg, Deadline::after(timeout))
    }

    fn reply_until(&self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if self.kind != Kind::Request {
            return Err(Error::new("reply", ErrorKind::InvalidInput)
                .with_hint("this message is one-way: its sender waits for no reply"));
        }
        let Some(to) = &self.sender_path else {
            return Err(Error::new("reply", ErrorKind::InvalidInput).with_hint(
                "the sender's socket is not bound to a path, so there is nowhere to reply",
            ));
        };
        let Some(shared) = self.mailbox.upgrade() else {
            return Err(Error::new("reply", ErrorKind::PeerGone)
                .with_object(to.display())
                .with_hint("the mailbox that received this request has been dropped"));
        };
        shared.send_to_path(to, Kind::Reply, self.id, msg, deadline)
    }
}

struct Shared {
    socket: SocketFile<UnixDatagram>,
    /// A byte written here wakes the receiving thread: to stop, or to start watching a
    /// mailbox's liveness. Without watches the thread sleeps in `poll` without a timeout.
    wake_rx: OwnedFd,
    wake_tx: OwnedFd,
    dir: PathBuf,
    name: String,
    opts: MailboxOptions,
    me: u32,
    state: Mutex<State>,
    /// Signalled when a message is queued, a reply or a failure reaches a pending
    /// request, or the receiving thread stops.
    arrived: Condvar,
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Connections to mailboxes over TCP, by `name@host:port`.
    remotes: Mutex<HashMap<String, Arc<RemoteMailbox>>>,
}

#[derive(Default)]
struct State {
    inbox: VecDeque<Envelope>,
    queued_bytes: usize,
    pending: HashMap<u64, Pending>,
    watches: HashMap<PathBuf, Watch>,
    stats: MailboxStats,
    failed: Option<Error>,
}

struct Pending {
    to: PathBuf,
    outcome: Option<Result<Vec<u8>>>,
}

/// An open lock file of a mailbox that requests wait on.
struct Watch {
    lock: OwnedFd,
    users: usize,
    dead: bool,
}

/// Removes a request's slot (and its share of the watch) however the request ends.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
    to: PathBuf,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.pending.remove(&self.id);
        if let Some(w) = state.watches.get_mut(&self.to) {
            w.users -= 1;
            if w.users == 0 {
                state.watches.remove(&self.to);
            }
        }
    }
}

impl Shared {
    fn path(&self) -> &Path {
        self.socket.path()
    }

    /// The connection to the remote mailbox `to`, made on first use.
    fn remote(&self, to: &str, deadline: Deadline) -> Result<Arc<RemoteMailbox>> {
        if let Some(r) = self
            .remotes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(to)
        {
            return Ok(r.clone());
        }
        // Connect without the lock: an unreachable host must not hold up requests to
        // other addresses. Two threads racing here keep the first connection made.
        let made = Arc::new(RemoteMailbox::connect_until(to, deadline)?);
        let mut remotes = self.remotes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(remotes.entry(to.to_string()).or_insert(made).clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (each update is one
        // insert or remove), so carry on with the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves an address: a name in this mailbox's directory, or an absolute path.
    fn resolve(&self, to: &str) -> Result<PathBuf> {
        if to.starts_with('/') {
            let path = PathBuf::from(to);
            crate::name::check_socket_path(&path)?;
            // Spell the directory as its owner did (canonical), so the reply's source
            // address matches; the file itself is not resolved (it may be a stale one).
            match (path.parent(), path.file_name()) {
                (Some(parent), Some(file)) => match std::fs::canonicalize(parent) {
                    Ok(parent) => Ok(parent.join(file)),
                    Err(_) => Ok(path),
                },
                _ => Ok(path),
            }
        } else {
            check_name(to)?;
            Ok(self.dir.join(to))
        }
    }

    fn send_message(
        &self,
        to: &str,
        kind: Kind,
        id: u64,
        msg: &[u8],
        deadline: Deadline,
    ) -> Result<()> {
        let path = self.resolve(to)?;
        self.send_to_path(&path, kind, id, msg, deadline)
    }

    fn send_to_path(
        &self,
        to: &Path,
        kind: Kind,
        id: u64,
        msg: &[u8],
        deadline: Deadline,
    ) -> Result<()> {
        let object = to.display();
        if msg.len() > self.opts.max_payload {
            return Err(Error::new("send", ErrorKind::MessageTooLarge)
                .with_object(&object)
                .with_hint(format!(
                    "the payload is {} bytes; this mailbox's cap is {} bytes (MailboxOptions::max_payload)",
                    msg.len(),
                    self.opts.max_payload
                )));
        }
        let addr = SocketAddrUnix::new(to).op_on("send", &object)?;
        let memfd = if msg.len() > self.opts.inline_threshold {
            Some(payload_memfd(msg)?)
        } else {
            None
        };
        let header = Header {
            kind,
            flags: if memfd.is_some() { FLAG_MEMFD } else { 0 },
            id,
            len: msg.len() as u64,
        }
        .encode();
        let body: &[u8] = if memfd.is_some() { &[] } else { msg };
        let iov = [IoSlice::new(&header), IoSlice::new(body)];
        let fds: Vec<BorrowedFd<'_>> = memfd.iter().map(|m| m.as_fd()).collect();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let sock = self.socket.as_fd();
        // The receiver's queue holds few datagrams (`net.unix.max_dgram_qlen`, often 10)
        // and a live receiver drains it within microseconds: start the pauses short.
        let mut backoff = Backoff::starting_at(Duration::from_micros(50));
        loop {
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(Error::new("sendmsg", ErrorKind::Other)
                    .with_object(&object)
                    .with_hint("no room for the descriptor in the control buffer"));
            }
            let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
            match rustix::net::sendmsg_addr(sock, &addr, &iov, &mut control, flags) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    if matches!(deadline, Deadline::Now) {
                        return Err(Error::from_errno("sendmsg", libc::EAGAIN)
                            .with_object(&object)
                            .with_hint("the receiving mailbox's socket queue is full"));
                    }
                    // An unconnected datagram socket polls writable even while the
                    // receiver's queue is full: back off rather than spin.
                    if poll_now(sock, PollFlags::OUT).contains(PollFlags::OUT) {
                        backoff.sleep(deadline, "sendmsg", &object)?;
                    } else {
                        wait_fd(sock, PollFlags::OUT, deadline, "sendmsg", &object)?;
                    }
                }
                Err(e) => {
                    let err = Error::from_errno("sendmsg", e.raw_os_error()).with_object(&object);
                    return Err(match e {
                        Errno::NOENT => err.with_hint("no mailbox is bound at this address"),
                        Errno::CONNREFUSED => err.with_hint(
                            "the mailbox's socket file is left by a process that is gone",
                        ),
                        Errno::PROTOTYPE => err.with_hint(
                            "the socket at this address is not a datagram socket: not a mailbox",
                        ),
                        Errno::MSGSIZE => err.with_hint(format!(
                            "the datagram is more than the socket buffer carries; lower \
                             MailboxOptions::inline_threshold (now {})",
                            self.opts.inline_threshold
                        )),
                        _ => err,
                    });
                }
            }
        }
    }

    fn request(&self, to: &str, msg: &[u8], deadline: Deadline) -> Result<Vec<u8>> {
        let path = self.resolve(to)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.lock();
            if let Some(e) = &state.failed {
                return Err(e.clone());
            }
            state.pending.insert(
                id,
                Pending {
                    to: path.clone(),
                    outcome: None,
                },
            );
            let fresh = match state.watches.get(&path) {
                Some(w) => w.dead,
                None => true,
            };
            if fresh {
                // A dead watch is of a previous server at this path: start afresh.
                let users = state.watches.remove(&path).map_or(0, |w| w.users);
                if let Some(lock) = open_lock(&path) {
                    state.watches.insert(
                        path.clone(),
                        Watch {
                            lock,
                            users,
                            dead: false,
                        },
                    );
                }
            }
            if let Some(w) = state.watches.get_mut(&path) {
                w.users += 1;
            }
            if fresh {
                self.wake();
            }
        }
        let guard = PendingGuard {
            shared: self,
            id,
            to: path.clone(),
        };
        self.send_to_path(&path, Kind::Request, id, msg, deadline)
            .map_err(|e| match e.errno() {
                Some(libc::ECONNREFUSED) => e.with_kind(ErrorKind::PeerGone),
                _ => e,
            })?;
        let object = path.display();
        let mut state = self.lock();
        loop {
            if let Some(outcome) = state.pending.get_mut(&id).and_then(|p| p.outcome.take()) {
                drop(state);
                drop(guard);
                return outcome.map_err(|e| e.with_object(&object));
            }
            if let Some(e) = &state.failed {
                return Err(e.clone());
            }
            let left = match deadline.remaining("request", &object) {
                Ok(left) => left,
                Err(e) => {
                    return Err(e.with_hint(format!(
                        "no reply within {}; a reply arriving later is dropped",
                        match deadline {
                            Deadline::At(_, t) => format!("{t:?}"),
                            _ => "the time given".into(),
                        }
                    )));
                }
            };
            state = match left {
                Some(left) => {
                    self.arrived
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.arrived.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    fn recv(&self, deadline: Deadline) -> Result<Envelope> {
        let object = self.path().display();
        let mut state = self.lock();
        loop {
            if let Some(env) = state.inbox.pop_front() {
                let was_full = state.queued_bytes >= self.opts.max_queued_bytes;
                state.queued_bytes = state
                    .queued_bytes
                    .saturating_sub(env.payload.len() + ENVELOPE_OVERHEAD);
                if self.opts.hold_when_full
                    && was_full
                    && state.queued_bytes < self.opts.max_queued_bytes
                {
                    drop(state);
                    self.wake();
                }
                return Ok(env);
            }
            if let Some(e) = &state.failed {
                return Err(e.clone());
            }
            let left = deadline.remaining("recv", &object)?;
            state = match left {
                Some(left) => {
                    self.arrived
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.arrived.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// The receiving thread: drains the socket, routes each message, and checks the
    /// liveness of the mailboxes that requests wait on.
    fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; HEADER_LEN + MAX_INLINE];
        let mut last_check = Instant::now();
        let tick = rustix::time::Timespec::try_from(LIVENESS_TICK).ok();
        while !self.stop.load(Ordering::Acquire) {
            let sock = self.socket.as_fd();
            // Wake on a message or a wake byte; also every tick while requests wait on
            // other mailboxes, to check that they are alive.
            let (watching, holding) = {
                let state = self.lock();
                (
                    !state.watches.is_empty(),
                    self.opts.hold_when_full && state.queued_bytes >= self.opts.max_queued_bytes,
                )
            };
            // A held mailbox leaves messages in its socket until `recv` makes room (and
            // wakes this thread): the senders wait in the kernel.
            let want = if holding {
                PollFlags::empty()
            } else {
                PollFlags::IN
            };
            let mut fds = [
                PollFd::new(&sock, want),
                PollFd::new(&self.wake_rx, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, if watching { tick.as_ref() } else { None }) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return self.fail(Error::from_errno("poll", e.raw_os_error())),
            }
            let (message, woken) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
            if woken {
                let mut drain = [0u8; 64];
                while matches!(rustix::io::read(&self.wake_rx, &mut drain), Ok(n) if n > 0) {}
            }
            if message {
                loop {
                    if self.opts.hold_when_full
                        && self.lock().queued_bytes >= self.opts.max_queued_bytes
                    {
                        break;
                    }
                    match receive(sock, &mut buf) {
                        Ok(Some(raw)) => self.dispatch(raw, &buf),
                        Ok(None) => break,
                        Err(Dropped(e)) => self.reject(|s| &mut s.malformed, e),
                        Err(Failed(e)) => return self.fail(e),
                    }
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                }
            }
            if watching && last_check.elapsed() >= LIVENESS_TICK {
                last_check = Instant::now();
                self.check_watches();
            }
        }
    }

    /// Records a failure of the socket itself: every waiting and later call returns it.
    fn fail(&self, e: Error) {
        let mut state = self.lock();
        state.failed = Some(e.with_object(self.path().display()));
        drop(state);
        self.arrived.notify_all();
    }

    /// Wakes the receiving thread.
    fn wake(&self) {
        // A full pipe already holds a wake-up; nothing else can fail here.
        let _ = rustix::io::write(&self.wake_tx, &[1]);
    }

    fn reject(&self, counter: fn(&mut MailboxStats) -> &mut u64, e: Error) {
        let mut state = self.lock();
        *counter(&mut state.stats) += 1;
        state.stats.last_rejected = Some(e.with_object(self.path().display()));
    }

    /// Fails the requests pending on mailboxes whose lock is no longer held.
    fn check_watches(&self) {
        let mut state = self.lock();
        let mut gone = Vec::new();
        for (path, w) in state.watches.iter_mut().filter(|(_, w)| !w.dead) {
            if matches!(
                crate::sys::lock::byte_locked_elsewhere(w.lock.as_fd(), 0),
                Ok(false)
            ) {
                // No one holds the owner's lock byte: the mailbox's process is gone.
                w.dead = true;
                gone.push(path.clone());
            }
        }
        if gone.is_empty() {
            return;
        }
        for p in state.pending.values_mut() {
            if p.outcome.is_none() && gone.contains(&p.to) {
                p.outcome = Some(Err(Error::new("request", ErrorKind::PeerGone).with_hint(
                    "the mailbox's process died (its lock was released) before it replied",
                )));
            }
        }
        drop(state);
        self.arrived.notify_all();
    }

    fn dispatch(self: &Arc<Self>, raw: Raw, buf: &[u8]) {
        let Raw {
            len,
            fd,
            cred,
            source,
        } = raw;
        let header = match Header::decode(&buf[..len], usize::from(fd.is_some())) {
            Ok(h) => h,
            Err(e) => return self.reject(|s| &mut s.malformed, e),
        };
        let Some(cred) = cred else {
            return self.reject(
                |s| &mut s.malformed,
                Error::new("recv mailbox message", ErrorKind::Corrupt)
                    .with_hint("the message carried no SCM_CREDENTIALS"),
            );
        };
        let sender = source.as_deref().map(|p| self.address_of(p));
        match header.kind {
            Kind::Reply | Kind::Refusal => self.route_reply(header, buf, len, fd, source),
            Kind::Request | Kind::OneWay => {
                let refuse = |why: Refusal, text: String| {
                    if header.kind == Kind::Request
                        && let Some(to) = &source
                    {
                        let mut payload = (why as u32).to_le_bytes().to_vec();
                        payload.extend_from_slice(text.as_bytes());
                        let _ = self.send_to_path(
                            to,
                            Kind::Refusal,
                            header.id,
                            &payload,
                            Deadline::Now,
                        );
                    }
                    Error::new("recv mailbox message", why.kind()).with_hint(format!(
                        "from {} ({cred}): {text}",
                        sender.as_deref().unwrap_or("an unbound socket")
                    ))
                };
                if !self.admits(&cred) {
                    let text = format!(
                        "uid {} gid {} is not allowed to send to this mailbox",
                        cred.uid, cred.gid
                    );
                    return self.reject(|s| &mut s.denied, refuse(Refusal::Denied, text));
                }
                if header.len > self.opts.max_payload as u64 {
                    let text = format!(
                        "the {}-byte payload is above the receiver's cap of {} bytes",
                        header.len, self.opts.max_payload
                    );
                    return self.reject(|s| &mut s.too_large, refuse(Refusal::TooLarge, text));
                }
                let cost = header.len as usize + ENVELOPE_OVERHEAD;
                if !self.opts.hold_when_full {
                    let state = self.lock();
                    if state.queued_bytes + cost > self.opts.max_queued_bytes {
                        let text = format!(
                            "the receiver's queue holds {} bytes; {} more would pass its bound of {} bytes",
                            state.queued_bytes, cost, self.opts.max_queued_bytes
                        );
                        drop(state);
                        return self
                            .reject(|s| &mut s.queue_full, refuse(Refusal::QueueFull, text));
                    }
                }
                let payload = match load_payload(header, buf, len, fd) {
                    Ok(p) => p,
                    Err(e) => return self.reject(|s| &mut s.malformed, e),
                };
                let env = Envelope {
                    payload,
                    id: header.id,
                    kind: header.kind,
                    sender,
                    sender_path: source,
                    cred,
                    mailbox: Arc::downgrade(self),
                };
                let mut state = self.lock();
                state.queued_bytes += cost;
                state.inbox.push_back(env);
                state.stats.delivered += 1;
                drop(state);
                self.arrived.notify_all();
            }
        }
    }

    fn route_reply(
        &self,
        header: Header,
        buf: &[u8],
        len: usize,
        fd: Option<OwnedFd>,
        source: Option<PathBuf>,
    ) {
        let expected = {
            let state = self.lock();
            state
                .pending
                .get(&header.id)
                .filter(|p| p.outcome.is_none())
                .map(|p| p.to.clone())
        };
        let late = |why: String| Error::new("recv reply", ErrorKind::Other).with_hint(why);
        let Some(to) = expected else {
            return self.reject(
                |s| &mut s.late_replies,
                late(format!(
                    "reply {} found no request waiting (it timed out, or was never sent); dropped",
                    header.id
                )),
            );
        };
        if source.as_deref() != Some(to.as_path()) {
            return self.reject(
                |s| &mut s.late_replies,
                late(format!(
                    "reply {} came from {:?}, not from {}, where the request went; dropped",
                    header.id,
                    source,
                    to.display()
                )),
            );
        }
        let outcome = if header.len > self.opts.max_payload as u64 {
            Err(
                Error::new("request", ErrorKind::MessageTooLarge).with_hint(format!(
                    "the {}-byte reply is above this mailbox's cap of {} bytes",
                    header.len, self.opts.max_payload
                )),
            )
        } else {
            match load_payload(header, buf, len, fd) {
                Ok(payload) if header.kind == Kind::Reply => Ok(payload),
                Ok(payload) => Err(refusal_error(&payload)),
                Err(e) => Err(e),
            }
        };
        let mut state = self.lock();
        if let Some(p) = state.pending.get_mut(&header.id) {
            p.outcome = Some(outcome);
            state.stats.delivered += 1;
        }
        drop(state);
        self.arrived.notify_all();
    }

    fn admits(&self, cred: &PeerCred) -> bool {
        cred.uid == self.me
            || self.opts.allow_uids.contains(&cred.uid)
            || self.opts.allow_gids.contains(&cred.gid)
    }

    /// How an envelope names a sender at `path`.
    fn address_of(&self, path: &Path) -> String {
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) if parent == self.dir => name.to_string_lossy().into_owned(),
            _ => path.to_string_lossy().into_owned(),
        }
    }
}

/// Binds a mailbox named `PREFIX-PID-N` for a side that needs an address of its own but
/// no name anyone chooses (a channel's sender, the TCP server).
pub(crate) fn bind_ephemeral(opts: &MailboxOptions, prefix: &str) -> Result<Mailbox> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let mut tries = 0;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        match opts.bind(&format!("{prefix}-{pid}-{n}")) {
            // A live process of the same pid in another pid namespace holds it.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && tries < 64 => tries += 1,
            other => return other,
        }
    }
}

/// Checks that a live mailbox is bound at `path`.
///
/// # Errors
/// [`ErrorKind::NotFound`] when nothing is there; [`ErrorKind::PeerGone`] when the socket
/// file is left by a process that is gone (its lock byte is free, or its lock file gone);
/// [`ErrorKind::InvalidInput`] when the file is not a socket. A mailbox whose lock file
/// cannot be opened (another user's) is taken to be alive.
pub(crate) fn probe(path: &Path) -> Result<()> {
    let object = path.display();
    let st = match rustix::fs::statat(rustix::fs::CWD, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
    {
        Ok(st) => st,
        Err(Errno::NOENT) => {
            return Err(Error::new("open mailbox", ErrorKind::NotFound)
                .with_object(&object)
                .with_hint("no mailbox is bound under this name (yet)"));
        }
        Err(e) => return Err(Error::from_errno("stat", e.raw_os_error()).with_object(&object)),
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        return Err(Error::new("open mailbox", ErrorKind::InvalidInput)
            .with_object(&object)
            .with_hint("this file is not a socket: not a mailbox"));
    }
    let gone = || {
        Err(Error::new("open mailbox", ErrorKind::PeerGone)
            .with_object(&object)
            .with_hint(
                "the socket file is left by a process that is gone; a new bind takes it over",
            ))
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rustix::fs::open(crate::unix::lock_path(path), flags, Mode::empty()) {
        Ok(lock) => match crate::sys::lock::byte_locked_elsewhere(lock.as_fd(), 0) {
            Ok(false) => gone(),
            _ => Ok(()),
        },
        Err(Errno::NOENT) => gone(),
        Err(_) => Ok(()),
    }
}

fn refusal_error(payload: &[u8]) -> Error {
    let (code, text) = match payload {
        [a, b, c, d, rest @ ..] => (
            u32::from_le_bytes([*a, *b, *c, *d]),
            String::from_utf8_lossy(rest).into_owned(),
        ),
        _ => (0, String::new()),
    };
    match Refusal::from_u32(code) {
        Some(r) => {
            Error::new("request", r.kind()).with_hint(format!("refused by the receiver: {text}"))
        }
        None => Error::new("request", ErrorKind::Corrupt).with_hint(format!(
            "the receiver refused with unknown reason {code}: {text}"
        )),
    }
}

/// Opens the lock file of the mailbox at `path`, to watch its owner's liveness.
fn open_lock(path: &Path) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    rustix::fs::open(crate::unix::lock_path(path), flags, Mode::empty()).ok()
}

/// Writes `msg` into a new memfd sealed against shrinking, growing and writing.
fn payload_memfd(msg: &[u8]) -> Result<Memfd> {
    let memfd = Memfd::create("ipcx-mailbox-payload", msg.len())?;
    let mut done = 0;
    while done < msg.len() {
        match rustix::io::pwrite(&memfd, &msg[done..], done as u64) {
            Ok(0) => {
                return Err(Error::new("pwrite", ErrorKind::Other)
                    .with_object("memfd:ipcx-mailbox-payload")
                    .with_hint("the memfd took no bytes"));
            }
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(Error::from_errno("pwrite", e.raw_os_error())
                    .with_object("memfd:ipcx-mailbox-payload"));
            }
        }
    }
    memfd.seal(Seals::SHRINK | Seals::GROW | Seals::WRITE | Seals::SEAL)?;
    Ok(memfd)
}

/// The payload of a validated message: the inline bytes, or the memfd's contents after
/// its seals and exact size are checked.
fn load_payload(header: Header, buf: &[u8], len: usize, fd: Option<OwnedFd>) -> Result<Vec<u8>> {
    let Some(fd) = fd else {
        return Ok(buf[HEADER_LEN..len].to_vec());
    };
    let want = usize::try_from(header.len).unwrap_or(usize::MAX);
    let memfd = Memfd::from_peer(fd, Seals::WRITE, want)?;
    if memfd.size() != want {
        return Err(
            Error::new("check memfd", ErrorKind::Corrupt).with_hint(format!(
                "the memfd has {} bytes but the header announces {want}",
                memfd.size()
            )),
        );
    }
    let fd = memfd.into_fd();
    let mut payload = vec![0u8; want];
    let mut done = 0;
    while done < want {
        match rustix::io::pread(&fd, &mut payload[done..], done as u64) {
            Ok(0) => {
                return Err(Error::new("pread", ErrorKind::Corrupt)
                    .with_object("memfd from peer")
                    .with_hint("the memfd ended before its announced size"));
            }
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(
                    Error::from_errno("pread", e.raw_os_error()).with_object("memfd from peer")
                );
            }
        }
    }
    Ok(payload)
}

/// One datagram as received, before validation.
struct Raw {
    len: usize,
    fd: Option<OwnedFd>,
    cred: Option<PeerCred>,
    source: Option<PathBuf>,
}

/// Why a receive failed: the datagram is dropped and the mailbox carries on, or the
/// socket itself failed.
enum RecvFailure {
    Dropped(Error),
    Failed(Error),
}
use RecvFailure::{Dropped, Failed};

/// Receives one datagram without waiting: `Ok(None)` when none is queued.
fn receive(sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::result::Result<Option<Raw>, RecvFailure> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1), ScmCredentials(1)) + 64];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC | RecvFlags::DONTWAIT;
    let cap = buf.len();
    let msg = loop {
        match rustix::net::recvmsg(sock, &mut [IoSliceMut::new(buf)], &mut control, flags) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(None),
            Err(e) => {
                return Err(Failed(
                    Error::from_errno("recvmsg", e.raw_os_error()).with_object("mailbox socket"),
                ));
            }
        }
    };
    let mut fds = Vec::new();
    let mut cred = None;
    for message in control.drain() {
        match message {
            RecvAncillaryMessage::ScmRights(received) => fds.extend(received),
            RecvAncillaryMessage::ScmCredentials(c) => {
                cred = Some(PeerCred {
                    pid: u32::try_from(c.pid.as_raw_nonzero().get())
                        .ok()
                        .filter(|&p| p != 0),
                    uid: c.uid.as_raw(),
                    gid: c.gid.as_raw(),
                });
            }
            _ => {}
        }
    }
    let bad = |why: String| {
        Err(Dropped(
            Error::new("recv mailbox message", ErrorKind::Corrupt).with_hint(why),
        ))
    };
    if msg.flags.contains(ReturnFlags::CTRUNC) || fds.len() > 1 {
        return bad(format!(
            "more control data than a mailbox message carries (descriptors: {} received, all closed)",
            fds.len()
        ));
    }
    if msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes > cap {
        return bad(format!(
            "a {}-byte datagram is larger than the {cap} bytes a mailbox message may be inline",
            msg.bytes
        ));
    }
    let source = msg
        .address
        .and_then(|a| SocketAddrUnix::try_from(a).ok())
        .and_then(|u| u.path_bytes().map(|p| PathBuf::from(OsStr::from_bytes(p))));
    Ok(Some(Raw {
        len: msg.bytes,
        fd: fds.pop(),
        cred,
        source,
    }))
}
