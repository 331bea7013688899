//! Process watch: pidfds that become readable when a process exits, and signals that
//! never reach a recycled PID.
//!
//! A PID names a process only while that process lives (and, once it has exited, until its
//! parent reaps it). After that the kernel hands the number to the next process it starts,
//! so `kill(pid, …)` or "is `/proc/<pid>` there?" may act on a stranger. A **pidfd** is a
//! descriptor that refers to one process for good: it becomes readable when that process
//! exits, and [`Pidfd::send_signal`] through it fails instead of reaching a successor.
//!
//! - For a **child**, [`Pidfd::from_child`] is race-free: a child that has not been reaped
//!   keeps its PID, so the pidfd is sure to be the child's. Its exit status is readable with
//!   [`Pidfd::exit_status`] (without reaping it: `Child::wait` still works).
//! - For an **unrelated process**, identify it by a [`ProcessId`] (PID plus start time,
//!   which the process can report about itself with [`ProcessId::current`] and send over a
//!   socket) and open it with [`Pidfd::open_checked`], which opens the pidfd and then
//!   confirms that the process is still the one meant. Only its exit is observable, not its
//!   status: that belongs to its parent.
//!
//! ```
//! use ipcx::process::{ExitStatus, Pidfd};
//! use std::time::Duration;
//!
//! let mut child = std::process::Command::new("sleep").arg("60").spawn()?;
//! let pidfd = Pidfd::from_child(&child)?;
//! assert!(!pidfd.has_exited());
//! pidfd.send_signal(libc::SIGTERM)?; // reaches the child, never a recycled pid
//! pidfd.wait_exit_timeout(Duration::from_secs(10))?;
//! assert_eq!(pidfd.exit_status()?, ExitStatus::Signaled { signal: libc::SIGTERM, core_dumped: false });
//! child.wait()?; // the Child still reaps it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Pidfd`] implements [`AsFd`]: put it in an [`ipcx::poll::PollSet`](crate::poll::PollSet)
//! beside pipes, sockets and queues to learn of a peer's death while waiting for its data.
//!
//! Requires Linux 5.3 (`pidfd_open`) and, for exit statuses, 5.4 (`waitid(P_PIDFD)`);
//! [`ProcessId`] reads `/proc`, which must be the one of the caller's PID namespace.
//!
//! # References
//! - [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
//! - [pidfd_send_signal(2)](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
//! - [waitid(2)](https://man7.org/linux/man-pages/man2/waitid.2.html)
//! - [proc_pid_stat(5)](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::str::FromStr;
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wait::{Deadline, poll_now, wait_fd};

/// A process's identity that survives PID reuse: its PID and its start time.
///
/// Two processes that ever hold the same PID have different start times (the kernel's
/// clock ticks since boot, field 22 of `/proc/<pid>/stat`), so the pair names one process
/// for good. A process reports its own with [`ProcessId::current`]; a peer turns it into a
/// pidfd with [`Pidfd::open_checked`], which refuses a process that has exited or whose
/// PID now belongs to another process.
///
/// It travels as text (`"<pid>@<start time>"`, the [`Display`](fmt::Display) and
/// [`FromStr`] forms) or as 12 bytes ([`to_bytes`](ProcessId::to_bytes),
/// [`from_bytes`](ProcessId::from_bytes)). It is meaningful only on the machine and in the
/// PID namespace where it was taken.
///
/// # Examples
///
/// ```
/// use ipcx::process::ProcessId;
///
/// let me = ProcessId::current()?;
/// assert_eq!(me.pid(), std::process::id());
/// assert_eq!(ProcessId::of(me.pid())?, me);
/// let text = me.to_string();
/// assert_eq!(text.parse::<ProcessId>()?, me);
/// assert_eq!(ProcessId::from_bytes(&me.to_bytes())?, me);
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [proc_pid_stat(5)](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pid: u32,
    start_time: u64,
}

