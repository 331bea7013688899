//! `shm:/NAME`: a mailbox of message slots in POSIX shared memory, counted by two
//! process-shared semaphores.

use std::fmt;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{
    Receiver, Sender, buffer_too_small, forms, recv_error, send_error, too_large, until_receiver,
};
use crate::addr::Address;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::sem::unnamed::UnnamedSemaphore;
use crate::shm::Region;
use crate::shm::posix::{Shm, ShmOptions};
use crate::sys::lock::{byte_locked_elsewhere, try_lock_byte};
use crate::wait::{Backoff, Deadline};

/// "IXSH", little-endian.
const MAGIC: u32 = u32::from_le_bytes(*b"IXSH");
const VERSION: u32 = 1;
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_CAPACITY: usize = 8;
const OFF_MAX: usize = 16;
const OFF_SENDER: usize = 24;
const OFF_RECEIVER: usize = 28;
const HEADER: usize = 64;
const LINE: usize = 64;

const STATE_NONE: u32 = 0;
const STATE_OPEN: u32 = 1;
const STATE_CLOSED: u32 = 2;

const RECEIVER_LOCK: u64 = 0;
const SENDER_LOCK: u64 = 1;

/// The default number of slots.
pub const DEFAULT_SHM_CAPACITY: usize = 4;
/// The default payload bytes per slot: 64 KiB.
pub const DEFAULT_SHM_MAX: usize = 64 << 10;
/// The most slots a channel may have.
const MAX_CAPACITY: usize = 1 << 20;
/// How long a wait runs before it checks whether the peer is still there.
const SLICE: Duration = Duration::from_millis(50);

const fn round_up(n: usize) -> usize {
    n.div_ceil(LINE) * LINE
}

const SEM_EMPTY: usize = HEADER;
const SEM_FULL: usize = SEM_EMPTY + round_up(UnnamedSemaphore::SIZE);
const SLOTS: usize = SEM_FULL + round_up(UnnamedSemaphore::SIZE);

/// The slot stride and the object's size for `capacity` slots of `max` bytes.
fn geometry(capacity: usize, max: usize) -> Option<(usize, usize)> {
    let stride = max.checked_add(8 + LINE - 1)? / LINE * LINE;
    let total = stride.checked_mul(capacity)?.checked_add(SLOTS)?;
    Some((stride, total))
}

/// What both sides share: the object, its mapping and the validated geometry.
struct Shared {
    // The mapping goes before the object (whose owner unlinks it).
    region: Region,
    shm: Shm,
    label: Address,
    capacity: usize,
    max: usize,
    stride: usize,
}

impl Shared {
    fn sem(&self, offset: usize) -> Result<UnnamedSemaphore<'_>> {
        // Cheap when the semaphore is published: a bounds check and one atomic load;
        // anything else means the header was overwritten.
        UnnamedSemaphore::attach_timeout(&self.region, offset, Duration::ZERO).map_err(|e| {
            Error::new("sem attach", ErrorKind::Corrupt)
                .with_object(&self.label)
                .with_hint(format!("the channel's semaphore is damaged: {e}"))
        })
    }

    fn state(&self, offset: usize) -> Result<u32> {
        Ok(self.region.atomic_u32(offset)?.load(Ordering::Acquire))
    }

    fn set_state(&self, offset: usize, state: u32) {
        if let Ok(word) = self.region.atomic_u32(offset) {
            word.store(state, Ordering::Release);
        }
    }

    fn slot(&self, index: u64) -> usize {
        SLOTS + (index % self.capacity as u64) as usize * self.stride
    }

    /// Waits on the semaphore at `sem` until it can be taken, `deadline` passes, or
    /// `gone` says the peer has left. The peer is checked only when a wait finds nothing
    /// (the `try_` form) or a 50 ms slice of one runs out, so a message that is there is
    /// taken without a system call; after the peer is seen gone the semaphore is tried
    /// once more, since its last post may have come just before it left.
    fn take(
        &self,
        sem: usize,
        deadline: Deadline,
        op: &'static str,
        gone: &dyn Fn(&Shared) -> Result<Option<&'static str>>,
    ) -> Result<()> {
        let s = self.sem(sem)?;
        loop {
            let waited = match deadline {
                Deadline::Now => s.try_wait(),
                Deadline::Never => s.wait_timeout(SLICE),
                // A deadline that has passed still takes what is there now.
                Deadline::At(at, _) => match at.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => s.try_wait(),
                    left => s.wait_timeout(left.min(SLICE)),
                },
            };
            match waited {
                Ok(()) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
            if let Some(why) = gone(self)? {
                return match s.try_wait() {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        Err(Error::new(op, ErrorKind::PeerGone)
                            .with_object(&self.label)
                            .with_hint(why))
                    }
                    Err(e) => Err(e),
                };
            }
            // The WouldBlock or TimedOut error once no time is left.
            deadline.remaining(op, &self.label)?;
        }
    }
}

