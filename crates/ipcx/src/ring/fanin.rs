//! The multi-producer ring's protocol on top of the lanes: one doorbell the receiver
//! sleeps on for all of them, and a producer taking over a lane another producer left.
//!
//! Like [`super::protocol`], this file is compiled twice: into the library and into the
//! `loom` model (`tests/ring_loom.rs`), which includes it by path beside `protocol.rs`
//! and a `sync` module of loom's atomics. It uses nothing but those two and `core`. Each
//! lane is a single-producer ring run by [`super::protocol`] unchanged; what is here is
//! only what several lanes add. See [`super::mpsc`] for the algorithm as a whole.

use super::protocol::{
    Control, Data, EMPTY, Fault, Producer, RECORD_HEADER, Sleeper, TAG_MSG, TAG_PAD, Wake,
    record_len,
};
use super::sync::{Ordering, fence};

/// The receiver's announcement that it is about to sleep, made on every lane: returns
/// the doorbell's value to sleep on. As with [`Sleeper::announce`], the caller must look
/// at every lane once more after this, and sleep only while the doorbell still holds the
/// value returned.
///
/// Orderings:
/// - The doorbell is loaded with `Acquire` before any announcement: a value a producer
///   rang (a `Release` RMW in [`Doorbell::wake`]) carries that producer's publication,
///   so we never sleep on a value newer than what the re-check sees. A producer rings
///   only after it read one of our announcements, which come after this load, so this
///   load cannot read a ring that answers them (it would read a value written after a
///   read of a store sequenced after the load itself).
/// - Each lane's `sleeping` flag is stored `Relaxed`; the one `SeqCst` fence after all
///   of them is this side's half of the Dekker pair whose other half is the fence in
///   [`Sleeper::must_wake`], which a producer issues between storing a record's header
///   and loading its own lane's flag. Either our re-check sees that header, or that
///   producer sees the flag and rings the doorbell (after our load of it, so the futex
///   wait returns at once or is woken). No wake-up is lost, on any lane.
pub(crate) fn announce<'a>(doorbell: &Sleeper, lanes: impl Iterator<Item = &'a Control>) -> u32 {
    let seq = doorbell.seq.load(Ordering::Acquire);
    for lane in lanes {
        lane.rx.0.sleeping.store(1, Ordering::Relaxed);
    }
    fence(Ordering::SeqCst);
    seq
}

/// Withdraws the announcement on every lane. Relaxed: a producer that still sees a 1
/// only rings the doorbell needlessly.
pub(crate) fn retire<'a>(lanes: impl Iterator<Item = &'a Control>) {
    for lane in lanes {
        lane.rx.0.sleeping.store(0, Ordering::Relaxed);
    }
}

/// How a producer wakes the receiver: the lane's [`Sleeper::must_wake`] said the
/// receiver announced a sleep, so ring the doorbell it sleeps on, whichever lane this is.
pub(crate) struct Doorbell<'a, W> {
    /// The receiver's futex word (only its `seq` is used).
    pub(crate) bell: &'a Sleeper,
    /// Wakes whoever sleeps on a sleeper's `seq`: the futex.
    pub(crate) futex: &'a W,
}

impl<W: Wake> Wake for Doorbell<'_, W> {
    fn wake(&self, _lane: &Sleeper) {
        // Release: a receiver that loads this value with Acquire (in `announce`) sees
        // the record published before it.
        self.bell.seq.fetch_add(1, Ordering::Release);
        self.futex.wake(self.bell);
    }
}

/// Rings the doorbell unconditionally (a producer leaving, so that a sleeping receiver
/// re-checks who is left at once). Release, as in [`Doorbell::wake`].
pub(crate) fn ring(doorbell: &Sleeper, futex: &impl Wake) {
    doorbell.seq.fetch_add(1, Ordering::Release);
    futex.wake(doorbell);
}

/// A producer for a lane whose earlier producer is gone (closed, or died at any point):
/// finds where that producer's published records end by walking them from the
/// receiver's head, so that writing resumes right after the last whole record. A record
/// the earlier producer had reserved but not published is simply written over: it was
/// never visible.
///
/// Every header word on the way is loaded once and checked as the receiver checks it
/// (a message fits before the end of the data area and leaves the word after it, a pad
/// reaches exactly the end and does not start at 0); the walk ends at the first
/// [`EMPTY`] word, which the protocol keeps after the last published record, and may not
/// cover more than the capacity minus 8 bytes. Anything else is a [`Fault`], and no walk
/// takes more than `capacity / 8` steps.
///
/// The caller must hold the lane exclusively (its lock), so that nobody publishes here
/// while it walks; the receiver may go on consuming, which only moves the head past
/// records the walk already counted.
pub(crate) fn resume(c: &Control, d: &impl Data, capacity: u64) -> Result<Producer, Fault> {
    // Acquire: pairs with the receiver's Release store in `Consumer::release`, as the
    // head's load in `Producer::room` does: its reads of the bytes before the head
    // happen before our writes over them.
    let head = c.head.0.load(Ordering::Acquire);
    if !head.is_multiple_of(8) {
        return Err(Fault::Head { head, tail: head });
    }
    let mut tail = head;
    loop {
        if tail - head + RECORD_HEADER > capacity {
            return Err(Fault::Head { head, tail });
        }
        let pos = tail & (capacity - 1);
        let to_end = capacity - pos;
        // Acquire (the `Data` contract): pairs with the earlier producer's Release
        // publication of this header, so the empty mark it stored after the record
        // before publishing it is what the next step reads, not an older lap's word.
        let header = d.load_word(pos);
        if header == EMPTY {
            return Ok(Producer::at(capacity, tail, head));
        }
        let (tag, len) = ((header >> 32) as u32, header & 0xffff_ffff);
        let fault = Fault::Record { pos, word: header };
        let rec = match tag {
            TAG_PAD if len + RECORD_HEADER == to_end && pos != 0 => to_end,
            TAG_MSG => match record_len(len) {
                Some(rec) if rec <= to_end && rec + RECORD_HEADER <= capacity => rec,
                _ => return Err(fault),
            },
            _ => return Err(fault),
        };
        // The walk starts at a head read from shared memory: a forged one near the top
        // of the range must be Corrupt, not an overflow.
        tail = tail.checked_add(rec).ok_or(fault)?;
    }
}
