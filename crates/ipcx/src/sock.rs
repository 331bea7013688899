//! What every socket gets from ipcx: three forms of send and receive, buffer sizes.
//!
//! [`SocketExt`] extends the standard library's socket types (and ipcx's own
//! [`Seqpacket`](crate::unix::Seqpacket)) rather than wrapping them. Every send uses
//! `MSG_NOSIGNAL`, so a vanished peer is [`ErrorKind::PeerGone`], never a `SIGPIPE`;
//! every receive checks the flags the kernel returns, so a datagram that did not fit the
//! buffer is [`ErrorKind::MessageTooLarge`] rather than silently cut, and descriptors sent
//! on a channel that does not accept them are [`ErrorKind::Corrupt`] (the kernel closes
//! them; none is installed in the receiver).

use std::ffi::OsStr;
use std::fmt;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags,
    SocketAddrAny, SocketAddrUnix, SocketFlags, addr::SocketAddrArg, sockopt,
};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::name::check_socket_path;
use crate::unix::Seqpacket;
use crate::wait::{Backoff, Deadline, poll_now, retry, retry_blocking, wait_fd};

mod sealed {
    /// Whether a socket type keeps message boundaries (datagram, seqpacket) or is a stream.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Framing {
        Stream,
        Messages,
    }

    /// Only ipcx implements [`SocketExt`](super::SocketExt).
    pub trait Sealed {
        const FRAMING: Framing;
    }

    /// Only ipcx implements [`ListenerExt`](super::ListenerExt).
    pub trait SealedListener {}
}
pub(crate) use sealed::Framing;

/// Send and receive in three forms (blocking, `try_`, `_timeout`), plus buffer sizes,
/// for every socket type ipcx supports.
///
/// Implemented for [`UnixStream`], [`UnixDatagram`], [`Seqpacket`], [`TcpStream`] and
/// [`UdpSocket`]; the datagram forms need a connected socket.
///
/// # Examples
///
/// ```
/// use std::os::unix::net::UnixDatagram;
/// use std::time::Duration;
/// use ipcx::{ErrorKind, SocketExt};
///
/// let (a, b) = UnixDatagram::pair()?;
/// a.send_blocking(b"ping")?;
/// let mut buf = [0u8; 2];
/// // A datagram larger than the buffer is an error, not a silently cut message.
/// assert_eq!(b.try_recv(&mut buf).unwrap_err().kind(), ErrorKind::MessageTooLarge);
/// let err = b.recv_timeout(&mut buf, Duration::from_millis(10)).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TimedOut);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # References
/// - [send(2)](https://man7.org/linux/man-pages/man2/send.2.html)
/// - [recv(2)](https://man7.org/linux/man-pages/man2/recv.2.html)
/// - [socket(7)](https://man7.org/linux/man-pages/man7/socket.7.html)
pub trait SocketExt: AsFd + sealed::Sealed {
    /// Sends, waiting for buffer space as long as it takes. Returns the bytes sent (for a
    /// stream, possibly fewer than `buf.len()`).
    ///
    /// # Errors
    /// [`ErrorKind::PeerGone`] if the peer closed or reset the connection;
    /// [`ErrorKind::MessageTooLarge`] if a datagram exceeds what the socket can carry.
    #[doc(alias = "send")]
    fn send_blocking(&self, buf: &[u8]) -> Result<usize> {
        send_until(self.as_fd(), buf, Deadline::Never)
    }

    /// Sends only if there is room now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when the send buffer is full.
    fn try_send(&self, buf: &[u8]) -> Result<usize> {
        send_until(self.as_fd(), buf, Deadline::Now)
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when no room came in time.
    fn send_timeout(&self, buf: &[u8], timeout: Duration) -> Result<usize> {
        send_until(self.as_fd(), buf, Deadline::after(timeout))
    }

    /// Receives, waiting as long as it takes. `Ok(0)` on a stream is end of file.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] when a datagram did not fit `buf` (it is consumed);
    /// [`ErrorKind::Corrupt`] when the peer attached descriptors (they are closed).
    #[doc(alias = "recv")]
    fn recv_blocking(&self, buf: &mut [u8]) -> Result<usize> {
        recv_until(self.as_fd(), buf, Deadline::Never, Self::FRAMING)
    }

    /// Receives only what is there now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when nothing is queued.
    fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        recv_until(self.as_fd(), buf, Deadline::Now, Self::FRAMING)
    }

