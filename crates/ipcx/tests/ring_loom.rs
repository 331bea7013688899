//! The ring's protocol under `loom`: every interleaving (and every weak-memory outcome
//! loom models) of a sender and a receiver on a tiny ring (also with a receiver that
//! only spins, for which the sender skips its fence), and of two senders and a
//! receiver on a multi-producer ring of two tiny lanes, checking that messages arrive
//! whole and in order (per sender) and that no wake-up is lost; and a sender taking over
//! the lane of one that stopped half-way through a message, while the receiver reads.
//!
//! This compiles the library's own `src/ring/protocol.rs` and `src/ring/fanin.rs` (by
//! path) beside a `sync` module that hands them loom's atomics: the model checks the code
//! that runs, not a copy.
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

#[path = "../src/ring/fanin.rs"]
mod fanin;

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

impl Ring {
    /// An empty ring of `capacity` bytes, nobody asleep.
    fn new(capacity: u64) -> Ring {
        Ring {
            control: Control::new(),
            data: Words((0..capacity / 8).map(|_| AtomicU64::new(0)).collect()),
            kernel: Kernel {
                lock: Mutex::new(()),
                queue: Condvar::new(),
            },
        }
    }
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

/// How one side of a model waits, and what the other side is told about it.
#[derive(Clone, Copy, PartialEq)]
enum Waits {
    /// Sleeps when it cannot go on; the other side wakes it.
    Sleeps,
    /// Only spins (as `Wait::Busy` does), and the other side knows: it skips its fence
    /// and wake-up check after each publication.
    Spins,
    /// Sleeps although the other side was told it spins: a lost wake-up, which loom must
    /// find.
    SleepsButSaysItSpins,
}

/// Until `attempt` yields: sleeping in between, or spinning if `waits` says so.
fn wait_as<T>(
    ring: &Ring,
    sleeper: &Sleeper,
    waits: Waits,
    mut attempt: impl FnMut() -> Option<T>,
) -> T {
    if waits != Waits::Spins {
        return wait_until(ring, sleeper, attempt);
    }
    loop {
        if let Some(v) = attempt() {
            return v;
        }
        loom::thread::yield_now();
    }
}

/// A side's waker: the kernel, and whether the other side may sleep at all.
struct Told<'a> {
    kernel: &'a Kernel,
    peer_sleeps: bool,
}

impl Wake for Told<'_> {
    fn peer_may_sleep(&self) -> bool {
        self.peer_sleeps
    }
    fn wake(&self, sleeper: &Sleeper) {
        self.kernel.wake(sleeper);
    }
}

/// A sender and a receiver moving messages of `lens` bytes (multiples of 8) through a
/// ring of `capacity` bytes.
fn model(capacity: u64, lens: &'static [u64]) {
    model_with(capacity, lens, Waits::Sleeps, Waits::Sleeps);
}

/// As [`model`], with each side waiting as it says: the sender when the ring is full,
/// the receiver when it is empty.
fn model_with(capacity: u64, lens: &'static [u64], sender: Waits, receiver: Waits) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let ring = Arc::new(Ring::new(capacity));
        let sending = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let waker = Told {
                    kernel: &ring.kernel,
                    peer_sleeps: receiver == Waits::Sleeps,
                };
                let mut p = Producer::new(capacity);
                for (m, &len) in lens.iter().enumerate() {
                    let rec = record_len(len).unwrap();
                    let pos = wait_as(&ring, &ring.control.tx.0, sender, || {
                        p.reserve(&ring.control, &ring.data, &waker, rec).unwrap()
                    });
                    for i in 0..(len / 8) as usize {
                        ring.data
                            .store_word(pos + RECORD_HEADER + 8 * i as u64, payload(m, i));
                    }
                    p.commit(&ring.control, &ring.data, &waker, pos, len);
                }
            })
        };
        let waker = Told {
            kernel: &ring.kernel,
            peer_sleeps: sender == Waits::Sleeps,
        };
        let mut c = Consumer::new(capacity);
        for (m, &len) in lens.iter().enumerate() {
            let found = wait_as(&ring, &ring.control.rx.0, receiver, || {
                c.next(&ring.control, &ring.data, &waker).unwrap()
            });
            assert_eq!(found.len, len, "message {m}: length");
            for i in 0..(len / 8) as usize {
                let word = ring.data.payload(found.offset + 8 * i as u64);
                assert_eq!(word, payload(m, i), "message {m}: payload word {i}");
            }
            c.release(&ring.control, &waker, found.rec);
        }
        sending.join().unwrap();
        // Nothing more was published.
        assert_eq!(c.next(&ring.control, &ring.data, &waker), Ok(None));
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

