//! System V message queues: typed messages, selected by type on receipt.
//!
//! ```
//! use std::time::Duration;
//! use ipcx::mq::sysv::{SysvMq, TypeFilter};
//! use ipcx::sysv::Key;
//!
//! // A private queue (no key): hand `q.id()` to a child, which opens it with `from_id`.
//! let q = SysvMq::create(Key::PRIVATE)?;
//! q.send(2, b"for worker 2")?;
//! q.send(1, b"for worker 1")?;
//!
//! let peer = SysvMq::from_id(q.id())?;
//! let mut buf = [0u8; 64];
//! let (mtype, len) = peer.recv_timeout(TypeFilter::Exact(1), &mut buf, Duration::from_secs(1))?;
//! assert_eq!((mtype, &buf[..len]), (1, &b"for worker 1"[..]));
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # Types
//!
//! Every message carries a positive type (`mtype`), chosen by the sender. A receiver
//! takes the first message that matches a [`TypeFilter`]: any type, exactly one type,
//! the lowest type up to a bound (a priority scheme where low types come first), or any
//! type but one. One queue can so serve many clients, each reading only its own type.
//!
//! # Sizes and limits
//!
//! A message's text may be up to `/proc/sys/kernel/msgmax` bytes (8192 by default; the
//! same for root), and a queue holds at most `msg_qbytes` bytes of text in all
//! (`/proc/sys/kernel/msgmnb` when created; [`SysvMq::set_qbytes`] changes it, beyond
//! `msgmnb` only with `CAP_SYS_RESOURCE`). The system holds at most
//! `/proc/sys/kernel/msgmni` queues. A message that can never fit fails with
//! [`ErrorKind::MessageTooLarge`] naming the limit, instead of waiting for ever.
//!
//! # Waiting
//!
//! System V queues have no descriptor and `msgsnd`/`msgrcv` take no timeout. The blocking
//! forms block in the kernel (and retry `EINTR`); `try_` forms pass `IPC_NOWAIT`; the
//! `_timeout` forms retry with `IPC_NOWAIT` after a sleep that starts at 1 ms and doubles
//! up to 20 ms, until the deadline. A timed wait therefore notices a message up to 20 ms
//! late and costs a few wake-ups per second; use the blocking form, or a POSIX queue,
//! where that matters. The kernel hands a new message straight to a receiver blocked in
//! `msgrcv`, so a `_timeout` receiver beside blocking ones on the same queue gets only
//! what they leave: let all receivers of a queue use the same form.
//!
//! # Removal
//!
//! The handle that creates a queue removes it (`IPC_RMID`) on drop unless
//! [`keep`](SysvMq::keep) was called; handles that open one never do. Removal is
//! immediate: queued messages are discarded, and callers blocked on the queue fail with
//! [`ErrorKind::Removed`].
//!
//! # References
//! - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)
//! - [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html),
//!   [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html),
//!   [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::io::Errno;

use super::Access;
use crate::error::{Error, ErrorKind, Result, read_sysctl};
use crate::owner::{OpenMode, obtain};
use crate::sys;
use crate::sysv::{IpcPerm, Key, SysvOwner, check_reusable, describe, enospc_hint, ipc_time};
use crate::wait::{Backoff, Deadline};

const MSGMAX: &str = "/proc/sys/kernel/msgmax";
const MSGMNB: &str = "/proc/sys/kernel/msgmnb";
/// Which message a receive takes: the first one in the queue that matches.
///
/// # References
/// - [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html), `msgtyp`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeFilter {
    /// The first message of any type (`msgtyp` 0).
    Any,
    /// The first message of exactly this type (`msgtyp` > 0).
    Exact(i64),
    /// The first message of the lowest type that is at most this bound (`msgtyp` < 0):
    /// with types used as priorities, the most urgent message up to the bound.
    UpTo(i64),
    /// The first message of any type but this one (`MSG_EXCEPT`, Linux only).
    Except(i64),
}

