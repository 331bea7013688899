//! The multi-producer ring: many senders, one receiver, in one shared-memory object, with
//! the number of producers a property of the ring.
//!
//! A ring made with [`RingOptions::producers`]`(n)` has `n` producer *slots*. Each slot
//! owns a *lane*: a single-producer ring of [`capacity`](RingOptions::capacity) bytes
//! run by exactly the protocol of [`crate::ring`] (records committed by their own header
//! word, pads at the end, the receiver's head as the only shared counter). A sender
//! claims a free slot when it is made ([`MpscRing::sender`]) and writes only its lane;
//! the receiver takes messages from the lanes in turn. More senders than slots at once is
//! [`ErrorKind::LimitReached`]; a slot whose sender closed or died is taken over by the
//! next sender.
//!
//! ```
//! use ipcx::ring::RingOptions;
//!
//! let ring = RingOptions::new().capacity(64 << 10).producers(2).anonymous()?;
//! let mut rx = ring.receiver()?;
//! let (mut a, mut b) = (ring.sender()?, ring.sender()?);
//! assert_eq!(ring.sender().unwrap_err().kind(), ipcx::ErrorKind::LimitReached);
//! a.send(b"from a")?;
//! b.send(b"from b")?;
//! let mut buf = [0u8; 16];
//! let mut got = vec![];
//! for _ in 0..2 {
//!     let n = rx.recv(&mut buf)?;
//!     got.push(buf[..n].to_vec());
//! }
//! got.sort();
//! assert_eq!(got, [b"from a".to_vec(), b"from b".to_vec()]);
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # Why lanes
//!
//! Producers never contend: there is no shared tail to compare-and-swap, no cache line
//! two senders write, and a send costs what a single-producer send costs. Above all, a
//! sender killed between reserving room and committing a message cannot block anyone:
//! its reservation lies in its own lane, invisible until its header word is stored, so
//! there is nothing for the receiver to detect or skip, and the other senders never wait
//! on it. (A shared data area would need the receiver to attribute an unpublished
//! reservation to its owner and learn its length from memory the dead owner may have
//! left half-written.) The price: order holds per sender, not across senders; memory is
//! `n × capacity`; and a waiting receiver looks at `n` lines instead of one.
//!
//! # Layout
//!
//! ```text
//! offset 0    Header (128 bytes), as a single-producer ring's: magic "IXRG" (published
//!             last), version 1, data offset, flags = 1 (multi-producer), capacity of
//!             each lane, sender state (unused, 0), receiver state, the two wait words
//!             (unused, 0: every multi-producer publication fences)
//!        128  shape: number of producer slots n (1 to MAX_PRODUCERS)
//!        256  doorbell: the receiver's futex word
//!        384  n slots of 16 bytes: each its producer's state (0 never used, 1 open,
//!             2 closed), rounded up to 128 bytes
//!        ...  n lane controls of 384 bytes: head, receiver and sender sleepers
//!        data n data areas of `capacity` bytes   (data offset = 384 + ⌈16n⌉₁₂₈ + 384n)
//! ```
//!
//! The receiver holds an open-file-description lock on byte 0 of the object, as in a
//! single-producer ring; the producer of slot `i` holds one on byte `2 + i`. Each side
//! takes its lock through an open file description of its own (the object is reopened
//! through `/proc/self/fd`), so senders that are threads of one process are told apart.
//!
//! # The algorithm, step by step
//!
//! Claiming a slot ([`MpscRing::sender`]):
//!
//! 1. For each slot in turn, try to take its lock byte without waiting. Held means a live
//!    sender owns the slot: go on. No slot free: [`ErrorKind::LimitReached`].
//! 2. With the lock held, load the slot's state (`Acquire`, pairing with the `Release`
//!    store of "closed" by a sender that left cleanly, step 8, so everything it published
//!    is visible) and check it is 0, 1 or 2 ([`ErrorKind::Corrupt`] otherwise). A state
//!    of 1 ("open") with the lock free is a sender that died: the kernel released its
//!    lock, and with it ordered its writes before our lock call.
//! 3. Store "open" (`Relaxed`: it only tells the receiver a sender is there, which the
//!    lock already says; the receiver never reads data through it).
//! 4. Find where the lane's published records end: load the lane's head (`Acquire`, as a
//!    single-producer sender does) and walk the records from there, loading each header
//!    once (`Acquire`) and checking it as the receiver does, up to the first empty
//!    word. The protocol keeps the word after the last published record empty (a sender
//!    marks it before publishing), so the walk stops exactly there, after at most
//!    `capacity / 8` steps; a bad header or a walk longer than the lane is `Corrupt`.
//!    A record the earlier sender reserved and half wrote but never published lies at or
//!    after that word and is simply written over: it was never visible and never will be.
//!
//! Sending is the single-producer algorithm on the lane ([`crate::ring`], steps 1 to 5),
//! with one difference in the wake-up:
//!
//! 5. After the header store, the lane's `SeqCst` fence and the load of the lane's
//!    "receiver sleeping" flag are as in a single-producer ring. If it is set, the sender
//!    rings the doorbell: `fetch_add` on the doorbell word (`Release`, so a receiver that
//!    loads the new value with `Acquire` sees the record) and `FUTEX_WAKE` on it.
//!
//! Receiving:
//!
//! 6. Look at the lanes in turn, starting after the lane that gave the last message (so
//!    that no busy sender starves the others), and take the first published message with
//!    the single-producer receiver's steps 6 to 8 on that lane: its header loaded once
//!    and checked, its room released with a `Release` store of the lane's head, which
//!    wakes that lane's sender if it sleeps for room.
//! 7. To sleep, load the doorbell (`Acquire`), set the "receiver sleeping" flag of every
//!    lane (`Relaxed`), issue one `SeqCst` fence, look at every lane once more, and only
//!    if all are still empty `FUTEX_WAIT` on the doorbell with the value loaded. The fence
//!    pairs with the fence each sender issues between its header store and its load of
//!    its lane's flag (Dekker's pattern, as in a single-producer ring): either the second
//!    look sees the message, or the sender sees the flag and rings the doorbell after our
//!    load of it, so the wait returns at once or is woken. The `loom` model in
//!    `tests/ring_loom.rs` checks exactly this code with two senders, wrap-around and
//!    every interleaving of a small ring.
//!
//! Leaving:
//!
//! 8. A sender that is dropped stores "closed" in its slot (`Release`, see step 2), rings
//!    the doorbell so that a sleeping receiver looks at once, and closes its descriptor,
//!    which releases its lock. Its messages stay in its lane until received.
//! 9. A receiver that is dropped stores "closed" in the header's receiver state, as in a
//!    single-producer ring, and wakes every lane's sender.
//!
//! # Peers that die or lie
//!
//! A sender killed at any point, reserving, writing, or between the two, leaves only
//! whole messages: the receiver takes every message the sender published, in order, and
//! never a part of one; the other senders go on without noticing, and the slot is free
//! for the next sender at once.
//!
//! The receiver gets [`ErrorKind::PeerGone`] when no message is waiting in any lane, at
//! least one slot has been used, and no slot has a live sender: each slot is unused,
//! closed, or "open" with its lock free (its process died), and none is locked by a
//! sender being set up. It learns this within about 50 to 100 ms of the last sender going
//! (at once for a clean close). Unlike a single-producer ring's, this is not final: it
//! means "no sender now", and a new sender may claim a slot later, after which the next
//! receive returns its messages. So a receiver whose senders start one after another may
//! see it between the last message of one and the arrival of the next: wait until the
//! senders it expects have claimed their slots (as the example `ring_mpsc` does), or treat
//! `PeerGone` as "none at the moment" and receive again later.
//!
//! A sender gets `PeerGone` when the receiver closed or died, as in a single-producer
//! ring. Every header field, slot state, head and record header is read once into a
//! local and checked before use; a bad value is [`ErrorKind::Corrupt`], never an
//! out-of-bounds access, a panic or a hang. What the single-producer ring says of payload
//! bytes changed under a view, and of truncating a named object, holds here too.
#![allow(unsafe_code)]

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rustix::thread::futex;

