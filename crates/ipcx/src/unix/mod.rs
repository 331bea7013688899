//! Unix domain sockets: stream, datagram and seqpacket, on paths or as pairs.
//!
//! ipcx reuses the standard library's [`UnixStream`], [`UnixListener`] and
//! [`UnixDatagram`], adds the type std lacks ([`Seqpacket`], reliable ordered messages
//! over a connection), and adds through traits what std does not do:
//!
//! - **Owned socket files** ([`SocketFile`]): [`listen`], [`bind_datagram`] and
//!   [`listen_seqpacket`] create the socket file with mode 0600 (exactly, whatever the
//!   umask), refuse a path that is a symbolic link, is not a socket, belongs to another
//!   user or has a live socket behind it, take over only a *stale* socket file of the
//!   caller's own (one whose process is gone), and remove the file on drop.
//! - **Timeouts** for connect ([`connect_timeout`]) and accept ([`ListenerExt`]), and for
//!   send and receive ([`SocketExt`](crate::SocketExt)).
//! - **Descriptor passing and peer identity** ([`UnixSocketExt`]): `SCM_RIGHTS` with a
//!   cap per message, `SO_PEERCRED`, and `SO_PEERPIDFD`.
//!
//! ```
//! use std::io::{Read, Write};
//! # let dir = std::env::temp_dir().join(format!("ipcx-doc-unix-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("server.sock");
//! let server = ipcx::unix::listen(&path)?;          // mode 0600, removed on drop
//! let mut client = std::os::unix::net::UnixStream::connect(&path)?;
//! let (mut conn, _) = server.accept()?;            // a std UnixListener underneath
//! client.write_all(b"hi")?;
//! let mut buf = [0u8; 2];
//! conn.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"hi");
//! # drop(server); std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Abstract-namespace sockets are not offered: they have no permissions, so any process
//! in the network namespace can connect.
//!
//! # References
//! - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html),
//!   [socketpair(2)](https://man7.org/linux/man-pages/man2/socketpair.2.html)

mod ancillary;
mod seqpacket;

use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

pub use ancillary::{MAX_FDS_PER_MESSAGE, PeerCred, UnixSocketExt};
pub use seqpacket::{Seqpacket, SeqpacketListener};

pub use crate::sock::{DatagramExt, ListenerExt};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::name::check_socket_path;
use crate::owner::PathOwner;
use crate::wait::{Deadline, retry_sleeping};

/// The default listen backlog: connections the kernel queues before `accept`.
pub const DEFAULT_BACKLOG: i32 = 128;

/// A socket bound to a path that this process created and will remove on drop.
///
/// Dereferences to the socket (`UnixListener`, `UnixDatagram` or `SeqpacketListener`).
///
/// # References
/// - [bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html)
/// - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
#[derive(Debug)]
pub struct SocketFile<T> {
    socket: T,
    owner: PathOwner,
    // Declared after `owner`: the socket file is removed before the lock is released.
    _lock: BindLock,
}

impl<T> SocketFile<T> {
    /// The socket file's path.
    pub fn path(&self) -> &Path {
        self.owner.path()
    }

    /// Leaves the socket file in place on drop and returns the socket. A later
    /// [`listen`] by the same user takes the stale file over once this socket is closed.
    pub fn keep(self) -> T {
        let SocketFile {
            socket,
            mut owner,
            _lock,
        } = self;
        owner.keep();
        socket
    }
}

impl<T> Deref for SocketFile<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.socket
    }
}

impl<T: AsFd> AsFd for SocketFile<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Options for binding a socket to a path.
///
/// Before binding, an existing socket file of the caller's own is probed with one
/// non-blocking `connect`: a refused connection proves it stale (then it is removed),
/// anything else means a live socket (then the bind is refused, and that socket's server
/// sees one connection that closes at once).
///
/// # References
/// - [bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html)
/// - [listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html)
#[derive(Clone, Debug)]
pub struct BindOptions {
    mode: u32,
    backlog: i32,
}

impl Default for BindOptions {
    fn default() -> BindOptions {
        BindOptions {
            mode: 0o600,
            backlog: DEFAULT_BACKLOG,
        }
    }
}

