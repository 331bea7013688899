//! ipcx rings among the POSIX shared memory objects: told apart by their magic, and
//! judged alive or stale by each side's state word and liveness lock, never by a PID.
//!
//! The header is read from the object's file (not mapped), once, and trusted in nothing:
//! a field out of range makes the ring `corrupt`, listed but never called stale for
//! sure. The layout is version 1 of `ipcx::ring` (see its module docs, "Layout" and
//! "Peers that die or lie"):
//!
//! ```text
//! 0 magic "IXRG"  4 version  8 data offset  12 flags  16 capacity (u64)
//! 24 sender state  28 receiver state      (0 none, 1 open, 2 closed)
//! ```
//!
//! Each side, while it lives, holds an open-file-description lock on one byte of the
//! object (receiver byte 0, sender byte 1); the kernel drops it however the process
//! ends. A side whose state is "open" but whose byte nobody holds died without closing.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{Locks, Object, Procs, Users};

/// "IXRG" as the ring writes it (a native u32 of these little-endian bytes).
const MAGIC: u32 = u32::from_le_bytes(*b"IXRG");
const VERSION: u32 = 1;
const DATA_OFFSET: u64 = 512;
const MIN_CAPACITY: u64 = 64;
const MAX_CAPACITY: u64 = 1 << 31;
const HEADER_LEN: usize = 32;
const RECEIVER_BYTE: u64 = 0;
const SENDER_BYTE: u64 = 1;

/// The header fields, as read.
pub struct Header {
    version: u32,
    data_offset: u32,
    flags: u32,
    capacity: u64,
    sender: u32,
    receiver: u32,
}

/// The header of the object at `path` if it starts with the ring magic; `None` for
/// anything else, and for objects this user cannot read (listed as plain shm).
pub fn read_header(path: &Path) -> Option<Header> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let mut b = [0u8; HEADER_LEN];
    file.read_exact(&mut b).ok()?;
    let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if u32_at(0) != MAGIC {
        return None;
    }
    let mut cap = [0u8; 8];
    cap.copy_from_slice(&b[16..24]);
    Some(Header {
        version: u32_at(4),
        data_offset: u32_at(8),
        flags: u32_at(12),
        capacity: u64::from_ne_bytes(cap),
        sender: u32_at(24),
        receiver: u32_at(28),
    })
}

/// One side of a ring, as its state word and lock say.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Never claimed.
    None,
    /// Claimed, and its lock is held: its process runs.
    Alive,
    /// Claimed, never closed, and its lock is free: its process died.
    Dead,
    /// Closed cleanly.
    Closed,
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::None => "none",
            Side::Alive => "alive",
            Side::Dead => "dead",
            Side::Closed => "closed",
        }
    }
}

fn side(state: u32, locked: bool) -> Result<Side, u32> {
    match (state, locked) {
        // A lock without a claim: an opener between taking its byte and its state word.
        (0, true) | (1, true) => Ok(Side::Alive),
        (0, false) => Ok(Side::None),
        (1, false) => Ok(Side::Dead),
        (2, _) => Ok(Side::Closed),
        (other, _) => Err(other),
    }
}

/// The header flag of a multi-producer ring (`ipcx::ring::mpsc`).
const FLAG_MPSC: u32 = 1;

/// What the header says is wrong with it, if anything.
fn check(h: &Header, file_len: u64) -> Option<String> {
    if h.version != VERSION {
        return Some(format!(
            "layout version {} (this ipcx reads {VERSION})",
            h.version
        ));
    }
    if u64::from(h.data_offset) != DATA_OFFSET || h.flags != 0 {
        return Some(format!(
            "data offset {} and flags {:#x} (version 1 has {DATA_OFFSET} and 0)",
            h.data_offset, h.flags
        ));
    }
    let fits = DATA_OFFSET
        .checked_add(h.capacity)
        .is_some_and(|need| need <= file_len);
    if !h.capacity.is_power_of_two()
        || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&h.capacity)
        || !fits
    {
        return Some(format!(
            "capacity {} is not a power of two from {MIN_CAPACITY} to {MAX_CAPACITY} that fits \
             the {file_len}-byte object",
            h.capacity
        ));
    }
    None
}