impl ProcessId {
    /// The length of [`to_bytes`](ProcessId::to_bytes): 12.
    pub const ENCODED_LEN: usize = 12;

    /// The identity of the calling process, to tell a peer who it is talking to.
    ///
    /// # Errors
    /// As [`ProcessId::of`]: `/proc` is not mounted, or belongs to another PID namespace.
    pub fn current() -> Result<ProcessId> {
        ProcessId::of(std::process::id())
    }

    /// The identity of the process that holds `pid` now.
    ///
    /// This is a snapshot: it names the process that held the PID when it was taken. Pass
    /// it to [`Pidfd::open_checked`] later, and a different process that has since taken
    /// the PID is refused.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for PID 0 or one above `i32::MAX`;
    /// [`ErrorKind::PeerGone`] if no process holds `pid` (or `/proc` hides it from this
    /// user: `hidepid`); [`ErrorKind::Unsupported`] if `/proc` is missing or belongs to
    /// another PID namespace.
    pub fn of(pid: u32) -> Result<ProcessId> {
        let raw = check_pid("read /proc/<pid>/stat", pid)?;
        let start_time = start_time_of(raw)?;
        Ok(ProcessId { pid, start_time })
    }

    /// An identity from its parts, as received from a peer.
    pub fn from_parts(pid: u32, start_time: u64) -> ProcessId {
        ProcessId { pid, start_time }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The start time, in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// The identity as 12 bytes: the PID and then the start time, little-endian.
    pub fn to_bytes(&self) -> [u8; ProcessId::ENCODED_LEN] {
        let mut out = [0u8; ProcessId::ENCODED_LEN];
        out[..4].copy_from_slice(&self.pid.to_le_bytes());
        out[4..].copy_from_slice(&self.start_time.to_le_bytes());
        out
    }

    /// Decodes [`to_bytes`](ProcessId::to_bytes), as received from a peer.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] unless `bytes` is exactly 12 bytes holding a PID between 1
    /// and `i32::MAX`.
    pub fn from_bytes(bytes: &[u8]) -> Result<ProcessId> {
        let corrupt = |why: String| {
            Err(Error::new("ProcessId::from_bytes", ErrorKind::Corrupt).with_hint(why))
        };
        let Ok(bytes) = <[u8; ProcessId::ENCODED_LEN]>::try_from(bytes) else {
            return corrupt(format!(
                "a process identity is {} bytes, not {}",
                ProcessId::ENCODED_LEN,
                bytes.len()
            ));
        };
        let [p0, p1, p2, p3, t @ ..] = bytes;
        let pid = u32::from_le_bytes([p0, p1, p2, p3]);
        if pid == 0 || i32::try_from(pid).is_err() {
            return corrupt(format!("{pid} is not a valid process id"));
        }
        Ok(ProcessId {
            pid,
            start_time: u64::from_le_bytes(t),
        })
    }
}

impl fmt::Display for ProcessId {
    /// `<pid>@<start time>`, for example `4242@1234567`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.pid, self.start_time)
    }
}

impl FromStr for ProcessId {
    type Err = Error;

    /// Parses `<pid>@<start time>`, the [`Display`](fmt::Display) form.
    fn from_str(s: &str) -> Result<ProcessId> {
        let bad = || {
            Error::new("ProcessId::from_str", ErrorKind::InvalidInput)
                .with_object(s)
                .with_hint("a process identity is written <pid>@<start time>, such as 4242@1234567")
        };
        let (pid, start) = s.split_once('@').ok_or_else(bad)?;
        let pid: u32 = pid.parse().map_err(|_| bad())?;
        let start_time: u64 = start.parse().map_err(|_| bad())?;
        if pid == 0 || i32::try_from(pid).is_err() {
            return Err(bad());
        }
        Ok(ProcessId { pid, start_time })
    }
}

