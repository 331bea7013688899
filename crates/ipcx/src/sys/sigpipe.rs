//! Writing to a pipe without letting `SIGPIPE` kill the process.
//!
//! Sockets take `MSG_NOSIGNAL`, but `write(2)` on a pipe or FIFO whose readers are gone
//! raises `SIGPIPE`, whose default action ends the process. Rust programs ignore `SIGPIPE`
//! at start-up, but a library cannot count on that: it may be loaded into a C program, or
//! a Rust program may restore the default. So, unless `SIGPIPE` is already ignored, the
//! write runs with `SIGPIPE` blocked in the calling thread, and a `SIGPIPE` that the write
//! itself raised is consumed before the mask is restored (the technique of
//! <https://www.mail-archive.com/openssl-dev@openssl.org/msg23917.html>, used by OpenSSL
//! and curl). Other threads are not affected.

use std::mem::MaybeUninit;

/// Runs `write` so that an `EPIPE` it causes is returned as an error and never delivers
/// `SIGPIPE` to the process. Reads the disposition on every call (one `sigaction`).
pub(crate) fn suppress<T>(write: impl FnOnce() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    if sigpipe_ignored() {
        return write();
    }
    suppress_blocked(write)
}

/// `SIGPIPE`'s disposition as a long-lived writer found it when it was made, so that its
/// writes cost no `sigaction` each (a system call per message is a measurable share of a
/// pipe round trip). Writers that hold one document that restoring `SIGPIPE`'s default
/// action after they were made is not seen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    ignored: bool,
}

impl Snapshot {
    /// Reads the disposition now.
    pub(crate) fn take() -> Snapshot {
        Snapshot {
            ignored: sigpipe_ignored(),
        }
    }

    /// As [`suppress`], trusting the disposition read by [`take`](Snapshot::take).
    pub(crate) fn suppress<T>(
        self,
        write: impl FnOnce() -> rustix::io::Result<T>,
    ) -> rustix::io::Result<T> {
        if self.ignored {
            write()
        } else {
            suppress_blocked(write)
        }
    }
}

/// Runs `write` with `SIGPIPE` blocked in this thread, consuming a `SIGPIPE` it raised.
fn suppress_blocked<T>(write: impl FnOnce() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY:
    // - every pointer is to a local `sigset_t` that outlives the calls;
    // - `sigemptyset` and `sigpending` initialise their argument, and `pthread_sigmask`
    //   initialises `old`, before anything reads them;
    // - the calls only change the calling thread's mask, restored below on every path.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        libc::sigemptyset(pending.as_mut_ptr());
        libc::sigpending(pending.as_mut_ptr());
        let was_pending = libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1;
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr());
        let result = write();
        if matches!(result, Err(rustix::io::Errno::PIPE)) && !was_pending {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            while libc::sigtimedwait(set.as_ptr(), std::ptr::null_mut(), &zero) == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
        result
    }
}

/// Whether the process ignores `SIGPIPE` (then a write can only fail with `EPIPE`).
fn sigpipe_ignored() -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY:
    // - a null `act` makes `sigaction` a pure query that changes nothing;
    // - `old` is a local the call fills in; it is read only when the call succeeded.
    unsafe {
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) == 0
            && old.assume_init().sa_sigaction == libc::SIG_IGN
    }
}
