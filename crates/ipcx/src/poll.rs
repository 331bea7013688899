//! Waiting on many ipcx descriptors at once: pipes, FIFOs, sockets, POSIX message queues,
//! eventfds, signalfds and pidfds, with a timeout, reporting which are ready.
//!
//! A [`PollSet`] borrows anything that implements [`AsFd`] and waits with `poll(2)`.
//! Each [`Ready`] names an entry by the index [`PollSet::add`] returned, and says what it
//! is ready for, or that its peer hung up.
//!
//! ```
//! use std::time::Duration;
//! use ipcx::poll::{Interest, PollSet};
//!
//! let (rx, tx) = ipcx::pipe::pipe()?;
//! let (mine, theirs) = std::os::unix::net::UnixStream::pair()?;
//!
//! let mut set = PollSet::new();
//! let pipe = set.add(&rx, Interest::READABLE);
//! let sock = set.add(&mine, Interest::READABLE);
//!
//! assert!(set.try_wait()?.is_empty()); // nothing yet
//! tx.try_write(b"x")?;
//! drop(theirs); // the peer hangs up
//! let ready = set.wait_timeout(Duration::from_secs(5))?;
//! assert!(ready.iter().any(|r| r.index == pipe && r.readable));
//! assert!(ready.iter().any(|r| r.index == sock && r.hangup));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **A timeout is not an error here.** [`PollSet::wait_timeout`] returns an empty list when
//! the time runs out, as `poll(2)` returns 0: in an event loop, "nothing happened" is an
//! ordinary answer, to be met with other work, not a failure to be matched out of an
//! error. (The single-object `_timeout` calls of ipcx, which wait for one specific thing,
//! do return [`ErrorKind::TimedOut`].)
//!
//! Readiness is a hint: another process (or thread) may drain a queue or a pipe between
//! the report and your read, so read with the `try_` forms and treat
//! [`ErrorKind::WouldBlock`] as "go round again".
//!
//! For large or long-lived sets, use `epoll` through `mio` or tokio (features `mio`,
//! `tokio`); `poll(2)` scans the whole set on every call.
//!
//! # References
//! - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::time::Timespec;

use crate::error::{Error, ErrorKind, Result};
use crate::wait::Deadline;

/// What to wait for on one entry: [`READABLE`](Interest::READABLE),
/// [`WRITABLE`](Interest::WRITABLE), or both (`Interest::READABLE | Interest::WRITABLE`).
///
/// Hang-ups and errors are always reported, whatever the interest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Data to read, a connection to accept, a message queued, a process exited
    /// (`POLLIN`). Also asks for `POLLRDHUP`, so a socket peer that shut down its writing
    /// side shows as [`Ready::hangup`].
    pub const READABLE: Interest = Interest(1);
    /// Room to write or a message slot free (`POLLOUT`).
    pub const WRITABLE: Interest = Interest(2);

    /// Whether `READABLE` is set.
    pub fn is_readable(self) -> bool {
        self.0 & Interest::READABLE.0 != 0
    }

    /// Whether `WRITABLE` is set.
    pub fn is_writable(self) -> bool {
        self.0 & Interest::WRITABLE.0 != 0
    }

    fn flags(self) -> PollFlags {
        let mut flags = PollFlags::empty();
        if self.is_readable() {
            flags |= PollFlags::IN | PollFlags::RDHUP;
        }
        if self.is_writable() {
            flags |= PollFlags::OUT;
        }
        flags
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        self.0 |= other.0;
    }
}

/// One entry of a [`PollSet`] that is ready, and for what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Ready {
    /// The index [`PollSet::add`] returned for the entry.
    pub index: usize,
    /// A read would not block (`POLLIN`); at end of file too, where it returns 0.
    pub readable: bool,
    /// A write would not block (`POLLOUT`).
    pub writable: bool,
    /// The peer hung up (`POLLHUP`, or `POLLRDHUP` on a socket whose peer shut down
    /// writing): the write end of a pipe or FIFO closed, a socket peer gone. Data sent
    /// before the hang-up may still be there to read.
    pub hangup: bool,
    /// An error condition (`POLLERR`): for a pipe's write end, every reader has gone.
    pub error: bool,
}

/// A set of descriptors to wait on together, each with an [`Interest`].
///
/// The set borrows its entries for `'a`, so none can be closed while it may be polled.
///
/// # References
/// - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
#[derive(Default)]
pub struct PollSet<'a> {
    /// What `poll(2)` reads and fills in, one per entry.
    fds: Vec<PollFd<'a>>,
    /// The same descriptors, kept to rebuild an entry whose interest changes (a `PollFd`
    /// lends its descriptor only for its own lifetime).
    borrowed: Vec<BorrowedFd<'a>>,
}

