//! Signals: masks, signalfd, sending (`sigqueue`, pidfd, `kill`), and handler-style
//! signals through signal-hook.
//!
//! Two ways to receive a signal, for two kinds of need:
//!
//! - **[`SignalFd`]** turns signals into reads on a descriptor, each with who sent it and
//!   the value [`sigqueue`] attached ([`SignalInfo`]). The signals must be blocked with
//!   [`SignalMask`] first, in *every* thread: see [the trap](#the-trap-a-thread-that-does-not-block-the-signal).
//! - **[`SignalPipe`]** registers ordinary handlers through `signal-hook` that wake a
//!   pipe, for signals like `SIGTERM`, `SIGINT`, `SIGHUP` and `SIGCHLD` that a program
//!   wants to notice wherever they land, with nothing to block. It reports which signals
//!   arrived, not how often nor from whom.
//!
//! And three ways to send one: [`send_via_pidfd`] (a pidfd names one process for its
//! whole life, so the signal can never reach a stranger that reused the PID),
//! [`sigqueue`] (carries a value, and real-time signals queue instead of merging), and
//! [`kill`], kept for completeness: a bare PID may already belong to another process.
//!
//! Signals are numbers (`libc::SIGTERM`, `signal_hook::consts::SIGTERM`); a
//! [`SignalSet`] holds several and checks them.
//!
//! ```
//! use ipcx::signal::{SignalFd, SignalMask, SignalSet};
//!
//! let set = SignalSet::new(&[libc::SIGUSR1])?;
//! let _mask = SignalMask::block(&set)?; // this thread no longer runs SIGUSR1's action
//! let sfd = SignalFd::new(&set)?;
//! # // A signal directed at this very thread, so the test harness's other threads
//! # // (which do not block SIGUSR1) cannot take it.
//! # signal_hook::low_level::raise(libc::SIGUSR1).expect("raise");
//! let info = sfd.read_timeout(std::time::Duration::from_secs(5))?;
//! assert_eq!(info.signal, libc::SIGUSR1);
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # The trap: a thread that does not block the signal
//!
//! A signal sent to a process (`kill`, `sigqueue`, `pidfd_send_signal`) goes to *one*
//! thread, chosen among those that do not block it. A signalfd only sees a signal that
//! stays pending, which it does only when every thread blocks it. So if any thread does
//! not block the signal, the kernel gives it to that thread, and the signal's disposition
//! runs instead: for `SIGTERM`, `SIGUSR1`, `SIGINT` and most others the default is to end
//! the whole process; with a handler installed the handler runs; and the signalfd never
//! sees it.
//!
//! Threads inherit the mask of the thread that creates them, so the rule is: **block the
//! signals with [`SignalMask::block`] in `main`, before any thread is spawned** (including
//! threads a runtime or library starts for you), and keep the guard for the life of the
//! program. [`SignalFd::new`] refuses a set the calling thread does not block, and
//! [`threads_not_blocking`] lists the threads that would take the signals instead. For a
//! child whose `main` you do not control, [`block_in_child`] blocks the signals before its
//! first instruction. When threads you cannot control already exist, use a
//! [`SignalPipe`], whose handlers work in whichever thread the signal lands.
//!
//! # References
//! - [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html)
//! - [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html)
//! - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
//! - [sigqueue(3)](https://man7.org/linux/man-pages/man3/sigqueue.3.html)
//! - [pidfd_send_signal(2)](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::process::Pid;

use crate::error::{Error, ErrorKind, Result};
use crate::pipe::{PipeOptions, PipeReader};
use crate::sys::signal as sys;
use crate::wait::{Deadline, retry, wait_fd};

/// The name of a signal as the man pages write it: `SIGTERM`, `SIGRTMIN+3`, or
/// `signal N` for a number Linux does not use.
///
/// # Examples
///
/// ```
/// assert_eq!(ipcx::signal::signal_name(libc::SIGTERM), "SIGTERM");
/// assert_eq!(ipcx::signal::signal_name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
/// ```
pub fn signal_name(sig: i32) -> String {
    if let Some(name) = signal_hook::low_level::signal_name(sig) {
        return name.to_string();
    }
    let (min, max) = (sys::sigrtmin(), sys::sigrtmax());
    if (min..=max).contains(&sig) {
        match sig - min {
            0 => "SIGRTMIN".to_string(),
            n => format!("SIGRTMIN+{n}"),
        }
    } else {
        format!("signal {sig}")
    }
}

/// Checks that `sig` is a signal number an application may use.
fn check_signal(op: &'static str, sig: i32) -> Result<()> {
    if sys::is_valid(sig) {
        return Ok(());
    }
    let hint = if sig == 0 {
        "0 is not a signal: sent, it only checks that a PID exists, which proves nothing \
         once PIDs are reused; watch a pidfd instead"
            .to_string()
    } else {
        format!(
            "valid signals are 1 to 31 and SIGRTMIN ({}) to SIGRTMAX ({}); \
             the numbers in between belong to the C library",
            sys::sigrtmin(),
            sys::sigrtmax()
        )
    };
    Err(Error::new(op, ErrorKind::InvalidInput)
        .with_object(format!("signal {sig}"))
        .with_hint(hint))
}