/// How a child process ended, from `waitid`.
///
/// # References
/// - [waitid(2)](https://man7.org/linux/man-pages/man2/waitid.2.html)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It called `exit` (or returned from `main`) with this code (0–255).
    Exited(i32),
    /// A signal ended it.
    Signaled {
        /// The signal number, such as `libc::SIGKILL`.
        signal: i32,
        /// Whether it left a core dump.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }

    /// The exit code, if it exited rather than being killed.
    pub fn code(&self) -> Option<i32> {
        match *self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled { .. } => None,
        }
    }

    /// The signal that ended it, if one did.
    pub fn signal(&self) -> Option<i32> {
        match *self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled { signal, .. } => Some(signal),
        }
    }

    fn from_waitid(status: &WaitIdStatus) -> Option<ExitStatus> {
        if status.exited() {
            Some(ExitStatus::Exited(status.exit_status()?))
        } else if status.killed() || status.dumped() {
            Some(ExitStatus::Signaled {
                signal: status.terminating_signal()?,
                core_dumped: status.dumped(),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by signal {signal}")?;
                if let Some(name) = signal_name(signal) {
                    write!(f, " ({name})")?;
                }
                if core_dumped {
                    f.write_str(", core dumped")?;
                }
                Ok(())
            }
        }
    }
}

/// A descriptor for one process (a pidfd): readable once the process has exited, and a
/// way to signal it that never reaches a process that reused its PID.
///
/// The descriptor is close-on-exec (every pidfd is), so children do not inherit it.
///
/// # Examples
///
/// Watch a process by the identity it reported (here: ourselves):
///
/// ```
/// use ipcx::process::{Pidfd, ProcessId};
///
/// let me = ProcessId::current()?;            // what a peer would send over a socket
/// let pidfd = Pidfd::open_checked(&me)?;     // the peer side: open, then confirm
/// assert_eq!(pidfd.pid(), me.pid());
/// assert_eq!(pidfd.try_wait_exit().unwrap_err().kind(), ipcx::ErrorKind::WouldBlock);
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
#[derive(Debug)]
pub struct Pidfd {
    fd: OwnedFd,
    pid: u32,
}

impl Pidfd {
    /// A pidfd for a child started with [`std::process::Command`].
    ///
    /// Race-free as long as the child has not been reaped: until then its PID cannot be
    /// reused. Call it before `Child::wait` (or a `Child::try_wait` that returned
    /// `Some`); ipcx checks that the pidfd it got is a child of this process and refuses
    /// one that is not (the child was reaped and its PID taken by a stranger). It cannot
    /// tell if, after such a reap, another child of this very process took the PID.
    ///
    /// # Errors
    /// [`ErrorKind::PeerGone`] if the child was already reaped;
    /// [`ErrorKind::Unsupported`] before Linux 5.3; [`ErrorKind::LimitReached`] when out of
    /// descriptors.
    #[doc(alias = "pidfd_open")]
    pub fn from_child(child: &std::process::Child) -> Result<Pidfd> {
        let pidfd = Pidfd::open(child.id()).map_err(|e| {
            if e.kind() == ErrorKind::PeerGone {
                e.with_hint("the child was already reaped (Child::wait); open the pidfd before waiting for it")
            } else {
                e
            }
        })?;
        match waitid(pidfd.fd.as_fd(), true, true) {
            Ok(_) => Ok(pidfd),
            Err(Errno::CHILD) => Err(Error::from_errno("waitid", libc::ECHILD)
                .with_kind(ErrorKind::PeerGone)
                .with_object(pidfd.label())
                .with_hint(
                    "the child was already reaped (Child::wait) and its pid now belongs to \
                     another process; open the pidfd before waiting for the child",
                )),
            Err(e) => Err(pidfd.waitid_error(e)),
        }
    }

