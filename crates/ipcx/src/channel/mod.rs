//! One way to send and receive messages over every ipcx transport.
//!
//! A [`Sender`] and a [`Receiver`] move whole messages of bytes. Open them from an
//! [`Address`] string and the same code runs over a pipe, a socket, a message queue or
//! shared memory:
//!
//! ```
//! use std::time::Duration;
//! use ipcx::addr::Address;
//! use ipcx::channel;
//!
//! # let dir = std::env::temp_dir().join(format!("ipcx-doc-channel-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let addr: Address = format!("unix-seqpacket:{}/jobs.sock", dir.display()).parse()?;
//! let mut rx = channel::receiver(&addr)?;             // binds; never blocks
//! let mut tx = channel::sender_timeout(&addr, Duration::from_secs(1))?;
//! tx.send(b"job 1")?;
//! tx.send(b"")?;                                       // empty messages are messages
//! let mut buf = vec![0u8; rx.max_message()];
//! let n = rx.recv_timeout(&mut buf, Duration::from_secs(1))?;
//! assert_eq!(&buf[..n], b"job 1");
//! assert_eq!(rx.recv(&mut buf)?, 0);
//! drop(tx);
//! assert_eq!(rx.recv(&mut buf).unwrap_err().kind(), ipcx::ErrorKind::PeerGone);
//! # drop(rx); std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The contract
//!
//! Every transport keeps the same promises, checked by one conformance suite
//! (`tests/channel.rs`) that runs against each of them across real processes:
//!
//! - **Whole messages, in order.** One `send`, one `recv`, with the bytes intact. Byte
//!   streams carry a length-prefixed [`frame`]; message transports keep their own
//!   boundaries. Order is kept on every transport (UDP keeps it on one host's loopback,
//!   which is the only place ipcx promises it).
//! - **Empty messages** are delivered as messages of 0 bytes.
//! - **Sizes.** [`Sender::max_message`] and [`Receiver::max_message`] give the
//!   transport's limit; a larger send fails with [`ErrorKind::MessageTooLarge`] naming
//!   the limit, before anything is sent. A receive buffer of `max_message()` bytes always
//!   suffices, and on message transports it is also the quickest: with a smaller one,
//!   sockets first peek at the next message's length and queues receive through a buffer
//!   of their own. A message longer than the buffer given to `recv` fails with
//!   `MessageTooLarge` naming both sizes **and stays pending**: the next receive with a
//!   large enough buffer returns it.
//! - **Three forms** of every call: blocking, `try_` ([`ErrorKind::WouldBlock`], never
//!   waits) and `_timeout` ([`ErrorKind::TimedOut`]); signals never cut a wait short.
//! - **Peer gone.** A receiver whose sender has gone (and whose messages are all
//!   received) gets [`ErrorKind::PeerGone`], and a sender whose receiver has gone gets
//!   `PeerGone`, wherever the transport can tell; the table below says where it cannot.
//!   A write to a vanished peer is never a `SIGPIPE`.
//!
//! # Who creates, who removes
//!
//! [`receiver`] is the side that creates: it makes the named object (FIFO, socket file,
//! queue, shared memory), binds or listens, owns the object and removes it when dropped.
//! Creating a receiver never blocks: connection-oriented receivers accept their sender
//! lazily, in the first receive. [`sender`] opens or connects, and waits while the
//! receiver does not exist yet ([`sender_timeout`] bounds the wait, [`try_sender`] does
//! not wait). A receiver serves one sender at a time; after `PeerGone`, a later receive
//! waits for the next sender (where the transport allows one).
//!
//! | address | created and removed by the receiver | boundaries | `max_message` | receiver sees the sender go | sender sees the receiver go |
//! |---|---|---|---|---|---|
//! | `pipe:` | nothing (stdin/stdout) | frames | `max`, 16 MiB | end of stream | `EPIPE` |
//! | `fifo:PATH` | the FIFO (`mkfifo`, 0600) | frames | `max`, 16 MiB | end of stream | `EPIPE` |
//! | `unix:PATH` | the socket file | frames | `max`, 16 MiB | end of stream | `EPIPE`/`ECONNRESET` |
//! | `tcp:H:P` | the listening port | frames | `max`, 16 MiB | end of stream | `EPIPE`/`ECONNRESET` (after the peer's reset) |
//! | `unix-seqpacket:PATH` | the socket file | kernel's, plus a 1-byte tag | `max`, 64 KiB (send buffer raised to fit) | end of stream | `EPIPE` |
//! | `unix-dgram:PATH` | the socket file | kernel's | `max`, 64 KiB (send buffer raised to fit) | **cannot tell** (no connection) | `ECONNREFUSED` |
//! | `udp:H:P` | the bound port | kernel's | 65507 (IPv4), 65527 (IPv6) | **cannot tell** | `ECONNREFUSED`, from the ICMP error of an earlier datagram |
//! | `mq:/NAME` | the queue (`mq_open`, `mq_unlink`) | kernel's | `msgsize` (`mq_msgsize`) | **cannot tell** | when a send finds the queue full and unlinked |
//! | `sysv-mq:KEY` | the queue (`msgget`, `IPC_RMID`) | kernel's | `/proc/sys/kernel/msgmax` (and the queue's `msg_qbytes`) | **cannot tell** | the queue is removed (`EIDRM`) |
//! | `shm:/NAME` | the object (`shm_open`, `shm_unlink`) | slots | `max`, 64 KiB | within about 50 ms, clean exit or crash (a state word and a lock byte) | the same |
//! | `ring:/NAME` | the object (`shm_open`, `shm_unlink`) | records | `capacity` − 8, 1 MiB − 8 by default | within about 50–100 ms, clean exit or crash (a state word and a lock byte) | at once after a clean close; after a crash, when the ring is full |
//! | `mailbox:NAME` | the mailbox (socket file and lock in the runtime directory) | kernel's (datagrams; memfd above 16 KiB) | `max`, 16 MiB | **cannot tell** (many senders, no connection) | the socket file is gone (`ENOENT`) or stale (`ECONNREFUSED`) |
//! | `mailbox:NAME@H:P` | — (a sender only: the mailbox is served by `ipcx mailbox serve --tcp`) | IPMB frames over TCP | `max`, and the server's cap | — | the server closes the connection |
//!
//! A `mailbox:` sender binds an ephemeral mailbox of its own (`send-PID-N`), which the
//! receiver sees as the sender of every message ([`MailboxSender`]); a `mailbox:`
//! receiver answers requests from [`crate::mailbox::Mailbox::request`] with an empty
//! reply once it hands them out, and stops reading while its queue is full, so senders
//! wait instead of messages being dropped ([`MailboxReceiver`]).
//!
//! Where the receiver cannot tell, its waits run until their timeout; use a timeout, or
//! an end-of-data message of your own protocol. A byte stream's sender whose
//! `try_send` or `send_timeout` runs out of room after part of a message went out keeps
//! the rest (at most one message) and returns `Ok`: the message is committed and goes out
//! with the next call or [`Sender::flush`]. Dropping the sender before then waits up to
//! its [linger](StreamSender::with_linger) time (1 s) to write the rest; a receiver that
//! does not take it in that time reports `PeerGone` saying how much arrived.
//!
//! `shm:` sees a peer go through a lock byte that the kernel releases when the last
//! descriptor of the peer's open file description closes. That description is shared
//! with children forked (without `exec`) while the channel was open, so a peer that forked
//! is seen gone only once its children have exited too. Both sides map the object: a peer
//! that shrinks it (`ftruncate`, which its owner's uid may do) makes the other side's next
//! access to the lost pages a `SIGBUS`, as with any shared mapping; use `shm:` only
//! between processes that trust each other that far, and a socket or queue otherwise.
//!
//! # Choosing
//!
//! For parent and child, `pipe:`; between unrelated processes on one machine,
//! `unix-seqpacket:` (boundaries, a connection, peer-gone both ways) or `shm:` (no copy
//! through the kernel, for cooperating processes: a peer that can write the memory can
//! disturb the semaphores); `mq:` when messages must wait in the kernel without a
//! receiver running; `mailbox:` when many senders reach one named receiver and each
//! message should say, as the kernel saw it, who sent it; `tcp:` (or
//! `mailbox:NAME@HOST:PORT`) across machines. `ipcx bench` measures them on your machine.

