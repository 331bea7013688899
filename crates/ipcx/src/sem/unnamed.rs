//! Unnamed process-shared POSIX semaphores (`sem_init` with `pshared`), placed in a shared
//! memory [`Region`].
//!
//! An unnamed semaphore has no name to leak: it lives in memory the processes already
//! share (a [`posix`](crate::shm::posix) object, a [`memfd`](crate::shm::memfd) or a
//! [`System V`](crate::shm::sysv) segment) and goes with it. One process
//! [`init`](UnnamedSemaphore::init)s it at an offset; the others
//! [`attach`](UnnamedSemaphore::attach) at the same offset.
//!
//! ipcx puts a state word in front of the `sem_t` ([`UnnamedSemaphore::SIZE`] bytes in
//! all, 8-byte aligned): the initialiser claims the slot, calls `sem_init`, then
//! publishes it. An attacher waits for the publication, so it never uses a semaphore
//! that is not initialised yet, and if the initialiser died half-way it gets a clear
//! "not initialised" error after its timeout (reliability item 3), never a wait on
//! garbage. Two initialisers of one slot: the second fails with
//! [`ErrorKind::AlreadyExists`].
//!
//! ```
//! use ipcx::sem::unnamed::UnnamedSemaphore;
//! use ipcx::shm::memfd::Memfd;
//!
//! let memfd = Memfd::create("sems", 4096)?;
//! let region = memfd.map()?;
//! let sem = UnnamedSemaphore::init(&region, 0, 1)?;
//! sem.wait()?;                 // take it
//! assert!(sem.try_wait().is_err());
//! sem.post()?;                 // give it back
//! // Another process, with the same memory mapped:
//! let other = UnnamedSemaphore::attach(&region, 0)?;
//! assert_eq!(other.value()?, 1);
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! **Trust.** The semaphore's state is ordinary memory that every process mapping the
//! region writable can change. A process that scribbles over it makes counts wrong, and
//! can make the C library abort the processes that wait on it (glibc reads its futex
//! flags from there and treats an unexpected futex error as fatal). Memory safety holds
//! either way, but use unnamed semaphores only among cooperating processes; with an
//! untrusted peer use a System V set ([`sem::sysv`](crate::sem::sysv)), whose state the
//! kernel holds.
//!
//! The semaphore is never destroyed with `sem_destroy` (on Linux a no-op): other processes
//! may still use it, and it disappears with the memory.
//!
//! # References
//! - [sem_init(3)](https://man7.org/linux/man-pages/man3/sem_init.3.html),
//!   [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::sem::posix::{post, wait_until};
use crate::shm::Region;
use crate::sys::sem::{ShmSem, sem_value_max, value};
use crate::wait::{Backoff, Deadline};

/// The state word before the semaphore: nobody has touched the slot.
const EMPTY: u32 = 0;
/// An initialiser has claimed the slot and is inside `sem_init`.
const INITIALISING: u32 = 0x4950_0001;
/// The semaphore is initialised and published ("IPSM").
const READY: u32 = 0x4950_534d;

/// Where the `sem_t` starts, after the state word.
const SEM_OFFSET: usize = 8;

/// How long [`UnnamedSemaphore::attach`] waits for the initialiser to publish.
pub const DEFAULT_INIT_WAIT: Duration = Duration::from_secs(1);

/// A process-shared semaphore inside a [`Region`], borrowed from it.
pub struct UnnamedSemaphore<'r> {
    state: &'r AtomicU32,
    sem: ShmSem<'r>,
    label: SemLabel,
}

/// Names a semaphore in error messages by its offset; formatted only when printed, so
/// attaching costs no allocation.
#[derive(Clone, Copy, Debug)]
struct SemLabel {
    offset: usize,
}

impl std::fmt::Display for SemLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unnamed semaphore at offset {}", self.offset)
    }
}

impl<'r> UnnamedSemaphore<'r> {
    /// Bytes the semaphore occupies in a region: the state word and the `sem_t`.
    pub const SIZE: usize = (SEM_OFFSET + size_of::<libc::sem_t>()).next_multiple_of(8);
    /// The alignment its offset needs.
    pub const ALIGN: usize = 8;