    /// A pidfd for whatever process holds `pid` now.
    ///
    /// Safe for an unreaped child of the caller. For any other process it is racy: the
    /// process may have exited and its PID been given to another between the moment the
    /// PID was learnt and this call. Use [`Pidfd::open_checked`] with a [`ProcessId`]
    /// instead.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for PID 0 or one above `i32::MAX` (checked before the
    /// system call); [`ErrorKind::PeerGone`] if no process holds `pid` (`ESRCH`);
    /// [`ErrorKind::Unsupported`] before Linux 5.3; [`ErrorKind::LimitReached`] when out of
    /// descriptors.
    #[doc(alias = "pidfd_open")]
    pub fn open(pid: u32) -> Result<Pidfd> {
        let raw = check_pid("pidfd_open", pid)?;
        let fd = rustix::process::pidfd_open(raw, PidfdFlags::empty()).map_err(|e| {
            let err = Error::from_errno("pidfd_open", e.raw_os_error())
                .with_object(format_args!("pid {pid}"));
            match e {
                Errno::SRCH => err.with_hint("no process holds this pid: it has exited"),
                // A thread that is not a thread-group leader: EINVAL on older kernels, ENOENT
                // on recent ones (seen on 6.18).
                Errno::INVAL | Errno::NOENT => err.with_kind(ErrorKind::InvalidInput).with_hint(
                    "this id names a thread of a process, not the process itself (its \
                     thread-group leader); pidfds watch whole processes",
                ),
                Errno::NOSYS => err.with_hint("pidfds need Linux 5.3 or later"),
                _ => err,
            }
        })?;
        Ok(Pidfd { fd, pid })
    }

    /// A pidfd for the process `id` names, refused if that process is gone.
    ///
    /// Closes the PID-reuse race: it opens a pidfd for the PID, then reads the start time
    /// of the process holding the PID and checks that the pidfd's process is still alive.
    /// If the process is alive after the start time was read, it held the PID all along,
    /// so the start time read was its own; a match proves it is the process `id` named.
    ///
    /// # Errors
    /// [`ErrorKind::PeerGone`] when the process has exited (whether or not its PID was
    /// reused since); the message says which. The errors of [`Pidfd::open`] otherwise.
    #[doc(alias = "pidfd_open")]
    pub fn open_checked(id: &ProcessId) -> Result<Pidfd> {
        let gone = |why: String| {
            Error::new("pidfd_open", ErrorKind::PeerGone)
                .with_object(format_args!("process {id}"))
                .with_hint(why)
        };
        let pidfd = Pidfd::open(id.pid).map_err(|e| {
            if e.kind() == ErrorKind::PeerGone {
                gone(format!(
                    "process {} has exited: no process holds pid {} now",
                    id, id.pid
                ))
            } else {
                e
            }
        })?;
        // The order matters: pidfd first, then the start time, then liveness (see above).
        let now = match start_time_of(check_pid("pidfd_open", id.pid)?) {
            Ok(start) => start,
            Err(e) if e.kind() == ErrorKind::PeerGone && pidfd.has_exited() => {
                return Err(gone(format!("process {id} has exited")));
            }
            Err(e) if e.kind() == ErrorKind::PeerGone => {
                // The pidfd's process lives, yet /proc does not show it.
                return Err(e.with_kind(ErrorKind::PermissionDenied).with_hint(format!(
                    "/proc hides pid {} from this user (hidepid), so its identity cannot be \
                     confirmed",
                    id.pid
                )));
            }
            Err(e) => return Err(e),
        };
        if now != id.start_time {
            return Err(gone(format!(
                "pid {} was reused: it now belongs to a process started at tick {now}, not \
                 {}; the process meant has exited",
                id.pid, id.start_time
            )));
        }
        if pidfd.has_exited() {
            return Err(gone(format!(
                "process {id} has exited (it is a zombie, not yet reaped by its parent)"
            )));
        }
        Ok(pidfd)
    }

