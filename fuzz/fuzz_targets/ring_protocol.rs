//! The ring's lock-free protocol (crates/ipcx/src/ring/protocol.rs), compiled here by
//! path as the loom model compiles it, over a data area in ordinary memory, driven by a
//! script of sends, receives and corruptions that the fuzzer writes.
//!
//! A corruption is what a peer that lies can do to shared memory: overwrite any word of
//! the data area (record headers included) or the receiver's counter. Properties:
//!
//! - the protocol only ever touches whole, aligned words inside the data area, and every
//!   message it finds lies inside it, corrupted or not (reliability item 9);
//! - every call returns: the receiver's `next` looks at most twice, so nothing spins;
//! - while nothing was corrupted: no fault is reported, every message arrives whole, once
//!   and in order, the receiver finds nothing only when every sent message was taken, and
//!   a ring that the receiver has drained always takes a message of the largest size
//!   (at worst after the receiver consumed a pad).
#![no_main]
#![allow(dead_code)]

mod sync {
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}

#[path = "../../crates/ipcx/src/ring/protocol.rs"]
mod protocol;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use protocol::{Consumer, Control, Data, Found, Producer, RECORD_HEADER, Sleeper, Wake};

/// The data area: `capacity` bytes as 64-bit words, like the mapping.
struct Words {
    words: Vec<AtomicU64>,
    capacity: u64,
}

impl Words {
    fn check(&self, pos: u64) -> usize {
        assert!(
            pos.is_multiple_of(8) && pos < self.capacity,
            "the protocol asked for the word at {pos} of a {}-byte data area",
            self.capacity
        );
        (pos / 8) as usize
    }

    fn byte(&self, at: u64) -> u8 {
        let w = self.words[(at / 8) as usize].load(Ordering::Relaxed);
        w.to_le_bytes()[(at % 8) as usize]
    }

    fn set_byte(&self, at: u64, b: u8) {
        let w = &self.words[(at / 8) as usize];
        let mut bytes = w.load(Ordering::Relaxed).to_le_bytes();
        bytes[(at % 8) as usize] = b;
        w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    }
}

impl Data for Words {
    fn load_word(&self, pos: u64) -> u64 {
        self.words[self.check(pos)].load(Ordering::Acquire)
    }
    fn store_word(&self, pos: u64, word: u64) {
        self.words[self.check(pos)].store(word, Ordering::Relaxed);
    }
    fn publish_word(&self, pos: u64, word: u64) {
        self.words[self.check(pos)].store(word, Ordering::Release);
    }
}

/// Nobody sleeps in a single-threaded script: wake-ups are only counted.
struct NoWake;

impl Wake for NoWake {
    fn wake(&self, _sleeper: &Sleeper) {}
}

/// The payload of the `seq`-th message: its bytes tell it from every other message.
fn payload(seq: u32, len: u64) -> Vec<u8> {
    let tag = seq.to_le_bytes();
    (0..len)
        .map(|i| tag[(i % 4) as usize].wrapping_add((i / 4) as u8))
        .collect()
}

struct Script<'a> {
    bytes: &'a [u8],
}

