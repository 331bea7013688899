//! POSIX semaphores (`sem_*`) and System V semaphore sets (`sem*`), which no safe crate
//! covers.
//!
//! POSIX: [`NamedSem`] owns what `sem_open` returned and closes it on drop. The
//! operations are generic over [`LiveSem`], so a semaphore placed in shared memory with
//! `sem_init` (the unnamed, process-shared kind) can use the same audited calls.
//!
//! System V: thin wrappers that take the set id and Rust slices; the callers above
//! validate indexes and lengths, and these functions check again whatever memory safety
//! depends on.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::Duration;

use libc::{c_int, c_uint, c_ushort};
use rustix::io::Errno;

/// The errno of the call that just failed (`EINVAL` if, impossibly, there is none).
fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL),
    )
}

/// Turns a C `-1 and errno` result into a `Result`.
fn check(rc: c_int) -> rustix::io::Result<c_int> {
    if rc == -1 { Err(last_errno()) } else { Ok(rc) }
}

// ---------------------------------------------------------------------------------------
// POSIX semaphores

/// A semaphore that the `sem_*` calls may be applied to.
///
/// # Safety
///
/// [`LiveSem::sem_ptr`] must return a pointer to `size_of::<sem_t>()` bytes, aligned for
/// `sem_t`, that stay mapped for as long as the `&self` borrow lasts, and that were
/// initialised as a semaphore (by `sem_open` or `sem_init`). The semaphore may be shared
/// with other threads and processes: every `sem_*` call used here is thread-safe and
/// process-safe by POSIX.
///
/// A process sharing the memory can overwrite those bytes at any time. The C library
/// only ever reads and writes them as integers inside the `sem_t` (a count, a waiter
/// count, a futex word, flags) and never follows them as pointers or sizes, so garbage
/// there cannot make a call touch memory outside the `sem_t`: memory safety holds.
/// It is not harmless, though. Besides wrong counts, glibc takes the futex flags of
/// every wait and wake from the `sem_t`'s `private` word; a value there that it does not
/// expect makes `futex` fail with an error glibc treats as impossible, and glibc then
/// calls `futex_fatal_error()`, which prints "The futex facility returned an unexpected
/// error code" and aborts the process. So any process that can write the semaphore's
/// memory (or open its file, `/dev/shm/sem.NAME`) can crash every process that uses it.
/// An abort is a crash, not undefined behaviour; see the module docs of
/// `crate::sem::posix` for what that means for untrusted peers.
pub(crate) unsafe trait LiveSem {
    /// The semaphore.
    fn sem_ptr(&self) -> NonNull<libc::sem_t>;
}

/// `sem_wait`: one attempt; `EINTR` is returned to the caller, who retries.
pub(crate) fn wait(sem: &impl LiveSem) -> rustix::io::Result<()> {
    // SAFETY:
    // - `LiveSem` guarantees the pointer names an initialised, live semaphore for the
    //   duration of the borrow, which covers the call.
    check(unsafe { libc::sem_wait(sem.sem_ptr().as_ptr()) }).map(drop)
}

/// `sem_trywait`: `EAGAIN` when the value is 0.
pub(crate) fn try_wait(sem: &impl LiveSem) -> rustix::io::Result<()> {
    // SAFETY:
    // - `LiveSem` guarantees the pointer names an initialised, live semaphore for the
    //   duration of the borrow, which covers the call.
    check(unsafe { libc::sem_trywait(sem.sem_ptr().as_ptr()) }).map(drop)
}

/// `sem_timedwait` until the absolute `CLOCK_REALTIME` time `abs`.
pub(crate) fn timed_wait_realtime(
    sem: &impl LiveSem,
    abs: &libc::timespec,
) -> rustix::io::Result<()> {
    // SAFETY:
    // - `LiveSem` guarantees the pointer names an initialised, live semaphore for the
    //   duration of the borrow, which covers the call;
    // - `abs` is a reference, so it points to a valid `timespec` during the call.
    check(unsafe { libc::sem_timedwait(sem.sem_ptr().as_ptr(), abs) }).map(drop)
}

