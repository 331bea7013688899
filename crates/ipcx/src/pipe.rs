//! Anonymous pipes: `pipe2`, packet mode, capacity, and zero-copy moves.
//!
//! A pipe is a one-way byte stream inside the kernel, the simplest IPC there is: create it,
//! hand one end to a child process (usually as its stdin or stdout), keep the other.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::process::{Command, Stdio};
//!
//! let (reader, mut writer) = ipcx::pipe::pipe()?;
//! let child = Command::new("cat").stdin(Stdio::from(reader)).stdout(Stdio::piped()).spawn()?;
//! writer.write_all(b"hello child")?;
//! drop(writer); // EOF for the child
//! let out = child.wait_with_output()?;
//! assert_eq!(out.stdout, b"hello child");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What ipcx adds to `std::io::pipe`:
//!
//! - `try_read`/`read_timeout` and `try_write`/`write_timeout`, retrying `EINTR` with the
//!   remaining time. (Both ends are kept in non-blocking mode underneath; the mode you ask
//!   for decides how `Read`/`Write` behave and is restored when a descriptor leaves ipcx.)
//! - Writes never raise `SIGPIPE`: a closed read end is [`ErrorKind::PeerGone`].
//! - Packet mode (`O_DIRECT`): each write of at most [`PIPE_BUF`] bytes is one message.
//! - [`capacity`](PipeReader::capacity)/[`set_capacity`](PipeReader::set_capacity) with
//!   the `/proc/sys/fs/pipe-max-size` limit explained when it is hit.
//! - [`splice`](PipeReader::splice_to), [`tee`](PipeReader::tee_to),
//!   [`vmsplice`](PipeWriter::vmsplice) and [`sendfile`]: moves that skip user space.
//!
//! # References
//! - [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html),
//!   [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html)

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

use crate::error::{Context, Error, ErrorKind, Result, read_sysctl};
use crate::sys::{sigpipe, sock};
use crate::wait::{Deadline, poll_now, retry};

/// The largest write that is atomic, and the largest packet in packet mode: 4096 bytes.
pub const PIPE_BUF: usize = rustix::pipe::PIPE_BUF;

/// Options for a new pipe.
///
/// # Examples
///
/// ```
/// let (rx, tx) = ipcx::pipe::PipeOptions::new().packet(true).capacity(1 << 16).create()?;
/// assert!(rx.capacity()? >= 1 << 16);
/// tx.try_write(b"one")?;
/// tx.try_write(b"two")?;
/// let mut buf = [0u8; ipcx::pipe::PIPE_BUF];
/// assert_eq!(rx.try_read(&mut buf)?, 3); // packet mode keeps message boundaries
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html)
/// - [fcntl(2) F_SETPIPE_SZ](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#[derive(Clone, Debug, Default)]
pub struct PipeOptions {
    packet: bool,
    nonblocking: bool,
    capacity: Option<usize>,
}

impl PipeOptions {
    /// Default options: byte-stream mode, blocking `Read`/`Write`, the kernel's default
    /// capacity (64 KiB).
    pub fn new() -> PipeOptions {
        PipeOptions::default()
    }

    /// Packet mode (`O_DIRECT`): every write of at most [`PIPE_BUF`] bytes becomes one
    /// packet, and every read returns at most one packet. ipcx rejects larger writes with
    /// [`ErrorKind::MessageTooLarge`], empty writes (the kernel would send nothing), and
    /// reads into buffers smaller than `PIPE_BUF` (the kernel would discard the rest of
    /// the packet).
    pub fn packet(mut self, packet: bool) -> PipeOptions {
        self.packet = packet;
        self
    }

    /// Non-blocking mode (`O_NONBLOCK`): `Read::read` and `Write::write` return
    /// `WouldBlock` instead of waiting. The `try_` and `_timeout` methods behave the same
    /// in either mode.
    pub fn nonblocking(mut self, nonblocking: bool) -> PipeOptions {
        self.nonblocking = nonblocking;
        self
    }

