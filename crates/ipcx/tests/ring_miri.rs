//! The ring's protocol between a sender thread and a receiver thread over ordinary
//! memory, with payloads copied the way the ring copies them: plain, non-atomic
//! `copy_nonoverlapping` into and out of the words whose record headers are atomics.
//!
//! This compiles the library's own `src/ring/protocol.rs` by path (as the loom model
//! does) and gives it a data area shaped like the ring's `Area`: a base pointer and
//! `AtomicU64::from_ptr` for the header words. The loom model checks the protocol with
//! atomic payload words; this test checks what loom cannot, the plain payload bytes: run
//! under miri, whose data-race detector reports any payload byte that the receiver reads
//! while the sender may still write it (or the reverse) that is not ordered by the
//! header's `Release`/`Acquire` pair and the counter's, and whose checks catch any access
//! outside the allocation or misaligned:
//!
//! ```text
//! cargo +nightly miri test -p ipcx --test ring_miri
//! ```
//!
//! (`scripts/sanitize.sh` runs it.) Outside miri it runs as an ordinary test with more
//! messages.
#![allow(clippy::unwrap_used, dead_code)]

mod sync {
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}

#[path = "../src/ring/protocol.rs"]
mod protocol;

use std::sync::atomic::{AtomicU64, Ordering};

use protocol::{Consumer, Control, Data, Producer, RECORD_HEADER, Sleeper, Wake, record_len};

/// The data area, as the ring's `Area`: a base pointer into memory both sides share.
#[derive(Clone, Copy)]
struct Area {
    base: *mut u8,
    capacity: u64,
}

// SAFETY: the area is plain memory owned by the test's `Vec`, which outlives both threads
// (they are scoped); the protocol orders every access to it, which is what is under test.
unsafe impl Send for Area {}
// SAFETY: as for `Send`.
unsafe impl Sync for Area {}

impl Area {
    fn word(&self, pos: u64) -> &AtomicU64 {
        assert!(pos.is_multiple_of(8) && pos < self.capacity, "word {pos}");
        // SAFETY:
        // - `pos + 8 <= capacity` (asserted) and `base` is 8-aligned (it comes from a
        //   `Vec<AtomicU64>`), so the word is inside the allocation and aligned;
        // - every bit pattern is a valid `u64`, and the allocation outlives the area.
        unsafe { AtomicU64::from_ptr(self.base.add(pos as usize).cast::<u64>()) }
    }

    /// Copies `bytes` to `offset` with a plain copy, as `RingSender::send` does.
    fn write(&self, offset: u64, bytes: &[u8]) {
        assert!(offset + bytes.len() as u64 <= self.capacity);
        // SAFETY:
        // - the destination lies inside the allocation (asserted just above);
        // - `bytes` is this thread's own memory, so the ranges do not overlap;
        // - the protocol reserved these bytes for the sender: if it did not, miri reports
        //   the race, which is the point of the test.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.base.add(offset as usize),
                bytes.len(),
            )
        };
    }

    /// Copies `len` bytes from `offset` with a plain copy, as `RingReceiver::recv` does.
    fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        assert!(offset + len <= self.capacity);
        let mut out = vec![0u8; len as usize];
        // SAFETY: as for `write`, with the roles of the two ranges swapped.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.add(offset as usize),
                out.as_mut_ptr(),
                len as usize,
            )
        };
        out
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

/// The threads spin (with yields) instead of sleeping: the futex is not under test here.
struct Spin;

impl Wake for Spin {
    fn wake(&self, _sleeper: &Sleeper) {}
}

fn spin_until<T>(mut attempt: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = attempt() {
            return v;
        }
        std::thread::yield_now();
    }
}

/// The payload of message `m`: its bytes tell it from every other message.
fn payload(m: usize, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (m as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// Moves `count` messages with lengths cycling through `lens` through a ring of
/// `capacity` bytes, between two threads, and checks each arrives whole and in order.
fn run(capacity: u64, lens: &[u64], count: usize) {
    let words: Vec<AtomicU64> = (0..capacity / 8).map(|_| AtomicU64::new(0)).collect();
    let area = Area {
        base: words.as_ptr().cast::<u8>().cast_mut(),
        capacity,
    };
    let control = Control::new();
    let mut c = Consumer::new(capacity);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut p = Producer::new(capacity);
            for m in 0..count {
                let len = lens[m % lens.len()];
                let rec = record_len(len).unwrap();
                let pos = spin_until(|| p.reserve(&control, &area, &Spin, rec).unwrap());
                area.write(pos + RECORD_HEADER, &payload(m, len));
                p.commit(&control, &area, &Spin, pos, len);
            }
        });
        for m in 0..count {
            let found = spin_until(|| c.next(&control, &area, &Spin).unwrap());
            let len = lens[m % lens.len()];
            assert_eq!(found.len, len, "message {m}: length");
            assert_eq!(area.read(found.offset, len), payload(m, len), "message {m}");
            c.release(&control, &Spin, found.rec);
        }
    });
    // Nothing more was published.
    assert_eq!(c.next(&control, &area, &Spin), Ok(None));
    drop(words);
}

#[test]
fn plain_payload_copies_are_ordered_by_the_protocol() {
    let count = if cfg!(miri) { 60 } else { 20_000 };
    // Odd lengths (padding inside records), empty messages, and records that need a pad
    // at the end of a 64-byte ring, so every lap overwrites an older lap's bytes.
    run(64, &[5, 0, 13, 40, 1, 24, 47], count);
}

#[test]
fn a_full_ring_alternates_without_a_race() {
    let count = if cfg!(miri) { 30 } else { 10_000 };
    // Each record (and the word after it) fills the 64-byte ring.
    run(64, &[48], count);
}