/// Refuses `SIGKILL` and `SIGSTOP`, which no mask, handler or signalfd can intercept:
/// the kernel would silently leave them out.
fn check_interceptable(op: &'static str, set: &SignalSet) -> Result<()> {
    for sig in [libc::SIGKILL, libc::SIGSTOP] {
        if set.contains(sig) {
            return Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(set)
                .with_hint(format!(
                    "{} cannot be blocked, caught or read: the kernel always applies it",
                    signal_name(sig)
                )));
        }
    }
    Ok(())
}

/// A set of signals (a `sigset_t`), every member checked to be a signal an application
/// may use.
///
/// # Examples
///
/// ```
/// use ipcx::signal::SignalSet;
///
/// let set = SignalSet::new(&[libc::SIGTERM, libc::SIGUSR1])?;
/// assert!(set.contains(libc::SIGTERM));
/// assert_eq!(set.iter().collect::<Vec<_>>(), [libc::SIGUSR1, libc::SIGTERM]);
/// assert_eq!(set.to_string(), "{SIGUSR1, SIGTERM}");
/// assert!(SignalSet::new(&[0]).is_err());
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [sigsetops(3)](https://man7.org/linux/man-pages/man3/sigsetops.3.html)
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SignalSet {
    /// Bit `n - 1` stands for signal `n`, as in the kernel's own set.
    mask: u64,
}

impl SignalSet {
    /// The empty set.
    pub const fn empty() -> SignalSet {
        SignalSet { mask: 0 }
    }

    /// The set of `signals`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a number that is not a signal an application may
    /// use: 0, negative, above `SIGRTMAX`, or one of the real-time signals the C library
    /// keeps for itself (32 and 33 with glibc).
    #[doc(alias = "sigaddset")]
    pub fn new(signals: &[i32]) -> Result<SignalSet> {
        let mut set = SignalSet::empty();
        for &sig in signals {
            set.add(sig)?;
        }
        Ok(set)
    }

    /// Adds `sig`.
    ///
    /// # Errors
    /// As [`SignalSet::new`].
    #[doc(alias = "sigaddset")]
    pub fn add(&mut self, sig: i32) -> Result<()> {
        check_signal("sigaddset", sig)?;
        self.mask |= sys::bit(sig);
        Ok(())
    }

    /// Removes `sig` (nothing happens if it is not a member or not a signal).
    #[doc(alias = "sigdelset")]
    pub fn remove(&mut self, sig: i32) {
        if (1..=sys::MAX_SIGNAL).contains(&sig) {
            self.mask &= !sys::bit(sig);
        }
    }

    /// Whether `sig` is in the set.
    #[doc(alias = "sigismember")]
    pub fn contains(&self, sig: i32) -> bool {
        (1..=sys::MAX_SIGNAL).contains(&sig) && self.mask & sys::bit(sig) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.mask == 0
    }

    /// How many signals the set holds.
    pub fn len(&self) -> usize {
        self.mask.count_ones() as usize
    }

    /// The signals in the set, lowest number first.
    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        let mask = self.mask;
        (1..=sys::MAX_SIGNAL).filter(move |&sig| mask & sys::bit(sig) != 0)
    }

    /// The signals in `self` that are not in `other`.
    pub fn difference(&self, other: &SignalSet) -> SignalSet {
        SignalSet {
            mask: self.mask & !other.mask,
        }
    }

    /// A set from a mask the kernel or the C library reported, keeping only the signals
    /// an application may use.
    fn from_mask(mask: u64) -> SignalSet {
        let mut set = SignalSet { mask };
        for sig in 1..=sys::MAX_SIGNAL {
            if !sys::is_valid(sig) {
                set.remove(sig);
            }
        }
        set
    }
}

impl fmt::Display for SignalSet {
    /// The members by name: `{SIGUSR1, SIGTERM}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, sig) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&signal_name(sig))?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalSet{self}")
    }
}

/// Blocks a set of signals in the calling thread, and unblocks them again when dropped.
///
/// A blocked signal is not lost: it stays pending until a [`SignalFd`] reads it or the
/// signal is unblocked, when its disposition runs. The guards of a thread count, per
/// signal, how many of them want it blocked: a signal is unblocked when the last guard
/// that wanted it is dropped, whatever the order of the drops, and a signal that was
/// blocked before any guard (by other code) is never unblocked by one. Changes made to
/// other signals in between are kept. A mask belongs to a thread, so the guard is neither
/// `Send` nor `Sync`.
///
/// Threads inherit the mask of the thread that spawns them: block in `main` before
/// spawning anything, and keep the guard (or call [`SignalMask::keep`]) for as long as a
/// signalfd reads the signals. See [the trap](self#the-trap-a-thread-that-does-not-block-the-signal).
///
/// Dropping the guard while one of its signals is pending runs that signal's disposition
/// at once: with the default action of most signals, the process ends. Read the pending
/// signals from the signalfd first.
///
/// # Examples
///
/// ```
/// use ipcx::signal::{SignalMask, SignalSet};
///
/// let set = SignalSet::new(&[libc::SIGUSR2])?;
/// {
///     let _guard = SignalMask::block(&set)?;
///     assert!(SignalMask::blocked()?.contains(libc::SIGUSR2));
/// }
/// assert!(!SignalMask::blocked()?.contains(libc::SIGUSR2));
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
#[derive(Debug)]
#[must_use = "the signals are unblocked again when the guard is dropped"]
pub struct SignalMask {
    /// The signals this guard holds a count on (see `HELD`): those it may unblock.
    added: SignalSet,
    /// A mask belongs to the thread that set it.
    _thread: PhantomData<*const ()>,
}