pub mod frame;
mod mailbox;
mod mq;
mod shm;
mod socket;
mod stream;
#[cfg(feature = "serde")]
mod typed;

use std::fmt;
use std::time::Duration;

pub use mailbox::{DEFAULT_MAILBOX_MAX, MailboxReceiver, MailboxSender};
pub use mq::{MqReceiver, MqSender, SysvMqReceiver, SysvMqSender};
pub use shm::{DEFAULT_SHM_CAPACITY, DEFAULT_SHM_MAX, ShmReceiver, ShmSender};
pub use socket::{
    DEFAULT_SOCKET_MAX, DatagramReceiver, DatagramSender, SeqpacketReceiver, SeqpacketSender,
    UDP_MAX_V4, UDP_MAX_V6,
};
pub use stream::{StreamReceiver, StreamSender};
#[cfg(feature = "serde")]
pub use typed::{TypedReceiver, TypedSender};

use crate::addr::{Address, Transport};
use crate::error::{Error, ErrorKind, Result};
use crate::wait::{Backoff, Deadline};

/// The sending half of a channel: whole messages of bytes, in order.
///
/// Object-safe: `Box<dyn Sender + Send>` is what [`sender`] returns. Methods take
/// `&mut self` because a sender may hold state between calls (the unsent tail of a
/// framed message).
///
/// # Errors
/// Every send fails with [`ErrorKind::MessageTooLarge`] (naming the limit) for a message
/// longer than [`max_message`](Sender::max_message), before sending anything, and with
/// [`ErrorKind::PeerGone`] once the receiver is known to be gone.
pub trait Sender: fmt::Debug {
    /// Sends one message, waiting as long as the channel is full.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends one message only if the channel has room now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when it has not; nothing was sent.
    fn try_send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends one message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when the channel stayed full; nothing was sent.
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()>;

