//! Descriptor passing (`SCM_RIGHTS`) and peer identity (`SO_PEERCRED`, `SO_PEERPIDFD`).

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sockopt};

use super::Seqpacket;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::sock::{Framing, label, recv_msg, send_error};
use crate::wait::{Deadline, retry};

/// The most descriptors one message can carry: the kernel's `SCM_MAX_FD`.
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Who is at the other end of a Unix socket, as the kernel recorded it when the
/// connection was made (or the pair created): not a claim the peer makes.
///
/// # References
/// - [unix(7) SO_PEERCRED](https://man7.org/linux/man-pages/man7/unix.7.html)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCred {
    /// The peer's process id at connect time, or `None` when the peer lives in a PID
    /// namespace this process cannot see into (the kernel reports 0). PIDs are reused: to
    /// act on the process, use [`UnixSocketExt::peer_pidfd`] instead.
    pub pid: Option<u32>,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

impl std::fmt::Display for PeerCred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid} uid {} gid {}", self.uid, self.gid),
            None => write!(
                f,
                "pid unknown (another PID namespace) uid {} gid {}",
                self.uid, self.gid
            ),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::os::unix::net::UnixStream {}
    impl Sealed for std::os::unix::net::UnixDatagram {}
    impl Sealed for super::Seqpacket {}
}

/// What only Unix sockets can do: pass descriptors and tell who the peer is.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Seek, Write};
/// use std::os::fd::AsFd;
/// use ipcx::unix::UnixSocketExt;
///
/// let (a, b) = ipcx::unix::stream_pair()?;
/// let mut file = std::fs::File::from(std::os::fd::OwnedFd::from(tempfile_like()?));
/// file.write_all(b"shared")?;
/// a.send_fds(b"f", &[file.as_fd()])?;
///
/// let mut buf = [0u8; 1];
/// let (n, fds) = b.recv_fds(&mut buf, 1)?;
/// assert_eq!((n, fds.len()), (1, 1));
/// let mut received = std::fs::File::from(fds.into_iter().next().unwrap());
/// received.rewind()?;
/// let mut text = String::new();
/// received.read_to_string(&mut text)?;
/// assert_eq!(text, "shared");
/// assert_eq!(b.peer_credentials()?.pid, Some(std::process::id()));
/// # fn tempfile_like() -> std::io::Result<std::os::fd::OwnedFd> {
/// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true)
/// #         .open(std::env::temp_dir().join(format!("ipcx-doc-fd-{}", std::process::id())))?;
/// #     std::fs::remove_file(std::env::temp_dir().join(format!("ipcx-doc-fd-{}", std::process::id())))?;
/// #     Ok(f.into())
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # References
/// - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
/// - [cmsg(3)](https://man7.org/linux/man-pages/man3/cmsg.3.html)
pub trait UnixSocketExt: AsFd + sealed::Sealed {
    /// Sends `data` (at least one byte) with the descriptors `fds` attached (`SCM_RIGHTS`),
    /// waiting for room as long as it takes. The descriptors stay open here; the receiver
    /// gets its own copies.
    ///
    /// On a stream socket the send may be partial: the descriptors travel with the bytes
    /// that were sent, so send the rest with a plain send, not `send_fds` again (which
    /// would send the descriptors twice).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for empty `data` (a stream would drop the descriptors)
    /// or more than [`MAX_FDS_PER_MESSAGE`] descriptors; [`ErrorKind::PeerGone`] when the
    /// peer closed; [`ErrorKind::LimitReached`] (`ETOOMANYREFS`) when descriptors in
    /// flight exceed the kernel's limit.
    #[doc(alias = "SCM_RIGHTS")]
    fn send_fds(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        send_fds_until(self.as_fd(), data, fds, Deadline::Never)
    }

    /// [`send_fds`](UnixSocketExt::send_fds) only if there is room now
    /// ([`ErrorKind::WouldBlock`] otherwise).
    fn try_send_fds(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        send_fds_until(self.as_fd(), data, fds, Deadline::Now)
    }