    /// Adopts a pidfd obtained elsewhere, such as
    /// [`UnixSocketExt::peer_pidfd`](crate::unix::UnixSocketExt::peer_pidfd) (the process
    /// at the other end of a socket, taken by the kernel when it connected).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `fd` is not a pidfd; [`ErrorKind::PeerGone`] if its
    /// process has already been reaped (the kernel no longer knows its PID);
    /// [`ErrorKind::Unsupported`] if the process is outside this PID namespace.
    pub fn from_fd(fd: OwnedFd) -> Result<Pidfd> {
        let op = "Pidfd::from_fd";
        let label = format!("descriptor {}", fd.as_raw_fd());
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
            .map_err(|e| Error::from_io(op, &e).with_object(&label))?;
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|v| v.trim().parse::<i64>().ok());
        match pid {
            None => Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(&label)
                .with_hint("the descriptor is not a pidfd")),
            Some(-1) => Err(Error::new(op, ErrorKind::PeerGone)
                .with_object(&label)
                .with_hint("the process has exited and been reaped")),
            Some(pid) => match u32::try_from(pid) {
                Ok(pid) if pid > 0 => Ok(Pidfd { fd, pid }),
                _ => Err(Error::new(op, ErrorKind::Unsupported)
                    .with_object(&label)
                    .with_hint("the process is not visible in this PID namespace")),
            },
        }
    }

    /// The process's PID (as it was when the pidfd was opened; after the process is
    /// reaped, another process may hold it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process has exited, without waiting.
    pub fn has_exited(&self) -> bool {
        poll_now(self.fd.as_fd(), PollFlags::IN).intersects(PollFlags::IN | PollFlags::HUP)
    }

    /// Waits until the process has exited, for ever if need be.
    ///
    /// # Errors
    /// Only if `poll` itself fails.
    pub fn wait_exit(&self) -> Result<()> {
        self.wait_exit_until(Deadline::Never)
    }

    /// Returns at once: `Ok` if the process has exited.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] while it is still running.
    pub fn try_wait_exit(&self) -> Result<()> {
        self.wait_exit_until(Deadline::Now)
    }

    /// Waits at most `timeout` for the process to exit. A signal that interrupts the wait
    /// does not end it early nor stretch it.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if it is still running when the time is up.
    pub fn wait_exit_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_exit_until(Deadline::after(timeout))
    }

    fn wait_exit_until(&self, deadline: Deadline) -> Result<()> {
        let running = |e: Error| match (e.kind(), deadline) {
            (ErrorKind::WouldBlock, _) => {
                e.with_hint("the process is still running; wait with wait_exit or poll the pidfd")
            }
            (ErrorKind::TimedOut, Deadline::At(_, timeout)) => {
                e.with_hint(format!("the process is still running after {timeout:?}"))
            }
            _ => e,
        };
        if self.has_exited() {
            return Ok(());
        }
        let label = self.label();
        wait_fd(
            self.fd.as_fd(),
            PollFlags::IN,
            deadline,
            "wait_exit",
            &label,
        )
        .map_err(running)?;
        Ok(())
    }

    /// Waits for the child to exit and returns how it ended, without reaping it.
    ///
    /// The child stays a zombie until its parent reaps it, so `Child::wait` (which does
    /// that) still works and returns the same status; call it once you are done, as with
    /// any child. Only the parent can learn a status: for any other process, wait for its
    /// exit with [`wait_exit`](Pidfd::wait_exit) and ask the process's own parent how it
    /// ended.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the process is not an unreaped child of this process
    /// (`ECHILD`); this is reported at once, without waiting.
    ///
    /// # References
    /// - [waitid(2)](https://man7.org/linux/man-pages/man2/waitid.2.html)
    #[doc(alias = "waitid")]
    pub fn exit_status(&self) -> Result<ExitStatus> {
        self.exit_status_until(Deadline::Never)
    }

    /// The child's exit status if it has exited, without waiting or reaping it; see
    /// [`exit_status`](Pidfd::exit_status).
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] while it runs; the errors of
    /// [`exit_status`](Pidfd::exit_status).
    #[doc(alias = "waitid")]
    pub fn try_exit_status(&self) -> Result<ExitStatus> {
        self.exit_status_until(Deadline::Now)
    }

    /// Waits at most `timeout` for the child to exit and returns how it ended, without
    /// reaping it; see [`exit_status`](Pidfd::exit_status).
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if it still runs when the time is up; the errors of
    /// [`exit_status`](Pidfd::exit_status).
    #[doc(alias = "waitid")]
    pub fn exit_status_timeout(&self, timeout: Duration) -> Result<ExitStatus> {
        self.exit_status_until(Deadline::after(timeout))
    }

    fn exit_status_until(&self, deadline: Deadline) -> Result<ExitStatus> {
        // Ask first, so that a process that is not our child fails at once.
        let status = match waitid(self.fd.as_fd(), true, true) {
            Ok(Some(status)) => status,
            Ok(None) => {
                self.wait_exit_until(deadline)?;
                match waitid(self.fd.as_fd(), true, true) {
                    Ok(Some(status)) => status,
                    Ok(None) => {
                        return Err(Error::new("waitid", ErrorKind::Other)
                            .with_object(self.label())
                            .with_hint("the pidfd reported an exit that waitid does not see"));
                    }
                    Err(e) => return Err(self.waitid_error(e)),
                }
            }
            Err(e) => return Err(self.waitid_error(e)),
        };
        ExitStatus::from_waitid(&status).ok_or_else(|| {
            Error::new("waitid", ErrorKind::Other)
                .with_object(self.label())
                .with_hint(format!("an unexpected child state: {status:?}"))
        })
    }

    /// Sends signal `sig` (such as `libc::SIGTERM`) to the process. It cannot reach a
    /// process that reused the PID: if the process has exited, the call fails instead.
    /// Signal 0 sends nothing and only checks that the process is alive and may be
    /// signalled. Real-time signals (`SIGRTMIN()..=SIGRTMAX()`) are accepted; the ones
    /// below `SIGRTMIN()` that glibc keeps for itself are refused.
    ///
    /// # Errors
    /// [`ErrorKind::PeerGone`] if the process has exited (even if its parent has not yet
    /// reaped it); [`ErrorKind::PermissionDenied`] if this process may not signal it
    /// (another user's process, without `CAP_KILL`); [`ErrorKind::InvalidInput`] for a
    /// number that is not a signal.
    ///
    /// # References
    /// - [pidfd_send_signal(2)](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
    #[doc(alias = "pidfd_send_signal")]
    pub fn send_signal(&self, sig: i32) -> Result<()> {
        send_signal_fd(self.fd.as_fd(), sig, &self.label())
    }

    /// Kills the process with `SIGKILL`; see [`send_signal`](Pidfd::send_signal).
    ///
    /// # Errors
    /// As [`send_signal`](Pidfd::send_signal).
    pub fn kill(&self) -> Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    fn label(&self) -> String {
        format!("pid {}", self.pid)
    }

    fn waitid_error(&self, e: Errno) -> Error {
        let err = Error::from_errno("waitid", e.raw_os_error()).with_object(self.label());
        match e {
            Errno::CHILD => err.with_kind(ErrorKind::InvalidInput).with_hint(
                "the process is not an unreaped child of this one: only its parent can learn \
                 how it ended (a watcher of any other process sees only that it exited, with \
                 wait_exit); the status of a child is gone once it is reaped (Child::wait)",
            ),
            Errno::INVAL => err.with_hint("waitid(P_PIDFD) needs Linux 5.4 or later"),
            _ => err,
        }
    }
}