    /// The largest message this channel carries, in bytes.
    fn max_message(&self) -> usize;

    /// Waits until every message a send accepted has been handed to the kernel.
    ///
    /// Only byte streams ever hold anything back (the tail of a message whose
    /// `try_send` or `send_timeout` ran out of room half-way); elsewhere this returns at
    /// once.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// As [`flush`](Sender::flush), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if the tail could not be written in time; it stays queued.
    fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        let _ = timeout;
        Ok(())
    }
}

/// The receiving half of a channel: whole messages of bytes, in order.
///
/// Object-safe: `Box<dyn Receiver + Send>` is what [`receiver`] returns.
///
/// # Errors
/// Every receive fails with [`ErrorKind::MessageTooLarge`] (naming the message's size
/// where the transport reports it, and the buffer's) when the next message does not fit
/// `buf`; the message stays pending. It fails with [`ErrorKind::PeerGone`] when the
/// sender is gone and everything it sent has been received, and with
/// [`ErrorKind::Corrupt`] when the peer sent something that is not a valid message.
pub trait Receiver: fmt::Debug {
    /// Receives one message into `buf`, waiting as long as it takes; returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Receives one message only if one is waiting now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when none is.
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Receives one message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when none arrived in time.
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize>;

    /// The largest message this channel carries: a buffer this large always suffices.
    fn max_message(&self) -> usize;

