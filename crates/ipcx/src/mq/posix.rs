//! POSIX message queues: named queues of whole messages, received highest priority first.
//!
//! ```
//! use std::time::Duration;
//! use ipcx::mq::posix::{MessageQueue, MqOptions};
//!
//! let name = format!("/ipcx-doc-mq-{}", std::process::id());
//! // Creator: exclusive, mode 0600, removed again when `jobs` is dropped.
//! let jobs = MqOptions::new().capacity(8).max_msg_size(256).create(&name)?;
//!
//! // Another process opens it by name (never removing it) and sends.
//! let sender = MqOptions::new().open(&name)?;
//! sender.send(b"routine", 1)?;
//! sender.send(b"urgent", 9)?;
//!
//! let mut buf = vec![0u8; jobs.max_msg_size()];
//! let (len, prio) = jobs.recv_timeout(&mut buf, Duration::from_secs(1))?;
//! assert_eq!((&buf[..len], prio), (&b"urgent"[..], 9));
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # Sizes and limits
//!
//! A queue holds at most [`capacity`](MqOptions::capacity) messages of at most
//! [`max_msg_size`](MqOptions::max_msg_size) bytes each, both fixed when it is created.
//! Unprivileged processes may not exceed `/proc/sys/fs/mqueue/msg_max` and `msgsize_max`
//! (processes with `CAP_SYS_RESOURCE` may, up to the kernel's hard limits of 65536
//! messages and 16 MiB); all queues of one user together may not hold more message bytes
//! than `RLIMIT_MSGQUEUE`; and the system holds at most `/proc/sys/fs/mqueue/queues_max`
//! queues. Each limit, when hit, is an [`ErrorKind::LimitReached`] error that names it and
//! its current value.
//!
//! # Blocking and readiness
//!
//! ipcx opens queue descriptors in blocking mode, and gives each call the form it asks
//! for. The blocking forms ([`send`](MessageQueue::send), [`recv`](MessageQueue::recv))
//! wait inside `mq_send`/`mq_receive`: one system call per message, as in a C program.
//! The `try_` forms never wait: they pass `mq_timedsend`/`mq_timedreceive` a deadline
//! that has already passed, which the kernel answers at once. The `_timeout` forms wait
//! for readiness with `poll(2)`, which Linux supports on queue descriptors (readable
//! while a message is queued, writable while there is room), and then try; so timeouts
//! run on the monotonic clock (not the settable real-time clock `mq_timedsend` uses).
//! A signal never cuts a wait short: `EINTR` is retried with the time that remains. The
//! same readiness is yours through [`AsFd`]: register a queue with `poll`/`epoll`, `mio`
//! or tokio's `AsyncFd` and call [`try_recv`](MessageQueue::try_recv) when it is
//! readable. [`MessageQueue::notify_signal`] offers `mq_notify(3)`'s signal instead, for
//! programs built around signals.
//!
//! # Ownership
//!
//! The handle that creates a queue owns its name and unlinks it on drop unless
//! [`keep`](MessageQueue::keep) was called; handles that open an existing queue never
//! unlink it. Before unlinking, the owner opens the name afresh and compares the new
//! descriptor's device and inode numbers with its own: if another process has meanwhile
//! unlinked the queue and created a new one under the same name, the newcomer is left
//! alone. The owner's own descriptor stays open during the check, so the kernel cannot
//! give its inode number to the newcomer. (A replacement made between that check and the
//! `mq_unlink` call would still be removed: the kernel offers no unlink-by-descriptor;
//! so would a replacement whose mode lets this user neither read nor write it, since the
//! check cannot open it and the owner then unlinks as its creator asked.)
//! A queue outlives its name while any process has it open.
//!
//! # References
//! - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
//! - [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html)

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::fs::Mode;
use rustix::io::Errno;

use super::Access;
use crate::error::{Context, Error, ErrorKind, Result, read_sysctl};
use crate::name::PosixName;
use crate::owner::{OpenMode, obtain};
use crate::sys;
use crate::wait::{Deadline, retry_blocking};

/// One more than the highest message priority (32768 on Linux): priorities run from 0 to
/// `MQ_PRIO_MAX - 1`, and higher ones are received first.
pub const MQ_PRIO_MAX: u32 = sys::mq::MQ_PRIO_MAX;