    /// Asks for a capacity of at least `bytes` (`F_SETPIPE_SZ`); the kernel rounds up to
    /// a power-of-two number of pages.
    pub fn capacity(mut self, bytes: usize) -> PipeOptions {
        self.capacity = Some(bytes);
        self
    }

    /// Creates the pipe: `(read end, write end)`, both close-on-exec.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] when the process or system is out of descriptors
    /// (`EMFILE`, `ENFILE`) or the capacity exceeds what this user may have.
    #[doc(alias = "pipe2")]
    pub fn create(&self) -> Result<(PipeReader, PipeWriter)> {
        let mut flags = PipeFlags::CLOEXEC | PipeFlags::NONBLOCK;
        if self.packet {
            flags |= PipeFlags::DIRECT;
        }
        let (r, w) = rustix::pipe::pipe_with(flags).op("pipe2")?;
        let label: Label = Arc::from("pipe");
        let end = |fd| End {
            fd: Some(fd),
            block: !self.nonblocking,
            packet: self.packet,
            restore_blocking: false,
            label: label.clone(),
        };
        let (reader, writer) = (PipeReader(end(r)), PipeWriter(end(w)));
        if let Some(bytes) = self.capacity {
            writer.set_capacity(bytes)?;
        }
        Ok((reader, writer))
    }
}

/// Creates a pipe with default options: `(read end, write end)`.
///
/// # References
/// - [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html)
#[doc(alias = "pipe2")]
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    PipeOptions::new().create()
}

type Label = Arc<str>;

/// What both ends share: the descriptor, the mode and the name used in errors.
#[derive(Debug)]
struct End {
    /// Always `Some`, except inside `into_fd`, which consumes the end.
    fd: Option<OwnedFd>,
    block: bool,
    packet: bool,
    /// An adopted descriptor whose open file description was blocking: ipcx made it
    /// non-blocking, so dropping the end must make it blocking again for the other holders.
    restore_blocking: bool,
    label: Label,
}

/// Which end a descriptor must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

impl End {
    /// Takes a pipe or FIFO descriptor and makes it non-blocking underneath. `block` is
    /// the mode `Read`/`Write` present; `None` keeps the mode the descriptor had. The
    /// descriptor must be open for `access`: a read end adopted as a writer would turn
    /// `vmsplice` into a write to the caller's memory.
    fn from_fd(
        fd: OwnedFd,
        label: Label,
        op: &'static str,
        block: Option<bool>,
        access: Access,
    ) -> Result<End> {
        let st = rustix::fs::fstat(&fd).op_on(op, &label)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
            return Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(&label)
                .with_hint("the descriptor is not a pipe or FIFO"));
        }
        let flags = rustix::fs::fcntl_getfl(&fd).op_on(op, &label)?;
        let mode = flags & OFlags::RWMODE;
        let fits = match access {
            Access::Read => mode == OFlags::RDONLY || mode == OFlags::RDWR,
            Access::Write => mode == OFlags::WRONLY || mode == OFlags::RDWR,
        };
        if !fits {
            return Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(&label)
                .with_hint(format!(
                    "the descriptor is not open for {}: it is the other end of the pipe",
                    if access == Access::Read {
                        "reading"
                    } else {
                        "writing"
                    }
                )));
        }
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK).op_on("F_SETFL", &label)?;
        Ok(End {
            fd: Some(fd),
            block: block.unwrap_or(!flags.contains(OFlags::NONBLOCK)),
            packet: flags.contains(OFlags::DIRECT),
            restore_blocking: block.is_none() && !flags.contains(OFlags::NONBLOCK),
            label,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Some(fd) => fd.as_fd(),
            None => unreachable!("only into_fd takes the descriptor, and it consumes the end"),
        }
    }

    /// Hands the descriptor out in the mode its user asked for.
    fn into_fd(mut self) -> OwnedFd {
        if self.block {
            set_blocking(self.fd());
        }
        self.restore_blocking = false;
        match self.fd.take() {
            Some(fd) => fd,
            None => unreachable!("only into_fd takes the descriptor, and it consumes the end"),
        }
    }

    /// Only `write` makes packets in a packet-mode pipe: data moved in by `splice` or
    /// `vmsplice` would run together with its neighbours.
    fn refuse_packets(&self, op: &'static str) -> Result<()> {
        if self.packet {
            return Err(Error::new(op, ErrorKind::InvalidInput).with_object(&self.label).with_hint(
                "the kernel makes packets only from write(): data spliced into a packet-mode pipe \
                 has no boundaries; use try_write/write_timeout",
            ));
        }
        Ok(())
    }

    fn capacity(&self) -> Result<usize> {
        rustix::pipe::fcntl_getpipe_size(self.fd()).op_on("F_GETPIPE_SZ", &self.label)
    }

    fn set_capacity(&self, bytes: usize) -> Result<usize> {
        rustix::pipe::fcntl_setpipe_size(self.fd(), bytes).map_err(|e| {
            let err = Error::from_errno("F_SETPIPE_SZ", e.raw_os_error()).with_object(&self.label);
            let sysctl = |name| read_sysctl(name).unwrap_or_else(|| "unknown".into());
            match e {
                Errno::PERM => err.with_kind(ErrorKind::LimitReached).with_hint(format!(
                    "{bytes} bytes is more than an unprivileged process may have: \
                     /proc/sys/fs/pipe-max-size is {} bytes and \
                     /proc/sys/fs/pipe-user-pages-soft is {} pages per user; \
                     ask for less or have an administrator raise the limit",
                    sysctl("/proc/sys/fs/pipe-max-size"),
                    sysctl("/proc/sys/fs/pipe-user-pages-soft"),
                )),
                Errno::BUSY => err.with_hint(format!(
                    "the pipe holds more than {bytes} bytes now; drain it before shrinking"
                )),
                Errno::INVAL => err.with_hint(format!(
                    "{bytes} bytes is outside the range the kernel accepts (one page to 2^31)"
                )),
                _ => err,
            }
        })
    }
}