    /// The address senders reach this receiver at, with an ephemeral port (`tcp:…:0`)
    /// resolved to the one the system chose. `None` for receivers not made from an
    /// address.
    fn address(&self) -> Option<Address> {
        None
    }
}

impl<S: Sender + ?Sized> Sender for Box<S> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        (**self).send(msg)
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        (**self).try_send(msg)
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        (**self).send_timeout(msg, timeout)
    }
    fn max_message(&self) -> usize {
        (**self).max_message()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        (**self).flush_timeout(timeout)
    }
}

impl<R: Receiver + ?Sized> Receiver for Box<R> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        (**self).recv(buf)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        (**self).try_recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        (**self).recv_timeout(buf, timeout)
    }
    fn max_message(&self) -> usize {
        (**self).max_message()
    }
    fn address(&self) -> Option<Address> {
        (**self).address()
    }
}

/// Implements the three public forms of a transport's `send_until`/`recv_until`.
macro_rules! forms {
    (sender) => {
        fn send(&mut self, msg: &[u8]) -> crate::Result<()> {
            self.send_until(msg, crate::wait::Deadline::Never)
        }
        fn try_send(&mut self, msg: &[u8]) -> crate::Result<()> {
            self.send_until(msg, crate::wait::Deadline::Now)
        }
        fn send_timeout(&mut self, msg: &[u8], timeout: std::time::Duration) -> crate::Result<()> {
            self.send_until(msg, crate::wait::Deadline::after(timeout))
        }
    };
    (receiver) => {
        fn recv(&mut self, buf: &mut [u8]) -> crate::Result<usize> {
            self.recv_until(buf, crate::wait::Deadline::Never)
        }
        fn try_recv(&mut self, buf: &mut [u8]) -> crate::Result<usize> {
            self.recv_until(buf, crate::wait::Deadline::Now)
        }
        fn recv_timeout(
            &mut self,
            buf: &mut [u8],
            timeout: std::time::Duration,
        ) -> crate::Result<usize> {
            self.recv_until(buf, crate::wait::Deadline::after(timeout))
        }
    };
}
pub(crate) use forms;

/// Opens the receiving side of `addr`: creates, binds or listens, and owns what it made.
///
/// Never blocks (connection-oriented receivers accept in their first receive).
///
/// # Errors
/// The transport's errors for creating its object, naming the address:
/// [`ErrorKind::AlreadyExists`] if another receiver has the name, path or port;
/// [`ErrorKind::LimitReached`] with the limit named; [`ErrorKind::InvalidInput`] for a
/// remote `mailbox:NAME@HOST:PORT`, which only senders reach.
pub fn receiver(addr: &Address) -> Result<Box<dyn Receiver + Send>> {
    let rx: Box<dyn Receiver + Send> = match addr.transport() {
        Transport::Pipe | Transport::Fifo | Transport::Unix | Transport::Tcp => {
            Box::new(StreamReceiver::open(addr)?)
        }
        Transport::UnixDgram | Transport::Udp => Box::new(DatagramReceiver::open(addr)?),
        Transport::UnixSeqpacket => Box::new(SeqpacketReceiver::open(addr)?),
        Transport::Mq => Box::new(MqReceiver::open(addr)?),
        Transport::SysvMq => Box::new(SysvMqReceiver::open(addr)?),
        Transport::Shm => Box::new(ShmReceiver::open(addr)?),
        Transport::Ring if addr.options().producers.is_some() => Box::new(mpsc_receiver(addr)?),
        Transport::Ring => Box::new(ring_receiver(addr)?),
        Transport::Mailbox => Box::new(MailboxReceiver::open(addr)?),
    };
    Ok(rx)
}

/// Opens the sending side of `addr`, waiting as long as it takes for the receiver to
/// exist.
///
/// # Errors
/// The transport's errors for opening or connecting, naming the address.
pub fn sender(addr: &Address) -> Result<Box<dyn Sender + Send>> {
    open_sender(addr, Deadline::Never)
}