use super::fanin::{self, Doorbell};
use super::protocol::{self, CachePadded, Consumer, Control, Fault, Found, Producer, Sleeper};
use super::sync::{AtomicU32, Ordering};
use super::{
    Area, BUSY_CHECK, FUTEX, Header, MAGIC, MAX_CAPACITY, MIN_CAPACITY, Object, RECEIVER_LOCK,
    RingOptions, SLICE, SPINS, STATE_CLOSED, STATE_NONE, STATE_OPEN, VERSION, Wait, YIELDS,
    max_message,
};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::shm::Region;
use crate::shm::memfd::{Memfd, Seals};
use crate::shm::posix::ShmOptions;
use crate::sys::lock::{byte_locked_elsewhere, try_lock_byte};
use crate::wait::Deadline;

/// The most producer slots a ring can have.
pub const MAX_PRODUCERS: usize = 64;
/// The header's flag that marks a multi-producer ring.
pub(crate) const FLAG_MPSC: u32 = 1;
/// Producer slot `i` holds the lock on byte `FIRST_PRODUCER_LOCK + i`.
const FIRST_PRODUCER_LOCK: u64 = 2;

/// What follows the common header: the ring's shape, then the receiver's doorbell.
#[repr(C)]
struct Top {
    header: CachePadded<Header>,
    producers: CachePadded<AtomicU32>,
    doorbell: CachePadded<Sleeper>,
}

/// A producer slot: its state (none, open, closed), read by the receiver and claimants.
#[repr(C)]
struct Slot {
    state: AtomicU32,
    _reserved: [AtomicU32; 3],
}

const TOP: usize = size_of::<Top>();
const SLOT: usize = size_of::<Slot>();
const LANE: usize = size_of::<Control>();

const _: () = {
    assert!(TOP == 384 && align_of::<Top>() == 128);
    assert!(std::mem::offset_of!(Top, producers) == 128);
    assert!(std::mem::offset_of!(Top, doorbell) == 256);
    assert!(SLOT == 16 && align_of::<Slot>() == 4);
    assert!(LANE == 384 && align_of::<Control>() == 128);
};

/// Where everything of a ring with `producers` slots of `capacity` bytes lies.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    lanes: usize,
    data: usize,
    total: usize,
}

fn geometry(producers: usize, capacity: usize) -> Option<Geometry> {
    let lanes = TOP + producers.checked_mul(SLOT)?.next_multiple_of(128);
    let data = lanes.checked_add(producers.checked_mul(LANE)?)?;
    let total = data.checked_add(producers.checked_mul(capacity)?)?;
    Some(Geometry { lanes, data, total })
}

/// Options for a multi-producer ring: [`RingOptions`] with a number of producer slots,
/// made by [`RingOptions::producers`].
#[derive(Clone, Debug)]
pub struct MpscOptions {
    ring: RingOptions,
    producers: usize,
}

impl RingOptions {
    /// Makes the ring a multi-producer one, with `n` producer slots (1 to
    /// [`MAX_PRODUCERS`]): at most `n` senders at once, each with a lane of
    /// [`capacity`](RingOptions::capacity) bytes, so the object holds `n × capacity`
    /// bytes of data. Only the creator uses `n`; an opener takes the ring's.
    ///
    /// ```
    /// use ipcx::ring::{RingOptions, Wait};
    /// let opts = RingOptions::new().capacity(256 << 10).wait(Wait::Blocking).producers(4);
    /// # let _ = opts;
    /// ```
    pub fn producers(self, n: usize) -> MpscOptions {
        MpscOptions {
            ring: self,
            producers: n,
        }
    }
}

impl MpscOptions {
    fn checked(&self, label: &str) -> Result<(usize, usize, Geometry)> {
        let cap = self.ring.checked_capacity(label)?;
        let n = self.producers;
        let geo = (1..=MAX_PRODUCERS)
            .contains(&n)
            .then(|| geometry(n, cap))
            .flatten()
            .ok_or_else(|| {
                Error::new("create ring", ErrorKind::InvalidInput)
                    .with_object(label)
                    .with_hint(format!(
                        "a ring has 1 to {MAX_PRODUCERS} producer slots, not {n}"
                    ))
            })?;
        Ok((cap, n, geo))
    }

