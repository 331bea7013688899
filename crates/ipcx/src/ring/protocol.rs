//! The ring's lock-free protocol: counters, records and the sleep announcement, with no
//! system calls and no knowledge of where the memory lives.
//!
//! This file is compiled twice: into the library (atomics from [`super::sync`], which are
//! `std`'s, in shared memory) and into the `loom` model test, which includes it by path
//! beside a `sync` module of loom's atomics. It therefore uses nothing but `super::sync`
//! and `core`; what it cannot do itself (copy payloads, wake a sleeper) it asks of its
//! caller through [`Data`] and [`Wake`]. See the ring module's documentation for the
//! algorithm as a whole; the comments here say what each ordering pairs with.

use super::sync::{AtomicU32, AtomicU64, Ordering, fence};

/// Bytes of a record's header: one little 64-bit word, `tag << 32 | len`.
pub(crate) const RECORD_HEADER: u64 = 8;
/// A record's tag: a message of `len` payload bytes follows.
pub(crate) const TAG_MSG: u32 = u32::from_le_bytes(*b"rMSG");
/// A record's tag: skip `len` bytes to the end of the data area (a message that would
/// have wrapped starts at offset 0 instead).
pub(crate) const TAG_PAD: u32 = u32::from_le_bytes(*b"rPAD");

/// Keeps `T` on cache lines of its own: 128 bytes, because x86's adjacent-line
/// prefetcher pulls lines in pairs (crossbeam's `CachePadded` uses the same figure).
#[repr(C, align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

/// Where one side sleeps while it waits for the other.
///
/// `seq` is the futex word; `sleeping` is the announcement that the waiter is about to
/// sleep (or is asleep) on it. The other side reads `sleeping` after each publication and
/// makes the wake-up system call only when it is set.
#[repr(C)]
pub(crate) struct Sleeper {
    pub(crate) seq: AtomicU32,
    pub(crate) sleeping: AtomicU32,
}

impl Sleeper {
    /// A sleeper nobody waits on.
    #[allow(dead_code)] // used by the loom model
    pub(crate) fn new() -> Sleeper {
        Sleeper {
            seq: AtomicU32::new(0),
            sleeping: AtomicU32::new(0),
        }
    }

    /// Announces that the caller is about to sleep; returns the sequence value to sleep
    /// on. The caller must check its condition once more after this (and retire instead
    /// of sleeping if it now holds), then sleep only while `seq` still has this value.
    ///
    /// Orderings:
    /// - `seq` is loaded with `Acquire`, before the announcement: if it reads a value a
    ///   notifier bumped (a `Release` RMW in [`Sleeper::must_wake`]), the publication
    ///   that notifier made before the bump is visible to the re-check, so we never sleep
    ///   on a value that is newer than what the re-check sees.
    /// - The `SeqCst` fence between the store of `sleeping` and the caller's re-check of
    ///   the counter is one half of a Dekker pair; the other half is the fence in
    ///   [`Sleeper::must_wake`], between the notifier's store of the counter and its load
    ///   of `sleeping`. Two `SeqCst` fences are totally ordered, so at least one side
    ///   sees the other's store: either the re-check sees the new counter (and we do not
    ///   sleep), or the notifier sees `sleeping` (and bumps `seq` and wakes us; if the
    ///   bump lands before our futex wait, the kernel sees `seq` changed and does not
    ///   sleep). A lost wake-up would need both loads to miss, which the fences forbid.
    pub(crate) fn announce(&self) -> u32 {
        let seq = self.seq.load(Ordering::Acquire);
        // Relaxed: the fence right after orders it before the re-check's load.
        self.sleeping.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        seq
    }

    /// Withdraws the announcement after waking (or after the re-check succeeded).
    /// Relaxed: a notifier that still sees the old 1 only makes a needless wake call.
    pub(crate) fn retire(&self) {
        self.sleeping.store(0, Ordering::Relaxed);
    }