/// Whether the sender has gone: closed (state 2), or attached and its lock released.
fn sender_gone(s: &Shared) -> Result<Option<&'static str>> {
    match s.state(OFF_SENDER)? {
        STATE_NONE => Ok(None),
        STATE_CLOSED => Ok(Some("the sender closed the channel")),
        STATE_OPEN => {
            let held = byte_locked_elsewhere(s.shm.as_fd(), SENDER_LOCK)
                .map_err(|e| Error::from_errno("F_OFD_GETLK", e.raw_os_error()))?;
            Ok((!held).then_some("the sender's process died without closing the channel"))
        }
        other => Err(Error::new("recv", ErrorKind::Corrupt)
            .with_object(&s.label)
            .with_hint(format!(
                "the sender state word holds {other}, not 0, 1 or 2"
            ))),
    }
}

/// Whether the receiver has gone: closed (state 2), or its lock released.
fn receiver_gone(s: &Shared) -> Result<Option<&'static str>> {
    match s.state(OFF_RECEIVER)? {
        STATE_CLOSED => Ok(Some("the receiver closed the channel")),
        _ => {
            let held = byte_locked_elsewhere(s.shm.as_fd(), RECEIVER_LOCK)
                .map_err(|e| Error::from_errno("F_OFD_GETLK", e.raw_os_error()))?;
            Ok((!held).then_some("the receiver's process died without closing the channel"))
        }
    }
}

/// The receiving side of `shm:/NAME`: creates the shared memory object (exclusively,
/// with the address's `mode`, `capacity` slots of `max` bytes) and unlinks it on drop.
///
/// # Layout
///
/// ```text
/// offset 0    u32 magic "IXSH" (published last, with release ordering)
///        4    u32 version (1)
///        8    u32 capacity: number of slots
///        16   u64 max: payload bytes per slot
///        24   u32 sender state: 0 none yet, 1 attached, 2 closed
///        28   u32 receiver state: 1 open, 2 closed
/// 64          UnnamedSemaphore `empty` (starts at capacity)
/// 64 + S      UnnamedSemaphore `full` (starts at 0)     S = SIZE rounded up to 64
/// 64 + 2S     capacity slots of round_up(8 + max, 64) bytes: u64 length, then payload
/// ```
///
/// The sender waits on `empty`, writes slot `i % capacity` (length, then payload) and
/// posts `full`; the receiver waits on `full`, reads the slot and posts `empty`. Both
/// keep their own index; `sem_post` publishes with release ordering and `sem_wait`
/// acquires, so a slot's bytes are complete when its `full` is taken.
///
/// # Trust and liveness
///
/// The receiver creates and owns the object; a sender reads the header once, checks every
/// field against the object's real size before using it, and the receiver checks each
/// slot's length against its own copy of `max` before copying (reliability items 9 and
/// 10): a corrupt length is [`ErrorKind::Corrupt`], never an out-of-bounds read. The
/// semaphores themselves live in the shared memory, so a process that can write it can
/// disturb them (see [`UnnamedSemaphore`]): this transport is for cooperating processes.
///
/// A channel carries one sender for its whole life (a second is refused). Each side
/// holds an open-file-description lock on one byte of the object (receiver byte 0,
/// sender byte 1), which the kernel releases when the process dies however it dies. A
/// side that closes cleanly also marks its state word; a side whose wait runs longer
/// than 50 ms checks the other's state and lock, so a vanished peer is reported as
/// [`ErrorKind::PeerGone`] within about 50 ms, whether it closed cleanly or crashed.
pub struct ShmReceiver {
    shared: Shared,
    index: u64,
    /// A `full` unit taken for a message that did not fit the caller's buffer.
    holding: bool,
}

