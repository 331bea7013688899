//! The shared-memory ring: a lock-free channel of variable-sized messages between two
//! processes, with no system call per message while both sides are busy.
//!
//! One shared-memory object holds a header, a counter and a data area. The sender
//! appends length-prefixed records, the receiver consumes them in order; a full ring is
//! backpressure. The object is anonymous (a sealed memfd, handed to the peer over a Unix
//! socket or inherited: [`RingOptions::anonymous`] and [`RingOptions::from_fd`]) or named
//! (POSIX shared memory, for unrelated processes: [`RingOptions::create_named`] and
//! [`RingOptions::open_named`]). It carries one sender and one receiver for its whole life.
//! For several senders, make a multi-producer ring with [`RingOptions::producers`]: see
//! [`mpsc`].
//!
//! ```
//! use ipcx::ring::{RingOptions, Wait};
//!
//! // Both ends in one process, for the example; see `from_fd` for two processes.
//! let (mut tx, mut rx) = RingOptions::new().capacity(64 << 10).wait(Wait::Adaptive).pair()?;
//! tx.send(b"hello")?;
//! let mut loan = tx.loan(5)?;          // zero-copy: write straight into the ring
//! loan.copy_from_slice(b"world");
//! loan.commit();
//! let mut buf = [0u8; 16];
//! let n = rx.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! let view = rx.recv_ref()?;           // zero-copy: a view, released on drop
//! assert_eq!(&*view, b"world");
//! drop(view);
//! assert_eq!(rx.try_recv(&mut buf).unwrap_err().kind(), ipcx::ErrorKind::WouldBlock);
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # Layout
//!
//! ```text
//! offset 0    Header (128 bytes): magic "IXRG" (published last), version, data offset,
//!             flags (0), capacity (bytes, a power of two), sender state, receiver state,
//!             how the sender waits, how the receiver waits (0 until taken; 1 busy,
//!             2 adaptive, 3 blocking)
//!        128  head: bytes ever released by the receiver (u64)      ┐ each on its own
//!        256  rx sleeper: futex seq + "sleeping" flag (receiver)   │ 128-byte line pair,
//!        384  tx sleeper: futex seq + "sleeping" flag (sender)     ┘ written by one side
//!        512  data area: `capacity` bytes of records
//! ```
//!
//! Every offset is fixed (`#[repr(C)]`, checked by static assertions) and nothing in
//! shared memory is a pointer. A record is an 8-byte header word `tag << 32 | len`, then
//! `len` payload bytes, padded to 8; a header word of 0 means "nothing here yet". A
//! message that would cross the end of the data area is preceded by a *pad* record that
//! fills the rest of it, so every message is contiguous. There is no shared tail: each
//! record's header word is its commit flag, so a waiting receiver watches the one cache
//! line where the next message starts, and finds the message's first bytes on it.
//!
//! # The algorithm, step by step
//!
//! Sending a message of `len` bytes (a record of `rec = 8 + round_up(len, 8)` bytes; the
//! sender keeps its own count of bytes published, `tail`):
//!
//! 1. If the record would cross the end of the data area, first send a pad to the end
//!    (steps 2 and 4, with the pad as the record); go on at offset 0.
//! 2. Wait until `capacity - (tail - head) >= rec + 8`: room for the record and for the
//!    word after it. The sender reads the shared head (`Acquire`, pairing with the
//!    receiver's `Release` store in step 8) only when the last head it saw does not leave
//!    room, and checks it: the head may only move forward, by multiples of 8, never past
//!    the tail.
//! 3. Write the payload. ([`RingSender::loan`] lends the payload bytes to write in place;
//!    [`Loan::commit`] does the rest.)
//! 4. Publish: store 0 ("nothing yet") in the word after the record, where the next
//!    record will start, so that a receiver never takes an older lap's header there for a
//!    new one; then store the record's header word with `Release`. Everything written
//!    before is visible to a receiver that loads that header with `Acquire`. A sender
//!    that dies before this store has published nothing of the record, however much of it
//!    it wrote: a half-written message is never delivered.
//! 5. If the receiver announced that it sleeps (see *Waiting*), bump its futex word and
//!    `FUTEX_WAKE` it; otherwise make no system call. A receiver that said in the header
//!    that it only spins is never asleep: for it this step, fence included, is skipped.
//!
//! Receiving (the receiver keeps its own `head`; the shared one is only ever stored):
//!
//! 6. Load the header word at `head % capacity` (`Acquire`) once into a local. 0 means
//!    empty: wait.
//! 7. Check it: a message must fit before the end of the data area and leave the word
//!    after it free; a pad must reach exactly the end and may not start at offset 0;
//!    anything else is [`ErrorKind::Corrupt`]. A pad is released at once (step 8) and the
//!    receiver looks again at offset 0 (once: a second pad is a fault, so no call loops).
//! 8. Copy the payload out (or lend it: [`RingReceiver::recv_ref`]), then release: store
//!    `head += rec` with `Release`, so the copy happens before the sender's next write
//!    over those bytes, and wake the sender the same way as step 5 if it sleeps (and
//!    may: a sender that only spins is skipped likewise).
//!
//! # Waiting
//!
//! A side that cannot proceed waits according to its [`Wait`]: `Busy` spins on the
//! counter, `Adaptive` spins briefly, then yields, then sleeps, and `Blocking` sleeps at
//! once. To sleep, a side reads its futex word `seq` (`Acquire`), stores `sleeping = 1`,
//! issues a `SeqCst` fence and checks its condition once more; only if it still cannot
//! proceed does it `FUTEX_WAIT` on `seq` with the value it read. The other side, after
//! each publication, issues a `SeqCst` fence, loads `sleeping`, and only if it is set
//! bumps `seq` (`Release`) and calls `FUTEX_WAKE`. The two fences order the pair of
//! store-then-load sequences (Dekker's pattern), so at least one side sees the other's
//! store: the waiter sees the new counter and does not sleep, or the notifier sees the
//! announcement and wakes it (if the bump comes before the wait, the kernel sees `seq`
//! changed and returns at once). No wake-up is lost, and a busy pair makes no system call.
//! A side that waits [`Wait::Busy`] never announces, and says so in the header when it
//! takes its side; its peer then skips the fence and the look at `sleeping` after each
//! publication, the costliest part of a busy round trip. (The loom model checks this
//! path for both sides; run by hand, its ignored twin shows that a receiver breaking
//! its word would lose a wake-up.)
//! The `loom` model in `tests/ring_loom.rs` checks exactly this code (see
//! `ring/protocol.rs`) with every interleaving of a small ring.
//!
//! # Peers that die or lie
//!
//! Each side holds an open-file-description lock on one byte of the object (receiver
//! byte 0, sender byte 1), which the kernel releases however the process ends, and marks
//! a state word when it closes cleanly; no PID is trusted. A waiting side sleeps at most
//! 50 ms at a time and then checks the other side's state and lock, so a blocked side
//! learns of a death within about 50 to 100 ms and gets [`ErrorKind::PeerGone`]. A
//! receiver first drains every message that was published (whole messages only), then
//! reports `PeerGone`. A sender learns of a dead receiver when it has to wait for room
//! (or at once, when the receiver closed cleanly); its capacity is then moot, whatever
//! loans the receiver held.
//!
//! A side whose header word says it only spins but which sleeps anyway is not woken: it
//! finds the message when its own 50 ms sleep slice ends. A false word therefore delays
//! only the side it describes, whoever wrote it (anyone who can write the header can do
//! worse already).
//!
//! Everything read from shared memory (header, counters, record headers) is read once
//! into a local and checked before use (the wait words, read at each publication,
//! need no check: any value is safe, only "busy" changes anything); a bad value is `Corrupt`, never an out-of-bounds
//! access, a panic or a hang. A peer can still change payload bytes while they are being
//! copied, or while a [`RecvRef`] is alive: copy with [`RingReceiver::recv`] and validate
//! the copy when the peer is not trusted. A named object can be truncated by anyone who
//! may open it, which would make the mapping fault with `SIGBUS`; an anonymous ring is a
//! memfd sealed against shrinking and growing, so it cannot (reliability item 11). Use
//! the anonymous form with a peer you do not trust.
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//! - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
//! - [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
//! - [fcntl(2), "Open file description locks"](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#![allow(unsafe_code)]

