//! Seqpacket sockets and listeners on tokio.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};

use super::{Direction, RegisterError, io_op, register, wrapper};
use crate::error::Result;
use crate::sock::label;
use crate::sys::async_fd::Registration;
use crate::unix::{Seqpacket, SeqpacketListener, SocketFile};

wrapper! {
    /// A connected [`Seqpacket`] socket on tokio: async `send` and `recv` of whole
    /// messages, in order, with their boundaries.
    ///
    /// The checks are the synchronous type's: a message larger than the receive buffer is
    /// [`ErrorKind::MessageTooLarge`](crate::ErrorKind::MessageTooLarge) (and consumed),
    /// never silently cut; descriptors the peer attaches are refused and closed; a closed
    /// peer is end of file for `recv` (`Ok(0)`, see [`Seqpacket`] on zero-length messages)
    /// and [`PeerGone`](crate::ErrorKind::PeerGone) for `send`, never `SIGPIPE`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcx::tokio::AsyncSeqpacket;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
    /// let (a, b) = AsyncSeqpacket::pair()?;
    /// a.send(b"one").await?;
    /// a.send(b"two").await?;
    /// let mut buf = [0u8; 64];
    /// let n = b.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"one"); // one message per recv
    /// # Ok::<(), ipcx::Error>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # References
    /// - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
    pub struct AsyncSeqpacket(Seqpacket), label = |s: &Seqpacket| label(s.as_fd()).to_string();
}

impl AsyncSeqpacket {
    /// A connected pair (`socketpair(AF_UNIX, SOCK_SEQPACKET)`), both registered with
    /// the current tokio runtime.
    ///
    /// # Errors
    /// As [`Seqpacket::pair`] and [`AsyncSeqpacket::new`].
    pub fn pair() -> Result<(AsyncSeqpacket, AsyncSeqpacket)> {
        let (a, b) = Seqpacket::pair()?;
        Ok((AsyncSeqpacket::new(a)?, AsyncSeqpacket::new(b)?))
    }

    /// Sends one message, waiting for room in the socket's buffer; returns its length.
    ///
    /// # Errors
    /// As [`Seqpacket::send`]: [`PeerGone`](crate::ErrorKind::PeerGone) when the peer
    /// closed, [`MessageTooLarge`](crate::ErrorKind::MessageTooLarge) above what the
    /// socket carries at once.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: the message is sent whole within the poll that completes the
    /// future, or not at all.
    pub async fn send(&self, msg: &[u8]) -> Result<usize> {
        let object = label(self.as_fd());
        io_op(&self.reg, Direction::Write, "send", &object, |s| {
            s.try_send(msg)
        })
        .await
    }

    /// Receives one whole message into `buf`, waiting for one; returns its length, or
    /// `Ok(0)` at end of file.
    ///
    /// # Errors
    /// As [`Seqpacket::recv`]: [`MessageTooLarge`](crate::ErrorKind::MessageTooLarge)
    /// when the message does not fit `buf` (it is consumed: receive into a buffer as large
    /// as the largest message).
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: a message is taken from the socket only within the poll that
    /// completes the future, so a future dropped before completing has taken none.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let object = label(self.as_fd());
        io_op(&self.reg, Direction::Read, "recv", &object, |s| {
            s.try_recv(buf)
        })
        .await
    }

    /// Whether the peer has closed its end; see [`Seqpacket::peer_closed`].
    pub fn peer_closed(&self) -> bool {
        self.get_ref().peer_closed()
    }
}

mod sealed {
    /// Only ipcx implements [`SeqpacketListening`](super::SeqpacketListening).
    pub trait Sealed: crate::sys::async_fd::StableFd {
        fn listener(&self) -> &crate::unix::SeqpacketListener;
    }
}