    /// Creates a named multi-producer ring (a POSIX shared memory object, created
    /// exclusively). The object is unlinked when the returned handle and every side made
    /// from it are dropped, unless [`MpscRing::keep`] was called.
    ///
    /// # Errors
    /// As [`RingOptions::create_named`]; [`ErrorKind::InvalidInput`] for a producer
    /// count outside 1 to [`MAX_PRODUCERS`].
    #[doc(alias = "shm_open")]
    pub fn create_named(&self, name: &str) -> Result<MpscRing> {
        let ring = self.create_named_uninitialised(name)?;
        ring.shared.initialise();
        Ok(ring)
    }

    /// Creates a named multi-producer ring and becomes its receiver **before** publishing
    /// its header, so that a producer that finds the ring initialised also finds its
    /// receiver claimed: a creator killed half-way leaves producers "not initialised" or
    /// a receiver seen gone (`PeerGone`), never a ring whose receiver may still come.
    /// What `ring:/NAME?producers=N` receivers use.
    ///
    /// # Errors
    /// As [`create_named`](MpscOptions::create_named).
    #[doc(alias = "shm_open")]
    pub fn create_named_receiver(&self, name: &str) -> Result<MpscReceiver> {
        let ring = self.create_named_uninitialised(name)?;
        // The lock byte and the state word need no header: the object is zeroed.
        let rx = ring.receiver()?;
        ring.shared.initialise();
        Ok(rx)
    }

    fn create_named_uninitialised(&self, name: &str) -> Result<MpscRing> {
        let (cap, n, geo) = self.checked(&format!("ring:{name}"))?;
        let shm = ShmOptions::new()
            .mode(self.ring.mode)
            .size(geo.total)
            .create(name)?;
        let label = format!("ring:{}", shm.name());
        let region = shm.map()?;
        let shared = Shared::new(region, Object::Named(shm), label, cap, n, self.ring.wait)?;
        Ok(MpscRing {
            shared: Arc::new(shared),
        })
    }

    /// Opens a named multi-producer ring, waiting up to
    /// [`open_wait`](RingOptions::open_wait) for its creator to finish, and checks its
    /// header.
    ///
    /// # Errors
    /// As [`RingOptions::open_named`]; [`ErrorKind::InvalidInput`] for a
    /// single-producer ring (open that with [`RingOptions::open_named`]).
    #[doc(alias = "shm_open")]
    pub fn open_named(&self, name: &str) -> Result<MpscRing> {
        let shm = ShmOptions::new().open_timeout(name, self.ring.open_wait)?;
        let label = format!("ring:{}", shm.name());
        let region = shm.map()?;
        Shared::attach(
            region,
            Object::Named(shm),
            label,
            self.ring.wait,
            self.ring.open_wait,
        )
    }

    /// Creates an anonymous multi-producer ring: a memfd, allocated now and sealed
    /// against shrinking and growing. Hand its descriptor ([`MpscRing::as_fd`]) to other
    /// processes, which open it with [`from_fd`](MpscOptions::from_fd).
    ///
    /// # Errors
    /// As [`RingOptions::anonymous`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(&self) -> Result<MpscRing> {
        let label = "ring:anonymous".to_string();
        let (cap, n, geo) = self.checked(&label)?;
        let memfd = Memfd::create("ipcx-ring", geo.total)?;
        let region = memfd.map()?;
        memfd.seal(Seals::SHRINK | Seals::GROW | Seals::SEAL)?;
        let shared = Shared::new(
            region,
            Object::Anonymous(memfd),
            label,
            cap,
            n,
            self.ring.wait,
        )?;
        shared.initialise();
        Ok(MpscRing {
            shared: Arc::new(shared),
        })
    }

    /// Opens an anonymous multi-producer ring from a descriptor received from (or
    /// inherited from) another process: checked like any peer's memfd (sealed against
    /// shrinking, large enough), then its header validated.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] if it is not a sealed memfd or not a valid ring.
    pub fn from_fd(&self, fd: OwnedFd) -> Result<MpscRing> {
        let label = "ring:anonymous".to_string();
        let memfd = Memfd::from_peer(fd, Seals::SHRINK | Seals::GROW, TOP)
            .map_err(|e| e.with_object(&label))?;
        let region = memfd.map()?;
        Shared::attach(
            region,
            Object::Anonymous(memfd),
            label,
            self.ring.wait,
            std::time::Duration::ZERO,
        )
    }
}

/// The mapping and what was validated about it, shared by every side made in this
/// process.
struct Shared {
    // Unmapped before the object (whose owner unlinks it) is dropped.
    region: Region,
    object: Object,
    label: String,
    /// Each lane's data area, validated (a power of two from `MIN_CAPACITY`).
    capacity: u64,
    /// The number of slots and lanes, validated (1 to `MAX_PRODUCERS`).
    producers: usize,
    /// Validated to lie inside the mapping.
    geo: Geometry,
    wait: Wait,
    keep: AtomicBool,
}

impl Shared {
    fn new(
        region: Region,
        object: Object,
        label: String,
        capacity: usize,
        producers: usize,
        wait: Wait,
    ) -> Result<Shared> {
        if !capacity.is_power_of_two()
            || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
            || !(1..=MAX_PRODUCERS).contains(&producers)
            || !region.is_writable()
        {
            return Err(corrupt_header(
                &label,
                format!(
                    "the header announces {producers} producer slots with lanes of {capacity} \
                     bytes: a ring has 1 to {MAX_PRODUCERS} slots and lanes of a power of two \
                     from {MIN_CAPACITY} to {MAX_CAPACITY} bytes"
                ),
            ));
        }
        let geo = geometry(producers, capacity).filter(|g| g.total <= region.len());
        let Some(geo) = geo else {
            return Err(corrupt_header(
                &label,
                format!(
                    "the header announces {producers} lanes of {capacity} bytes, which do not \
                     fit the {}-byte object",
                    region.len()
                ),
            ));
        };
        Ok(Shared {
            region,
            object,
            label,
            capacity: capacity as u64,
            producers,
            geo,
            wait,
            keep: AtomicBool::new(false),
        })
    }