mod fanin;
pub mod mpsc;
mod protocol;
mod sync;

pub use self::mpsc::{
    MAX_PRODUCERS, MpscLoan, MpscOptions, MpscReceiver, MpscRecvRef, MpscRing, MpscSender,
};

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rustix::thread::futex;

use self::protocol::{CachePadded, Consumer, Control, Data, Fault, Found, Producer, Sleeper};
use self::sync::{AtomicU32, AtomicU64, Ordering};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::shm::Region;
use crate::shm::memfd::{Memfd, Seals};
use crate::shm::posix::{Shm, ShmOptions};
use crate::sys::lock::{byte_locked_elsewhere, try_lock_byte};
use crate::wait::Deadline;

/// "IXRG", little-endian.
const MAGIC: u32 = u32::from_le_bytes(*b"IXRG");
/// The layout version this code reads and writes.
const VERSION: u32 = 1;
/// The smallest data area, in bytes.
pub const MIN_CAPACITY: usize = 64;
/// The largest data area, in bytes (record lengths are 32-bit).
pub const MAX_CAPACITY: usize = 1 << 31;
/// The data area a ring gets unless told otherwise: 1 MiB.
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// How long a wait runs before it checks whether the peer is still there.
const SLICE: Duration = Duration::from_millis(50);
/// Adaptive waiting: spins before yielding, then yields before sleeping.
const SPINS: u32 = 256;
/// Spins of a receive's tight first loop, before the waiting machinery (busy and
/// adaptive rings).
const QUICK_SPINS: u32 = 128;

const YIELDS: u32 = 64;
/// Busy waiting: spins between looks at the clock (deadline, peer liveness) and a yield.
const BUSY_CHECK: u32 = 1024;

const STATE_NONE: u32 = 0;
const STATE_OPEN: u32 = 1;
const STATE_CLOSED: u32 = 2;
const RECEIVER_LOCK: u64 = 0;
const SENDER_LOCK: u64 = 1;

/// The fixed header. Every field is an atomic because the peer may write it at any time;
/// each is read once, into a local, when the ring is opened, except the state and wait
/// words, which are read (once per use) while it is in use.
#[repr(C)]
struct Header {
    magic: AtomicU32,
    version: AtomicU32,
    data_offset: AtomicU32,
    flags: AtomicU32,
    capacity: AtomicU64,
    sender: AtomicU32,
    receiver: AtomicU32,
    /// How the sender waits ([`Wait::code`]; 0 until it has taken its side).
    sender_wait: AtomicU32,
    /// How the receiver waits, likewise.
    receiver_wait: AtomicU32,
}

/// Everything before the data area.
#[repr(C)]
struct Layout {
    header: CachePadded<Header>,
    control: Control,
}

/// Where the data area starts.
const DATA_OFFSET: usize = size_of::<Layout>();

const _: () = {
    assert!(size_of::<Header>() == 40);
    assert!(size_of::<Layout>() == 512);
    assert!(align_of::<Layout>() == 128);
    assert!(std::mem::offset_of!(Layout, control) == 128);
    assert!(DATA_OFFSET.is_multiple_of(128));
    assert!(size_of::<AtomicU64>() == 8 && align_of::<AtomicU64>() == 8);
};

/// How a side of a ring waits when it cannot proceed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Spin on the shared counters, never sleeping: the lowest latency, one CPU busy
    /// while waiting. Checks the deadline and the peer's liveness, and yields the CPU,
    /// every thousand spins or so. For two sides on different CPUs: where they share
    /// one, each round trip waits out about a thousand spins of the other side (tens of
    /// microseconds); use [`Wait::Adaptive`] or [`Wait::Blocking`] there. A busy side
    /// says so in the ring's header, and its peer then publishes without the fence it
    /// needs only to wake a sleeper: a pair that both wait busy is the fastest ring.
    Busy,
    /// Spin briefly, then yield, then sleep on a futex: close to `Busy` while messages
    /// flow, and no CPU spent when they stop.
    #[default]
    Adaptive,
    /// Sleep on a futex at once.
    Blocking,
}

impl Wait {
    /// The word a side stores in the header for how it waits (0 means "not said yet").
    fn code(self) -> u32 {
        match self {
            Wait::Busy => 1,
            Wait::Adaptive => 2,
            Wait::Blocking => 3,
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wait::Busy => "busy",
            Wait::Adaptive => "adaptive",
            Wait::Blocking => "blocking",
        })
    }
}

impl FromStr for Wait {
    type Err = Error;

    /// Parses `busy`, `adaptive` or `blocking`.
    fn from_str(s: &str) -> Result<Wait> {
        match s {
            "busy" => Ok(Wait::Busy),
            "adaptive" => Ok(Wait::Adaptive),
            "blocking" => Ok(Wait::Blocking),
            _ => Err(Error::new("parse wait", ErrorKind::InvalidInput)
                .with_object(s)
                .with_hint("a ring's wait is `busy`, `adaptive` or `blocking`")),
        }
    }
}

/// Options for creating or opening a ring.
///
/// ```
/// use ipcx::ring::{RingOptions, Wait};
/// let opts = RingOptions::new().capacity(256 << 10).wait(Wait::Blocking).mode(0o600);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct RingOptions {
    capacity: usize,
    wait: Wait,
    mode: u32,
    open_wait: Duration,
}

impl Default for RingOptions {
    fn default() -> RingOptions {
        RingOptions {
            capacity: DEFAULT_CAPACITY,
            wait: Wait::Adaptive,
            mode: 0o600,
            open_wait: crate::shm::posix::DEFAULT_INIT_WAIT,
        }
    }
}

impl RingOptions {
    /// Default options: 1 MiB of data, adaptive waiting, mode 0600, and openers wait up
    /// to 1 s for a creator to finish setting the ring up.
    pub fn new() -> RingOptions {
        RingOptions::default()
    }

    /// The size of the data area in bytes, rounded up to a power of two (at least
    /// [`MIN_CAPACITY`], at most [`MAX_CAPACITY`]). The largest message is this minus 16
    /// bytes (its record header, and the word kept free for the next one). Only the creator uses it; an opener takes the ring's.
    pub fn capacity(mut self, bytes: usize) -> RingOptions {
        self.capacity = bytes;
        self
    }

    /// How this side waits when the ring is empty (receiver) or full (sender).
    pub fn wait(mut self, wait: Wait) -> RingOptions {
        self.wait = wait;
        self
    }

    /// The permission bits of a named ring's object (default 0600, exact whatever the
    /// umask).
    pub fn mode(mut self, mode: u32) -> RingOptions {
        self.mode = mode;
        self
    }

    /// How long [`open_named`](RingOptions::open_named) waits for a creator that has
    /// made the object but not yet finished writing its header (default 1 s).
    pub fn open_wait(mut self, wait: Duration) -> RingOptions {
        self.open_wait = wait;
        self
    }

    fn checked_capacity(&self, label: &str) -> Result<usize> {
        match self.capacity.max(MIN_CAPACITY).checked_next_power_of_two() {
            Some(cap) if cap <= MAX_CAPACITY => Ok(cap),
            _ => Err(Error::new("create ring", ErrorKind::InvalidInput)
                .with_object(label)
                .with_hint(format!(
                    "a capacity of {} bytes is above the largest ring ({MAX_CAPACITY} bytes)",
                    self.capacity
                ))),
        }
    }