/// What [`AsyncSeqpacketListener`] can wrap: a [`SeqpacketListener`], or the
/// [`SocketFile`] that [`listen_seqpacket`](crate::unix::listen_seqpacket) returns (which
/// removes the socket file when dropped).
pub trait SeqpacketListening: sealed::Sealed {}

impl sealed::Sealed for SeqpacketListener {
    fn listener(&self) -> &SeqpacketListener {
        self
    }
}
impl SeqpacketListening for SeqpacketListener {}

impl sealed::Sealed for SocketFile<SeqpacketListener> {
    fn listener(&self) -> &SeqpacketListener {
        self
    }
}
impl SeqpacketListening for SocketFile<SeqpacketListener> {}

/// A seqpacket listener on tokio: async `accept`.
///
/// Wraps either a bare [`SeqpacketListener`] or, as
/// [`listen_seqpacket`](crate::unix::listen_seqpacket) returns it, a
/// [`SocketFile<SeqpacketListener>`], which keeps removing the socket file on drop.
///
/// # Examples
///
/// ```
/// use ipcx::tokio::{AsyncSeqpacket, AsyncSeqpacketListener};
/// use ipcx::unix::Seqpacket;
///
/// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
/// # let dir = std::env::temp_dir().join(format!("ipcx-doc-async-seq-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let server = AsyncSeqpacketListener::new(ipcx::unix::listen_seqpacket(&path)?)?;
/// let client = AsyncSeqpacket::new(Seqpacket::connect(&path)?)?;
/// let conn = server.accept().await?;
/// client.send(b"hello").await?;
/// let mut buf = [0u8; 16];
/// let n = conn.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"hello");
/// # drop(server); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # References
/// - [accept4(2)](https://man7.org/linux/man-pages/man2/accept4.2.html)
pub struct AsyncSeqpacketListener<L: SeqpacketListening = SeqpacketListener> {
    reg: Registration<L>,
}

impl<L: SeqpacketListening> AsyncSeqpacketListener<L> {
    /// Registers a listener with the current tokio runtime.
    ///
    /// # Errors
    /// A [`RegisterError`], which gives the listener back, when no tokio runtime is
    /// current or the kernel refuses the registration.
    ///
    /// # Panics
    /// When the current runtime was built without its I/O driver.
    pub fn new(listener: L) -> std::result::Result<AsyncSeqpacketListener<L>, RegisterError<L>> {
        register(listener, |l| label(l.as_fd()).to_string())
            .map(|reg| AsyncSeqpacketListener { reg })
    }

    /// Accepts a connection, waiting for one, and registers it with the current runtime.
    ///
    /// # Errors
    /// As [`SeqpacketListener::accept`]:
    /// [`LimitReached`](crate::ErrorKind::LimitReached) when this process is out of
    /// descriptors (the listener stays usable and the connection stays queued). If the
    /// accepted connection cannot be registered (no runtime is current where the future
    /// is polled, or `epoll_ctl` fails), the error says so and the connection is closed.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: a connection is taken from the queue only within the poll that
    /// completes the future, so none is lost when the future is dropped.
    pub async fn accept(&self) -> Result<AsyncSeqpacket> {
        let object = label(self.as_fd());
        let conn = io_op(&self.reg, Direction::Read, "accept", &object, |l| {
            l.listener().try_accept()
        })
        .await?;
        Ok(AsyncSeqpacket::new(conn)?)
    }

    /// The wrapped listener, for its non-blocking methods.
    pub fn get_ref(&self) -> &L {
        self.reg.get_ref()
    }

    /// Deregisters from tokio and returns the wrapped listener.
    pub fn into_inner(self) -> L {
        self.reg.into_inner()
    }
}

impl<L: SeqpacketListening> AsFd for AsyncSeqpacketListener<L> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.reg.get_ref().as_fd()
    }
}

impl<L: SeqpacketListening + fmt::Debug> fmt::Debug for AsyncSeqpacketListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncSeqpacketListener")
            .field(self.reg.get_ref())
            .finish()
    }
}