impl TypeFilter {
    /// The `msgtyp` argument and extra flags, or an error for a type that is not positive.
    fn raw(self, object: &str) -> Result<(libc::c_long, libc::c_int)> {
        let (t, flags) = match self {
            TypeFilter::Any => return Ok((0, 0)),
            TypeFilter::Exact(t) => (t, 0),
            TypeFilter::UpTo(t) => (t, 0),
            TypeFilter::Except(t) => (t, libc::MSG_EXCEPT),
        };
        let t = check_type("msgrcv", t, object)?;
        match self {
            TypeFilter::UpTo(_) => Ok((-t, flags)),
            _ => Ok((t, flags)),
        }
    }
}

impl fmt::Display for TypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeFilter::Any => f.write_str("any type"),
            TypeFilter::Exact(t) => write!(f, "type {t}"),
            TypeFilter::UpTo(t) => write!(f, "the lowest type up to {t}"),
            TypeFilter::Except(t) => write!(f, "any type but {t}"),
        }
    }
}

/// A message type as the kernel takes it: positive, and within `long`.
fn check_type(op: &'static str, mtype: i64, object: &str) -> Result<libc::c_long> {
    match libc::c_long::try_from(mtype) {
        Ok(t) if t > 0 => Ok(t),
        _ => Err(Error::new(op, ErrorKind::InvalidInput)
            .with_object(object)
            .with_hint(format!(
                "message type {mtype} is invalid; types are positive numbers up to {}",
                libc::c_long::MAX
            ))),
    }
}

/// Options for creating or opening a System V message queue.
///
/// # References
/// - [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
#[derive(Clone, Debug)]
pub struct SysvMqOptions {
    mode: u32,
    access: Access,
}

impl Default for SysvMqOptions {
    fn default() -> SysvMqOptions {
        SysvMqOptions {
            mode: 0o600,
            access: Access::Both,
        }
    }
}

impl SysvMqOptions {
    /// Default options: mode 0600, send and receive.
    pub fn new() -> SysvMqOptions {
        SysvMqOptions::default()
    }

    /// The permission bits of a created queue (System V IPC ignores the umask, so they
    /// apply exactly). Only the lower 9 bits count; read permission lets others receive
    /// and stat, write permission lets them send.
    pub fn mode(mut self, mode: u32) -> SysvMqOptions {
        self.mode = mode & 0o777;
        self
    }

    /// Which permission opening an existing queue checks (default: [`Access::Both`]).
    /// The kernel checks again on every send and receive.
    pub fn access(mut self, access: Access) -> SysvMqOptions {
        self.access = access;
        self
    }

    /// Creates a new queue (`IPC_CREAT | IPC_EXCL`); [`Key::PRIVATE`] always makes a new
    /// one. The returned handle removes the queue on drop.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if a queue has the key; [`ErrorKind::LimitReached`]
    /// when the system holds `/proc/sys/kernel/msgmni` queues already.
    #[doc(alias = "msgget")]
    pub fn create(&self, key: Key) -> Result<SysvMq> {
        self.obtain(key, OpenMode::Create)
    }

    /// Opens the existing queue with `key`. The handle never removes it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no queue has the key (or for [`Key::PRIVATE`]: use
    /// [`SysvMq::from_id`]); [`ErrorKind::PermissionDenied`] if its mode does not grant
    /// the [`access`](SysvMqOptions::access) asked for.
    #[doc(alias = "msgget")]
    pub fn open(&self, key: Key) -> Result<SysvMq> {
        self.obtain(key, OpenMode::Open)
    }

    /// Opens the queue with `key` if it exists and belongs to the caller's user, else
    /// creates it (and then owns it). A queue of another user is refused with
    /// [`ErrorKind::PermissionDenied`].
    #[doc(alias = "msgget")]
    pub fn open_or_create(&self, key: Key) -> Result<SysvMq> {
        self.obtain(key, OpenMode::OpenOrCreate)
    }

