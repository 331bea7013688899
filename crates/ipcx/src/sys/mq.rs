//! POSIX message queue calls (`mq_*`), which no safe crate wraps.
//!
//! On Linux a message queue descriptor (`mqd_t`) is a real file descriptor on the
//! internal `mqueue` filesystem, so it is held as an [`OwnedFd`]: closing it with `close`
//! is what glibc's `mq_close` does, and the kernel drops a notification registration of
//! this process when its descriptor is closed. The kernel always installs the descriptor
//! with `O_CLOEXEC`.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::io::Errno;

/// Priorities run from 0 to `MQ_PRIO_MAX - 1` (Linux: 32768).
pub(crate) const MQ_PRIO_MAX: u32 = 32768;

/// The errno of the libc call that just failed.
fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL),
    )
}

/// The attributes of a queue, as `mq_getattr` reports them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attr {
    pub(crate) flags: i64,
    pub(crate) maxmsg: i64,
    pub(crate) msgsize: i64,
    pub(crate) curmsgs: i64,
}

/// A zeroed `mq_attr`: plain integers (and padding), for which all-zero is valid.
fn zeroed_attr() -> libc::mq_attr {
    // SAFETY:
    // - `mq_attr` holds only integer fields and integer padding, so the all-zero bit
    //   pattern is a valid value of it.
    unsafe { MaybeUninit::<libc::mq_attr>::zeroed().assume_init() }
}

