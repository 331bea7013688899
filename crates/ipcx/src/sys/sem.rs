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

/// `semctl(GETALL)` of the set at `id`, which the caller knows to hold `nsems`
/// semaphores: their values, in index order.
///
/// The kernel writes as many values as the set at `id` holds *now*. If the caller's set
/// was removed and its id given to a larger set, the write runs into the guard page after
/// the buffer and the call fails with `EFAULT`; a smaller set fills only the first
/// entries (the rest stay 0), so a caller that must know compares the size with
/// `IPC_STAT` afterwards.
pub(crate) fn get_all(id: i32, nsems: usize) -> rustix::io::Result<Vec<u16>> {
    let mut buf = GuardedBuf::new(nsems)?;
    let arg = Semun {
        array: buf.as_mut_ptr(),
    };
    // SAFETY:
    // - `GETALL` writes the values of the set that `id` names when the kernel runs the
    //   call, one `unsigned short` per semaphore, with one `copy_to_user` to the range
    //   that starts at `arg.array`, and writes nothing else of ours. That set may hold more
    //   than `nsems`, however the caller learnt the size: a removed set's id is given to
    //   a new set once the sequence number in it wraps, or at once when a privileged
    //   process writes `/proc/sys/kernel/sem_next_id`, and that can happen just before
    //   this call;
    // - `arg.array` points to `nsems` writable, aligned `u16`s that end exactly where
    //   `buf`'s `PROT_NONE` guard page begins (`GuardedBuf::new`). `copy_to_user` copies
    //   a prefix of the range and stops at the first address it cannot write, so for a
    //   larger set it writes the buffer, faults on the guard page and the call fails with
    //   `EFAULT`: nothing past the buffer is written, whatever the set's size;
    // - `buf` owns the mapping and is borrowed mutably, so no Rust reference sees the
    //   bytes while the kernel writes them; they are plain `u16`s, valid whatever the
    //   kernel writes (the mapping starts zeroed);
    // - the union is passed by value, as `semctl` reads it with `va_arg(ap, union semun)`.
    check(unsafe { libc::semctl(id, 0, libc::GETALL, arg) })?;
    Ok(buf.as_slice().to_vec())
}

/// `semctl(SETALL)` of the set at `id` to `values`, one per semaphore.
///
/// The kernel reads as many values as the set at `id` holds *now*: if that is more than
/// `values.len()` (the caller's set was removed and its id given to a larger set), the
/// read runs into the guard page after the buffer and the call fails with `EFAULT`,
/// having changed nothing.
pub(crate) fn set_all(id: i32, values: &[u16]) -> rustix::io::Result<()> {
    let mut buf = GuardedBuf::new(values.len())?;
    buf.as_mut_slice().copy_from_slice(values);
    let arg = Semun {
        array: buf.as_mut_ptr(),
    };
    // SAFETY:
    // - `SETALL` reads the new values for the set that `id` names when the kernel runs
    //   the call, one `unsigned short` per semaphore, with one `copy_from_user` from the
    //   range that starts at `arg.array`, and never writes through the pointer. That set
    //   may hold more than `values.len()` (ids are reused, see `get_all`);
    // - `arg.array` points to `values.len()` initialised, aligned `u16`s that end exactly
    //   where `buf`'s `PROT_NONE` guard page begins (`GuardedBuf::new`). For a larger
    //   set `copy_from_user` faults on the guard page and the call fails with `EFAULT`
    //   before any value is changed (the kernel copies all values in before applying
    //   them); nothing past the buffer is read;
    // - `buf` owns the mapping and is borrowed mutably for the call;
    // - the union is passed by value, as `semctl` reads it with `va_arg(ap, union semun)`.
    check(unsafe { libc::semctl(id, 0, libc::SETALL, arg) }).map(drop)
}

/// A buffer of `len` `u16`s that ends exactly where an inaccessible (`PROT_NONE`) page
/// begins, in an anonymous mapping of its own. The kernel, asked to copy more entries
/// than the buffer holds, faults on the guard page and fails the call with `EFAULT`
/// instead of touching memory beyond it.
struct GuardedBuf {
    /// The start of the mapping: the buffer's pages, then the guard page.
    map: NonNull<libc::c_void>,
    /// The length of the mapping in bytes: the buffer rounded up to pages, plus one page.
    map_len: usize,
    /// The offset of the guard page in the mapping.
    guard: usize,
    /// The number of `u16`s in the buffer, which ends at `guard`.
    len: usize,
}

