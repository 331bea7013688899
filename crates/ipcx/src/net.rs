//! TCP and UDP over IPv4 and IPv6: the few options an IPC user needs on top of std.
//!
//! The sockets are the standard library's [`TcpListener`], [`TcpStream`] and
//! [`UdpSocket`]; this module creates them with the options set before `bind` or
//! `connect` (where they must be), and [`SocketExt`](crate::SocketExt) adds the `try_` and
//! `_timeout` forms of send and receive.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use ipcx::net::TcpOptions;
//!
//! // "[::]:0" with dual_stack (the default) accepts IPv4 and IPv6 clients alike.
//! let listener = TcpOptions::new().bind("[::1]:0".parse()?)?;
//! let addr = listener.local_addr()?;
//! let mut client = TcpOptions::new().nodelay(true).connect(addr, Duration::from_secs(1))?;
//! let (mut server, _) = listener.accept()?;
//! client.write_all(b"ping")?;
//! let mut buf = [0u8; 4];
//! server.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # References
//! - [tcp(7)](https://man7.org/linux/man-pages/man7/tcp.7.html),
//!   [udp(7)](https://man7.org/linux/man-pages/man7/udp.7.html),
//!   [ipv6(7)](https://man7.org/linux/man-pages/man7/ipv6.7.html),
//!   [socket(7)](https://man7.org/linux/man-pages/man7/socket.7.html)

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

pub use crate::sock::{DatagramExt, ListenerExt};

use crate::error::{Context, Error, Result};
use crate::wait::{Deadline, wait_fd};

/// Options for TCP listeners and connections.
///
/// # References
/// - [tcp(7)](https://man7.org/linux/man-pages/man7/tcp.7.html)
/// - [ipv6(7)](https://man7.org/linux/man-pages/man7/ipv6.7.html)
#[derive(Clone, Debug)]
pub struct TcpOptions {
    nodelay: bool,
    reuse_addr: bool,
    dual_stack: bool,
    backlog: i32,
    send_buffer: Option<usize>,
    recv_buffer: Option<usize>,
}

impl Default for TcpOptions {
    fn default() -> TcpOptions {
        TcpOptions {
            nodelay: false,
            reuse_addr: true,
            dual_stack: true,
            backlog: crate::unix::DEFAULT_BACKLOG,
            send_buffer: None,
            recv_buffer: None,
        }
    }
}

impl TcpOptions {
    /// Defaults: `SO_REUSEADDR` on (a restarted server can bind while old connections
    /// linger in `TIME_WAIT`), dual-stack IPv6 listeners, Nagle's algorithm on.
    pub fn new() -> TcpOptions {
        TcpOptions::default()
    }

    /// `TCP_NODELAY`: send small writes at once instead of coalescing them. Request/reply
    /// protocols want this on.
    pub fn nodelay(mut self, on: bool) -> TcpOptions {
        self.nodelay = on;
        self
    }

    /// `SO_REUSEADDR` for listeners (on by default).
    pub fn reuse_addr(mut self, on: bool) -> TcpOptions {
        self.reuse_addr = on;
        self
    }

    /// For an IPv6 listener, also accept IPv4 clients (`IPV6_V6ONLY` off; on by default).
    pub fn dual_stack(mut self, on: bool) -> TcpOptions {
        self.dual_stack = on;
        self
    }

    /// The listen backlog.
    pub fn backlog(mut self, backlog: i32) -> TcpOptions {
        self.backlog = backlog;
        self
    }

    /// `SO_SNDBUF`, set before connect or listen so the window scale fits it.
    pub fn send_buffer_size(mut self, bytes: usize) -> TcpOptions {
        self.send_buffer = Some(bytes);
        self
    }

    /// `SO_RCVBUF`, set before connect or listen so the window scale fits it.
    pub fn recv_buffer_size(mut self, bytes: usize) -> TcpOptions {
        self.recv_buffer = Some(bytes);
        self
    }

    /// Binds and listens on `addr`.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists) (`EADDRINUSE`) when
    /// another socket has the port.
    pub fn bind(&self, addr: SocketAddr) -> Result<TcpListener> {
        let fd = new_socket(addr, SocketType::STREAM, SocketFlags::CLOEXEC)?;
        self.apply(&fd, addr)?;
        if self.reuse_addr {
            sockopt::set_socket_reuseaddr(&fd, true).op_on("setsockopt SO_REUSEADDR", addr)?;
        }
        if addr.is_ipv6() {
            sockopt::set_ipv6_v6only(&fd, !self.dual_stack)
                .op_on("setsockopt IPV6_V6ONLY", addr)?;
        }
        bind(&fd, addr)?;
        rustix::net::listen(&fd, self.backlog).op_on("listen", addr)?;
        Ok(TcpListener::from(fd))
    }