impl BindOptions {
    /// Mode 0600 and a backlog of [`DEFAULT_BACKLOG`].
    pub fn new() -> BindOptions {
        BindOptions::default()
    }

    /// The socket file's permission bits. Connecting needs write permission, so 0600
    /// admits only the owner, 0660 the owner's group too. Applied exactly.
    pub fn mode(mut self, mode: u32) -> BindOptions {
        self.mode = mode & 0o777;
        self
    }

    /// The listen backlog (connections queued before `accept`); the kernel caps it at
    /// `/proc/sys/net/core/somaxconn`.
    pub fn backlog(mut self, backlog: i32) -> BindOptions {
        self.backlog = backlog;
        self
    }

    /// Binds and listens with a stream socket.
    pub fn listen(&self, path: impl AsRef<Path>) -> Result<SocketFile<UnixListener>> {
        let (fd, owner, _lock) = self.bind(path.as_ref(), SocketType::STREAM)?;
        Ok(SocketFile {
            socket: UnixListener::from(fd),
            owner,
            _lock,
        })
    }

    /// Binds a datagram socket.
    pub fn bind_datagram(&self, path: impl AsRef<Path>) -> Result<SocketFile<UnixDatagram>> {
        let (fd, owner, _lock) = self.bind(path.as_ref(), SocketType::DGRAM)?;
        Ok(SocketFile {
            socket: UnixDatagram::from(fd),
            owner,
            _lock,
        })
    }

    /// Binds and listens with a seqpacket socket.
    pub fn listen_seqpacket(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<SocketFile<SeqpacketListener>> {
        let (fd, owner, _lock) = self.bind(path.as_ref(), SocketType::SEQPACKET)?;
        Ok(SocketFile {
            socket: SeqpacketListener::from_listening(fd)?,
            owner,
            _lock,
        })
    }

    fn bind(&self, path: &Path, ty: SocketType) -> Result<(OwnedFd, PathOwner, BindLock)> {
        check_socket_path(path)?;
        let object = path.display();
        let lock = BindLock::acquire(path)?;
        clear_stale(path, ty)?;
        let addr = SocketAddrUnix::new(path).op_on("bind", &object)?;
        let fd = rustix::net::socket_with(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None)
            .op_on("socket", &object)?;
        // bind(2) gives the file the socket inode's mode less the umask: narrowing the
        // inode first means the file is never visible with more than `mode`.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(self.mode)).op_on("fchmod", &object)?;
        rustix::net::bind(&fd, &addr).map_err(|e| {
            let err = Error::from_errno("bind", e.raw_os_error()).with_object(&object);
            match e {
                Errno::ADDRINUSE => err.with_hint("another process bound this path just now"),
                Errno::NOENT => err.with_hint("the parent directory does not exist"),
                _ => err,
            }
        })?;
        let owner = PathOwner::record(path)?;
        // Restore any bits the umask removed; this only ever widens up to `mode`.
        owner.set_mode(self.mode)?;
        if ty != SocketType::DGRAM {
            rustix::net::listen(&fd, self.backlog).op_on("listen", &object)?;
        }
        Ok((fd, owner, lock))
    }
}

/// Serialises the processes that bind one socket path, and proves the owner alive
/// without trusting a PID: an exclusive `flock` on `<path>.lock`, held for as long as
/// the [`SocketFile`] exists and released by the kernel when its process dies.
///
/// Without it, a socket that is bound but not yet listening refuses connections like a
/// dead one, so a second binder could take a live socket file for stale and remove it.
#[derive(Debug)]
struct BindLock {
    path: PathBuf,
    _file: OwnedFd,
}

impl BindLock {
    fn acquire(socket: &Path) -> Result<BindLock> {
        let path = lock_path(socket);
        let object = path.display();
        let me = rustix::process::geteuid().as_raw();
        loop {
            let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            let file = rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600)).map_err(|e| {
                let err = Error::from_errno("open lock", e.raw_os_error()).with_object(&object);
                match e {
                    Errno::LOOP => err.with_kind(ErrorKind::PermissionDenied).with_hint(
                        "a symbolic link is planted at the lock path; refusing to follow it",
                    ),
                    Errno::NOENT => err.with_hint("the parent directory does not exist"),
                    _ => err,
                }
            })?;
            let st = rustix::fs::fstat(&file).op_on("stat", &object)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != me {
                return Err(Error::new("open lock", ErrorKind::PermissionDenied).with_object(&object).with_hint(
                    format!("the lock file is not a regular file of uid {me} (owner uid {}); refusing to use it", st.st_uid),
                ));
            }
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => {
                    return Err(Error::new("bind", ErrorKind::AlreadyExists)
                        .with_object(socket.display())
                        .with_hint(format!(
                            "a live process holds {} and serves this path",
                            path.display()
                        )));
                }
                Err(e) => {
                    return Err(Error::from_errno("flock", e.raw_os_error()).with_object(&object));
                }
            }
            // The previous holder removes the lock file as it lets go: if it did so between
            // our open and our flock, we hold a lock on a file nobody else will open. Retry.
            match rustix::fs::statat(CWD, &path, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {
                    // Also an OFD lock on byte 0, released with the flock when this
                    // description closes: a liveness probe tests it with F_OFD_GETLK,
                    // which never holds a lock, so a probe can never make a binder see
                    // the name as taken (a probe by flock would hold it for a moment).
                    // Only a prober of ours could hold that byte, and probes never do.
                    let locked = crate::sys::lock::try_lock_byte(file.as_fd(), 0)
                        .op_on("fcntl F_OFD_SETLK", &object)?;
                    if !locked {
                        // Someone else holds byte 0 of a lock file whose flock is ours:
                        // not an ipcx binder. Without the byte, probes would take a
                        // live binder for gone once that holder lets go.
                        return Err(Error::new("fcntl F_OFD_SETLK", ErrorKind::AlreadyExists)
                            .with_object(&object)
                            .with_hint(
                                "another process holds a lock on byte 0 of this lock file                                  although no binder does; find it with /proc/locks and stop                                  it, then bind again",
                            ));
                    }
                    return Ok(BindLock { path, _file: file });
                }
                _ => continue,
            }
        }
    }
}

