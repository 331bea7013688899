//! `mio::event::Source` for every ipcx descriptor type (feature `mio`).
//!
//! These ipcx types register with a [`mio::Poll`] directly:
//!
//! | type | readable when | writable when |
//! |---|---|---|
//! | [`PipeReader`] (pipes and FIFOs) | data is queued, or every writer has closed (end of file) | — |
//! | [`PipeWriter`] (pipes and FIFOs) | — | there is room, or every reader has closed |
//! | [`Seqpacket`] | a message is queued, or the peer closed | there is room |
//! | [`SeqpacketListener`], [`SocketFile`] | a connection is pending (for a `SocketFile`, whatever its socket reports) | — |
//! | [`MessageQueue`] (POSIX) | a message is queued | there is room for one |
//! | [`EventFd`](crate::eventfd::EventFd) | the counter is above 0 | 1 more fits |
//! | [`SignalFd`](crate::signal::SignalFd) | one of its signals is pending | — |
//! | [`SignalPipe`](crate::signal::SignalPipe) | a registered signal arrived | — |
//! | [`Pidfd`](crate::process::Pidfd) | the process has exited | — |
//!
//! Each implementation registers the type's descriptor through
//! [`mio::unix::SourceFd`], which remains the path for any other
//! descriptor (`SourceFd(&fd.as_fd().as_raw_fd())`).
//!
//! # Edge-triggered: drain until `WouldBlock`
//!
//! mio registers descriptors edge-triggered (`EPOLLET`): an event says that readiness
//! *arrived*, not that it is still there, and no new event comes for data that was
//! already there. After each event, call the type's `try_` method (`try_read`,
//! `try_write`, `try_send`, `try_recv`, `try_accept`) in a loop until it fails with
//! [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock), or keep track yourself that
//! the source is still ready. End of file (`Ok(0)` from a pipe or socket) and
//! [`PeerGone`](crate::ErrorKind::PeerGone) also end the loop.
//!
//! The `try_` methods never block: ipcx keeps pipe, FIFO and listener descriptors
//! non-blocking underneath (do not clear `O_NONBLOCK` on them), sends and receives on
//! sockets pass `MSG_DONTWAIT`, and message queue `try_` forms pass an expired deadline.
//! Only ipcx's blocking and `_timeout` forms wait (in the kernel's own call, or in
//! `poll(2)`), and they do not belong in a mio event loop.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use ipcx::ErrorKind;
//! use mio::{Events, Interest, Poll, Token};
//!
//! let (mut reader, writer) = ipcx::pipe::pipe()?;
//! let mut poll = Poll::new()?;
//! poll.registry().register(&mut reader, Token(0), Interest::READABLE)?;
//! writer.try_write(b"ping")?;
//!
//! let mut events = Events::with_capacity(8);
//! poll.poll(&mut events, Some(Duration::from_secs(5)))?;
//! assert!(events.iter().any(|e| e.token() == Token(0) && e.is_readable()));
//! let mut buf = [0u8; 64];
//! let mut got = Vec::new();
//! loop {
//!     match reader.try_read(&mut buf) {
//!         Ok(0) => break, // end of file
//!         Ok(n) => got.extend_from_slice(&buf[..n]),
//!         Err(e) if e.kind() == ErrorKind::WouldBlock => break, // drained: wait for the next event
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!(got, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # References
//! - [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html) (edge-triggered mode)
//! - [`mio::event::Source`]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use ::mio::event::Source;
use ::mio::unix::SourceFd;
use ::mio::{Interest, Registry, Token};

use crate::mq::posix::MessageQueue;
use crate::pipe::{PipeReader, PipeWriter};
use crate::unix::{Seqpacket, SeqpacketListener, SocketFile};

// Every ipcx type registers its one descriptor the same way, through `SourceFd`.
fn register_fd(
    fd: BorrowedFd<'_>,
    registry: &Registry,
    token: Token,
    interests: Interest,
) -> io::Result<()> {
    SourceFd(&fd.as_raw_fd()).register(registry, token, interests)
}

fn reregister_fd(
    fd: BorrowedFd<'_>,
    registry: &Registry,
    token: Token,
    interests: Interest,
) -> io::Result<()> {
    SourceFd(&fd.as_raw_fd()).reregister(registry, token, interests)
}

fn deregister_fd(fd: BorrowedFd<'_>, registry: &Registry) -> io::Result<()> {
    SourceFd(&fd.as_raw_fd()).deregister(registry)
}

/// Implements [`Source`] for a type that implements [`AsFd`], through [`SourceFd`].
///
/// Adding a new descriptor type is one line in the invocation below.
macro_rules! source_via_fd {
    ($($(#[$meta:meta])* $ty:ty),* $(,)?) => {$(
        $(#[$meta])*
        impl Source for $ty {
            fn register(
                &mut self,
                registry: &Registry,
                token: Token,
                interests: Interest,
            ) -> io::Result<()> {
                register_fd(self.as_fd(), registry, token, interests)
            }

            fn reregister(
                &mut self,
                registry: &Registry,
                token: Token,
                interests: Interest,
            ) -> io::Result<()> {
                reregister_fd(self.as_fd(), registry, token, interests)
            }

            fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
                deregister_fd(self.as_fd(), registry)
            }
        }
    )*};
}

source_via_fd!(
    /// Registers the read end: readable when data is queued or at end of file. Drain
    /// with [`PipeReader::try_read`] until `WouldBlock` (or `Ok(0)`, end of file).
    PipeReader,
    /// Registers the write end: writable when there is room, or when every reader has
    /// closed (then [`PipeWriter::try_write`] fails with `PeerGone`, never `SIGPIPE`).
    PipeWriter,
    /// Registers the socket: readable when a message is queued or the peer closed,
    /// writable when there is room. Drain with [`Seqpacket::try_recv`].
    Seqpacket,
    /// Registers the listener: readable when a connection is pending. Drain with
    /// [`SeqpacketListener::try_accept`].
    SeqpacketListener,
    /// Registers the eventfd: readable while the counter is above 0, writable while 1
    /// more fits. Read with [`EventFd::try_read`](crate::eventfd::EventFd::try_read).
    crate::eventfd::EventFd,
    /// Registers the signalfd: readable while one of its signals is pending. Drain with
    /// [`SignalFd::try_read`](crate::signal::SignalFd::try_read).
    crate::signal::SignalFd,
    /// Registers the signal pipe: readable once a registered signal arrived. Read with
    /// [`SignalPipe::try_read`](crate::signal::SignalPipe::try_read).
    crate::signal::SignalPipe,
    /// Registers the pidfd: readable once the process has exited.
    crate::process::Pidfd,
    /// Registers the queue: readable while a message is queued, writable while there is
    /// room. Drain with [`MessageQueue::try_recv`].
    MessageQueue,
);

/// Registers the socket a [`SocketFile`] owns (the socket file stays owned by it).
///
/// For [`SocketFile<SeqpacketListener>`] drain with `try_accept`; std's listener and
/// datagram socket inside the other `SocketFile`s are in blocking mode, so use ipcx's
/// `try_` forms on them ([`ListenerExt::try_accept`](crate::ListenerExt::try_accept),
/// [`SocketExt::try_recv`](crate::SocketExt::try_recv)), which never block, or call
/// `set_nonblocking(true)` first.
impl<T: AsFd> Source for SocketFile<T> {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        register_fd(self.as_fd(), registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        reregister_fd(self.as_fd(), registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        deregister_fd(self.as_fd(), registry)
    }
}