    /// Receives, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when nothing arrived in time.
    fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        recv_until(self.as_fd(), buf, Deadline::after(timeout), Self::FRAMING)
    }

    /// The send buffer size (`SO_SNDBUF`), as the kernel reports it (double what was set).
    fn send_buffer_size(&self) -> Result<usize> {
        sockopt::socket_send_buffer_size(self.as_fd())
            .op_on("getsockopt SO_SNDBUF", label(self.as_fd()))
    }

    /// Sets the send buffer size (`SO_SNDBUF`); the kernel doubles it for bookkeeping and
    /// caps it at `/proc/sys/net/core/wmem_max`.
    fn set_send_buffer_size(&self, bytes: usize) -> Result<()> {
        sockopt::set_socket_send_buffer_size(self.as_fd(), bytes)
            .op_on("setsockopt SO_SNDBUF", label(self.as_fd()))
    }

    /// The receive buffer size (`SO_RCVBUF`), as the kernel reports it.
    fn recv_buffer_size(&self) -> Result<usize> {
        sockopt::socket_recv_buffer_size(self.as_fd())
            .op_on("getsockopt SO_RCVBUF", label(self.as_fd()))
    }

    /// Sets the receive buffer size (`SO_RCVBUF`); capped at `/proc/sys/net/core/rmem_max`.
    fn set_recv_buffer_size(&self, bytes: usize) -> Result<()> {
        sockopt::set_socket_recv_buffer_size(self.as_fd(), bytes)
            .op_on("setsockopt SO_RCVBUF", label(self.as_fd()))
    }
}

macro_rules! socket_ext {
    ($($ty:ty => $framing:ident),* $(,)?) => {$(
        impl sealed::Sealed for $ty {
            const FRAMING: Framing = Framing::$framing;
        }
        impl SocketExt for $ty {}
    )*};
}
socket_ext!(
    UnixStream => Stream,
    TcpStream => Stream,
    UnixDatagram => Messages,
    UdpSocket => Messages,
    Seqpacket => Messages,
);

/// Send-to and receive-from in three forms for unconnected datagram sockets
/// ([`UnixDatagram`] and [`UdpSocket`]), with the same checks as [`SocketExt`]: a
/// datagram larger than the buffer is [`ErrorKind::MessageTooLarge`], never cut short.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ipcx::DatagramExt;
/// # let dir = std::env::temp_dir().join(format!("ipcx-doc-dgram-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
///
/// let server = ipcx::unix::bind_datagram(dir.join("server"))?;
/// let client = ipcx::unix::bind_datagram(dir.join("client"))?;
/// client.send_to_timeout(b"hello", server.path(), Duration::from_secs(1))?;
/// let mut buf = [0u8; 16];
/// let (n, from) = server.recv_from_timeout(&mut buf, Duration::from_secs(1))?;
/// assert_eq!(&buf[..n], b"hello");
/// let from = from.expect("the client is bound to a path");
/// server.send_to_timeout(b"welcome", &from, Duration::from_secs(1))?;
/// # drop((server, client)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # References
/// - [sendto(2)](https://man7.org/linux/man-pages/man2/sendto.2.html)
/// - [recvmsg(2)](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
pub trait DatagramExt: AsFd + sealed::Sealed {
    /// Where a datagram is sent: a socket path, or an IP address and port.
    type Target: ?Sized;
    /// Who sent a datagram: the sender's bound path (`None` for an unbound Unix
    /// sender, which cannot be replied to), or its IP address and port.
    type Source;

    /// Sends one datagram to `to`, waiting for buffer space as long as it takes.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] above what the socket carries;
    /// [`ErrorKind::PeerGone`] (`ECONNREFUSED`) when no socket is bound at `to`.
    fn send_to_blocking(&self, buf: &[u8], to: &Self::Target) -> Result<usize>;
    /// Sends one datagram to `to` only if there is room now.
    fn try_send_to(&self, buf: &[u8], to: &Self::Target) -> Result<usize>;
    /// Sends one datagram to `to`, waiting at most `timeout` for room.
    fn send_to_timeout(&self, buf: &[u8], to: &Self::Target, timeout: Duration) -> Result<usize>;
    /// Receives one datagram and its sender, waiting as long as it takes.
    fn recv_from_blocking(&self, buf: &mut [u8]) -> Result<(usize, Self::Source)>;
    /// Receives one datagram and its sender if one is queued now.
    fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, Self::Source)>;
    /// Receives one datagram and its sender, waiting at most `timeout`.
    fn recv_from_timeout(&self, buf: &mut [u8], timeout: Duration)
    -> Result<(usize, Self::Source)>;
}

