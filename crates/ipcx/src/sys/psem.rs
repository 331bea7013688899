//! POSIX semaphore operations on a `sem_t` wherever it lives: inside a shared memory
//! mapping (unnamed, process-shared) or returned by `sem_open` (named).

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use rustix::io::{Errno, Result};

#[cfg(target_env = "gnu")]
unsafe extern "C" {
    /// `sem_clockwait(3)`, glibc 2.30 and later: `sem_timedwait` against a chosen clock.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

fn check(ret: libc::c_int) -> Result<()> {
    if ret == -1 {
        Err(Errno::from_raw_os_error(super::shm::errno()))
    } else {
        Ok(())
    }
}

/// A `sem_t` that stays valid and in place for `'a`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SemRef<'a> {
    sem: NonNull<libc::sem_t>,
    _borrow: PhantomData<&'a libc::sem_t>,
}

// SAFETY: POSIX semaphores are made to be used from any thread (and process) at once; every
// operation on them is atomic.
unsafe impl Send for SemRef<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for SemRef<'_> {}

impl<'a> SemRef<'a> {
    /// # Safety
    /// `sem` must point to `size_of::<sem_t>()` writable bytes, aligned for `sem_t`, that
    /// stay mapped at that address for `'a`. The bytes need not hold an initialised
    /// semaphore yet (only [`init`](SemRef::init) may be called until they do); a peer
    /// that scribbles over them can make the semaphore misbehave, but glibc only ever
    /// treats them as atomic integers, so that cannot become undefined behaviour here.
    pub(crate) unsafe fn new(sem: NonNull<libc::sem_t>) -> SemRef<'a> {
        SemRef {
            sem,
            _borrow: PhantomData,
        }
    }

    /// `sem_init(sem, 1, value)`: a process-shared semaphore.
    pub(crate) fn init(&self, value: u32) -> Result<()> {
        // SAFETY: `sem` is valid and writable for a `sem_t` (the constructor's contract).
        check(unsafe { libc::sem_init(self.sem.as_ptr(), 1, value) })
    }

    /// `sem_wait`; `EINTR` is returned to the caller, which owns the retry policy.
    pub(crate) fn wait(&self) -> Result<()> {
        // SAFETY: as in `init`; the semaphore was initialised (caller's protocol).
        check(unsafe { libc::sem_wait(self.sem.as_ptr()) })
    }

    /// `sem_trywait`: `EAGAIN` when the value is 0.
    pub(crate) fn try_wait(&self) -> Result<()> {
        // SAFETY: as in `wait`.
        check(unsafe { libc::sem_trywait(self.sem.as_ptr()) })
    }

    /// Waits at most `timeout`: `ETIMEDOUT` when it passes, `EINTR` on a signal.
    ///
    /// glibc's `sem_clockwait` measures against `CLOCK_MONOTONIC`, so a change of the
    /// wall clock cannot stretch or cut the wait; elsewhere `sem_timedwait` with
    /// `CLOCK_REALTIME` is the only choice, and callers re-check their own monotonic
    /// deadline after it returns.
    pub(crate) fn wait_for(&self, timeout: Duration) -> Result<()> {
        #[cfg(target_env = "gnu")]
        let clock = libc::CLOCK_MONOTONIC;
        #[cfg(not(target_env = "gnu"))]
        let clock = libc::CLOCK_REALTIME;
        let now = rustix::time::clock_gettime(if clock == libc::CLOCK_MONOTONIC {
            rustix::time::ClockId::Monotonic
        } else {
            rustix::time::ClockId::Realtime
        });
        let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
        let secs = (now.tv_sec as u64)
            .saturating_add(timeout.as_secs())
            .saturating_add(nanos / 1_000_000_000)
            .min(i64::MAX as u64 / 2);
        let abs = libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        };
        #[cfg(target_env = "gnu")]
        // SAFETY: as in `wait`; `abs` is a valid timespec that outlives the call.
        let ret = unsafe { sem_clockwait(self.sem.as_ptr(), clock, &abs) };
        #[cfg(not(target_env = "gnu"))]
        // SAFETY: as in `wait`; `abs` is a valid timespec that outlives the call.
        let ret = unsafe { libc::sem_timedwait(self.sem.as_ptr(), &abs) };
        check(ret)
    }

    /// `sem_post`: `EOVERFLOW` at `SEM_VALUE_MAX`.
    pub(crate) fn post(&self) -> Result<()> {
        // SAFETY: as in `wait`.
        check(unsafe { libc::sem_post(self.sem.as_ptr()) })
    }

    /// `sem_getvalue`.
    pub(crate) fn value(&self) -> Result<i32> {
        let mut value: libc::c_int = 0;
        // SAFETY: as in `wait`; `value` is a valid, writable `int`.
        check(unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut value) })?;
        Ok(value)
    }
}

/// `SEM_VALUE_MAX`: the largest value a POSIX semaphore can hold.
pub(crate) fn sem_value_max() -> u32 {
    // SAFETY: `sysconf` takes an integer and reads no memory of ours.
    let max = unsafe { libc::sysconf(libc::_SC_SEM_VALUE_MAX) };
    if max > 0 {
        u32::try_from(max).unwrap_or(i32::MAX as u32)
    } else {
        i32::MAX as u32
    }
}
