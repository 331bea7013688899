//! Signal masks, signalfd, `sigqueue` and signal numbers: the calls rustix does not cover
//! safely (`sigset_t`, `pthread_sigmask`, `signalfd`, `sigqueue`), plus the one conversion
//! of a checked number into a rustix `Signal`.
//!
//! Signal sets cross this boundary as a `u64` with bit `n - 1` standing for signal `n`:
//! the layout of the kernel's own 64-signal set and of `/proc/<pid>/status`'s `SigBlk`.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::io::Errno;

/// The highest signal number Linux has (`_NSIG - 1`).
pub(crate) const MAX_SIGNAL: i32 = 64;

/// The first real-time signal an application may use: glibc keeps the first two or three
/// for its threads, so this is 34 or 35 rather than the kernel's 32.
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// The last real-time signal (64 on Linux).
pub(crate) fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// Whether `sig` names a signal an application may use: 1 to 31, or `SIGRTMIN` to
/// `SIGRTMAX` (the numbers in between belong to the C library).
pub(crate) fn is_valid(sig: i32) -> bool {
    (1..32).contains(&sig) || (sigrtmin()..=sigrtmax().min(MAX_SIGNAL)).contains(&sig)
}

/// A `sigset_t` holding exactly the signals of `mask`.
fn to_sigset(mask: u64) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY:
    // - `set` is a local that `sigemptyset` initialises before `sigaddset` or
    //   `assume_init` touch it;
    // - `sigaddset` only writes inside the set; a number the C library reserves makes it
    //   fail with EINVAL and leaves the set as it was (callers pass checked numbers).
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for sig in 1..=MAX_SIGNAL {
            if mask & bit(sig) != 0 {
                libc::sigaddset(set.as_mut_ptr(), sig);
            }
        }
        set.assume_init()
    }
}

/// The signals of `set` as a bit mask.
fn from_sigset(set: &libc::sigset_t) -> u64 {
    let mut mask = 0;
    for sig in 1..=MAX_SIGNAL {
        // SAFETY: `set` is an initialised `sigset_t` borrowed for the call, which only
        // reads it; an out-of-range number returns -1, never 1.
        if unsafe { libc::sigismember(set, sig) } == 1 {
            mask |= bit(sig);
        }
    }
    mask
}

/// The bit that stands for signal `sig` (1 to 64).
pub(crate) const fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Changes the calling thread's signal mask: `how` is `SIG_BLOCK`, `SIG_UNBLOCK` or
/// `SIG_SETMASK`. Returns the mask as it was before.
fn thread_mask(how: libc::c_int, mask: Option<u64>) -> rustix::io::Result<u64> {
    let set = mask.map(to_sigset);
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    let set_ptr = set.as_ref().map_or(std::ptr::null(), |s| s as *const _);
    // SAFETY:
    // - `set_ptr` is null (a pure query) or points to a local `sigset_t` alive for the call;
    // - `old` is a local the call fills in; it is read only when the call succeeded;
    // - `pthread_sigmask` changes only the calling thread's mask.
    let rc = unsafe { libc::pthread_sigmask(how, set_ptr, old.as_mut_ptr()) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(rc));
    }
    // SAFETY: the call succeeded, so it wrote the previous mask into `old`.
    Ok(from_sigset(unsafe { old.assume_init_ref() }))
}

/// The calling thread's blocked signals.
pub(crate) fn blocked() -> rustix::io::Result<u64> {
    thread_mask(libc::SIG_BLOCK, None)
}

/// Adds `mask` to the calling thread's blocked signals; returns the previous mask.
pub(crate) fn block(mask: u64) -> rustix::io::Result<u64> {
    thread_mask(libc::SIG_BLOCK, Some(mask))
}

/// Removes `mask` from the calling thread's blocked signals.
pub(crate) fn unblock(mask: u64) -> rustix::io::Result<u64> {
    thread_mask(libc::SIG_UNBLOCK, Some(mask))
}

/// The signals pending for the calling thread or its process.
pub(crate) fn pending() -> u64 {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is a local that `sigemptyset` initialises and `sigpending` fills in
    // before it is read.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigpending(set.as_mut_ptr());
        from_sigset(set.assume_init_ref())
    }
}