/// `mq_open(name, oflag, mode, attr)`: opens or creates the queue `name` (with its
/// leading `/`). `attr` is `(mq_maxmsg, mq_msgsize)` for a created queue; `None` takes
/// the system defaults (`/proc/sys/fs/mqueue/msg_default`, `msgsize_default`).
pub(crate) fn open(
    name: &CStr,
    oflag: libc::c_int,
    mode: u32,
    attr: Option<(usize, usize)>,
) -> rustix::io::Result<OwnedFd> {
    let mut raw = zeroed_attr();
    let attr_ptr: *mut libc::mq_attr = match attr {
        Some((maxmsg, msgsize)) => {
            // Beyond `long`, a value is beyond every limit: saturate, and the kernel refuses.
            raw.mq_maxmsg = maxmsg.try_into().unwrap_or(libc::c_long::MAX);
            raw.mq_msgsize = msgsize.try_into().unwrap_or(libc::c_long::MAX);
            &raw mut raw
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY:
    // - `name` is a NUL-terminated string borrowed for the whole call;
    // - the variadic arguments are the two `O_CREAT` takes, of the promoted types the C
    //   prototype expects (`mode_t` is an unsigned int; a pointer); without `O_CREAT` they
    //   are ignored;
    // - `attr_ptr` is null or points to the local `raw`, valid for the call, which the
    //   kernel only reads.
    let fd = unsafe { libc::mq_open(name.as_ptr(), oflag, mode as libc::mode_t, attr_ptr) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY:
    // - on Linux `mqd_t` is a file descriptor that `mq_open` just installed for this
    //   process; nothing else owns it, so `OwnedFd` may own and close it (closing it is
    //   what `mq_close` does).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mq_unlink(name)`: removes the name; open descriptors keep the queue alive.
pub(crate) fn unlink(name: &CStr) -> rustix::io::Result<()> {
    // SAFETY:
    // - `name` is a NUL-terminated string borrowed for the whole call.
    if unsafe { libc::mq_unlink(name.as_ptr()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `mq_send(mq, msg, prio)`: on a blocking descriptor it waits for room.
pub(crate) fn send(mq: BorrowedFd<'_>, msg: &[u8], prio: u32) -> rustix::io::Result<()> {
    // SAFETY:
    // - `mq` is a live descriptor for the duration of the call (it is borrowed);
    // - `msg` is valid for reads of `msg.len()` bytes for the whole call, and the kernel
    //   only reads it.
    let rc = unsafe {
        libc::mq_send(
            mq.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            prio as libc::c_uint,
        )
    };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `mq_receive(mq, buf)`: the length and priority of the message taken. The kernel
/// fails with `EMSGSIZE` unless `buf` is at least the queue's `mq_msgsize`.
pub(crate) fn receive(mq: BorrowedFd<'_>, buf: &mut [u8]) -> rustix::io::Result<(usize, u32)> {
    let mut prio: libc::c_uint = 0;
    // SAFETY:
    // - `mq` is a live descriptor for the duration of the call (it is borrowed);
    // - `buf` is valid for writes of `buf.len()` bytes and exclusively borrowed, and the
    //   kernel writes at most that many bytes;
    // - `prio` is a local the kernel writes one `unsigned int` to.
    let n = unsafe {
        libc::mq_receive(
            mq.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut prio,
        )
    };
    if n < 0 {
        return Err(last_errno());
    }
    Ok((n as usize, prio))
}

/// An absolute time on `CLOCK_REALTIME` that has always passed: a timed call given it
/// never waits.
const PASSED: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// `mq_timedsend` with a deadline that has passed: a send that never waits, also on a
/// blocking descriptor. A full queue is `EAGAIN`, as with `O_NONBLOCK`.
pub(crate) fn send_now(mq: BorrowedFd<'_>, msg: &[u8], prio: u32) -> rustix::io::Result<()> {
    // SAFETY:
    // - `mq` is a live descriptor for the duration of the call (it is borrowed);
    // - `msg` is valid for reads of `msg.len()` bytes for the whole call, and the kernel
    //   only reads it;
    // - `PASSED` is a valid `timespec` (nanoseconds in range) in static memory.
    let rc = unsafe {
        libc::mq_timedsend(
            mq.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            prio as libc::c_uint,
            &PASSED,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(not_waited(last_errno())),
    }
}

/// `mq_timedreceive` with a deadline that has passed: a receive that never waits, also on
/// a blocking descriptor. An empty queue is `EAGAIN`, as with `O_NONBLOCK`.
pub(crate) fn receive_now(mq: BorrowedFd<'_>, buf: &mut [u8]) -> rustix::io::Result<(usize, u32)> {
    let mut prio: libc::c_uint = 0;
    // SAFETY:
    // - `mq` is a live descriptor for the duration of the call (it is borrowed);
    // - `buf` is valid for writes of `buf.len()` bytes and exclusively borrowed, and the
    //   kernel writes at most that many bytes;
    // - `prio` is a local the kernel writes one `unsigned int` to;
    // - `PASSED` is a valid `timespec` in static memory.
    let n = unsafe {
        libc::mq_timedreceive(
            mq.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut prio,
            &PASSED,
        )
    };
    if n < 0 {
        return Err(not_waited(last_errno()));
    }
    Ok((n as usize, prio))
}

/// A passed deadline's `ETIMEDOUT` means the call would have had to wait.
fn not_waited(e: Errno) -> Errno {
    if e == Errno::TIMEDOUT {
        Errno::AGAIN
    } else {
        e
    }
}

/// `mq_getattr(mq)`.
#[allow(clippy::unnecessary_cast)] // `c_long` is 32 bits on 32-bit targets
pub(crate) fn getattr(mq: BorrowedFd<'_>) -> rustix::io::Result<Attr> {
    let mut raw = zeroed_attr();
    // SAFETY:
    // - `mq` is a live descriptor for the duration of the call (it is borrowed);
    // - `raw` is a local `mq_attr` the call fills in.
    if unsafe { libc::mq_getattr(mq.as_raw_fd(), &mut raw) } != 0 {
        return Err(last_errno());
    }
    Ok(Attr {
        flags: raw.mq_flags as i64,
        maxmsg: raw.mq_maxmsg as i64,
        msgsize: raw.mq_msgsize as i64,
        curmsgs: raw.mq_curmsgs as i64,
    })
}

/// `mq_notify(mq, SIGEV_SIGNAL signo)` with `Some(signo)`; `mq_notify(mq, NULL)` (remove
/// this process's registration) with `None`.
pub(crate) fn notify(mq: BorrowedFd<'_>, signo: Option<libc::c_int>) -> rustix::io::Result<()> {
    // SAFETY:
    // - `sigevent` holds only integers, a union of an integer and a pointer, and integer
    //   padding, so the all-zero bit pattern is a valid value of it (a null `sival_ptr`).
    let mut ev = unsafe { MaybeUninit::<libc::sigevent>::zeroed().assume_init() };
    let ev_ptr: *const libc::sigevent = match signo {
        Some(signo) => {
            ev.sigev_notify = libc::SIGEV_SIGNAL;
            ev.sigev_signo = signo;
            &raw const ev
        }
        None => std::ptr::null(),
    };
    // SAFETY:
    // - `mq` is a live descriptor for the duration of the call (it is borrowed);
    // - `ev_ptr` is null or points to the local `ev`, which the call only reads; with
    //   `SIGEV_SIGNAL` glibc passes it straight to the kernel (no helper thread is
    //   started, unlike `SIGEV_THREAD`).
    if unsafe { libc::mq_notify(mq.as_raw_fd(), ev_ptr) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}