impl<'a> PollSet<'a> {
    /// An empty set.
    pub fn new() -> PollSet<'a> {
        PollSet {
            fds: Vec::new(),
            borrowed: Vec::new(),
        }
    }

    /// Adds `source` (a pipe end, socket, message queue, pidfd, … anything [`AsFd`]) and
    /// returns its index, the number of entries added before it.
    pub fn add<F: AsFd + ?Sized>(&mut self, source: &'a F, interest: Interest) -> usize {
        self.add_fd(source.as_fd(), interest)
    }

    /// Adds a borrowed descriptor and returns its index.
    pub fn add_fd(&mut self, fd: BorrowedFd<'a>, interest: Interest) -> usize {
        self.fds
            .push(PollFd::from_borrowed_fd(fd, interest.flags()));
        self.borrowed.push(fd);
        self.fds.len() - 1
    }

    /// Changes what entry `index` waits for.
    ///
    /// # Panics
    /// If `index` was not returned by [`add`](PollSet::add) on this set.
    pub fn set_interest(&mut self, index: usize, interest: Interest) {
        self.fds[index] = PollFd::from_borrowed_fd(self.borrowed[index], interest.flags());
    }

    /// How many entries the set has.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether the set has no entries.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Waits until at least one entry is ready, for ever if need be, and returns the
    /// ready entries in index order.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty set (it would wait for ever), or for an
    /// entry whose descriptor cannot be polled (`POLLNVAL`: an `O_PATH` descriptor, or
    /// one that is not open; the message names its index);
    /// [`ErrorKind::LimitReached`] for a set larger than `RLIMIT_NOFILE`.
    #[doc(alias = "poll")]
    pub fn wait(&mut self) -> Result<Vec<Ready>> {
        if self.fds.is_empty() {
            return Err(Error::new("poll", ErrorKind::InvalidInput)
                .with_object("an empty PollSet")
                .with_hint(
                    "waiting on nothing would block for ever; add an entry or use wait_timeout",
                ));
        }
        self.wait_until(Deadline::Never)
    }

    /// Returns the entries ready now, without waiting (possibly none).
    ///
    /// # Errors
    /// As [`wait`](PollSet::wait), except that an empty set is allowed.
    #[doc(alias = "poll")]
    pub fn try_wait(&mut self) -> Result<Vec<Ready>> {
        self.wait_until(Deadline::Now)
    }

    /// Waits at most `timeout` for an entry to be ready. Returns the ready entries, or an
    /// empty list if the time ran out: see the [module docs](self) for why that is not an
    /// error. A signal that interrupts the wait neither ends it early nor stretches it.
    ///
    /// # Errors
    /// As [`wait`](PollSet::wait), except that an empty set is allowed (it sleeps).
    #[doc(alias = "poll")]
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Vec<Ready>> {
        self.wait_until(Deadline::after(timeout))
    }

    fn wait_until(&mut self, deadline: Deadline) -> Result<Vec<Ready>> {
        loop {
            // `last` marks the final, zero-timeout look once no time is left, so that an
            // entry ready exactly at the deadline is still reported.
            let (timeout, last) = match deadline {
                Deadline::Now => (Some(ZERO), true),
                Deadline::Never => (None, false),
                Deadline::At(at, _) => {
                    let left = at.saturating_duration_since(std::time::Instant::now());
                    let ts = Timespec::try_from(left).unwrap_or(MAX_TIMESPEC);
                    (Some(ts), left.is_zero())
                }
            };
            for fd in &mut self.fds {
                fd.clear_revents();
            }
            match rustix::event::poll(&mut self.fds, timeout.as_ref()) {
                Ok(0) if last => return Ok(Vec::new()),
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => return self.collect(),
                Err(e) => {
                    let err = Error::from_errno("poll", e.raw_os_error())
                        .with_object(format_args!("a PollSet of {} entries", self.fds.len()));
                    return Err(if e == Errno::INVAL {
                        err.with_kind(ErrorKind::LimitReached).with_hint(
                            "a poll set may not have more entries than RLIMIT_NOFILE allows",
                        )
                    } else {
                        err
                    });
                }
            }
        }
    }

    fn collect(&self) -> Result<Vec<Ready>> {
        let mut ready = Vec::new();
        for (index, fd) in self.fds.iter().enumerate() {
            let r = fd.revents();
            if r.is_empty() {
                continue;
            }
            if r.contains(PollFlags::NVAL) {
                return Err(Error::new("poll", ErrorKind::InvalidInput)
                    .with_object(format_args!("PollSet entry {index}"))
                    .with_hint(
                        "the descriptor cannot be polled (POLLNVAL): it is not open, or it is an \
                         O_PATH descriptor; leave it out of the set",
                    ));
            }
            ready.push(Ready {
                index,
                readable: r.contains(PollFlags::IN),
                writable: r.contains(PollFlags::OUT),
                hangup: r.intersects(PollFlags::HUP | PollFlags::RDHUP),
                error: r.contains(PollFlags::ERR),
            });
        }
        Ok(ready)
    }
}

impl fmt::Debug for PollSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollSet")
            .field("entries", &self.fds.len())
            .finish()
    }
}

const ZERO: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

const MAX_TIMESPEC: Timespec = Timespec {
    tv_sec: i64::MAX / 2,
    tv_nsec: 0,
};