#[test]
fn a_side_skips_the_wake_up_only_for_a_peer_that_never_sleeps() {
    // The ring fills at every message, so the side that sleeps must be woken each time.
    model_with(32, &[16, 16, 8], Waits::Sleeps, Waits::Spins);
    model_with(32, &[16, 16, 8], Waits::Spins, Waits::Sleeps);
}

/// The check above can fail: a receiver that sleeps although the sender was told it
/// spins loses a wake-up, and loom reports the deadlock ("deadlock; threads = ...").
/// Loom then panics again while unwinding, which aborts the whole test binary, so this
/// runs by hand: `... --test ring_loom -- --ignored the_model_finds`.
#[test]
#[ignore = "aborts the test binary when loom finds the deadlock it is meant to find"]
fn the_model_finds_the_lost_wake_up_of_a_receiver_that_sleeps_after_saying_it_spins() {
    model_with(32, &[16, 16, 8], Waits::Sleeps, Waits::SleepsButSaysItSpins);
}

/// A multi-producer ring of two lanes: each a control and a data area, plus the
/// receiver's doorbell.
struct Lanes {
    lanes: Vec<(Control, Words)>,
    doorbell: Sleeper,
    kernel: Kernel,
}

impl Lanes {
    fn new(count: usize, capacity: u64) -> Lanes {
        Lanes {
            lanes: (0..count)
                .map(|_| {
                    let words = (0..capacity / 8).map(|_| AtomicU64::new(0)).collect();
                    (Control::new(), Words(words))
                })
                .collect(),
            doorbell: Sleeper::new(),
            kernel: Kernel {
                lock: Mutex::new(()),
                queue: Condvar::new(),
            },
        }
    }

    /// Sends `lens` on lane `lane` (sleeping on the lane's sender sleeper when full),
    /// with payload words that name the lane and the message.
    fn send(&self, lane: usize, p: &mut Producer, first: usize, lens: &[u64]) {
        let (control, data) = &self.lanes[lane];
        let bell = fanin::Doorbell {
            bell: &self.doorbell,
            futex: &self.kernel,
        };
        for (k, &len) in lens.iter().enumerate() {
            let m = first + k;
            let rec = record_len(len).unwrap();
            let pos = loop {
                if let Some(pos) = p.reserve(control, data, &bell, rec).unwrap() {
                    break pos;
                }
                let seq = control.tx.0.announce();
                if let Some(pos) = p.reserve(control, data, &bell, rec).unwrap() {
                    control.tx.0.retire();
                    break pos;
                }
                self.kernel.wait(&control.tx.0.seq, seq);
                control.tx.0.retire();
            };
            for i in 0..(len / 8) as usize {
                data.store_word(pos + RECORD_HEADER + 8 * i as u64, lane_payload(lane, m, i));
            }
            p.commit(control, data, &bell, pos, len);
        }
    }

    /// Looks at every lane once, from `start`: the first message found, with its lane.
    fn poll(&self, consumers: &mut [Consumer], start: usize) -> Option<(usize, protocol::Found)> {
        let n = self.lanes.len();
        (0..n).map(|k| (start + k) % n).find_map(|i| {
            let (control, data) = &self.lanes[i];
            consumers[i]
                .next(control, data, &self.kernel)
                .unwrap()
                .map(|f| (i, f))
        })
    }

