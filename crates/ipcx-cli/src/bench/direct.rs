//! The baselines: the same ping-pong as the `pipe`, `unix` and `mq` rows, written
//! directly against libc (`read`/`write`, `send`/`recv`, `mq_send`/`mq_receive`) with
//! blocking descriptors, the way a C program would. The difference between a row and its
//! baseline is what ipcx's wrapper costs.
//!
//! This is the one module of the `ipcx` binary with `unsafe` code: raw libc calls on
//! descriptors it owns and buffers it borrows.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::Fallible;
use super::port::{Carries, Port};

/// Retries a libc call that returned -1 with `EINTR`; any other -1 is the errno's error.
fn retry(op: &str, mut call: impl FnMut() -> isize) -> Fallible<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(format!("{op}: {e}").into());
        }
    }
}

/// A byte stream (pipe ends or a connected Unix stream socket) carrying fixed-size
/// messages: the ping size is known to both sides, so there is no framing.
pub struct FdPort {
    read: OwnedFd,
    /// `None` when the same descriptor reads and writes.
    write: Option<OwnedFd>,
    /// Send with `send(2)` and receive with `recv(2)` (a socket), or `write`/`read`.
    socket: bool,
    size: usize,
}

impl FdPort {
    /// Two pipe ends, used with `read(2)` and `write(2)`; messages of `size` bytes.
    pub fn pipe(read: OwnedFd, write: OwnedFd, size: usize) -> Self {
        FdPort {
            read,
            write: Some(write),
            socket: false,
            size,
        }
    }

    /// Two connected Unix stream sockets, one each way (the shape of the `unix` row's
    /// two one-way channels), used with `send(2)` and `recv(2)`.
    pub fn sockets(read: OwnedFd, write: OwnedFd, size: usize) -> Self {
        FdPort {
            read,
            write: Some(write),
            socket: true,
            size,
        }
    }
}

impl Port for FdPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let fd = self.write.as_ref().unwrap_or(&self.read).as_raw_fd();
        let mut done = 0;
        while done < msg.len() {
            let rest = &msg[done..];
            done += if self.socket {
                // SAFETY:
                // - `fd` is an open socket owned by `self`, alive for the call.
                // - `rest` is a valid, initialised slice of `rest.len()` bytes that
                //   outlives the call.
                retry("send", || unsafe {
                    libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL)
                })?
            } else {
                // SAFETY: as for `send`: an open descriptor we own, and a live slice.
                retry("write", || unsafe {
                    libc::write(fd, rest.as_ptr().cast(), rest.len())
                })?
            };
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        let fd = self.read.as_raw_fd();
        let want = self.size.min(buf.len());
        let mut done = 0;
        while done < want {
            let rest = &mut buf[done..want];
            let n = if self.socket {
                // SAFETY:
                // - `fd` is an open socket owned by `self`.
                // - `rest` is a writable slice of `rest.len()` bytes borrowed for the
                //   call; the kernel writes at most that many.
                retry("recv", || unsafe {
                    libc::recv(fd, rest.as_mut_ptr().cast(), rest.len(), 0)
                })?
            } else {
                // SAFETY: as for `recv`: an open descriptor we own, a writable slice.
                retry("read", || unsafe {
                    libc::read(fd, rest.as_mut_ptr().cast(), rest.len())
                })?
            };
            if n == 0 {
                return Err(
                    format!("the peer closed the stream after {done} of {want} bytes").into(),
                );
            }
            done += n;
        }
        Ok(want)
    }

    fn carries(&self) -> Carries {
        // Latency only: a baseline has no framing, so its messages have one size.
        Carries::Fixed {
            size: self.size,
            max: usize::MAX,
        }
    }

    fn recv_buffer(&self, _largest: usize) -> usize {
        self.size
    }
}

/// A pair of POSIX message queues, one each way, opened with `mq_open(3)`.
pub struct MqPort {
    out: libc::mqd_t,
    back: libc::mqd_t,
    /// `mq_msgsize` of the queue we receive from: `mq_receive` needs a buffer this large.
    msgsize: usize,
    /// The ping's size.
    size: usize,
}