    /// Writes a new ring's header, publishing the magic last.
    fn initialise(&self) {
        let top = self.top();
        let h = &top.header.0;
        h.version.store(VERSION, Ordering::Relaxed);
        h.data_offset.store(self.geo.data as u32, Ordering::Relaxed);
        h.flags.store(FLAG_MPSC, Ordering::Relaxed);
        h.capacity.store(self.capacity, Ordering::Relaxed);
        top.producers
            .0
            .store(self.producers as u32, Ordering::Relaxed);
        // Release: pairs with the opener's Acquire load of the magic in `attach`.
        h.magic.store(MAGIC, Ordering::Release);
    }

    /// Waits for the header of an existing object, reads each field once and checks it.
    fn attach(
        region: Region,
        object: Object,
        label: String,
        wait: Wait,
        open_wait: Duration,
    ) -> Result<MpscRing> {
        if region.len() < TOP || !region.is_writable() {
            return Err(corrupt_header(
                &label,
                format!(
                    "the object has {} bytes, too small for a ring ({TOP} bytes of header at \
                     least)",
                    region.len()
                ),
            ));
        }
        // SAFETY: as in `top`; the length is checked just above.
        let top = unsafe { &*region.as_ptr().cast::<Top>() };
        let h = &top.header.0;
        let deadline = Deadline::after(open_wait);
        let mut backoff = crate::wait::Backoff::new();
        loop {
            // Acquire: pairs with the creator's Release store in `initialise`.
            match h.magic.load(Ordering::Acquire) {
                MAGIC => break,
                0 => backoff.sleep(deadline, "open ring", &label).map_err(|e| {
                    e.with_kind(ErrorKind::TimedOut).with_hint(
                        "not initialised: the object exists but its creator has not finished \
                         setting it up (it may have died half-way); remove it and create it again",
                    )
                })?,
                other => {
                    return Err(corrupt_header(
                        &label,
                        format!(
                            "the object starts with {other:#010x}, not a ring's magic \
                             {MAGIC:#010x}: it is some other shared memory"
                        ),
                    ));
                }
            }
        }
        let version = h.version.load(Ordering::Relaxed);
        let data_offset = h.data_offset.load(Ordering::Relaxed);
        let flags = h.flags.load(Ordering::Relaxed);
        let capacity = h.capacity.load(Ordering::Relaxed);
        let producers = top.producers.0.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(corrupt_header(
                &label,
                format!("ring layout version {version}; this side speaks version {VERSION}"),
            ));
        }
        if flags == 0 {
            return Err(Error::new("open ring", ErrorKind::InvalidInput)
                .with_object(&label)
                .with_hint(
                    "this is a single-producer ring: open it with RingOptions::open_named or \
                     from_fd, without producers",
                ));
        }
        if flags != FLAG_MPSC {
            return Err(corrupt_header(
                &label,
                format!("the header announces flags {flags:#x}; version {VERSION} knows 0 and 1"),
            ));
        }
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        let producers = producers as usize;
        let shared = Shared::new(region, object, label, capacity, producers, wait)?;
        if data_offset as usize != shared.geo.data {
            return Err(corrupt_header(
                &shared.label,
                format!(
                    "the header puts the data at offset {data_offset}; {producers} lanes put it \
                     at {}",
                    shared.geo.data
                ),
            ));
        }
        Ok(MpscRing {
            shared: Arc::new(shared),
        })
    }

    fn top(&self) -> &Top {
        // SAFETY:
        // - The mapping is at least `TOP` bytes (checked in `new`/`attach` before any
        //   `Shared` or reference exists) and page-aligned, so aligned for `Top` (128).
        // - Every field of `Top` is an atomic (or padding): every bit pattern is valid,
        //   and other processes' writes are atomic accesses or their own bugs, which
        //   cannot make a value invalid.
        // - The mapping is writable (checked), so atomic stores do not fault.
        // - The reference borrows `self`, which keeps the mapping alive.
        unsafe { &*self.region.as_ptr().cast::<Top>() }
    }

    fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.producers, "slot {i} of {}", self.producers);
        // SAFETY:
        // - `TOP + (i + 1) * SLOT <= geo.lanes <= geo.total <= len` (checked in `new`,
        //   `i < producers` just above), and the offset is a multiple of 4.
        // - `Slot` is atomics only; the mapping is writable and outlives the borrow.
        unsafe { &*self.region.as_ptr().add(TOP + i * SLOT).cast::<Slot>() }
    }

    fn lane(&self, i: usize) -> &Control {
        assert!(i < self.producers, "lane {i} of {}", self.producers);
        // SAFETY:
        // - `geo.lanes + (i + 1) * LANE <= geo.data <= geo.total <= len` (checked in
        //   `new`, `i < producers` above); `geo.lanes` and `LANE` are multiples of 128
        //   and the mapping is page-aligned, so the `Control` is aligned.
        // - `Control` is atomics and padding only; the mapping is writable and outlives
        //   the borrow.
        unsafe {
            &*self
                .region
                .as_ptr()
                .add(self.geo.lanes + i * LANE)
                .cast::<Control>()
        }
    }

    fn lanes(&self) -> impl Iterator<Item = &Control> {
        (0..self.producers).map(|i| self.lane(i))
    }

    fn area(&self, i: usize) -> Area {
        assert!(i < self.producers, "lane {i} of {}", self.producers);
        Area {
            // SAFETY: `geo.data + (i + 1) * capacity <= geo.total <= len` (checked in
            // `new`), so the offset stays inside the mapping; it is a multiple of 64
            // (`geo.data` of 128, the capacity a power of two from 64), so every word of
            // the area is 8-aligned, as `Area::word` needs.
            base: unsafe {
                self.region
                    .as_ptr()
                    .add(self.geo.data + i * self.capacity as usize)
            },
            capacity: self.capacity,
        }
    }

    fn doorbell(&self) -> &Sleeper {
        &self.top().doorbell.0
    }

    fn receiver_state(&self) -> &AtomicU32 {
        &self.top().header.0.receiver
    }

    /// A new open file description of the object, for one side's lock: OFD locks taken
    /// through different descriptions exclude each other even within one process.
    fn reopen(&self) -> Result<OwnedFd> {
        let path = format!("/proc/self/fd/{}", self.object.as_fd().as_raw_fd());
        rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .op_on("open /proc/self/fd", &self.label)
        .map_err(|e| {
            e.with_hint("each side of a ring reopens it through /proc, which must be mounted")
        })
    }

    fn lock_error(&self, op: &'static str, e: rustix::io::Errno) -> Error {
        Error::from_errno(op, e.raw_os_error()).with_object(&self.label)
    }

    fn fault(&self, op: &'static str, lane: usize, fault: Fault) -> Error {
        let hint = match fault {
            Fault::Head { head, tail } => format!(
                "lane {lane}: the receiver's counter says {head} bytes were released, but only \
                 {tail} were published (or it moved back): the counter was overwritten"
            ),
            Fault::Record { pos, word } => format!(
                "lane {lane}: the record header at data offset {pos} reads {word:#018x}, which is \
                 not a message or pad that fits before the end of the {}-byte data area",
                self.capacity
            ),
        };
        Error::new(op, ErrorKind::Corrupt)
            .with_object(&self.label)
            .with_hint(format!("{hint}; the ring cannot be trusted any more"))
    }

    fn bad_state(&self, what: String, value: u32) -> Error {
        Error::new("check peer", ErrorKind::Corrupt)
            .with_object(&self.label)
            .with_hint(format!(
                "the {what} state word holds {value}, not 0, 1 or 2: the ring's header was \
                 overwritten"
            ))
    }

    /// Whether the receiver has gone: closed, or open with its lock released.
    fn receiver_gone(&self, fd: BorrowedFd<'_>) -> Result<Option<&'static str>> {
        match self.receiver_state().load(Ordering::Acquire) {
            STATE_NONE => Ok(None),
            STATE_CLOSED => Ok(Some("the receiver closed the ring")),
            STATE_OPEN => {
                let held = byte_locked_elsewhere(fd, RECEIVER_LOCK)
                    .map_err(|e| self.lock_error("F_OFD_GETLK", e))?;
                Ok((!held).then_some("the receiver's process died without closing the ring"))
            }
            other => Err(self.bad_state("receiver".into(), other)),
        }
    }

    /// Whether every producer has gone (see the module docs): at least one slot was used,
    /// and none has a live sender or one being set up.
    fn producers_gone(&self, fd: BorrowedFd<'_>) -> Result<Option<&'static str>> {
        let mut used = false;
        for i in 0..self.producers {
            // Acquire: pairs with the Release store of "closed" in `MpscSender::drop`, so
            // a final look at the lanes sees everything that sender published.
            let state = self.slot(i).state.load(Ordering::Acquire);
            if !matches!(state, STATE_NONE | STATE_OPEN | STATE_CLOSED) {
                return Err(self.bad_state(format!("producer slot {i}"), state));
            }
            let held = byte_locked_elsewhere(fd, FIRST_PRODUCER_LOCK + i as u64)
                .map_err(|e| self.lock_error("F_OFD_GETLK", e))?;
            if held {
                return Ok(None);
            }
            used |= state != STATE_NONE;
        }
        Ok(used.then_some(
            "every producer has closed the ring or died, and each message it published has \
             been received; a new sender may still claim a slot",
        ))
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
                format!("this sender's lane stayed full for {t:?}: the receiver is not keeping up")
            }
            (Deadline::At(_, t), false) => format!("no message arrived within {t:?}"),
            (_, true) => "this sender's lane is full: the receiver has not taken its earlier \
                          messages; wait with send or send_timeout"
                .to_string(),
            (_, false) => {
                "no message is waiting in any lane; wait with recv or recv_timeout".to_string()
            }
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

    /// Runs `attempt` until it yields a value, waiting in between as this side's
    /// [`Wait`] says (sleeping as `sleep` says), until `deadline`, and checking every
    /// 50 ms (and after every wake-up) whether the peer is gone (`gone`). When it is,
    /// `attempt` runs once more (the peer may have published just before it went) before
    /// `PeerGone` is returned. The same loop as a single-producer ring's.
    fn wait_for<T>(
        &self,
        watch: &mut Watch,
        sleep: Sleep<'_>,
        deadline: Deadline,
        op: &'static str,
        mut gone: impl FnMut() -> Result<Option<&'static str>>,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        let mut rounds: u32 = 0;
        let mut last_check = match deadline {
            Deadline::Now => watch.last_check,
            _ => Instant::now(),
        };
        let mut check_now = matches!(deadline, Deadline::Now);
        let mut force = matches!(deadline, Deadline::Now) && watch.first_try;
        loop {
            if check_now {
                let now = Instant::now();
                if force || now.duration_since(last_check) >= SLICE {
                    watch.first_try = false;
                    force = false;
                    last_check = now;
                    watch.last_check = now;
                    if let Some(why) = gone()? {
                        if let Some(v) = attempt()? {
                            return Ok(v);
                        }
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
                let yielding = every || (self.wait == Wait::Adaptive && rounds > SPINS);
                if yielding {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                check_now = yielding;
            } else {
                let (seq, word) = match sleep {
                    Sleep::Lane(s) => (s.announce(), &s.seq),
                    Sleep::Doorbell => (
                        fanin::announce(self.doorbell(), self.lanes()),
                        &self.doorbell().seq,
                    ),
                };
                let retire = || match sleep {
                    Sleep::Lane(s) => s.retire(),
                    Sleep::Doorbell => fanin::retire(self.lanes()),
                };
                if let Some(v) = attempt().inspect_err(|_| retire())? {
                    retire();
                    return Ok(v);
                }
                let left = deadline.remaining(op, &self.label).map_err(|e| {
                    retire();
                    self.deadline_error(e, op, deadline)
                })?;
                let slice = left.map_or(SLICE, |l| l.min(SLICE));
                let ts = rustix::time::Timespec {
                    tv_sec: slice.as_secs() as i64,
                    tv_nsec: i64::from(slice.subsec_nanos()),
                };
                // A peer leaving bumps the word too, so a departure while we were about
                // to sleep returns at once. EAGAIN, ETIMEDOUT and EINTR: look again.
                let woken = futex::wait(word, futex::Flags::empty(), seq, Some(&ts)).is_ok();
                retire();
                // Woken and still nothing to take: maybe a peer left; look now.
                force = woken;
                check_now = true;
            }
            if let Some(v) = attempt()? {
                return Ok(v);
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.keep.load(Ordering::Relaxed)
            && let Object::Named(shm) = &mut self.object
        {
            shm.keep();
        }
    }
}

fn corrupt_header(label: &str, hint: String) -> Error {
    Error::new("open ring", ErrorKind::Corrupt)
        .with_object(label)
        .with_hint(hint)
}

/// What a waiting side sleeps on.
#[derive(Clone, Copy)]
enum Sleep<'a> {
    /// A sender: its lane's sender sleeper, which the receiver wakes on release.
    Lane(&'a Sleeper),
    /// The receiver: the doorbell, announced on every lane.
    Doorbell,
}

/// What a side remembers about its peers between calls.
struct Watch {
    /// Why the receiver is gone, once a sender knows (a receiver never comes back).
    gone: Option<&'static str>,
    last_check: Instant,
    first_try: bool,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            gone: None,
            last_check: Instant::now(),
            first_try: true,
        }
    }
}

/// A multi-producer ring, open but not yet a side: make any number of
/// [`sender`](MpscRing::sender)s (up to its producer slots at once) and one
/// [`receiver`](MpscRing::receiver) from it, in this process or others. Its descriptor
/// ([`AsFd`]) is what to hand to another process for an anonymous ring.
pub struct MpscRing {
    shared: Arc<Shared>,
}

impl MpscRing {
    /// Claims a free producer slot and becomes its sender, resuming its lane after the
    /// last message an earlier sender of the slot published.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] if every slot has a live sender;
    /// [`ErrorKind::Corrupt`] if the slot's state or lane was overwritten.
    pub fn sender(&self) -> Result<MpscSender> {
        let s = &self.shared;
        let fd = s.reopen()?;
        for i in 0..s.producers {
            let locked = try_lock_byte(fd.as_fd(), FIRST_PRODUCER_LOCK + i as u64)
                .map_err(|e| s.lock_error("F_OFD_SETLK", e))?;
            if !locked {
                continue;
            }
            let slot = s.slot(i);
            // Acquire: pairs with the Release store of "closed" in `MpscSender::drop`.
            let state = slot.state.load(Ordering::Acquire);
            if !matches!(state, STATE_NONE | STATE_OPEN | STATE_CLOSED) {
                return Err(s.bad_state(format!("producer slot {i}"), state));
            }
            // Relaxed: the lock says the same to the receiver; no data goes through it.
            slot.state.store(STATE_OPEN, Ordering::Relaxed);
            let producer = fanin::resume(s.lane(i), &s.area(i), s.capacity)
                .map_err(|f| s.fault("open ring", i, f))?;
            return Ok(MpscSender {
                shared: self.shared.clone(),
                _lock: fd,
                slot: i,
                producer,
                watch: Watch::new(),
            });
        }
        Err(Error::new("open ring", ErrorKind::LimitReached)
            .with_object(&s.label)
            .with_hint(format!(
                "all {} producer slots have live senders; drop one, or create the ring with \
                 more (RingOptions::producers, at most {MAX_PRODUCERS})",
                s.producers
            )))
    }

    /// Becomes the ring's one receiver.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the ring has (or had) a receiver.
    pub fn receiver(&self) -> Result<MpscReceiver> {
        let s = &self.shared;
        let fd = s.reopen()?;
        let locked =
            try_lock_byte(fd.as_fd(), RECEIVER_LOCK).map_err(|e| s.lock_error("F_OFD_SETLK", e))?;
        // AcqRel: the claim is the one write to this word besides the close.
        let claimed = locked
            && s.receiver_state()
                .compare_exchange(STATE_NONE, STATE_OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if !claimed {
            return Err(Error::new("open ring", ErrorKind::AlreadyExists)
                .with_object(&s.label)
                .with_hint(
                    "this ring has (or had) its receiver: a ring carries one receiver for its \
                     whole life; create a new ring for another",
                ));
        }
        Ok(MpscReceiver {
            consumers: (0..s.producers)
                .map(|_| Consumer::new(s.capacity))
                .collect(),
            next: 0,
            shared: self.shared.clone(),
            lock: fd,
            watch: Watch::new(),
        })
    }

    /// The number of producer slots.
    pub fn producers(&self) -> usize {
        self.shared.producers
    }

    /// The size of each lane's data area in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// The largest message the ring carries: the capacity minus 16 bytes.
    pub fn max_message(&self) -> usize {
        max_message(self.shared.capacity)
    }

    /// Leaves a named ring's object in place when this handle and every side made from
    /// it are dropped. No effect on an anonymous ring.
    pub fn keep(&mut self) {
        self.shared.keep.store(true, Ordering::Relaxed);
    }
}

impl AsFd for MpscRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.object.as_fd()
    }
}

impl fmt::Debug for MpscRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscRing")
            .field("object", &self.shared.label)
            .field("producers", &self.shared.producers)
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

/// One sender of a multi-producer ring, owning one producer slot and its lane.
pub struct MpscSender {
    shared: Arc<Shared>,
    /// This sender's open file description, holding its slot's lock byte.
    _lock: OwnedFd,
    slot: usize,
    producer: Producer,
    watch: Watch,
}

impl MpscSender {
    /// Sends one message, waiting as long as this sender's lane is full.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] above [`max_message`](MpscSender::max_message);
    /// [`ErrorKind::PeerGone`] once the receiver is known to be gone;
    /// [`ErrorKind::Corrupt`] if the receiver's counter was overwritten.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Never)
    }

    /// Sends one message only if the lane has room now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when it has not; nothing was sent.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Now)
    }

    /// Sends one message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when the lane stayed full; nothing was sent.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(msg, Deadline::after(timeout))
    }

    /// Reserves room for a message of `len` bytes and lends it out for writing in place:
    /// [`MpscLoan::commit`] publishes it; dropping the loan uncommitted publishes nothing.
    ///
    /// # Errors
    /// As [`send`](MpscSender::send).
    pub fn loan(&mut self, len: usize) -> Result<MpscLoan<'_>> {
        self.loan_until(len, Deadline::Never)
    }

    /// As [`loan`](MpscSender::loan), only if the lane has room now.
    pub fn try_loan(&mut self, len: usize) -> Result<MpscLoan<'_>> {
        self.loan_until(len, Deadline::Now)
    }

    /// As [`loan`](MpscSender::loan), waiting at most `timeout` for room.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<MpscLoan<'_>> {
        self.loan_until(len, Deadline::after(timeout))
    }

    /// The largest message the ring carries.
    pub fn max_message(&self) -> usize {
        max_message(self.shared.capacity)
    }

    /// The producer slot this sender owns (0 to the ring's producers minus 1).
    pub fn slot(&self) -> usize {
        self.slot
    }

    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let pos = self.reserve(msg.len(), deadline, "send")?;
        let s = &self.shared;
        let area = s.area(self.slot);
        area.copy_in(pos + protocol::RECORD_HEADER, msg)
            .ok_or_else(|| s.fault("send", self.slot, Fault::Head { head: 0, tail: pos }))?;
        let bell = Doorbell {
            bell: s.doorbell(),
            futex: &FUTEX,
        };
        self.producer
            .commit(s.lane(self.slot), &area, &bell, pos, msg.len() as u64);
        Ok(())
    }

    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<MpscLoan<'_>> {
        let pos = self.reserve(len, deadline, "loan")?;
        let s = &self.shared;
        let ptr = s
            .area(self.slot)
            .span(pos + protocol::RECORD_HEADER, len)
            .ok_or_else(|| s.fault("loan", self.slot, Fault::Head { head: 0, tail: pos }))?;
        Ok(MpscLoan {
            tx: self,
            pos,
            ptr,
            len,
        })
    }

    /// Waits for room for a message of `len` bytes; returns its record's position.
    fn reserve(&mut self, len: usize, deadline: Deadline, op: &'static str) -> Result<u64> {
        let max = self.max_message();
        let s = &self.shared;
        if len > max {
            let carries = format!("each lane's capacity of {} bytes", s.capacity);
            return Err(super::too_large_for_ring(op, &s.label, len, max, &carries));
        }
        if s.receiver_state().load(Ordering::Relaxed) == STATE_CLOSED {
            self.watch.gone = Some("the receiver closed the ring");
        }
        if let Some(why) = self.watch.gone {
            return Err(s.peer_gone_error(op, why));
        }
        let rec = protocol::record_len(len as u64).unwrap_or(u64::MAX);
        let (slot, lock) = (self.slot, self._lock.as_fd());
        let lane = s.lane(slot);
        let area = s.area(slot);
        let bell = Doorbell {
            bell: s.doorbell(),
            futex: &FUTEX,
        };
        let producer = &mut self.producer;
        let mut gone = None;
        let result = s.wait_for(
            &mut self.watch,
            Sleep::Lane(&lane.tx.0),
            deadline,
            op,
            || {
                gone = s.receiver_gone(lock)?;
                Ok(gone)
            },
            || {
                producer
                    .reserve(lane, &area, &bell, rec)
                    .map_err(|f| s.fault(op, slot, f))
            },
        );
        if gone.is_some() {
            self.watch.gone = gone;
        }
        result
    }
}