impl Drop for End {
    fn drop(&mut self) {
        if self.restore_blocking {
            if let Some(fd) = &self.fd {
                set_blocking(fd.as_fd());
            }
        }
    }
}

/// Clears `O_NONBLOCK`. `F_SETFL` on a descriptor we hold cannot fail for lack of
/// permission; if it did, the holder would see `EAGAIN` rather than lose data.
fn set_blocking(fd: BorrowedFd<'_>) {
    let _ = crate::wait::set_nonblocking(fd, false);
}

/// One read from a pipe or FIFO until `deadline`: `Ok(0)` only at end of file. On a
/// blocking descriptor the blocking form waits inside `read`; otherwise waits use `poll`.
pub(crate) fn read_until(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
    label: &dyn std::fmt::Display,
) -> Result<usize> {
    retry(&[(fd, PollFlags::IN)], deadline, "read", label, || {
        loop {
            match rustix::io::read(fd, &mut *buf) {
                // A FIFO with no writer yet also reads as 0: it is end of file only once a
                // writer has come and gone (POLLHUP) and nothing is left (no POLLIN).
                Ok(0) => {
                    let ev = poll_now(fd, PollFlags::IN);
                    if ev.contains(PollFlags::IN) {
                        continue;
                    }
                    return if ev.contains(PollFlags::HUP) {
                        Ok(0)
                    } else {
                        Err(Errno::AGAIN)
                    };
                }
                other => return other,
            }
        }
    })
}

/// The read end of a pipe or FIFO.
///
/// Implements [`io::Read`] (blocking unless made non-blocking) and [`AsFd`].
///
/// # References
/// - [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html)
/// - [read(2)](https://man7.org/linux/man-pages/man2/read.2.html)
#[derive(Debug)]
pub struct PipeReader(End);

/// The write end of a pipe or FIFO.
///
/// Implements [`io::Write`] (blocking unless made non-blocking) and [`AsFd`]. No write
/// raises `SIGPIPE`: when the read end is closed, writes fail with
/// [`ErrorKind::PeerGone`].
///
/// # References
/// - [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html)
/// - [write(2)](https://man7.org/linux/man-pages/man2/write.2.html)
#[derive(Debug)]
pub struct PipeWriter(End);