/// Opens a queue read-write, creating it (exclusively, mode 0600, the system's default
/// capacity and message size: what the `mq` row gets) when `create` is set.
fn mq_open(name: &str, create: bool) -> Fallible<libc::mqd_t> {
    let c = CString::new(name).map_err(|_| format!("mq_open {name}: the name contains NUL"))?;
    let flags = libc::O_RDWR | libc::O_CLOEXEC;
    let q = if create {
        // SAFETY:
        // - `c` is a NUL-terminated string that lives across the call.
        // - With O_CREAT, mq_open reads two more variadic arguments: a mode_t (passed as
        //   c_uint after promotion) and an attribute pointer, null for the defaults.
        unsafe {
            libc::mq_open(
                c.as_ptr(),
                flags | libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                std::ptr::null::<libc::mq_attr>(),
            )
        }
    } else {
        // SAFETY: `c` is a NUL-terminated string that lives across the call; without
        // O_CREAT no variadic argument is read.
        unsafe { libc::mq_open(c.as_ptr(), flags) }
    };
    if q == -1 {
        return Err(format!("mq_open {name}: {}", io::Error::last_os_error()).into());
    }
    Ok(q)
}

/// Removes a queue's name (`mq_unlink(3)`); a missing name is not an error.
pub fn mq_unlink(name: &str) {
    if let Ok(c) = CString::new(name) {
        // SAFETY: `c` is a NUL-terminated string that lives across the call.
        unsafe { libc::mq_unlink(c.as_ptr()) };
    }
}

impl MqPort {
    /// Creates both queues (the bench's side, before it starts the peer): it sends on
    /// `out` and receives on `back`.
    pub fn create(out: &str, back: &str, size: usize) -> Fallible<Self> {
        let out_q = mq_open(out, true)?;
        let back_q = match mq_open(back, true) {
            Ok(q) => q,
            Err(e) => {
                // SAFETY: `out_q` is a queue descriptor we opened and no one else holds.
                unsafe { libc::mq_close(out_q) };
                mq_unlink(out);
                return Err(e);
            }
        };
        Self::with(out_q, back_q, size)
    }

    /// Opens the two queues the bench created (the peer's side): it sends on `out` and
    /// receives on `back`.
    pub fn open(out: &str, back: &str, size: usize) -> Fallible<Self> {
        let out_q = mq_open(out, false)?;
        let back_q = match mq_open(back, false) {
            Ok(q) => q,
            Err(e) => {
                // SAFETY: `out_q` is a queue descriptor we opened and no one else holds.
                unsafe { libc::mq_close(out_q) };
                return Err(e);
            }
        };
        Self::with(out_q, back_q, size)
    }

    fn with(out: libc::mqd_t, back: libc::mqd_t, size: usize) -> Fallible<Self> {
        // Owning both first means they are closed on every path below.
        let mut port = MqPort {
            out,
            back,
            msgsize: 0,
            size,
        };
        // SAFETY: `mq_attr` is plain integers, for which all zeroes is a valid value.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        // SAFETY: `back` is an open queue descriptor; `attr` is a valid, writable
        // `mq_attr` for the call.
        if unsafe { libc::mq_getattr(back, &mut attr) } == -1 {
            return Err(format!("mq_getattr: {}", io::Error::last_os_error()).into());
        }
        port.msgsize = usize::try_from(attr.mq_msgsize)
            .map_err(|_| format!("mq_getattr: a negative mq_msgsize {}", attr.mq_msgsize))?;
        Ok(port)
    }
}

impl Port for MqPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let q = self.out;
        // SAFETY: `q` is an open queue descriptor owned by `self`; `msg` is a live slice
        // of `msg.len()` bytes.
        retry("mq_send", || unsafe {
            libc::mq_send(q, msg.as_ptr().cast(), msg.len(), 0) as isize
        })?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        let q = self.back;
        if buf.len() < self.msgsize {
            return Err(format!(
                "mq_receive needs a buffer of mq_msgsize ({}) bytes, not {}",
                self.msgsize,
                buf.len()
            )
            .into());
        }
        // SAFETY: `q` is an open queue descriptor owned by `self`; `buf` is a writable
        // slice of `buf.len()` bytes, at least mq_msgsize (checked above), and the
        // priority pointer may be null.
        retry("mq_receive", || unsafe {
            libc::mq_receive(q, buf.as_mut_ptr().cast(), buf.len(), std::ptr::null_mut())
        })
    }

    fn carries(&self) -> Carries {
        Carries::Fixed {
            size: self.size,
            max: self.msgsize,
        }
    }

    fn recv_buffer(&self, _largest: usize) -> usize {
        self.msgsize
    }
}

impl Drop for MqPort {
    fn drop(&mut self) {
        // SAFETY: both are queue descriptors this port opened and closes only here.
        unsafe {
            libc::mq_close(self.out);
            libc::mq_close(self.back);
        }
    }
}
