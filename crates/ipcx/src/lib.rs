//! ipcx: every Linux IPC mechanism behind one safe, documented API.
//!
//! # The map
//!
//! | family | module | what it gives you |
//! |---|---|---|
//! | byte streams | [`pipe`], [`fifo`] | anonymous pipes (`pipe2`, packet mode, capacity, `splice`/`tee`/`vmsplice`/`sendfile`), named FIFOs with open timeouts |
//! | Unix sockets | [`unix`] | stream, datagram and seqpacket sockets, socket pairs, owned socket files, descriptor passing, peer credentials and pidfds |
//! | IP sockets | [`net`] | TCP and UDP over IPv4 and IPv6 with the options an IPC user needs |
//! | all sockets | [`SocketExt`], [`DatagramExt`], [`ListenerExt`] | `try_`, `_timeout` and blocking send/receive (and send-to/receive-from, accept) that never raise `SIGPIPE` nor cut a message short |
//! | shared memory | [`shm`] | POSIX objects allocated up front, sealed memfds checked on receipt, System V segments, file mappings; each mapped as a bounds-checked [`shm::Region`] |
//! | semaphores | [`sem`] | POSIX named and unnamed (process-shared, in a `Region`), System V sets with atomic multi-operations and `SEM_UNDO` |
//! | message queues | [`mq`] | POSIX queues with priorities and a pollable descriptor, System V queues with type filtering |
//! | System V keys | [`sysv`] | `IPC_PRIVATE`, explicit and `ftok` keys, `ipc_perm` |
//! | events and signals | [`eventfd`], [`signal`] | eventfd counters and semaphores; signal masks, signalfd with typed sender information, `sigqueue`, pidfd signals, signal-hook pipes |
//! | process watch | [`process`] | pidfds that become readable when a process exits, opened without PID-reuse races ([`process::ProcessId`]); exit status without reaping |
//! | waiting on many | [`poll`], `mio`, `tokio` | [`poll::PollSet`] over any descriptor; with the features, every descriptor type registers with `mio` and has an async wrapper on tokio's `AsyncFd` |
//! | the fast path | [`ring`] | a lock-free shared-memory channel of variable-sized messages: no system call per message while both sides run, zero-copy loans and views, peer death and corruption detected; one producer, or several with [`ring::mpsc`] |
//! | request/reply | [`mailbox`], [`runtime`] | named endpoints in a private runtime directory: kernel-verified senders, request/reply with correlation ids, access control by uid/gid, large payloads as sealed memfds, peer death as `PeerGone`; across machines over TCP ([`mailbox::RemoteMailbox`]) |
//! | one API over all | [`channel`], [`addr`] | `Sender`/`Receiver` for every data transport, opened from an address such as `unix:/run/app.sock` or `mq:/jobs`; checked framing on byte streams |
//!
//!
//! # Choosing a mechanism
//!
//! - **Parent and child, a stream of bytes**: [`pipe::pipe`], handed to the child as its
//!   stdin or stdout through [`std::process::Command`].
//! - **Unrelated processes, a stream of bytes, no server**: [`fifo::Fifo`].
//! - **A server with many clients, or messages with boundaries**: [`unix`] sockets;
//!   seqpacket gives reliable, ordered messages with boundaries and a connection.
//! - **Passing descriptors or knowing who the peer is**: [`unix::UnixSocketExt`]
//!   (`SCM_RIGHTS`, `SO_PEERCRED`, `SO_PEERPIDFD`).
//! - **Another machine**: [`net`].
//! - **Large data between processes, without copies through the kernel**: shared memory.
//!   With a child or an untrusted peer, a sealed [`shm::memfd::Memfd`] passed over a Unix
//!   socket (nothing named, nothing to leak, no `SIGBUS`); between unrelated processes, a
//!   named [`shm::posix::Shm`]. Between cooperating processes, guard it with an
//!   [`sem::unnamed::UnnamedSemaphore`] placed inside it; a process that can write the
//!   memory can break (even crash) a semaphore there, so with untrusted peers use a
//!   System V set ([`sem::sysv`]), whose state the kernel holds.
//! - **Discrete messages with priorities, no server, surviving the sender**:
//!   [`mq::posix`]; System V ([`mq::sysv`], [`sem::sysv`], [`shm::sysv`]) to talk to
//!   programs that already use it, or for `SEM_UNDO`, which releases what a killed
//!   process held.
//!
//! # Contracts
//!
//! - **Errors** are [`Error`]s that name the operation, the object, an [`ErrorKind`], the
//!   errno and, where ipcx knows one, what to do.
//! - **Descriptors** are owned (`OwnedFd`), close-on-exec, and every type that has one
//!   implements [`AsFd`](std::os::fd::AsFd) so it can be polled.
//! - **Named objects** are created exclusively with mode 0600 by default, and unlinked by
//!   their creator on drop unless kept; openers never unlink. Names are validated before
//!   any system call ([`name`]).
//! - **Blocking** calls come in three forms: blocking, `try_` (never blocks) and
//!   `_timeout`. `EINTR` is retried with the remaining time, and writing to a closed pipe
//!   or socket is an error ([`ErrorKind::PeerGone`]), never a `SIGPIPE` death.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod channel;
mod error;
pub mod eventfd;
pub mod fifo;
pub mod mailbox;
#[cfg(feature = "mio")]
pub mod mio;
pub mod mq;
pub mod name;
pub mod net;
mod owner;
pub mod pipe;
pub mod poll;
pub mod process;
pub mod ring;
pub mod runtime;
pub mod sem;
pub mod shm;
pub mod signal;
mod sock;
mod sys;
pub mod sysv;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod unix;
mod wait;

pub use error::{Error, ErrorKind, Result, errno_name};

pub use sock::{DatagramExt, ListenerExt, SocketExt};

/// The README's examples, compiled and run as doctests so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