    fn obtain(&self, key: Key, how: OpenMode) -> Result<SysvMq> {
        if key.is_private() && how != OpenMode::Create {
            return Err(Error::new("msgget", ErrorKind::NotFound)
                .with_object(key)
                .with_hint(
                    "a private queue cannot be found by key; pass its id to SysvMq::from_id",
                ));
        }
        match how {
            OpenMode::Create => self.make(key),
            OpenMode::Open => self.open_existing(key),
            OpenMode::OpenOrCreate => obtain(
                how,
                || self.make(key),
                |_| {
                    let queue = self.open_existing(key)?;
                    // Removed between msgget and the stat: as good as not found, so
                    // obtain goes round again.
                    let perm = queue
                        .stat()
                        .map_err(|e| match e.kind() {
                            ErrorKind::Removed => e.with_kind(ErrorKind::NotFound),
                            _ => e,
                        })?
                        .perm;
                    check_reusable(&perm, "msgget", &queue.label)?;
                    Ok(queue)
                },
            ),
        }
    }

    fn make(&self, key: Key) -> Result<SysvMq> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | self.mode as libc::c_int;
        let id = sys::msg::get(key.raw(), flags).map_err(|e| {
            let err = Error::from_errno("msgget", e.raw_os_error()).with_object(key);
            match e {
                Errno::EXIST => err.with_hint(
                    "a queue with this key exists already; open it with SysvMqOptions::open, \
                     or remove it (SysvMq::remove_key, `ipcrm -Q KEY`) if it is a stale \
                     leftover of yours",
                ),
                Errno::NOSPC => err.with_hint(enospc_hint("msgmni", "message queues")),
                _ => err,
            }
        })?;
        Ok(SysvMq {
            id,
            key,
            label: describe("msg queue", id, key),
            owner: Some(SysvOwner::new(
                id,
                key,
                |id| sys::msg::stat(id).map(|ds| IpcPerm::from_raw(&ds.msg_perm)),
                sys::msg::remove,
            )),
        })
    }

    fn open_existing(&self, key: Key) -> Result<SysvMq> {
        let wanted = match self.access {
            Access::Both => 0o600,
            Access::SendOnly => 0o200,
            Access::ReceiveOnly => 0o400,
        };
        let id = sys::msg::get(key.raw(), wanted).map_err(|e| {
            let err = Error::from_errno("msgget", e.raw_os_error()).with_object(key);
            match e {
                Errno::NOENT => err.with_hint(
                    "no queue has this key; create it first (SysvMqOptions::create or \
                     open_or_create), or check the key",
                ),
                Errno::ACCESS => err.with_hint(format!(
                    "the queue's mode does not give this user {} permission; ask its owner \
                     (`ipcs -q`) to widen the mode, or open it with the Access it allows",
                    self.access.describe()
                )),
                _ => err,
            }
        })?;
        Ok(SysvMq {
            id,
            key,
            label: describe("msg queue", id, key),
            owner: None,
        })
    }
}

/// A System V message queue, removed on drop by the handle that created it.
///
/// Every blocking call comes in three forms: blocking ([`send`](SysvMq::send)), never
/// blocking ([`try_send`](SysvMq::try_send), [`ErrorKind::WouldBlock`]) and bounded
/// ([`send_timeout`](SysvMq::send_timeout), [`ErrorKind::TimedOut`]).
///
/// # References
/// - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)
#[derive(Debug)]
pub struct SysvMq {
    id: i32,
    key: Key,
    /// `"msg queue id 5 (key 0x00001234)"`, for errors.
    label: String,
    owner: Option<SysvOwner>,
}

/// The state of a queue, as `msgctl(IPC_STAT)` reports it.
///
/// # References
/// - [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SysvMqStat {
    /// Owner, creator and permission bits.
    pub perm: IpcPerm,
    /// The most bytes of message text the queue holds (`msg_qbytes`).
    pub qbytes: u64,
    /// How many messages are queued (`msg_qnum`).
    pub qnum: u64,
    /// How many bytes of text are queued (`msg_cbytes`; 0 on 32-bit MIPS glibc, whose
    /// `libc` binding hides the field).
    pub cbytes: u64,
    /// The process that sent last (`msg_lspid`), if any has.
    pub lspid: Option<i32>,
    /// The process that received last (`msg_lrpid`), if any has.
    pub lrpid: Option<i32>,
    /// When a message was last sent (`msg_stime`), if ever.
    pub stime: Option<SystemTime>,
    /// When a message was last received (`msg_rtime`), if ever.
    pub rtime: Option<SystemTime>,
    /// When the queue was created or last changed with `IPC_SET` (`msg_ctime`).
    pub ctime: SystemTime,
}