impl Drop for BindLock {
    fn drop(&mut self) {
        // Still holding the lock, so no one else can have replaced the file. The lock
        // itself goes when `_file` closes, right after.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Makes `path` free for a new socket: nothing there, or a stale socket file of the
/// caller's own, which is removed. Anything else is refused.
fn clear_stale(path: &Path, ty: SocketType) -> Result<()> {
    let object = path.display();
    let st = match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Ok(()),
        other => other.op_on("stat", &object)?,
    };
    let refuse = |kind, hint: String| {
        Err(Error::new("bind", kind)
            .with_object(&object)
            .with_hint(hint))
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Socket => {}
        FileType::Symlink => {
            return refuse(
                ErrorKind::PermissionDenied,
                "a symbolic link is planted at the socket path; refusing to follow or remove it"
                    .into(),
            );
        }
        other => {
            return refuse(
                ErrorKind::AlreadyExists,
                format!("the path is a {other:?}, not a socket; refusing to remove it"),
            );
        }
    }
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return refuse(
            ErrorKind::PermissionDenied,
            format!(
                "the socket file belongs to uid {} (you are uid {me}); refusing to take it over",
                st.st_uid
            ),
        );
    }
    // Is a process still behind it? A dead socket refuses connections; a live one
    // accepts, queues (EAGAIN) or is of another type (EPROTOTYPE).
    let addr = SocketAddrUnix::new(path).op_on("bind", &object)?;
    let probe = rustix::net::socket_with(
        AddressFamily::UNIX,
        ty,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .op_on("socket", &object)?;
    match rustix::net::connect(&probe, &addr) {
        Err(Errno::CONNREFUSED) => {
            // Stale, and ours: remove it, unless it changed under us since the stat.
            match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => {
                    std::fs::remove_file(path).op_on("unlink stale socket", &object)
                }
                Err(Errno::NOENT) => Ok(()),
                _ => refuse(
                    ErrorKind::AlreadyExists,
                    "the socket file was replaced while checking it".into(),
                ),
            }
        }
        Err(Errno::ACCESS) => refuse(
            ErrorKind::PermissionDenied,
            "cannot probe the existing socket file (no write permission)".into(),
        ),
        _ => refuse(
            ErrorKind::AlreadyExists,
            "a live socket is bound at this path: another process is serving it".into(),
        ),
    }
}