    /// Receives `total` messages, sleeping on the doorbell when every lane is empty, and
    /// checks each lane's messages arrive whole and in order with the lengths `lens[lane]`.
    fn receive(&self, lens: &[&[u64]]) -> Vec<Consumer> {
        let capacity = self.lanes[0].1.0.len() as u64 * 8;
        let mut consumers: Vec<Consumer> =
            self.lanes.iter().map(|_| Consumer::new(capacity)).collect();
        let mut seen = vec![0usize; self.lanes.len()];
        let total: usize = lens.iter().map(|l| l.len()).sum();
        let mut start = 0;
        for _ in 0..total {
            let (lane, found) = loop {
                if let Some(hit) = self.poll(&mut consumers, start) {
                    break hit;
                }
                let seq = fanin::announce(&self.doorbell, self.lanes.iter().map(|l| &l.0));
                if let Some(hit) = self.poll(&mut consumers, start) {
                    fanin::retire(self.lanes.iter().map(|l| &l.0));
                    break hit;
                }
                self.kernel.wait(&self.doorbell.seq, seq);
                fanin::retire(self.lanes.iter().map(|l| &l.0));
            };
            let m = seen[lane];
            assert_eq!(found.len, lens[lane][m], "lane {lane} message {m}: length");
            for i in 0..(found.len / 8) as usize {
                let word = self.lanes[lane].1.payload(found.offset + 8 * i as u64);
                assert_eq!(
                    word,
                    lane_payload(lane, m, i),
                    "lane {lane} message {m}: word {i}"
                );
            }
            consumers[lane].release(&self.lanes[lane].0, &self.kernel, found.rec);
            seen[lane] += 1;
            start = (lane + 1) % self.lanes.len();
        }
        consumers
    }
}

/// Payload word `i` of message `m` on lane `lane`.
fn lane_payload(lane: usize, m: usize, i: usize) -> u64 {
    0x10_0000 * (lane as u64 + 1) + payload(m, i)
}

#[test]
fn two_senders_messages_arrive_whole_in_order_per_sender_and_no_wake_up_is_lost() {
    // Lane 0 wraps (a pad, then a record that needs the first one's room back); lane 1
    // sends one message. The receiver sleeps on the doorbell whenever both are empty.
    const LENS: [&[u64]; 2] = [&[8, 16], &[0]];
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let ring = Arc::new(Lanes::new(2, 32));
        let senders: Vec<_> = (0..2)
            .map(|lane| {
                let ring = ring.clone();
                loom::thread::spawn(move || {
                    ring.send(lane, &mut Producer::new(32), 0, LENS[lane]);
                })
            })
            .collect();
        let mut consumers = ring.receive(&LENS);
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(
            ring.poll(&mut consumers, 0),
            None,
            "nothing more was published"
        );
    });
}

#[test]
fn a_sender_taking_over_a_lane_resumes_after_the_last_whole_message() {
    // The first sender publishes one message, then reserves and half-writes a second
    // and stops (dies); its lock passing to the next sender is modelled by a join. The
    // next sender finds the end of the lane with `resume` while the receiver may be
    // reading the first message, and sends its own: the receiver gets exactly the two
    // published messages, in order, never the half-written one.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let ring = Arc::new(Lanes::new(1, 32));
        let first = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let mut p = Producer::new(32);
                ring.send(0, &mut p, 0, &[8]);
                let (control, data) = &ring.lanes[0];
                let bell = fanin::Doorbell {
                    bell: &ring.doorbell,
                    futex: &ring.kernel,
                };
                // Reserved and half written, never committed: a header-shaped payload
                // word, too, which must not be taken for a record.
                if let Some(pos) = p.reserve(control, data, &bell, 16).unwrap() {
                    data.store_word(pos + RECORD_HEADER, 0xdead);
                }
            })
        };
        let receiver = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                ring.receive(&[&[8, 0]]);
            })
        };
        first.join().unwrap();
        let (control, data) = &ring.lanes[0];
        let mut p = fanin::resume(control, data, 32).unwrap();
        ring.send(0, &mut p, 1, &[0]);
        receiver.join().unwrap();
    });
}