impl SignalMask {
    /// Blocks `set` in the calling thread, keeping the signals it blocked already.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a set with `SIGKILL` or `SIGSTOP`, which cannot be
    /// blocked.
    #[doc(alias = "pthread_sigmask")]
    #[doc(alias = "sigprocmask")]
    pub fn block(set: &SignalSet) -> Result<SignalMask> {
        check_interceptable("pthread_sigmask", set)?;
        let before = sys::block(set.mask)
            .map_err(|e| Error::from_errno("pthread_sigmask", e.raw_os_error()).with_object(set))?;
        let before = SignalSet::from_mask(before);
        let mut added = SignalSet::empty();
        HELD.with_borrow_mut(|held| {
            for sig in set.iter() {
                let count = &mut held[sig as usize];
                // Counted if another guard already holds it, or if this guard is the one
                // that blocked it; a signal other code had blocked is left to that code.
                if *count > 0 || !before.contains(sig) {
                    *count += 1;
                    let _ = added.add(sig); // from a valid set: cannot fail
                }
            }
        });
        Ok(SignalMask {
            added,
            _thread: PhantomData,
        })
    }

    /// The signals the calling thread blocks now.
    ///
    /// # Errors
    /// Only if the C library refuses the query, which it does not on Linux.
    pub fn blocked() -> Result<SignalSet> {
        let mask =
            sys::blocked().map_err(|e| Error::from_errno("pthread_sigmask", e.raw_os_error()))?;
        Ok(SignalSet::from_mask(mask))
    }

    /// The signals this guard holds blocked (those not blocked by other code before the
    /// first guard): each is unblocked when the last guard holding it is dropped.
    pub fn added(&self) -> SignalSet {
        self.added
    }

    /// Leaves the signals blocked for the rest of the thread's life (and in the threads it
    /// spawns from now on).
    pub fn keep(mut self) {
        // The counts stay taken, so no other guard's drop unblocks them either.
        self.added = SignalSet::empty();
    }
}

thread_local! {
    /// Per signal, how many live guards of this thread hold it blocked.
    static HELD: std::cell::RefCell<[u32; 65]> = const { std::cell::RefCell::new([0; 65]) };
}

impl Drop for SignalMask {
    fn drop(&mut self) {
        let mut release = SignalSet::empty();
        HELD.with_borrow_mut(|held| {
            for sig in self.added.iter() {
                let count = &mut held[sig as usize];
                *count = count.saturating_sub(1);
                if *count == 0 {
                    let _ = release.add(sig); // from a valid set: cannot fail
                }
            }
        });
        if !release.is_empty() {
            // SIG_UNBLOCK of signals this thread blocked cannot fail.
            let _ = sys::unblock(release.mask);
        }
    }
}

/// The signals pending for the calling thread or the process: sent while blocked, and
/// not yet read or delivered.
///
/// # References
/// - [sigpending(2)](https://man7.org/linux/man-pages/man2/sigpending.2.html)
#[doc(alias = "sigpending")]
pub fn pending() -> SignalSet {
    SignalSet::from_mask(sys::pending())
}

/// A thread of this process that does not block some signals of a set: a process-directed
/// signal may be delivered to it instead of waiting for a [`SignalFd`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnblockedThread {
    /// The thread id (`gettid`).
    pub tid: u32,
    /// The thread's name (`/proc/self/task/<tid>/comm`), at most 15 bytes.
    pub name: String,
    /// The signals of the set the thread does not block.
    pub unblocked: SignalSet,
}

impl fmt::Display for UnblockedThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread {} ({:?}) does not block {}",
            self.tid, self.name, self.unblocked
        )
    }
}

/// Lists the threads of this process that do not block every signal of `set`, from
/// `SigBlk` in `/proc/self/task/*/status`: the threads a process-directed signal of `set`
/// may be delivered to instead of a [`SignalFd`]. An empty list means the set is safe to
/// read through a signalfd (until a thread changes its mask or a new thread is started
/// from one that does not block the set).
///
/// # Errors
/// [`ErrorKind::Unsupported`] when `/proc` is not mounted.
///
/// # Examples
///
/// ```
/// use ipcx::signal::{SignalMask, SignalSet, threads_not_blocking};
///
/// let set = SignalSet::new(&[libc::SIGUSR1])?;
/// let _mask = SignalMask::block(&set)?;
/// let me = rustix::thread::gettid().as_raw_nonzero().get() as u32;
/// // This thread blocks SIGUSR1, so it is not listed.
/// assert!(threads_not_blocking(&set)?.iter().all(|t| t.tid != me));
/// # Ok::<(), ipcx::Error>(())
/// ```
pub fn threads_not_blocking(set: &SignalSet) -> Result<Vec<UnblockedThread>> {
    let op = "read /proc/self/task";
    let dir = std::fs::read_dir("/proc/self/task").map_err(|e| {
        Error::from_io(op, &e)
            .with_kind(ErrorKind::Unsupported)
            .with_hint("the thread masks are read from /proc: is /proc mounted?")
    })?;
    let mut found = Vec::new();
    for entry in dir {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A thread that exited since the listing has no status any more: skip it.
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let mut name = String::new();
        let mut blocked = None;
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("Name:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("SigBlk:") {
                blocked = u64::from_str_radix(v.trim(), 16).ok();
            }
        }
        let Some(blocked) = blocked else {
            return Err(Error::new(op, ErrorKind::Unsupported)
                .with_object(entry.path().display())
                .with_hint("no readable SigBlk line in the thread's status"));
        };
        let unblocked = set.difference(&SignalSet::from_mask(blocked));
        if !unblocked.is_empty() {
            found.push(UnblockedThread {
                tid,
                name,
                unblocked,
            });
        }
    }
    found.sort_by_key(|t| t.tid);
    Ok(found)
}