/// Opens the sending side of `addr` only if its receiver exists now.
///
/// # Errors
/// [`ErrorKind::NotFound`] or [`ErrorKind::PeerGone`] (nobody listening) when there is no
/// receiver yet, with a hint naming the address.
pub fn try_sender(addr: &Address) -> Result<Box<dyn Sender + Send>> {
    open_sender(addr, Deadline::Now)
}

/// Opens the sending side of `addr`, waiting at most `timeout` for its receiver to exist.
///
/// # Errors
/// [`ErrorKind::TimedOut`] if no receiver appeared in time; the hint names the address
/// and the last reason the open failed.
pub fn sender_timeout(addr: &Address, timeout: Duration) -> Result<Box<dyn Sender + Send>> {
    open_sender(addr, Deadline::after(timeout))
}

fn open_sender(addr: &Address, deadline: Deadline) -> Result<Box<dyn Sender + Send>> {
    Ok(match addr.transport() {
        Transport::Pipe | Transport::Fifo | Transport::Unix | Transport::Tcp => {
            Box::new(StreamSender::open(addr, deadline)?)
        }
        Transport::UnixDgram | Transport::Udp => Box::new(DatagramSender::open(addr, deadline)?),
        Transport::UnixSeqpacket => Box::new(SeqpacketSender::open(addr, deadline)?),
        Transport::Mq => Box::new(MqSender::open(addr, deadline)?),
        Transport::SysvMq => Box::new(SysvMqSender::open(addr, deadline)?),
        Transport::Shm => Box::new(ShmSender::open(addr, deadline)?),
        Transport::Ring if addr.options().producers.is_some() => {
            Box::new(mpsc_sender(addr, deadline)?)
        }
        Transport::Ring => Box::new(ring_sender(addr, deadline)?),
        Transport::Mailbox => Box::new(MailboxSender::open(addr, deadline)?),
    })
}

/// `ring:/NAME`'s receiver: creates the named ring (exclusively, with the address's
/// `mode`, `capacity` and `wait`) and owns it.
fn ring_receiver(addr: &Address) -> Result<crate::ring::RingReceiver> {
    let name = addr
        .name()
        .unwrap_or_else(|| unreachable!("ring addresses have a name"));
    // Claimed before the header is published: a receiver killed while creating never
    // leaves a ring that looks ready but has no receiver (its sender would wait for ever).
    ring_options(addr)
        .create_named_receiver(name.as_str())
        .map_err(|e| e.with_object(addr))
}

/// `ring:/NAME`'s sender: waits for the receiver to create the ring, then becomes its
/// one sender.
fn ring_sender(addr: &Address, deadline: Deadline) -> Result<crate::ring::RingSender> {
    let name = addr
        .name()
        .unwrap_or_else(|| unreachable!("ring addresses have a name"));
    let ring = until_receiver(addr, deadline, |deadline| {
        let wait = match deadline {
            Deadline::Now => Duration::ZERO,
            Deadline::Never => crate::shm::posix::DEFAULT_INIT_WAIT,
            Deadline::At(at, _) => at.saturating_duration_since(std::time::Instant::now()),
        };
        ring_options(addr).open_wait(wait).open_named(name.as_str())
    })?;
    ring.sender().map_err(|e| e.with_object(addr))
}

/// `ring:/NAME?producers=N`'s receiver: creates the multi-producer ring and becomes its
/// one receiver.
fn mpsc_receiver(addr: &Address) -> Result<crate::ring::MpscReceiver> {
    let name = addr
        .name()
        .unwrap_or_else(|| unreachable!("ring addresses have a name"));
    let producers = addr.options().producers.unwrap_or(1);
    ring_options(addr)
        .producers(producers)
        .create_named_receiver(name.as_str())
        .map_err(|e| e.with_object(addr))
}

