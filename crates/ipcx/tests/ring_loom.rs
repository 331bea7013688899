//! The ring's protocol under `loom`: every interleaving (and every weak-memory outcome
//! loom models) of a sender and a receiver on a tiny ring, checking that messages arrive
//! whole and in order and that no wake-up is lost.
//!
//! This compiles the library's own `src/ring/protocol.rs` (by path) beside a `sync`
//! module that hands it loom's atomics: the model checks the code that runs, not a copy.
//! The futex is modelled as the kernel implements it: the value check and the queueing
//! happen under one lock that `FUTEX_WAKE` also takes. The waits here sleep at once,
//! without spinning, so any lost wake-up leaves both threads asleep, which loom reports as
//! a deadlock.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg ipcx_loom" cargo test -p ipcx --release --test ring_loom
//! ```
#![cfg(ipcx_loom)]
#![allow(clippy::unwrap_used, dead_code)]

mod sync {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}

#[path = "../src/ring/protocol.rs"]
mod protocol;

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Condvar, Mutex};

use protocol::{Consumer, Control, Data, Producer, RECORD_HEADER, Sleeper, Wake, record_len};

/// The data area: words, as in shared memory (record headers and payload alike).
struct Words(Vec<AtomicU64>);

impl Data for Words {
    fn load_word(&self, pos: u64) -> u64 {
        self.0[(pos / 8) as usize].load(Ordering::Acquire)
    }
    fn store_word(&self, pos: u64, word: u64) {
        self.0[(pos / 8) as usize].store(word, Ordering::Relaxed);
    }
    fn publish_word(&self, pos: u64, word: u64) {
        self.0[(pos / 8) as usize].store(word, Ordering::Release);
    }
}

impl Words {
    /// Payload words are read with `Relaxed` loads: only the header's Acquire may make
    /// them visible.
    fn payload(&self, pos: u64) -> u64 {
        self.0[(pos / 8) as usize].load(Ordering::Relaxed)
    }
}

/// The kernel's futex table, for both sleepers: one lock and one queue.
struct Kernel {
    lock: Mutex<()>,
    queue: Condvar,
}

impl Kernel {
    /// `FUTEX_WAIT`: sleeps only if `word` still holds `expected`, checked under the lock.
    fn wait(&self, word: &AtomicU32, expected: u32) {
        let guard = self.lock.lock().unwrap();
        if word.load(Ordering::Relaxed) == expected {
            drop(self.queue.wait(guard).unwrap());
        }
    }
}

impl Wake for Kernel {
    /// `FUTEX_WAKE`.
    fn wake(&self, _sleeper: &Sleeper) {
        let _guard = self.lock.lock().unwrap();
        self.queue.notify_all();
    }
}

struct Ring {
    control: Control,
    data: Words,
    kernel: Kernel,
}

/// Runs `attempt` until it yields, sleeping (announce, re-check, futex wait) in between.
fn wait_until<T>(ring: &Ring, sleeper: &Sleeper, mut attempt: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = attempt() {
            return v;
        }
        let seq = sleeper.announce();
        if let Some(v) = attempt() {
            sleeper.retire();
            return v;
        }
        ring.kernel.wait(&sleeper.seq, seq);
        sleeper.retire();
    }
}

/// Payload word `i` of message `m`.
fn payload(m: usize, i: usize) -> u64 {
    0x1000 * (m as u64 + 1) + i as u64
}

/// A sender and a receiver moving messages of `lens` bytes (multiples of 8) through a
/// ring of `capacity` bytes.
fn model(capacity: u64, lens: &'static [u64]) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let ring = Arc::new(Ring {
            control: Control::new(),
            data: Words((0..capacity / 8).map(|_| AtomicU64::new(0)).collect()),
            kernel: Kernel {
                lock: Mutex::new(()),
                queue: Condvar::new(),
            },
        });
        let sender = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let mut p = Producer::new(capacity);
                for (m, &len) in lens.iter().enumerate() {
                    let rec = record_len(len).unwrap();
                    let pos = wait_until(&ring, &ring.control.tx.0, || {
                        p.reserve(&ring.control, &ring.data, &ring.kernel, rec)
                            .unwrap()
                    });
                    for i in 0..(len / 8) as usize {
                        ring.data
                            .store_word(pos + RECORD_HEADER + 8 * i as u64, payload(m, i));
                    }
                    p.commit(&ring.control, &ring.data, &ring.kernel, pos, len);
                }
            })
        };
        let mut c = Consumer::new(capacity);
        for (m, &len) in lens.iter().enumerate() {
            let found = wait_until(&ring, &ring.control.rx.0, || {
                c.next(&ring.control, &ring.data, &ring.kernel).unwrap()
            });
            assert_eq!(found.len, len, "message {m}: length");
            for i in 0..(len / 8) as usize {
                let word = ring.data.payload(found.offset + 8 * i as u64);
                assert_eq!(word, payload(m, i), "message {m}: payload word {i}");
            }
            c.release(&ring.control, &ring.kernel, found.rec);
        }
        sender.join().unwrap();
        // Nothing more was published.
        assert_eq!(c.next(&ring.control, &ring.data, &ring.kernel), Ok(None));
    });
}

#[test]
fn messages_arrive_whole_and_in_order_and_no_wake_up_is_lost() {
    // Records of 16 and 24 bytes in a 32-byte ring: the second needs a pad, the empty
    // mark at offset 0 and the first's room back.
    model(32, &[8, 16]);
}

#[test]
fn a_full_ring_blocks_the_sender_until_the_receiver_releases() {
    // Each record (with the word after it) fills the ring: strict alternation, each side
    // sleeping on the other, and every header lands where an older lap's header was.
    model(16, &[0, 0, 0]);
    model(32, &[16, 16, 16]);
}

#[test]
fn empty_messages_and_pads_interleave() {
    model(32, &[0, 16, 0]);
}