/// Who sent a signal, from its `si_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalSource {
    /// `kill`, or `pidfd_send_signal` without a siginfo (`SI_USER`).
    Kill,
    /// `sigqueue`, with a value (`SI_QUEUE`).
    Queue,
    /// `tgkill`, `pthread_kill` or `raise`, aimed at one thread (`SI_TKILL`).
    Thread,
    /// A POSIX timer expired (`SI_TIMER`).
    Timer,
    /// A POSIX message queue received a message while registered with `mq_notify`
    /// (`SI_MESGQ`); the value is the one given at registration.
    MessageQueue,
    /// The kernel itself: `SIGCHLD` for a child's exit, `SIGPIPE`, a fault, ….
    Kernel,
    /// Another negative `si_code`, given as is.
    Other(i32),
}

/// A signal read from a [`SignalFd`]: which, who sent it, and what it carried.
///
/// # References
/// - [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html) (`struct
///   signalfd_siginfo`)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalInfo {
    /// The signal number (`ssi_signo`).
    pub signal: i32,
    /// How it was sent (`ssi_code`); see [`SignalInfo::source`].
    pub code: i32,
    /// The sending process for signals a process sent, or the child for `SIGCHLD`
    /// (`ssi_pid`), as seen from this PID namespace (0 when the sender is outside it).
    pub pid: u32,
    /// The real user id of the sender (`ssi_uid`).
    pub uid: u32,
    /// The integer [`sigqueue`] attached (`ssi_int`); 0 for other sources.
    pub value: i32,
    /// The same value as a pointer-sized integer (`ssi_ptr`), for senders that queue a
    /// pointer rather than an `int`.
    pub value_ptr: u64,
    /// For `SIGCHLD`: the exit status or the signal that ended the child (`ssi_status`).
    pub status: i32,
    /// An error number the signal carries, rarely set (`ssi_errno`).
    pub errno: i32,
}

impl SignalInfo {
    /// Who sent the signal.
    pub fn source(&self) -> SignalSource {
        match self.code {
            sys::SI_USER => SignalSource::Kill,
            sys::SI_QUEUE => SignalSource::Queue,
            sys::SI_TKILL => SignalSource::Thread,
            libc::SI_TIMER => SignalSource::Timer,
            libc::SI_MESGQ => SignalSource::MessageQueue,
            code if code > 0 || code == sys::SI_KERNEL => SignalSource::Kernel,
            code => SignalSource::Other(code),
        }
    }

    fn from_raw(raw: sys::RawSigInfo) -> SignalInfo {
        SignalInfo {
            signal: raw.signo as i32,
            code: raw.code,
            pid: raw.pid,
            uid: raw.uid,
            value: raw.int,
            value_ptr: raw.ptr,
            status: raw.status,
            errno: raw.errno,
        }
    }
}

impl fmt::Display for SignalInfo {
    /// For example `SIGUSR1 from pid 4242 (uid 1000) by sigqueue with value 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", signal_name(self.signal))?;
        let source = self.source();
        if source != SignalSource::Kernel {
            write!(f, " from pid {} (uid {})", self.pid, self.uid)?;
        }
        match source {
            SignalSource::Kill => f.write_str(" by kill or pidfd_send_signal"),
            SignalSource::Queue => write!(f, " by sigqueue with value {}", self.value),
            SignalSource::Thread => f.write_str(" by tgkill"),
            SignalSource::Timer => f.write_str(" by a timer"),
            SignalSource::MessageQueue => f.write_str(" by mq_notify"),
            SignalSource::Kernel => write!(f, " from the kernel (code {})", self.code),
            SignalSource::Other(code) => write!(f, " (code {code})"),
        }
    }
}

/// A descriptor that receives signals as reads: `signalfd`, close-on-exec and
/// non-blocking underneath.
///
/// Each read returns one pending signal with who sent it ([`SignalInfo`]), for the
/// signals of its set that are pending for the process or for the thread that reads. It
/// is readable when one is pending, so it can be polled with everything else.
///
/// **The signals must be blocked in every thread**, or a thread that does not block them
/// takes them and the signalfd never sees them: see [the
/// trap](self#the-trap-a-thread-that-does-not-block-the-signal). `SignalFd::new` checks
/// the calling thread; [`SignalFd::threads_not_blocking`] checks the others.
///
/// Standard signals (1 to 31) do not queue: several sent before a read arrive as one.
/// Real-time signals (`SIGRTMIN` and up) queue, each with its own value, up to the
/// sender's `RLIMIT_SIGPENDING`. A signal sent to one thread (`pthread_kill`) is only
/// readable from that thread.
///
/// # References
/// - [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html)
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
    set: SignalSet,
    label: String,
}

