//! eventfd: a kernel counter for wake-ups and counting between processes.
//!
//! An eventfd is a 64-bit counter behind a descriptor. A write adds to it; a read takes
//! the whole count and resets it to zero (or, in semaphore mode, takes one). It is the
//! cheapest way to wake another thread or process: no data is copied, many writes before
//! a read add up to one wake-up, and the descriptor can be polled with everything else.
//!
//! ```
//! use ipcx::eventfd::EventFd;
//!
//! let efd = EventFd::new(0)?;
//! efd.write(2)?;
//! efd.write(3)?;
//! assert_eq!(efd.read()?, 5); // writes add up; a read takes them all
//! assert_eq!(efd.try_read().unwrap_err().kind(), ipcx::ErrorKind::WouldBlock);
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # Sharing with another process
//!
//! The counter lives in the open file description, so every copy of the descriptor sees
//! the same counter: hand a child a copy ([`EventFd::try_clone`]) as its stdin or stdout
//! through [`std::process::Command`], or send one over a Unix socket with
//! [`UnixSocketExt::send_fds`](crate::unix::UnixSocketExt::send_fds). The receiver adopts
//! it with `EventFd::try_from(OwnedFd)`, which checks that it
//! really is an eventfd.
//!
//! # Limits
//!
//! The counter holds at most `u64::MAX - 1` ([`MAX_COUNT`]).
//!
//! - **Overflow**: a write of `u64::MAX` is refused by the kernel; ipcx refuses it with
//!   [`ErrorKind::InvalidInput`] before any system call.
//! - **Saturation**: a write that would take the counter past [`MAX_COUNT`] does not add
//!   anything. [`try_write`](EventFd::try_write) fails with [`ErrorKind::WouldBlock`],
//!   [`write_timeout`](EventFd::write_timeout) waits for a reader and then fails with
//!   [`ErrorKind::TimedOut`], and [`write`](EventFd::write) waits until a reader has made
//!   room. Nothing is lost and nothing wraps around.
//!
//! # Blocking mode
//!
//! An `EventFd` is always non-blocking underneath (`EFD_NONBLOCK`); the three forms of
//! each call (`read`, `try_read`, `read_timeout`) wait with `poll` and retry `EINTR` with
//! the time that remains. Because every copy of an eventfd shares one open file
//! description, and so one `O_NONBLOCK` flag, ipcx never makes a descriptor it created
//! blocking: a copy handed to a child stays non-blocking, and the parent's calls keep
//! working whatever the child does. A peer that wants to wait should adopt the descriptor
//! with `EventFd::try_from(OwnedFd)` or poll before reading.
//!
//! # References
//! - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFlags};
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::error::{Context, Error, ErrorKind, Result};
use crate::wait::{Backoff, Deadline, poll_now, retry, wait_fd};

/// The largest value the counter can hold: `u64::MAX - 1`.
pub const MAX_COUNT: u64 = u64::MAX - 1;

/// What `/proc/self/fd/N` links to for an eventfd.
const PROC_TARGET: &str = "anon_inode:[eventfd]";

/// The name eventfds go by in error messages.
const LABEL: &str = "eventfd";

/// An eventfd: a counter in the kernel that processes add to and take from.
///
/// Create one with [`EventFd::new`] (counter mode) or [`EventFd::semaphore`], share it
/// with another process as described in the [module docs](self), and wait on it with
/// `poll`, `mio` or tokio through [`AsFd`]: it is readable when the counter is above zero
/// and writable when at least 1 can be added.
///
/// # References
/// - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
#[derive(Debug)]
pub struct EventFd {
    /// Always `Some`, except inside `into_fd`, which consumes the `EventFd`.
    fd: Option<OwnedFd>,
    /// An adopted descriptor that was blocking: ipcx made it non-blocking, and makes it
    /// blocking again, for the other holders that expect it, when the last ipcx handle
    /// of it ([`try_clone`](EventFd::try_clone)s included) goes. Every copy shares one
    /// `O_NONBLOCK` flag, so restoring earlier would make the remaining handles' `try_`
    /// calls block.
    restore_blocking: Option<Arc<RestoreBlocking>>,
}

/// Makes an adopted eventfd blocking again when the last ipcx handle of it is dropped.
#[derive(Debug)]
struct RestoreBlocking(OwnedFd);

impl Drop for RestoreBlocking {
    fn drop(&mut self) {
        // F_SETFL on a descriptor we hold cannot fail for lack of permission; if it did,
        // the other holders would see EAGAIN, never lose a count.
        let _ = crate::wait::set_nonblocking(self.0.as_fd(), false);
    }
}