    /// [`send_fds`](UnixSocketExt::send_fds), waiting at most `timeout` for room.
    fn send_fds_timeout(
        &self,
        data: &[u8],
        fds: &[BorrowedFd<'_>],
        timeout: Duration,
    ) -> Result<usize> {
        send_fds_until(self.as_fd(), data, fds, Deadline::after(timeout))
    }

    /// Receives data and at most `max_fds` descriptors, waiting as long as it takes.
    /// Received descriptors are close-on-exec.
    ///
    /// Every received descriptor is closed, and an error returned, when the message
    /// carried more than `max_fds` descriptors ([`ErrorKind::Corrupt`]), when this process
    /// had no room for them (`EMFILE`: [`ErrorKind::LimitReached`]), or when a datagram
    /// did not fit `buf` ([`ErrorKind::MessageTooLarge`]). `Ok((0, []))` on a stream is
    /// end of file, given a non-empty `buf`: as with [`std::io::Read::read`], an empty
    /// `buf` reads 0 bytes (and still returns the descriptors that came).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `max_fds` exceeds [`MAX_FDS_PER_MESSAGE`].
    #[doc(alias = "SCM_RIGHTS")]
    fn recv_fds(&self, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
        recv_fds_until(self.as_fd(), buf, max_fds, Deadline::Never)
    }

    /// [`recv_fds`](UnixSocketExt::recv_fds) only if a message is queued now
    /// ([`ErrorKind::WouldBlock`] otherwise).
    fn try_recv_fds(&self, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
        recv_fds_until(self.as_fd(), buf, max_fds, Deadline::Now)
    }

    /// [`recv_fds`](UnixSocketExt::recv_fds), waiting at most `timeout`.
    fn recv_fds_timeout(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        timeout: Duration,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        recv_fds_until(self.as_fd(), buf, max_fds, Deadline::after(timeout))
    }

    /// The peer's pid, uid and gid as the kernel recorded them at connect time
    /// (`SO_PEERCRED`). For a socket pair, the process that created the pair.
    #[doc(alias = "SO_PEERCRED")]
    fn peer_credentials(&self) -> Result<PeerCred> {
        let fd = self.as_fd();
        let cred = crate::sys::sock::peer_cred(fd).op_on("getsockopt SO_PEERCRED", label(fd))?;
        // With no peer recorded the kernel reports uid and gid -1; a pid of 0 alone only
        // means the peer's PID namespace is not visible from here.
        if cred.uid == u32::MAX && cred.gid == u32::MAX {
            return Err(
                Error::new("getsockopt SO_PEERCRED", ErrorKind::InvalidInput)
                    .with_object(label(fd))
                    .with_hint(
                        "the kernel recorded no peer: credentials exist for accepted and connected \
                     stream and seqpacket sockets and for socket pairs, not for datagram sockets",
                    ),
            );
        }
        Ok(PeerCred {
            pid: u32::try_from(cred.pid).ok().filter(|&pid| pid != 0),
            uid: cred.uid,
            gid: cred.gid,
        })
    }

    /// A pidfd for the peer process, taken by the kernel at connect time
    /// (`SO_PEERPIDFD`), so it refers to the very process that connected even if its PID
    /// has since been reused. Poll it for readability to learn when the peer exits.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] on kernels before Linux 6.5.
    #[doc(alias = "SO_PEERPIDFD")]
    fn peer_pidfd(&self) -> Result<OwnedFd> {
        let fd = self.as_fd();
        crate::sys::sock::peer_pidfd(fd).map_err(|e| {
            let err = Error::from_errno("getsockopt SO_PEERPIDFD", e.raw_os_error()).with_object(label(fd));
            if e == rustix::io::Errno::NOPROTOOPT {
                err.with_hint("the kernel is older than Linux 6.5; use peer_credentials, and do not trust the pid alone")
            } else {
                err
            }
        })
    }
}

impl UnixSocketExt for UnixStream {}
impl UnixSocketExt for UnixDatagram {}
impl UnixSocketExt for Seqpacket {}

fn send_fds_until(
    fd: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    deadline: Deadline,
) -> Result<usize> {
    if data.is_empty() {
        return Err(Error::new("sendmsg", ErrorKind::InvalidInput)
            .with_object(label(fd))
            .with_hint("descriptors must travel with at least one byte of data"));
    }
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(Error::new("sendmsg", ErrorKind::InvalidInput)
            .with_object(label(fd))
            .with_hint(format!(
                "{} descriptors is more than one message carries ({MAX_FDS_PER_MESSAGE})",
                fds.len()
            )));
    }
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    retry(&[(fd, PollFlags::OUT)], deadline, "sendmsg", &label(fd), || {
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
                // The buffer is sized for exactly these descriptors; never send without them.
                return Err(rustix::io::Errno::NOBUFS);
            }
            rustix::net::sendmsg(fd, &[IoSlice::new(data)], &mut control, flags)
        })
        .map_err(|e| match e.errno() {
            Some(libc::ETOOMANYREFS) => e.with_kind(ErrorKind::LimitReached).with_hint(
                "too many descriptors are in flight on Unix sockets for this user (RLIMIT_NOFILE bounds them)",
            ),
            _ => send_error(e, fd, data.len()),
        })
}

fn recv_fds_until(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    deadline: Deadline,
) -> Result<(usize, Vec<OwnedFd>)> {
    if max_fds > MAX_FDS_PER_MESSAGE {
        return Err(Error::new("recvmsg", ErrorKind::InvalidInput)
            .with_object(label(fd))
            .with_hint(format!(
                "max_fds {max_fds} is more than one message carries ({MAX_FDS_PER_MESSAGE})"
            )));
    }
    let framing = match sockopt::socket_type(fd).op_on("getsockopt SO_TYPE", label(fd))? {
        rustix::net::SocketType::STREAM => Framing::Stream,
        _ => Framing::Messages,
    };
    let got = recv_msg(fd, buf, deadline, "recvmsg", framing, max_fds)?;
    Ok((got.bytes, got.fds))
}
