//! Links over shared memory that the bench builds itself: the busy-polling slot rings of
//! the `shm-atomic` row, and the two floors (a cache line bounced between two CPUs, and
//! a futex word).
//!
//! The bench creates a memfd, seals it against shrinking and hands it to the peer as its
//! stdin; the peer adopts it with [`Memfd::from_peer`], which checks the seal and the
//! size. Everything in it is reached through [`Region`]'s bounds-checked atomics and
//! copies, so this module needs no `unsafe`.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipcx::shm::Region;
use ipcx::shm::memfd::{Memfd, Seals};
use rustix::io::Errno;
use rustix::thread::futex;

use super::Fallible;
use super::port::{Carries, PING, Port, QUIT};

/// How long a busy wait or a futex wait may see no change before the peer is taken for
/// dead (it cannot tell us otherwise: shared memory has no end of file).
pub const STALL: Duration = Duration::from_secs(10);

/// Set when both processes share one CPU: spinning would then only burn the time slice
/// the other side needs, so busy waits yield instead.
static YIELD_WHEN_SPINNING: AtomicBool = AtomicBool::new(false);

/// Makes busy waits yield the CPU on every turn (for a machine with one usable CPU).
pub fn yield_when_spinning(on: bool) {
    YIELD_WHEN_SPINNING.store(on, Ordering::Relaxed);
}