    /// Creates a named ring (a POSIX shared memory object, created exclusively), owned by
    /// the returned handle: the object is unlinked when the side made from it is dropped,
    /// unless [`Ring::keep`] was called.
    ///
    /// The header is published before the creator takes a side, so a creator killed in
    /// between leaves a ring that looks ready but whose side never comes; a peer that
    /// opens it then waits until its own timeout. When the creator knows its side, use
    /// [`create_named_receiver`](RingOptions::create_named_receiver) or
    /// [`create_named_sender`](RingOptions::create_named_sender), which close that gap.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] for a bad name; [`ErrorKind::AlreadyExists`] if the
    /// name is taken; [`ErrorKind::LimitReached`] if `/dev/shm` has no room;
    /// [`ErrorKind::InvalidInput`] for a capacity above [`MAX_CAPACITY`].
    #[doc(alias = "shm_open")]
    pub fn create_named(&self, name: &str) -> Result<Ring> {
        let shared = self.create_named_shared(name, None)?;
        Ok(Ring { shared })
    }

    /// Creates a named ring and becomes its receiver **before** publishing its header,
    /// so that an opener that finds the ring initialised also finds its receiver
    /// claimed. Whenever the creator dies, an opener then gets "not initialised" (header
    /// not yet published) or a ring whose receiver is seen gone (`PeerGone`), never a
    /// ring whose receiver may or may not come, where a sender would wait for room for
    /// ever. (With [`create_named`](RingOptions::create_named) followed by
    /// [`Ring::receiver`], a creator killed between the two leaves exactly that.) This is
    /// what `ring:` receivers of the channel layer use; prefer it to `create_named` when
    /// the creator is the receiver.
    ///
    /// # Errors
    /// As [`create_named`](RingOptions::create_named).
    #[doc(alias = "shm_open")]
    pub fn create_named_receiver(&self, name: &str) -> Result<RingReceiver> {
        let shared = self.create_named_shared(name, Some(Role::Receiver))?;
        Ok(RingReceiver {
            consumer: Consumer::new(shared.capacity),
            side: Side::new(Role::Receiver),
            last_len: usize::MAX,
            shared,
        })
    }

    /// Creates a named ring and becomes its sender before publishing its header: the
    /// sending counterpart of
    /// [`create_named_receiver`](RingOptions::create_named_receiver), so that a receiver
    /// that opens the ring always finds a sender that is alive or seen gone.
    ///
    /// # Errors
    /// As [`create_named`](RingOptions::create_named).
    #[doc(alias = "shm_open")]
    pub fn create_named_sender(&self, name: &str) -> Result<RingSender> {
        let shared = self.create_named_shared(name, Some(Role::Sender))?;
        Ok(RingSender {
            producer: Producer::new(shared.capacity),
            side: Side::new(Role::Sender),
            shared,
        })
    }

    /// Creates the object, claims `role` if given, then publishes the header.
    fn create_named_shared(&self, name: &str, role: Option<Role>) -> Result<Shared> {
        let label = format!("ring:{name}");
        let cap = self.checked_capacity(&label)?;
        let shm = ShmOptions::new()
            .mode(self.mode)
            .size(DATA_OFFSET + cap)
            .create(name)?;
        let label = format!("ring:{}", shm.name());
        let region = shm.map()?;
        let shared = Shared::new(region, Object::Named(shm), label, cap as u64, self.wait)?;
        if let Some(role) = role {
            // The state word and the lock byte need no header: the object is zeroed.
            shared.claim(role)?;
        }
        shared.initialise();
        Ok(shared)
    }

    /// Opens a named ring that [`create_named`](RingOptions::create_named) made, waiting
    /// up to [`open_wait`](RingOptions::open_wait) for its creator to finish, and checks
    /// its header.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is no such object; [`ErrorKind::TimedOut`] if it
    /// exists but was not initialised in time (its creator may have died half-way);
    /// [`ErrorKind::Corrupt`] if its header is not a valid ring's.
    #[doc(alias = "shm_open")]
    pub fn open_named(&self, name: &str) -> Result<Ring> {
        let shm = ShmOptions::new().open_timeout(name, self.open_wait)?;
        let label = format!("ring:{}", shm.name());
        let region = shm.map()?;
        Shared::attach(region, Object::Named(shm), label, self.wait, self.open_wait)
    }

    /// Creates an anonymous ring: a memfd, allocated now and sealed against shrinking
    /// and growing. Hand its descriptor ([`Ring::as_fd`]) to the other process over a Unix
    /// socket (or let it inherit it); that process opens it with
    /// [`from_fd`](RingOptions::from_fd).
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] if the memory cannot be allocated.
    #[doc(alias = "memfd_create")]
    pub fn anonymous(&self) -> Result<Ring> {
        let label = "ring:anonymous".to_string();
        let cap = self.checked_capacity(&label)?;
        let memfd = Memfd::create("ipcx-ring", DATA_OFFSET + cap)?;
        let region = memfd.map()?;
        // SEAL too: nobody may add FUTURE_WRITE later and keep an opener from mapping it.
        memfd.seal(Seals::SHRINK | Seals::GROW | Seals::SEAL)?;
        let shared = Shared::new(
            region,
            Object::Anonymous(memfd),
            label,
            cap as u64,
            self.wait,
        )?;
        shared.initialise();
        Ok(Ring { shared })
    }

    /// Opens an anonymous ring from a descriptor received from (or inherited from) its
    /// creator. The descriptor is reopened through `/proc/self/fd`, so this side's
    /// liveness lock belongs to it alone even if the descriptor was inherited, then checked
    /// like any peer's memfd (sealed against shrinking, large enough) and its header
    /// validated.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] if it is not a sealed memfd or not a valid ring.
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Ring> {
        let label = "ring:anonymous".to_string();
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let own = rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .op_on("open /proc/self/fd", &label)
        .map_err(|e| e.with_hint("reopening the ring's descriptor needs /proc mounted"))?;
        drop(fd);
        let memfd = Memfd::from_peer(own, Seals::SHRINK | Seals::GROW, DATA_OFFSET)
            .map_err(|e| e.with_object(&label))?;
        let region = memfd.map()?;
        Shared::attach(
            region,
            Object::Anonymous(memfd),
            label,
            self.wait,
            Duration::ZERO,
        )
    }

    /// Both ends of a new anonymous ring in this process (for threads, and for tests):
    /// the receiver holds its own open file description, as a peer process would.
    pub fn pair(&self) -> Result<(RingSender, RingReceiver)> {
        let ring = self.anonymous()?;
        let fd = ring
            .as_fd()
            .try_clone_to_owned()
            .op_on("dup", &ring.shared.label)?;
        let other = self.from_fd(fd)?;
        Ok((ring.sender()?, other.receiver()?))
    }
}

/// The object behind a ring.
enum Object {
    Named(Shm),
    Anonymous(Memfd),
}

impl AsFd for Object {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Object::Named(shm) => shm.as_fd(),
            Object::Anonymous(memfd) => memfd.as_fd(),
        }
    }
}

/// The mapping and what was validated about it.
struct Shared {
    // Unmapped before the object (whose owner unlinks it) is dropped.
    region: Region,
    object: Object,
    label: String,
    /// The data area's size, validated (a power of two, inside the mapping).
    capacity: u64,
    wait: Wait,
}

