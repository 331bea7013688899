//! Async wrappers for ipcx descriptors on tokio (feature `tokio`).
//!
//! Each wrapper registers an ipcx value with the reactor of the current tokio runtime
//! ([`tokio::io::unix::AsyncFd`]) and waits for readiness there instead of in `poll(2)`:
//!
//! | wrapper | wraps | async API |
//! |---|---|---|
//! | [`AsyncPipeReader`] | [`PipeReader`](crate::pipe::PipeReader) (a pipe or a FIFO) | [`AsyncRead`](::tokio::io::AsyncRead) |
//! | [`AsyncPipeWriter`] | [`PipeWriter`](crate::pipe::PipeWriter) (a pipe or a FIFO) | [`AsyncWrite`](::tokio::io::AsyncWrite); a closed read end is a `BrokenPipe` error, never `SIGPIPE` |
//! | [`AsyncSeqpacket`] | [`Seqpacket`](crate::unix::Seqpacket) | `send`, `recv`: whole messages |
//! | [`AsyncSeqpacketListener`] | [`SeqpacketListener`](crate::unix::SeqpacketListener), or the [`SocketFile`](crate::unix::SocketFile) that owns one | `accept` |
//! | [`AsyncMessageQueue`] | [`MessageQueue`](crate::mq::posix::MessageQueue) (POSIX) | `send(msg, prio)`, `recv(buf) -> (len, prio)` |
//! | [`AsyncEventFd`] | [`EventFd`](crate::eventfd::EventFd) | `read`, `write(n)` |
//! | [`AsyncSignalFd`] | [`SignalFd`](crate::signal::SignalFd) | `recv() -> SignalInfo` |
//! | [`AsyncSignalPipe`] | [`SignalPipe`](crate::signal::SignalPipe) | `recv() -> SignalSet` |
//! | [`AsyncPidfd`] | [`Pidfd`](crate::process::Pidfd) | `exited()`, `exit_status()` |
//!
//! tokio's own types cover the rest: `tokio::net::{UnixStream, UnixDatagram,
//! UnixListener}` take std's sockets (which ipcx's [`unix`](crate::unix) functions return)
//! with `from_std`.
//!
//! # Making one
//!
//! `AsyncX::new(x)` (or `AsyncX::try_from(x)`) registers `x`; it must run inside a tokio
//! runtime whose I/O driver is enabled (`#[tokio::main]`, `Runtime::block_on`, a spawned
//! task, or after `Runtime::enter`). Outside a runtime it fails with a [`RegisterError`]
//! that gives `x` back, so an owning handle (a queue that unlinks its name on drop, say)
//! is not lost with the error; `?` turns that error into an [`Error`] or an
//! [`io::Error`]. `into_inner` deregisters and returns `x`. `get_ref` lends `x` for its
//! non-blocking (`try_`) and informational methods; its blocking methods would stall the
//! runtime's thread, so do not call them there.
//!
//! Timeouts come from tokio: wrap a call in `tokio::time::timeout`.
//!
//! # Cancellation safety
//!
//! Every async method here, and every `poll_read`/`poll_write`, is built the same way: a
//! **non-blocking system call whose result is returned in the same poll**, and, while
//! that call would block, a wait for readiness (which consumes nothing) before the next
//! one. A future dropped before it completes has therefore either made no call, or only
//! calls that found nothing to do: no message is taken from a queue or socket and then
//! lost, and nothing is half sent. `recv`, `send` and `accept` can be used in
//! `tokio::select!` loops and under `tokio::time::timeout`. (Composite helpers keep their
//! own rules: tokio's `read_exact`, `read_to_end` and `write_all` are not
//! cancellation-safe, because they loop over several calls.)
//!
//! # Examples
//!
//! A pipe read and written asynchronously (in one process, for brevity; `tests/tokio.rs`
//! and `examples/tokio_wait.rs` use two):
//!
//! ```
//! use ipcx::tokio::{AsyncPipeReader, AsyncPipeWriter};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
//! rt.block_on(async {
//!     let (reader, writer) = ipcx::pipe::pipe()?;
//!     let mut reader = AsyncPipeReader::new(reader)?;
//!     let mut writer = AsyncPipeWriter::new(writer)?;
//!     writer.write_all(b"hello").await?;
//!     drop(writer); // end of file for the reader
//!     let mut got = Vec::new();
//!     reader.read_to_end(&mut got).await?;
//!     assert_eq!(got, b"hello");
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # References
//! - [`tokio::io::unix::AsyncFd`]
//! - [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)

use std::fmt;
use std::io;
use std::task::{Context, Poll};

use crate::error::{Error, ErrorKind, Result, read_sysctl};
use crate::sys::async_fd::{Registration, StableFd};

mod events;
mod mq;
mod pipe;
mod seqpacket;

