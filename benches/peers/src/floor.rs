//! The two floors of `ipcx bench`, reimplemented line for line from
//! `crates/ipcx-cli/src/bench/shm.rs` (the bench's module is private to the `ipcx`
//! binary, so it cannot be linked here): a cache line bounced between the two processes
//! (the busy floor) and a futex word (the blocking floor). Both live on the first word of
//! a sealed memfd that this process creates and hands to the peer as its stdin.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipcx::shm::Region;
use ipcx::shm::memfd::{Memfd, Seals};
use rustix::io::Errno;
use rustix::thread::futex;

use crate::Fallible;
use crate::measure::{PING, Port, QUIT, spin};

/// The memfd size the floors need: one word, on a page of its own.
pub const FLOOR_SIZE: usize = 4096;

/// How long a busy wait may see no change before the peer is taken for dead.
const STALL: Duration = Duration::from_secs(10);

/// Creates the floor's memfd, sealed against shrinking, and maps it. Returns the mapping
/// and a descriptor to hand to the peer.
pub fn create(name: &str) -> Fallible<(Region, OwnedFd)> {
    let memfd = Memfd::create(name, FLOOR_SIZE)?;
    memfd.seal(Seals::SHRINK)?;
    let region = memfd.map()?;
    Ok((region, memfd.into_fd()))
}

/// Adopts and maps the memfd the initiating side handed over, checking its seal and size.
pub fn adopt(fd: OwnedFd) -> Fallible<Region> {
    Ok(Memfd::from_peer(fd, Seals::SHRINK, FLOOR_SIZE)?.map()?)
}

/// Spins until `ready` returns true; fails after [`STALL`] without it (the clock is read
/// only every 4096 turns, as in the bench).
#[inline(always)]
fn spin_until(what: &str, mut ready: impl FnMut() -> bool) -> Fallible<()> {
    let mut spins: u32 = 0;
    let mut since: Option<Instant> = None;
    loop {
        if ready() {
            return Ok(());
        }
        spin();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) {
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > STALL {
                return Err(format!(
                    "{what}: no change in shared memory for {STALL:?}; the peer has stopped"
                )
                .into());
            }
        }
    }
}

fn word64(region: &Region) -> Fallible<&AtomicU64> {
    Ok(region.atomic_u64(0)?)
}

fn word32(region: &Region) -> Fallible<&AtomicU32> {
    Ok(region.atomic_u32(0)?)
}

/// The busy floor: one 64-bit word that the two sides take turns to change, so its cache
/// line moves between the two CPUs twice per round trip and nothing else happens.
pub struct CachelinePort {
    region: Region,
    /// The last value seen or written; both sides start at 0.
    last: u64,
}

impl CachelinePort {
    /// A port on the first word of `region` (which both sides map).
    pub fn new(region: Region) -> Self {
        CachelinePort { region, last: 0 }
    }

    fn wait(&mut self) -> Fallible<u8> {
        let word = word64(&self.region)?;
        let last = self.last;
        let mut seen = last;
        spin_until("cache-line ping-pong", || {
            seen = word.load(Ordering::Acquire);
            seen != last
        })?;
        self.last = seen;
        Ok(if seen == u64::MAX { QUIT } else { PING })
    }
}

impl Port for CachelinePort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        self.last = match msg.first() {
            Some(&QUIT) => u64::MAX,
            _ => (self.last + 1) % u64::MAX,
        };
        // Release pairs with the peer's Acquire load: nothing else is published, but the
        // ordering is what a real handoff would pay.
        word64(&self.region)?.store(self.last, Ordering::Release);
        Ok(())
    }

    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R> {
        let op = self.wait()?;
        Ok(look(&[op]))
    }

    fn echo(&mut self) -> Fallible<bool> {
        let op = self.wait()?;
        if op == QUIT {
            return Ok(false);
        }
        self.send(&[op])?;
        Ok(true)
    }

    fn carries_payload(&self) -> bool {
        false
    }
}

/// The blocking floor: one 32-bit futex word in shared memory. Each side changes the
/// word, wakes the other with `FUTEX_WAKE` (always: this is the raw cost of a wake-up),
/// and sleeps in `FUTEX_WAIT` until the word changes again.
pub struct FutexPort {
    region: Region,
    last: u32,
}

impl FutexPort {
    /// A port on the first word of `region` (which both sides map).
    pub fn new(region: Region) -> Self {
        FutexPort { region, last: 0 }
    }

    fn wait(&mut self) -> Fallible<u8> {
        let word = word32(&self.region)?;
        loop {
            let now = word.load(Ordering::Acquire);
            if now != self.last {
                self.last = now;
                return Ok(if now == u32::MAX { QUIT } else { PING });
            }
            // No timeout: arming one costs a timer per wait, which the floor must not
            // pay. A peer that dies leaves this wait to the watchdog.
            match futex::wait(word, futex::Flags::empty(), self.last, None) {
                // Woken, or the word changed before we slept: look again.
                Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(format!("futex wait: {e}").into()),
            }
        }
    }
}

impl Port for FutexPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        self.last = match msg.first() {
            Some(&QUIT) => u32::MAX,
            _ => (self.last + 1) % u32::MAX,
        };
        let word = word32(&self.region)?;
        word.store(self.last, Ordering::Release);
        // Shared (not FUTEX_PRIVATE): the waiter is in another process.
        futex::wake(word, futex::Flags::empty(), 1).map_err(|e| format!("futex wake: {e}"))?;
        Ok(())
    }

    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R> {
        let op = self.wait()?;
        Ok(look(&[op]))
    }

    fn echo(&mut self) -> Fallible<bool> {
        let op = self.wait()?;
        if op == QUIT {
            return Ok(false);
        }
        self.send(&[op])?;
        Ok(true)
    }

    fn carries_payload(&self) -> bool {
        false
    }
}