impl Shared {
    fn new(
        region: Region,
        object: Object,
        label: String,
        capacity: u64,
        wait: Wait,
    ) -> Result<Shared> {
        let fits = usize::try_from(capacity)
            .ok()
            .and_then(|c| c.checked_add(DATA_OFFSET))
            .is_some_and(|need| need <= region.len());
        if !fits
            || !capacity.is_power_of_two()
            || capacity < MIN_CAPACITY as u64
            || !region.is_writable()
        {
            return Err(Error::new("open ring", ErrorKind::Corrupt)
                .with_object(&label)
                .with_hint(format!(
                    "the header announces {capacity} bytes of data, which is not a power of two \
                     from {MIN_CAPACITY} that fits the {}-byte object",
                    region.len()
                )));
        }
        Ok(Shared {
            region,
            object,
            label,
            capacity,
            wait,
        })
    }

    /// Writes a new ring's header, publishing the magic last.
    fn initialise(&self) {
        let h = &self.layout().header.0;
        h.version.store(VERSION, Ordering::Relaxed);
        h.data_offset.store(DATA_OFFSET as u32, Ordering::Relaxed);
        h.flags.store(0, Ordering::Relaxed);
        h.capacity.store(self.capacity, Ordering::Relaxed);
        // Release: pairs with the opener's Acquire load of the magic in `attach`, so an
        // opener that sees the magic sees the fields above.
        h.magic.store(MAGIC, Ordering::Release);
    }

    /// Waits for the header of an existing object, reads each field once and checks it.
    fn attach(
        region: Region,
        object: Object,
        label: String,
        wait: Wait,
        open_wait: Duration,
    ) -> Result<Ring> {
        let corrupt = |hint: String| {
            Err(Error::new("open ring", ErrorKind::Corrupt)
                .with_object(&label)
                .with_hint(hint))
        };
        if region.len() < DATA_OFFSET + MIN_CAPACITY || !region.is_writable() {
            return corrupt(format!(
                "the object has {} bytes, too small for a ring ({} bytes at least)",
                region.len(),
                DATA_OFFSET + MIN_CAPACITY
            ));
        }
        // SAFETY: see `layout`; the length is checked just above.
        let header = unsafe { &(*region.as_ptr().cast::<Layout>()).header.0 };
        let deadline = Deadline::after(open_wait);
        let mut backoff = crate::wait::Backoff::new();
        loop {
            // Acquire: pairs with the creator's Release store in `initialise`.
            match header.magic.load(Ordering::Acquire) {
                MAGIC => break,
                0 => backoff.sleep(deadline, "open ring", &label).map_err(|e| {
                    e.with_kind(ErrorKind::TimedOut).with_hint(
                        "not initialised: the object exists but its creator has not finished \
                         setting it up (it may have died half-way); remove it and create it again",
                    )
                })?,
                other => {
                    return corrupt(format!(
                        "the object starts with {other:#010x}, not a ring's magic {MAGIC:#010x}: \
                         it is some other shared memory"
                    ));
                }
            }
        }
        let version = header.version.load(Ordering::Relaxed);
        let data_offset = header.data_offset.load(Ordering::Relaxed);
        let flags = header.flags.load(Ordering::Relaxed);
        let capacity = header.capacity.load(Ordering::Relaxed);
        if version != VERSION {
            return corrupt(format!(
                "ring layout version {version}; this side speaks version {VERSION}"
            ));
        }
        if flags == mpsc::FLAG_MPSC {
            return Err(Error::new("open ring", ErrorKind::InvalidInput)
                .with_object(&label)
                .with_hint(
                    "this is a multi-producer ring: open it with \
                     RingOptions::new().producers(1).open_named (or from_fd)",
                ));
        }
        if data_offset as usize != DATA_OFFSET || flags != 0 {
            return corrupt(format!(
                "the header announces data at offset {data_offset} with flags {flags:#x}; \
                 version {VERSION} puts it at {DATA_OFFSET} with no flags"
            ));
        }
        let shared = Shared::new(region, object, label, capacity, wait)?;
        Ok(Ring { shared })
    }

    fn layout(&self) -> &Layout {
        // SAFETY:
        // - The mapping is at least `DATA_OFFSET` bytes (checked in `new`/`attach`
        //   before any `Shared` or header reference exists) and page-aligned, so aligned
        //   for `Layout` (128).
        // - Every field of `Layout` is an atomic (or padding): every bit pattern is a
        //   valid value, and other processes' writes to it are atomic accesses or their
        //   own bugs, which cannot make a value invalid.
        // - The mapping is writable (checked), so atomic stores do not fault.
        // - The reference borrows `self`, which keeps the mapping alive.
        unsafe { &*self.region.as_ptr().cast::<Layout>() }
    }

    fn control(&self) -> &Control {
        &self.layout().control
    }

    fn data(&self) -> Area {
        Area {
            // SAFETY: `DATA_OFFSET + capacity <= len` (checked in `new`), so the
            // offset stays inside the mapping.
            base: unsafe { self.region.as_ptr().add(DATA_OFFSET) },
            capacity: self.capacity,
        }
    }

    fn state(&self, role: Role) -> &AtomicU32 {
        let h = &self.layout().header.0;
        match role {
            Role::Sender => &h.sender,
            Role::Receiver => &h.receiver,
        }
    }

    fn wait_word(&self, role: Role) -> &AtomicU32 {
        let h = &self.layout().header.0;
        match role {
            Role::Sender => &h.sender_wait,
            Role::Receiver => &h.receiver_wait,
        }
    }

    /// How to wake `peer`: not at all if it said it only spins. Read at each publication
    /// (one load from the header's line, which nobody writes while the ring is in use):
    /// a peer that has not taken its side yet counts as one that may sleep.
    #[inline(always)]
    fn waker(&self, peer: Role) -> Futex {
        Futex {
            peer_sleeps: self.wait_word(peer).load(Ordering::Relaxed) != Wait::Busy.code(),
        }
    }

    /// Takes `role`: its lock byte, and its state word from "none" to "open".
    fn claim(&self, role: Role) -> Result<()> {
        let locked = try_lock_byte(self.object.as_fd(), role.lock_byte()).map_err(|e| {
            Error::from_errno("F_OFD_SETLK", e.raw_os_error()).with_object(&self.label)
        })?;
        // AcqRel: the claim is the one write to this word besides the close; Acquire
        // sees a close that came before.
        let claimed = locked
            && self
                .state(role)
                .compare_exchange(STATE_NONE, STATE_OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if !claimed {
            return Err(Error::new("open ring", ErrorKind::AlreadyExists)
                .with_object(&self.label)
                .with_hint(format!(
                    "this ring has (or had) its {role}: a ring carries one {role} for its whole \
                     life; create a new ring for another"
                )));
        }
        // Relaxed: a peer that reads the old 0 treats this side as one that may sleep,
        // which is always safe; it sees the code soon after (nothing orders it sooner).
        self.wait_word(role)
            .store(self.wait.code(), Ordering::Relaxed);
        Ok(())
    }

    /// Marks `role` closed and wakes the peer, so a peer asleep learns of it now rather
    /// than at its next 50 ms check.
    fn close(&self, role: Role) {
        // Release: a peer that sees "closed" sees every publication made before.
        self.state(role).store(STATE_CLOSED, Ordering::Release);
        let sleeper = match role {
            Role::Sender => &self.control().rx.0,
            Role::Receiver => &self.control().tx.0,
        };
        sleeper.seq.fetch_add(1, Ordering::Release);
        let _ = futex::wake(&sleeper.seq, futex::Flags::empty(), 1);
    }

    /// Whether the side `peer` has gone: closed, or open with its lock released.
    fn peer_gone(&self, peer: Role) -> Result<Option<&'static str>> {
        match self.state(peer).load(Ordering::Acquire) {
            STATE_NONE => Ok(None),
            STATE_CLOSED => Ok(Some(match peer {
                Role::Sender => "the sender closed the ring",
                Role::Receiver => "the receiver closed the ring",
            })),
            STATE_OPEN => {
                let held =
                    byte_locked_elsewhere(self.object.as_fd(), peer.lock_byte()).map_err(|e| {
                        Error::from_errno("F_OFD_GETLK", e.raw_os_error()).with_object(&self.label)
                    })?;
                Ok((!held).then_some(match peer {
                    Role::Sender => "the sender's process died without closing the ring",
                    Role::Receiver => "the receiver's process died without closing the ring",
                }))
            }
            other => Err(Error::new("check peer", ErrorKind::Corrupt)
                .with_object(&self.label)
                .with_hint(format!(
                    "the {peer} state word holds {other}, not 0, 1 or 2: the ring's header was \
                     overwritten"
                ))),
        }
    }