impl SignalFd {
    /// Creates a signalfd for `set`, which the calling thread must already block.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the set is empty, holds `SIGKILL` or `SIGSTOP`, or
    /// has a signal the calling thread does not block (the message names it and says how
    /// to block it); [`ErrorKind::LimitReached`] when out of descriptors.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcx::signal::{SignalFd, SignalSet};
    ///
    /// let set = SignalSet::new(&[libc::SIGWINCH])?;
    /// // Not blocked yet: refused, because SIGWINCH would never reach the signalfd.
    /// let err = SignalFd::new(&set).unwrap_err();
    /// assert_eq!(err.kind(), ipcx::ErrorKind::InvalidInput);
    /// # Ok::<(), ipcx::Error>(())
    /// ```
    #[doc(alias = "signalfd")]
    pub fn new(set: &SignalSet) -> Result<SignalFd> {
        check_readable(set)?;
        let fd = sys::signalfd(set.mask)
            .map_err(|e| Error::from_errno("signalfd", e.raw_os_error()).with_object(set))?;
        Ok(SignalFd {
            fd,
            set: *set,
            label: format!("signalfd {set}"),
        })
    }

    /// The signals this signalfd reads.
    pub fn signals(&self) -> SignalSet {
        self.set
    }

    /// Changes the signals this signalfd reads, with the checks of [`SignalFd::new`].
    /// Signals already pending that are in the new set can be read at once.
    ///
    /// # Errors
    /// As [`SignalFd::new`].
    pub fn set_signals(&mut self, set: &SignalSet) -> Result<()> {
        check_readable(set)?;
        sys::signalfd_set_mask(self.fd.as_fd(), set.mask)
            .map_err(|e| Error::from_errno("signalfd", e.raw_os_error()).with_object(set))?;
        self.set = *set;
        self.label = format!("signalfd {set}");
        Ok(())
    }

    /// Reads the next signal, waiting as long as it takes.
    pub fn read(&self) -> Result<SignalInfo> {
        self.read_until(Deadline::Never)
    }

    /// Reads a signal that is pending now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when none is pending.
    pub fn try_read(&self) -> Result<SignalInfo> {
        self.read_until(Deadline::Now)
    }

    /// Reads the next signal, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when none arrived in time.
    pub fn read_timeout(&self, timeout: Duration) -> Result<SignalInfo> {
        self.read_until(Deadline::after(timeout))
    }

    fn read_until(&self, deadline: Deadline) -> Result<SignalInfo> {
        let fd = self.fd.as_fd();
        let mut buf = [0u8; sys::SIGINFO_SIZE];
        let n = retry(
            &[(fd, PollFlags::IN)],
            deadline,
            "read",
            &self.label,
            || rustix::io::read(fd, &mut buf),
        )
        .map_err(|e| {
            if e.kind() == ErrorKind::WouldBlock {
                e.with_hint(
                    "no signal of the set is pending for this thread or the process \
                     (a thread that does not block the set may have taken one: see \
                     SignalFd::threads_not_blocking)",
                )
            } else {
                e
            }
        })?;
        if n != buf.len() {
            return Err(Error::new("read", ErrorKind::Corrupt)
                .with_object(&self.label)
                .with_hint(format!(
                    "the kernel returned {n} bytes instead of one {}-byte signalfd_siginfo",
                    buf.len()
                )));
        }
        Ok(SignalInfo::from_raw(sys::decode_siginfo(&buf)))
    }

    /// The threads of this process that do not block every signal of this signalfd, and
    /// so may take them instead; see [`threads_not_blocking`].
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] when `/proc` is not mounted.
    pub fn threads_not_blocking(&self) -> Result<Vec<UnblockedThread>> {
        threads_not_blocking(&self.set)
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<SignalFd> for OwnedFd {
    fn from(sfd: SignalFd) -> OwnedFd {
        sfd.fd
    }
}

impl fmt::Display for SignalFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// The checks of [`SignalFd::new`]: a non-empty set of signals that can be read, all
/// blocked by the calling thread.
fn check_readable(set: &SignalSet) -> Result<()> {
    if set.is_empty() {
        return Err(Error::new("signalfd", ErrorKind::InvalidInput)
            .with_object(set)
            .with_hint("the set is empty: no signal would ever be read"));
    }
    check_interceptable("signalfd", set)?;
    let unblocked = set.difference(&SignalMask::blocked()?);
    if !unblocked.is_empty() {
        return Err(Error::new("signalfd", ErrorKind::InvalidInput)
            .with_object(set)
            .with_hint(format!(
                "this thread does not block {unblocked}, so such a signal would run its \
                 default action (for most, ending the process) or its handler instead of \
                 reaching the signalfd; block the set with SignalMask::block first, in main \
                 before spawning any thread (threads inherit the mask; a signal sent to the \
                 process goes to any thread that does not block it)"
            )));
    }
    Ok(())
}

/// A PID as the kernel wants it: positive and within `pid_t`.
fn target(op: &'static str, pid: u32) -> Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| {
            Error::new(op, ErrorKind::InvalidInput)
                .with_object(format!("pid {pid}"))
                .with_hint(if pid == 0 {
                    "pid 0 means the caller's whole process group; ipcx sends to one process"
                } else {
                    "not a valid process id (above i32::MAX)"
                })
        })
}