const MSG_MAX: &str = "/proc/sys/fs/mqueue/msg_max";
const MSGSIZE_MAX: &str = "/proc/sys/fs/mqueue/msgsize_max";
const MSG_DEFAULT: &str = "/proc/sys/fs/mqueue/msg_default";
const MSGSIZE_DEFAULT: &str = "/proc/sys/fs/mqueue/msgsize_default";
const QUEUES_MAX: &str = "/proc/sys/fs/mqueue/queues_max";
/// The kernel's limits even for processes with `CAP_SYS_RESOURCE` (`HARD_MSGMAX`,
/// `HARD_MSGSIZEMAX`).
const HARD_MSGMAX: usize = 65536;
const HARD_MSGSIZEMAX: usize = 16 << 20;
fn sysctl_usize(path: &str) -> Option<usize> {
    read_sysctl(path)?.parse().ok()
}

fn sysctl_or_unknown(path: &str) -> String {
    read_sysctl(path).unwrap_or_else(|| "unknown".into())
}

/// Options for creating or opening a POSIX message queue.
///
/// # Examples
///
/// ```
/// use ipcx::mq::posix::MqOptions;
///
/// let name = format!("/ipcx-doc-opts-{}", std::process::id());
/// let q = MqOptions::new().mode(0o640).capacity(4).max_msg_size(64).create(&name)?;
/// let attr = q.attributes()?;
/// assert_eq!((attr.capacity, attr.max_msg_size, attr.messages), (4, 64, 0));
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html)
#[derive(Clone, Debug)]
pub struct MqOptions {
    mode: u32,
    capacity: Option<usize>,
    max_msg_size: Option<usize>,
    access: Access,
}

impl Default for MqOptions {
    fn default() -> MqOptions {
        MqOptions {
            mode: 0o600,
            capacity: None,
            max_msg_size: None,
            access: Access::Both,
        }
    }
}

impl MqOptions {
    /// Default options: mode 0600, the system's default sizes
    /// (`/proc/sys/fs/mqueue/msg_default` and `msgsize_default`), send and receive.
    pub fn new() -> MqOptions {
        MqOptions::default()
    }

    /// The permission bits of a created queue, applied exactly (the umask cannot narrow
    /// them, and nothing wider than asked is ever visible). Only the lower 9 bits count;
    /// read permission lets others receive, write permission lets them send.
    pub fn mode(mut self, mode: u32) -> MqOptions {
        self.mode = mode & 0o777;
        self
    }

    /// How many messages a created queue holds before senders wait (`mq_maxmsg`).
    /// Ignored when an existing queue is opened: its creator chose.
    pub fn capacity(mut self, max_msgs: usize) -> MqOptions {
        self.capacity = Some(max_msgs);
        self
    }

    /// The largest message a created queue accepts, in bytes (`mq_msgsize`). Receivers
    /// need a buffer at least this large. Ignored when an existing queue is opened.
    pub fn max_msg_size(mut self, bytes: usize) -> MqOptions {
        self.max_msg_size = Some(bytes);
        self
    }

    /// Which directions the handle may use, and so which permission opening needs
    /// (default: [`Access::Both`]).
    pub fn access(mut self, access: Access) -> MqOptions {
        self.access = access;
        self
    }

    /// Creates a new queue; fails with [`ErrorKind::AlreadyExists`] if the name is taken.
    /// The returned handle unlinks the name on drop.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidName`] for a bad name, before any system call;
    /// - [`ErrorKind::InvalidInput`] for a capacity or message size of 0;
    /// - [`ErrorKind::AlreadyExists`] if a queue has this name;
    /// - [`ErrorKind::LimitReached`] above `msg_max`, `msgsize_max`, `queues_max` or
    ///   `RLIMIT_MSGQUEUE`, naming the limit and its value.
    #[doc(alias = "mq_open")]
    pub fn create(&self, name: impl AsRef<str>) -> Result<MessageQueue> {
        self.obtain(name.as_ref(), OpenMode::Create)
    }

    /// Opens an existing queue. The handle never unlinks it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no queue has this name; [`ErrorKind::PermissionDenied`]
    /// if its mode does not grant the [`access`](MqOptions::access) asked for.
    #[doc(alias = "mq_open")]
    pub fn open(&self, name: impl AsRef<str>) -> Result<MessageQueue> {
        self.obtain(name.as_ref(), OpenMode::Open)
    }