/// The signature of `sem_clockwait(3)` (glibc 2.30 and later).
type SemClockwait =
    unsafe extern "C" fn(*mut libc::sem_t, libc::clockid_t, *const libc::timespec) -> c_int;

/// `sem_clockwait`, looked up at run time, because the `libc` crate does not bind it and
/// older C libraries (glibc before 2.30, musl) lack it. `None` when it is missing.
fn sem_clockwait_fn() -> Option<SemClockwait> {
    static FN: OnceLock<Option<SemClockwait>> = OnceLock::new();
    *FN.get_or_init(|| {
        // SAFETY:
        // - the symbol name is a NUL-terminated literal;
        // - `RTLD_DEFAULT` searches the objects already loaded, which is always valid.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sem_clockwait".as_ptr()) };
        if sym.is_null() {
            return None;
        }
        // SAFETY:
        // - a non-null result is the address of the C library's `sem_clockwait`, whose
        //   documented prototype is `int sem_clockwait(sem_t *, clockid_t, const struct
        //   timespec *)`, exactly `SemClockwait` (the `timespec` is the C library's
        //   default one, as `libc::timespec` is);
        // - function and data pointers have the same size and representation on every
        //   platform Linux runs on, as `dlsym` itself presumes.
        Some(unsafe { std::mem::transmute::<*mut libc::c_void, SemClockwait>(sym) })
    })
}

/// Whether the C library has `sem_clockwait`, so timed waits can use `CLOCK_MONOTONIC`.
pub(crate) fn has_clockwait() -> bool {
    sem_clockwait_fn().is_some()
}

/// `sem_clockwait(CLOCK_MONOTONIC)` until the absolute monotonic time `abs`; `ENOSYS`
/// if the C library has no `sem_clockwait`.
pub(crate) fn clock_wait_monotonic(
    sem: &impl LiveSem,
    abs: &libc::timespec,
) -> rustix::io::Result<()> {
    let Some(clockwait) = sem_clockwait_fn() else {
        return Err(Errno::NOSYS);
    };
    // SAFETY:
    // - `clockwait` is the C library's `sem_clockwait` (see `sem_clockwait_fn`);
    // - `LiveSem` guarantees the pointer names an initialised, live semaphore for the
    //   duration of the borrow, which covers the call;
    // - `abs` is a reference, so it points to a valid `timespec` during the call.
    check(unsafe { clockwait(sem.sem_ptr().as_ptr(), libc::CLOCK_MONOTONIC, abs) }).map(drop)
}

/// `sem_post`: `EOVERFLOW` when the value is already `SEM_VALUE_MAX`.
pub(crate) fn post(sem: &impl LiveSem) -> rustix::io::Result<()> {
    // SAFETY:
    // - `LiveSem` guarantees the pointer names an initialised, live semaphore for the
    //   duration of the borrow, which covers the call.
    check(unsafe { libc::sem_post(sem.sem_ptr().as_ptr()) }).map(drop)
}

/// `sem_getvalue`: the current value (never negative on Linux).
pub(crate) fn value(sem: &impl LiveSem) -> rustix::io::Result<u32> {
    let mut value: c_int = 0;
    // SAFETY:
    // - `LiveSem` guarantees the pointer names an initialised, live semaphore for the
    //   duration of the borrow, which covers the call;
    // - `value` is a local `c_int` the call writes.
    check(unsafe { libc::sem_getvalue(sem.sem_ptr().as_ptr(), &mut value) })?;
    // Linux reports 0, not a negative count of waiters, when the semaphore is taken.
    Ok(u32::try_from(value).unwrap_or(0))
}

/// `SEM_VALUE_MAX`, the largest value of a POSIX semaphore, as the C library reports it
/// (`sysconf(_SC_SEM_VALUE_MAX)`; `INT_MAX` on glibc and musl).
pub(crate) fn sem_value_max() -> u32 {
    // SAFETY: `sysconf` only reads a configuration value.
    let max = unsafe { libc::sysconf(libc::_SC_SEM_VALUE_MAX) };
    u32::try_from(max).unwrap_or(i32::MAX as u32)
}

