//! Message queues: POSIX (`mq_*`) and System V (`msg*`).
//!
//! Both are kernel-held queues of whole messages that unrelated processes find by name
//! (POSIX) or key (System V) and that outlive every process until removed. A message is
//! never split or merged: one send, one receive.
//!
//! | | [`posix::MessageQueue`] | [`sysv::SysvMq`] |
//! |---|---|---|
//! | found by | a name, `/jobs` ([`PosixName`](crate::name::PosixName)) | a [`Key`](crate::sysv::Key), or an id handed to a child |
//! | ordering | highest priority first (0–32767), FIFO within a priority | FIFO, with selection by a positive type: any, exact, lowest up to N, any but one |
//! | sizes | per queue: `capacity` messages of at most `max_msg_size` bytes, fixed at creation | per queue: `msg_qbytes` bytes in all (changeable); per message: `/proc/sys/kernel/msgmax` |
//! | system limits | `/proc/sys/fs/mqueue/{msg_max,msgsize_max,queues_max}`, `RLIMIT_MSGQUEUE` | `/proc/sys/kernel/{msgmax,msgmnb,msgmni}` |
//! | descriptor | yes: `poll`/`epoll` readiness via [`AsFd`](std::os::fd::AsFd), `mq_notify` | none: waits are blocking calls or polling |
//! | timeouts | exact: readiness with `poll` on a monotonic clock | emulated: `IPC_NOWAIT` retried with a 1–20 ms backoff |
//! | removal | `mq_unlink` by the creator; open descriptors keep it alive | `IPC_RMID`: immediate, blocked callers fail with [`Removed`](crate::ErrorKind::Removed) |
//! | permissions | file-like mode and owner, umask-free 0600 by default | `ipc_perm` mode and owner, 0600 by default |
//!
//! Choose POSIX queues for new code: they have priorities, exact timeouts, readiness
//! events that fit an event loop, and per-queue limits fixed up front. Choose System V
//! queues to talk to existing programs that use them, or when receivers must select
//! messages by type (one queue serving several clients, each reading its own type).
//!
//! Both follow ipcx's contracts: exclusive creation with mode 0600 by default, the creator
//! removes the queue on drop unless told to keep it, openers never do, and every blocking
//! call comes as blocking, `try_` (never blocks) and `_timeout` forms that retry `EINTR`
//! with the remaining time.
//!
//! # References
//! - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
//! - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

pub mod posix;
pub mod sysv;

/// Which directions a handle is opened for, and so which permission an open checks.
///
/// A POSIX queue opened [`SendOnly`](Access::SendOnly) needs only write permission and
/// one opened [`ReceiveOnly`](Access::ReceiveOnly) only read permission (`O_WRONLY`,
/// `O_RDONLY`); a System V open asks `msgget` to check the same bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Access {
    /// Send and receive (`O_RDWR`; read and write permission). The default.
    #[default]
    Both,
    /// Send only (`O_WRONLY`; write permission).
    SendOnly,
    /// Receive only (`O_RDONLY`; read permission).
    ReceiveOnly,
}

impl Access {
    fn can_send(self) -> bool {
        self != Access::ReceiveOnly
    }

    fn can_receive(self) -> bool {
        self != Access::SendOnly
    }

    /// The permission this access needs, for error hints.
    fn describe(self) -> &'static str {
        match self {
            Access::Both => "read and write",
            Access::SendOnly => "write",
            Access::ReceiveOnly => "read",
        }
    }
}