impl crate::channel::Sender for MpscSender {
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
        MpscSender::max_message(self)
    }
}

impl Drop for MpscSender {
    fn drop(&mut self) {
        // Release: a receiver or claimant that sees "closed" (Acquire) sees every record
        // this sender published. Stored before the lock goes (with `_lock`, after this),
        // so nobody takes a clean close for a death.
        self.shared
            .slot(self.slot)
            .state
            .store(STATE_CLOSED, Ordering::Release);
        fanin::ring(self.shared.doorbell(), &FUTEX);
    }
}

impl fmt::Debug for MpscSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscSender")
            .field("object", &self.shared.label)
            .field("slot", &self.slot)
            .field("capacity", &self.shared.capacity)
            .field("wait", &self.shared.wait)
            .finish()
    }
}

// SAFETY: `Area`'s raw pointer points into the mapping the `Arc<Shared>` keeps alive; all
// shared state is accessed through atomics or copies, so the sender may move to another
// thread.
unsafe impl Send for MpscSender {}

/// Room for one message in a sender's lane, lent out by [`MpscSender::loan`]: write the
/// payload in place, then [`commit`](MpscLoan::commit) it. Dropped without a commit, it
/// publishes nothing.
pub struct MpscLoan<'a> {
    tx: &'a mut MpscSender,
    pos: u64,
    ptr: *mut u8,
    len: usize,
}