macro_rules! datagram_forms {
    ($target:ty, $source:ty, $to_addr:expr, $from_addr:expr) => {
        type Target = $target;
        type Source = $source;
        fn send_to_blocking(&self, buf: &[u8], to: &$target) -> Result<usize> {
            send_to_until(self.as_fd(), buf, &$to_addr(to)?, Deadline::Never)
        }
        fn try_send_to(&self, buf: &[u8], to: &$target) -> Result<usize> {
            send_to_until(self.as_fd(), buf, &$to_addr(to)?, Deadline::Now)
        }
        fn send_to_timeout(&self, buf: &[u8], to: &$target, timeout: Duration) -> Result<usize> {
            send_to_until(self.as_fd(), buf, &$to_addr(to)?, Deadline::after(timeout))
        }
        fn recv_from_blocking(&self, buf: &mut [u8]) -> Result<(usize, $source)> {
            let (n, from) = recv_from_until(self.as_fd(), buf, Deadline::Never)?;
            Ok((n, $from_addr(from, self.as_fd())?))
        }
        fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, $source)> {
            let (n, from) = recv_from_until(self.as_fd(), buf, Deadline::Now)?;
            Ok((n, $from_addr(from, self.as_fd())?))
        }
        fn recv_from_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<(usize, $source)> {
            let (n, from) = recv_from_until(self.as_fd(), buf, Deadline::after(timeout))?;
            Ok((n, $from_addr(from, self.as_fd())?))
        }
    };
}

impl DatagramExt for UnixDatagram {
    datagram_forms!(Path, Option<PathBuf>, unix_target, unix_source);
}

impl DatagramExt for UdpSocket {
    datagram_forms!(
        SocketAddr,
        SocketAddr,
        |to: &SocketAddr| Ok::<_, Error>(*to),
        ip_source
    );
}

fn unix_target(path: &Path) -> Result<SocketAddrUnix> {
    check_socket_path(path)?;
    SocketAddrUnix::new(path).op_on("sendto", path.display())
}

fn unix_source(from: Option<SocketAddrAny>, _fd: BorrowedFd<'_>) -> Result<Option<PathBuf>> {
    let path = from
        .and_then(|a| SocketAddrUnix::try_from(a).ok())
        .and_then(|u| u.path_bytes().map(|p| PathBuf::from(OsStr::from_bytes(p))));
    Ok(path)
}

fn ip_source(from: Option<SocketAddrAny>, fd: BorrowedFd<'_>) -> Result<SocketAddr> {
    from.and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| {
            Error::new("recvfrom", ErrorKind::Corrupt)
                .with_object(label(fd))
                .with_hint("the kernel reported no IP sender address for this datagram")
        })
}

fn send_to_until(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    to: &impl SocketAddrArg,
    deadline: Deadline,
) -> Result<usize> {
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    let object = label(fd);
    let mut backoff = Backoff::new();
    loop {
        match rustix::net::sendto(fd, buf, flags, to) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) if matches!(deadline, Deadline::Now) => {
                return Err(Error::from_errno("sendto", libc::EAGAIN).with_object(&object));
            }
            Err(Errno::AGAIN) => {
                if poll_now(fd, PollFlags::OUT).contains(PollFlags::OUT) {
                    // An unconnected Unix datagram socket polls writable even while the
                    // receiver's queue is full, so poll cannot wait for it: back off.
                    backoff.sleep(deadline, "sendto", &object)?;
                } else {
                    wait_fd(fd, PollFlags::OUT, deadline, "sendto", &object)?;
                }
            }
            Err(e) => {
                let err = Error::from_errno("sendto", e.raw_os_error()).with_object(&object);
                return Err(send_error(err, fd, buf.len()));
            }
        }
    }
}

fn recv_from_until(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
) -> Result<(usize, Option<SocketAddrAny>)> {
    let got = recv_msg(fd, buf, deadline, "recvfrom", Framing::Messages, 0)?;
    Ok((got.bytes, got.address))
}