/// Spins until `ready` returns true; fails after [`STALL`] without it.
#[inline(always)]
fn spin_until(what: &str, mut ready: impl FnMut() -> bool) -> Fallible<()> {
    let yields = YIELD_WHEN_SPINNING.load(Ordering::Relaxed);
    let mut spins: u32 = 0;
    let mut since: Option<Instant> = None;
    loop {
        if ready() {
            return Ok(());
        }
        if yields {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        spins = spins.wrapping_add(1);
        // Reading the clock costs more than a spin: look only now and then.
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

/// Creates a memfd of `size` bytes for a link, sealed against shrinking, and maps it.
/// Returns the mapping and a descriptor to hand to the peer.
pub fn create(name: &str, size: usize) -> Fallible<(Region, OwnedFd)> {
    let memfd = Memfd::create(name, size)?;
    memfd.seal(Seals::SHRINK)?;
    let region = memfd.map()?;
    Ok((region, memfd.into_fd()))
}

/// Adopts and maps the memfd the bench handed over, checking it has at least `size`
/// bytes.
pub fn adopt(fd: OwnedFd, size: usize) -> Fallible<Region> {
    Ok(Memfd::from_peer(fd, Seals::SHRINK, size)?.map()?)
}

/// The memfd size the floors need: one word, on a page of its own.
pub const FLOOR_SIZE: usize = 4096;

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

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        let word = word64(&self.region)?;
        let last = self.last;
        let mut seen = last;
        spin_until("cache-line ping-pong", || {
            seen = word.load(Ordering::Acquire);
            seen != last
        })?;
        self.last = seen;
        buf[0] = if seen == u64::MAX { QUIT } else { PING };
        Ok(1)
    }

    fn carries(&self) -> Carries {
        Carries::Signal
    }

    fn recv_buffer(&self, _largest: usize) -> usize {
        1
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

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        let word = word32(&self.region)?;
        loop {
            let now = word.load(Ordering::Acquire);
            if now != self.last {
                self.last = now;
                buf[0] = if now == u32::MAX { QUIT } else { PING };
                return Ok(1);
            }
            // No timeout: arming one costs a timer per wait, which the floor must not
            // pay. A peer that dies leaves this wait to the bench's watchdog.
            match futex::wait(word, futex::Flags::empty(), self.last, None) {
                // Woken, or the word changed before we slept: look again.
                Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(format!("futex wait: {e}").into()),
            }
        }
    }

    fn carries(&self) -> Carries {
        Carries::Signal
    }

    fn recv_buffer(&self, _largest: usize) -> usize {
        1
    }
}

/// The shape of the `shm-atomic` row's memory: two single-producer single-consumer
/// rings of fixed slots, one each way.
///
/// ```text
/// ring (one per direction, the bench's first):
///   0     u64 head: messages published by the producer (its own cache line)
///   64    u64 tail: messages taken by the consumer (its own cache line)
///   128   SLOTS slots of `stride` bytes: u64 length, then the payload
/// ```
///
/// The producer waits (spinning) while `head - tail == SLOTS`, writes a slot and
/// publishes it with a Release store of `head`; the consumer spins on an Acquire load of
/// `head`, copies the slot out, checks the length against its own maximum, and frees the
/// slot with a Release store of `tail`.
#[derive(Clone, Copy, Debug)]
pub struct RingLayout {
    /// The largest payload from the bench to the peer.
    pub max_out: usize,
    /// The largest payload from the peer to the bench.
    pub max_back: usize,
}

/// Slots in each ring.
const SLOTS: u64 = 8;
const HEAD: usize = 0;
const TAIL: usize = 64;
const SLOTS_AT: usize = 128;

impl RingLayout {
    fn stride(max: usize) -> usize {
        (8 + max).div_ceil(64) * 64
    }

    fn ring_size(max: usize) -> usize {
        SLOTS_AT + SLOTS as usize * Self::stride(max)
    }

    /// The memfd size for both rings.
    pub fn size(&self) -> usize {
        Self::ring_size(self.max_out) + Self::ring_size(self.max_back)
    }

    fn out_ring(&self) -> Ring {
        Ring {
            base: 0,
            max: self.max_out,
        }
    }

    fn back_ring(&self) -> Ring {
        Ring {
            base: Self::ring_size(self.max_out),
            max: self.max_back,
        }
    }
}

#[derive(Clone, Copy)]
struct Ring {
    base: usize,
    max: usize,
}

impl Ring {
    fn slot(&self, n: u64) -> usize {
        self.base + SLOTS_AT + (n % SLOTS) as usize * RingLayout::stride(self.max)
    }
}

/// One side of the `shm-atomic` link: produces on one ring, consumes the other.
pub struct RingPort {
    region: Region,
    out: Ring,
    back: Ring,
    /// What this side has published / taken, and the last value it read of the other
    /// side's counter (so it reads the other side's cache line only when it must).
    sent: u64,
    seen_tail: u64,
    taken: u64,
    seen_head: u64,
}

impl RingPort {
    /// The bench's side: sends on the out ring, receives on the back ring.
    pub fn bench_side(region: Region, layout: RingLayout) -> Self {
        Self::new(region, layout.out_ring(), layout.back_ring())
    }

    /// The peer's side: the other way round.
    pub fn peer_side(region: Region, layout: RingLayout) -> Self {
        Self::new(region, layout.back_ring(), layout.out_ring())
    }

    fn new(region: Region, out: Ring, back: Ring) -> Self {
        RingPort {
            region,
            out,
            back,
            sent: 0,
            seen_tail: 0,
            taken: 0,
            seen_head: 0,
        }
    }
}

impl Port for RingPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let ring = self.out;
        if msg.len() > ring.max {
            return Err(format!(
                "a {}-byte message does not fit the {}-byte slots",
                msg.len(),
                ring.max
            )
            .into());
        }
        let sent = self.sent;
        if sent - self.seen_tail >= SLOTS {
            let tail = self.region.atomic_u64(ring.base + TAIL)?;
            let mut seen = self.seen_tail;
            // Acquire pairs with the consumer's Release store of `tail`: the slot we are
            // about to overwrite has been copied out.
            spin_until("shm-atomic send (ring full)", || {
                seen = tail.load(Ordering::Acquire);
                sent - seen < SLOTS
            })?;
            self.seen_tail = seen;
        }
        let slot = ring.slot(sent);
        self.region.store(slot, &(msg.len() as u64))?;
        self.region.write(slot + 8, msg)?;
        self.sent = sent + 1;
        // Release pairs with the consumer's Acquire load of `head`: the slot's length
        // and payload are visible before the new head is.
        self.region
            .atomic_u64(ring.base + HEAD)?
            .store(self.sent, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        let ring = self.back;
        let taken = self.taken;
        if self.seen_head <= taken {
            let head = self.region.atomic_u64(ring.base + HEAD)?;
            let mut seen = self.seen_head;
            spin_until("shm-atomic recv", || {
                seen = head.load(Ordering::Acquire);
                seen > taken
            })?;
            self.seen_head = seen;
        }
        let slot = ring.slot(taken);
        // Read the length once, then check the copy (the peer could change the slot).
        let len = self.region.load::<u64>(slot)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= ring.max && l <= buf.len())
            .ok_or_else(|| {
                format!(
                    "corrupt ring: a slot announces {len} bytes; slots hold {} and the buffer {}",
                    ring.max,
                    buf.len()
                )
            })?;
        self.region.read(slot + 8, &mut buf[..len])?;
        self.taken = taken + 1;
        self.region
            .atomic_u64(ring.base + TAIL)?
            .store(self.taken, Ordering::Release);
        Ok(len)
    }

    fn carries(&self) -> Carries {
        Carries::Bytes { max: self.out.max }
    }

    fn recv_buffer(&self, _largest: usize) -> usize {
        self.back.max
    }
}