    /// Connects to `addr`, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::PeerGone`](crate::ErrorKind::PeerGone) (`ECONNREFUSED`) when nothing
    /// listens there; [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut).
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        let fd = new_socket(
            addr,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        )?;
        self.apply(&fd, addr)?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => {}
            Err(Errno::INPROGRESS) | Err(Errno::INTR) => {
                wait_fd(
                    std::os::fd::AsFd::as_fd(&fd),
                    PollFlags::OUT,
                    Deadline::after(timeout),
                    "connect",
                    &addr,
                )?;
                if let Some(e) = sockopt::socket_error(&fd).op_on("connect", addr)?.err() {
                    return Err(connect_error(
                        Error::from_errno("connect", e.raw_os_error()).with_object(addr),
                    ));
                }
            }
            Err(e) => {
                return Err(connect_error(
                    Error::from_errno("connect", e.raw_os_error()).with_object(addr),
                ));
            }
        }
        crate::wait::set_nonblocking(fd.as_fd(), false).op_on("F_SETFL", addr)?;
        Ok(TcpStream::from(fd))
    }

    fn apply(&self, fd: &OwnedFd, addr: SocketAddr) -> Result<()> {
        if self.nodelay {
            sockopt::set_tcp_nodelay(fd, true).op_on("setsockopt TCP_NODELAY", addr)?;
        }
        set_buffers(fd, addr, self.send_buffer, self.recv_buffer)
    }
}

/// Options for UDP sockets.
///
/// # References
/// - [udp(7)](https://man7.org/linux/man-pages/man7/udp.7.html)
/// - [ipv6(7)](https://man7.org/linux/man-pages/man7/ipv6.7.html)
#[derive(Clone, Debug)]
pub struct UdpOptions {
    reuse_addr: bool,
    dual_stack: bool,
    send_buffer: Option<usize>,
    recv_buffer: Option<usize>,
}

impl Default for UdpOptions {
    fn default() -> UdpOptions {
        UdpOptions {
            reuse_addr: false,
            dual_stack: true,
            send_buffer: None,
            recv_buffer: None,
        }
    }
}

impl UdpOptions {
    /// Defaults: dual-stack IPv6 sockets, no address reuse.
    pub fn new() -> UdpOptions {
        UdpOptions::default()
    }

    /// `SO_REUSEADDR` (off by default: two UDP sockets on one port split its datagrams).
    pub fn reuse_addr(mut self, on: bool) -> UdpOptions {
        self.reuse_addr = on;
        self
    }

    /// For an IPv6 socket, also use IPv4 (`IPV6_V6ONLY` off; on by default).
    pub fn dual_stack(mut self, on: bool) -> UdpOptions {
        self.dual_stack = on;
        self
    }

    /// `SO_SNDBUF`.
    pub fn send_buffer_size(mut self, bytes: usize) -> UdpOptions {
        self.send_buffer = Some(bytes);
        self
    }

    /// `SO_RCVBUF`: how many bytes of datagrams queue before the kernel drops new ones.
    pub fn recv_buffer_size(mut self, bytes: usize) -> UdpOptions {
        self.recv_buffer = Some(bytes);
        self
    }

    /// Binds a UDP socket to `addr`.
    pub fn bind(&self, addr: SocketAddr) -> Result<UdpSocket> {
        let fd = new_socket(addr, SocketType::DGRAM, SocketFlags::CLOEXEC)?;
        set_buffers(&fd, addr, self.send_buffer, self.recv_buffer)?;
        if self.reuse_addr {
            sockopt::set_socket_reuseaddr(&fd, true).op_on("setsockopt SO_REUSEADDR", addr)?;
        }
        if addr.is_ipv6() {
            sockopt::set_ipv6_v6only(&fd, !self.dual_stack)
                .op_on("setsockopt IPV6_V6ONLY", addr)?;
        }
        bind(&fd, addr)?;
        Ok(UdpSocket::from(fd))
    }
}

fn new_socket(addr: SocketAddr, ty: SocketType, flags: SocketFlags) -> Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    rustix::net::socket_with(family, ty, flags, None).op_on("socket", addr)
}

fn bind(fd: &OwnedFd, addr: SocketAddr) -> Result<()> {
    rustix::net::bind(fd, &addr).map_err(|e| {
        let err = Error::from_errno("bind", e.raw_os_error()).with_object(addr);
        match e {
            Errno::ADDRINUSE => {
                err.with_hint("another socket holds this port; pick another or stop it")
            }
            Errno::ADDRNOTAVAIL => err.with_hint("no local interface has this address"),
            Errno::ACCESS => err.with_hint(
                "ports below /proc/sys/net/ipv4/ip_unprivileged_port_start need privilege",
            ),
            _ => err,
        }
    })
}

fn set_buffers(
    fd: &OwnedFd,
    addr: SocketAddr,
    send: Option<usize>,
    recv: Option<usize>,
) -> Result<()> {
    if let Some(bytes) = send {
        sockopt::set_socket_send_buffer_size(fd, bytes).op_on("setsockopt SO_SNDBUF", addr)?;
    }
    if let Some(bytes) = recv {
        sockopt::set_socket_recv_buffer_size(fd, bytes).op_on("setsockopt SO_RCVBUF", addr)?;
    }
    Ok(())
}

fn connect_error(e: Error) -> Error {
    match e.errno() {
        Some(libc::ECONNREFUSED) => e.with_hint("nothing listens on this port"),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => e.with_hint("no route to this address"),
        _ => e,
    }
}