    /// After a publication (a store of a counter): whether the peer announced a sleep,
    /// in which case `seq` has been bumped and the caller must wake the futex.
    #[inline(always)]
    pub(crate) fn must_wake(&self) -> bool {
        // SeqCst: pairs with the fence in `announce` (see there).
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) == 0 {
            return false;
        }
        // Release: a waiter that reads the new value with Acquire (in `announce`) sees
        // the publication made before this bump.
        self.seq.fetch_add(1, Ordering::Release);
        true
    }
}

/// The counter and sleepers both sides share, each on its own cache lines. There is no
/// shared tail: a record's header word is its own commit flag (see [`Producer::commit`]),
/// so a receiver polls the one line where the next message will start.
#[repr(C)]
pub(crate) struct Control {
    /// Bytes ever released by the receiver: a monotonic `u64`, written only by it.
    pub(crate) head: CachePadded<AtomicU64>,
    /// The receiver sleeps here while the ring is empty; the sender wakes it.
    pub(crate) rx: CachePadded<Sleeper>,
    /// The sender sleeps here while the ring is full; the receiver wakes it.
    pub(crate) tx: CachePadded<Sleeper>,
}

impl Control {
    /// Counter at zero, nobody asleep.
    #[allow(dead_code)] // used by the loom model
    pub(crate) fn new() -> Control {
        Control {
            head: CachePadded(AtomicU64::new(0)),
            rx: CachePadded(Sleeper::new()),
            tx: CachePadded(Sleeper::new()),
        }
    }
}

/// The data area, as far as the protocol needs it: record headers are whole aligned
/// words, loaded and stored atomically (so a header is read exactly once, into a local).
pub(crate) trait Data {
    /// The word at byte offset `pos` (a multiple of 8, below the capacity), loaded with
    /// `Acquire`.
    fn load_word(&self, pos: u64) -> u64;
    /// Stores `word` at byte offset `pos` with `Relaxed` ordering.
    fn store_word(&self, pos: u64, word: u64);
    /// Stores `word` at byte offset `pos` with `Release` ordering: the commit.
    fn publish_word(&self, pos: u64, word: u64);
}

/// Wakes a peer sleeping on a [`Sleeper`] whose [`Sleeper::must_wake`] said so.
pub(crate) trait Wake {
    /// Whether the peer may sleep at all. A peer that only ever spins (it said so when it
    /// took its side) is never asleep, so a publication skips the `SeqCst` fence and the
    /// look at `sleeping` that exist only to wake it: the fence is the costliest step of
    /// a busy round trip. A peer that says so and sleeps anyway only delays itself: it
    /// wakes at the end of its sleep slice.
    fn peer_may_sleep(&self) -> bool {
        true
    }
    /// Wakes whoever sleeps on `sleeper.seq`.
    fn wake(&self, sleeper: &Sleeper);
}

/// What a peer did that the protocol cannot accept; the caller reports it as `Corrupt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The head moved backwards, past what was published, or by a non-multiple of 8.
    Head { head: u64, tail: u64 },
    /// A record's header is not a message or a pad, or its length does not fit.
    Record { pos: u64, word: u64 },
}

/// The bytes a record of `len` payload bytes occupies: header plus payload, rounded up to
/// 8 so every header stays aligned. `None` if it cannot be represented.
pub(crate) fn record_len(len: u64) -> Option<u64> {
    len.checked_add(RECORD_HEADER + 7).map(|n| n & !7)
}

/// The largest payload a ring of `capacity` bytes carries: one record header, and the
/// word after the record that must stay free for the next header's "not yet" mark.
pub(crate) fn max_payload(capacity: u64) -> u64 {
    capacity - 2 * RECORD_HEADER
}

/// The header word that says "no record here yet": what the data area starts as, and
/// what the sender writes where the next record will start before it publishes one.
pub(crate) const EMPTY: u64 = 0;

fn word(tag: u32, len: u64) -> u64 {
    (u64::from(tag) << 32) | (len & 0xffff_ffff)
}