    fn corrupt(&self, op: &'static str, fault: Fault) -> Error {
        let hint = match fault {
            Fault::Head { head, tail } => format!(
                "the receiver's counter says {head} bytes were released, but only {tail} were \
                 published (or it moved back): the counter was overwritten"
            ),
            Fault::Record { pos, word } => format!(
                "the record header at data offset {pos} reads {word:#018x}, which is not a \
                 message or pad that fits before the end of the {}-byte data area",
                self.capacity
            ),
        };
        Error::new(op, ErrorKind::Corrupt)
            .with_object(&self.label)
            .with_hint(format!("{hint}; the ring cannot be trusted any more"))
    }

    /// Runs `attempt` until it yields a value, waiting in between as this side's
    /// [`Wait`] says, on `sleeper`, until `deadline`, and checking every 50 ms (and after
    /// every wake-up) whether `peer` is gone. When it is, `attempt` runs once more (the
    /// peer may have published just before it went) before `PeerGone` is returned.
    fn wait_for<T>(
        &self,
        side: &mut Side,
        sleeper: &Sleeper,
        deadline: Deadline,
        op: &'static str,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        if let Some(why) = side.gone {
            return Err(self.peer_gone_error(op, why));
        }
        let mut rounds: u32 = 0;
        // When the peer was last checked. The try form checks it at most every 50 ms,
        // so that polling an empty ring with it is not a system call each time; a
        // waiting call starts its first slice at its first look at the clock, not here,
        // so that a message that arrives within the first spins costs no clock read.
        let mut last_check = match deadline {
            Deadline::Now => Some(side.last_check),
            _ => None,
        };
        let mut check_now = matches!(deadline, Deadline::Now);
        let mut force = matches!(deadline, Deadline::Now) && side.first_try;
        loop {
            if check_now {
                let now = Instant::now();
                let since = *last_check.get_or_insert(now);
                if force || now.duration_since(since) >= SLICE {
                    side.first_try = false;
                    force = false;
                    last_check = Some(now);
                    side.last_check = now;
                    if let Some(why) = self.peer_gone(side.role.peer())? {
                        if let Some(v) = attempt()? {
                            return Ok(v);
                        }
                        side.gone = Some(why);
                        return Err(self.peer_gone_error(op, why));
                    }
                }
                if let Err(e) = deadline.remaining(op, &self.label) {
                    return Err(self.deadline_error(e, op, deadline));
                }
            }
            let spin = match self.wait {
                Wait::Busy => true,
                Wait::Adaptive => rounds < SPINS + YIELDS,
                Wait::Blocking => false,
            };
            if spin {
                rounds = rounds.wrapping_add(1);
                let every = rounds.is_multiple_of(BUSY_CHECK);
                // Busy waits also yield now and then: with both sides on one CPU the
                // peer could otherwise not run until this side's time slice ends.
                if every || (self.wait == Wait::Adaptive && rounds > SPINS) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                check_now = every || (self.wait == Wait::Adaptive && rounds > SPINS);
            } else {
                // The slice that bounds how long a death goes unnoticed starts before
                // the first sleep at the latest.
                last_check.get_or_insert_with(Instant::now);
                let seq = sleeper.announce();
                if let Some(v) = attempt().inspect_err(|_| sleeper.retire())? {
                    sleeper.retire();
                    return Ok(v);
                }
                if self.state(side.role.peer()).load(Ordering::Acquire) == STATE_CLOSED {
                    // Closed while we were about to sleep: check at once.
                    sleeper.retire();
                    force = true;
                    check_now = true;
                    continue;
                }
                let left = deadline.remaining(op, &self.label).map_err(|e| {
                    sleeper.retire();
                    self.deadline_error(e, op, deadline)
                })?;
                let slice = left.map_or(SLICE, |l| l.min(SLICE));
                let ts = rustix::time::Timespec {
                    tv_sec: slice.as_secs() as i64,
                    tv_nsec: i64::from(slice.subsec_nanos()),
                };
                // EAGAIN (the word changed), ETIMEDOUT and EINTR all mean: look again.
                let _ = futex::wait(&sleeper.seq, futex::Flags::empty(), seq, Some(&ts));
                sleeper.retire();
                force = self.state(side.role.peer()).load(Ordering::Acquire) == STATE_CLOSED;
                check_now = true;
            }
            if let Some(v) = attempt()? {
                return Ok(v);
            }
        }
    }

    fn peer_gone_error(&self, op: &'static str, why: &'static str) -> Error {
        Error::new(op, ErrorKind::PeerGone)
            .with_object(&self.label)
            .with_hint(why)
    }

    fn deadline_error(&self, e: Error, op: &'static str, deadline: Deadline) -> Error {
        let sending = matches!(op, "send" | "loan");
        let hint = match (deadline, sending) {
            (Deadline::At(_, t), true) => {
                format!("the ring stayed full for {t:?}: the receiver is not keeping up")
            }
            (Deadline::At(_, t), false) => format!("no message arrived within {t:?}"),
            (_, true) => "the ring is full: the receiver has not taken the earlier messages; \
                          wait with send or send_timeout"
                .to_string(),
            (_, false) => "no message is waiting; wait with recv or recv_timeout".to_string(),
        };
        let kind = match deadline {
            Deadline::At(..) => ErrorKind::TimedOut,
            Deadline::Now => ErrorKind::WouldBlock,
            Deadline::Never => return e,
        };
        Error::new(op, kind)
            .with_object(&self.label)
            .with_hint(hint)
    }
}

/// A ring's sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Sender,
    Receiver,
}

impl Role {
    fn peer(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }

    fn lock_byte(self) -> u64 {
        match self {
            Role::Sender => SENDER_LOCK,
            Role::Receiver => RECEIVER_LOCK,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        })
    }
}

/// What a side remembers about its peer between calls.
struct Side {
    role: Role,
    /// Why the peer is gone, once known.
    gone: Option<&'static str>,
    /// When the try forms last checked the peer.
    last_check: Instant,
    /// The try forms check at their first call.
    first_try: bool,
}

impl Side {
    fn new(role: Role) -> Side {
        Side {
            role,
            gone: None,
            last_check: Instant::now(),
            first_try: true,
        }
    }
}

/// The data area: record headers as atomic words, payloads by bulk copy.
#[derive(Clone, Copy)]
struct Area {
    base: *mut u8,
    capacity: u64,
}

