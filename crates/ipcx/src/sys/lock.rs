//! Open file description locks on single bytes (`F_OFD_SETLK`, `F_OFD_GETLK`), which no
//! safe crate offers (rustix's `fcntl_lock` takes the whole file with process-owned
//! `F_SETLK` locks).
//!
//! An OFD lock belongs to the open file description, not to the process: it is released
//! when the last descriptor of that description closes, which includes the death of the
//! process however it dies. That makes a held byte a liveness signal that does not rest
//! on a PID (reliability item 5): the channel layer's shared-memory transport holds one
//! byte per side and checks the other side's byte when a wait runs long.
//!
//! # References
//! - [fcntl(2), "Open file description locks"](https://man7.org/linux/man-pages/man2/fcntl.2.html)

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::{Errno, Result};

/// A `struct flock` of type `l_type` on the one byte at `byte`.
///
/// `off_t` is 32 bits on 32-bit targets without large-file offsets, so the offset is
/// converted with a check: an offset it cannot hold is `EOVERFLOW`, as the kernel says
/// for a lock beyond what `off_t` reaches, never a silently truncated, different byte.
fn one_byte(byte: u64, l_type: libc::c_short) -> Result<libc::flock> {
    let start = libc::off_t::try_from(byte).map_err(|_| Errno::OVERFLOW)?;
    // SAFETY: `flock` is plain old data; all zeroes is a valid value (and `l_pid` must
    // be 0 for OFD locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = l_type;
    lock.l_whence = SEEK_SET;
    lock.l_start = start;
    lock.l_len = 1;
    Ok(lock)
}

// `struct flock` holds these `c_int` constants in `short` fields; they are small.
#[allow(clippy::cast_possible_truncation)]
const F_WRLCK: libc::c_short = libc::F_WRLCK as libc::c_short;
#[allow(clippy::cast_possible_truncation)]
const F_UNLCK: libc::c_short = libc::F_UNLCK as libc::c_short;
#[allow(clippy::cast_possible_truncation)]
const SEEK_SET: libc::c_short = libc::SEEK_SET as libc::c_short;

/// Takes an exclusive OFD lock on the byte at `byte` without waiting: `Ok(true)` when
/// taken (or already held through this open file description), `Ok(false)` when another
/// open file description holds it.
pub(crate) fn try_lock_byte(fd: BorrowedFd<'_>, byte: u64) -> Result<bool> {
    let lock = one_byte(byte, F_WRLCK)?;
    // SAFETY:
    // - `fd` is a live descriptor for the duration of the borrow;
    // - `lock` is a valid `struct flock` that outlives the call, which only reads it.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if rc == 0 {
        return Ok(true);
    }
    match Errno::from_raw_os_error(super::shm::errno()) {
        Errno::AGAIN | Errno::ACCESS => Ok(false),
        e => Err(e),
    }
}

/// Whether an open file description other than `fd`'s holds a lock on the byte at `byte`.
pub(crate) fn byte_locked_elsewhere(fd: BorrowedFd<'_>, byte: u64) -> Result<bool> {
    let mut lock = one_byte(byte, F_WRLCK)?;
    // SAFETY:
    // - `fd` is a live descriptor for the duration of the borrow;
    // - `lock` is a valid, writable `struct flock` that outlives the call, which writes
    //   at most one `struct flock` into it.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if rc == -1 {
        return Err(Errno::from_raw_os_error(super::shm::errno()));
    }
    Ok(lock.l_type != F_UNLCK)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn offsets_beyond_off_t_are_refused_not_truncated() {
        let fd = rustix::fs::memfd_create("ipcx-lock-test", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        // u64::MAX does not fit any off_t: refused before the call, never wrapped to -1
        // (or, with a 32-bit off_t, to a different byte).
        assert_eq!(try_lock_byte(fd.as_fd(), u64::MAX), Err(Errno::OVERFLOW));
        assert_eq!(
            byte_locked_elsewhere(fd.as_fd(), u64::MAX),
            Err(Errno::OVERFLOW)
        );
        let beyond = u64::try_from(libc::off_t::MAX).expect("off_t::MAX is positive") + 1;
        assert_eq!(try_lock_byte(fd.as_fd(), beyond), Err(Errno::OVERFLOW));
        // The largest offset off_t holds is locked for real, as is a small one.
        assert_eq!(try_lock_byte(fd.as_fd(), beyond - 1), Ok(true));
        assert_eq!(try_lock_byte(fd.as_fd(), 3), Ok(true));
        assert_eq!(byte_locked_elsewhere(fd.as_fd(), 3), Ok(false));
        let other = rustix::fs::open(
            format!("/proc/self/fd/{}", fd.as_raw_fd()),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("a second open file description");
        assert_eq!(byte_locked_elsewhere(other.as_fd(), 3), Ok(true));
        assert_eq!(try_lock_byte(other.as_fd(), 3), Ok(false));
    }
}
