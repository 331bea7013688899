//! Deadlines and readiness waits shared by every blocking call.
//!
//! ipcx builds the three forms of every call (blocking, `try_`, `_timeout`) from one
//! loop: try the operation without waiting; on `EAGAIN`, wait with `poll` for readiness
//! until the deadline; on `EINTR`, go round again with the time that remains. A signal
//! therefore never surfaces as an error and never stretches a timeout. Where the kernel
//! can wait itself ([`retry_blocking`]: a blocking socket, a queue, a pipe end the channel
//! owns), the blocking form's attempt waits inside the call instead, one system call per
//! operation; on a descriptor that turns out non-blocking it falls back to the loop.

use std::fmt::Display;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result};

/// When a blocking call gives up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// Do not wait at all: the `try_` form.
    Now,
    /// Wait as long as it takes: the blocking form.
    Never,
    /// Wait until the instant; the duration is kept for the error message.
    At(Instant, Duration),
}

impl Deadline {
    /// A deadline `timeout` from now (one too far to represent waits for ever).
    pub(crate) fn after(timeout: Duration) -> Deadline {
        match Instant::now().checked_add(timeout) {
            Some(at) => Deadline::At(at, timeout),
            None => Deadline::Never,
        }
    }

    /// The deadline for a blocking (`true`) or non-blocking (`false`) default mode.
    pub(crate) fn blocking(block: bool) -> Deadline {
        if block {
            Deadline::Never
        } else {
            Deadline::Now
        }
    }

    /// The time left, `Ok(None)` for no limit, or the error to return when none is left.
    pub(crate) fn remaining(
        &self,
        op: &'static str,
        object: &dyn Display,
    ) -> Result<Option<Duration>> {
        match *self {
            Deadline::Now => Err(Error::from_errno(op, libc::EAGAIN).with_object(object)),
            Deadline::Never => Ok(None),
            Deadline::At(at, timeout) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Error::new(op, ErrorKind::TimedOut)
                        .with_object(object)
                        .with_hint(format!("no progress within {timeout:?}")))
                } else {
                    Ok(Some(left))
                }
            }
        }
    }
}

/// Waits until `fd` reports one of `events` (or an error or hang-up), retrying `EINTR`
/// with the remaining time.
pub(crate) fn wait_fd(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Deadline,
    op: &'static str,
    object: &dyn Display,
) -> Result<PollFlags> {
    loop {
        let timeout = deadline
            .remaining(op, object)?
            .map(|left| rustix::time::Timespec::try_from(left).unwrap_or(MAX_TIMESPEC));
        let mut fds = [PollFd::new(&fd, events)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => return Ok(fds[0].revents()),
            Err(e) => return Err(Error::from_errno("poll", e.raw_os_error()).with_object(object)),
        }
    }
}

/// Sets (`true`) or clears `O_NONBLOCK` on `fd`'s open file description, leaving its
/// other status flags as they are. Every holder of the description sees the change.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> rustix::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let flags = if nonblocking {
        flags | rustix::fs::OFlags::NONBLOCK
    } else {
        flags - rustix::fs::OFlags::NONBLOCK
    };
    rustix::fs::fcntl_setfl(fd, flags)
}

/// Polls `fd` once without waiting and returns what it reports.
pub(crate) fn poll_now(fd: BorrowedFd<'_>, events: PollFlags) -> PollFlags {
    let mut fds = [PollFd::new(&fd, events)];
    match poll(
        &mut fds,
        Some(&rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    ) {
        Ok(_) => fds[0].revents(),
        Err(_) => PollFlags::empty(),
    }
}

const MAX_TIMESPEC: rustix::time::Timespec = rustix::time::Timespec {
    tv_sec: i64::MAX / 2,
    tv_nsec: 0,
};

/// Runs a non-blocking `attempt` until it succeeds, the deadline passes, or it fails with
/// something other than `EAGAIN`/`EINTR`. Between attempts it waits, in turn, for each
/// `(fd, events)` in `waits` (an operation between two descriptors needs both ready).
pub(crate) fn retry<T>(
    waits: &[(BorrowedFd<'_>, PollFlags)],
    deadline: Deadline,
    op: &'static str,
    object: &dyn Display,
    mut attempt: impl FnMut() -> rustix::io::Result<T>,
) -> Result<T> {
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) if waits.is_empty() => {
                // Nothing to wait on: going round again would spin.
                return Err(Error::from_errno(op, libc::EAGAIN).with_object(object));
            }
            Err(Errno::AGAIN) => {
                for &(fd, events) in waits {
                    wait_fd(fd, events, deadline, op, object)?;
                }
            }
            Err(e) => return Err(Error::from_errno(op, e.raw_os_error()).with_object(object)),
        }
    }
}

/// As [`retry`], for operations that can also wait inside the kernel. `attempt(true)`
/// may block there and is used for the blocking form ([`Deadline::Never`]);
/// `attempt(false)` must not. On a blocking descriptor the blocking form is then one
/// system call per operation, where the readiness loop costs three (a failed attempt, a
/// `poll`, a second attempt), and its wake-up is the kernel's direct one rather than a
/// `poll` wait queue's. A blocking attempt that still says `EAGAIN` (the descriptor is
/// non-blocking after all) falls back to waiting with `poll`, so either mode is correct.
pub(crate) fn retry_blocking<T>(
    waits: &[(BorrowedFd<'_>, PollFlags)],
    deadline: Deadline,
    op: &'static str,
    object: &dyn Display,
    mut attempt: impl FnMut(bool) -> rustix::io::Result<T>,
) -> Result<T> {
    let block = matches!(deadline, Deadline::Never);
    retry(waits, deadline, op, object, || attempt(block))
}

/// Retries `attempt` after a growing sleep (1 ms up to 20 ms) while it fails with a
/// transient errno in `transient`, until the deadline. For waits the kernel gives no
/// readiness event for: a FIFO with no reader yet, a Unix socket backlog that is full.
pub(crate) fn retry_sleeping<T>(
    transient: &[Errno],
    deadline: Deadline,
    op: &'static str,
    object: &dyn Display,
    mut attempt: impl FnMut() -> rustix::io::Result<T>,
) -> Result<T> {
    let mut backoff = Backoff::new();
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(Errno::INTR) => continue,
            Err(e) if transient.contains(&e) => {
                if let Deadline::Now = deadline {
                    return Err(Error::from_errno(op, e.raw_os_error()).with_object(object));
                }
                backoff.sleep(deadline, op, object)?;
            }
            Err(e) => return Err(Error::from_errno(op, e.raw_os_error()).with_object(object)),
        }
    }
}

/// Sleeps between attempts when the kernel offers no readiness event to wait for:
/// 1 ms, doubling up to 20 ms, never past the deadline.
pub(crate) struct Backoff {
    pause: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            pause: Duration::from_millis(1),
        }
    }

    /// A backoff whose first pause is `first` (then doubling up to 20 ms), for waits
    /// that usually end within microseconds.
    pub(crate) fn starting_at(first: Duration) -> Backoff {
        Backoff { pause: first }
    }

    /// Sleeps the next pause, or fails with the deadline's error if no time is left.
    pub(crate) fn sleep(
        &mut self,
        deadline: Deadline,
        op: &'static str,
        object: &dyn Display,
    ) -> Result<()> {
        let left = deadline.remaining(op, object)?;
        std::thread::sleep(left.map_or(self.pause, |l| l.min(self.pause)));
        self.pause = (self.pause * 2).min(Duration::from_millis(20));
        Ok(())
    }
}