/// `signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK)`: a new descriptor that reads the
/// signals of `mask` pending for the reading thread or its process.
pub(crate) fn signalfd(mask: u64) -> rustix::io::Result<OwnedFd> {
    let set = to_sigset(mask);
    // SAFETY:
    // - `set` is a local `sigset_t` alive for the call, which only reads it;
    // - fd -1 asks for a new descriptor, so no descriptor of ours is changed.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    // SAFETY: the kernel just installed `fd` for this process and nothing else knows of
    // it, so `OwnedFd` may own and close it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `signalfd(fd, mask, 0)`: replaces the set of signals an existing signalfd reads.
pub(crate) fn signalfd_set_mask(fd: BorrowedFd<'_>, mask: u64) -> rustix::io::Result<()> {
    let set = to_sigset(mask);
    // SAFETY:
    // - `set` is a local `sigset_t` alive for the call, which only reads it;
    // - `fd` is borrowed, so it stays open for the call; on a descriptor that is not a
    //   signalfd the kernel fails with EINVAL and changes nothing; the flags argument is
    //   ignored when `fd` is not -1.
    let rc = unsafe { libc::signalfd(fd.as_raw_fd(), &set, 0) };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

/// One `struct signalfd_siginfo` as the kernel lays it out (128 bytes).
pub(crate) const SIGINFO_SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();

/// The fields of a `signalfd_siginfo` that ipcx reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawSigInfo {
    pub(crate) signo: u32,
    pub(crate) errno: i32,
    pub(crate) code: i32,
    pub(crate) pid: u32,
    pub(crate) uid: u32,
    pub(crate) status: i32,
    pub(crate) int: i32,
    pub(crate) ptr: u64,
}

/// Decodes the bytes of one `signalfd_siginfo`, reading each field at its offset in the
/// C structure (so no unsafe cast of the buffer is needed).
pub(crate) fn decode_siginfo(buf: &[u8; SIGINFO_SIZE]) -> RawSigInfo {
    use std::mem::offset_of;
    type S = libc::signalfd_siginfo;
    let u32_at = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&buf[at..at + 4]);
        u32::from_ne_bytes(b)
    };
    let i32_at = |at: usize| u32_at(at) as i32;
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[at..at + 8]);
        u64::from_ne_bytes(b)
    };
    RawSigInfo {
        signo: u32_at(offset_of!(S, ssi_signo)),
        errno: i32_at(offset_of!(S, ssi_errno)),
        code: i32_at(offset_of!(S, ssi_code)),
        pid: u32_at(offset_of!(S, ssi_pid)),
        uid: u32_at(offset_of!(S, ssi_uid)),
        status: i32_at(offset_of!(S, ssi_status)),
        int: i32_at(offset_of!(S, ssi_int)),
        ptr: u64_at(offset_of!(S, ssi_ptr)),
    }
}

/// `SI_USER`, `SI_QUEUE`, `SI_TKILL`, `SI_KERNEL`: who sent a signal.
pub(crate) const SI_USER: i32 = libc::SI_USER;
pub(crate) const SI_QUEUE: i32 = libc::SI_QUEUE;
pub(crate) const SI_TKILL: i32 = libc::SI_TKILL;
pub(crate) const SI_KERNEL: i32 = libc::SI_KERNEL;

/// A checked signal number as rustix's `Signal`.
fn rustix_signal(sig: i32) -> rustix::process::Signal {
    debug_assert!(is_valid(sig));
    // SAFETY:
    // - every caller passes a number `is_valid` accepted: non-zero, at most 64, and
    //   outside the range the C library reserves for itself (32 to SIGRTMIN - 1), so it
    //   is a valid signal that may be sent.
    unsafe { rustix::process::Signal::from_raw_unchecked(sig) }
}

/// `kill(pid, sig)` for a positive pid and a checked signal.
pub(crate) fn kill(pid: rustix::process::Pid, sig: i32) -> rustix::io::Result<()> {
    rustix::process::kill_process(pid, rustix_signal(sig))
}

/// `sigqueue(pid, sig, value)` with `value` as the `sival_int` of the union.
pub(crate) fn sigqueue(pid: rustix::process::Pid, sig: i32, value: i32) -> rustix::io::Result<()> {
    let mut val = MaybeUninit::<libc::sigval>::zeroed();
    // SAFETY:
    // - `sigval` is a C union whose `sival_int` member is an `int` at offset 0 (libc
    //   declares only the pointer member), and the union is at least as large and as
    //   aligned as an `int`, so writing an `i32` at its start sets `sival_int` on either
    //   byte order;
    // - the zeroed union is a valid `sigval` (a null pointer) before and after the write.
    let val = unsafe {
        val.as_mut_ptr().cast::<i32>().write(value);
        val.assume_init()
    };
    // SAFETY: `sigqueue` takes plain values; the signal number was checked by the caller.
    let rc = unsafe { libc::sigqueue(pid.as_raw_nonzero().get(), sig, val) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

/// Makes `cmd`'s child start with `mask` added to its blocked signals, from its first
/// instruction after `exec` (std clears the mask in the child first, then runs this).
pub(crate) fn block_in_child(cmd: &mut Command, mask: u64) {
    let set = to_sigset(mask);
    let block = move || {
        // SAFETY:
        // - `pthread_sigmask` is async-signal-safe (signal-safety(7)), so it may run in
        //   the child between `fork` and `exec`;
        // - `set` is a copy owned by the closure, alive for the call; the old mask is not
        //   asked for.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(rc))
        }
    };
    // SAFETY:
    // - the closure runs in the forked child before `exec`; it makes one async-signal-safe
    //   call, allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(block);
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigset_round_trips_through_the_mask() {
        let mask = bit(libc::SIGTERM) | bit(libc::SIGUSR1) | bit(sigrtmin()) | bit(sigrtmax());
        assert_eq!(from_sigset(&to_sigset(mask)), mask);
        assert_eq!(from_sigset(&to_sigset(0)), 0);
    }

    #[test]
    fn decodes_fields_at_their_c_offsets() {
        let mut buf = [0u8; SIGINFO_SIZE];
        let put = |buf: &mut [u8; SIGINFO_SIZE], at: usize, bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes)
        };
        put(&mut buf, 0, &10u32.to_ne_bytes());
        put(&mut buf, 8, &(-1i32).to_ne_bytes());
        put(&mut buf, 12, &4242u32.to_ne_bytes());
        put(&mut buf, 16, &1000u32.to_ne_bytes());
        put(&mut buf, 44, &(-7i32).to_ne_bytes());
        put(&mut buf, 48, &0x1122_3344_5566_7788u64.to_ne_bytes());
        let info = decode_siginfo(&buf);
        assert_eq!(
            (
                info.signo, info.code, info.pid, info.uid, info.int, info.ptr
            ),
            (10, -1, 4242, 1000, -7, 0x1122_3344_5566_7788)
        );
    }
}