/// The inventory entry of the ring `name` (`/NAME`).
pub fn object(
    name: String,
    meta: &std::fs::Metadata,
    h: Header,
    users: &Users,
    procs: &Procs,
    locks: &Locks,
) -> Object {
    let (dev, ino) = (meta.dev(), meta.ino());
    let using = procs.users_of(dev, ino);
    let mut obj = Object {
        count: Some(using),
        count_of: Some("users"),
        ..Object::of_file("ring", name, meta, users)
    };
    if h.flags == FLAG_MPSC {
        // A multi-producer ring: its geometry depends on its producer count, so only its
        // liveness is read here: any lock byte held on it (the receiver's or a
        // producer's) means a process uses it; no PID is consulted.
        let locked = locks.any(dev, ino);
        obj.state = Some(format!(
            "multi-producer; {}",
            if locked {
                "a lock is held"
            } else {
                "no lock held"
            }
        ));
        (obj.stale, obj.sure, obj.why) = verdict(
            locked,
            using,
            &[],
            "no side holds its lock and no process holds it open or mapped",
        );
        return obj;
    }
    if let Some(bad) = check(&h, meta.len()) {
        obj.state = Some("corrupt header".into());
        obj.stale = using == 0;
        obj.why = format!(
            "its header is not a valid ring's ({bad}); {}",
            if using == 0 {
                "no process holds it open or mapped".to_string()
            } else {
                format!("{using} processes hold it open or mapped")
            }
        );
        return obj;
    }
    let sides = (
        side(h.sender, locks.held(dev, ino, SENDER_BYTE)),
        side(h.receiver, locks.held(dev, ino, RECEIVER_BYTE)),
    );
    let (sender, receiver) = match sides {
        (Ok(s), Ok(r)) => (s, r),
        (Err(v), _) | (_, Err(v)) => {
            obj.state = Some("corrupt header".into());
            obj.stale = using == 0;
            obj.why = format!("a side's state word holds {v}, not 0, 1 or 2");
            return obj;
        }
    };
    obj.size = Some(h.capacity);
    obj.state = Some(format!(
        "sender {}, receiver {}",
        sender.word(),
        receiver.word()
    ));
    let alive = [sender, receiver].contains(&Side::Alive);
    let ended = [(sender, "sender"), (receiver, "receiver")]
        .into_iter()
        .filter(|(s, _)| matches!(s, Side::Dead | Side::Closed))
        .map(|(s, who)| match s {
            Side::Dead => format!("its {who} died without closing (its lock is free)"),
            _ => format!("its {who} closed"),
        })
        .collect::<Vec<_>>();
    (obj.stale, obj.sure, obj.why) = verdict(
        alive,
        using,
        &ended,
        "no side was ever claimed and no process holds it open or mapped (its creator may \
         mean it to wait for its sides)",
    );
    obj
}

/// Whether a ring is stale, whether that is sure, and why: from whether a side's lock
/// is held, how many processes hold it open or mapped, and which sides ended (died or
/// closed). With no side alive, nothing mapping it and no side ended, it is stale but
/// not surely (`unclaimed` says why).
fn verdict(alive: bool, using: u64, ended: &[String], unclaimed: &str) -> (bool, bool, String) {
    if alive {
        (
            false,
            false,
            "a side's liveness lock is held: its process runs".into(),
        )
    } else if using > 0 {
        (
            false,
            false,
            format!("no side holds its lock, but {using} processes hold it open or mapped"),
        )
    } else if !ended.is_empty() {
        (
            true,
            true,
            format!(
                "{}, and no process holds it open or mapped",
                ended.join(" and ")
            ),
        )
    } else {
        (true, false, unclaimed.into())
    }
}

/// Whether the ring `path` is in use now: a side's lock is held or a process holds it
/// open or mapped. Checked again just before `rm`/`gc` unlink it.
pub fn in_use(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let procs = Procs::scan();
    let locks = Locks::scan();
    let using = procs.users_of(meta.dev(), meta.ino());
    // Any lock byte: the two sides of a ring, and the producer slots of a
    // multi-producer ring.
    if locks.any(meta.dev(), meta.ino()) {
        return Some("a side's liveness lock is held: its process runs".into());
    }
    (using > 0).then(|| format!("{using} processes hold it open or mapped"))
}