/// Accept with `try_` and `_timeout` forms, for [`UnixListener`] and [`TcpListener`].
///
/// The listener stays in blocking mode (so std's `accept` keeps working), and the
/// timeout form waits for a connection with `poll` before accepting: if several threads
/// accept on the same listener, one that loses the race waits in `accept` for the next
/// connection. Give each listener one accepting thread, or use
/// [`SeqpacketListener`](crate::unix::SeqpacketListener), whose forms are exact.
///
/// # References
/// - [accept4(2)](https://man7.org/linux/man-pages/man2/accept4.2.html)
pub trait ListenerExt: AsFd + sealed::SealedListener {
    /// The accepted connection's type.
    type Conn: From<OwnedFd>;

    /// Accepts a pending connection, if there is one now. (On a blocking listener shared
    /// with another accepting thread or process, a connection that the other side takes
    /// between the check and the accept leaves this call waiting for the next one.)
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when none is pending; [`ErrorKind::LimitReached`] when the
    /// process is out of descriptors (the listener stays usable, the connection stays
    /// queued).
    fn try_accept(&self) -> Result<Self::Conn> {
        accept_until(self.as_fd(), Deadline::Now).map(Self::Conn::from)
    }

    /// Accepts, waiting at most `timeout` for a connection.
    fn accept_timeout(&self, timeout: Duration) -> Result<Self::Conn> {
        accept_until(self.as_fd(), Deadline::after(timeout)).map(Self::Conn::from)
    }
}

impl sealed::SealedListener for UnixListener {}
impl ListenerExt for UnixListener {
    type Conn = UnixStream;
}

impl sealed::SealedListener for TcpListener {}
impl ListenerExt for TcpListener {
    type Conn = TcpStream;
}

fn accept_until(fd: BorrowedFd<'_>, deadline: Deadline) -> Result<OwnedFd> {
    let object = label(fd);
    loop {
        // Wait only while nothing is pending. Another thread or process may take the
        // connection between the poll and the accept: a non-blocking listener then says
        // EAGAIN and we wait again; a blocking one waits inside accept (see the docs).
        if !poll_now(fd, PollFlags::IN).contains(PollFlags::IN) {
            wait_fd(fd, PollFlags::IN, deadline, "accept", &object)?;
            continue;
        }
        match accept_once(fd) {
            Ok(conn) => return Ok(conn),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) if matches!(deadline, Deadline::Now) => {
                return Err(Error::from_errno("accept", libc::EAGAIN).with_object(&object));
            }
            Err(Errno::AGAIN) => {}
            Err(e) => {
                return Err(Error::from_errno("accept", e.raw_os_error()).with_object(&object));
            }
        }
    }
}

/// One `accept4` with close-on-exec. A connection that was aborted while it waited in
/// the queue (`ECONNABORTED`, `EPROTO`) is not an error of the listener: it reads as
/// `EINTR`, so callers simply try again.
pub(crate) fn accept_once(fd: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
    match rustix::net::accept_with(fd, SocketFlags::CLOEXEC) {
        Err(Errno::CONNABORTED) | Err(Errno::PROTO) => Err(Errno::INTR),
        other => other,
    }
}

pub(crate) fn send_until(fd: BorrowedFd<'_>, buf: &[u8], deadline: Deadline) -> Result<usize> {
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    retry(
        &[(fd, PollFlags::OUT)],
        deadline,
        "send",
        &label(fd),
        || rustix::net::send(fd, buf, flags),
    )
    .map_err(|e| send_error(e, fd, buf.len()))
}

/// Adds what the caller can do to a failed send.
pub(crate) fn send_error(e: Error, fd: BorrowedFd<'_>, len: usize) -> Error {
    match e.errno() {
        Some(libc::EMSGSIZE) => {
            let family = rustix::net::getsockname(fd).map(|a| a.address_family());
            let hint = match family {
                Ok(AddressFamily::INET) => format!(
                    "a {len}-byte UDP datagram is more than IPv4 carries (65507 bytes), or more than the \
                     path MTU allows with fragmentation off; send less"
                ),
                Ok(AddressFamily::INET6) => format!(
                    "a {len}-byte UDP datagram is more than IPv6 carries (65527 bytes), or more than the \
                     path MTU allows; send less"
                ),
                _ => {
                    let sndbuf = sockopt::socket_send_buffer_size(fd).unwrap_or(0);
                    format!(
                        "a {len}-byte message is more than this socket carries at once \
                         (SO_SNDBUF is {sndbuf} bytes); send less or raise the buffer size"
                    )
                }
            };
            e.with_hint(hint)
        }
        Some(libc::EPIPE | libc::ECONNRESET) => e.with_hint("the peer closed its end"),
        Some(libc::ECONNREFUSED) => {
            e.with_hint("no socket is bound at the peer's address any more")
        }
        Some(libc::ENOTCONN | libc::EDESTADDRREQ) => {
            e.with_hint("the socket is not connected: connect it, or use DatagramExt::send_to")
        }
        _ => e,
    }
}