impl Script<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let mut v = [0u8; 8];
        for b in &mut v {
            *b = self.u8()?;
        }
        Some(u64::from_le_bytes(v))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script { bytes: data };
    let Some(shift) = script.u8() else {
        return;
    };
    // 16 bytes (the protocol's smallest ring) to 4 KiB.
    let capacity = 16u64 << (shift % 9);
    let max = protocol::max_payload(capacity);
    let area = Words {
        words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
        capacity,
    };
    let control = Control::new();
    let mut producer = Producer::new(capacity);
    let mut consumer = Consumer::new(capacity);
    let mut in_flight: VecDeque<(u32, u64)> = VecDeque::new();
    let mut seq = 0u32;
    let mut corrupted = false;

    let found_ok = |found: &Found| {
        assert!(found.offset.is_multiple_of(8), "{found:?}");
        assert!(
            found.offset + found.len <= capacity && found.rec >= RECORD_HEADER + found.len,
            "{found:?} is not inside a {capacity}-byte data area"
        );
    };

    while let Some(op) = script.u8() {
        match op % 4 {
            // Send a message of a length the script chooses.
            0 | 1 => {
                let Some(l) = script.u8() else { break };
                let len = if op & 0x80 != 0 {
                    max
                } else {
                    u64::from(l) % (max + 1)
                };
                let rec = protocol::record_len(len).expect("small lengths have records");
                let mut reserved = producer.reserve(&control, &area, &NoWake, rec);
                if reserved == Ok(None) && in_flight.is_empty() && !corrupted {
                    // Drained: at worst a pad stands in the way, which the receiver
                    // consumes, finding nothing after it.
                    assert_eq!(consumer.next(&control, &area, &NoWake), Ok(None));
                    reserved = producer.reserve(&control, &area, &NoWake, rec);
                    assert!(
                        matches!(reserved, Ok(Some(_))),
                        "a drained {capacity}-byte ring refused a {len}-byte message: {reserved:?}"
                    );
                }
                match reserved {
                    Ok(Some(pos)) => {
                        assert!(
                            pos.is_multiple_of(8) && pos + rec <= capacity,
                            "reserved {pos}+{rec}"
                        );
                        for (i, b) in payload(seq, len).into_iter().enumerate() {
                            area.set_byte(pos + RECORD_HEADER + i as u64, b);
                        }
                        producer.commit(&control, &area, &NoWake, pos, len);
                        in_flight.push_back((seq, len));
                        seq += 1;
                    }
                    Ok(None) => {}
                    Err(fault) => assert!(corrupted, "fault {fault:?} with nothing corrupted"),
                }
            }
            // Receive one message.
            2 => match consumer.next(&control, &area, &NoWake) {
                Ok(Some(found)) => {
                    found_ok(&found);
                    if !corrupted {
                        let (s, len) = in_flight.pop_front().expect("a message nobody sent");
                        assert_eq!(found.len, len, "message {s} has the wrong length");
                        let got: Vec<u8> = (0..len).map(|i| area.byte(found.offset + i)).collect();
                        assert_eq!(got, payload(s, len), "message {s} is torn");
                    }
                    consumer.release(&control, &NoWake, found.rec);
                }
                Ok(None) => assert!(
                    corrupted || in_flight.is_empty(),
                    "{} messages sent but not found",
                    in_flight.len()
                ),
                Err(fault) => assert!(corrupted, "fault {fault:?} with nothing corrupted"),
            },
            // A lying peer: overwrite a word of the data area, or the receiver's counter.
            _ => {
                let (Some(at), Some(value)) = (script.u8(), script.u64()) else {
                    break;
                };
                if op & 0x80 != 0 {
                    let value = if op & 0x40 != 0 {
                        value
                    } else {
                        value % (4 * capacity)
                    };
                    control.head.0.store(value, Ordering::Relaxed);
                } else {
                    let pos = (u64::from(at) * 8) % capacity;
                    // A word that looks like a record often: a tag and a small length.
                    let value = match op & 0x60 {
                        0x20 => (u64::from(protocol::TAG_MSG) << 32) | (value % (2 * capacity)),
                        0x40 => (u64::from(protocol::TAG_PAD) << 32) | (value % (2 * capacity)),
                        _ => value,
                    };
                    area.words[(pos / 8) as usize].store(value, Ordering::Relaxed);
                }
                corrupted = true;
            }
        }
    }
    // Whatever was not corrupted drains completely, in order.
    if !corrupted {
        while let Some((s, len)) = in_flight.pop_front() {
            let found = consumer
                .next(&control, &area, &NoWake)
                .expect("no fault without corruption")
                .unwrap_or_else(|| panic!("message {s} was lost"));
            found_ok(&found);
            assert_eq!(found.len, len);
            consumer.release(&control, &NoWake, found.rec);
        }
        assert_eq!(consumer.next(&control, &area, &NoWake), Ok(None));
    }
});