    /// Initialises a semaphore with `value` at `offset` and publishes it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the slot is out of bounds or misaligned, or `value`
    /// exceeds `SEM_VALUE_MAX`; [`ErrorKind::AlreadyExists`] if the slot was initialised
    /// (or claimed) before; [`ErrorKind::Corrupt`] if it holds neither zeroes nor a
    /// semaphore.
    #[doc(alias = "sem_init")]
    pub fn init(region: &'r Region, offset: usize, value: u32) -> Result<UnnamedSemaphore<'r>> {
        let slot = UnnamedSemaphore::locate(region, offset)?;
        let max = sem_value_max();
        if value > max {
            return Err(Error::new("sem_init", ErrorKind::InvalidInput)
                .with_object(slot.label)
                .with_hint(format!(
                    "initial value {value} exceeds SEM_VALUE_MAX ({max})"
                )));
        }
        // Acquire pairs with nothing yet published; the claim only has to be exclusive.
        match slot
            .state
            .compare_exchange(EMPTY, INITIALISING, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(READY | INITIALISING) => {
                return Err(Error::new("sem_init", ErrorKind::AlreadyExists)
                    .with_object(slot.label)
                    .with_hint("this slot already holds a semaphore; attach to it instead"));
            }
            Err(other) => return Err(slot.corrupt(other)),
        }
        if let Err(e) = slot.sem.init(value) {
            slot.state.store(EMPTY, Ordering::Release);
            return Err(Error::from_errno("sem_init", e.raw_os_error()).with_object(slot.label));
        }
        // Release pairs with the Acquire load in `attach`: whoever sees READY also sees
        // everything `sem_init` wrote.
        slot.state.store(READY, Ordering::Release);
        Ok(slot)
    }

    /// Attaches to the semaphore another process initialised at `offset`, waiting up to
    /// [`DEFAULT_INIT_WAIT`] for it to be published.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] ("not initialised") if it is not published in time;
    /// [`ErrorKind::Corrupt`] if the slot holds something else.
    pub fn attach(region: &'r Region, offset: usize) -> Result<UnnamedSemaphore<'r>> {
        UnnamedSemaphore::attach_timeout(region, offset, DEFAULT_INIT_WAIT)
    }

    /// As [`attach`](UnnamedSemaphore::attach), waiting up to `timeout`.
    pub fn attach_timeout(
        region: &'r Region,
        offset: usize,
        timeout: Duration,
    ) -> Result<UnnamedSemaphore<'r>> {
        let slot = UnnamedSemaphore::locate(region, offset)?;
        let deadline = Deadline::after(timeout);
        let mut backoff = Backoff::new();
        loop {
            // Acquire pairs with the Release store of READY in `init`.
            match slot.state.load(Ordering::Acquire) {
                READY => return Ok(slot),
                state @ (EMPTY | INITIALISING) => {
                    if let Err(e) = backoff.sleep(deadline, "sem attach", &slot.label) {
                        let why = if state == EMPTY {
                            "no process has initialised it"
                        } else {
                            "its initialiser started but never finished: it may have died; \
                             re-create the shared memory"
                        };
                        return Err(
                            e.with_hint(format!("not initialised after {timeout:?}: {why}"))
                        );
                    }
                }
                other => return Err(slot.corrupt(other)),
            }
        }
    }

    fn locate(region: &'r Region, offset: usize) -> Result<UnnamedSemaphore<'r>> {
        let label = SemLabel { offset };
        let in_bounds = offset
            .checked_add(UnnamedSemaphore::SIZE)
            .is_some_and(|end| end <= region.len());
        if !in_bounds || !offset.is_multiple_of(UnnamedSemaphore::ALIGN) {
            return Err(Error::new("sem_init", ErrorKind::InvalidInput)
                .with_object(label)
                .with_hint(format!(
                    "a semaphore needs {} bytes at an offset aligned to {} inside the {}-byte \
                     region",
                    UnnamedSemaphore::SIZE,
                    UnnamedSemaphore::ALIGN,
                    region.len()
                )));
        }
        Ok(UnnamedSemaphore {
            state: region.atomic_u32(offset)?,
            sem: region.sem_at(offset + SEM_OFFSET)?,
            label,
        })
    }

    fn corrupt(&self, state: u32) -> Error {
        Error::new("sem attach", ErrorKind::Corrupt)
            .with_object(self.label)
            .with_hint(format!(
                "the state word is {state:#x}, not a semaphore ipcx initialised: the offset is \
                 wrong or another process overwrote it"
            ))
    }

    /// Takes the semaphore (decrements it), waiting as long as it takes.
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        self.wait_until(Deadline::Never)
    }

    /// Takes the semaphore if it can be taken now.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] if its value is 0.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<()> {
        self.wait_until(Deadline::Now)
    }

    /// Takes the semaphore, waiting at most `timeout`. Signals do not cut the wait short.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if it stays at 0.
    #[doc(alias = "sem_timedwait", alias = "sem_clockwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(Deadline::after(timeout))
    }

    fn wait_until(&self, deadline: Deadline) -> Result<()> {
        wait_until(&self.sem, deadline, &self.label)
    }

    /// Gives the semaphore back (increments it), waking one waiter.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] if it is at `SEM_VALUE_MAX`.
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
        post(&self.sem, &self.label)
    }

    /// The current value (0 while some process waits).
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> Result<u32> {
        value(&self.sem).map_err(|e| {
            Error::from_errno("sem_getvalue", e.raw_os_error()).with_object(self.label)
        })
    }
}

impl fmt::Debug for UnnamedSemaphore<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnnamedSemaphore")
            .field("object", &format_args!("{}", self.label))
            .finish()
    }
}