impl PipeReader {
    /// A FIFO end opened by ipcx: `Read`/`Write` block, as on a pipe.
    pub(crate) fn from_parts(fd: OwnedFd, label: Label, op: &'static str) -> Result<PipeReader> {
        End::from_fd(fd, label, op, Some(true), Access::Read).map(PipeReader)
    }

    /// Reads what is available now, without waiting.
    ///
    /// Returns `Ok(0)` only at end of file: every writer has closed its end.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when nothing is available and a writer is still open.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize> {
        self.read_until(buf, Deadline::Now)
    }

    /// Reads, waiting at most `timeout` for data or end of file.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] when nothing arrived in time.
    pub fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.read_until(buf, Deadline::after(timeout))
    }

    fn read_until(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let end = &self.0;
        if end.packet && buf.len() < PIPE_BUF {
            return Err(Error::new("read", ErrorKind::InvalidInput)
                .with_object(&end.label)
                .with_hint(format!(
                    "a packet-mode read needs a buffer of at least PIPE_BUF ({PIPE_BUF}) bytes, \
                     or the kernel discards the rest of the packet; this one has {}",
                    buf.len()
                )));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        read_until(end.fd(), buf, deadline, &end.label)
    }

    /// Bytes the pipe can hold (`F_GETPIPE_SZ`).
    #[doc(alias = "F_GETPIPE_SZ")]
    pub fn capacity(&self) -> Result<usize> {
        self.0.capacity()
    }

    /// Sets the capacity to at least `bytes` (`F_SETPIPE_SZ`) and returns the capacity
    /// the kernel chose.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] above `/proc/sys/fs/pipe-max-size` or the per-user
    /// limit (the message gives both values); `InvalidInput` (`EBUSY`) when shrinking
    /// below the data the pipe holds.
    #[doc(alias = "F_SETPIPE_SZ")]
    pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
        self.0.set_capacity(bytes)
    }

    /// Chooses whether [`io::Read`] waits (`false`) or returns `WouldBlock` (`true`).
    pub fn set_nonblocking(&mut self, nonblocking: bool) {
        self.0.block = !nonblocking;
    }

    /// Moves up to `len` bytes from this pipe into `to` (a file at its offset, a socket,
    /// another pipe) inside the kernel, without copying through user space. Waits for data
    /// unless the end is non-blocking; returns `Ok(0)` at end of file.
    ///
    /// # References
    /// - [splice(2)](https://man7.org/linux/man-pages/man2/splice.2.html)
    #[doc(alias = "splice")]
    pub fn splice_to(&self, to: impl AsFd, len: usize) -> Result<usize> {
        self.splice_to_until(to.as_fd(), len, Deadline::blocking(self.0.block))
    }

    /// [`splice_to`](PipeReader::splice_to), waiting at most `timeout` for data here and
    /// room in `to`.
    pub fn splice_to_timeout(&self, to: impl AsFd, len: usize, timeout: Duration) -> Result<usize> {
        self.splice_to_until(to.as_fd(), len, Deadline::after(timeout))
    }

    fn splice_to_until(
        &self,
        out: BorrowedFd<'_>,
        len: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        check_waitable(out, deadline, "splice")?;
        let fd = self.0.fd();
        let waits = [(fd, PollFlags::IN), (out, PollFlags::OUT)];
        retry(&waits, deadline, "splice", &self.0.label, || {
            sigpipe::suppress(|| {
                rustix::pipe::splice(fd, None, out, None, len, SpliceFlags::NONBLOCK)
            })
        })
        .map_err(peer_gone_hint)
    }

    /// Copies up to `len` bytes from this pipe into another pipe without consuming them
    /// (the data stays readable here). Waits for data unless the end is non-blocking.
    ///
    /// # References
    /// - [tee(2)](https://man7.org/linux/man-pages/man2/tee.2.html)
    #[doc(alias = "tee")]
    pub fn tee_to(&self, to: &PipeWriter, len: usize) -> Result<usize> {
        self.tee_to_until(to, len, Deadline::blocking(self.0.block))
    }

    /// [`tee_to`](PipeReader::tee_to), waiting at most `timeout`.
    pub fn tee_to_timeout(&self, to: &PipeWriter, len: usize, timeout: Duration) -> Result<usize> {
        self.tee_to_until(to, len, Deadline::after(timeout))
    }

    fn tee_to_until(&self, to: &PipeWriter, len: usize, deadline: Deadline) -> Result<usize> {
        let (fd, out) = (self.0.fd(), to.0.fd());
        let waits = [(fd, PollFlags::IN), (out, PollFlags::OUT)];
        retry(&waits, deadline, "tee", &self.0.label, || {
            sigpipe::suppress(|| rustix::pipe::tee(fd, out, len, SpliceFlags::NONBLOCK))
        })
        .map_err(peer_gone_hint)
    }
}