impl MpscLoan<'_> {
    /// Publishes the message: the receiver can take it from now on.
    pub fn commit(self) {
        let s = &self.tx.shared;
        let bell = Doorbell {
            bell: s.doorbell(),
            futex: &FUTEX,
        };
        self.tx.producer.commit(
            s.lane(self.tx.slot),
            &s.area(self.tx.slot),
            &bell,
            self.pos,
            self.len as u64,
        );
    }
}

impl Deref for MpscLoan<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY:
        // - `ptr..ptr + len` is inside the lane's data area (checked by `span` when the
        //   loan was made), which the borrowed sender's mapping keeps alive for `'a`.
        // - The bytes are reserved and unpublished in a lane only this sender writes: by
        //   the protocol nobody else reads or writes them until `commit`. A peer that
        //   breaks the protocol can only make them garbage, which all `u8`s are not.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl DerefMut for MpscLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes this the only view in this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl fmt::Debug for MpscLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscLoan").field("len", &self.len).finish()
    }
}

/// The receiving side of a multi-producer ring.
pub struct MpscReceiver {
    shared: Arc<Shared>,
    /// This receiver's open file description, holding the receiver's lock byte.
    lock: OwnedFd,
    /// One per lane.
    consumers: Vec<Consumer>,
    /// The lane to look at first: the one after the last that gave a message.
    next: usize,
    watch: Watch,
}