/// The lock file that stands beside the socket file `socket` while an ipcx owner binds
/// it: `<socket>.lock`. Its `flock` says the name is taken; byte 0's open-file-description
/// lock tells a live owner from a gone one.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Binds and listens on a stream socket at `path` with [`BindOptions::new`].
///
/// # Errors
/// [`ErrorKind::InvalidName`] for a bad path; [`ErrorKind::AlreadyExists`] when a live
/// socket or another kind of file is there; [`ErrorKind::PermissionDenied`] for a
/// symbolic link or another user's socket file.
pub fn listen(path: impl AsRef<Path>) -> Result<SocketFile<UnixListener>> {
    BindOptions::new().listen(path)
}

/// Binds a datagram socket at `path` with [`BindOptions::new`].
pub fn bind_datagram(path: impl AsRef<Path>) -> Result<SocketFile<UnixDatagram>> {
    BindOptions::new().bind_datagram(path)
}

/// Binds and listens on a seqpacket socket at `path` with [`BindOptions::new`].
pub fn listen_seqpacket(path: impl AsRef<Path>) -> Result<SocketFile<SeqpacketListener>> {
    BindOptions::new().listen_seqpacket(path)
}

/// Connects a stream socket to `path`, waiting at most `timeout` while the listener's
/// backlog is full.
///
/// # Errors
/// [`ErrorKind::PeerGone`] (`ECONNREFUSED`) when no one listens; [`ErrorKind::NotFound`]
/// when the path does not exist; [`ErrorKind::TimedOut`] when the backlog stayed full.
pub fn connect_timeout(path: impl AsRef<Path>, timeout: Duration) -> Result<UnixStream> {
    connect_socket(path.as_ref(), SocketType::STREAM, Deadline::after(timeout))
        .map(UnixStream::from)
}

pub(crate) fn connect_socket(path: &Path, ty: SocketType, deadline: Deadline) -> Result<OwnedFd> {
    check_socket_path(path)?;
    let object = path.display();
    let addr = SocketAddrUnix::new(path).op_on("connect", &object)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        ty,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .op_on("socket", &object)?;
    // A Unix connect never completes asynchronously: it succeeds, or fails with EAGAIN
    // while the backlog is full, for which the kernel offers no readiness event.
    retry_sleeping(&[Errno::AGAIN], deadline, "connect", &object, || {
        rustix::net::connect(&fd, &addr)
    })
    .map_err(|e| match e.errno() {
        Some(libc::ECONNREFUSED) => {
            e.with_hint("nothing is listening: the server is gone or not started")
        }
        Some(libc::ENOENT) => e.with_hint("no socket file at this path"),
        Some(libc::EPROTOTYPE) => e.with_hint("the socket at this path is of another type"),
        _ => e,
    })?;
    crate::wait::set_nonblocking(fd.as_fd(), false).op_on("F_SETFL", &object)?;
    Ok(fd)
}

/// A connected pair of stream sockets (`socketpair(AF_UNIX, SOCK_STREAM)`), close-on-exec.
pub fn stream_pair() -> Result<(UnixStream, UnixStream)> {
    pair(SocketType::STREAM).map(|(a, b)| (a.into(), b.into()))
}

/// A connected pair of datagram sockets (`socketpair(AF_UNIX, SOCK_DGRAM)`).
pub fn datagram_pair() -> Result<(UnixDatagram, UnixDatagram)> {
    pair(SocketType::DGRAM).map(|(a, b)| (a.into(), b.into()))
}

/// A connected pair of seqpacket sockets (`socketpair(AF_UNIX, SOCK_SEQPACKET)`).
pub fn seqpacket_pair() -> Result<(Seqpacket, Seqpacket)> {
    Seqpacket::pair()
}

pub(crate) fn pair(ty: SocketType) -> Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None).op("socketpair")
}