impl AsFd for Pidfd {
    /// The pidfd, for `poll`/`epoll`: readable once the process has exited.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Pidfd> for OwnedFd {
    fn from(pidfd: Pidfd) -> OwnedFd {
        pidfd.fd
    }
}

impl fmt::Display for Pidfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pidfd of pid {}", self.pid)
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG [| WNOWAIT])`, retrying `EINTR`.
fn waitid(
    fd: BorrowedFd<'_>,
    nohang: bool,
    nowait: bool,
) -> rustix::io::Result<Option<WaitIdStatus>> {
    let mut options = WaitIdOptions::EXITED;
    if nohang {
        options |= WaitIdOptions::NOHANG;
    }
    if nowait {
        options |= WaitIdOptions::NOWAIT;
    }
    loop {
        match rustix::process::waitid(WaitId::PidFd(fd), options) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Checks a PID before any system call: 1..=i32::MAX.
fn check_pid(op: &'static str, pid: u32) -> Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| {
            Error::new(op, ErrorKind::InvalidInput)
                .with_object(format_args!("pid {pid}"))
                .with_hint("a process id is between 1 and 2^31 - 1")
        })
}

/// The start time of the process holding `pid`, from `/proc/<pid>/stat`.
fn start_time_of(pid: Pid) -> Result<u64> {
    let op = "read /proc/<pid>/stat";
    let raw = pid.as_raw_nonzero().get();
    let path = format!("/proc/{raw}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| {
        let err = Error::from_io(op, &e).with_object(&path);
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => {
                if std::path::Path::new("/proc/self/stat").exists() {
                    err.with_kind(ErrorKind::PeerGone).with_hint(format!(
                        "no process holds pid {raw} (or /proc hides it from this user: hidepid)"
                    ))
                } else {
                    err.with_kind(ErrorKind::Unsupported)
                        .with_hint("/proc is not mounted; process identities need it")
                }
            }
            _ => err,
        }
    })?;
    let (stat_pid, start_time) = parse_stat(&stat).ok_or_else(|| {
        Error::new(op, ErrorKind::Corrupt)
            .with_object(&path)
            .with_hint("the file does not have the layout proc_pid_stat(5) describes")
    })?;
    if stat_pid != raw {
        return Err(Error::new(op, ErrorKind::Unsupported)
            .with_object(&path)
            .with_hint(format!(
                "it describes pid {stat_pid}: this /proc belongs to another PID namespace"
            )));
    }
    Ok(start_time)
}

/// Parses the PID (field 1) and start time (field 22) of a `/proc/<pid>/stat` line.
///
/// Field 2, the command name in parentheses, may itself contain spaces and parentheses
/// (a process may name itself `a) b (c`), so the fields after it are counted from the
/// *last* `)` in the line.
fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    let open = stat.find(" (")?;
    let pid = stat[..open].trim().parse().ok()?;
    let close = stat.rfind(')')?;
    if close < open {
        return None;
    }
    // Field 3 (state) is the first after the `)`, so field 22 is the 20th.
    let start_time = stat[close + 1..].split_ascii_whitespace().nth(22 - 3)?;
    Some((pid, start_time.parse().ok()?))
}

/// The symbolic name of a standard signal, for messages.
fn signal_name(sig: i32) -> Option<&'static str> {
    use libc::*;
    Some(match sig {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGILL => "SIGILL",
        SIGTRAP => "SIGTRAP",
        SIGABRT => "SIGABRT",
        SIGBUS => "SIGBUS",
        SIGFPE => "SIGFPE",
        SIGKILL => "SIGKILL",
        SIGUSR1 => "SIGUSR1",
        SIGSEGV => "SIGSEGV",
        SIGUSR2 => "SIGUSR2",
        SIGPIPE => "SIGPIPE",
        SIGALRM => "SIGALRM",
        SIGTERM => "SIGTERM",
        SIGCHLD => "SIGCHLD",
        SIGCONT => "SIGCONT",
        SIGSTOP => "SIGSTOP",
        SIGTSTP => "SIGTSTP",
        SIGXCPU => "SIGXCPU",
        SIGXFSZ => "SIGXFSZ",
        SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// `pidfd_send_signal` on any pidfd, with the one rule ipcx keeps for it: a process that
/// has exited (even a zombie, which the kernel would let accept the signal and ignore
/// it) is [`ErrorKind::PeerGone`] and nothing is sent. Shared by [`Pidfd::send_signal`]
/// and [`crate::signal::send_via_pidfd`].
pub(crate) fn send_signal_fd(fd: BorrowedFd<'_>, sig: i32, object: &str) -> Result<()> {
    let op = "pidfd_send_signal";
    if sig < 0 || sig > libc::SIGRTMAX() || (sig > 31 && sig < libc::SIGRTMIN()) {
        return Err(Error::new(op, ErrorKind::InvalidInput)
            .with_object(object)
            .with_hint(format!(
                "{sig} is not a signal a program may send: use 1..=31 or SIGRTMIN ({})..=SIGRTMAX ({}), or 0 to probe",
                libc::SIGRTMIN(),
                libc::SIGRTMAX()
            )));
    }
    let gone = "the process has exited; no signal was sent (and none can reach whatever \
                process has its PID now)";
    if poll_now(fd, PollFlags::IN).intersects(PollFlags::IN | PollFlags::HUP) {
        return Err(Error::new(op, ErrorKind::PeerGone)
            .with_object(object)
            .with_hint(gone));
    }
    sys::pidfd::send_signal(fd, sig).map_err(|e| {
        let err = Error::from_errno(op, e.raw_os_error()).with_object(object);
        match e {
            Errno::SRCH => err.with_hint(gone),
            Errno::PERM => err.with_hint(
                "the process belongs to another user: a process may signal only processes of \
                 its own user, unless it has CAP_KILL",
            ),
            Errno::BADF | Errno::INVAL => err
                .with_kind(ErrorKind::InvalidInput)
                .with_hint("the descriptor is not a pidfd"),
            Errno::NOSYS => err.with_hint("pidfd_send_signal needs Linux 5.1 or later"),
            _ => err,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_counts_fields_after_the_last_parenthesis() {
        // 52 fields as in Linux 6.x; field 22 (start time) is 777.
        let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 20 21 22";
        for comm in ["sleep", "a b", "a) b (c", "x)", ") (", "((("] {
            let line = format!("4242 ({comm}) {tail}\n");
            assert_eq!(parse_stat(&line), Some((4242, 777)), "{line}");
        }
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
        assert_eq!(
            parse_stat(&format!("x (c) {tail}")),
            None,
            "a non-numeric pid"
        );
    }

    #[test]
    fn process_id_text_and_bytes_round_trip_and_reject_garbage() {
        let id = ProcessId::from_parts(4242, 1_234_567);
        assert_eq!(id.to_string(), "4242@1234567");
        assert_eq!("4242@1234567".parse::<ProcessId>(), Ok(id));
        assert_eq!(ProcessId::from_bytes(&id.to_bytes()), Ok(id));
        for bad in [
            "",
            "4242",
            "@1",
            "0@1",
            "x@1",
            "1@x",
            "4294967295@1",
            "1@2@3",
        ] {
            let e = bad.parse::<ProcessId>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("<pid>@<start time>"), "{e}");
        }
        let short = ProcessId::from_bytes(&[1, 2, 3]).unwrap_err();
        assert_eq!(short.kind(), ErrorKind::Corrupt);
        assert!(short.to_string().contains("12 bytes, not 3"), "{short}");
        let zero = ProcessId::from_bytes(&ProcessId::from_parts(0, 5).to_bytes()).unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn exit_status_displays_the_signal_name() {
        let killed = ExitStatus::Signaled {
            signal: libc::SIGKILL,
            core_dumped: false,
        };
        assert_eq!(killed.to_string(), "killed by signal 9 (SIGKILL)");
        assert_eq!(ExitStatus::Exited(3).to_string(), "exited with code 3");
        assert!(ExitStatus::Exited(0).success());
        assert_eq!(killed.signal(), Some(libc::SIGKILL));
        assert_eq!(killed.code(), None);
    }
}