/// A process-shared semaphore inside a shared memory mapping (`sem_init` with
/// `pshared`), borrowed from the mapping for `'a`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShmSem<'a> {
    sem: NonNull<libc::sem_t>,
    _mapping: PhantomData<&'a libc::sem_t>,
}

// SAFETY: POSIX semaphores are made to be used from any thread (and process) at once;
// every operation on them is atomic, and the borrow keeps the mapping alive.
unsafe impl Send for ShmSem<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for ShmSem<'_> {}

impl<'a> ShmSem<'a> {
    /// # Safety
    /// `sem` must point to `size_of::<sem_t>()` writable bytes, aligned for `sem_t`, that
    /// stay mapped at that address for `'a`. Until [`init`](ShmSem::init) (here or in
    /// another process) has run on them, only `init` may be called.
    pub(crate) unsafe fn new(sem: NonNull<libc::sem_t>) -> ShmSem<'a> {
        ShmSem {
            sem,
            _mapping: PhantomData,
        }
    }

    /// `sem_init(sem, 1, value)`: a process-shared semaphore.
    pub(crate) fn init(&self, value: u32) -> rustix::io::Result<()> {
        // SAFETY: `sem` is valid, aligned and writable for a `sem_t` for `'a` (the
        // constructor's contract), which covers the call.
        check(unsafe { libc::sem_init(self.sem.as_ptr(), 1, value) }).map(drop)
    }
}

// SAFETY:
// - the memory is valid and aligned for `'a` (the constructor's contract); ipcx calls the
//   operations only after it saw the semaphore published as initialised;
// - a peer that writes garbage there afterwards cannot make a `sem_*` call touch memory
//   outside the `sem_t`; it can make glibc abort the process (see `LiveSem`), which is a
//   crash, not undefined behaviour.
unsafe impl LiveSem for ShmSem<'_> {
    fn sem_ptr(&self) -> NonNull<libc::sem_t> {
        self.sem
    }
}

/// A named semaphore opened with `sem_open`, closed with `sem_close` on drop.
pub(crate) struct NamedSem {
    sem: NonNull<libc::sem_t>,
}

// SAFETY:
// - the handle is a pointer to a semaphore in a shared mapping that stays mapped until
//   `sem_close` in `drop`; the `sem_*` calls made through it are thread-safe by POSIX, and
//   the C library's bookkeeping of open named semaphores is protected by its own lock, so
//   the handle may be moved to and used from any thread.
unsafe impl Send for NamedSem {}
// SAFETY: as for `Send`: every operation through `&NamedSem` is a thread-safe `sem_*` call.
unsafe impl Sync for NamedSem {}

// SAFETY:
// - `sem` came from a successful `sem_open` and is closed only in `drop`, which cannot run
//   while a borrow of `self` exists, so the semaphore is live for every borrow;
// - another process that can open `/dev/shm/sem.NAME` can write garbage into the
//   mapping; that cannot make a `sem_*` call touch memory outside the `sem_t`, though it
//   can make glibc abort the process (see `LiveSem`), a crash, not undefined behaviour.
unsafe impl LiveSem for NamedSem {
    fn sem_ptr(&self) -> NonNull<libc::sem_t> {
        self.sem
    }
}

impl NamedSem {
    /// `sem_open(name, oflag, mode, value)`. `oflag` is 0, `O_CREAT` or
    /// `O_CREAT | O_EXCL`; `mode` and `value` are used only when the call creates.
    pub(crate) fn open(
        name: &CStr,
        oflag: c_int,
        mode: u32,
        value: u32,
    ) -> rustix::io::Result<NamedSem> {
        // SAFETY:
        // - `name` is a NUL-terminated string borrowed for the call;
        // - the variadic arguments are the `mode_t` and `unsigned int` that `sem_open`
        //   reads when `O_CREAT` is given (`mode_t` is `unsigned int` on Linux, so no
        //   promotion changes them); without `O_CREAT` they are not read.
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                oflag,
                mode as libc::mode_t as c_uint,
                value as c_uint,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(last_errno());
        }
        NonNull::new(sem)
            .map(|sem| NamedSem { sem })
            .ok_or(Errno::INVAL)
    }

    /// The address of the semaphore's mapping, to identify the file it maps.
    pub(crate) fn addr(&self) -> usize {
        self.sem.as_ptr() as usize
    }
}