impl ShmReceiver {
    pub(crate) fn open(addr: &Address) -> Result<ShmReceiver> {
        let name = addr
            .name()
            .unwrap_or_else(|| unreachable!("shm addresses have a name"));
        let o = addr.options();
        let capacity = o.capacity.unwrap_or(DEFAULT_SHM_CAPACITY);
        let max = o.max.unwrap_or(DEFAULT_SHM_MAX);
        let too_big = || {
            Error::new("open channel", ErrorKind::InvalidInput)
                .with_object(addr)
                .with_hint(format!(
                    "{capacity} slots of {max} bytes do not fit in memory; ask for fewer or \
                     smaller slots (at most {MAX_CAPACITY} slots)"
                ))
        };
        if capacity > MAX_CAPACITY {
            return Err(too_big());
        }
        let (stride, total) = geometry(capacity, max).ok_or_else(too_big)?;
        let shm = ShmOptions::new()
            .mode(o.mode.unwrap_or(0o600))
            .size(total)
            .create(name.as_str())
            .map_err(|e| e.with_object(addr))?;
        let region = shm.map().map_err(|e| e.with_object(addr))?;
        let locked = try_lock_byte(shm.as_fd(), RECEIVER_LOCK).op_on("F_OFD_SETLK", addr)?;
        if !locked {
            return Err(Error::new("open channel", ErrorKind::AlreadyExists)
                .with_object(addr)
                .with_hint("another process holds the receiver's lock on this new object"));
        }
        let shared = Shared {
            region,
            shm,
            label: addr.clone(),
            capacity,
            max,
            stride,
        };
        let r = &shared.region;
        r.store(OFF_VERSION, &VERSION)?;
        r.store(OFF_CAPACITY, &(capacity as u32))?;
        r.store(OFF_MAX, &(max as u64))?;
        shared.set_state(OFF_SENDER, STATE_NONE);
        shared.set_state(OFF_RECEIVER, STATE_OPEN);
        UnnamedSemaphore::init(r, SEM_EMPTY, capacity as u32).map_err(|e| e.with_object(addr))?;
        UnnamedSemaphore::init(r, SEM_FULL, 0).map_err(|e| e.with_object(addr))?;
        // Release pairs with the sender's Acquire load of the magic: a sender that sees
        // it sees the header and the semaphores.
        r.atomic_u32(OFF_MAGIC)?.store(MAGIC, Ordering::Release);
        Ok(ShmReceiver {
            shared,
            index: 0,
            holding: false,
        })
    }

    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.recv_inner(buf, deadline)
            .map_err(|e| recv_error(e, &self.shared.label, deadline))
    }

    fn recv_inner(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let s = &self.shared;
        if !self.holding {
            s.take(SEM_FULL, deadline, "recv", &sender_gone)?;
            self.holding = true;
        }
        let slot = s.slot(self.index);
        // Copy the length out once, then check the copy against our own `max`.
        let len = s.region.load::<u64>(slot)?;
        let len = match usize::try_from(len) {
            Ok(len) if len <= s.max => len,
            _ => {
                self.index += 1;
                self.holding = false;
                s.sem(SEM_EMPTY)?.post()?;
                return Err(Error::new("recv", ErrorKind::Corrupt)
                    .with_object(&s.label)
                    .with_hint(format!(
                        "a slot announced {len} bytes, above the channel's {} bytes; the \
                         slot was skipped",
                        s.max
                    )));
            }
        };
        if len > buf.len() {
            return Err(buffer_too_small(&s.label, len, buf.len()));
        }
        s.region.read(slot + 8, &mut buf[..len])?;
        self.index += 1;
        self.holding = false;
        s.sem(SEM_EMPTY)?.post()?;
        Ok(len)
    }
}

impl Receiver for ShmReceiver {
    forms!(receiver);

    fn max_message(&self) -> usize {
        self.shared.max
    }

    fn address(&self) -> Option<Address> {
        Some(self.shared.label.clone())
    }
}

impl Drop for ShmReceiver {
    fn drop(&mut self) {
        self.shared.set_state(OFF_RECEIVER, STATE_CLOSED);
    }
}

impl fmt::Debug for ShmReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmReceiver")
            .field("address", &self.shared.label.to_string())
            .field("capacity", &self.shared.capacity)
            .field("max", &self.shared.max)
            .finish()
    }
}

/// The sending side of `shm:/NAME`: opens the object (waiting for its receiver to create
/// and publish it), checks its header, and becomes its one sender.
pub struct ShmSender {
    shared: Shared,
    index: u64,
}