/// Explains a failed send to `pid` (`None` when sent through a pidfd).
fn send_error(op: &'static str, errno: Errno, pid: Option<u32>, sig: i32) -> Error {
    let object = pid.map_or_else(|| "pidfd".to_string(), |pid| format!("pid {pid}"));
    let err = Error::from_errno(op, errno.raw_os_error()).with_object(object);
    match errno {
        Errno::SRCH => err.with_hint(format!(
            "no such process: it has exited and been reaped, or never existed, so {} went \
             nowhere",
            signal_name(sig)
        )),
        Errno::PERM => err.with_hint(
            "the process belongs to another user: sending needs the same real or effective \
             uid, or CAP_KILL",
        ),
        Errno::AGAIN => {
            // The kernel counts queued signals per user of the receiver, against the
            // receiver's RLIMIT_SIGPENDING; /proc shows both as SigQ "queued/limit".
            let sigq = pid
                .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
                .and_then(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("SigQ:").map(|v| v.trim().to_string()))
                })
                .map_or_else(String::new, |q| format!(", SigQ queued/limit now {q}"));
            err.with_kind(ErrorKind::LimitReached).with_hint(format!(
                "the receiver's user has as many signals queued as the receiver's \
                 RLIMIT_SIGPENDING allows{sigq}; the receiver must read some first, or raise \
                 its limit"
            ))
        }
        _ => err,
    }
}

/// Sends `sig` to process `pid` (`kill`).
///
/// **Prefer [`send_via_pidfd`]**: between the moment a PID was learned and the call, the
/// process may have exited and the PID been given to an unrelated process, which then
/// receives the signal. Use `kill` only for a PID that cannot be reused in between: your
/// own child that you have not yet waited for.
///
/// # Errors
/// [`ErrorKind::PeerGone`] (`ESRCH`) when no such process exists;
/// [`ErrorKind::PermissionDenied`] when it belongs to another user;
/// [`ErrorKind::InvalidInput`] for pid 0 (a process group) or an invalid signal.
///
/// # References
/// - [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html)
pub fn kill(pid: u32, sig: i32) -> Result<()> {
    check_signal("kill", sig)?;
    let p = target("kill", pid)?;
    sys::kill(p, sig).map_err(|e| send_error("kill", e, Some(pid), sig))
}

/// Sends `sig` with the integer `value` to process `pid` (`sigqueue`). The receiver's
/// [`SignalInfo::value`] holds it, and [`SignalInfo::source`] is
/// [`SignalSource::Queue`].
///
/// Real-time signals (`SIGRTMIN + n`) queue: each send is delivered, with its own value,
/// in order. A standard signal sent again before the first was read is merged, and only
/// the first value survives. The PID caveat of [`kill`] applies.
///
/// # Errors
/// [`ErrorKind::LimitReached`] (`EAGAIN`) when the queue of pending real-time signals is
/// full (`RLIMIT_SIGPENDING`, named with its value); otherwise as [`kill`].
///
/// # References
/// - [sigqueue(3)](https://man7.org/linux/man-pages/man3/sigqueue.3.html)
#[doc(alias = "rt_sigqueueinfo")]
pub fn sigqueue(pid: u32, sig: i32, value: i32) -> Result<()> {
    check_signal("sigqueue", sig)?;
    let p = target("sigqueue", pid)?;
    sys::sigqueue(p, sig, value).map_err(|e| send_error("sigqueue", e, Some(pid), sig))
}

/// Sends `sig` to the process a pidfd refers to (`pidfd_send_signal`).
///
/// A pidfd names one process for as long as it is open, even after the process has exited
/// and its PID was given to another, so the signal can never reach the wrong process:
/// once the process has exited the call fails with [`ErrorKind::PeerGone`] and nothing is
/// sent (even while it is a zombie, which the kernel would let accept the signal and
/// ignore it). Signal 0 probes whether the process is still running. Get a pidfd from
/// [`Pidfd`](crate::process::Pidfd) right after spawning a child (or from
/// [`UnixSocketExt::peer_pidfd`](crate::unix::UnixSocketExt::peer_pidfd)).
///
/// # Errors
/// [`ErrorKind::PeerGone`] when the process has exited;
/// [`ErrorKind::PermissionDenied`] when it belongs to another user;
/// [`ErrorKind::InvalidInput`] when `pidfd` is not a pidfd or `sig` not a signal;
/// [`ErrorKind::Unsupported`] on kernels before Linux 5.1.
///
/// # References
/// - [pidfd_send_signal(2)](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
#[doc(alias = "pidfd_send_signal")]
pub fn send_via_pidfd(pidfd: impl AsFd, sig: i32) -> Result<()> {
    crate::process::send_signal_fd(pidfd.as_fd(), sig, "pidfd")
}