impl Area {
    /// The `len` bytes at `offset`, if they lie inside the data area.
    fn span(&self, offset: u64, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len as u64)?;
        (end <= self.capacity).then(|| {
            // SAFETY: `offset <= end <= capacity`, and the data area is `capacity` bytes
            // of the mapping from `base`.
            unsafe { self.base.add(offset as usize) }
        })
    }

    /// Copies `msg` into the data area at `offset`: the payload of a record reserved and
    /// not yet published. `None` if the bytes do not lie inside the data area.
    fn copy_in(&self, offset: u64, msg: &[u8]) -> Option<()> {
        let dst = self.span(offset, msg.len())?;
        // SAFETY:
        // - `dst..dst + msg.len()` lies inside the data area (`span` checked it against
        //   the validated capacity), which the mapping this area came from keeps alive.
        // - `msg` is ordinary memory of this process, so the ranges do not overlap.
        // - By the protocol these bytes are reserved and unpublished, in a ring (or lane)
        //   only this sender writes: the receiver does not read or write them until the
        //   header store that publishes them. A peer that breaks the protocol and writes
        //   them concurrently races with this copy; the copy is then a data race on
        //   memory this process never reads back, and what it can cause is garbage bytes
        //   in the message the receiver itself receives.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, msg.len()) };
        Some(())
    }

    /// Copies the `buf.len()` bytes at `offset` out of the data area: the payload of a
    /// published record not yet released. `None` if they do not lie inside the data area.
    fn copy_out(&self, offset: u64, buf: &mut [u8]) -> Option<()> {
        let src = self.span(offset, buf.len())?;
        // SAFETY:
        // - `src..src + buf.len()` lies inside the data area (`span` checked it against
        //   the validated capacity), which the mapping this area came from keeps alive.
        // - `buf` is this process's memory, so the ranges do not overlap.
        // - By the protocol the bytes are published and their sender does not write them
        //   until the receiver releases them. A sender that breaks the protocol and
        //   writes them during the copy races with it; the copy then holds some mix of
        //   old and new bytes. That is the only effect on this process: the bytes are
        //   plain `u8`s (every value valid), copied into its buffer and never re-read
        //   from shared memory, and no length or index is taken from them (reliability
        //   item 10).
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Some(())
    }

    /// Hints the CPU to fetch the cache line holding byte `pos` (masked into the data
    /// area). Not a memory access: no data race with a writer of that line, no fault.
    fn prefetch(&self, pos: u64) {
        let pos = pos & (self.capacity - 1);
        // SAFETY: `pos < capacity` (masked just above), so the pointer stays inside
        // the data area of the mapping this area was made from.
        let ptr = unsafe { self.base.add(pos as usize) };
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: a prefetch never dereferences its pointer in the abstract machine
            // and cannot fault; SSE is part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = ptr;
    }

    fn word(&self, pos: u64) -> &AtomicU64 {
        // Masked so that even a wrong caller cannot leave the data area or misalign.
        let pos = pos & (self.capacity - 1) & !7;
        // SAFETY:
        // - `pos + 8 <= capacity` (masked just above, capacity a power of two >= 64) and
        //   `base` is 128-aligned (page-aligned mapping plus `DATA_OFFSET`), so the word is
        //   inside the mapping and 8-aligned.
        // - Every bit pattern is a valid `u64`; the mapping is writable and outlives the
        //   `Shared` this area came from, which the caller borrows for the call.
        unsafe { AtomicU64::from_ptr(self.base.add(pos as usize).cast::<u64>()) }
    }
}

impl Data for Area {
    fn load_word(&self, pos: u64) -> u64 {
        self.word(pos).load(Ordering::Acquire)
    }

    fn store_word(&self, pos: u64, word: u64) {
        self.word(pos).store(word, Ordering::Relaxed);
    }

    fn publish_word(&self, pos: u64, word: u64) {
        self.word(pos).store(word, Ordering::Release);
    }
}

/// Wakes a sleeper with `FUTEX_WAKE` (shared, not private: the word is in memory another
/// process maps), unless the peer said it never sleeps ([`Shared::waker`]).
#[derive(Clone, Copy)]
struct Futex {
    peer_sleeps: bool,
}

/// Wakes a peer that may sleep: the multi-producer ring's, and the slow paths'.
const FUTEX: Futex = Futex { peer_sleeps: true };

impl protocol::Wake for Futex {
    #[inline(always)]
    fn peer_may_sleep(&self) -> bool {
        self.peer_sleeps
    }

    fn wake(&self, sleeper: &Sleeper) {
        let _ = futex::wake(&sleeper.seq, futex::Flags::empty(), 1);
    }
}

/// A ring that is open but whose side is not chosen yet: turn it into a [`RingSender`]
/// or a [`RingReceiver`]. Its descriptor ([`AsFd`]) is what to hand to the peer of an
/// anonymous ring.
pub struct Ring {
    shared: Shared,
}

impl Ring {
    /// Becomes the ring's one sender.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the ring has (or had) a sender.
    pub fn sender(self) -> Result<RingSender> {
        self.shared.claim(Role::Sender)?;
        Ok(RingSender {
            producer: Producer::new(self.shared.capacity),
            side: Side::new(Role::Sender),
            shared: self.shared,
        })
    }

    /// Becomes the ring's one receiver.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the ring has (or had) a receiver.
    pub fn receiver(self) -> Result<RingReceiver> {
        self.shared.claim(Role::Receiver)?;
        Ok(RingReceiver {
            consumer: Consumer::new(self.shared.capacity),
            side: Side::new(Role::Receiver),
            last_len: usize::MAX,
            shared: self.shared,
        })
    }

    /// The size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// The largest message the ring carries: the capacity minus 16 bytes (the record's
    /// header, and the word kept free for the next one).
    pub fn max_message(&self) -> usize {
        max_message(self.shared.capacity)
    }

    /// Leaves a named ring's object in place when the side made from this handle is
    /// dropped (it then lives until [`Shm::unlink`] or reboot). No effect on an
    /// anonymous ring.
    pub fn keep(&mut self) {
        if let Object::Named(shm) = &mut self.shared.object {
            shm.keep();
        }
    }
}

impl AsFd for Ring {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.object.as_fd()
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("object", &self.shared.label)
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

fn max_message(capacity: u64) -> usize {
    protocol::max_payload(capacity) as usize
}

/// The error for a message of `len` bytes above a ring's largest, `max`; `carries` says
/// what the largest comes from.
fn too_large_for_ring(
    op: &'static str,
    label: &str,
    len: usize,
    max: usize,
    carries: &str,
) -> Error {
    Error::new(op, ErrorKind::MessageTooLarge)
        .with_object(label)
        .with_hint(format!(
            "the message is {len} bytes; this ring carries at most {max} bytes ({carries} \
             minus 16 bytes of record framing); create it with a larger capacity"
        ))
}

/// The error for a next message of `len` bytes that does not fit a buffer of `have`.
fn too_large_for_buffer(label: &str, len: usize, have: usize) -> Error {
    Error::new("recv", ErrorKind::MessageTooLarge)
        .with_object(label)
        .with_hint(format!(
            "the next message is {len} bytes but the buffer has {have} bytes; it stays \
             pending: receive again with a buffer of at least {len} bytes"
        ))
}

/// The sending side of a ring.
pub struct RingSender {
    shared: Shared,
    producer: Producer,
    side: Side,
}

impl RingSender {
    /// Sends one message, waiting as long as the ring is full.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] above [`max_message`](RingSender::max_message);
    /// [`ErrorKind::PeerGone`] once the receiver is known to be gone;
    /// [`ErrorKind::Corrupt`] if the receiver's counter was overwritten.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Never)
    }