impl PipeWriter {
    /// A FIFO end opened by ipcx: `Read`/`Write` block, as on a pipe.
    pub(crate) fn from_parts(fd: OwnedFd, label: Label, op: &'static str) -> Result<PipeWriter> {
        End::from_fd(fd, label, op, Some(true), Access::Write).map(PipeWriter)
    }

    /// Writes what fits now, without waiting. Returns how many bytes were written.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] when the pipe is full; [`ErrorKind::PeerGone`] when every
    /// reader is gone; in packet mode, [`ErrorKind::MessageTooLarge`] above [`PIPE_BUF`].
    pub fn try_write(&self, buf: &[u8]) -> Result<usize> {
        self.write_until(buf, Deadline::Now)
    }

    /// Writes, waiting at most `timeout` for room. Returns how many bytes were written,
    /// which may be fewer than `buf.len()` for a write larger than [`PIPE_BUF`].
    pub fn write_timeout(&self, buf: &[u8], timeout: Duration) -> Result<usize> {
        self.write_until(buf, Deadline::after(timeout))
    }

    /// Writes all of `buf`, waiting at most `timeout` in all.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if the deadline passes first; part of `buf` may then have
    /// been written.
    pub fn write_all_timeout(&self, mut buf: &[u8], timeout: Duration) -> Result<()> {
        let deadline = Deadline::after(timeout);
        while !buf.is_empty() {
            let n = self.write_until(buf, deadline)?;
            buf = &buf[n..];
        }
        Ok(())
    }

    fn write_until(&self, buf: &[u8], deadline: Deadline) -> Result<usize> {
        let end = &self.0;
        if end.packet {
            check_packet(buf.len(), "write", &end.label)?;
        } else if buf.is_empty() {
            return Ok(0);
        }
        let fd = end.fd();
        retry(
            &[(fd, PollFlags::OUT)],
            deadline,
            "write",
            &end.label,
            || sigpipe::suppress(|| rustix::io::write(fd, buf)),
        )
        .map_err(peer_gone_hint)
    }

    /// Bytes the pipe can hold (`F_GETPIPE_SZ`).
    #[doc(alias = "F_GETPIPE_SZ")]
    pub fn capacity(&self) -> Result<usize> {
        self.0.capacity()
    }