impl GuardedBuf {
    /// Maps a zeroed buffer of `len` `u16`s followed by a guard page.
    fn new(len: usize) -> rustix::io::Result<GuardedBuf> {
        let page = rustix::param::page_size();
        let bytes = len
            .checked_mul(std::mem::size_of::<u16>())
            .ok_or(Errno::NOMEM)?;
        let guard = bytes.checked_next_multiple_of(page).ok_or(Errno::NOMEM)?;
        let map_len = guard.checked_add(page).ok_or(Errno::NOMEM)?;
        // SAFETY:
        // - a null address asks the kernel for a new mapping where it likes, so no
        //   existing memory of this process is replaced;
        // - `map_len` is not 0 (it includes the guard page).
        let map = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                map_len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }?;
        let buf = GuardedBuf {
            map: NonNull::new(map).ok_or(Errno::NOMEM)?,
            map_len,
            guard,
            len,
        };
        // From here on `buf` unmaps the mapping if anything fails.
        // SAFETY:
        // - `guard` is a multiple of the page size and `guard + page` is `map_len`, so
        //   `map + guard` stays inside the mapping and the range is its last page, which
        //   belongs to `buf` alone and to which no reference exists.
        unsafe {
            rustix::mm::mprotect(
                buf.map.as_ptr().cast::<u8>().add(guard).cast(),
                page,
                rustix::mm::MprotectFlags::empty(),
            )
        }?;
        Ok(buf)
    }

    /// The first `u16` of the buffer: `len` entries before the guard page.
    fn as_mut_ptr(&mut self) -> *mut u16 {
        let start = self.guard - self.len * std::mem::size_of::<u16>();
        // `start` lies inside the mapping (`len * 2 <= guard`), and is even because the
        // guard page's offset is, so the pointer is aligned for `u16`.
        self.map.as_ptr().cast::<u8>().wrapping_add(start).cast()
    }

    /// The buffer's values.
    fn as_slice(&self) -> &[u16] {
        let start = self.guard - self.len * std::mem::size_of::<u16>();
        // SAFETY:
        // - the `len` `u16`s from `start` lie in the readable, writable part of the
        //   mapping (they end at the guard page), which `self` owns until drop;
        // - the address is aligned for `u16` (`start` is even, the mapping page-aligned);
        // - every bit pattern is a valid `u16`, and the mapping started zeroed;
        // - the shared borrow of `self` keeps `as_mut_ptr` and `as_mut_slice` unusable
        //   while the slice lives.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().cast::<u8>().add(start).cast(), self.len)
        }
    }

    /// The buffer's values, to fill in.
    fn as_mut_slice(&mut self) -> &mut [u16] {
        let len = self.len;
        // SAFETY: as for `as_slice`; the exclusive borrow of `self` makes the slice the
        // only way to the bytes while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), len) }
    }
}

impl Drop for GuardedBuf {
    fn drop(&mut self) {
        // SAFETY:
        // - `map` and `map_len` describe the mapping `new` made, which is unmapped only
        //   here; no slice of it outlives the borrow of `self` it came from.
        unsafe {
            let _ = rustix::mm::munmap(self.map.as_ptr(), self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// Removes a set when dropped, so a failing test leaves none behind.
    struct Remove(i32);

    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = remove(self.0);
        }
    }

    fn private_set(nsems: usize) -> Remove {
        let id = semget(libc::IPC_PRIVATE, nsems as i32, libc::IPC_CREAT | 0o600).unwrap();
        Remove(id)
    }

    #[test]
    fn getall_and_setall_of_a_larger_set_fault_on_the_guard_page() {
        // 300 values take less than a page; 2049 take one byte pair more than a page, so
        // the buffer of 2048 fills its page exactly and the guard page follows at once.
        for nsems in [300_usize, 2049] {
            let set = private_set(nsems);
            let values: Vec<u16> = (0..nsems).map(|i| (i % 30_000) as u16).collect();
            set_all(set.0, &values).unwrap();
            assert_eq!(get_all(set.0, nsems).unwrap(), values);
            // A handle that believes the set smaller, as one would whose set was removed
            // and whose id went to this larger set: EFAULT, and nothing changed.
            for short in [0, 1, nsems - 1] {
                assert_eq!(get_all(set.0, short), Err(Errno::FAULT), "{nsems} {short}");
                assert_eq!(
                    set_all(set.0, &vec![7; short]),
                    Err(Errno::FAULT),
                    "{nsems} {short}"
                );
            }
            assert_eq!(
                get_all(set.0, nsems).unwrap(),
                values,
                "SETALL changed nothing"
            );
            // A buffer larger than the set: the kernel fills only what the set holds.
            let longer = get_all(set.0, nsems + 1).unwrap();
            assert_eq!((&longer[..nsems], longer[nsems]), (&values[..], 0));
        }
    }

    #[test]
    fn the_guarded_buffer_ends_at_an_inaccessible_page() {
        let page = rustix::param::page_size();
        for len in [0, 1, page / 2 - 1, page / 2, page / 2 + 1] {
            let mut buf = GuardedBuf::new(len).unwrap();
            assert_eq!(buf.as_slice(), vec![0; len]);
            buf.as_mut_slice().fill(u16::MAX);
            assert_eq!(buf.as_slice(), vec![u16::MAX; len]);
            let end = buf.as_mut_ptr() as usize + len * 2;
            assert_eq!(end % page, 0, "the buffer ends at a page boundary");
            // The page after it is inaccessible: the kernel, copying from it into a pipe,
            // fails with EFAULT.
            let (_rx, tx) = rustix::pipe::pipe().unwrap();
            // SAFETY:
            // - `tx` is an open descriptor borrowed for the call;
            // - `end` is the start of `buf`'s guard page, mapped (PROT_NONE) while `buf`
            //   lives; the kernel checks access itself and only ever reads through it.
            let rc = unsafe { libc::write(tx.as_raw_fd(), end as *const libc::c_void, 1) };
            assert_eq!((rc, last_errno()), (-1, Errno::FAULT));
        }
    }
}