    /// Sends one message only if the ring has room now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when it has not; nothing was sent.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Now)
    }

    /// Sends one message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when the ring stayed full; nothing was sent.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(msg, Deadline::after(timeout))
    }

    /// Reserves room for a message of `len` bytes and lends it out for writing in place:
    /// [`Loan::commit`] publishes it; dropping the loan uncommitted publishes nothing.
    /// The bytes start as whatever the ring held before: write all of them.
    ///
    /// # Errors
    /// As [`send`](RingSender::send).
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::Never)
    }

    /// As [`loan`](RingSender::loan), only if the ring has room now
    /// ([`ErrorKind::WouldBlock`] otherwise).
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::Now)
    }

    /// As [`loan`](RingSender::loan), waiting at most `timeout` for room
    /// ([`ErrorKind::TimedOut`] otherwise).
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::after(timeout))
    }

    /// The largest message the ring carries.
    pub fn max_message(&self) -> usize {
        max_message(self.shared.capacity)
    }

    /// The size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// The fast path, inlined into each caller: room at once, so no waiting machinery,
    /// error value or clock; anything else goes to [`RingSender::send_slow`].
    #[inline(always)]
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let (area, waker) = (self.shared.data(), self.shared.waker(Role::Receiver));
        if let Some(pos) = self.reserve_now(msg.len(), &area, &waker) {
            if area.copy_in(pos + protocol::RECORD_HEADER, msg).is_some() {
                self.producer
                    .commit(self.shared.control(), &area, &waker, pos, msg.len() as u64);
                return Ok(());
            }
        }
        self.send_slow(msg, deadline)
    }

    #[cold]
    #[inline(never)]
    fn send_slow(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let pos = self.reserve(msg.len(), deadline, "send")?;
        let area = self.shared.data();
        area.copy_in(pos + protocol::RECORD_HEADER, msg)
            .ok_or_else(|| {
                self.shared
                    .corrupt("send", Fault::Head { head: 0, tail: pos })
            })?;
        let waker = self.shared.waker(Role::Receiver);
        self.producer
            .commit(self.shared.control(), &area, &waker, pos, msg.len() as u64);
        Ok(())
    }

    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        let (area, waker) = (self.shared.data(), self.shared.waker(Role::Receiver));
        let pos = match self.reserve_now(len, &area, &waker) {
            Some(pos) => pos,
            None => self.reserve(len, deadline, "loan")?,
        };
        let dst = self
            .shared
            .data()
            .span(pos + protocol::RECORD_HEADER, len)
            .ok_or_else(|| {
                self.shared
                    .corrupt("loan", Fault::Head { head: 0, tail: pos })
            })?;
        Ok(Loan {
            tx: self,
            pos,
            ptr: dst,
            len,
        })
    }

    /// Room for a message of `len` bytes now, if the ring has it and nothing is amiss:
    /// its record's position. `None` sends the caller to [`RingSender::reserve`], which
    /// looks again and reports what is wrong (too large, receiver gone, corrupt head) or
    /// waits.
    #[inline(always)]
    fn reserve_now(&mut self, len: usize, area: &Area, waker: &Futex) -> Option<u64> {
        if len > self.max_message()
            || self.shared.state(Role::Receiver).load(Ordering::Relaxed) == STATE_CLOSED
        {
            return None;
        }
        let rec = protocol::record_len(len as u64)?;
        self.producer
            .reserve(self.shared.control(), area, waker, rec)
            .ok()
            .flatten()
    }

    /// Waits for room for a message of `len` bytes; returns its record's position.
    #[cold]
    #[inline(never)]
    fn reserve(&mut self, len: usize, deadline: Deadline, op: &'static str) -> Result<u64> {
        let max = self.max_message();
        if len > max {
            let carries = format!("its capacity of {} bytes", self.shared.capacity);
            return Err(too_large_for_ring(
                op,
                &self.shared.label,
                len,
                max,
                &carries,
            ));
        }
        // Cheap (one load of a line the receiver writes only when it closes): a
        // receiver that closed cleanly is noticed at once, not when the ring fills.
        if self.shared.state(Role::Receiver).load(Ordering::Relaxed) == STATE_CLOSED {
            self.side.gone = Some("the receiver closed the ring");
            return Err(self
                .shared
                .peer_gone_error(op, "the receiver closed the ring"));
        }
        let rec = protocol::record_len(len as u64).unwrap_or(u64::MAX);
        let shared = &self.shared;
        let producer = &mut self.producer;
        let control = shared.control();
        let area = shared.data();
        shared.wait_for(&mut self.side, &control.tx.0, deadline, op, || {
            producer
                .reserve(control, &area, &shared.waker(Role::Receiver), rec)
                .map_err(|f| shared.corrupt(op, f))
        })
    }
}

impl crate::channel::Sender for RingSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Never)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Now)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(msg, Deadline::after(timeout))
    }

    fn max_message(&self) -> usize {
        RingSender::max_message(self)
    }
}

impl Drop for RingSender {
    fn drop(&mut self) {
        self.shared.close(Role::Sender);
    }
}

impl fmt::Debug for RingSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingSender")
            .field("object", &self.shared.label)
            .field("capacity", &self.shared.capacity)
            .field("wait", &self.shared.wait)
            .finish()
    }
}

// SAFETY: `Area`'s raw pointer points into the mapping the sender owns; all shared state
// is accessed through atomics or copies, so the sender may move to another thread.
unsafe impl Send for RingSender {}

/// Room for one message, lent out by [`RingSender::loan`]: write the payload in place,
/// then [`commit`](Loan::commit) it. Dropped without a commit, it publishes nothing.
pub struct Loan<'a> {
    tx: &'a mut RingSender,
    pos: u64,
    ptr: *mut u8,
    len: usize,
}

impl Loan<'_> {
    /// Publishes the message: the receiver can take it from now on.
    pub fn commit(self) {
        let shared = &self.tx.shared;
        self.tx.producer.commit(
            shared.control(),
            &shared.data(),
            &shared.waker(Role::Receiver),
            self.pos,
            self.len as u64,
        );
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY:
        // - `ptr..ptr + len` is inside the data area (checked by `span` when the loan was
        //   made), which the borrowed sender's mapping keeps alive for `'a`.
        // - The bytes are reserved and unpublished: by the protocol nobody else reads or
        //   writes them until `commit`. Only a receiver that breaks the protocol could
        //   write them meanwhile; that is a race on bytes this process only hands to the
        //   receiver, so what it observes is garbage data, which it has then asked for.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes this the only view in this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan").field("len", &self.len).finish()
    }
}

/// The receiving side of a ring.
pub struct RingReceiver {
    shared: Shared,
    consumer: Consumer,
    side: Side,
    /// The length of the last message copied out ([`RingReceiver::copy_len`]).
    last_len: usize,
}