pub use events::{AsyncEventFd, AsyncPidfd, AsyncSignalFd, AsyncSignalPipe};
pub use mq::AsyncMessageQueue;
pub use pipe::{AsyncPipeReader, AsyncPipeWriter};
pub use seqpacket::{AsyncSeqpacket, AsyncSeqpacketListener, SeqpacketListening};

/// Registering a value with tokio failed: why, and the value itself, given back.
///
/// Converts into [`Error`] and [`io::Error`] (dropping the value), so `?` works in
/// functions returning either.
///
/// # Examples
///
/// ```
/// use ipcx::ErrorKind;
/// use ipcx::tokio::AsyncPipeReader;
///
/// let (reader, _writer) = ipcx::pipe::pipe()?;
/// // Not inside a tokio runtime: refused, and the pipe end comes back.
/// let err = AsyncPipeReader::new(reader).unwrap_err();
/// assert_eq!(err.error().kind(), ErrorKind::Other);
/// let reader = err.into_inner();
/// assert!(reader.capacity()? > 0);
/// # Ok::<(), ipcx::Error>(())
/// ```
pub struct RegisterError<T> {
    error: Error,
    inner: T,
}

impl<T> RegisterError<T> {
    /// Why registering failed.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The value that was not registered.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Both: why, and the value.
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.inner)
    }
}

impl<T> From<RegisterError<T>> for Error {
    fn from(e: RegisterError<T>) -> Error {
        e.error
    }
}

impl<T> From<RegisterError<T>> for io::Error {
    fn from(e: RegisterError<T>) -> io::Error {
        e.error.into()
    }
}

impl<T> fmt::Debug for RegisterError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for RegisterError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for RegisterError<T> {}

/// The operation named in registration errors.
const REGISTER: &str = "register with tokio";

/// Registers `inner` with the current runtime's reactor; `object` names it in errors.
pub(crate) fn register<T: StableFd>(
    inner: T,
    object: impl FnOnce(&T) -> String,
) -> std::result::Result<Registration<T>, RegisterError<T>> {
    // tokio panics when asked to register outside a runtime: check first.
    if let Err(e) = ::tokio::runtime::Handle::try_current() {
        let why = if e.is_thread_local_destroyed() {
            "this thread's tokio runtime context is being torn down"
        } else {
            "no tokio runtime is running on this thread"
        };
        let error = Error::new(REGISTER, ErrorKind::Other)
            .with_object(object(&inner))
            .with_hint(format!(
                "{why}: create the async wrapper inside a runtime (in async code run by \
                 #[tokio::main], Runtime::block_on or a spawned task, or after \
                 Runtime::enter), built with its I/O driver (enable_io or enable_all)"
            ));
        return Err(RegisterError { error, inner });
    }
    Registration::new(inner).map_err(|(inner, cause)| {
        let mut error = Error::from_io("epoll_ctl", &cause).with_object(object(&inner));
        if cause.raw_os_error() == Some(libc::ENOSPC) {
            error = error.with_hint(format!(
                "this user has reached the limit on descriptors registered with epoll \
                 (/proc/sys/fs/epoll/max_user_watches, now {}); close unused ones or raise it",
                read_sysctl("/proc/sys/fs/epoll/max_user_watches")
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
        RegisterError { error, inner }
    })
}

/// Which readiness an operation needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// Makes one non-blocking `attempt` at once, and while attempts would block, waits until
/// the value is ready for `direction` and attempts again (an attempt that would block
/// clears tokio's readiness).
///
/// The first attempt needs no readiness: argument errors (a buffer too small, a message
/// too large, a handle opened for the other direction) come back at once, as from the
/// synchronous `try_` methods, and a message already queued is taken without a trip
/// through the reactor. It takes a unit of the task's cooperative budget first, so that
/// a task receiving from a queue that is never empty still yields to the others.
///
/// Cancellation-safe: each attempt's result is returned in the poll that made the
/// attempt (the only await points are before an attempt: the budget and the readiness
/// waits, which consume nothing), so a dropped future has either made no attempt or made
/// only attempts that would have blocked.
pub(crate) async fn io_op<T: StableFd, R>(
    reg: &Registration<T>,
    direction: Direction,
    op: &'static str,
    object: &(dyn fmt::Display + Sync),
    mut attempt: impl FnMut(&T) -> Result<R>,
) -> Result<R> {
    ::tokio::task::consume_budget().await;
    match attempt(reg.get_ref()) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        done => return done,
    }
    let fd = reg.async_fd();
    loop {
        // `readable`/`writable`, unlike `poll_*_ready`, let several tasks wait at once.
        let ready = match direction {
            Direction::Read => fd.readable().await,
            Direction::Write => fd.writable().await,
        };
        let mut guard = ready.map_err(|e| readiness_error(op, object, &e))?;
        match guard.try_io(|fd| would_block(attempt(fd.get_ref().get()))) {
            Ok(Ok(done)) => return done,
            Ok(Err(e)) => return Err(Error::from_io(op, &e).with_object(object)),
            Err(_would_block) => continue,
        }
    }
}

/// [`io_op`] for `poll_read`/`poll_write`, which own the value exclusively (tokio keeps
/// one waker per direction for the `poll_*_ready` calls).
pub(crate) fn poll_op<T: StableFd, R>(
    reg: &Registration<T>,
    cx: &mut Context<'_>,
    direction: Direction,
    op: &'static str,
    object: &(dyn fmt::Display + Sync),
    mut attempt: impl FnMut(&T) -> Result<R>,
) -> Poll<Result<R>> {
    let coop = std::task::ready!(::tokio::task::coop::poll_proceed(cx));
    match attempt(reg.get_ref()) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        done => {
            coop.made_progress();
            return Poll::Ready(done);
        }
    }
    // No progress: give the unit back; the readiness polls below take their own.
    drop(coop);
    let fd = reg.async_fd();
    loop {
        let ready = match direction {
            Direction::Read => fd.poll_read_ready(cx),
            Direction::Write => fd.poll_write_ready(cx),
        };
        let mut guard = match ready {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(guard)) => guard,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(readiness_error(op, object, &e))),
        };
        match guard.try_io(|fd| would_block(attempt(fd.get_ref().get()))) {
            Ok(Ok(done)) => return Poll::Ready(done),
            Ok(Err(e)) => return Poll::Ready(Err(Error::from_io(op, &e).with_object(object))),
            Err(_would_block) => continue,
        }
    }
}