impl EventFd {
    /// Creates an eventfd in counter mode holding `initial`: a read takes the whole count
    /// and resets it to zero.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] when the process or the system is out of descriptors
    /// (`EMFILE`, `ENFILE`; the message names the limit and its value).
    ///
    /// # Examples
    ///
    /// ```
    /// let efd = ipcx::eventfd::EventFd::new(7)?;
    /// assert_eq!(efd.read()?, 7);
    /// # Ok::<(), ipcx::Error>(())
    /// ```
    #[doc(alias = "eventfd")]
    pub fn new(initial: u32) -> Result<EventFd> {
        EventFd::create(initial, EventfdFlags::empty())
    }

    /// Creates an eventfd in semaphore mode (`EFD_SEMAPHORE`) holding `initial`: each read
    /// returns 1 and takes 1 from the counter, so `n` writes of 1 wake `n` readers.
    ///
    /// # Errors
    /// As [`EventFd::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = ipcx::eventfd::EventFd::semaphore(2)?;
    /// assert_eq!(sem.read()?, 1);
    /// assert_eq!(sem.read()?, 1);
    /// assert!(sem.try_read().is_err()); // the count is used up
    /// # Ok::<(), ipcx::Error>(())
    /// ```
    #[doc(alias = "EFD_SEMAPHORE")]
    pub fn semaphore(initial: u32) -> Result<EventFd> {
        EventFd::create(initial, EventfdFlags::SEMAPHORE)
    }

    fn create(initial: u32, flags: EventfdFlags) -> Result<EventFd> {
        let flags = flags | EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
        let fd = rustix::event::eventfd(initial, flags).op("eventfd")?;
        Ok(EventFd {
            fd: Some(fd),
            restore_blocking: None,
        })
    }

    /// Adds `n` to the counter, waiting as long as it takes for room.
    ///
    /// A write of 0 succeeds without changing anything (and wakes nobody).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for `n == u64::MAX`, which the kernel can never accept,
    /// before any system call. When the counter would pass [`MAX_COUNT`] the call waits
    /// for a reader; see [saturation](self#limits).
    pub fn write(&self, n: u64) -> Result<()> {
        self.write_until(n, Deadline::Never)
    }

    /// Adds `n` to the counter if there is room now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when the counter would pass [`MAX_COUNT`] (nothing is
    /// added); [`ErrorKind::InvalidInput`] for `n == u64::MAX`.
    pub fn try_write(&self, n: u64) -> Result<()> {
        self.write_until(n, Deadline::Now)
    }

    /// Adds `n` to the counter, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when no reader made room in time (nothing is added);
    /// [`ErrorKind::InvalidInput`] for `n == u64::MAX`.
    pub fn write_timeout(&self, n: u64, timeout: Duration) -> Result<()> {
        self.write_until(n, Deadline::after(timeout))
    }