/// `ring:/NAME?producers=N`'s sender: waits for the receiver to create the ring, then
/// claims one of its producer slots.
fn mpsc_sender(addr: &Address, deadline: Deadline) -> Result<crate::ring::MpscSender> {
    let name = addr
        .name()
        .unwrap_or_else(|| unreachable!("ring addresses have a name"));
    let producers = addr.options().producers.unwrap_or(1);
    let ring = until_receiver(addr, deadline, |deadline| {
        let wait = match deadline {
            Deadline::Now => Duration::ZERO,
            Deadline::Never => crate::shm::posix::DEFAULT_INIT_WAIT,
            Deadline::At(at, _) => at.saturating_duration_since(std::time::Instant::now()),
        };
        ring_options(addr)
            .open_wait(wait)
            .producers(producers)
            .open_named(name.as_str())
    })?;
    ring.sender().map_err(|e| e.with_object(addr))
}

fn ring_options(addr: &Address) -> crate::ring::RingOptions {
    let o = addr.options();
    let mut opts = crate::ring::RingOptions::new()
        .mode(o.mode.unwrap_or(0o600))
        .wait(o.wait.unwrap_or_default());
    if let Some(capacity) = o.capacity {
        opts = opts.capacity(capacity);
    }
    opts
}

/// Runs `attempt` until it succeeds, retrying while it fails because the receiver does
/// not exist yet ([`ErrorKind::NotFound`], or [`ErrorKind::PeerGone`] for a socket
/// nobody listens on), with a 1–20 ms backoff, until `deadline`.
pub(crate) fn until_receiver<T>(
    addr: &Address,
    deadline: Deadline,
    mut attempt: impl FnMut(Deadline) -> Result<T>,
) -> Result<T> {
    let mut backoff = Backoff::new();
    loop {
        let err = match attempt(deadline) {
            Ok(v) => return Ok(v),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PeerGone) => e,
            Err(e) => return Err(e.with_object(addr)),
        };
        let why = err.to_string();
        if let Deadline::Now = deadline {
            return Err(err.with_object(addr).with_hint(format!(
                "no receiver at this address yet ({why}); start the receiver first, or wait \
                 for it with channel::sender or sender_timeout"
            )));
        }
        if let Err(timeout) = backoff.sleep(deadline, "open sender", addr) {
            let waited = match deadline {
                Deadline::At(_, t) => format!("{t:?}"),
                _ => "the timeout".into(),
            };
            return Err(timeout.with_hint(format!(
                "no receiver appeared at this address within {waited} (last: {why}); the \
                 receiver creates it: start the receiver first"
            )));
        }
    }
}

/// Rewrites the errors of an ended wait into the channel's words, naming the address.
pub(crate) fn recv_error(e: Error, label: &dyn fmt::Display, deadline: Deadline) -> Error {
    let e = e.with_object(label);
    match (e.kind(), deadline) {
        (ErrorKind::WouldBlock, _) => Error::new("recv", ErrorKind::WouldBlock)
            .with_object(label)
            .with_hint("no message is waiting; wait with recv or recv_timeout"),
        (ErrorKind::TimedOut, Deadline::At(_, t)) => Error::new("recv", ErrorKind::TimedOut)
            .with_object(label)
            .with_hint(format!("no message arrived within {t:?}")),
        _ => e,
    }
}

/// As [`recv_error`], for sends.
pub(crate) fn send_error(e: Error, label: &dyn fmt::Display, deadline: Deadline) -> Error {
    let e = e.with_object(label);
    match (e.kind(), deadline) {
        (ErrorKind::WouldBlock, _) => Error::new("send", ErrorKind::WouldBlock)
            .with_object(label)
            .with_hint(
                "the channel is full: the receiver has not taken the earlier messages; wait \
                 with send or send_timeout",
            ),
        (ErrorKind::TimedOut, Deadline::At(_, t)) => Error::new("send", ErrorKind::TimedOut)
            .with_object(label)
            .with_hint(format!(
                "the channel stayed full for {t:?}: the receiver is not keeping up"
            )),
        _ => e,
    }
}