impl MpscReceiver {
    /// Receives one message into `buf`, waiting as long as it takes; returns its length.
    /// Messages of one sender arrive in the order it sent them; the lanes are taken in
    /// turn.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] when the next message does not fit `buf` (it stays
    /// pending); [`ErrorKind::PeerGone`] when every sender is gone and every message
    /// published has been received; [`ErrorKind::Corrupt`] when a lane's counter or a
    /// record header was overwritten.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_until(buf, Deadline::Never).map(|(n, _)| n)
    }

    /// Receives one message only if one is waiting now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when none is.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_until(buf, Deadline::Now).map(|(n, _)| n)
    }

    /// Receives one message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when none arrived in time.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_until(buf, Deadline::after(timeout))
            .map(|(n, _)| n)
    }

    /// As [`recv_timeout`](MpscReceiver::recv_timeout), also returning the producer slot
    /// the message came from. A slot is not an identity: a later sender may take over
    /// the slot of one that left.
    pub fn recv_from_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(usize, usize)> {
        self.recv_until(buf, Deadline::after(timeout))
    }

    /// Receives one message without copying it: a view of it in the ring, released
    /// (its room given back to its sender) when the view is dropped.
    pub fn recv_ref(&mut self) -> Result<MpscRecvRef<'_>> {
        self.recv_ref_until(Deadline::Never)
    }

    /// As [`recv_ref`](MpscReceiver::recv_ref), only if a message is waiting now.
    pub fn try_recv_ref(&mut self) -> Result<MpscRecvRef<'_>> {
        self.recv_ref_until(Deadline::Now)
    }

    /// As [`recv_ref`](MpscReceiver::recv_ref), waiting at most `timeout`.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<MpscRecvRef<'_>> {
        self.recv_ref_until(Deadline::after(timeout))
    }

    /// The largest message the ring carries: a buffer this large always suffices.
    pub fn max_message(&self) -> usize {
        max_message(self.shared.capacity)
    }

    /// The number of producer slots.
    pub fn producers(&self) -> usize {
        self.shared.producers
    }

    /// The next message in any lane, waiting for one.
    fn next(&mut self, deadline: Deadline, op: &'static str) -> Result<(usize, Found, *const u8)> {
        let s = &self.shared;
        let consumers = &mut self.consumers;
        let start = self.next;
        let n = s.producers;
        let lock = self.lock.as_fd();
        let (lane, found) = s.wait_for(
            &mut self.watch,
            Sleep::Doorbell,
            deadline,
            op,
            || s.producers_gone(lock),
            || {
                for k in 0..n {
                    let i = (start + k) % n;
                    let found = consumers[i]
                        .next(s.lane(i), &s.area(i), &FUTEX)
                        .map_err(|f| s.fault(op, i, f))?;
                    if let Some(found) = found {
                        return Ok(Some((i, found)));
                    }
                }
                Ok(None)
            },
        )?;
        let len = usize::try_from(found.len).unwrap_or(usize::MAX);
        let src = s.area(lane).span(found.offset, len).ok_or_else(|| {
            s.fault(
                op,
                lane,
                Fault::Record {
                    pos: found.offset,
                    word: found.len,
                },
            )
        })?;
        Ok((lane, found, src))
    }

    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<(usize, usize)> {
        let (lane, found, _) = self.next(deadline, "recv")?;
        let len = found.len as usize;
        let Some(buf) = buf.get_mut(..len) else {
            return Err(super::too_large_for_buffer(
                &self.shared.label,
                len,
                buf.len(),
            ));
        };
        // `next` checked the span already; a second check costs two compares.
        let s = &self.shared;
        s.area(lane).copy_out(found.offset, buf).ok_or_else(|| {
            s.fault(
                "recv",
                lane,
                Fault::Record {
                    pos: found.offset,
                    word: found.len,
                },
            )
        })?;
        self.consumers[lane].release(self.shared.lane(lane), &FUTEX, found.rec);
        self.next = (lane + 1) % self.shared.producers;
        Ok((len, lane))
    }

    fn recv_ref_until(&mut self, deadline: Deadline) -> Result<MpscRecvRef<'_>> {
        let (lane, found, src) = self.next(deadline, "recv_ref")?;
        self.next = (lane + 1) % self.shared.producers;
        Ok(MpscRecvRef {
            rx: self,
            lane,
            rec: found.rec,
            ptr: src,
            len: found.len as usize,
        })
    }
}

