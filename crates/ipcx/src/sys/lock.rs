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

/// A `struct flock` for an exclusive lock on the one byte at `byte`.
fn one_byte(byte: i64, l_type: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is plain old data; all zeroes is a valid value (and `l_pid` must
    // be 0 for OFD locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = l_type as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte;
    lock.l_len = 1;
    lock
}

/// Takes an exclusive OFD lock on the byte at `byte` without waiting: `Ok(true)` when
/// taken (or already held through this open file description), `Ok(false)` when another
/// open file description holds it.
pub(crate) fn try_lock_byte(fd: BorrowedFd<'_>, byte: i64) -> Result<bool> {
    let lock = one_byte(byte, libc::F_WRLCK);
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
pub(crate) fn byte_locked_elsewhere(fd: BorrowedFd<'_>, byte: i64) -> Result<bool> {
    let mut lock = one_byte(byte, libc::F_WRLCK);
    // SAFETY:
    // - `fd` is a live descriptor for the duration of the borrow;
    // - `lock` is a valid, writable `struct flock` that outlives the call, which writes
    //   at most one `struct flock` into it.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if rc == -1 {
        return Err(Errno::from_raw_os_error(super::shm::errno()));
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}