    /// Sets the capacity; see [`PipeReader::set_capacity`].
    #[doc(alias = "F_SETPIPE_SZ")]
    pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
        self.0.set_capacity(bytes)
    }

    /// Chooses whether [`io::Write`] waits (`false`) or returns `WouldBlock` (`true`).
    pub fn set_nonblocking(&mut self, nonblocking: bool) {
        self.0.block = !nonblocking;
    }

    /// Moves up to `len` bytes from `from` (a file at its offset, a socket, another pipe)
    /// into this pipe inside the kernel. Waits for room unless the end is non-blocking.
    ///
    /// # References
    /// - [splice(2)](https://man7.org/linux/man-pages/man2/splice.2.html)
    #[doc(alias = "splice")]
    pub fn splice_from(&self, from: impl AsFd, len: usize) -> Result<usize> {
        self.splice_from_until(from.as_fd(), len, Deadline::blocking(self.0.block))
    }

    /// [`splice_from`](PipeWriter::splice_from), waiting at most `timeout` for data in
    /// `from` and room here.
    pub fn splice_from_timeout(
        &self,
        from: impl AsFd,
        len: usize,
        timeout: Duration,
    ) -> Result<usize> {
        self.splice_from_until(from.as_fd(), len, Deadline::after(timeout))
    }

    fn splice_from_until(
        &self,
        src: BorrowedFd<'_>,
        len: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        self.0.refuse_packets("splice")?;
        check_waitable(src, deadline, "splice")?;
        let fd = self.0.fd();
        let waits = [(src, PollFlags::IN), (fd, PollFlags::OUT)];
        retry(&waits, deadline, "splice", &self.0.label, || {
            sigpipe::suppress(|| {
                rustix::pipe::splice(src, None, fd, None, len, SpliceFlags::NONBLOCK)
            })
        })
        .map_err(peer_gone_hint)
    }

    /// Maps user buffers into the pipe (`vmsplice`), the cheapest way to put memory you
    /// already have into a pipe. Returns the bytes queued; waits for room unless the end
    /// is non-blocking.
    ///
    /// **The kernel may keep referring to the buffers' pages until the reader has consumed
    /// them.** If a buffer is changed, or freed and its memory reused for other data,
    /// before then, the reader receives those new bytes, which may be unrelated (even
    /// secret) data of this process. Keep each buffer alive and unchanged until the reader
    /// has acknowledged it, or use `write`, which copies. Refused on a packet-mode pipe,
    /// where only `write` makes packets.
    ///
    /// # References
    /// - [vmsplice(2)](https://man7.org/linux/man-pages/man2/vmsplice.2.html)
    pub fn vmsplice(&self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        self.vmsplice_until(bufs, Deadline::blocking(self.0.block))
    }

    /// [`vmsplice`](PipeWriter::vmsplice), waiting at most `timeout` for room.
    pub fn vmsplice_timeout(&self, bufs: &[IoSlice<'_>], timeout: Duration) -> Result<usize> {
        self.vmsplice_until(bufs, Deadline::after(timeout))
    }

    fn vmsplice_until(&self, bufs: &[IoSlice<'_>], deadline: Deadline) -> Result<usize> {
        self.0.refuse_packets("vmsplice")?;
        let fd = self.0.fd();
        retry(
            &[(fd, PollFlags::OUT)],
            deadline,
            "vmsplice",
            &self.0.label,
            || sigpipe::suppress(|| sock::vmsplice_to_pipe(fd, bufs)),
        )
        .map_err(peer_gone_hint)
    }
}

/// The timeout forms can only keep their deadline if the other descriptor cannot block
/// inside the call: `SPLICE_F_NONBLOCK` covers pipes, regular files never wait, but a
/// socket in blocking mode would hold the call until it had taken everything.
fn check_waitable(other: BorrowedFd<'_>, deadline: Deadline, op: &'static str) -> Result<()> {
    if matches!(deadline, Deadline::Never) {
        return Ok(());
    }
    let blocking_socket = rustix::fs::fstat(other)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Socket)
        .unwrap_or(false)
        && rustix::fs::fcntl_getfl(other).is_ok_and(|f| !f.contains(OFlags::NONBLOCK));
    if blocking_socket {
        return Err(Error::new(op, ErrorKind::InvalidInput).with_hint(
            "the socket is in blocking mode, so the kernel could wait inside the call past the \
             deadline; call set_nonblocking(true) on it first, or use the blocking form",
        ));
    }
    Ok(())
}

fn check_packet(len: usize, op: &'static str, label: &Label) -> Result<()> {
    if len > PIPE_BUF {
        return Err(Error::new(op, ErrorKind::MessageTooLarge).with_object(label).with_hint(
            format!("a packet-mode pipe carries at most PIPE_BUF ({PIPE_BUF}) bytes per message; this one has {len}"),
        ));
    }
    if len == 0 {
        return Err(Error::new(op, ErrorKind::InvalidInput)
            .with_object(label)
            .with_hint("a pipe cannot carry an empty packet: the kernel would send nothing"));
    }
    Ok(())
}