/// One `recvmsg` without room for control data (descriptors sent with the message are
/// closed by the kernel), with `MSG_DONTWAIT` unless the caller may `block`.
pub(crate) fn recvmsg_bare(
    fd: BorrowedFd<'_>,
    iov: &mut [IoSliceMut<'_>],
    flags: RecvFlags,
    block: bool,
) -> rustix::io::Result<rustix::net::RecvMsg> {
    let flags = if block {
        flags
    } else {
        flags | RecvFlags::DONTWAIT
    };
    rustix::net::recvmsg(fd, iov, &mut RecvAncillaryBuffer::default(), flags)
}

pub(crate) fn recv_until(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
    framing: Framing,
) -> Result<usize> {
    recv_msg(fd, buf, deadline, "recv", framing, 0).map(|got| got.bytes)
}

/// The next datagram or packet, looked at without taking it: its real length and its
/// first byte.
pub(crate) struct Peeked {
    /// The whole message's length (`MSG_TRUNC`), however long.
    pub(crate) len: usize,
    /// Its first byte; `None` for an empty datagram or, on a connection, end of file.
    pub(crate) first: Option<u8>,
}

/// Looks at the next message on a datagram or seqpacket socket without taking it
/// (`recvmsg` with `MSG_PEEK | MSG_TRUNC`), waiting for one until `deadline`: the
/// blocking form waits inside the kernel, the others take `MSG_DONTWAIT`.
///
/// No control buffer is given, so descriptors attached to the message are not installed
/// by the peek (the kernel reports `MSG_CTRUNC` and keeps them with the message for the
/// receive that takes it).
pub(crate) fn peek_message(
    fd: BorrowedFd<'_>,
    deadline: Deadline,
    op: &'static str,
    object: &dyn fmt::Display,
) -> Result<Peeked> {
    let mut first = [0u8; 1];
    let msg = retry_blocking(&[(fd, PollFlags::IN)], deadline, op, object, |block| {
        recvmsg_bare(
            fd,
            &mut [IoSliceMut::new(&mut first)],
            RecvFlags::PEEK | RecvFlags::TRUNC,
            block,
        )
    })?;
    Ok(Peeked {
        len: msg.bytes,
        first: (msg.bytes > 0).then_some(first[0]),
    })
}

/// What one validated `recvmsg` delivered.
pub(crate) struct Received {
    pub(crate) bytes: usize,
    pub(crate) address: Option<SocketAddrAny>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Control-data room for what a socket option may add to a message besides descriptors
/// (credentials, timestamps, security labels), so that enabling one does not make
/// every message look truncated.
const CONTROL_SLACK: usize = 128;

/// One `recvmsg` with every check ipcx promises: a message that did not fit `buf`
/// ([`ErrorKind::MessageTooLarge`]), more descriptors than `max_fds` (all of them closed,
/// [`ErrorKind::Corrupt`]), or control data that was cut (`MSG_CTRUNC`: descriptors lost
/// to `EMFILE` are [`ErrorKind::LimitReached`]). Other control messages are ignored.
pub(crate) fn recv_msg(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
    op: &'static str,
    framing: Framing,
    max_fds: usize,
) -> Result<Received> {
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if framing == Framing::Messages {
        // Report a datagram's real length, so a truncation is seen and sized.
        flags |= RecvFlags::TRUNC;
    }
    // Room for the descriptors asked for (at least one, to see unasked ones arrive) and
    // for credentials and the like; on the stack unless many descriptors are asked for.
    let room = rustix::cmsg_space!(ScmRights(max_fds.max(1)), ScmCredentials(1)) + CONTROL_SLACK;
    let mut stack = [MaybeUninit::<u8>::uninit(); 512];
    let mut heap = Vec::new();
    let space: &mut [MaybeUninit<u8>] = if room <= stack.len() {
        &mut stack[..room]
    } else {
        heap.resize(room, MaybeUninit::uninit());
        &mut heap
    };
    let len = buf.len();
    let mut fds = Vec::new();
    let msg = retry_blocking(&[(fd, PollFlags::IN)], deadline, op, &label(fd), |block| {
        let mut control = RecvAncillaryBuffer::new(&mut *space);
        let flags = if block {
            flags
        } else {
            flags | RecvFlags::DONTWAIT
        };
        let msg = rustix::net::recvmsg(fd, &mut [IoSliceMut::new(&mut *buf)], &mut control, flags)?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        Ok(msg)
    })?;
    // From here on `fds` owns whatever arrived: every early return closes them all.
    let got = fds.len();
    let lost_data = || match framing {
        Framing::Stream => format!(
            "; the {} bytes that came with them were discarded, so the stream is out of step: close it",
            msg.bytes
        ),
        Framing::Messages => String::new(),
    };
    if got > max_fds || (msg.flags.contains(ReturnFlags::CTRUNC) && got >= max_fds) {
        drop(fds);
        let hint = if max_fds == 0 {
            "the peer attached descriptors this receive does not accept; they were closed \
             (use UnixSocketExt::recv_fds on channels that carry descriptors)"
                .to_string()
        } else {
            format!(
                "the peer sent more than the {max_fds} descriptors this receive accepts; all {got} received were closed"
            )
        };
        return Err(Error::new(op, ErrorKind::Corrupt)
            .with_object(label(fd))
            .with_hint(hint + &lost_data()));
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        drop(fds);
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        return Err(Error::new(op, ErrorKind::LimitReached)
            .with_object(label(fd))
            .with_hint(format!(
                "descriptors arrived but this process had no room for them (RLIMIT_NOFILE is {}); \
             {got} were received and closed, the message is consumed{}",
                limit.map_or_else(|| "unlimited".into(), |n| n.to_string()),
                lost_data()
            )));
    }
    if msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes > len {
        return Err(Error::new(op, ErrorKind::MessageTooLarge)
            .with_object(label(fd))
            .with_hint(format!(
                "a {}-byte message did not fit the {len}-byte buffer and was discarded; \
             receive into a buffer as large as the largest message",
                msg.bytes
            )));
    }
    Ok(Received {
        bytes: msg.bytes,
        address: msg.address,
        fds,
    })
}

/// Names a socket in error messages by its peer's address, else its own. Computed only
/// when an error is printed.
pub(crate) fn label(fd: BorrowedFd<'_>) -> SockLabel<'_> {
    SockLabel(fd)
}

pub(crate) struct SockLabel<'a>(BorrowedFd<'a>);

impl fmt::Display for SockLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = rustix::net::getpeername(self.0).ok().flatten();
        let local = rustix::net::getsockname(self.0)
            .ok()
            .filter(|a| !is_unnamed(a));
        match (peer, local) {
            (Some(peer), _) if !is_unnamed(&peer) => write!(f, "peer {}", describe_addr(&peer)),
            // An accepted connection from an unbound client: name the server's address.
            (Some(_), Some(local)) => write!(f, "connection on {}", describe_addr(&local)),
            (Some(_), None) => f.write_str("unnamed unix socket pair"),
            (None, Some(local)) => write!(f, "local {}", describe_addr(&local)),
            (None, None) => f.write_str("socket"),
        }
    }
}

fn is_unnamed(addr: &SocketAddrAny) -> bool {
    SocketAddrUnix::try_from(addr.clone())
        .is_ok_and(|u| u.is_unnamed() || u.abstract_name().is_some_and(<[u8]>::is_empty))
}

pub(crate) fn describe_addr(addr: &SocketAddrAny) -> String {
    if addr.address_family() == AddressFamily::UNIX {
        match SocketAddrUnix::try_from(addr.clone()) {
            Ok(u) => match (u.path_bytes(), u.abstract_name()) {
                (Some(p), _) => format!("unix:{}", String::from_utf8_lossy(p)),
                (None, Some(a)) if !a.is_empty() => format!("unix:@{}", String::from_utf8_lossy(a)),
                _ => "unnamed unix socket".to_string(),
            },
            Err(_) => "unix socket".to_string(),
        }
    } else {
        match SocketAddr::try_from(addr.clone()) {
            Ok(a) => a.to_string(),
            Err(_) => format!("{:?} socket", addr.address_family()),
        }
    }
}
