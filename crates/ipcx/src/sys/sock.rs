//! Socket and pipe calls that rustix does not offer safely.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SO_PEERPIDFD` (Linux 6.5): a pidfd for the process that connected the socket.
/// The value is 77 on the generic ABI; MIPS, SPARC and PA-RISC number it differently.
const SO_PEERPIDFD: Option<libc::c_int> = if cfg!(any(
    target_arch = "mips",
    target_arch = "mips32r6",
    target_arch = "mips64",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
)) {
    None
} else {
    Some(77)
};

/// `getsockopt(SO_PEERPIDFD)`: the kernel's pidfd for the peer, taken when it connected.
pub(crate) fn peer_pidfd(sock: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
    let Some(option) = SO_PEERPIDFD else {
        return Err(rustix::io::Errno::NOPROTOOPT);
    };
    let fd: libc::c_int = getsockopt_plain(sock, option, -1)?;
    if fd < 0 {
        return Err(rustix::io::Errno::INVAL);
    }
    // SAFETY:
    // - the kernel just installed `fd` for this process as the option's value (always
    //   `O_CLOEXEC`, as every pidfd), and nothing else knows of it, so `OwnedFd` may own
    //   and close it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `vmsplice(2)` of user buffers into a pipe, without `SPLICE_F_GIFT`.
///
/// Fails with `EBADF` unless `pipe` is open for writing: on a read end, `vmsplice` would
/// copy pipe data *into* the buffers, which are only borrowed for reading.
pub(crate) fn vmsplice_to_pipe(
    pipe: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
) -> rustix::io::Result<usize> {
    let mode = rustix::fs::fcntl_getfl(pipe)? & rustix::fs::OFlags::RWMODE;
    if mode != rustix::fs::OFlags::WRONLY && mode != rustix::fs::OFlags::RDWR {
        return Err(rustix::io::Errno::BADF);
    }
    let raw: Vec<rustix::pipe::IoSliceRaw<'_>> = bufs
        .iter()
        .map(|b| rustix::pipe::IoSliceRaw::from_slice(b))
        .collect();
    // SAFETY:
    // - every slice is borrowed for the whole call, so the memory is valid for reads;
    // - the descriptor was just checked to be open for writing, so the kernel moves data
    //   from the buffers into the pipe and never writes them, as the shared borrows
    //   require (on a read end it would copy pipe data into them);
    // - without `SPLICE_F_GIFT` the pages stay the caller's; the kernel holds its own
    //   references to them, so freeing the buffers later is sound (documented on
    //   `PipeWriter::vmsplice`: the reader may then see the newer contents).
    unsafe { rustix::pipe::vmsplice(pipe, &raw, rustix::pipe::SpliceFlags::NONBLOCK) }
}

/// `getsockopt(SO_PEERCRED)`, read into `libc::ucred`: the kernel reports pid 0 (and
/// uid/gid -1) for a socket with no peer, which a non-zero pid type cannot hold.
pub(crate) fn peer_cred(sock: BorrowedFd<'_>) -> rustix::io::Result<libc::ucred> {
    getsockopt_plain(
        sock,
        libc::SO_PEERCRED,
        libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        },
    )
}

/// Plain C values that `getsockopt` may fill with any bytes: every bit pattern is valid.
trait Plain: Copy {}
impl Plain for libc::c_int {}
impl Plain for libc::ucred {}

/// `getsockopt(SOL_SOCKET, option)` into a value of type `T`, starting from `init`.
fn getsockopt_plain<T: Plain>(
    sock: BorrowedFd<'_>,
    option: libc::c_int,
    init: T,
) -> rustix::io::Result<T> {
    let mut value = init;
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY:
    // - `sock` is a live descriptor for the duration of the call (it is borrowed);
    // - `value` is a local `T` and `len` announces exactly its size, so the kernel writes
    //   within it;
    // - `T: Plain`: whatever bytes the kernel writes form a valid `T`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        return Err(rustix::io::Errno::from_raw_os_error(errno));
    }
    Ok(value)
}