impl RingReceiver {
    /// Receives one message into `buf`, waiting as long as it takes; returns its length.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] when the next message does not fit `buf` (it stays
    /// pending); [`ErrorKind::PeerGone`] when the sender is gone and every message it
    /// published has been received; [`ErrorKind::Corrupt`] when the ring's counters or a
    /// record header were overwritten.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_until(buf, Deadline::Never)
    }

    /// Receives one message only if one is waiting now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when none is.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_until(buf, Deadline::Now)
    }

    /// Receives one message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when none arrived in time.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_until(buf, Deadline::after(timeout))
    }

    /// Receives one message without copying it: a view of it in the ring, released
    /// (its room given back to the sender) when the view is dropped.
    ///
    /// The sender cannot change the bytes while the view lives unless it breaks the
    /// protocol; with a sender you do not trust, copy ([`recv`](RingReceiver::recv)) and
    /// validate the copy instead.
    pub fn recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.recv_ref_until(Deadline::Never)
    }

    /// As [`recv_ref`](RingReceiver::recv_ref), only if a message is waiting now
    /// ([`ErrorKind::WouldBlock`] otherwise).
    pub fn try_recv_ref(&mut self) -> Result<RecvRef<'_>> {
        self.recv_ref_until(Deadline::Now)
    }

    /// As [`recv_ref`](RingReceiver::recv_ref), waiting at most `timeout`
    /// ([`ErrorKind::TimedOut`] otherwise).
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<RecvRef<'_>> {
        self.recv_ref_until(Deadline::after(timeout))
    }

    /// The largest message the ring carries: a buffer this large always suffices.
    pub fn max_message(&self) -> usize {
        max_message(self.shared.capacity)
    }

    /// The size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// How many times a receive looks before it waits: [`QUICK_SPINS`] when this side
    /// spins and the call may wait, once for the try forms and blocking rings.
    fn spins(&self, deadline: Deadline) -> u32 {
        if self.shared.wait != Wait::Blocking && !matches!(deadline, Deadline::Now) {
            QUICK_SPINS
        } else {
            1
        }
    }

    /// Looks for the next message up to `spins` times in a tight loop, with no clock and
    /// no error values: while messages flow the next one is usually here within a few
    /// hundred nanoseconds. `None` when it is not, and when anything is amiss, which the
    /// waiting path ([`RingReceiver::next`]) then reads again and reports.
    #[inline(always)]
    fn poll(&mut self, spins: u32, area: &Area, waker: &Futex) -> Option<Found> {
        let control = self.shared.control();
        let mut left = spins;
        loop {
            if let Some(found) = self.consumer.next(control, area, waker).ok()? {
                return Some(found);
            }
            left -= 1;
            if left == 0 {
                return None;
            }
            // A message of more than 56 bytes spans the header's line and the next one.
            // Prefetching the next line while we wait lets its miss overlap the header's
            // when the message lands, instead of following it. A prefetch is a hint, not
            // a read: it cannot race with the sender writing that line.
            area.prefetch((self.consumer.position() | 63) + 1);
            std::hint::spin_loop();
        }
    }

    /// The next message: polled `spins` times, then waited for as this side's [`Wait`]
    /// says until `deadline`, with every fault and the peer's departure reported.
    fn next(
        &mut self,
        deadline: Deadline,
        op: &'static str,
        spins: u32,
    ) -> Result<(Found, *const u8)> {
        let area = self.shared.data();
        let found = match self.poll(spins, &area, &self.shared.waker(Role::Sender)) {
            Some(found) => found,
            None => {
                let shared = &self.shared;
                let consumer = &mut self.consumer;
                let control = shared.control();
                shared.wait_for(&mut self.side, &control.rx.0, deadline, op, || {
                    let found = consumer
                        .next(control, &area, &shared.waker(Role::Sender))
                        .map_err(|f| shared.corrupt(op, f))?;
                    if found.is_none() {
                        // As in `poll`.
                        area.prefetch((consumer.position() | 63) + 1);
                    }
                    Ok(found)
                })?
            }
        };
        let len = usize::try_from(found.len).unwrap_or(usize::MAX);
        let src = area.span(found.offset, len).ok_or_else(|| {
            self.shared.corrupt(
                op,
                Fault::Record {
                    pos: found.offset,
                    word: found.len,
                },
            )
        })?;
        Ok((found, src))
    }

    /// The fast path, inlined into each caller: a message that is there (or arrives
    /// within the quick spins) and fits `buf`, copied out and released with no waiting
    /// machinery, error value or clock. Anything else goes to
    /// [`RingReceiver::recv_slow`], which reads the ring again and reports or waits.
    #[inline(always)]
    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let (area, waker) = (self.shared.data(), self.shared.waker(Role::Sender));
        if let Some(found) = self.poll(self.spins(deadline), &area, &waker) {
            let len = usize::try_from(found.len).unwrap_or(usize::MAX);
            let n = self.copy_len(len);
            if let Some(dst) = buf.get_mut(..n) {
                if area.copy_out(found.offset, dst).is_some() {
                    self.consumer
                        .release(self.shared.control(), &waker, found.rec);
                    return Ok(n);
                }
            }
        }
        self.recv_slow(buf, deadline)
    }

    /// How many bytes to copy for a message of `len` bytes: `len`, but when it equals
    /// the last message's length, read back from this receiver's own memory instead of
    /// taken from the header word just loaded.
    ///
    /// The value is the same; what changes is what the copy waits for. Taken from the
    /// header, the copy's addresses (the copy of a 64-byte payload reads its last 32
    /// bytes at `src + len - 32`) depend on a load that is still missing in the cache
    /// when the CPU predicts the loop exit, so the loads of the payload's second cache
    /// line start only after the header's line has arrived. Read from here, they start
    /// at once and the two lines arrive together. On this machine it took 20 to 30 ns
    /// off a busy round trip of 64-byte messages (measured with the bench's `ring-busy`
    /// row and a C program with the same protocol). `black_box` keeps the compiler from
    /// replacing the load with the equal `len`.
    #[inline(always)]
    fn copy_len(&mut self, len: usize) -> usize {
        if len == self.last_len {
            *std::hint::black_box(&self.last_len)
        } else {
            self.last_len = len;
            len
        }
    }

    #[cold]
    #[inline(never)]
    fn recv_slow(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        // The fast path has polled already.
        let (found, _) = self.next(deadline, "recv", 1)?;
        let len = found.len as usize;
        let Some(buf) = buf.get_mut(..len) else {
            return Err(too_large_for_buffer(&self.shared.label, len, buf.len()));
        };
        // `next` checked the span already; a second check costs two compares.
        self.shared
            .data()
            .copy_out(found.offset, buf)
            .ok_or_else(|| {
                self.shared.corrupt(
                    "recv",
                    Fault::Record {
                        pos: found.offset,
                        word: found.len,
                    },
                )
            })?;
        let waker = self.shared.waker(Role::Sender);
        self.consumer
            .release(self.shared.control(), &waker, found.rec);
        Ok(len)
    }

    fn recv_ref_until(&mut self, deadline: Deadline) -> Result<RecvRef<'_>> {
        let (found, src) = self.next(deadline, "recv_ref", self.spins(deadline))?;
        Ok(RecvRef {
            rx: self,
            rec: found.rec,
            ptr: src,
            len: found.len as usize,
        })
    }
}

impl crate::channel::Receiver for RingReceiver {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_until(buf, Deadline::Never)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_until(buf, Deadline::Now)
    }

    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_until(buf, Deadline::after(timeout))
    }

    fn max_message(&self) -> usize {
        RingReceiver::max_message(self)
    }

    fn address(&self) -> Option<crate::addr::Address> {
        match &self.shared.object {
            Object::Named(shm) => format!("ring:{}", shm.name()).parse().ok(),
            Object::Anonymous(_) => None,
        }
    }
}

impl Drop for RingReceiver {
    fn drop(&mut self) {
        self.shared.close(Role::Receiver);
    }
}

impl fmt::Debug for RingReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingReceiver")
            .field("object", &self.shared.label)
            .field("capacity", &self.shared.capacity)
            .field("wait", &self.shared.wait)
            .finish()
    }
}

// SAFETY: as for `RingSender`.
unsafe impl Send for RingReceiver {}

/// A message lent out of the ring by [`RingReceiver::recv_ref`]; its room goes back to
/// the sender when this is dropped.
pub struct RecvRef<'a> {
    rx: &'a mut RingReceiver,
    rec: u64,
    ptr: *const u8,
    len: usize,
}

impl Deref for RecvRef<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY:
        // - `ptr..ptr + len` is inside the data area (checked by `span`), which the
        //   borrowed receiver's mapping keeps alive for `'a`.
        // - The bytes are published and not yet released: by the protocol the sender
        //   does not write them while this view lives. A sender that breaks the protocol
        //   can change them under the view; the reader then sees garbage bytes (all `u8`
        //   values are valid). That is why `recv`, not this, is the form for peers that
        //   are not trusted, and why nothing in ipcx reads a length or index from them.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for RecvRef<'_> {
    fn drop(&mut self) {
        let shared = &self.rx.shared;
        let waker = shared.waker(Role::Sender);
        self.rx.consumer.release(shared.control(), &waker, self.rec);
    }
}

impl fmt::Debug for RecvRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvRef").field("len", &self.len).finish()
    }
}
