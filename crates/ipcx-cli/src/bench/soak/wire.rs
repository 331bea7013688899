//! The soak's messages, and the checker that finds every lost, torn, duplicated or
//! reordered one.
//!
//! A message is a 32-byte header, all integers little-endian, then the payload:
//!
//! ```text
//! 0  magic "SOAK"   4  producer (u32)   8  sequence number (u64, from 0 per producer)
//! 16 payload length (u32)   20 flags (u32: 0 data, 1 end)   24 checksum (u64)
//! 32 payload
//! ```
//!
//! The checksum is FNV-1a 64 over the first 24 header bytes and the payload, so a
//! changed sequence number or length is caught as well as a changed byte. A data
//! payload's length and bytes are a pure function of (producer, sequence number), so
//! the checker also regenerates the payload and compares it whole. The last message of
//! a producer is an *end* message: its sequence number and its 8-byte payload are the
//! number of data messages sent before it.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

pub const HEADER: usize = 32;
const MAGIC: u32 = u32::from_le_bytes(*b"SOAK");
const FLAG_END: u32 = 1;
/// Gaps wider than this are counted, not tracked one by one (bounded memory).
const TRACK_MAX: u64 = 1 << 20;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// splitmix64: the seed of a message's size and bytes.
fn seed(producer: u32, seq: u64) -> u64 {
    let mut z = (u64::from(producer) << 48 ^ seq).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The payload bytes of a message: xorshift64* from its seed.
struct Bytes(u64);

impl Bytes {
    fn new(producer: u32, seq: u64) -> Bytes {
        Bytes(seed(producer, seq) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A data message's payload length, at most `max`: mostly small (0 to 256 bytes, some
/// empty), one in five anywhere up to `max`.
pub fn payload_len(producer: u32, seq: u64, max: usize) -> usize {
    let r = seed(producer, seq).rotate_left(17);
    let bound = match r % 16 {
        0 => 0,
        1..=3 => max,
        _ => max.min(256),
    };
    (r >> 8) as usize % (bound + 1)
}

fn header(out: &mut Vec<u8>, producer: u32, seq: u64, len: usize, flags: u32) {
    out.clear();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&producer.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
}

fn seal(out: &mut [u8]) {
    let sum = fnv(fnv(FNV_INIT, &out[..24]), &out[HEADER..]);
    out[24..32].copy_from_slice(&sum.to_le_bytes());
}

/// Writes data message `seq` of `producer` into `out` (payload at most `max` bytes).
pub fn data(out: &mut Vec<u8>, producer: u32, seq: u64, max: usize) {
    build(out, producer, seq, payload_len(producer, seq, max));
}

/// Writes data message `seq` of `producer` with a payload of `len` bytes.
fn build(out: &mut Vec<u8>, producer: u32, seq: u64, len: usize) {
    header(out, producer, seq, len, 0);
    out.extend_from_slice(&[0; 8]);
    let mut bytes = Bytes::new(producer, seq);
    while out.len() < HEADER + len {
        let word = bytes.next().to_le_bytes();
        let take = (HEADER + len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
    seal(out);
}

/// Writes the end message of `producer`, which sent `total` data messages.
pub fn end(out: &mut Vec<u8>, producer: u32, total: u64) {
    header(out, producer, total, 8, FLAG_END);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&total.to_le_bytes());
    seal(out);
}

/// What the checker knows of one producer.
#[derive(Debug, Default)]
struct Track {
    /// The next sequence number in order.
    expected: u64,
    /// Sequence numbers skipped over, not (yet) arrived.
    missing: BTreeSet<u64>,
    /// Skipped sequence numbers beyond [`TRACK_MAX`] in one gap, counted only.
    untracked: u64,
    /// Distinct data messages received whole.
    received: u64,
    duplicated: u64,
    reordered: u64,
    /// The producer's end message: how many it sent.
    end: Option<u64>,
}

/// One producer's tally, once the run is over.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    pub received: u64,
    pub bytes: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// The count the end message gave, if it came.
    pub end: Option<u64>,
}

/// Checks every message of a link against what its producers must have sent.
#[derive(Debug)]
pub struct Checker {
    tracks: HashMap<u32, Track>,
    bytes: HashMap<u32, u64>,
    /// Messages that were not whole: bad header, length, checksum or bytes.
    pub torn: u64,
    /// Why the first torn message was torn.
    pub first_torn: Option<String>,
    scratch: Vec<u8>,
}

impl Checker {
    /// A checker for the producers `ids`.
    pub fn new(ids: &[u32]) -> Checker {
        Checker {
            tracks: ids.iter().map(|&id| (id, Track::default())).collect(),
            bytes: HashMap::new(),
            torn: 0,
            first_torn: None,
            scratch: Vec::new(),
        }
    }

    fn tear(&mut self, why: String) {
        self.torn += 1;
        self.first_torn.get_or_insert(why);
    }

    /// Whether every producer's end message has come.
    pub fn all_ended(&self) -> bool {
        self.tracks.values().all(|t| t.end.is_some())
    }

    /// How far `producer`'s messages are accounted for (received or known missing).
    pub fn accounted(&self, producer: u32) -> u64 {
        self.tracks.get(&producer).map_or(0, |t| t.expected)
    }

    /// Checks one message as received.
    pub fn check(&mut self, msg: &[u8]) {
        if msg.len() < HEADER {
            return self.tear(format!(
                "a message of {} bytes, shorter than the {HEADER}-byte header",
                msg.len()
            ));
        }
        let u32_at = |i: usize| u32::from_le_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&msg[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let (magic, producer, seq, len, flags, sum) = (
            u32_at(0),
            u32_at(4),
            u64_at(8),
            u32_at(16) as usize,
            u32_at(20),
            u64_at(24),
        );
        if magic != MAGIC {
            return self.tear(format!("magic {magic:#010x} is not \"SOAK\""));
        }
        if len != msg.len() - HEADER {
            return self.tear(format!(
                "producer {producer} seq {seq}: the header says {len} payload bytes, {} came",
                msg.len() - HEADER
            ));
        }
        if fnv(fnv(FNV_INIT, &msg[..24]), &msg[HEADER..]) != sum {
            return self.tear(format!("producer {producer} seq {seq}: checksum mismatch"));
        }
        if !self.tracks.contains_key(&producer) {
            return self.tear(format!("producer {producer} is not one of this link's"));
        }
        if flags == FLAG_END {
            let total = (len == 8).then(|| u64_at(HEADER)).filter(|&t| t == seq);
            match total {
                Some(total) => {
                    if let Some(t) = self.tracks.get_mut(&producer) {
                        t.end = Some(total);
                    }
                }
                None => self.tear(format!("producer {producer}: a malformed end message")),
            }
            return;
        }
        if flags != 0 {
            return self.tear(format!("producer {producer} seq {seq}: flags {flags:#x}"));
        }
        // The bytes themselves, regenerated from (producer, seq).
        let mut expect = std::mem::take(&mut self.scratch);
        build(&mut expect, producer, seq, len);
        let whole = expect.len() == msg.len() && expect[HEADER..] == msg[HEADER..];
        self.scratch = expect;
        if !whole {
            return self.tear(format!(
                "producer {producer} seq {seq}: the payload is not the one sent (size {len})"
            ));
        }
        let Some(t) = self.tracks.get_mut(&producer) else {
            return;
        };
        let fresh = if seq == t.expected {
            t.expected += 1;
            true
        } else if seq > t.expected {
            let gap = seq - t.expected;
            if gap > TRACK_MAX || t.missing.len() as u64 > TRACK_MAX {
                t.untracked += gap;
            } else {
                t.missing.extend(t.expected..seq);
            }
            t.expected = seq + 1;
            true
        } else if t.missing.remove(&seq) {
            t.reordered += 1;
            true
        } else {
            t.duplicated += 1;
            false
        };
        if fresh {
            t.received += 1;
            *self.bytes.entry(producer).or_default() += len as u64;
        }
    }

    /// The tally of each producer.
    pub fn tallies(&self) -> HashMap<u32, Tally> {
        self.tracks
            .iter()
            .map(|(&id, t)| {
                (
                    id,
                    Tally {
                        received: t.received,
                        bytes: self.bytes.get(&id).copied().unwrap_or(0),
                        duplicated: t.duplicated,
                        reordered: t.reordered,
                        end: t.end,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(producer: u32, seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        data(&mut out, producer, seq, 4096);
        out
    }

    #[test]
    fn in_order_messages_are_counted_once() {
        let mut c = Checker::new(&[1, 2]);
        for seq in 0..100 {
            c.check(&msg(1, seq));
            c.check(&msg(2, seq));
        }
        let mut out = Vec::new();
        end(&mut out, 1, 100);
        c.check(&out);
        assert!(!c.all_ended());
        end(&mut out, 2, 100);
        c.check(&out);
        assert!(c.all_ended());
        let t = c.tallies();
        assert_eq!((t[&1].received, t[&1].end, c.torn), (100, Some(100), 0));
    }

    #[test]
    fn torn_duplicated_and_reordered_messages_are_told_apart() {
        let mut c = Checker::new(&[7]);
        c.check(&msg(7, 0));
        c.check(&msg(7, 0)); // duplicate
        c.check(&msg(7, 2)); // 1 skipped
        c.check(&msg(7, 1)); // ... arrives late
        let mut bad = msg(7, 3);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        c.check(&bad); // a flipped bit
        c.check(&bad[..HEADER - 1]); // cut short
        let mut seq = msg(7, 4);
        seq[8] ^= 1; // the sequence number changed: the checksum catches it
        c.check(&seq);
        c.check(&msg(9, 0)); // not a producer of this link
        let t = c.tallies();
        assert_eq!(
            (t[&7].received, t[&7].duplicated, t[&7].reordered),
            (3, 1, 1)
        );
        assert_eq!(c.torn, 4, "{:?}", c.first_torn);
    }

    #[test]
    fn sizes_vary_and_stay_under_the_maximum() {
        let sizes: Vec<usize> = (0..1000).map(|s| payload_len(3, s, 1000)).collect();
        assert!(sizes.iter().all(|&s| s <= 1000));
        assert!(sizes.contains(&0));
        assert!(sizes.iter().any(|&s| s > 256));
    }
}