/// The sender's side of the protocol. Its own counter lives here; the shared head is
/// read (and checked) only when the last value seen does not leave room.
pub(crate) struct Producer {
    /// Bytes published so far.
    tail: u64,
    /// The last head read and validated: room is known up to `head + capacity`.
    head: u64,
    capacity: u64,
}

impl Producer {
    /// A producer for an empty ring of `capacity` bytes (a power of two, at least 16).
    pub(crate) fn new(capacity: u64) -> Producer {
        Producer {
            tail: 0,
            head: 0,
            capacity,
        }
    }

    /// A producer taking over a lane whose earlier producer left: `tail` bytes were
    /// published there and the receiver had released `head` of them when last looked
    /// (the multi-producer ring's `fanin::resume` finds both; `head <= tail`, both
    /// multiples of 8, `tail - head` at most the capacity minus 8).
    pub(crate) fn at(capacity: u64, tail: u64, head: u64) -> Producer {
        debug_assert!(head <= tail && tail - head + RECORD_HEADER <= capacity);
        Producer {
            tail,
            head,
            capacity,
        }
    }

    /// Whether `need` bytes are free after the tail, reading the shared head only when
    /// the last one seen does not leave enough.
    #[inline(always)]
    fn room(&mut self, c: &Control, need: u64) -> Result<bool, Fault> {
        if self.capacity - (self.tail - self.head) >= need {
            return Ok(true);
        }
        // Acquire: pairs with the receiver's Release store of `head` in
        // `Consumer::release`, so its reads of the bytes it released happen before our
        // writes over them.
        let head = c.head.0.load(Ordering::Acquire);
        // The head may only move forward, by whole records, and never past the tail.
        let moved = head.wrapping_sub(self.head);
        if moved > self.tail - self.head || !head.is_multiple_of(8) {
            return Err(Fault::Head {
                head,
                tail: self.tail,
            });
        }
        self.head = head;
        Ok(self.capacity - (self.tail - self.head) >= need)
    }

    /// Reserves room for a record of `rec` bytes (from [`record_len`], at most the
    /// capacity minus 8): `Some(pos)` of its header in the data area, or `None` if the
    /// ring is too full now. A record that would cross the end of the data area is
    /// preceded by a pad record to the end, which is published at once (so the receiver
    /// can consume it and the record can start at 0 once there is room there).
    ///
    /// Room always includes the 8 bytes after the record: the word where the next
    /// header will go, which [`Producer::commit`] marks [`EMPTY`] before publishing.
    #[inline(always)]
    pub(crate) fn reserve(
        &mut self,
        c: &Control,
        d: &impl Data,
        w: &impl Wake,
        rec: u64,
    ) -> Result<Option<u64>, Fault> {
        debug_assert!(rec + RECORD_HEADER <= self.capacity && rec.is_multiple_of(8));
        loop {
            let pos = self.tail & (self.capacity - 1);
            let to_end = self.capacity - pos;
            if rec <= to_end {
                return Ok(self.room(c, rec + RECORD_HEADER)?.then_some(pos));
            }
            if !self.room(c, to_end + RECORD_HEADER)? {
                return Ok(None);
            }
            self.publish(c, d, w, pos, word(TAG_PAD, to_end - RECORD_HEADER), to_end);
        }
    }

    /// Publishes the record reserved at `pos` (from [`Producer::reserve`]) with `len`
    /// payload bytes, which the caller has written after its header.
    #[inline(always)]
    pub(crate) fn commit(&mut self, c: &Control, d: &impl Data, w: &impl Wake, pos: u64, len: u64) {
        let rec = record_len(len).unwrap_or(self.capacity);
        self.publish(c, d, w, pos, word(TAG_MSG, len), rec);
    }