    /// Opens the queue if it exists and belongs to the caller's user, else creates it
    /// (and then owns it). A queue of another user is refused with
    /// [`ErrorKind::PermissionDenied`], so nobody can plant a queue for this program to
    /// use. An existing queue keeps the sizes its creator chose: check
    /// [`MessageQueue::attributes`].
    #[doc(alias = "mq_open")]
    pub fn open_or_create(&self, name: impl AsRef<str>) -> Result<MessageQueue> {
        self.obtain(name.as_ref(), OpenMode::OpenOrCreate)
    }

    fn obtain(&self, name: &str, how: OpenMode) -> Result<MessageQueue> {
        let name = PosixName::new(name)?;
        match how {
            OpenMode::Open => self.open_existing(name),
            OpenMode::Create => {
                let attr = self.creation_attr(&name)?;
                self.make(name, attr)
            }
            OpenMode::OpenOrCreate => {
                let attr = self.creation_attr(&name)?;
                obtain(
                    how,
                    || self.make(name.clone(), attr),
                    |_| {
                        let queue = self.open_existing(name.clone())?;
                        queue.check_mine()?;
                        Ok(queue)
                    },
                )
            }
        }
    }

    /// The `(mq_maxmsg, mq_msgsize)` to create with, or `None` for the system defaults.
    fn creation_attr(&self, name: &PosixName) -> Result<Option<(usize, usize)>> {
        if self.capacity.is_none() && self.max_msg_size.is_none() {
            return Ok(None);
        }
        // The kernel takes both or neither: fill in the other from the system default,
        // as the kernel itself would (never above the maximum).
        let default = |value: Option<usize>, default: &str, max: &str, builtin: usize| {
            value.unwrap_or_else(|| {
                let d = sysctl_usize(default).unwrap_or(builtin);
                sysctl_usize(max).map_or(d, |m| d.min(m))
            })
        };
        let capacity = default(self.capacity, MSG_DEFAULT, MSG_MAX, 10);
        let size = default(self.max_msg_size, MSGSIZE_DEFAULT, MSGSIZE_MAX, 8192);
        let invalid = |hint: &'static str| {
            Err(Error::new("mq_open", ErrorKind::InvalidInput)
                .with_object(name)
                .with_hint(hint))
        };
        if capacity == 0 {
            return invalid("a queue needs a capacity of at least one message");
        }
        if size == 0 {
            return invalid("a queue needs a maximum message size of at least one byte");
        }
        Ok(Some((capacity, size)))
    }

    fn make(&self, name: PosixName, attr: Option<(usize, usize)>) -> Result<MessageQueue> {
        let cname = name.to_cstring();
        let oflag = self.access.oflag() | libc::O_CREAT | libc::O_EXCL;
        // The kernel clamps nothing: values beyond any limit fail with EINVAL, which
        // `create_error` explains.
        let fd = sys::mq::open(&cname, oflag, self.mode, attr)
            .map_err(|e| create_error(e, &name, attr))?;
        let st = match rustix::fs::fstat(&fd) {
            Ok(st) => st,
            Err(e) => {
                // Cannot record what we created; remove it rather than leave it ownerless.
                let _ = sys::mq::unlink(&cname);
                return Err(Error::from_errno("fstat", e.raw_os_error()).with_object(&name));
            }
        };
        // From here on, dropping `queue` on an error unlinks what we created.
        let mut queue = MessageQueue {
            fd,
            name,
            access: self.access,
            capacity: 0,
            max_msg_size: 0,
            owner: Some(Owner {
                dev: st.st_dev,
                ino: st.st_ino,
                keep: false,
            }),
        };
        // mq_open applied the umask, which can only have removed bits: set the exact mode.
        rustix::fs::fchmod(&queue.fd, Mode::from_raw_mode(self.mode))
            .op_on("fchmod", &queue.name)?;
        queue.load_sizes()?;
        Ok(queue)
    }

    fn open_existing(&self, name: PosixName) -> Result<MessageQueue> {
        let cname = name.to_cstring();
        let fd = sys::mq::open(&cname, self.access.oflag(), 0, None)
            .map_err(|e| open_error(e, &name, self.access))?;
        let mut queue = MessageQueue {
            fd,
            name,
            access: self.access,
            capacity: 0,
            max_msg_size: 0,
            owner: None,
        };
        queue.load_sizes()?;
        Ok(queue)
    }
}

impl Access {
    fn oflag(self) -> libc::c_int {
        match self {
            Access::Both => libc::O_RDWR,
            Access::SendOnly => libc::O_WRONLY,
            Access::ReceiveOnly => libc::O_RDONLY,
        }
    }
}