/// ipcx's `WouldBlock` as the `io::ErrorKind::WouldBlock` that makes `try_io` clear
/// readiness; every other outcome is the operation's result, passed through in `Ok`
/// (so `try_io` never sees another `io::Error`).
fn would_block<R>(result: Result<R>) -> io::Result<Result<R>> {
    match result {
        Err(e) if e.kind() == ErrorKind::WouldBlock => Err(io::ErrorKind::WouldBlock.into()),
        other => Ok(other),
    }
}

fn readiness_error(op: &'static str, object: &(dyn fmt::Display + Sync), e: &io::Error) -> Error {
    Error::from_io(op, e).with_object(object).with_hint(format!(
        "waiting for readiness failed ({e}); the tokio runtime the wrapper was made in is \
         probably shutting down"
    ))
}

/// The parts every wrapper of one ipcx type shares: the struct, `new`, `TryFrom`,
/// `get_ref`, `into_inner`, `AsFd` and `Debug`.
macro_rules! wrapper {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($inner:ty), label = $label:expr;
    ) => {
        $(#[$meta])*
        pub struct $name {
            reg: $crate::sys::async_fd::Registration<$inner>,
        }

        impl $name {
            #[doc = concat!("Registers a [`", stringify!($inner), "`] with the current tokio runtime.")]
            ///
            /// # Errors
            /// A [`RegisterError`](crate::tokio::RegisterError), which gives the value
            /// back, when no tokio runtime is current or the kernel refuses the
            /// registration (`epoll_ctl`, for example over
            /// `/proc/sys/fs/epoll/max_user_watches`).
            ///
            /// # Panics
            /// When the current runtime was built without its I/O driver (tokio's own
            /// rule: call `enable_io` or `enable_all` on the builder).
            // The error holds the value so that it is not lost; this runs once per value.
            #[allow(clippy::result_large_err)]
            pub fn new(
                inner: $inner,
            ) -> ::std::result::Result<$name, $crate::tokio::RegisterError<$inner>> {
                $crate::tokio::register(inner, $label).map(|reg| $name { reg })
            }

            /// The wrapped value, for its non-blocking (`try_`) and informational
            /// methods. Its blocking methods would stall the runtime's thread.
            pub fn get_ref(&self) -> &$inner {
                self.reg.get_ref()
            }

            /// Deregisters from tokio and returns the wrapped value.
            pub fn into_inner(self) -> $inner {
                self.reg.into_inner()
            }
        }

        impl ::std::convert::TryFrom<$inner> for $name {
            type Error = $crate::tokio::RegisterError<$inner>;

            #[doc = concat!("The same as [`", stringify!($name), "::new`].")]
            #[allow(clippy::result_large_err)]
            fn try_from(
                inner: $inner,
            ) -> ::std::result::Result<$name, $crate::tokio::RegisterError<$inner>> {
                $name::new(inner)
            }
        }

        impl ::std::os::fd::AsFd for $name {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(self.reg.get_ref())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_tuple(stringify!($name))
                    .field(self.reg.get_ref())
                    .finish()
            }
        }
    };
}
pub(crate) use wrapper;