    #[inline(always)]
    fn publish(
        &mut self,
        c: &Control,
        d: &impl Data,
        w: &impl Wake,
        pos: u64,
        header: u64,
        rec: u64,
    ) {
        // Where the next record will start: it must read "empty" until that record is
        // published, not whatever an older lap left there. Reserved room covers it.
        let next = (pos + rec) & (self.capacity - 1);
        d.store_word(next, EMPTY);
        // Release: pairs with the receiver's Acquire load of this header in
        // `Consumer::next`: the payload, and the empty mark after it, are visible to a
        // receiver that sees the header. A sender that dies before this store has
        // published nothing of the record, however much of it is written.
        d.publish_word(pos, header);
        self.tail += rec;
        if w.peer_may_sleep() && c.rx.0.must_wake() {
            w.wake(&c.rx.0);
        }
    }
}

/// A message found by [`Consumer::next`]: its payload's offset and length in the data
/// area, and the bytes its record occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) rec: u64,
}

/// The receiver's side of the protocol, with its own copy of the head (the shared head
/// is only ever stored).
pub(crate) struct Consumer {
    /// Bytes released so far.
    head: u64,
    capacity: u64,
}

impl Consumer {
    /// A consumer for an empty ring of `capacity` bytes (a power of two, at least 16).
    pub(crate) fn new(capacity: u64) -> Consumer {
        Consumer { head: 0, capacity }
    }

    /// The next message, if one is published, consuming a pad before it. The message
    /// stays in the ring until [`Consumer::release`].
    ///
    /// The header word at the head is loaded once (`Acquire`) into a local and checked
    /// before use: [`EMPTY`] means nothing is published yet; a message must fit before
    /// the end of the data area and leave the word after it; a pad must reach exactly the
    /// end and cannot start at 0. Anything else is a [`Fault`], never an access outside
    /// the data area, and no call loops more than once.
    #[inline(always)]
    pub(crate) fn next(
        &mut self,
        c: &Control,
        d: &impl Data,
        w: &impl Wake,
    ) -> Result<Option<Found>, Fault> {
        for _ in 0..2 {
            let pos = self.head & (self.capacity - 1);
            let to_end = self.capacity - pos;
            let header = d.load_word(pos);
            if header == EMPTY {
                return Ok(None);
            }
            let (tag, len) = ((header >> 32) as u32, header & 0xffff_ffff);
            let fault = Fault::Record { pos, word: header };
            match tag {
                TAG_PAD if len + RECORD_HEADER == to_end && pos != 0 => {
                    self.release(c, w, to_end);
                }
                TAG_MSG => {
                    let rec = record_len(len).ok_or(fault)?;
                    if rec > to_end || rec + RECORD_HEADER > self.capacity {
                        return Err(fault);
                    }
                    return Ok(Some(Found {
                        offset: pos + RECORD_HEADER,
                        len,
                        rec,
                    }));
                }
                _ => return Err(fault),
            }
        }
        // Two pads in a row: the second started at 0, which the first arm refuses.
        unreachable_pad(self.head)
    }

    /// The offset in the data area where the next record's header will be.
    #[allow(dead_code)] // used by the library, not by the loom model
    pub(crate) fn position(&self) -> u64 {
        self.head & (self.capacity - 1)
    }

    /// Releases `rec` bytes (a record [`Consumer::next`] returned) back to the sender.
    #[inline(always)]
    pub(crate) fn release(&mut self, c: &Control, w: &impl Wake, rec: u64) {
        self.head += rec;
        // Release: pairs with the sender's Acquire load of `head` in `Producer::room`:
        // our reads of the released bytes happen before its writes over them.
        c.head.0.store(self.head, Ordering::Release);
        if w.peer_may_sleep() && c.tx.0.must_wake() {
            w.wake(&c.tx.0);
        }
    }
}

/// After a pad the head is at offset 0, where a pad is a fault: a second pad in one call
/// is reported, never looped on.
fn unreachable_pad(head: u64) -> Result<Option<Found>, Fault> {
    Err(Fault::Record { pos: head, word: 0 })
}