/// Explains a failed `mq_open(O_CREAT | O_EXCL)`.
fn create_error(errno: Errno, name: &PosixName, attr: Option<(usize, usize)>) -> Error {
    let err = Error::from_errno("mq_open", errno.raw_os_error()).with_object(name);
    match errno {
        Errno::EXIST => err.with_hint(
            "a queue with this name exists already; open it with MqOptions::open, or remove \
             it with MessageQueue::unlink if it is a stale leftover of yours",
        ),
        Errno::INVAL => size_limit_error(err, attr),
        Errno::MFILE | Errno::NOMEM => rlimit_error(err, errno, attr),
        Errno::NOSPC => err.with_hint(format!(
            "the system-wide limit on the number of queues is reached ({QUEUES_MAX}, now {}); \
             remove stale queues (`ipcx gc`) or raise the limit (processes with \
             CAP_SYS_RESOURCE are exempt)",
            sysctl_or_unknown(QUEUES_MAX)
        )),
        _ => err,
    }
}

/// `EINVAL` from a create: which size limit the requested attributes exceed.
fn size_limit_error(err: Error, attr: Option<(usize, usize)>) -> Error {
    let Some((capacity, size)) = attr else {
        return err.with_hint(format!(
            "the system default sizes are invalid ({MSG_DEFAULT} is {}, {MSGSIZE_DEFAULT} is \
             {}); ask for a capacity and message size explicitly",
            sysctl_or_unknown(MSG_DEFAULT),
            sysctl_or_unknown(MSGSIZE_DEFAULT)
        ));
    };
    let limit = |what: &str, value: usize, path: &str, smaller: &str| {
        err.clone()
            .with_kind(ErrorKind::LimitReached)
            .with_hint(format!(
                "{what} of {value} exceeds {path} (now {}); ask for a smaller {smaller}, or \
                 raise the limit (`sysctl fs.mqueue.{}`)",
                sysctl_or_unknown(path),
                path.rsplit('/').next().unwrap_or(path)
            ))
    };
    if sysctl_usize(MSG_MAX).is_some_and(|max| capacity > max) {
        return limit("a capacity", capacity, MSG_MAX, "capacity");
    }
    if sysctl_usize(MSGSIZE_MAX).is_some_and(|max| size > max) {
        return limit("a message size", size, MSGSIZE_MAX, "message size");
    }
    if capacity > HARD_MSGMAX || size > HARD_MSGSIZEMAX {
        return err.with_kind(ErrorKind::LimitReached).with_hint(format!(
            "a capacity of {capacity} messages of {size} bytes exceeds the kernel's hard \
             limits ({HARD_MSGMAX} messages, {HARD_MSGSIZEMAX} bytes), which no privilege \
             lifts"
        ));
    }
    err.with_hint(format!(
        "the kernel refused a capacity of {capacity} messages of {size} bytes"
    ))
}

/// `EMFILE` or `ENOMEM` from a create. The kernel reports the per-user byte limit on
/// queues (`RLIMIT_MSGQUEUE`) as `EMFILE`, like running out of descriptors; `ENOMEM` is a
/// failed allocation, for which a smaller queue is the remedy.
fn rlimit_error(err: Error, errno: Errno, attr: Option<(usize, usize)>) -> Error {
    use rustix::fs::OFlags;
    // EMFILE means either "out of descriptors" or "over RLIMIT_MSGQUEUE": if a descriptor
    // can still be opened, it is the latter.
    let probe = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty());
    if errno == Errno::MFILE && probe.is_err() {
        return err; // the default hint names RLIMIT_NOFILE
    }
    drop(probe);
    let limit = rustix::process::getrlimit(rustix::process::Resource::Msgqueue).current;
    let limit = limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    let (capacity, size) = attr.unwrap_or_else(|| {
        (
            sysctl_usize(MSG_DEFAULT).unwrap_or(10),
            sysctl_usize(MSGSIZE_DEFAULT).unwrap_or(8192),
        )
    });
    let need = capacity.saturating_mul(size);
    if errno == Errno::NOMEM {
        return err.with_hint(format!(
            "the kernel could not allocate the queue ({need} bytes: {capacity} messages of \
             {size} bytes); ask for a smaller capacity or message size (the per-user limit, \
             RLIMIT_MSGQUEUE, is now {limit} bytes)"
        ));
    }
    err.with_kind(ErrorKind::LimitReached).with_hint(format!(
        "this queue would take the user's queues past RLIMIT_MSGQUEUE (now {limit} bytes); it \
         needs {need} bytes ({capacity} messages of {size} bytes) plus kernel bookkeeping; \
         remove unused queues, ask for a smaller capacity or message size, or raise the limit \
         (`ulimit -q`)"
    ))
}