impl crate::channel::Receiver for MpscReceiver {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        MpscReceiver::recv(self, buf)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        MpscReceiver::try_recv(self, buf)
    }

    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        MpscReceiver::recv_timeout(self, buf, timeout)
    }

    fn max_message(&self) -> usize {
        MpscReceiver::max_message(self)
    }

    fn address(&self) -> Option<crate::addr::Address> {
        match &self.shared.object {
            Object::Named(shm) => {
                format!("ring:{}?producers={}", shm.name(), self.shared.producers)
                    .parse()
                    .ok()
            }
            Object::Anonymous(_) => None,
        }
    }
}

impl Drop for MpscReceiver {
    fn drop(&mut self) {
        // Release: a sender that sees "closed" sees every release made before.
        self.shared
            .receiver_state()
            .store(STATE_CLOSED, Ordering::Release);
        for lane in self.shared.lanes() {
            lane.tx.0.seq.fetch_add(1, Ordering::Release);
            let _ = futex::wake(&lane.tx.0.seq, futex::Flags::empty(), 1);
        }
    }
}

impl fmt::Debug for MpscReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscReceiver")
            .field("object", &self.shared.label)
            .field("producers", &self.shared.producers)
            .field("capacity", &self.shared.capacity)
            .field("wait", &self.shared.wait)
            .finish()
    }
}

// SAFETY: as for `MpscSender`.
unsafe impl Send for MpscReceiver {}

/// A message lent out of the ring by [`MpscReceiver::recv_ref`]; its room goes back to
/// its sender when this is dropped.
pub struct MpscRecvRef<'a> {
    rx: &'a mut MpscReceiver,
    lane: usize,
    rec: u64,
    ptr: *const u8,
    len: usize,
}

impl MpscRecvRef<'_> {
    /// The producer slot the message came from.
    pub fn slot(&self) -> usize {
        self.lane
    }
}

impl Deref for MpscRecvRef<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY:
        // - `ptr..ptr + len` is inside the lane's data area (checked by `span`), which
        //   the borrowed receiver's mapping keeps alive for `'a`.
        // - The bytes are published and not yet released: by the protocol their sender
        //   does not write them while this view lives. A sender that breaks the protocol
        //   can change them under the view; the reader then sees garbage bytes (all `u8`
        //   values are valid), which is why `recv` is the form for untrusted peers.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for MpscRecvRef<'_> {
    fn drop(&mut self) {
        let s = &self.rx.shared;
        self.rx.consumers[self.lane].release(s.lane(self.lane), &FUTEX, self.rec);
    }
}

impl fmt::Debug for MpscRecvRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscRecvRef")
            .field("slot", &self.lane)
            .field("len", &self.len)
            .finish()
    }
}