impl ShmSender {
    pub(crate) fn open(addr: &Address, deadline: Deadline) -> Result<ShmSender> {
        let name = addr
            .name()
            .unwrap_or_else(|| unreachable!("shm addresses have a name"));
        let shm = until_receiver(addr, deadline, |deadline| {
            let wait = match deadline {
                Deadline::Now => Duration::ZERO,
                Deadline::Never => crate::shm::posix::DEFAULT_INIT_WAIT,
                Deadline::At(at, _) => at.saturating_duration_since(std::time::Instant::now()),
            };
            ShmOptions::new().open_timeout(name.as_str(), wait)
        })?;
        let region = shm.map().map_err(|e| e.with_object(addr))?;
        // Wait for the receiver to publish the header (it may be half-way through).
        let mut backoff = Backoff::new();
        loop {
            match region.atomic_u32(OFF_MAGIC)?.load(Ordering::Acquire) {
                MAGIC => break,
                0 => {
                    let wait = match deadline {
                        Deadline::Never => Deadline::after(crate::shm::posix::DEFAULT_INIT_WAIT),
                        d => d,
                    };
                    backoff.sleep(wait, "open channel", addr).map_err(|e| {
                        e.with_hint(
                            "not initialised: the object exists but its receiver has not \
                             finished setting it up (it may have died half-way); remove it \
                             and start the receiver again",
                        )
                    })?;
                }
                other => {
                    return Err(Error::new("open channel", ErrorKind::Corrupt)
                        .with_object(addr)
                        .with_hint(format!(
                            "the object starts with {other:#010x}, not an ipcx channel's magic: \
                             it is some other shared memory"
                        )));
                }
            }
        }
        // Read the header once, then check every field against the real size.
        let version = region.load::<u32>(OFF_VERSION)?;
        let capacity = region.load::<u32>(OFF_CAPACITY)? as usize;
        let max = region.load::<u64>(OFF_MAX)?;
        if version != VERSION {
            return Err(Error::new("open channel", ErrorKind::Corrupt)
                .with_object(addr)
                .with_hint(format!(
                    "channel layout version {version}; this side speaks {VERSION}"
                )));
        }
        let geometry = usize::try_from(max)
            .ok()
            .filter(|_| (1..=MAX_CAPACITY).contains(&capacity))
            .and_then(|max| Some((max, geometry(capacity, max)?)))
            .filter(|&(_, (_, total))| total <= region.len());
        let Some((max, (stride, _))) = geometry else {
            return Err(Error::new("open channel", ErrorKind::Corrupt)
                .with_object(addr)
                .with_hint(format!(
                    "the header announces {capacity} slots of {max} bytes, which do not fit \
                     the {}-byte object",
                    region.len()
                )));
        };
        let locked = try_lock_byte(shm.as_fd(), SENDER_LOCK).op_on("F_OFD_SETLK", addr)?;
        let claimed = locked
            && region
                .atomic_u32(OFF_SENDER)?
                .compare_exchange(STATE_NONE, STATE_OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if !claimed {
            return Err(Error::new("open channel", ErrorKind::AlreadyExists)
                .with_object(addr)
                .with_hint(
                    "this channel has (or had) its sender: a shm channel carries one sender \
                     for its whole life; create a new channel for another",
                ));
        }
        let shared = Shared {
            region,
            shm,
            label: addr.clone(),
            capacity,
            max,
            stride,
        };
        // Check the semaphores now, so a damaged object fails here and not in a send.
        shared.sem(SEM_EMPTY)?;
        shared.sem(SEM_FULL)?;
        if let Some(why) = receiver_gone(&shared)? {
            return Err(Error::new("open channel", ErrorKind::PeerGone)
                .with_object(addr)
                .with_hint(why));
        }
        Ok(ShmSender { shared, index: 0 })
    }

    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let s = &self.shared;
        if msg.len() > s.max {
            return Err(too_large(
                &s.label,
                msg.len(),
                s.max,
                "the slot size the receiver chose with `max`",
            ));
        }
        if s.state(OFF_RECEIVER)? == STATE_CLOSED {
            return Err(Error::new("send", ErrorKind::PeerGone)
                .with_object(&s.label)
                .with_hint("the receiver closed the channel"));
        }
        s.take(SEM_EMPTY, deadline, "send", &receiver_gone)
            .map_err(|e| send_error(e, &s.label, deadline))?;
        let slot = s.slot(self.index);
        s.region.store(slot, &(msg.len() as u64))?;
        s.region.write(slot + 8, msg)?;
        self.index += 1;
        s.sem(SEM_FULL)?.post()
    }
}

impl Sender for ShmSender {
    forms!(sender);

    fn max_message(&self) -> usize {
        self.shared.max
    }
}

impl Drop for ShmSender {
    fn drop(&mut self) {
        self.shared.set_state(OFF_SENDER, STATE_CLOSED);
    }
}

impl fmt::Debug for ShmSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmSender")
            .field("address", &self.shared.label.to_string())
            .field("capacity", &self.shared.capacity)
            .field("max", &self.shared.max)
            .finish()
    }
}