/// Explains a failed `mq_open` of an existing queue.
fn open_error(errno: Errno, name: &PosixName, access: Access) -> Error {
    let err = Error::from_errno("mq_open", errno.raw_os_error()).with_object(name);
    match errno {
        Errno::NOENT => err.with_hint(
            "no queue has this name; create it first (MqOptions::create or open_or_create), \
             or check the name",
        ),
        Errno::ACCESS => err.with_hint(format!(
            "the queue's mode does not give this user {} permission; ask its owner to widen \
             the mode, or open it with the Access it allows",
            access.describe()
        )),
        _ => err,
    }
}

/// What the creating handle remembers about the queue it made.
#[derive(Debug)]
struct Owner {
    dev: u64,
    ino: u64,
    keep: bool,
}

/// A POSIX message queue: an open descriptor, owned (and unlinked on drop) by its creator.
///
/// Every blocking call comes in three forms: blocking ([`send`](MessageQueue::send)),
/// never blocking ([`try_send`](MessageQueue::try_send), [`ErrorKind::WouldBlock`]) and
/// bounded ([`send_timeout`](MessageQueue::send_timeout), [`ErrorKind::TimedOut`]).
///
/// # References
/// - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
#[derive(Debug)]
pub struct MessageQueue {
    fd: OwnedFd,
    name: PosixName,
    access: Access,
    /// `mq_maxmsg` and `mq_msgsize`: fixed for the queue's lifetime, so read once.
    capacity: usize,
    max_msg_size: usize,
    owner: Option<Owner>,
}

/// A queue's attributes, as `mq_getattr` reports them.
///
/// # References
/// - [mq_getattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MqAttributes {
    /// The most messages the queue holds (`mq_maxmsg`).
    pub capacity: usize,
    /// The largest message it accepts, in bytes (`mq_msgsize`).
    pub max_msg_size: usize,
    /// How many messages are queued now (`mq_curmsgs`).
    pub messages: usize,
    /// Whether this descriptor is non-blocking (`O_NONBLOCK` in `mq_flags`). False for
    /// ipcx's descriptors, whose `try_` forms never wait either way (see the module
    /// documentation).
    pub nonblocking: bool,
}

impl MessageQueue {
    /// Options for sizes, mode and access.
    pub fn options() -> MqOptions {
        MqOptions::new()
    }

    /// Creates a new queue with the default options; see [`MqOptions::create`].
    #[doc(alias = "mq_open")]
    pub fn create(name: impl AsRef<str>) -> Result<MessageQueue> {
        MqOptions::new().create(name)
    }

    /// Opens an existing queue for sending and receiving; see [`MqOptions::open`].
    #[doc(alias = "mq_open")]
    pub fn open(name: impl AsRef<str>) -> Result<MessageQueue> {
        MqOptions::new().open(name)
    }

    /// Opens the caller's queue or creates it; see [`MqOptions::open_or_create`].
    #[doc(alias = "mq_open")]
    pub fn open_or_create(name: impl AsRef<str>) -> Result<MessageQueue> {
        MqOptions::new().open_or_create(name)
    }

    /// Removes the name `name`, whoever created the queue (permissions allowing). Handles
    /// that have the queue open keep using it until they close it. For operators and
    /// for cleaning up after a crashed creator.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] for a bad name; [`ErrorKind::NotFound`] if no queue has
    /// it; [`ErrorKind::PermissionDenied`] if the queue belongs to another user.
    ///
    /// # References
    /// - [mq_unlink(3)](https://man7.org/linux/man-pages/man3/mq_unlink.3.html)
    #[doc(alias = "mq_unlink")]
    pub fn unlink(name: impl AsRef<str>) -> Result<()> {
        let name = PosixName::new(name.as_ref())?;
        sys::mq::unlink(&name.to_cstring()).map_err(|e| {
            let err = Error::from_errno("mq_unlink", e.raw_os_error()).with_object(&name);
            match e {
                Errno::NOENT => err.with_hint("no queue has this name (removed already?)"),
                Errno::ACCESS | Errno::PERM => err.with_hint(
                    "only the queue's owner (or a process with CAP_FOWNER) may remove it",
                ),
                _ => err,
            }
        })
    }