/// Makes the child that `cmd` starts block `set` from its first instruction, so every
/// thread it ever creates blocks it too: the way to give a signalfd to a program whose
/// `main` spawns threads before it could block anything (a runtime, a test harness).
///
/// The child must expect this: a blocked `SIGTERM` no longer ends a program that does not
/// read it from a signalfd. (std clears the mask a child inherits; this runs after that.)
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a set with `SIGKILL` or `SIGSTOP`.
///
/// # Examples
///
/// ```
/// use std::process::Command;
/// use ipcx::signal::{SignalSet, block_in_child};
///
/// let mut cmd = Command::new("grep");
/// cmd.args(["SigBlk", "/proc/self/status"]);
/// block_in_child(&mut cmd, &SignalSet::new(&[libc::SIGUSR1])?)?;
/// let out = cmd.output().expect("run grep");
/// assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SigBlk:\t0000000000000200");
/// # Ok::<(), ipcx::Error>(())
/// ```
pub fn block_in_child(cmd: &mut Command, set: &SignalSet) -> Result<()> {
    check_interceptable("pthread_sigmask", set)?;
    sys::block_in_child(cmd, set.mask);
    Ok(())
}

/// Signals signal-hook's handlers for them cannot intercept, or must not: `SIGKILL` and
/// `SIGSTOP` cannot be caught, and a handler that returns from `SIGILL`, `SIGFPE` or
/// `SIGSEGV` re-runs the faulting instruction for ever.
const NOT_FOR_HANDLERS: &[i32] = signal_hook::consts::FORBIDDEN;