fn peer_gone_hint(e: Error) -> Error {
    if e.errno() == Some(libc::EPIPE) {
        e.with_hint("every read end is closed: the reader exited or dropped it")
    } else {
        e
    }
}

/// Copies up to `count` bytes from the file `from` (at `offset`, or at its file offset
/// when `None`) to `to` inside the kernel. `to` may be any descriptor: a socket, a pipe
/// or a file. Waits while `to` is a full non-blocking pipe or socket.
///
/// # References
/// - [sendfile(2)](https://man7.org/linux/man-pages/man2/sendfile.2.html)
pub fn sendfile(
    to: impl AsFd,
    from: &File,
    offset: Option<&mut u64>,
    count: usize,
) -> Result<usize> {
    sendfile_until(to.as_fd(), from, offset, count, Deadline::Never)
}

/// [`sendfile`], waiting at most `timeout` while `to` is full.
pub fn sendfile_timeout(
    to: impl AsFd,
    from: &File,
    offset: Option<&mut u64>,
    count: usize,
    timeout: Duration,
) -> Result<usize> {
    sendfile_until(to.as_fd(), from, offset, count, Deadline::after(timeout))
}

fn sendfile_until(
    out: BorrowedFd<'_>,
    from: &File,
    mut offset: Option<&mut u64>,
    count: usize,
    deadline: Deadline,
) -> Result<usize> {
    let src = from.as_fd();
    check_waitable(out, deadline, "sendfile")?;
    retry(
        &[(out, PollFlags::OUT)],
        deadline,
        "sendfile",
        &FdPair(src, out),
        || sigpipe::suppress(|| rustix::fs::sendfile(out, src, offset.as_deref_mut(), count)),
    )
    .map_err(peer_gone_hint)
}

/// Names a move's source and destination in errors, as `/proc/self/fd` names them (a
/// path, `pipe:[…]`, `socket:[…]`). Read only when an error is printed.
struct FdPair<'a>(BorrowedFd<'a>, BorrowedFd<'a>);

impl fmt::Display for FdPair<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::fd::AsRawFd;
        let name = |fd: BorrowedFd<'_>| {
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_or_else(
                |_| format!("fd {}", fd.as_raw_fd()),
                |p| p.display().to_string(),
            )
        };
        write!(f, "{} -> {}", name(self.0), name(self.1))
    }
}

impl io::Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl io::Read for &PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_until(buf, Deadline::blocking(self.0.block))?)
    }
}

impl io::Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Write for &PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.write_until(buf, Deadline::blocking(self.0.block))?)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! end_conversions {
    ($ty:ident, $std:ty, $access:expr) => {
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.fd()
            }
        }

        impl From<$ty> for OwnedFd {
            /// The descriptor, in the blocking mode the end was configured with.
            fn from(end: $ty) -> OwnedFd {
                end.0.into_fd()
            }
        }

        impl From<$ty> for Stdio {
            /// Hands the end to a child process (as stdin, stdout or stderr).
            fn from(end: $ty) -> Stdio {
                Stdio::from(end.0.into_fd())
            }
        }

        impl TryFrom<OwnedFd> for $ty {
            type Error = Error;
            /// Adopts a pipe or FIFO descriptor, keeping its blocking mode for
            /// `Read`/`Write`; fails with `InvalidInput` for any other descriptor, and
            /// for a descriptor of the pipe's other end.
            ///
            /// The open file description becomes non-blocking underneath (ipcx restores
            /// the mode when the descriptor leaves it), which duplicates of the
            /// descriptor held elsewhere also see.
            fn try_from(fd: OwnedFd) -> Result<$ty> {
                End::from_fd(fd, Arc::from("pipe"), "adopt", None, $access).map($ty)
            }
        }

        impl TryFrom<$std> for $ty {
            type Error = Error;
            fn try_from(end: $std) -> Result<$ty> {
                $ty::try_from(OwnedFd::from(end))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.label)
            }
        }
    };
}
end_conversions!(PipeReader, io::PipeReader, Access::Read);
end_conversions!(PipeWriter, io::PipeWriter, Access::Write);