    /// The queue's name, in its canonical `/name` form.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Whether this handle created the queue and will unlink it on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| !o.keep)
    }

    /// Leaves the queue in place when this handle is dropped, for a later process to
    /// [`open`](MqOptions::open).
    pub fn keep(&mut self) {
        if let Some(owner) = self.owner.as_mut() {
            owner.keep = true;
        }
    }

    /// The most messages the queue holds (`mq_maxmsg`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest message the queue accepts (`mq_msgsize`): the smallest buffer
    /// [`recv`](MessageQueue::recv) accepts.
    pub fn max_msg_size(&self) -> usize {
        self.max_msg_size
    }

    /// The queue's sizes and how many messages it holds now.
    ///
    /// # References
    /// - [mq_getattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
    #[doc(alias = "mq_getattr")]
    pub fn attributes(&self) -> Result<MqAttributes> {
        let a = sys::mq::getattr(self.fd.as_fd()).op_on("mq_getattr", &self.name)?;
        let count = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(MqAttributes {
            capacity: count(a.maxmsg),
            max_msg_size: count(a.msgsize),
            messages: count(a.curmsgs),
            nonblocking: a.flags & i64::from(libc::O_NONBLOCK) != 0,
        })
    }

    /// Sends `msg` with priority `prio` (0 to [`MQ_PRIO_MAX`]` - 1`, higher received
    /// first), waiting as long as the queue is full.
    ///
    /// # Errors
    /// - [`ErrorKind::MessageTooLarge`] if `msg` is longer than
    ///   [`max_msg_size`](MessageQueue::max_msg_size), before any system call;
    /// - [`ErrorKind::InvalidInput`] for a priority of [`MQ_PRIO_MAX`] or more, or a
    ///   handle opened [`ReceiveOnly`](Access::ReceiveOnly).
    ///
    /// # References
    /// - [mq_send(3)](https://man7.org/linux/man-pages/man3/mq_send.3.html)
    #[doc(alias = "mq_send")]
    pub fn send(&self, msg: &[u8], prio: u32) -> Result<()> {
        self.send_with(msg, prio, Deadline::Never)
    }

    /// Sends `msg` only if the queue has room now.
    ///
    /// # Errors
    /// As [`send`](MessageQueue::send), and [`ErrorKind::WouldBlock`] if the queue is full.
    #[doc(alias = "mq_send")]
    pub fn try_send(&self, msg: &[u8], prio: u32) -> Result<()> {
        self.send_with(msg, prio, Deadline::Now)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`send`](MessageQueue::send), and [`ErrorKind::TimedOut`] if the queue stayed
    /// full.
    #[doc(alias = "mq_timedsend")]
    pub fn send_timeout(&self, msg: &[u8], prio: u32, timeout: Duration) -> Result<()> {
        self.send_with(msg, prio, Deadline::after(timeout))
    }

    /// Receives the oldest message of the highest priority into `buf`, waiting as long as
    /// the queue is empty; returns its length and priority.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] if `buf` is shorter than
    /// [`max_msg_size`](MessageQueue::max_msg_size) (checked before any system call, as
    /// the kernel refuses such buffers whatever the next message's size);
    /// [`ErrorKind::InvalidInput`] on a handle opened [`SendOnly`](Access::SendOnly).
    ///
    /// # References
    /// - [mq_receive(3)](https://man7.org/linux/man-pages/man3/mq_receive.3.html)
    #[doc(alias = "mq_receive")]
    pub fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv_with(buf, Deadline::Never)
    }

    /// Receives a message only if one is queued now.
    ///
    /// # Errors
    /// As [`recv`](MessageQueue::recv), and [`ErrorKind::WouldBlock`] if the queue is
    /// empty.
    #[doc(alias = "mq_receive")]
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv_with(buf, Deadline::Now)
    }

    /// Receives a message, waiting at most `timeout` for one.
    ///
    /// # Errors
    /// As [`recv`](MessageQueue::recv), and [`ErrorKind::TimedOut`] if none arrived.
    #[doc(alias = "mq_timedreceive")]
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<(usize, u32)> {
        self.recv_with(buf, Deadline::after(timeout))
    }

    /// Asks the kernel to send this process `signal` when a message arrives on the empty
    /// queue (`mq_notify` with `SIGEV_SIGNAL`).
    ///
    /// The registration is one-shot: it is removed when the signal is sent, and must be
    /// renewed for the next one. One process at a time may be registered per queue. The
    /// signal is not sent if another process is blocked in `mq_receive` on the queue at
    /// that moment (ipcx's blocking [`recv`](MessageQueue::recv) is such a receive, and
    /// suppresses it; [`recv_timeout`](MessageQueue::recv_timeout) waits in `poll` and
    /// does not), nor for messages that arrive while the queue is not empty.
    ///
    /// **Trap:** the kernel drops the registration when the registering process closes
    /// *any* descriptor of the queue, not only this handle: dropping a second
    /// `MessageQueue` of the same queue in this process (a sender, say) silently cancels
    /// it. A signal left at its default action terminates the process (`SIGUSR1`,
    /// `SIGIO`…): block it and read it from a `signalfd`, or install a handler first.
    /// Most programs are better served by readiness on the descriptor ([`AsFd`]).
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if this or another process is registered already;
    /// [`ErrorKind::InvalidInput`] for signal 0 (which would hold the one registration
    /// and never signal), `SIGKILL`, `SIGSTOP`, or an invalid number.
    ///
    /// # References
    /// - [mq_notify(3)](https://man7.org/linux/man-pages/man3/mq_notify.3.html)
    #[doc(alias = "mq_notify")]
    pub fn notify_signal(&self, signal: i32) -> Result<()> {
        if signal <= 0 || signal == libc::SIGKILL || signal == libc::SIGSTOP {
            return Err(Error::new("mq_notify", ErrorKind::InvalidInput)
                .with_object(&self.name)
                .with_hint(format!(
                    "signal {signal} cannot notify: 0 would never be sent, and SIGKILL and \
                     SIGSTOP cannot be caught"
                )));
        }
        sys::mq::notify(self.fd.as_fd(), Some(signal)).map_err(|e| {
            let err = Error::from_errno("mq_notify", e.raw_os_error()).with_object(&self.name);
            match e {
                Errno::BUSY => err.with_kind(ErrorKind::AlreadyExists).with_hint(
                    "this process or another is registered for notification on this queue \
                     already; only one registration may exist at a time",
                ),
                Errno::INVAL => err.with_hint(format!("{signal} is not a valid signal number")),
                _ => err,
            }
        })
    }

    /// Removes this process's [`notify_signal`](MessageQueue::notify_signal)
    /// registration, if it has one.
    #[doc(alias = "mq_notify")]
    pub fn notify_cancel(&self) -> Result<()> {
        match sys::mq::notify(self.fd.as_fd(), None) {
            // Another process's registration, or none: nothing of ours to remove.
            Ok(()) | Err(Errno::BUSY) => Ok(()),
            Err(e) => Err(Error::from_errno("mq_notify", e.raw_os_error()).with_object(&self.name)),
        }
    }

    fn load_sizes(&mut self) -> Result<()> {
        let attr = self.attributes()?;
        self.capacity = attr.capacity;
        self.max_msg_size = attr.max_msg_size;
        Ok(())
    }

    /// Refuses a queue whose owner is not the caller's user (for `open_or_create`).
    fn check_mine(&self) -> Result<()> {
        let st = rustix::fs::fstat(&self.fd).op_on("fstat", &self.name)?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(Error::new("mq_open", ErrorKind::PermissionDenied)
                .with_object(&self.name)
                .with_hint(format!(
                    "the existing queue belongs to uid {} (you are uid {me}); refusing to \
                     reuse a queue another user created",
                    st.st_uid
                )));
        }
        Ok(())
    }

    fn send_with(&self, msg: &[u8], prio: u32, deadline: Deadline) -> Result<()> {
        let refuse = |kind, hint: String| {
            Err(Error::new("mq_send", kind)
                .with_object(&self.name)
                .with_hint(hint))
        };
        if !self.access.can_send() {
            return refuse(
                ErrorKind::InvalidInput,
                "this handle was opened with Access::ReceiveOnly".into(),
            );
        }
        if msg.len() > self.max_msg_size {
            return refuse(
                ErrorKind::MessageTooLarge,
                format!(
                    "the message is {} bytes; the queue's messages are at most {} bytes \
                     (mq_msgsize, fixed at creation)",
                    msg.len(),
                    self.max_msg_size
                ),
            );
        }
        if prio >= MQ_PRIO_MAX {
            return refuse(
                ErrorKind::InvalidInput,
                format!(
                    "priority {prio} is out of range; priorities run from 0 to {}",
                    MQ_PRIO_MAX - 1
                ),
            );
        }
        let fd = self.fd.as_fd();
        retry_blocking(
            &[(fd, PollFlags::OUT)],
            deadline,
            "mq_send",
            &self.name,
            |block| {
                if block {
                    sys::mq::send(fd, msg, prio)
                } else {
                    sys::mq::send_now(fd, msg, prio)
                }
            },
        )
        .map_err(|e| match (e.kind(), deadline) {
            (ErrorKind::WouldBlock, _) => e.with_hint(format!(
                "the queue is full ({} messages); wait with send or send_timeout",
                self.capacity
            )),
            (ErrorKind::TimedOut, Deadline::At(_, timeout)) => e.with_hint(format!(
                "the queue stayed full ({} messages) for {timeout:?}",
                self.capacity
            )),
            (ErrorKind::MessageTooLarge, _) => e.with_hint(format!(
                "the message is {} bytes; the queue's messages are at most {} bytes",
                msg.len(),
                self.max_msg_size
            )),
            _ => e,
        })
    }

    fn recv_with(&self, buf: &mut [u8], deadline: Deadline) -> Result<(usize, u32)> {
        if !self.access.can_receive() {
            return Err(Error::new("mq_receive", ErrorKind::InvalidInput)
                .with_object(&self.name)
                .with_hint("this handle was opened with Access::SendOnly"));
        }
        if buf.len() < self.max_msg_size {
            return Err(Error::new("mq_receive", ErrorKind::MessageTooLarge)
                .with_object(&self.name)
                .with_hint(format!(
                    "the buffer is {} bytes but the queue's messages may be up to {} bytes \
                     (mq_msgsize); pass a buffer of at least {} bytes (max_msg_size())",
                    buf.len(),
                    self.max_msg_size,
                    self.max_msg_size
                )));
        }
        let fd = self.fd.as_fd();
        retry_blocking(
            &[(fd, PollFlags::IN)],
            deadline,
            "mq_receive",
            &self.name,
            |block| {
                if block {
                    sys::mq::receive(fd, buf)
                } else {
                    sys::mq::receive_now(fd, buf)
                }
            },
        )
        .map_err(|e| match (e.kind(), deadline) {
            (ErrorKind::WouldBlock, _) => {
                e.with_hint("the queue is empty; wait with recv or recv_timeout")
            }
            (ErrorKind::TimedOut, Deadline::At(_, timeout)) => {
                e.with_hint(format!("no message arrived within {timeout:?}"))
            }
            _ => e,
        })
    }
}

