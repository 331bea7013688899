//! Channels over message queues: POSIX (`mq:`) and System V (`sysv-mq:`).

use std::fmt;
use std::os::fd::AsFd;

use super::{
    Receiver, Sender, ShortBuffer, Spare, forms, recv_error, send_error, too_large, until_receiver,
};
use crate::addr::Address;
use crate::error::{Context, Error, ErrorKind, Result, read_sysctl};
use crate::mq::Access;
use crate::mq::posix::{MessageQueue, MqOptions};
use crate::mq::sysv::{SysvMq, SysvMqOptions, TypeFilter};
use crate::wait::Deadline;

/// How long a full queue's sender waits before it checks again whether the receiver
/// removed the queue.
const SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// The sending side of `mq:/NAME`: opens the queue send-only (waiting for its receiver
/// to create it) and sends every message with the address's `prio` (default 0).
///
/// A queue has no connection: a receiver that has gone is noticed only when a send finds
/// the queue full and its name removed (the receiver unlinks it on drop); until then
/// messages go into a queue nobody will read. A receiver that crashed leaves the queue
/// and its name, and is not noticed at all.
pub struct MqSender {
    queue: MessageQueue,
    label: Address,
    prio: u32,
}

impl MqSender {
    pub(crate) fn open(addr: &Address, deadline: Deadline) -> Result<MqSender> {
        let name = addr
            .name()
            .unwrap_or_else(|| unreachable!("mq addresses have a name"));
        let queue = until_receiver(addr, deadline, |_| {
            MqOptions::new()
                .access(Access::SendOnly)
                .open(name.as_str())
        })?;
        Ok(MqSender {
            queue,
            label: addr.clone(),
            prio: addr.options().prio.unwrap_or(0),
        })
    }

    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let max = self.queue.max_msg_size();
        if msg.len() > max {
            return Err(too_large(
                &self.label,
                msg.len(),
                max,
                "the queue's mq_msgsize, fixed by its receiver",
            ));
        }
        // Wait in short steps while the queue is full, to notice a receiver that has
        // removed the queue meanwhile.
        loop {
            match self.queue.try_send(msg, self.prio) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(send_error(e, &self.label, deadline)),
            }
            if self.unlinked()? {
                return Err(Error::new("mq_send", ErrorKind::PeerGone)
                    .with_object(&self.label)
                    .with_hint(
                        "the queue is full and its name is gone: the receiver removed it and \
                         will not read again",
                    ));
            }
            let left = deadline
                .remaining("mq_send", &self.label)
                .map_err(|e| send_error(e, &self.label, deadline))?;
            let step = left.map_or(SLICE, |l| l.min(SLICE));
            match self.queue.send_timeout(msg, self.prio, step) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::TimedOut => {}
                Err(e) => return Err(send_error(e, &self.label, deadline)),
            }
        }
    }

    /// Whether the queue's name has been removed: its link count is 0.
    fn unlinked(&self) -> Result<bool> {
        let st = rustix::fs::fstat(self.queue.as_fd()).op_on("fstat", &self.label)?;
        Ok(st.st_nlink == 0)
    }
}

impl Sender for MqSender {
    forms!(sender);

    fn max_message(&self) -> usize {
        self.queue.max_msg_size()
    }
}

impl fmt::Debug for MqSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqSender")
            .field("address", &self.label.to_string())
            .field("prio", &self.prio)
            .finish()
    }
}

/// The receiving side of `mq:/NAME`: creates the queue (exclusively, with the address's
/// `mode`, `capacity` and `msgsize`) and unlinks it on drop. Messages arrive highest
/// priority first.
///
/// A queue has no connection: the receiver cannot tell that its sender has gone, and its
/// waits run until their timeout.
pub struct MqReceiver {
    queue: MessageQueue,
    label: Address,
    spare: Spare,
}

impl MqReceiver {
    pub(crate) fn open(addr: &Address) -> Result<MqReceiver> {
        let name = addr
            .name()
            .unwrap_or_else(|| unreachable!("mq addresses have a name"));
        let o = addr.options();
        let mut opts = MqOptions::new()
            .access(Access::ReceiveOnly)
            .mode(o.mode.unwrap_or(0o600));
        if let Some(capacity) = o.capacity {
            opts = opts.capacity(capacity);
        }
        if let Some(size) = o.msgsize {
            opts = opts.max_msg_size(size);
        }
        let queue = opts
            .create(name.as_str())
            .map_err(|e| e.with_object(addr))?;
        Ok(MqReceiver {
            queue,
            label: addr.clone(),
            spare: Spare::default(),
        })
    }

    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let queue = &self.queue;
        let max = queue.max_msg_size();
        self.spare
            .recv(
                buf,
                max,
                &self.label,
                ShortBuffer::Refused,
                deadline,
                |b, deadline| {
                    match deadline {
                        Deadline::Now => queue.try_recv(b),
                        Deadline::Never => queue.recv(b),
                        Deadline::At(at, _) => queue.recv_timeout(
                            b,
                            at.saturating_duration_since(std::time::Instant::now()),
                        ),
                    }
                    .map(|(n, _prio)| n)
                },
            )
            .map_err(|e| recv_error(e, &self.label, deadline))
    }
}

impl Receiver for MqReceiver {
    forms!(receiver);

    fn max_message(&self) -> usize {
        self.queue.max_msg_size()
    }

    fn address(&self) -> Option<Address> {
        Some(self.label.clone())
    }
}