impl SysvMq {
    /// Options for mode and access.
    pub fn options() -> SysvMqOptions {
        SysvMqOptions::new()
    }

    /// Creates a new queue with mode 0600; see [`SysvMqOptions::create`].
    #[doc(alias = "msgget")]
    pub fn create(key: Key) -> Result<SysvMq> {
        SysvMqOptions::new().create(key)
    }

    /// Opens an existing queue for sending and receiving; see [`SysvMqOptions::open`].
    #[doc(alias = "msgget")]
    pub fn open(key: Key) -> Result<SysvMq> {
        SysvMqOptions::new().open(key)
    }

    /// Opens the caller's queue or creates it; see [`SysvMqOptions::open_or_create`].
    #[doc(alias = "msgget")]
    pub fn open_or_create(key: Key) -> Result<SysvMq> {
        SysvMqOptions::new().open_or_create(key)
    }

    /// A handle on the queue with id `id`, as another process's [`SysvMq::id`] gave it:
    /// the way to share a [`Key::PRIVATE`] queue with a child. The handle never removes
    /// the queue.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no queue has this id (it was removed, or never existed).
    #[doc(alias = "msgctl")]
    pub fn from_id(id: i32) -> Result<SysvMq> {
        let label = describe("msg queue", id, Key::PRIVATE);
        match sys::msg::stat(id) {
            Ok(ds) => {
                let key = IpcPerm::from_raw(&ds.msg_perm).key;
                Ok(SysvMq {
                    id,
                    key,
                    label: describe("msg queue", id, key),
                    owner: None,
                })
            }
            // It exists, but this user may not read it: sending may still be allowed.
            Err(Errno::ACCESS) => Ok(SysvMq {
                id,
                key: Key::PRIVATE,
                label,
                owner: None,
            }),
            Err(e @ (Errno::INVAL | Errno::IDRM)) => {
                Err(Error::from_errno("msgctl", e.raw_os_error())
                    .with_object(label)
                    .with_kind(ErrorKind::NotFound)
                    .with_hint("no message queue has this id (removed, or never created)"))
            }
            Err(e) => Err(Error::from_errno("msgctl", e.raw_os_error()).with_object(label)),
        }
    }

    /// Removes the queue of `key`: what to do with one a crashed run left behind. Works
    /// for its owner or creator whatever the queue's mode (no read or write permission
    /// is needed to remove).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no queue has the key; [`ErrorKind::PermissionDenied`]
    /// if the caller is neither its owner nor its creator; [`ErrorKind::InvalidInput`]
    /// for [`Key::PRIVATE`], which names no queue.
    #[doc(alias = "IPC_RMID")]
    pub fn remove_key(key: Key) -> Result<()> {
        if key.is_private() {
            return Err(Error::new("msgget", ErrorKind::InvalidInput)
                .with_object(key)
                .with_hint("IPC_PRIVATE names no queue; remove it by its id"));
        }
        let id = sys::msg::get(key.raw(), 0).map_err(|e| {
            let err = Error::from_errno("msgget", e.raw_os_error()).with_object(key);
            match e {
                Errno::NOENT => err.with_hint("no message queue has this key"),
                _ => err,
            }
        })?;
        let label = describe("msg queue", id, key);
        sys::msg::remove(id).map_err(|e| {
            let err = Error::from_errno("msgctl IPC_RMID", e.raw_os_error()).with_object(&label);
            match e {
                Errno::PERM => err.with_hint(
                    "only the queue's owner or creator (or a privileged process) may remove it",
                ),
                Errno::INVAL | Errno::IDRM => err
                    .with_kind(ErrorKind::NotFound)
                    .with_hint("the queue was removed meanwhile"),
                _ => err,
            }
        })
    }

    /// The queue's id: hand it to another process for [`SysvMq::from_id`].
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key the queue was created or opened with: [`Key::PRIVATE`] for a private queue,
    /// and for one attached with [`SysvMq::from_id`] without read permission (its key is
    /// then unknown).
    pub fn key(&self) -> Key {
        self.key
    }