impl AsFd for MessageQueue {
    /// The queue descriptor, for `poll`/`epoll`: readable while a message is queued,
    /// writable while there is room. It is in blocking mode (see the module docs): after
    /// a readiness event, receive with [`try_recv`](MessageQueue::try_recv), which never
    /// waits, rather than a raw `mq_receive`, which could if another reader took the
    /// message first.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message queue {}", self.name)
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        let Some(owner) = &self.owner else { return };
        if owner.keep {
            return;
        }
        let cname = self.name.to_cstring();
        if names_our_queue(&cname, owner) {
            // Nothing useful can be done with a failure in drop; the queue is then left
            // for `ipcx gc`.
            let _ = sys::mq::unlink(&cname);
        }
    }
}

/// Whether `name` still refers to the queue the owner created. Our own descriptor is
/// still open, so its inode number cannot have been reused by a newer queue.
fn names_our_queue(name: &std::ffi::CStr, owner: &Owner) -> bool {
    // Opening needs read or write permission, which the creator may have left out of the
    // mode; try both.
    for access in [libc::O_RDONLY, libc::O_WRONLY] {
        match sys::mq::open(name, access | libc::O_NONBLOCK, 0, None) {
            Ok(fd) => {
                return rustix::fs::fstat(&fd)
                    .is_ok_and(|st| st.st_dev == owner.dev && st.st_ino == owner.ino);
            }
            Err(Errno::NOENT) => return false,
            Err(Errno::ACCESS) => {}
            // Cannot check (out of descriptors, say): unlink as the creator asked, rather
            // than leave the queue behind.
            Err(_) => return true,
        }
    }
    true
}