impl fmt::Debug for MqReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqReceiver")
            .field("address", &self.label.to_string())
            .field("max", &self.queue.max_msg_size())
            .finish()
    }
}

const MSGMAX: &str = "/proc/sys/kernel/msgmax";

/// `/proc/sys/kernel/msgmax`, the largest System V message (8192 if unreadable, the
/// kernel's default).
fn msgmax() -> usize {
    read_sysctl(MSGMAX)
        .and_then(|v| v.parse().ok())
        .unwrap_or(8192)
}

/// The largest message a queue takes: `msgmax`, and no more than its `msg_qbytes`.
fn sysv_max(queue: &SysvMq) -> usize {
    let qbytes = queue
        .stat()
        .map(|s| usize::try_from(s.qbytes).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    msgmax().min(qbytes)
}

/// The sending side of `sysv-mq:KEY`: opens the queue (waiting for its receiver to
/// create it) and sends every message with the address's `type` (default 1).
///
/// The receiver removes the queue when it is dropped, which every later send reports as
/// [`ErrorKind::PeerGone`] (`EIDRM`/`EINVAL`: the queue was removed).
pub struct SysvMqSender {
    queue: SysvMq,
    label: Address,
    mtype: i64,
    max: usize,
}

impl SysvMqSender {
    pub(crate) fn open(addr: &Address, deadline: Deadline) -> Result<SysvMqSender> {
        let key = addr
            .key()
            .unwrap_or_else(|| unreachable!("sysv-mq addresses have a key"));
        let queue = until_receiver(addr, deadline, |_| {
            SysvMqOptions::new().access(Access::SendOnly).open(key)
        })?;
        let max = sysv_max(&queue);
        Ok(SysvMqSender {
            queue,
            label: addr.clone(),
            mtype: addr.options().mtype.unwrap_or(1),
            max,
        })
    }

    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if msg.len() > self.max {
            return Err(too_large(
                &self.label,
                msg.len(),
                self.max,
                "/proc/sys/kernel/msgmax, or the queue's msg_qbytes if smaller",
            ));
        }
        match deadline {
            Deadline::Now => self.queue.try_send(self.mtype, msg),
            Deadline::Never => self.queue.send(self.mtype, msg),
            Deadline::At(at, _) => self.queue.send_timeout(
                self.mtype,
                msg,
                at.saturating_duration_since(std::time::Instant::now()),
            ),
        }
        .map_err(|e| {
            if e.kind() == ErrorKind::Removed {
                e.with_kind(ErrorKind::PeerGone)
                    .with_hint("the queue was removed: its receiver has gone")
            } else {
                e
            }
        })
        .map_err(|e| send_error(e, &self.label, deadline))
    }
}

impl Sender for SysvMqSender {
    forms!(sender);

    fn max_message(&self) -> usize {
        self.max
    }
}

impl fmt::Debug for SysvMqSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SysvMqSender")
            .field("address", &self.label.to_string())
            .field("type", &self.mtype)
            .finish()
    }
}

/// The receiving side of `sysv-mq:KEY`: creates the queue (exclusively, with the
/// address's `mode`) and removes it on drop. Takes messages of the address's `type`, or
/// of any type without one.
///
/// A queue has no connection: the receiver cannot tell that its sender has gone, and its
/// waits run until their timeout (timed waits poll, every 1 to 20 ms).
pub struct SysvMqReceiver {
    queue: SysvMq,
    label: Address,
    filter: TypeFilter,
    max: usize,
    spare: Spare,
}

impl SysvMqReceiver {
    pub(crate) fn open(addr: &Address) -> Result<SysvMqReceiver> {
        let key = addr
            .key()
            .unwrap_or_else(|| unreachable!("sysv-mq addresses have a key"));
        let queue = SysvMqOptions::new()
            .access(Access::Both)
            .mode(addr.options().mode.unwrap_or(0o600))
            .create(key)
            .map_err(|e| e.with_object(addr))?;
        let max = sysv_max(&queue);
        Ok(SysvMqReceiver {
            queue,
            label: addr.clone(),
            filter: addr
                .options()
                .mtype
                .map_or(TypeFilter::Any, TypeFilter::Exact),
            max,
            spare: Spare::default(),
        })
    }

    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let (queue, filter) = (&self.queue, self.filter);
        // The kernel leaves a message longer than the buffer queued (E2BIG) but does not
        // say how long it is: then the spare buffer, which takes any message, learns it
        // so the error can name the size.
        let short = ShortBuffer::KeepsTooLarge;
        self.spare
            .recv(
                buf,
                self.max,
                &self.label,
                short,
                deadline,
                |b, deadline| {
                    match deadline {
                        Deadline::Now => queue.try_recv(filter, b),
                        Deadline::Never => queue.recv(filter, b),
                        Deadline::At(at, _) => queue.recv_timeout(
                            filter,
                            b,
                            at.saturating_duration_since(std::time::Instant::now()),
                        ),
                    }
                    .map(|(_type, n)| n)
                },
            )
            .map_err(|e| recv_error(e, &self.label, deadline))
    }
}

impl Receiver for SysvMqReceiver {
    forms!(receiver);

    fn max_message(&self) -> usize {
        self.max
    }

    fn address(&self) -> Option<Address> {
        Some(self.label.clone())
    }
}

impl fmt::Debug for SysvMqReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SysvMqReceiver")
            .field("address", &self.label.to_string())
            .field("filter", &self.filter)
            .finish()
    }
}