/// The error for a message above the channel's limit, before anything is sent.
pub(crate) fn too_large(label: &dyn fmt::Display, len: usize, max: usize, limit: &str) -> Error {
    Error::new("send", ErrorKind::MessageTooLarge)
        .with_object(label)
        .with_hint(format!(
            "the message is {len} bytes; this channel carries at most {max} bytes ({limit})"
        ))
}

/// The error for a receive buffer too small for the next message, which stays pending.
pub(crate) fn buffer_too_small(label: &dyn fmt::Display, len: usize, buf: usize) -> Error {
    Error::new("recv", ErrorKind::MessageTooLarge)
        .with_object(label)
        .with_hint(format!(
            "the next message is {len} bytes but the buffer has {buf} bytes; it stays pending: \
             receive again with a buffer of at least {len} bytes"
        ))
}

/// What a message queue does with a receive buffer smaller than its largest message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ShortBuffer {
    /// Refuses it whatever the next message's length (POSIX `mq_receive` wants at least
    /// `mq_msgsize` bytes): receive through the spare buffer.
    Refused,
    /// Takes a message that fits, and leaves one that does not queued without saying
    /// its length (System V `msgrcv`, `E2BIG`): receive directly, and through the spare
    /// buffer only to learn the length of one that did not fit.
    KeepsTooLarge,
}

/// A message a queue receiver took into its own buffer because the caller's was too
/// small, kept until a large enough buffer comes.
///
/// Message queues cannot peek at the next message's length, which sockets do instead
/// (`MSG_PEEK | MSG_TRUNC`, leaving the message in the kernel). The buffer is allocated
/// at the queue's maximum the first time it is needed, and kept.
#[derive(Default)]
pub(crate) struct Spare {
    buf: Vec<u8>,
    pending: Option<usize>,
}

impl Spare {
    /// Receives one message into `buf` with `recv(buffer, deadline)`, handing out a
    /// pending one first. A buffer of `max` bytes or more is passed straight to `recv`;
    /// a smaller one is handled as `short` says, so that a message that does not fit
    /// fails with [`buffer_too_small`], naming its length, and stays pending.
    pub(crate) fn recv(
        &mut self,
        buf: &mut [u8],
        max: usize,
        label: &Address,
        short: ShortBuffer,
        deadline: Deadline,
        mut recv: impl FnMut(&mut [u8], Deadline) -> Result<usize>,
    ) -> Result<usize> {
        if let Some(n) = self.pending.take() {
            return self.hand_out(n, buf, label);
        }
        if buf.len() >= max {
            return recv(buf, deadline);
        }
        match short {
            ShortBuffer::Refused => {
                let n = recv(self.buffer(max), deadline)?;
                self.hand_out(n, buf, label)
            }
            ShortBuffer::KeepsTooLarge => loop {
                match recv(buf, deadline) {
                    Err(e) if e.kind() == ErrorKind::MessageTooLarge => {}
                    other => return other,
                }
                match recv(self.buffer(max), Deadline::Now) {
                    Ok(n) => return self.hand_out(n, buf, label),
                    // Another receiver of the queue took it in between.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            },
        }
    }

    fn buffer(&mut self, max: usize) -> &mut [u8] {
        if self.buf.len() < max {
            self.buf = vec![0; max];
        }
        &mut self.buf[..max]
    }

    /// Copies the spare buffer's message of `n` bytes into `buf`, or keeps it pending.
    fn hand_out(&mut self, n: usize, buf: &mut [u8], label: &Address) -> Result<usize> {
        if n > buf.len() {
            self.pending = Some(n);
            return Err(buffer_too_small(label, n, buf.len()));
        }
        buf[..n].copy_from_slice(&self.buf[..n]);
        Ok(n)
    }
}