/// Handler-style signals through `signal-hook`: a pollable pipe that reports which of a
/// set of signals arrived.
///
/// `register` installs, through signal-hook, a handler for each signal that records it
/// and writes a byte into a pipe; the read end is this type's descriptor, readable when a
/// signal arrived. Handlers run in whichever thread the kernel picks, so nothing needs to
/// be blocked, and threads started by libraries do not matter: this is the choice for
/// `SIGTERM`, `SIGINT`, `SIGHUP` and `SIGCHLD` in a program with threads it does not
/// control.
///
/// **Signals coalesce.** A read reports *which* signals arrived since the last read, not
/// how many times nor from whom (the kernel already merges a standard signal sent twice
/// before it is handled, and a full pipe merges wake-ups). For `SIGCHLD`, reap every
/// exited child with `waitpid`/`try_wait` on each report. For counts, senders and values,
/// use a [`SignalFd`]. A signal blocked in every thread never reaches a handler: do not
/// block what a `SignalPipe` watches.
///
/// Dropping it unregisters its handlers. signal-hook then leaves its dispatcher installed
/// with no action, so **the default action does not come back**: after the drop, a
/// `SIGTERM` no longer ends the process, it is ignored. Keep the `SignalPipe` for as long
/// as the program runs, or exit on the signal yourself. Installing handlers also means
/// system calls elsewhere in the program may be interrupted (`EINTR`); signal-hook sets
/// `SA_RESTART`, so most are restarted by the kernel.
///
/// # Examples
///
/// ```
/// use ipcx::signal::SignalPipe;
///
/// let signals = SignalPipe::register(&[libc::SIGUSR2])?;
/// signal_hook::low_level::raise(libc::SIGUSR2).expect("raise");
/// let arrived = signals.read_timeout(std::time::Duration::from_secs(5))?;
/// assert!(arrived.contains(libc::SIGUSR2));
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [signal-hook](https://docs.rs/signal-hook)'s `low_level::pipe` and `flag`
/// - [signal-safety(7)](https://man7.org/linux/man-pages/man7/signal-safety.7.html)
#[derive(Debug)]
pub struct SignalPipe {
    /// signal-hook's registrations, removed on drop. Each owns a copy of the write end,
    /// closed when it is removed.
    ids: Vec<signal_hook::SigId>,
    /// One flag per signal, set by its handler before it writes to the pipe.
    flags: Vec<(i32, Arc<AtomicBool>)>,
    reader: PipeReader,
    set: SignalSet,
    label: String,
}

impl SignalPipe {
    /// Installs handlers for `signals` and returns the pipe they report to.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a number that is not a signal, or for `SIGKILL`,
    /// `SIGSTOP`, `SIGILL`, `SIGFPE` and `SIGSEGV` (which a handler cannot or must not
    /// take); [`ErrorKind::LimitReached`] when out of descriptors.
    #[doc(alias = "sigaction")]
    pub fn register(signals: &[i32]) -> Result<SignalPipe> {
        let set = SignalSet::new(signals)?;
        if set.is_empty() {
            return Err(Error::new("sigaction", ErrorKind::InvalidInput)
                .with_hint("no signals given: the pipe would never become readable"));
        }
        for sig in set.iter() {
            if NOT_FOR_HANDLERS.contains(&sig) {
                return Err(Error::new("sigaction", ErrorKind::InvalidInput)
                    .with_object(signal_name(sig))
                    .with_hint(
                        "SIGKILL and SIGSTOP cannot be caught, and a handler for SIGILL, SIGFPE \
                         or SIGSEGV would return to the faulting instruction for ever",
                    ));
            }
        }
        let (reader, writer) = PipeOptions::new().nonblocking(true).create()?;
        let writer = OwnedFd::from(writer);
        let label = format!("signal pipe {set}");
        let mut pipe = SignalPipe {
            ids: Vec::new(),
            flags: Vec::new(),
            reader,
            set,
            label,
        };
        // On any error below, dropping `pipe` removes what was registered so far.
        for sig in set.iter() {
            let flag = Arc::new(AtomicBool::new(false));
            let hook_error =
                |e: std::io::Error| Error::from_io("sigaction", &e).with_object(signal_name(sig));
            // The flag's action is registered first, so it runs first in the handler:
            // the flag is set before the byte that wakes the reader is written.
            pipe.ids
                .push(signal_hook::flag::register(sig, flag.clone()).map_err(hook_error)?);
            pipe.flags.push((sig, flag));
            let copy = writer.try_clone().map_err(|e| Error::from_io("dup", &e))?;
            pipe.ids
                .push(signal_hook::low_level::pipe::register(sig, copy).map_err(hook_error)?);
        }
        Ok(pipe)
    }

    /// The signals this pipe reports.
    pub fn signals(&self) -> SignalSet {
        self.set
    }

    /// Waits as long as it takes for a signal, and returns the signals that arrived since
    /// the last read.
    pub fn read(&self) -> Result<SignalSet> {
        self.read_until(Deadline::Never)
    }

    /// Returns the signals that arrived since the last read.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when none did.
    pub fn try_read(&self) -> Result<SignalSet> {
        self.read_until(Deadline::Now)
    }

    /// Waits at most `timeout` for a signal, and returns the signals that arrived since
    /// the last read.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when none arrived in time.
    pub fn read_timeout(&self, timeout: Duration) -> Result<SignalSet> {
        self.read_until(Deadline::after(timeout))
    }

    fn read_until(&self, deadline: Deadline) -> Result<SignalSet> {
        let mut buf = [0u8; 64];
        loop {
            // Empty the pipe first, then take the flags: a signal that lands in between
            // leaves its byte for the next read (a spurious wake-up), never a lost flag.
            loop {
                match self.reader.try_read(&mut buf) {
                    Ok(0) => {
                        // Only possible if every handler's write end were closed, which
                        // happens on drop: report it rather than poll a hung-up pipe.
                        return Err(Error::new("read", ErrorKind::PeerGone)
                            .with_object(&self.label)
                            .with_hint("the signal handlers' end of the pipe is closed"));
                    }
                    Ok(n) if n == buf.len() => continue,
                    Ok(_) => break,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            let mut arrived = SignalSet::empty();
            for (sig, flag) in &self.flags {
                if flag.swap(false, Ordering::AcqRel) {
                    arrived.mask |= sys::bit(*sig);
                }
            }
            if !arrived.is_empty() {
                return Ok(arrived);
            }
            wait_fd(
                self.reader.as_fd(),
                PollFlags::IN,
                deadline,
                "read",
                &self.label,
            )
            .map_err(|e| {
                if e.kind() == ErrorKind::WouldBlock {
                    e.with_hint("none of the signals arrived since the last read")
                } else {
                    e
                }
            })?;
        }
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        // Removing the actions closes signal-hook's copies of the write end; the read end
        // is closed after, so a handler never writes to a pipe without a reader.
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl AsFd for SignalPipe {
    /// The read end: readable when a signal arrived.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }
}

impl fmt::Display for SignalPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_checks_numbers_and_prints_names() {
        let set = SignalSet::new(&[libc::SIGTERM, libc::SIGUSR1, sys::sigrtmin() + 1])
            .unwrap_or_default();
        assert_eq!(set.len(), 3);
        assert_eq!(set.to_string(), "{SIGUSR1, SIGTERM, SIGRTMIN+1}");
        for bad in [0, -1, 32, 33, 65, 1000] {
            let err = SignalSet::new(&[bad]).err();
            assert_eq!(
                err.map(|e| e.kind()),
                Some(ErrorKind::InvalidInput),
                "{bad}"
            );
        }
        let mut set = set;
        set.remove(libc::SIGTERM);
        set.remove(99);
        assert!(!set.contains(libc::SIGTERM) && set.contains(libc::SIGUSR1));
        assert!(!set.contains(0) && !set.contains(200));
    }

    #[test]
    fn nested_masks_restore_only_what_they_added() {
        let usr2 = SignalSet::new(&[libc::SIGUSR2]).unwrap_or_default();
        let both = SignalSet::new(&[libc::SIGUSR2, libc::SIGWINCH]).unwrap_or_default();
        let outer = SignalMask::block(&usr2).ok();
        let inner = SignalMask::block(&both).ok();
        assert_eq!(
            inner.as_ref().map(|m| m.added().iter().collect::<Vec<_>>()),
            Some(vec![libc::SIGUSR2, libc::SIGWINCH])
        );
        // Dropped out of order: the inner guard still wants SIGUSR2, so it stays blocked.
        drop(outer);
        let now = SignalMask::blocked().unwrap_or_default();
        assert!(now.contains(libc::SIGUSR2) && now.contains(libc::SIGWINCH));
        drop(inner);
        let now = SignalMask::blocked().unwrap_or_default();
        assert!(!now.contains(libc::SIGUSR2) && !now.contains(libc::SIGWINCH));
    }

    #[test]
    fn mask_refuses_sigkill() {
        let set = SignalSet::new(&[libc::SIGKILL]).unwrap_or_default();
        let err = SignalMask::block(&set).err();
        assert!(err.is_some_and(|e| e.to_string().contains("SIGKILL cannot be blocked")));
    }
}
