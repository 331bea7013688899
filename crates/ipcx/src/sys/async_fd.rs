//! Registering ipcx descriptors with tokio's reactor (feature `tokio`).
//!
//! [`AsyncFd::register_with_interest`] is `unsafe`: the reactor keeps the descriptor's
//! number in its epoll set, so the value handed over must keep that same descriptor, open
//! on the same open file description, until the `AsyncFd` is dropped or taken apart with
//! `into_inner`. Otherwise readiness would be reported for a stranger's file, and a
//! number closed and reused elsewhere would stay registered.
//!
//! Two things make that hold here, and this file is the one place that vouches for them:
//!
//! - [`StableFd`], an `unsafe` marker implemented below only for ipcx types that own one
//!   descriptor for their whole life and have no `&self` method that closes or replaces
//!   it;
//! - [`Registration`], which never hands out `&mut` access to the registered value (so it
//!   cannot be swapped for another): only `&T`, and `T` itself once deregistered.
//!
//! A new descriptor type joins by adding its `unsafe impl StableFd` here, with the
//! reason it qualifies.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

/// An ipcx type that owns one descriptor and keeps it, unchanged, for its whole life.
///
/// (`pub` only so that public, sealed traits can name it as a supertrait; this module is
/// private to the crate.)
///
/// # Safety
///
/// From the moment a value exists until it is dropped or consumed, `as_fd` must return
/// the same descriptor number, open on the same open file description, whichever `&self`
/// methods are called meanwhile: none of them may close the descriptor, replace it, or
/// `dup2` another file over it.
pub unsafe trait StableFd: AsFd {}

// SAFETY: a `PipeReader` (like a `PipeWriter`) holds its `OwnedFd` in a private `Option`
// that is `Some` from creation and taken only by `End::into_fd`, which consumes the end;
// no method taking `&self` touches the field.
unsafe impl StableFd for crate::pipe::PipeReader {}
// SAFETY: as for `PipeReader`, the two ends share the same `End` type.
unsafe impl StableFd for crate::pipe::PipeWriter {}
// SAFETY: `Seqpacket`'s only field is a private `OwnedFd`, never reassigned; it leaves
// only through `From<Seqpacket> for OwnedFd`, which consumes the socket.
unsafe impl StableFd for crate::unix::Seqpacket {}
// SAFETY: `SeqpacketListener`'s only field is a private `OwnedFd`, never reassigned.
unsafe impl StableFd for crate::unix::SeqpacketListener {}
// SAFETY: a `SocketFile` owns its socket in a private field that is never reassigned
// (`keep` consumes the `SocketFile`), and `SeqpacketListener` is `StableFd` itself.
unsafe impl StableFd for crate::unix::SocketFile<crate::unix::SeqpacketListener> {}
// SAFETY: `MessageQueue` owns its descriptor in a private `OwnedFd` field that is set
// when the queue is opened and never reassigned; `Drop` only unlinks the name.
unsafe impl StableFd for crate::mq::posix::MessageQueue {}

// SAFETY: `EventFd` owns its descriptor in a private field that is `Some` from creation
// and taken only by `into_fd`, which consumes the value; no `&self` method replaces it.
unsafe impl StableFd for crate::eventfd::EventFd {}
// SAFETY: `SignalFd` owns its descriptor in a private `OwnedFd` field that is never
// reassigned (`set_signals` changes the mask of the same descriptor).
unsafe impl StableFd for crate::signal::SignalFd {}
// SAFETY: `SignalPipe` owns its read end in a private `PipeReader` field that is never
// reassigned; `PipeReader` is `StableFd` itself.
unsafe impl StableFd for crate::signal::SignalPipe {}
// SAFETY: `Pidfd` owns its descriptor in a private `OwnedFd` field that is never
// reassigned; it leaves only through `From<Pidfd> for OwnedFd`, which consumes it.
unsafe impl StableFd for crate::process::Pidfd {}

/// What tokio's `AsyncFd` holds: an ipcx value, seen as a raw descriptor.
#[derive(Debug)]
pub(crate) struct Registered<T>(T);

impl<T: AsFd> AsRawFd for Registered<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl<T> Registered<T> {
    /// The ipcx value.
    pub(crate) fn get(&self) -> &T {
        &self.0
    }
}

/// An ipcx value registered with the current tokio runtime's reactor, for readiness.
#[derive(Debug)]
pub(crate) struct Registration<T: StableFd> {
    fd: AsyncFd<Registered<T>>,
}

impl<T: StableFd> Registration<T> {
    /// Registers `inner` with the reactor of the current runtime for readable and
    /// writable readiness, or gives it back with the reason.
    ///
    /// The caller must have checked that a runtime is current: tokio panics otherwise
    /// (and when the runtime was built without its I/O driver).
    pub(crate) fn new(inner: T) -> Result<Registration<T>, (T, io::Error)> {
        // SAFETY:
        // - `T: StableFd`: the value keeps one descriptor, on one open file description,
        //   for as long as it lives, whatever `&self` methods are called on it;
        // - `Registration` lends the value out only as `&T` (`get_ref`, and `AsyncFd`'s
        //   shared methods through `async_fd`), so nothing can replace it while it is
        //   registered; it is handed back only by `into_inner`, after tokio deregisters it.
        let registered = unsafe {
            AsyncFd::register_with_interest(
                Registered(inner),
                Interest::READABLE | Interest::WRITABLE,
            )
        };
        match registered {
            Ok(fd) => Ok(Registration { fd }),
            Err(e) => {
                let (Registered(inner), cause) = e.into_parts();
                Err((inner, cause))
            }
        }
    }

    /// The registered value.
    pub(crate) fn get_ref(&self) -> &T {
        self.fd.get_ref().get()
    }

    /// The `AsyncFd`, for its readiness methods (shared access only).
    pub(crate) fn async_fd(&self) -> &AsyncFd<Registered<T>> {
        &self.fd
    }

    /// Deregisters the value and gives it back.
    pub(crate) fn into_inner(self) -> T {
        self.fd.into_inner().0
    }
}
