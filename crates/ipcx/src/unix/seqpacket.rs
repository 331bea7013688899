//! `SOCK_SEQPACKET`: reliable, ordered messages with boundaries over a connection.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::net::SocketType;

use crate::error::{Context, Result};
use crate::sock::{Framing, label, recv_until, send_until};
use crate::wait::{Deadline, retry};

/// A connected seqpacket socket: each `send` is one message, each `recv` returns one
/// whole message, in order, and the connection reports the peer's departure.
///
/// Created by [`Seqpacket::connect`], [`SeqpacketListener::accept`] or
/// [`Seqpacket::pair`]. Also has the [`SocketExt`](crate::SocketExt) and
/// [`UnixSocketExt`](crate::unix::UnixSocketExt) methods (descriptor passing, peer
/// credentials).
///
/// A zero-length message is delivered as a receive of 0 bytes, which is also how end of
/// file reads (the kernel marks neither). After a receive of 0 bytes,
/// [`Seqpacket::peer_closed`] returning `false` proves it was an empty message; `true`
/// means end of file, unless the peer's very last message before closing was empty.
/// Protocols that need certainty keep zero-length messages out.
///
/// # Examples
///
/// ```
/// let (a, b) = ipcx::unix::Seqpacket::pair()?;
/// a.send(b"one")?;
/// a.send(b"two")?;
/// let mut buf = [0u8; 64];
/// let n = b.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"one");
/// let n = b.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"two");
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
/// - [socket(2)](https://man7.org/linux/man-pages/man2/socket.2.html)
pub struct Seqpacket {
    fd: OwnedFd,
}

impl Seqpacket {
    /// Connects to the seqpacket listener at `path`, waiting as long as its backlog is full.
    pub fn connect(path: impl AsRef<Path>) -> Result<Seqpacket> {
        super::connect_socket(path.as_ref(), SocketType::SEQPACKET, Deadline::Never)
            .map(Seqpacket::from_fd)
    }

    /// Connects, waiting at most `timeout` while the listener's backlog is full.
    pub fn connect_timeout(path: impl AsRef<Path>, timeout: Duration) -> Result<Seqpacket> {
        super::connect_socket(
            path.as_ref(),
            SocketType::SEQPACKET,
            Deadline::after(timeout),
        )
        .map(Seqpacket::from_fd)
    }

    /// A connected pair (`socketpair(AF_UNIX, SOCK_SEQPACKET)`), close-on-exec.
    pub fn pair() -> Result<(Seqpacket, Seqpacket)> {
        let (a, b) = super::pair(SocketType::SEQPACKET)?;
        Ok((Seqpacket::from_fd(a), Seqpacket::from_fd(b)))
    }

    /// Sends one message, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`ErrorKind::PeerGone`](crate::ErrorKind::PeerGone) when the peer closed;
    /// [`ErrorKind::MessageTooLarge`](crate::ErrorKind::MessageTooLarge) above the
    /// socket's send buffer.
    pub fn send(&self, msg: &[u8]) -> Result<usize> {
        send_until(self.fd.as_fd(), msg, Deadline::Never)
    }

    /// Sends one message only if there is room now.
    pub fn try_send(&self, msg: &[u8]) -> Result<usize> {
        send_until(self.fd.as_fd(), msg, Deadline::Now)
    }

    /// Sends one message, waiting at most `timeout` for room.
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<usize> {
        send_until(self.fd.as_fd(), msg, Deadline::after(timeout))
    }

    /// Receives one message, waiting as long as it takes.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`](crate::ErrorKind::MessageTooLarge) when the message
    /// does not fit `buf` (the message is consumed).
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        recv_until(self.fd.as_fd(), buf, Deadline::Never, Framing::Messages)
    }

    /// Receives one message if one is queued now.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        recv_until(self.fd.as_fd(), buf, Deadline::Now, Framing::Messages)
    }

    /// Receives one message, waiting at most `timeout`.
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        recv_until(
            self.fd.as_fd(),
            buf,
            Deadline::after(timeout),
            Framing::Messages,
        )
    }

    /// Whether the peer has closed its end (or shut down writing). Messages it sent
    /// before closing may still be queued; they are received before end of file.
    pub fn peer_closed(&self) -> bool {
        let ev = crate::wait::poll_now(self.fd.as_fd(), PollFlags::IN | PollFlags::RDHUP);
        ev.intersects(PollFlags::HUP | PollFlags::RDHUP)
    }
}

impl Seqpacket {
    /// Wraps a descriptor ipcx itself made as a Unix seqpacket socket.
    pub(crate) fn from_fd(fd: OwnedFd) -> Seqpacket {
        Seqpacket { fd }
    }
}

impl TryFrom<OwnedFd> for Seqpacket {
    type Error = crate::Error;

    /// Adopts a Unix seqpacket socket descriptor; any other socket is refused with
    /// `InvalidInput` (its receives would misbehave: `MSG_TRUNC` discards TCP data).
    fn try_from(fd: OwnedFd) -> Result<Seqpacket> {
        use rustix::net::sockopt;
        let ty = sockopt::socket_type(&fd).op("getsockopt SO_TYPE")?;
        let domain = sockopt::socket_domain(&fd).op("getsockopt SO_DOMAIN")?;
        if ty != SocketType::SEQPACKET || domain != rustix::net::AddressFamily::UNIX {
            return Err(crate::Error::new("adopt", crate::ErrorKind::InvalidInput)
                .with_object(label(fd.as_fd()))
                .with_hint("the descriptor is not a Unix seqpacket socket"));
        }
        Ok(Seqpacket { fd })
    }
}

impl From<Seqpacket> for OwnedFd {
    fn from(s: Seqpacket) -> OwnedFd {
        s.fd
    }
}

impl AsFd for Seqpacket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for Seqpacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seqpacket({})", label(self.fd.as_fd()))
    }
}

/// A listening seqpacket socket; see [`listen_seqpacket`](super::listen_seqpacket).
///
/// Its descriptor is non-blocking underneath, so all three accept forms are exact even
/// with several accepting threads.
///
/// # References
/// - [listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html)
/// - [accept4(2)](https://man7.org/linux/man-pages/man2/accept4.2.html)
pub struct SeqpacketListener {
    fd: OwnedFd,
}

impl SeqpacketListener {
    pub(crate) fn from_listening(fd: OwnedFd) -> Result<SeqpacketListener> {
        crate::wait::set_nonblocking(fd.as_fd(), true).op("F_SETFL")?;
        Ok(SeqpacketListener { fd })
    }

    /// Accepts a connection, waiting as long as it takes.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached) when this process is
    /// out of descriptors; the listener stays usable and the connection stays queued.
    pub fn accept(&self) -> Result<Seqpacket> {
        self.accept_until(Deadline::Never)
    }

    /// Accepts a connection if one is pending now.
    pub fn try_accept(&self) -> Result<Seqpacket> {
        self.accept_until(Deadline::Now)
    }

    /// Accepts, waiting at most `timeout` for a connection.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Seqpacket> {
        self.accept_until(Deadline::after(timeout))
    }

    fn accept_until(&self, deadline: Deadline) -> Result<Seqpacket> {
        let fd = self.fd.as_fd();
        retry(
            &[(fd, PollFlags::IN)],
            deadline,
            "accept",
            &label(fd),
            || crate::sock::accept_once(fd),
        )
        .map(Seqpacket::from_fd)
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for SeqpacketListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqpacketListener({})", label(self.fd.as_fd()))
    }
}