    fn write_until(&self, n: u64, deadline: Deadline) -> Result<()> {
        if n == u64::MAX {
            return Err(Error::new("write", ErrorKind::InvalidInput)
                .with_object(LABEL)
                .with_hint(
                    "u64::MAX (0xffffffffffffffff) is the one value an eventfd cannot add; \
                     the counter holds at most u64::MAX - 1",
                ));
        }
        let fd = self.fd();
        let bytes = n.to_ne_bytes();
        let mut backoff = Backoff::new();
        let result = loop {
            match rustix::io::write(fd, &bytes) {
                Ok(_) => break Ok(()),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {
                    // The kernel reports an eventfd writable when 1 more fits. A larger
                    // write can fail while it is "writable", and poll would then return
                    // at once for ever: sleep between attempts in that case instead.
                    let waited = if poll_now(fd, PollFlags::OUT).contains(PollFlags::OUT) {
                        backoff.sleep(deadline, "write", &LABEL)
                    } else {
                        wait_fd(fd, PollFlags::OUT, deadline, "write", &LABEL).map(drop)
                    };
                    if let Err(e) = waited {
                        break Err(e);
                    }
                }
                Err(e) => {
                    break Err(Error::from_errno("write", e.raw_os_error()).with_object(LABEL));
                }
            }
        };
        result.map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                let waited = e.hint().map(|h| format!("{h}; ")).unwrap_or_default();
                e.with_hint(format!(
                    "{waited}adding {n} would take the counter past its maximum u64::MAX - 1, \
                     where it saturates until a reader takes the count"
                ))
            }
            _ => e,
        })
    }

    /// Takes the count, waiting as long as it takes for it to be above zero. In counter
    /// mode this returns the whole count and resets it to zero; in semaphore mode it
    /// returns 1 and takes 1.
    pub fn read(&self) -> Result<u64> {
        self.read_until(Deadline::Never)
    }

    /// Takes the count if it is above zero now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when the counter is zero.
    pub fn try_read(&self) -> Result<u64> {
        self.read_until(Deadline::Now)
    }

    /// Takes the count, waiting at most `timeout` for it to be above zero.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when nothing was written in time.
    pub fn read_timeout(&self, timeout: Duration) -> Result<u64> {
        self.read_until(Deadline::after(timeout))
    }

    fn read_until(&self, deadline: Deadline) -> Result<u64> {
        let fd = self.fd();
        let mut buf = [0u8; 8];
        let n = retry(&[(fd, PollFlags::IN)], deadline, "read", &LABEL, || {
            rustix::io::read(fd, &mut buf)
        })
        .map_err(|e| {
            if e.kind() == ErrorKind::WouldBlock {
                e.with_hint("the counter is 0: nothing was written since the last read")
            } else {
                e
            }
        })?;
        if n != buf.len() {
            return Err(Error::new("read", ErrorKind::Corrupt)
                .with_object(LABEL)
                .with_hint(format!("the kernel returned {n} bytes instead of 8")));
        }
        Ok(u64::from_ne_bytes(buf))
    }

    /// Another `EventFd` for the same counter (`dup`, close-on-exec): the copy to hand to
    /// a child or keep in another thread.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] when the process is out of descriptors.
    pub fn try_clone(&self) -> Result<EventFd> {
        let fd = self.fd().try_clone_to_owned().op_on("dup", LABEL)?;
        Ok(EventFd {
            fd: Some(fd),
            restore_blocking: self.restore_blocking.clone(),
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Some(fd) => fd.as_fd(),
            None => unreachable!("only into_fd takes the descriptor, and it consumes the EventFd"),
        }
    }

    /// Hands the descriptor out, restoring the blocking mode an adopted one had.
    fn into_fd(mut self) -> OwnedFd {
        self.restore();
        match self.fd.take() {
            Some(fd) => fd,
            None => unreachable!("only into_fd takes the descriptor, and it consumes the EventFd"),
        }
    }

    fn restore(&mut self) {
        // The last handle's share runs the restore.
        drop(self.restore_blocking.take());
    }

    /// Adopts `fd` after checking that it is an eventfd, making it non-blocking.
    fn adopt(fd: OwnedFd) -> Result<EventFd> {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match std::fs::read_link(&link) {
            Ok(target) if target.as_os_str() == PROC_TARGET => {}
            Ok(target) => {
                return Err(Error::new("adopt", ErrorKind::InvalidInput)
                    .with_object(LABEL)
                    .with_hint(format!(
                        "the descriptor is {}, not an eventfd",
                        target.display()
                    )));
            }
            Err(e) => {
                return Err(Error::from_io("adopt", &e)
                    .with_kind(ErrorKind::Unsupported)
                    .with_object(LABEL)
                    .with_hint(format!(
                        "cannot read {link} to check that the descriptor is an eventfd: \
                         is /proc mounted?"
                    )));
            }
        }
        let flags = rustix::fs::fcntl_getfl(&fd).op_on("F_GETFL", LABEL)?;
        let mut restore_blocking = None;
        if !flags.contains(OFlags::NONBLOCK) {
            let restorer = fd.try_clone().op_on("dup", LABEL)?;
            rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK).op_on("F_SETFL", LABEL)?;
            restore_blocking = Some(Arc::new(RestoreBlocking(restorer)));
        }
        Ok(EventFd {
            fd: Some(fd),
            restore_blocking,
        })
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        self.restore();
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl From<EventFd> for OwnedFd {
    /// The descriptor. One ipcx created stays non-blocking (its copies share the flag);
    /// an adopted one gets back the blocking mode it came with.
    fn from(efd: EventFd) -> OwnedFd {
        efd.into_fd()
    }
}

impl From<EventFd> for Stdio {
    /// Hands the eventfd to a child process as its stdin, stdout or stderr; the child
    /// adopts it with `EventFd::try_from(OwnedFd)` on a copy of that descriptor.
    fn from(efd: EventFd) -> Stdio {
        Stdio::from(efd.into_fd())
    }
}

impl TryFrom<OwnedFd> for EventFd {
    type Error = Error;

    /// Adopts a descriptor received from another process (inherited, or over a Unix
    /// socket), after checking with `/proc/self/fd` that it is an eventfd.
    ///
    /// The open file description becomes non-blocking underneath, which every copy of the
    /// descriptor sees; if it was blocking, ipcx makes it blocking again when the
    /// `EventFd` is dropped or converted back into an `OwnedFd`. Whether it counts in
    /// semaphore mode was fixed when it was created.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for any other kind of descriptor (the message says what
    /// it is); [`ErrorKind::Unsupported`] when `/proc` is not mounted.
    fn try_from(fd: OwnedFd) -> Result<EventFd> {
        EventFd::adopt(fd)
    }
}

impl fmt::Display for EventFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(LABEL)
    }
}
