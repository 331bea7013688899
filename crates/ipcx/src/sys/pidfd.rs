//! `pidfd_send_signal` with any signal number.
//!
//! rustix offers `pidfd_send_signal`, but its `Signal` type cannot hold 0 (the existence
//! probe) and can name a real-time signal only through an `unsafe` constructor, so ipcx
//! makes the system call itself.

use std::os::fd::{AsRawFd, BorrowedFd};

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: sends `sig` (0 probes without sending) to
/// the process `pidfd` refers to, never to a process that reused its PID.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> rustix::io::Result<()> {
    // SAFETY:
    // - `pidfd` is a borrowed, open descriptor for the duration of the call (the kernel
    //   checks that it is a pidfd and fails with EBADF otherwise);
    // - a null `siginfo_t` pointer is documented to mean "as kill(2) would send it", so
    //   the kernel reads no memory of ours;
    // - the flags argument must be 0, and is;
    // - every argument is passed as the `long` the variadic `syscall` expects.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            libc::c_long::from(pidfd.as_raw_fd()),
            libc::c_long::from(sig),
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_long,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        ))
    }
}