impl std::fmt::Debug for NamedSem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedSem").field("addr", &self.sem).finish()
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY:
        // - `sem` came from a successful `sem_open` and is closed exactly once, here;
        //   no borrow of `self` (and so no `LiveSem` user) can outlive this call.
        unsafe {
            libc::sem_close(self.sem.as_ptr());
        }
    }
}

/// `sem_unlink(name)`.
pub(crate) fn unlink(name: &CStr) -> rustix::io::Result<()> {
    // SAFETY: `name` is a NUL-terminated string borrowed for the call.
    check(unsafe { libc::sem_unlink(name.as_ptr()) }).map(drop)
}

// ---------------------------------------------------------------------------------------
// System V semaphore sets

/// The fourth argument of `semctl`, as `<sys/sem.h>` asks callers to define it.
#[repr(C)]
union Semun {
    val: c_int,
    buf: *mut libc::semid_ds,
    array: *mut c_ushort,
}

unsafe extern "C" {
    /// `semtimedop(2)`, in glibc since 2.3.3 and in musl; the `libc` crate does not bind
    /// it. The `timespec` is the C library's default one, as `libc::timespec` is.
    fn semtimedop(
        semid: c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> c_int;
}

/// `semget(key, nsems, flags)`: the id of the set.
pub(crate) fn semget(key: i32, nsems: i32, flags: i32) -> rustix::io::Result<i32> {
    // SAFETY: `semget` takes plain integers and touches no memory of ours.
    check(unsafe { libc::semget(key, nsems, flags) })
}

/// `semop`, or `semtimedop` with a relative `timeout`. The kernel reads exactly
/// `ops.len()` entries; the kernel checks each `sem_num` against the set's size.
pub(crate) fn semop(
    id: i32,
    ops: &mut [libc::sembuf],
    timeout: Option<Duration>,
) -> rustix::io::Result<()> {
    let rc = match timeout {
        None => {
            // SAFETY:
            // - `ops` is a valid, exclusively borrowed slice of `ops.len()` entries, which
            //   is the count the kernel reads (it never writes them).
            unsafe { libc::semop(id, ops.as_mut_ptr(), ops.len()) }
        }
        Some(timeout) => {
            let ts = libc::timespec {
                tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: timeout.subsec_nanos() as _,
            };
            // SAFETY:
            // - `ops` is a valid, exclusively borrowed slice of `ops.len()` entries, which
            //   is the count the kernel reads (it never writes them);
            // - `ts` is a local, normalised `timespec` (nanoseconds below 10^9).
            unsafe { semtimedop(id, ops.as_mut_ptr(), ops.len(), &ts) }
        }
    };
    check(rc).map(drop)
}

/// `semctl(IPC_STAT)`.
pub(crate) fn stat(id: i32) -> rustix::io::Result<libc::semid_ds> {
    let mut ds = std::mem::MaybeUninit::<libc::semid_ds>::zeroed();
    let arg = Semun {
        buf: ds.as_mut_ptr(),
    };
    // SAFETY:
    // - `arg.buf` points to a local `semid_ds`, which `IPC_STAT` fills in;
    // - the union is passed by value, as `semctl` reads it with `va_arg(ap, union semun)`.
    check(unsafe { libc::semctl(id, 0, libc::IPC_STAT, arg) })?;
    // SAFETY: the buffer was zeroed (a valid `semid_ds`: plain integers) and then filled
    // in by the kernel.
    Ok(unsafe { ds.assume_init() })
}

/// `semctl(IPC_SET)` of the permission bits only, keeping the owner.
pub(crate) fn set_mode(id: i32, mode: u32) -> rustix::io::Result<()> {
    let mut ds = stat(id)?;
    ds.sem_perm.mode = (mode & 0o777) as _;
    let arg = Semun { buf: &mut ds };
    // SAFETY:
    // - `arg.buf` points to a local `semid_ds` that `IPC_SET` reads (uid, gid, mode);
    // - the union is passed by value, as `semctl` reads it with `va_arg(ap, union semun)`.
    check(unsafe { libc::semctl(id, 0, libc::IPC_SET, arg) }).map(drop)
}

/// `semctl(IPC_RMID)`.
pub(crate) fn remove(id: i32) -> rustix::io::Result<()> {
    // SAFETY: `IPC_RMID` takes no fourth argument and touches no memory of ours.
    check(unsafe { libc::semctl(id, 0, libc::IPC_RMID) }).map(drop)
}

/// `semctl(GETVAL | GETNCNT | GETZCNT | GETPID)` of semaphore `index`.
pub(crate) fn get(id: i32, index: u16, cmd: c_int) -> rustix::io::Result<i32> {
    debug_assert!(matches!(
        cmd,
        libc::GETVAL | libc::GETNCNT | libc::GETZCNT | libc::GETPID
    ));
    // SAFETY: these commands take no fourth argument and touch no memory of ours.
    check(unsafe { libc::semctl(id, c_int::from(index), cmd) })
}

/// `semctl(SETVAL)` of semaphore `index`.
pub(crate) fn set_val(id: i32, index: u16, value: i32) -> rustix::io::Result<()> {
    let arg = Semun { val: value };
    // SAFETY:
    // - `SETVAL` reads only `arg.val`, a plain integer;
    // - the union is passed by value, as `semctl` reads it with `va_arg(ap, union semun)`.
    check(unsafe { libc::semctl(id, c_int::from(index), libc::SETVAL, arg) }).map(drop)
}

/// `semctl(GETALL)`: every value of the set, in index order.
pub(crate) fn get_all(id: i32) -> rustix::io::Result<Vec<u16>> {
    let nsems = nsems(id)?;
    let mut values = vec![0 as c_ushort; nsems];
    let arg = Semun {
        array: values.as_mut_ptr(),
    };
    // SAFETY:
    // - `GETALL` writes one `unsigned short` per semaphore of the set; `values` holds
    //   exactly that many, as `IPC_STAT` reported just before for this id. The number of
    //   semaphores of a set never changes, and the kernel gives an id to another set only
    //   after tens of thousands of sets have been created in the same slot (the sequence
    //   number in the id must wrap), which cannot happen between the two calls;
    // - the union is passed by value, as `semctl` reads it with `va_arg(ap, union semun)`.
    check(unsafe { libc::semctl(id, 0, libc::GETALL, arg) })?;
    Ok(values)
}

/// `semctl(SETALL)`. Fails with `EINVAL` unless `values` has one entry per semaphore.
pub(crate) fn set_all(id: i32, values: &[u16]) -> rustix::io::Result<()> {
    if values.len() != nsems(id)? {
        return Err(Errno::INVAL);
    }
    let arg = Semun {
        // The kernel only reads through this pointer.
        array: values.as_ptr().cast_mut(),
    };
    // SAFETY:
    // - `SETALL` reads one `unsigned short` per semaphore of the set, and `values` has
    //   exactly that many (checked just above with `IPC_STAT`; the size of a set never
    //   changes and its id is not reused in between, as in `get_all`);
    // - the kernel never writes through the pointer, so the shared borrow is respected;
    // - the union is passed by value, as `semctl` reads it with `va_arg(ap, union semun)`.
    check(unsafe { libc::semctl(id, 0, libc::SETALL, arg) }).map(drop)
}

/// The number of semaphores in set `id`.
fn nsems(id: i32) -> rustix::io::Result<usize> {
    Ok(stat(id)?.sem_nsems as usize)
}