    /// Whether this handle created the queue and will remove it on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| !o.is_kept())
    }

    /// Leaves the queue in place when this handle is dropped.
    pub fn keep(&mut self) {
        if let Some(owner) = self.owner.as_mut() {
            owner.keep();
        }
    }

    /// Removes the queue now (`IPC_RMID`), whoever created it: queued messages are
    /// discarded and blocked callers fail with [`ErrorKind::Removed`].
    ///
    /// # Errors
    /// [`ErrorKind::PermissionDenied`] unless the caller is the queue's owner or creator
    /// (or has `CAP_SYS_ADMIN`); [`ErrorKind::Removed`] if it is gone already.
    #[doc(alias = "msgctl")]
    #[doc(alias = "IPC_RMID")]
    pub fn remove(mut self) -> Result<()> {
        // Whatever the outcome, drop must not try again.
        self.keep();
        sys::msg::remove(self.id).map_err(|e| {
            let err =
                Error::from_errno("msgctl IPC_RMID", e.raw_os_error()).with_object(&self.label);
            match e {
                Errno::PERM => err.with_hint(
                    "only the queue's owner or creator (or a process with CAP_SYS_ADMIN) may \
                     remove it",
                ),
                Errno::INVAL | Errno::IDRM => err
                    .with_kind(ErrorKind::Removed)
                    .with_hint("the queue is gone already"),
                _ => err,
            }
        })
    }

    /// The queue's owner, permissions, sizes and last senders and receivers.
    ///
    /// # Errors
    /// [`ErrorKind::PermissionDenied`] without read permission; [`ErrorKind::Removed`] if
    /// the queue is gone.
    #[doc(alias = "msgctl")]
    #[doc(alias = "IPC_STAT")]
    pub fn stat(&self) -> Result<SysvMqStat> {
        let ds = sys::msg::stat(self.id).map_err(|e| self.ctl_error("msgctl IPC_STAT", e))?;
        let pid = |p: libc::pid_t| (p > 0).then_some(p);
        Ok(SysvMqStat {
            perm: IpcPerm::from_raw(&ds.msg_perm),
            qbytes: ds.msg_qbytes as u64,
            qnum: ds.msg_qnum as u64,
            cbytes: sys::msg::cbytes(&ds),
            lspid: pid(ds.msg_lspid),
            lrpid: pid(ds.msg_lrpid),
            stime: ipc_time(ds.msg_stime),
            rtime: ipc_time(ds.msg_rtime),
            ctime: ipc_time(ds.msg_ctime).unwrap_or(UNIX_EPOCH),
        })
    }

    /// Sets the most bytes of text the queue holds (`msg_qbytes`, via `IPC_SET`).
    ///
    /// `IPC_SET` also writes the owner and mode, so they are read first and written back
    /// unchanged; a concurrent `IPC_SET` by another process between the two calls would
    /// be undone.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] above `/proc/sys/kernel/msgmnb` without
    /// `CAP_SYS_RESOURCE`; [`ErrorKind::PermissionDenied`] unless the caller is the
    /// queue's owner or creator.
    #[doc(alias = "msgctl")]
    #[doc(alias = "IPC_SET")]
    pub fn set_qbytes(&self, bytes: u64) -> Result<()> {
        let mut ds = sys::msg::stat(self.id).map_err(|e| self.ctl_error("msgctl IPC_STAT", e))?;
        #[allow(clippy::useless_conversion)] // `msglen_t` is 32 bits on 32-bit targets
        let qbytes = bytes.try_into();
        ds.msg_qbytes = match qbytes {
            Ok(b) => b,
            Err(_) => {
                return Err(Error::new("msgctl IPC_SET", ErrorKind::InvalidInput)
                    .with_object(&self.label)
                    .with_hint(format!("{bytes} bytes does not fit msg_qbytes")));
            }
        };
        sys::msg::set(self.id, &ds).map_err(|e| {
            let msgmnb = read_sysctl(MSGMNB);
            let above = msgmnb
                .as_deref()
                .and_then(|m| m.parse::<u64>().ok())
                .is_some_and(|m| bytes > m);
            match e {
                Errno::PERM if above => Error::from_errno("msgctl IPC_SET", e.raw_os_error())
                    .with_object(&self.label)
                    .with_kind(ErrorKind::LimitReached)
                    .with_hint(format!(
                        "{bytes} bytes exceeds {MSGMNB} (now {}); only a process with \
                             CAP_SYS_RESOURCE may raise msg_qbytes beyond it",
                        msgmnb.unwrap_or_default()
                    )),
                _ => self.ctl_error("msgctl IPC_SET", e),
            }
        })
    }

    /// Sends `data` as a message of type `mtype` (positive), waiting as long as the queue
    /// is full.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`] for a type that is not positive, before any call;
    /// - [`ErrorKind::MessageTooLarge`] if `data` is longer than `/proc/sys/kernel/msgmax`
    ///   or than the queue's `msg_qbytes` (so it could never fit);
    /// - [`ErrorKind::Removed`] if the queue is removed, also while waiting.
    ///
    /// # References
    /// - [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html)
    #[doc(alias = "msgsnd")]
    pub fn send(&self, mtype: i64, data: &[u8]) -> Result<()> {
        self.send_with(mtype, data, Deadline::Never)
    }

    /// Sends only if the queue has room now (`IPC_NOWAIT`).
    ///
    /// # Errors
    /// As [`send`](SysvMq::send), and [`ErrorKind::WouldBlock`] if the queue is full.
    #[doc(alias = "msgsnd")]
    pub fn try_send(&self, mtype: i64, data: &[u8]) -> Result<()> {
        self.send_with(mtype, data, Deadline::Now)
    }

    /// Sends, waiting at most `timeout` for room (polling; see the
    /// [module docs](self#waiting)).
    ///
    /// # Errors
    /// As [`send`](SysvMq::send), and [`ErrorKind::TimedOut`] if the queue stayed full.
    #[doc(alias = "msgsnd")]
    pub fn send_timeout(&self, mtype: i64, data: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(mtype, data, Deadline::after(timeout))
    }

    /// Receives the first message that matches `filter` into `buf`, waiting as long as
    /// there is none; returns its type and length.
    ///
    /// # Errors
    /// - [`ErrorKind::MessageTooLarge`] (`E2BIG`) if the message is longer than `buf`:
    ///   it stays queued; use a larger buffer or [`recv_truncating`](SysvMq::recv_truncating);
    /// - [`ErrorKind::InvalidInput`] for a filter type that is not positive;
    /// - [`ErrorKind::Removed`] if the queue is removed, also while waiting.
    ///
    /// # References
    /// - [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html)
    #[doc(alias = "msgrcv")]
    pub fn recv(&self, filter: TypeFilter, buf: &mut [u8]) -> Result<(i64, usize)> {
        self.recv_with(filter, buf, Deadline::Never, false)
    }

    /// Receives only if a matching message is queued now (`IPC_NOWAIT`).
    ///
    /// # Errors
    /// As [`recv`](SysvMq::recv), and [`ErrorKind::WouldBlock`] (`ENOMSG`) if none is.
    #[doc(alias = "msgrcv")]
    pub fn try_recv(&self, filter: TypeFilter, buf: &mut [u8]) -> Result<(i64, usize)> {
        self.recv_with(filter, buf, Deadline::Now, false)
    }

    /// Receives, waiting at most `timeout` for a matching message (polling; see the
    /// [module docs](self#waiting)).
    ///
    /// # Errors
    /// As [`recv`](SysvMq::recv), and [`ErrorKind::TimedOut`] if none arrived.
    #[doc(alias = "msgrcv")]
    pub fn recv_timeout(
        &self,
        filter: TypeFilter,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(i64, usize)> {
        self.recv_with(filter, buf, Deadline::after(timeout), false)
    }

    /// As [`recv`](SysvMq::recv), but a message longer than `buf` is cut to fit and the
    /// rest discarded (`MSG_NOERROR`); the returned length is what was kept, so a
    /// truncation cannot be told from a message of exactly `buf.len()` bytes.
    #[doc(alias = "msgrcv")]
    #[doc(alias = "MSG_NOERROR")]
    pub fn recv_truncating(&self, filter: TypeFilter, buf: &mut [u8]) -> Result<(i64, usize)> {
        self.recv_with(filter, buf, Deadline::Never, true)
    }

    /// As [`try_recv`](SysvMq::try_recv), truncating like
    /// [`recv_truncating`](SysvMq::recv_truncating).
    #[doc(alias = "msgrcv")]
    pub fn try_recv_truncating(&self, filter: TypeFilter, buf: &mut [u8]) -> Result<(i64, usize)> {
        self.recv_with(filter, buf, Deadline::Now, true)
    }

    /// As [`recv_timeout`](SysvMq::recv_timeout), truncating like
    /// [`recv_truncating`](SysvMq::recv_truncating).
    #[doc(alias = "msgrcv")]
    pub fn recv_truncating_timeout(
        &self,
        filter: TypeFilter,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(i64, usize)> {
        self.recv_with(filter, buf, Deadline::after(timeout), true)
    }

    fn send_with(&self, mtype: i64, data: &[u8], deadline: Deadline) -> Result<()> {
        let mtype = check_type("msgsnd", mtype, &self.label)?;
        let mut backoff = Backoff::new();
        let mut fits_checked = false;
        loop {
            match sys::msg::send(self.id, mtype, data, libc::IPC_NOWAIT) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {}
                Err(e) => return Err(self.send_error(e, data.len())),
            }
            // Full, or the message is larger than the whole queue and never fits: the
            // kernel would then wait for ever (or say EAGAIN for ever). Check once.
            if !fits_checked {
                self.check_fits(data.len())?;
                fits_checked = true;
            }
            match deadline {
                Deadline::Now => {
                    return Err(Error::from_errno("msgsnd", libc::EAGAIN)
                        .with_object(&self.label)
                        .with_hint("the queue is full; wait with send or send_timeout"));
                }
                Deadline::Never => return self.send_blocking(mtype, data),
                Deadline::At(_, timeout) => {
                    backoff
                        .sleep(deadline, "msgsnd", &self.label)
                        .map_err(|e| {
                            e.with_hint(format!("the queue stayed full for {timeout:?}"))
                        })?;
                }
            }
        }
    }

    fn send_blocking(&self, mtype: libc::c_long, data: &[u8]) -> Result<()> {
        loop {
            match sys::msg::send(self.id, mtype, data, 0) {
                Ok(()) => return Ok(()),
                // A signal interrupted the wait (msgsnd is never restarted): wait again.
                Err(Errno::INTR) => continue,
                Err(e) => return Err(self.send_error(e, data.len())),
            }
        }
    }

    /// Refuses a message larger than the queue's whole capacity (`msg_qbytes`).
    fn check_fits(&self, len: usize) -> Result<()> {
        // Without read permission there is nothing to check against; let it wait.
        let Ok(ds) = sys::msg::stat(self.id) else {
            return Ok(());
        };
        #[allow(clippy::unnecessary_cast)] // `msglen_t` is 32 bits on 32-bit targets
        let qbytes = ds.msg_qbytes as u64;
        // The kernel also counts each message against msg_qbytes (1 + qnum <= qbytes),
        // so a queue of 0 bytes takes nothing, not even an empty message.
        if len as u64 > qbytes || qbytes == 0 {
            return Err(Error::new("msgsnd", ErrorKind::MessageTooLarge)
                .with_object(&self.label)
                .with_hint(format!(
                    "the message is {len} bytes but the queue holds at most {qbytes} bytes \
                     (msg_qbytes), so it can never fit; raise it with set_qbytes (above \
                     {MSGMNB}, now {}, needs CAP_SYS_RESOURCE) or send smaller messages",
                    read_sysctl(MSGMNB).unwrap_or_else(|| "unknown".into())
                )));
        }
        Ok(())
    }

    fn send_error(&self, e: Errno, len: usize) -> Error {
        let err = Error::from_errno("msgsnd", e.raw_os_error()).with_object(&self.label);
        match e {
            Errno::INVAL => {
                let msgmax = read_sysctl(MSGMAX);
                if msgmax
                    .as_deref()
                    .and_then(|m| m.parse::<usize>().ok())
                    .is_some_and(|m| len > m)
                {
                    return err.with_kind(ErrorKind::MessageTooLarge).with_hint(format!(
                        "the message is {len} bytes; {MSGMAX} (now {}) is the largest message \
                         msgsnd accepts, for every user; send smaller messages or raise the \
                         limit (`sysctl kernel.msgmax`)",
                        msgmax.unwrap_or_default()
                    ));
                }
                self.gone_or(err)
            }
            Errno::IDRM => err.with_hint("the queue was removed while the call waited for room"),
            Errno::ACCESS => {
                err.with_hint("the queue's mode does not give this user write permission")
            }
            _ => err,
        }
    }

    fn recv_with(
        &self,
        filter: TypeFilter,
        buf: &mut [u8],
        deadline: Deadline,
        truncate: bool,
    ) -> Result<(i64, usize)> {
        let (msgtyp, mut flags) = filter.raw(&self.label)?;
        if truncate {
            flags |= libc::MSG_NOERROR;
        }
        if !matches!(deadline, Deadline::Never) {
            flags |= libc::IPC_NOWAIT;
        }
        let mut backoff = Backoff::new();
        loop {
            match sys::msg::receive(self.id, msgtyp, buf, flags) {
                Ok(got) => return Ok(got),
                // A signal interrupted a blocking wait (msgrcv is never restarted).
                Err(Errno::INTR) => continue,
                Err(Errno::NOMSG) => match deadline {
                    Deadline::At(_, timeout) => {
                        backoff
                            .sleep(deadline, "msgrcv", &self.label)
                            .map_err(|e| {
                                e.with_hint(format!(
                                    "no message of {filter} arrived within {timeout:?}"
                                ))
                            })?;
                    }
                    _ => {
                        return Err(Error::from_errno("msgrcv", libc::ENOMSG)
                            .with_object(&self.label)
                            .with_kind(ErrorKind::WouldBlock)
                            .with_hint(format!(
                                "no message of {filter} is queued; wait with recv or recv_timeout"
                            )));
                    }
                },
                Err(e) => return Err(self.recv_error(e, buf.len())),
            }
        }
    }

    fn recv_error(&self, e: Errno, len: usize) -> Error {
        let err = Error::from_errno("msgrcv", e.raw_os_error()).with_object(&self.label);
        match e {
            Errno::TOOBIG => err.with_kind(ErrorKind::MessageTooLarge).with_hint(format!(
                "the next matching message is longer than the {len}-byte buffer and stays \
                 queued; pass a buffer of {MSGMAX} bytes (now {}) to take any message, or use \
                 recv_truncating to cut it",
                read_sysctl(MSGMAX).unwrap_or_else(|| "unknown".into())
            )),
            Errno::IDRM => {
                err.with_hint("the queue was removed while the call waited for a message")
            }
            Errno::INVAL => self.gone_or(err),
            Errno::ACCESS => {
                err.with_hint("the queue's mode does not give this user read permission")
            }
            _ => err,
        }
    }

    /// `EINVAL` from a queue call with valid arguments: the id no longer names a queue.
    fn gone_or(&self, err: Error) -> Error {
        match sys::msg::stat(self.id) {
            Err(Errno::INVAL | Errno::IDRM) => err
                .with_kind(ErrorKind::Removed)
                .with_hint("the queue was removed: its id no longer names a queue"),
            _ => err,
        }
    }

    fn ctl_error(&self, op: &'static str, e: Errno) -> Error {
        let err = Error::from_errno(op, e.raw_os_error()).with_object(&self.label);
        match e {
            Errno::INVAL | Errno::IDRM => self.gone_or(err),
            Errno::ACCESS => {
                err.with_hint("the queue's mode does not give this user read permission")
            }
            Errno::PERM => err.with_hint(
                "only the queue's owner or creator (or a process with CAP_SYS_ADMIN) may change it",
            ),
            _ => err,
        }
    }
}

impl fmt::Display for SysvMq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}
