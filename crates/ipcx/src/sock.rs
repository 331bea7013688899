//! What every socket gets from ipcx: three forms of send and receive, buffer sizes.
//!
//! [`SocketExt`] extends the standard library's socket types (and ipcx's own
//! [`Seqpacket`](crate::unix::Seqpacket)) rather than wrapping them. Every send uses
//! `MSG_NOSIGNAL`, so a vanished peer is [`ErrorKind::PeerGone`], never a `SIGPIPE`;
//! every receive checks the flags the kernel returns, so a datagram that did not fit the
//! buffer is [`ErrorKind::MessageTooLarge`] rather than silently cut, and descriptors sent
//! on a channel that does not accept them are [`ErrorKind::Corrupt`] (the kernel closes
//! them; none is installed in the receiver).

use std::fmt;
use std::io::IoSliceMut;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, RecvMsg, ReturnFlags, SendFlags, SocketAddrAny,
    SocketAddrUnix, sockopt,
};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::unix::Seqpacket;
use crate::wait::{Deadline, retry};

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
            let sndbuf = sockopt::socket_send_buffer_size(fd).unwrap_or(0);
            e.with_hint(format!(
                "a {len}-byte message is more than this socket carries at once \
                 (SO_SNDBUF is {sndbuf} bytes); send less or raise the buffer size"
            ))
        }
        Some(libc::EPIPE | libc::ECONNRESET) => e.with_hint("the peer closed its end"),
        Some(libc::ECONNREFUSED) => {
            e.with_hint("no socket is bound at the peer's address any more")
        }
        _ => e,
    }
}

pub(crate) fn recv_until(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
    framing: Framing,
) -> Result<usize> {
    let mut flags = RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC;
    if framing == Framing::Messages {
        // Report a datagram's real length, so a truncation is seen and sized.
        flags |= RecvFlags::TRUNC;
    }
    let len = buf.len();
    let msg = retry(&[(fd, PollFlags::IN)], deadline, "recv", &label(fd), || {
        // No room for control data: descriptors the peer attached are closed by the
        // kernel and flagged with MSG_CTRUNC.
        let mut control = RecvAncillaryBuffer::new(&mut []);
        rustix::net::recvmsg(fd, &mut [IoSliceMut::new(&mut *buf)], &mut control, flags)
    })?;
    check_recv(&msg, len, fd)?;
    Ok(msg.bytes)
}

/// Rejects a receive the kernel flagged as truncated: data that did not fit, or control
/// data (descriptors) that had no room.
pub(crate) fn check_recv(msg: &RecvMsg, len: usize, fd: BorrowedFd<'_>) -> Result<()> {
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(Error::new("recv", ErrorKind::Corrupt).with_object(label(fd)).with_hint(
            "the peer attached descriptors this receive does not accept; the kernel closed them \
             (use UnixSocketExt::recv_fds on channels that carry descriptors)",
        ));
    }
    if msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes > len {
        return Err(Error::new("recv", ErrorKind::MessageTooLarge)
            .with_object(label(fd))
            .with_hint(format!(
                "a {}-byte message did not fit the {len}-byte buffer and was discarded; \
                 receive into a buffer as large as the largest message",
                msg.bytes
            )));
    }
    Ok(())
}

/// Names a socket in error messages by its peer's address, else its own. Computed only
/// when an error is printed.
pub(crate) fn label(fd: BorrowedFd<'_>) -> SockLabel<'_> {
    SockLabel(fd)
}

pub(crate) struct SockLabel<'a>(BorrowedFd<'a>);

impl fmt::Display for SockLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = rustix::net::getpeername(self.0)
            .ok()
            .flatten()
            .filter(|a| !is_unnamed(a))
            .map(|a| ("peer", a))
            .or_else(|| rustix::net::getsockname(self.0).ok().map(|a| ("local", a)));
        match name {
            Some((side, addr)) => write!(f, "{side} {}", describe_addr(&addr)),
            None => f.write_str("socket"),
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
